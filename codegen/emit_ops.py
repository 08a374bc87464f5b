"""Per-op scalar emitters: how one element of each elementwise primitive is
computed in LLVM IR.  One small function per op, in one table."""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from symdl.ir.node import Node

__all__ = ["EMITTERS", "has_emitter", "llvm_type", "emit_elementwise"]

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


Emitter = Callable[[ScalarContext, Node, list], ir.Value]
EMITTERS: dict[str, Emitter] = {}


def emitter(*ops: str):
    def register(fn):
        for op in ops:
            EMITTERS[op] = fn
        return fn
    return register


def has_emitter(op: str) -> bool:
    return op in EMITTERS


def emit_elementwise(ctx: ScalarContext, node: Node, args: list) -> ir.Value:
    return EMITTERS[node.op](ctx, node, args)


# ---------------------------------------------------------------- arithmetic

def _times(ctx, x, c: float):
    if c == 1.0:
        return x
    if c == -1.0:
        return ctx.b.fneg(x)
    return ctx.b.fmul(ctx.const(x.type, c), x)


@emitter("add")
def _add(ctx, node, args):
    ty = llvm_type(node.dtype)
    const = node.attr("const")
    acc = None if const == 0.0 else ctx.const(ty, const)
    for x, c in zip(args, node.attr("coeffs")):
        term = _times(ctx, x, c)
        acc = term if acc is None else ctx.b.fadd(acc, term)
    return acc


def _int_power(ctx, x, e: int):
    b = ctx.b
    n = abs(e)
    result = None
    base = x
    while n:  # square-and-multiply: exact for |e| <= 2, a few roundings otherwise
        if n & 1:
            result = base if result is None else b.fmul(result, base)
        n >>= 1
        if n:
            base = b.fmul(base, base)
    if e < 0:
        result = b.fdiv(ctx.const(x.type, 1.0), result)
    return result


@emitter("mul")
def _mul(ctx, node, args):
    acc = None
    for x, e in zip(args, node.attr("exps")):
        term = _int_power(ctx, x, e)
        acc = term if acc is None else ctx.b.fmul(acc, term)
    return acc


@emitter("powc")
def _powc(ctx, node, args):
    (x,) = args
    p = node.attr("p")
    if p == 0.5:
        return ctx.b.call(ctx.intrinsic("sqrt", x.type), [x])
    return ctx.b.call(ctx.intrinsic("pow", x.type, 2), [x, ctx.const(x.type, p)])


@emitter("pow")
def _pow(ctx, node, args):
    return ctx.b.call(ctx.intrinsic("pow", args[0].type, 2), args)


@emitter("stop_gradient")
def _identity(ctx, node, args):
    return args[0]


@emitter("where")
def _where(ctx, node, args):
    return ctx.b.select(*args)


@emitter("convert")
def _convert(ctx, node, args):
    (x,) = args
    src, dst = node.inputs[0].dtype, node.dtype
    ty = llvm_type(dst)
    if src == "bool":
        return ctx.b.uitofp(x, ty)
    if src == "float32" and dst == "float64":
        return ctx.b.fpext(x, ty)
    if src == "float64" and dst == "float32":
        return ctx.b.fptrunc(x, ty)
    if src == "int64":
        return ctx.b.sitofp(x, ty)
    raise TypeError(f"convert: {src} -> {dst} is not supported in compiled code")


_FCMP = {"gt": ">", "ge": ">=", "lt": "<", "le": "<=", "eq": "=="}


@emitter("gt", "ge", "lt", "le", "eq")
def _compare(ctx, node, args):
    return ctx.b.fcmp_ordered(_FCMP[node.op], *args)


@emitter("ne")
def _not_equal(ctx, node, args):
    return ctx.b.fcmp_unordered("!=", *args)  # NaN != NaN is true, as numpy


@emitter("logical_and")
def _and(ctx, node, args):
    return ctx.b.and_(*args)


@emitter("logical_or")
def _or(ctx, node, args):
    return ctx.b.or_(*args)


@emitter("logical_not")
def _not(ctx, node, args):
    return ctx.b.not_(args[0])


@emitter("maximum", "minimum")
def _minmax(ctx, node, args):
    a, b = args
    # numpy semantics: NaN in either operand gives NaN
    pick_a = ctx.b.fcmp_ordered(">" if node.op == "maximum" else "<", a, b)
    a_nan = ctx.b.fcmp_unordered("uno", a, a)
    return ctx.b.select(ctx.b.or_(pick_a, a_nan), a, b)


@emitter("sign")
def _sign(ctx, node, args):
    (x,) = args
    one, minus = ctx.const(x.type, 1.0), ctx.const(x.type, -1.0)
    neg = ctx.b.select(ctx.b.fcmp_ordered("<", x, ctx.const(x.type, 0.0)), minus, x)
    return ctx.b.select(ctx.b.fcmp_ordered(">", x, ctx.const(x.type, 0.0)), one, neg)


# ---------------------------------------------------------------- functions

_INTRINSIC = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "abs": "fabs",
              "floor": "floor", "ceil": "ceil", "round": "roundeven"}
_LIBM = {"tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh",
         "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
         "log1p": "log1p", "expm1": "expm1", "erf": "erf"}


def _intrinsic_emitter(name):
    def emit(ctx, node, args):
        return ctx.b.call(ctx.intrinsic(name, args[0].type), args)
    return emit


def _libm_emitter(name, nargs=1):
    def emit(ctx, node, args):
        return ctx.b.call(ctx.libm(name, args[0].type, nargs), args)
    return emit


for _op, _name in _INTRINSIC.items():
    EMITTERS[_op] = _intrinsic_emitter(_name)
for _op, _name in _LIBM.items():
    EMITTERS[_op] = _libm_emitter(_name)
EMITTERS["atan2"] = _libm_emitter("atan2", 2)
