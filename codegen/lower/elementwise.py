"""Lowering of elementwise primitives: how one element is computed in LLVM IR,
one small function per op.  Every one is a LOOP op (fused into loop kernels);
the ``cheap`` ones are recomputed by each consumer rather than stored."""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from .scalar import llvm_type
from .table import LOWERINGS, Lowering, Placement

_CHEAP = {"add", "mul", "convert", "stop_gradient", "order_limit", "gt", "ge", "lt", "le", "eq", "ne", "where", "iota"}


def scalar(*ops: str):
    """Register ``fn(ctx, node, args)`` as the per-element code of ``ops``."""
    def register(fn):
        for op in ops:
            LOWERINGS[op] = Lowering(Placement.LOOP, scalar=fn, cheap=op in _CHEAP)
        return fn
    return register


# ---------------------------------------------------------------- arithmetic

def _times(ctx, x, c: float):
    if c == 1.0:
        return x
    if c == -1.0:
        return ctx.b.fneg(x)
    return ctx.b.fmul(ctx.const(x.type, c), x)


@scalar("add")
def _add(ctx, node, args):
    ty = llvm_type(node.dtype)
    const = node.attr("const")
    acc = None if const == 0.0 else ctx.const(ty, const)
    for x, c in zip(args, node.attr("coeffs")):
        term = _times(ctx, x, c)
        acc = term if acc is None else ctx.b.fadd(acc, term)
    return acc


def _int_power(ctx, x, n: int):
    b = ctx.b
    result = None
    base = x
    while n:  # square-and-multiply: exact for n <= 2, a few roundings otherwise
        if n & 1:
            result = base if result is None else b.fmul(result, base)
        n >>= 1
        if n:
            base = b.fmul(base, base)
    return result


@scalar("mul")
def _mul(ctx, node, args):
    # numerator / denominator: a / b is one IEEE division (see _mul_impl)
    num = den = None
    for x, e in zip(args, node.attr("exps")):
        term = _int_power(ctx, x, abs(e))
        if e > 0:
            num = term if num is None else ctx.b.fmul(num, term)
        else:
            den = term if den is None else ctx.b.fmul(den, term)
    if den is None:
        return num
    return ctx.b.fdiv(ctx.const(den.type, 1.0) if num is None else num, den)


@scalar("powc")
def _powc(ctx, node, args):
    (x,) = args
    p = node.attr("p")
    if p == 0.5:
        return ctx.b.call(ctx.intrinsic("sqrt", x.type), [x])
    return ctx.b.call(ctx.intrinsic("pow", x.type, 2), [x, ctx.const(x.type, p)])


@scalar("pow")
def _pow(ctx, node, args):
    return ctx.b.call(ctx.intrinsic("pow", args[0].type, 2), args)


@scalar("stop_gradient", "order_limit")  # (decompose drops both first)
def _identity(ctx, node, args):
    return args[0]


@scalar("where")
def _where(ctx, node, args):
    return ctx.b.select(*args)


@scalar("convert")
def _convert(ctx, node, args):
    (x,) = args
    src, dst = node.inputs[0].dtype, node.dtype
    ty = llvm_type(dst)
    if dst == "int64":
        if src == "bool":
            return ctx.b.zext(x, ty)
        # numpy's float -> int64 (x86's cvttsd2si): truncation toward zero, and
        # INT64_MIN for NaN and for values out of range (where fptosi alone
        # would be poison: select does not propagate the arm it does not take)
        b = ctx.b
        fty = x.type
        absx = b.call(ctx.intrinsic("fabs", fty), [x])
        inside = b.fcmp_ordered("<", absx, ir.Constant(fty, 2.0 ** 63))
        return b.select(inside, b.fptosi(x, ty), ir.Constant(ty, -(2 ** 63)))
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


@scalar("gt", "ge", "lt", "le", "eq")
def _compare(ctx, node, args):
    return ctx.b.fcmp_ordered(_FCMP[node.op], *args)


@scalar("ne")
def _not_equal(ctx, node, args):
    return ctx.b.fcmp_unordered("!=", *args)  # NaN != NaN is true, as numpy


@scalar("logical_and")
def _and(ctx, node, args):
    return ctx.b.and_(*args)


@scalar("logical_or")
def _or(ctx, node, args):
    return ctx.b.or_(*args)


@scalar("logical_not")
def _not(ctx, node, args):
    return ctx.b.not_(args[0])


@scalar("maximum", "minimum")
def _minmax(ctx, node, args):
    a, b = args
    # numpy semantics: NaN in either operand gives NaN
    pick_a = ctx.b.fcmp_ordered(">" if node.op == "maximum" else "<", a, b)
    a_nan = ctx.b.fcmp_unordered("uno", a, a)
    return ctx.b.select(ctx.b.or_(pick_a, a_nan), a, b)


