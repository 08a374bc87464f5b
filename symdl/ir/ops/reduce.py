"""Reductions along axes: sum and maximum (minimum is -max(-x))."""

from __future__ import annotations

import numpy as np

from .. import build as B
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


define(Primitive("reduce_sum", Kind.REDUCE, _reduce_infer("reduce_sum"),
                 lambda v, n: np.asarray(np.sum(v[0], axis=n.attr("axes")), dtype=n.dtype),
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
