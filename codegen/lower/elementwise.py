"""Lowering of elementwise primitives: how one element is computed in LLVM IR,
one small function per op.  Every one is a LOOP op (fused into loop kernels);
the ``cheap`` ones are recomputed by each consumer rather than stored."""

from __future__ import annotations

from llvmlite import ir

from .scalar import llvm_type
from .table import LOWERINGS, Lowering, Placement

_CHEAP = {"add", "mul", "convert", "stop_gradient", "gt", "ge", "lt", "le", "eq", "ne", "where", "iota"}


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


@scalar("stop_gradient")
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
    one, minus = ctx.const(x.type, 1.0), ctx.const(x.type, -1.0)
    neg = ctx.b.select(ctx.b.fcmp_ordered("<", x, ctx.const(x.type, 0.0)), minus, x)
    return ctx.b.select(ctx.b.fcmp_ordered(">", x, ctx.const(x.type, 0.0)), one, neg)


def _iota(values, node, idx):
    i = idx[node.attr("axis")]
    return i if node.dtype == "int64" else values.em.b.sitofp(i, llvm_type(node.dtype))


LOWERINGS["iota"] = Lowering(Placement.LOOP, at_index=_iota, cheap=True)


# ---------------------------------------------------------------- functions (symdl.ir.ops.functions)

_INTRINSIC = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "abs": "fabs",
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


def _exp_neg_abs(ctx, x):
    """exp(-|x|): never overflows."""
    fabs = ctx.b.call(ctx.intrinsic("fabs", x.type), [x])
    return ctx.b.call(ctx.intrinsic("exp", x.type), [ctx.b.fneg(fabs)])


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