@scalar("sign")
def _sign(ctx, node, args):
    (x,) = args
    one, minus, zero = ctx.const(x.type, 1.0), ctx.const(x.type, -1.0), ctx.const(x.type, 0.0)
    # at zero +0.0 whatever the zero's sign (numpy's sign(-0.0) is 0.0); NaN stays NaN
    rest = ctx.b.select(ctx.b.fcmp_ordered("==", x, zero), zero, x)
    neg = ctx.b.select(ctx.b.fcmp_ordered("<", x, zero), minus, rest)
    return ctx.b.select(ctx.b.fcmp_ordered(">", x, ctx.const(x.type, 0.0)), one, neg)


def _iota(values, node, idx):
    i = idx[node.attr("axis")]
    return i if node.dtype == "int64" else values.em.b.sitofp(i, llvm_type(node.dtype))


LOWERINGS["iota"] = Lowering(Placement.LOOP, at_index=_iota, cheap=True)


# ---------------------------------------------------------------- functions (symdl.ir.ops.functions)

_INTRINSIC = {"log": "log", "sin": "sin", "cos": "cos", "abs": "fabs",
              "floor": "floor", "ceil": "ceil", "round": "roundeven", "trunc": "trunc"}
_LIBM = {"tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh",
         "cosh": "cosh", "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
         "log1p": "log1p", "expm1": "expm1", "erf": "erf", "atan2": "atan2",
         "log2": "log2", "log10": "log10", "exp2": "exp2", "cbrt": "cbrt", "hypot": "hypot", "fmod": "fmod"}


def _intrinsic_emitter(name):
    def emit(ctx, node, args):
        return ctx.b.call(ctx.intrinsic(name, args[0].type), args)
    return emit


def _libm_emitter(name):
    def emit(ctx, node, args):
        return ctx.b.call(ctx.libm(name, args[0].type, len(args)), args)
    return emit


for _op, _name in _INTRINSIC.items():
    scalar(_op)(_intrinsic_emitter(_name))
for _op, _name in _LIBM.items():
    scalar(_op)(_libm_emitter(_name))


#: 1/n! for n = 0..11: Taylor coefficients of exp on |r| <= ln(2)/2, where the
#: truncation error (r^12/12! < 3e-15) and Horner's rounding in float64 are
#: far below half a float32 ulp (3e-8 relative).
_EXP_TAYLOR = [1.0 / float(np.prod(np.arange(1, n + 1, dtype=np.float64))) for n in range(12)]
_LN2_HI = 0.6931471803691238      # ln 2 to 31 bits: k * _LN2_HI is exact for |k| < 2^21
_LN2_LO = 1.9082149292705877e-10  # ln 2 - _LN2_HI


@scalar("exp")
def _exp_op(ctx, node, args):
    return _exp(ctx, args[0])


def _exp(ctx, x):
    """exp(x).  float64: LLVM's exp (the C library's).  float32: computed
    inline in float64 and rounded once, 2^k * p(r) with k = round(x / ln 2),
    r = x - k ln 2 (two-part ln 2), p the Taylor polynomial above; plain
    arithmetic, so LLVM vectorises the loop around it (a libm call per
    element costs ~5 ns; the softmax of a 10 x 256 batch spent 13 us there).
    The double result is within 1e-15 of exp(x), so its rounding to float32
    is the correctly rounded value except within 1e-15 of a tie (libm's
    expf and numpy's are within 1 ulp).  Over- and underflow, subnormal
    results, infinities and NaN come out of the one float64 -> float32
    rounding: x is clamped to [-200, 200] first (NaN passes the clamp),
    where 2^k is a normal float64 and exp(+-200) rounds to inf / 0."""
    b = ctx.b
    if x.type != ir.FloatType():
        return b.call(ctx.intrinsic("exp", x.type), [x])
    f64 = ir.DoubleType()
    d = b.fpext(x, f64)
    lim = ctx.const(f64, 200.0)
    d = b.select(b.fcmp_ordered(">", d, lim), lim, d)
    d = b.select(b.fcmp_ordered("<", d, b.fneg(lim)), b.fneg(lim), d)
    kd = b.call(ctx.intrinsic("roundeven", f64), [b.fmul(d, ctx.const(f64, 1.4426950408889634))])
    r = b.fsub(b.fsub(d, b.fmul(kd, ctx.const(f64, _LN2_HI))), b.fmul(kd, ctx.const(f64, _LN2_LO)))
    p = ctx.const(f64, _EXP_TAYLOR[-1])
    for c in reversed(_EXP_TAYLOR[:-1]):
        p = b.call(ctx.intrinsic("fma", f64, 3), [p, r, ctx.const(f64, c)])
    # 2^k from its bits; a NaN k (x NaN) takes k = 0: p is NaN already
    i64 = ir.IntType(64)
    k = b.fptosi(b.select(b.fcmp_ordered("==", kd, kd), kd, ctx.const(f64, 0.0)), i64)
    scale = b.bitcast(b.shl(b.add(k, ir.Constant(i64, 1023)), ir.Constant(i64, 52)), f64)
    return b.fptrunc(b.fmul(p, scale), x.type)


