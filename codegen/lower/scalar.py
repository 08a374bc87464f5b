"""LLVM types of the IR dtypes and the scalar context every emitter gets."""

from __future__ import annotations

from llvmlite import ir

__all__ = ["F64", "F32", "I1", "I8", "I32", "I64", "llvm_type", "ScalarContext"]


F64, F32 = ir.DoubleType(), ir.FloatType()
I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)


def llvm_type(dtype: str, in_memory: bool = False) -> ir.Type:
    if dtype == "float64":
        return F64
    if dtype == "float32":
        return F32
    if dtype == "int64":
        return I64
    if dtype == "bool":
        return I8 if in_memory else I1
    raise TypeError(f"no LLVM type for dtype {dtype}")


class ScalarContext:
    """What an emitter needs: the builder, the module (for declarations)."""

    def __init__(self, builder: ir.IRBuilder, module: ir.Module):
        self.b = builder
        self.module = module

    def intrinsic(self, name: str, ty: ir.Type, nargs: int = 1) -> ir.Function:
        suffix = "f64" if ty == F64 else "f32"
        full = f"llvm.{name}.{suffix}"
        fn = self.module.globals.get(full)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * nargs), full)
        return fn

    def libm(self, name: str, ty: ir.Type, nargs: int = 1) -> ir.Function:
        full = name if ty == F64 else name + "f"
        fn = self.module.globals.get(full)
        if fn is None:
            fn = ir.Function(self.module, ir.FunctionType(ty, [ty] * nargs), full)
            fn.attributes.add("nounwind")
        return fn

    def const(self, ty: ir.Type, value: float) -> ir.Constant:
        return ir.Constant(ty, float(value))
