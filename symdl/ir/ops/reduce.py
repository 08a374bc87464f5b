"""Reductions along axes: sum and maximum (minimum is -max(-x)).

Sums are overflow-safe (docs/ieee.md): where the fast sum of an output
element is not finite, it is summed again with every element scaled by
``2**-SUM_SCALE_EXPONENT`` (exact: a power of two) and scaled back, so a
partial sum that overflows on the way no longer decides the result.  The
compiled lowering (``codegen/lower/reduce.py``) applies the same rule.
"""

from __future__ import annotations

import numpy as np

from .. import build as B
from ..quiet import quiet
from .elementwise import nan_where_nan
from ..node import Node
from .movement import linear_jvp
from .registry import Kind, Primitive, ShapeError, define, one_input


def _reduce_infer(op):
    def infer(inputs, attrs):
        x = one_input(op, inputs)
        axes = attrs["axes"]
        if any(not 0 <= a < x.ndim for a in axes) or list(axes) != sorted(set(axes)):
            raise ShapeError(f"{op}: axes {axes} do not fit shape {x.shape}")
        if op == "reduce_max" and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"reduce_max: cannot take the maximum over an empty axis of shape {x.shape}")
        return tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype
    return infer


def _reduce_batch(node: Node, b: list, n: int) -> Node:
    return B.emit(node.op, (b[0],), axes=tuple(a + 1 for a in node.attr("axes")))


# ---------------------------------------------------------------- sum

def _reduce_sum_vjp(node, g):
    return [B.expand_to(g, node.inputs[0].shape, node.attr("axes"))]


#: The careful sum adds ``x * 2**-64``: partial sums of n such terms are at
#: most n * 2**-64 times the largest finite value, so none overflows for any
#: n < 2**64, and each scaled term is exact unless it is below 2**-1010
#: (float64) or 2**-85 (float32), far under a rounding of a sum that reached
#: the overflow threshold.  Multiplying by 2**64 rounds once, to the sum
#: (finite where it is representable) or to inf of its sign.  NaN and
#: infinite terms stay NaN and inf when scaled, so the careful sum is NaN
#: when a NaN or both infinities occur, else the infinity that occurs.
SUM_SCALE_EXPONENT = 64


def overflow_safe_sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """numpy's sum of ``x`` over ``axes``, except that an output element that
    is inf or NaN is summed again with the terms scaled by a power of two
    (see ``SUM_SCALE_EXPONENT``): it is then finite when the exact sum is
    representable, inf of the right sign when that overflows, and NaN only
    when a term is NaN or both +inf and -inf occur.  Finite results are
    numpy's, bit for bit.

    Example:
        >>> x = np.array([1e308, 1e308, -1e308, -1e308] * 2)
        >>> with np.errstate(all="ignore"):
        ...     float(np.sum(x)), float(overflow_safe_sum(x, (0,)))
        (nan, 0.0)
        >>> float(overflow_safe_sum(np.array([1e308, 1e308, 1.0]), (0,)))
        inf
    """
    with quiet():  # (an overflow is a value here, and the careful path handles it)
        out = np.asarray(np.sum(x, axis=axes))
        if out.dtype.kind != "f":  # (integer sums wrap, as numpy's do; no inf to correct)
            return out
        finite = np.isfinite(out)
        if finite.all():  # the fast path: one isfinite per output element
            return out
        scale = out.dtype.type(2.0 ** -SUM_SCALE_EXPONENT)
        careful = np.sum(x * scale, axis=axes) * out.dtype.type(2.0 ** SUM_SCALE_EXPONENT)
        return np.where(finite, out, careful)


define(Primitive("reduce_sum", Kind.REDUCE, _reduce_infer("reduce_sum"),
                 lambda v, n: np.asarray(overflow_safe_sum(v[0], n.attr("axes")), dtype=n.dtype),
                 vjp=_reduce_sum_vjp, jvp=linear_jvp, batch=_reduce_batch, arity=1))


# ---------------------------------------------------------------- maximum

def _max_mask_and_count(node):
    x, axes = node.inputs[0], node.attr("axes")
    mask = B.compare("eq", x, B.expand_to(node, x.shape, axes))
    count = B.reduce_sum(B.convert(mask, x.dtype), axes)
    return mask, count


def _reduce_max_vjp(node, g):
    # Ties share the cotangent equally (the mean of the subgradients).
    x, axes = node.inputs[0], node.attr("axes")
    mask, count = _max_mask_and_count(node)
    share = B.expand_to(B.div(g, count), x.shape, axes)
    # a NaN element makes the maximum NaN, equal to no element: every
    # partial of it is NaN (the JVP is 0/0 = NaN there already)
    return [nan_where_nan(B.expand_to(node, x.shape, axes), B.expand_to(g, x.shape, axes),
                          B.where(mask, share, B.fill(0.0, x, ())))]


def _reduce_max_jvp(node, t):
    if t[0] is None:
        return None
    x, axes = node.inputs[0], node.attr("axes")
    mask, count = _max_mask_and_count(node)
    picked = B.where(mask, t[0], B.fill(0.0, x, ()))
    return B.div(B.reduce_sum(picked, axes), count)


define(Primitive("reduce_max", Kind.REDUCE, _reduce_infer("reduce_max"),
                 lambda v, n: np.asarray(np.max(v[0], axis=n.attr("axes")), dtype=n.dtype),
                 vjp=_reduce_max_vjp, jvp=_reduce_max_jvp, batch=_reduce_batch, arity=1))