def _exp_neg_abs(ctx, x):
    """exp(-|x|): never overflows."""
    fabs = ctx.b.call(ctx.intrinsic("fabs", x.type), [x])
    return _exp(ctx, ctx.b.fneg(fabs))


@scalar("sigmoid")
def _sigmoid(ctx, node, args):
    # 1/(1+e) for x >= 0 and e/(1+e) below, e = exp(-|x|): exact to rounding
    # everywhere, and no overflow (the numpy reference computes the same)
    (x,) = args
    b = ctx.b
    e = _exp_neg_abs(ctx, x)
    one = ctx.const(x.type, 1.0)
    denom = b.fadd(one, e)
    top = b.select(b.fcmp_ordered(">=", x, ctx.const(x.type, 0.0)), one, e)
    return b.fdiv(top, denom)


@scalar("softplus")
def _softplus(ctx, node, args):
    # max(x, 0) + log1p(exp(-|x|)): log(1 + exp(x)) without overflow
    (x,) = args
    b = ctx.b
    zero = ctx.const(x.type, 0.0)
    pos = b.select(b.fcmp_unordered("ugt", x, zero), x, zero)  # NaN stays NaN
    tail = b.call(ctx.libm("log1p", x.type), [_exp_neg_abs(ctx, x)])
    return b.fadd(pos, tail)


@scalar("logaddexp")
def _logaddexp(ctx, node, args):
    # numpy's npy_logaddexp: x == y (equal infinities too) gives x + log 2;
    # otherwise the larger plus log1p(exp(-|x - y|)); NaN stays NaN
    x, y = args
    b = ctx.b
    d = b.fsub(x, y)
    pos = b.fcmp_ordered(">", d, ctx.const(x.type, 0.0))
    big = b.select(pos, x, y)
    tail = b.call(ctx.libm("log1p", x.type), [_exp_neg_abs(ctx, d)])
    out = b.select(b.fcmp_unordered("uno", d, d), d, b.fadd(big, tail))
    return b.select(b.fcmp_ordered("==", x, y), b.fadd(x, ctx.const(x.type, 0.6931471805599453)), out)


def _divmod(ctx, a, b_):
    """numpy's npy_divmod: (floor quotient, remainder with the divisor's sign),
    the same operations in the same order, so compiled == numpy bit for bit."""
    b = ctx.b
    ty = a.type
    zero, one = ctx.const(ty, 0.0), ctx.const(ty, 1.0)
    copysign = ctx.intrinsic("copysign", ty, 2)
    mod = b.call(ctx.libm("fmod", ty, 2), [a, b_])
    div = b.fdiv(b.fsub(a, mod), b_)
    mod_nz = b.fcmp_unordered("!=", mod, zero)   # C's `if (mod)`: NaN is true
    flip = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", b_, zero), b.fcmp_ordered("<", mod, zero)))
    mod = b.select(flip, b.fadd(mod, b_), mod)
    div = b.select(flip, b.fsub(div, one), div)
    mod = b.select(mod_nz, mod, b.call(copysign, [zero, b_]))
    floor = b.call(ctx.intrinsic("floor", ty), [div])
    floor = b.select(b.fcmp_ordered(">", b.fsub(div, floor), ctx.const(ty, 0.5)), b.fadd(floor, one), floor)
    quot = b.select(b.fcmp_unordered("!=", div, zero), floor, b.call(copysign, [zero, b.fdiv(a, b_)]))
    b_zero = b.fcmp_ordered("==", b_, zero)
    return quot, mod, b_zero


@scalar("mod")
def _mod(ctx, node, args):
    _, mod, b_zero = _divmod(ctx, *args)
    return ctx.b.select(b_zero, ctx.b.call(ctx.libm("fmod", args[0].type, 2), list(args)), mod)


@scalar("floor_divide")
def _floor_divide(ctx, node, args):
    quot, _, b_zero = _divmod(ctx, *args)
    return ctx.b.select(b_zero, ctx.b.fdiv(*args), quot)
