"""Elementwise primitives: canonical arithmetic (n-ary sums and products,
powers), selection, comparisons, conversion, and the rules every
elementwise op shares.

An elementwise primitive states its *partials* (d out / d input_i as nodes);
its VJP, JVP and batching rules follow from them generically.  Branch-like ops
(where, maximum, minimum) have their own rules, selecting with ``where``
(never ``mask * g``: NaN * 0 is NaN).  The mathematical functions defined by
SymPy (exp, sin, ...) live in :mod:`.functions`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .. import build as B
from ..node import Node
from ..quiet import QUIET_SWITCH, quietly
from ..rewrite import ieee_active
from ..shapes import broadcast_shapes
from .registry import (Kind, PartialsRule, Primitive, ShapeError, define, elementwise_infer,
                       same_float_dtype)

__all__ = ["elementwise_primitive", "elementwise_vjp", "elementwise_jvp", "elementwise_batch", "lift"]


# ---------------------------------------------------------------- rules shared by every elementwise op

def _partials(node: Node) -> list:
    from .registry import primitive
    return primitive(node.op).partials(node)


def elementwise_vjp(node: Node, g: Node) -> list:
    """Cotangent of each operand: ``g * d node / d input``."""
    return [None if p is None else B.mul(g, p) for p in _partials(node)]


def elementwise_jvp(node: Node, tangents: list) -> Node | None:
    """``sum_i t_i * d node / d input_i`` (None when every tangent is zero)."""
    # one canonical sum built from its terms: no scaled product t * p made
    # only to be taken apart again by the sum (forward mode builds many)
    from .registry import primitive
    split = primitive(node.op).partial_terms
    if split is not None:  # partials as (coefficient, factors): not even the scaled partial is made
        terms = [(c, (t, *factors)) for t, (c, factors) in zip(tangents, split(node))
                 if t is not None and c != 0.0]
    else:
        terms = [(1.0, (t, p)) for t, p in zip(tangents, _partials(node)) if t is not None and p is not None]
    if not terms:
        return None
    out = B.sum_of_products(terms, node)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


def lift(x: Node, n: int, rank: int) -> Node:
    """A batched operand (n, *s) as (n, 1.., *s) of total rank ``rank + 1``,
    so that it broadcasts against the other operands with its batch axis first."""
    pad = rank - (x.ndim - 1)
    return x if pad <= 0 else B.reshape(x, (n,) + (1,) * pad + x.shape[1:])


def elementwise_batch(node: Node, batched: list, n: int) -> Node:
    operands = [lift(b, n, node.ndim) if b is not None else x for x, b in zip(node.inputs, batched)]
    out = B.emit(node.op, operands, **dict(node.attrs))
    return out if out.shape == (n,) + node.shape else B.broadcast_to(out, (n,) + node.shape)


# numpy's dtype objects by name: ``np.asarray(v, dtype="float64")`` parses the
# name on every call, and the interpreter converts every result
NUMPY_DTYPES = {name: np.dtype(name) for name in ("float32", "float64", "bool", "int64")}


if QUIET_SWITCH is not None:
    _quiet_on, _quiet_off, _IGNORE = QUIET_SWITCH
else:  # pragma: no cover - other numpy versions
    _IGNORE = None

    def _quiet_on(_):
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def _quiet_off(state):
        state.__exit__(None, None, None)


def _run(impl: Callable[..., np.ndarray]):
    """The interpreter's evaluation of an elementwise numpy function, with
    numpy's warnings off (as :func:`~symdl.ir.quiet.quietly`, but in the same
    frame: this runs for every traced operation)."""
    def run(values, node):
        token = _quiet_on(_IGNORE)
        try:
            out = impl(*values)
        finally:
            _quiet_off(token)
        dt = NUMPY_DTYPES[node.dtype]
        if type(out) is not np.ndarray or out.dtype != dt:
            out = np.asarray(out, dtype=dt)
        return out if out.shape == node.shape else np.broadcast_to(out, node.shape)
    return run


def elementwise_primitive(name: str, impl: Callable[..., np.ndarray], *, arity: int | None,
                          partials: PartialsRule | None = None, out_dtype: str | None = None,
                          differentiable: bool = True, infer=None, vjp=None, jvp=None,
                          decomposition=None) -> Primitive:
    """Define an elementwise primitive whose numpy semantics is ``impl(*values)``.

    A differentiable one gives either its ``partials`` (the generic VJP/JVP
    follow) or its own ``vjp`` and ``jvp``.
    """
    if differentiable and partials is None and (vjp is None or jvp is None):
        raise TypeError(f"elementwise primitive {name!r} needs partials or its own VJP and JVP rules")
    return define(Primitive(
        name, Kind.ELEMENTWISE, infer or elementwise_infer(name, out_dtype), _run(impl),
        vjp=(vjp or elementwise_vjp) if differentiable else None,
        jvp=(jvp or elementwise_jvp) if differentiable else None,
        batch=elementwise_batch, partials=partials if differentiable else None,
        differentiable=differentiable, arity=arity, decomposition=decomposition))


def _as_partials(terms_rule):
    """Partials as nodes from their (coefficient, factors) form (None where 0)."""
    def partials(node: Node) -> list:
        return [None if c == 0.0 else B.scale(rest[0], c) if rest else B.fill(c, node, ())
                for c, rest in terms_rule(node)]
    return partials


# ---------------------------------------------------------------- n-ary sum: const + sum(c_i * x_i)

_ADD_SHAPE = elementwise_infer("add")


def _add_infer(inputs, attrs):
    if len(attrs["coeffs"]) != len(inputs):
        raise ShapeError("add: one coefficient per term is required")
    return _ADD_SHAPE(inputs, attrs)


def _add_impl(values, node):
    # The same operations, in the same order, as the compiled code
    # (codegen/lower/elementwise.py): the constant only when it is not 0
    # (0 + -0.0 would be +0.0), then each term, negated rather than
    # multiplied by -1; compiled == interpreted to the bit.
    dt = NUMPY_DTYPES[node.dtype]
    (_, coeffs), (_, const) = node.attrs  # (sorted: coeffs, const)
    token = _quiet_on(_IGNORE)  # (numpy's warnings off, as quietly(), without a wrapper's frame)
    try:
        out = None if const == 0.0 else dt.type(const)
        for v, c in zip(values, coeffs):
            term = v if c == 1.0 else (np.negative(v) if c == -1.0 else dt.type(c) * v)
            out = term if out is None else out + term
    finally:
        _quiet_off(token)
    return out if type(out) is np.ndarray and out.dtype == dt else np.asarray(out, dtype=dt)


def _add_partial_terms(node: Node) -> list:
    return [(c, ()) for c in node.attr("coeffs")]


def _add_vjp(node: Node, g: Node) -> list:
    """``c_i g`` for each term: the generic rule's ``g * fill(c_i)`` (a
    product with a constant, whose canonical form is the scaled term) built
    as the scaled term directly.  A constant ``g`` (folded, signed zeros
    and all, by the product) and IEEE semantics (no canonical product) keep
    the generic rule."""
    if g.op == "const" or ieee_active():
        return elementwise_vjp(node, g)
    return [None if c == 0.0 else B.scale(g, c) for c in node.attrs[0][1]]


define(Primitive("add", Kind.ELEMENTWISE, _add_infer, _add_impl, vjp=_add_vjp, jvp=elementwise_jvp,
                 batch=elementwise_batch, partials=_as_partials(_add_partial_terms), partial_terms=_add_partial_terms))


# ---------------------------------------------------------------- n-ary product: prod(x_i ** e_i), integer e_i

def _mul_infer(inputs, attrs):
    exps = attrs["exps"]
    if len(exps) != len(inputs) or not all(isinstance(e, int) and e != 0 for e in exps):
        raise ShapeError("mul: one non-zero integer exponent per factor is required")
    return _MUL_SHAPE(inputs, attrs)


_MUL_SHAPE = elementwise_infer("mul")


def _int_power(v: np.ndarray, n: int) -> np.ndarray:
    """v ** n (n > 0) by square-and-multiply, as the compiled code computes
    it (so the roundings are the same)."""
    result, base = None, v
    while n:
        if n & 1:
            result = base if result is None else result * base
        n >>= 1
        if n:
            base = base * base
    return result


@quietly
def _mul_impl(values, node):
    # numerator / denominator, the same operations in the same order as the
    # compiled code (codegen/lower/elementwise.py): a / b is one IEEE
    # division, as numpy's (a * (1 / b) overflows where 1 / b does, at
    # subnormal b, and rounds twice)
    dt = NUMPY_DTYPES[node.dtype]
    num = den = None
    for v, e in zip(values, node.attrs[0][1]):  # (exps, the only attribute)
        term = _int_power(v, abs(e))
        if e > 0:
            num = term if num is None else num * term
        else:
            den = term if den is None else den * term
    out = num if den is None else (dt.type(1) if num is None else num) / den
    return out if type(out) is np.ndarray and out.dtype == dt else np.asarray(out, dtype=dt)


def _mul_partial_terms(node: Node) -> list:
    """d node / d input_i as (exponent, (the other factors,)) pairs."""
    out = []
    for i in range(len(node.inputs)):
        exps = list(node.attr("exps"))
        e = exps[i]
        exps[i] = e - 1
        pairs = [(b, k) for b, k in zip(node.inputs, exps) if k != 0]
        rest = (B.emit("mul", [b for b, _ in pairs], exps=tuple(k for _, k in pairs)),) if pairs else ()
        out.append((float(e), rest))
    return out


define(Primitive("mul", Kind.ELEMENTWISE, _mul_infer, _mul_impl, vjp=elementwise_vjp, jvp=elementwise_jvp,
                 batch=elementwise_batch,
                 partials=_as_partials(_mul_partial_terms), partial_terms=_mul_partial_terms))


# ---------------------------------------------------------------- powers

@quietly
def _powc_run(values, node):
    (v,) = values
    p = node.attr("p")
    return np.sqrt(v) if p == 0.5 else np.power(v, v.dtype.type(p))


def _powc_partials(node: Node) -> list:
    (x,), p = node.inputs, node.attr("p")
    return [B.scale(B.powc(x, p - 1.0), p)]


define(Primitive("powc", Kind.ELEMENTWISE, elementwise_infer("powc"), _powc_run, vjp=elementwise_vjp,
                 jvp=elementwise_jvp, batch=elementwise_batch, partials=_powc_partials, arity=1))


def _pow_partials(node: Node) -> list:
    x, y = node.inputs
    dx = B.mul(y, B.fn("pow", x, B.linear([(y, 1.0)], -1.0)))
    # d/dy x**y = log(x) x**y, which is 0 (not 0 * -inf = NaN) where x == 0 and
    # x**y is finite: one zero in the data must not poison the gradient
    zero = B.fill(0.0, x, ())
    log_x = B.where(B.compare("eq", x, zero), zero, B.fn("log", x))
    dy = B.mul(log_x, node)
    return [dx, dy]


elementwise_primitive("pow", np.power, arity=2, partials=_pow_partials)


# ---------------------------------------------------------------- selection

def _where_infer(inputs, attrs):
    cond, a, b = inputs
    if cond.dtype != "bool":
        raise ShapeError(f"where: condition must be bool, got {cond.dtype}")
    dtype = same_float_dtype("where", (a, b))
    return broadcast_shapes("where", [cond.shape, a.shape, b.shape]), dtype


def _where_vjp(node, g):
    cond = node.inputs[0]
    zero = B.fill(0.0, g, ())
    return [None, B.where(cond, g, zero), B.where(cond, zero, g)]


def _where_jvp(node, t):
    if t[1] is None and t[2] is None:
        return None
    zero = B.fill(0.0, node, ())
    out = B.where(node.inputs[0], t[1] if t[1] is not None else zero, t[2] if t[2] is not None else zero)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


elementwise_primitive("where", np.where, arity=3, infer=_where_infer, vjp=_where_vjp, jvp=_where_jvp)


def _minmax_share(node, v: Node, operand: int) -> Node:
    """The part of ``v`` (a cotangent or tangent) that belongs to one operand
    of maximum/minimum, selected with ``where`` (never mask * v: NaN * 0 is NaN).

    The winner gets all of it.  At a tie: when one operand is a constant it
    takes the tie, so relu(x) = maximum(x, 0) = maximum(0, x) has derivative 0
    at 0 (as MATLAB's relu); between two variables the tie is split in half
    (as JAX).
    """
    a, b = node.inputs
    win, lose = ("gt", "lt") if node.op == "maximum" else ("lt", "gt")
    mine, theirs = (B.compare(win, a, b), B.compare(lose, a, b))
    if operand == 1:
        mine, theirs = theirs, mine
    zero = B.fill(0.0, v, ())
    if node.inputs[1 - operand].op == "const":
        share = B.where(mine, v, zero)
    elif node.inputs[operand].op == "const":
        share = B.where(theirs, zero, v)
    else:
        share = B.where(mine, v, B.where(theirs, zero, B.scale(v, 0.5)))
    return nan_where_nan(node, v, share)


def nan_where_nan(out: Node, v: Node, share: Node) -> Node:
    """``share`` (an operand's part of ``v``) made NaN where the output ``out``
    is NaN and ``v`` is not 0.  A selection by comparison (false for NaN)
    would give no operand any of ``v``, and the NaN would never reach the
    gradient; numpy's formula (``2 * maximum(x, 0) * (x > 0)``) and central
    differences are NaN there (SPEC 9.3).  A zero ``v`` (another row of a
    Jacobian) still gives 0."""
    zero = B.fill(0.0, share, ())
    nan_or_zero = B.where(B.compare("eq", v, zero), zero, B.fill(float("nan"), share, ()))
    return B.where(B.compare("ne", out, out), nan_or_zero, share)


def _minmax_vjp(node, g):
    return [_minmax_share(node, g, 0), _minmax_share(node, g, 1)]


def _minmax_jvp(node, t):
    terms = [_minmax_share(node, ti, k) for k, ti in enumerate(t) if ti is not None]
    if not terms:
        return None
    out = terms[0] if len(terms) == 1 else B.add(*terms)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


elementwise_primitive("maximum", np.maximum, arity=2, vjp=_minmax_vjp, jvp=_minmax_jvp)
elementwise_primitive("minimum", np.minimum, arity=2, vjp=_minmax_vjp, jvp=_minmax_jvp)


# ---------------------------------------------------------------- conversion

def _convert_infer(inputs, attrs):
    return inputs[0].shape, attrs["dtype"]


def _convert_vjp(node, g):
    return [B.convert(g, node.inputs[0].dtype)]


def _convert_jvp(node, t):
    return None if t[0] is None else B.convert(t[0], node.dtype)


define(Primitive("convert", Kind.ELEMENTWISE, _convert_infer, lambda vals, node: vals[0].astype(node.dtype),
                 vjp=_convert_vjp, jvp=_convert_jvp, batch=elementwise_batch, arity=1))


# ---------------------------------------------------------------- comparisons and logic (no derivative)

for _name, _fn in {"gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal,
                   "eq": np.equal, "ne": np.not_equal}.items():
    elementwise_primitive(_name, _fn, arity=2, out_dtype="bool", differentiable=False)
for _name, _fn, _arity in (("logical_and", np.logical_and, 2), ("logical_or", np.logical_or, 2),
                           ("logical_not", np.logical_not, 1)):
    elementwise_primitive(_name, _fn, arity=_arity, out_dtype="bool", differentiable=False,
                          infer=elementwise_infer(_name, "bool", float_operands=False))
# Identity whose derivative is zero: what dlgradient returns without
# enable_higher_derivatives, so the trace keeps it but nothing differentiates it.
elementwise_primitive("stop_gradient", lambda v: v, arity=1, differentiable=False)


# Identity that counts the derivatives taken through it: a construct exact
# only up to some order (a custom layer's backward, symdl/nn/layer.py) marks
# its variable with order_limit(x; level=0, limit, what).  Every derivative
# that passes through a mark returns a result in which the mark is one level
# up, and one beyond ``limit`` is a ValueError instead of a silently wrong
# value (symdl/autodiff/reverse.py, ``count_orders``).
elementwise_primitive("order_limit", lambda v: v, arity=1, vjp=lambda node, g: [g], jvp=lambda node, t: t[0])


# ---------------------------------------------------------------- iota: the index along one axis, as a value

def _iota_infer(inputs, attrs):
    shape, axis = attrs["shape"], attrs["axis"]
    if inputs or not 0 <= axis < len(shape):
        raise ShapeError(f"iota: needs no operands and an axis of {shape}, got axis {axis}")
    return shape, attrs["dtype"]


def _iota_impl(values, node):
    axis = node.attr("axis")
    n = node.shape[axis]
    ar = np.arange(n, dtype=node.dtype).reshape([n if i == axis else 1 for i in range(len(node.shape))])
    return np.broadcast_to(ar, node.shape)


def _iota_batch(node, batched, n):  # no operands: never batched
    raise AssertionError("iota has no operands to batch")


# Identity matrices and one-hot bases without a constant of n^2 elements.
define(Primitive("iota", Kind.ELEMENTWISE, _iota_infer, _iota_impl, batch=_iota_batch,
                 differentiable=False, arity=0))
