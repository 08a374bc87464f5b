"""Lowering of random numbers: Philox4x32-10, exactly as ``symdl.ir.philox``
(compiled == interpreted, bit for bit)."""

from __future__ import annotations

from llvmlite import ir

from ..views import View
from .scalar import I64, llvm_type
from .table import LOWERINGS, Lowering, Placement


def _unit(b, w_hi, w_lo, dtype: str) -> ir.Value:
    f64 = llvm_type("float64")
    if dtype == "float32":
        bits = b.lshr(w_hi, ir.IntType(32)(8))
        v = b.fmul(b.uitofp(bits, f64), ir.Constant(f64, 2.0 ** -24))
        return b.fptrunc(v, llvm_type("float32"))
    hi = b.zext(b.lshr(w_hi, ir.IntType(32)(5)), I64)
    lo = b.zext(b.lshr(w_lo, ir.IntType(32)(6)), I64)
    bits = b.add(b.mul(hi, I64(1 << 26)), lo)
    return b.fmul(b.uitofp(bits, f64), ir.Constant(f64, 2.0 ** -53))


def _random(em, kernel) -> None:
    from symdl.ir import philox  # (at use: importing symdl.ir imports all of symdl)
    b = em.b
    node = kernel.node
    kv = em.plan.location[node.inputs[0]]
    i32 = ir.IntType(32)
    seed = em.load(kv, [I64(0)], "int64")
    call = em.load(kv, [I64(1)], "int64")
    k0, k1 = b.trunc(seed, i32), b.trunc(b.lshr(seed, I64(32)), i32)
    c2, c3 = b.trunc(call, i32), b.trunc(b.lshr(call, I64(32)), i32)
    stream = i32(node.attr("stream"))
    ty = llvm_type(node.dtype)
    flat = View(kernel.out.buffer, kernel.out.offset, (node.size,), (1,))

    def mulhilo(m, c):
        p = b.mul(I64(m), b.zext(c, I64))
        return b.trunc(b.lshr(p, I64(32)), i32), b.trunc(p, i32)

    def body(i):
        x0, x1, x2, x3 = b.trunc(i, i32), stream, c2, c3
        a0, a1 = k0, k1
        for _ in range(philox.ROUNDS):
            hi0, lo0 = mulhilo(philox.M0, x0)
            hi1, lo1 = mulhilo(philox.M1, x2)
            x0, x1, x2, x3 = b.xor(b.xor(hi1, x1), a0), lo1, b.xor(b.xor(hi0, x3), a1), lo0
            a0, a1 = b.add(a0, i32(philox.W0)), b.add(a1, i32(philox.W1))
        if node.attr("dist") == "uniform":
            value = _unit(b, x0, x1, node.dtype)
        else:
            u1, u2 = _unit(b, x0, x1, "float64"), _unit(b, x2, x3, "float64")
            f64 = llvm_type("float64")
            lg = b.call(em.ctx.libm("log1p", f64), [b.fneg(u1)])
            r = b.call(em.ctx.intrinsic("sqrt", f64), [b.fmul(ir.Constant(f64, -2.0), lg)])
            ang = b.fmul(ir.Constant(f64, 2.0 * 3.141592653589793), u2)
            value = b.fmul(r, b.call(em.ctx.intrinsic("cos", f64), [ang]))
            if node.dtype == "float32":
                value = b.fptrunc(value, ty)
        em.store(value, flat, [i], node.dtype)
    em.loop(node.size, body)


LOWERINGS["random"] = Lowering(Placement.KERNEL, kernel=_random)
