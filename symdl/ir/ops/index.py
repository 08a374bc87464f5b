"""Indexing with integer arrays: ``take`` (gather along one axis) and its
adjoint ``take_add`` (scatter-add).  Indices are data, not differentiated.

``take_add``'s ``size`` is the length of the axis scattered into, or a tuple
of lengths: then the indices are flat (row-major) positions in a block of
that shape, so one scatter fills a matrix (the band structure of
``symdl.simplify.structure`` scatters diagonals straight into the result)."""

from __future__ import annotations

import numpy as np

from .. import build as B
from .registry import Kind, Primitive, ShapeError, define


def _take_infer(inputs, attrs):
    x, idx = inputs
    axis = attrs["axis"]
    if idx.dtype != "int64":
        raise ShapeError(f"take: indices must be int64, got {idx.dtype}")
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"take: axis {axis} out of range for shape {x.shape}")
    return x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype


def _take_impl(values, node):
    x, idx = values
    axis = node.attr("axis")
    if idx.size and (idx.min() < -x.shape[axis] or idx.max() >= x.shape[axis]):
        raise IndexError(f"take: index out of range for axis {axis} of size {x.shape[axis]}")
    return np.take(x, idx, axis=axis)


def _block(size) -> tuple[int, ...]:
    """The scattered block of ``take_add``: ``size`` as a tuple of lengths."""
    return tuple(size) if isinstance(size, (tuple, list)) else (size,)


def _take_add_infer(inputs, attrs):
    g, idx = inputs
    axis, block = attrs["axis"], _block(attrs["size"])
    if not block or any(not isinstance(d, (int, np.integer)) or d < 0 for d in block):
        raise ShapeError(f"take_add: size must be a length or a tuple of lengths, got {attrs['size']!r}")
    if idx.dtype != "int64":
        raise ShapeError(f"take_add: indices must be int64, got {idx.dtype}")
    lead, trail = g.shape[:axis], g.shape[axis + idx.ndim:]
    if g.shape[axis:axis + idx.ndim] != idx.shape:
        raise ShapeError(f"take_add: operand shape {g.shape} does not hold indices {idx.shape} at axis {axis}")
    return lead + block + trail, g.dtype


def _flat_shape(node) -> tuple[int, ...]:
    """``take_add``'s result with its scattered block as one axis."""
    axis, block = node.attr("axis"), _block(node.attr("size"))
    return node.shape[:axis] + (int(np.prod(block)),) + node.shape[axis + len(block):]


def _take_add_impl(values, node):
    g, idx = values
    axis = node.attr("axis")
    flat = _flat_shape(node)
    if idx.size and (idx.min() < -flat[axis] or idx.max() >= flat[axis]):
        raise IndexError(f"take_add: index out of range for a block of {flat[axis]} elements")
    out = np.zeros(flat, dtype=node.dtype)
    moved = np.moveaxis(out, axis, 0)
    gm = g.reshape(g.shape[:axis] + (idx.size,) + g.shape[axis + idx.ndim:])
    np.add.at(moved, idx.ravel() % flat[axis], np.moveaxis(gm, axis, 0))
    return out.reshape(node.shape)


def _take_add_vjp(node, g):
    return [B.take(B.reshape(g, _flat_shape(node)), node.inputs[1], node.attr("axis")), None]


def _take_add_jvp(node, t):
    if t[0] is None:
        return None
    return B.emit("take_add", (t[0], node.inputs[1]), axis=node.attr("axis"), size=node.attr("size"))


def _take_add_batch(node, b, n):
    return B.emit("take_add", (_unbatched_indices(node, b), node.inputs[1]), axis=node.attr("axis") + 1,
                  size=node.attr("size"))


def _unbatched_indices(node, b):
    if b[1] is not None:
        raise TypeError(f"batching: the indices of {node.op} cannot be batched")
    return b[0]


define(Primitive(
    "take", Kind.INDEX, _take_infer, _take_impl,
    vjp=lambda node, g: [B.take_add(g, node.inputs[1], node.attr("axis"), node.inputs[0].shape[node.attr("axis")]),
                         None],
    jvp=lambda node, t: None if t[0] is None else B.take(t[0], node.inputs[1], node.attr("axis")),
    batch=lambda node, b, n: B.take(_unbatched_indices(node, b), node.inputs[1], node.attr("axis") + 1),
    arity=2))

define(Primitive(
    "take_add", Kind.INDEX, _take_add_infer, _take_add_impl,
    vjp=_take_add_vjp, jvp=_take_add_jvp, batch=_take_add_batch, arity=2))
