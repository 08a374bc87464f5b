"""Movement primitives: broadcast, reshape, transpose, slice, its adjoint
unslice, and concatenate.  They move or place elements and do no arithmetic,
so each is linear: its JVP applies the op to the tangent."""

from __future__ import annotations

import numpy as np

from .. import build as B
from ..node import Node
from ..shapes import broadcast_shapes
from .elementwise import lift
from .registry import Kind, Primitive, ShapeError, define, one_input, same_float_dtype

__all__ = ["linear_jvp", "slices"]


def linear_jvp(node: Node, t: list) -> Node | None:
    """Ops linear in every operand: apply the op to the tangents."""
    if all(v is None for v in t):
        return None
    ins = [v if v is not None else B.fill(0.0, i) for v, i in zip(t, node.inputs)]
    return B.emit(node.op, ins, **dict(node.attrs))


def slices(attrs) -> tuple[slice, ...]:
    """The Python slices of a slice/unslice node's attributes."""
    return tuple(slice(a, b, c) for a, b, c in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


# ---------------------------------------------------------------- broadcast_to

def _broadcast_infer(inputs, attrs):
    x = one_input("broadcast_to", inputs)
    shape = attrs["shape"]
    if broadcast_shapes("broadcast_to", [x.shape, shape]) != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return shape, x.dtype


define(Primitive(
    "broadcast_to", Kind.MOVEMENT, _broadcast_infer, lambda v, n: np.broadcast_to(v[0], n.shape),
    vjp=lambda node, g: [B.unbroadcast(g, node.inputs[0].shape)],
    jvp=linear_jvp,
    batch=lambda node, b, n: B.broadcast_to(lift(b[0], n, node.ndim), (n,) + node.shape),
    arity=1))


# ---------------------------------------------------------------- reshape

def _reshape_infer(inputs, attrs):
    x = one_input("reshape", inputs)
    shape = attrs["shape"]
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape shape {x.shape} ({x.size} elements) to {shape}")
    return shape, x.dtype


define(Primitive(
    "reshape", Kind.MOVEMENT, _reshape_infer, lambda v, n: v[0].reshape(n.shape),
    vjp=lambda node, g: [B.reshape(g, node.inputs[0].shape)],
    jvp=linear_jvp,
    batch=lambda node, b, n: B.reshape(b[0], (n,) + node.shape),
    arity=1))


# ---------------------------------------------------------------- transpose

def _transpose_infer(inputs, attrs):
    x = one_input("transpose", inputs)
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the axes of shape {x.shape}")
    return tuple(x.shape[p] for p in perm), x.dtype


def _transpose_vjp(node, g):
    perm = node.attr("perm")
    return [B.transpose(g, [perm.index(i) for i in range(len(perm))])]


define(Primitive(
    "transpose", Kind.MOVEMENT, _transpose_infer, lambda v, n: np.transpose(v[0], n.attr("perm")),
    vjp=_transpose_vjp, jvp=linear_jvp,
    batch=lambda node, b, n: B.transpose(b[0], (0,) + tuple(p + 1 for p in node.attr("perm"))),
    arity=1))


# ---------------------------------------------------------------- slice and unslice (its adjoint)

def _slice_infer(inputs, attrs):
    x = one_input("slice", inputs)
    if not (len(attrs["starts"]) == len(attrs["stops"]) == len(attrs["steps"]) == x.ndim):
        raise ShapeError(f"slice: needs one (start, stop, step) per axis of shape {x.shape}")
    shape = tuple(len(range(x.shape[i])[s]) for i, s in enumerate(slices(attrs)))
    return shape, x.dtype


def _unslice_infer(inputs, attrs):
    x = one_input("unslice", inputs)
    full = attrs["shape"]
    expect = tuple(len(range(full[i])[s]) for i, s in enumerate(slices(attrs)))
    if expect != x.shape:
        raise ShapeError(f"unslice: operand shape {x.shape} does not fill {expect} of {full}")
    return full, x.dtype


def _unslice_impl(values, node):
    out = np.zeros(node.shape, dtype=node.dtype)
    out[slices(dict(node.attrs))] = values[0]
    return out


def _slice_vjp(node, g):
    return [B.unslice(g, node.attr("starts"), node.attr("stops"), node.attr("steps"), node.inputs[0].shape)]


def _unslice_vjp(node, g):
    return [B.emit("slice", (g,), starts=node.attr("starts"), stops=node.attr("stops"), steps=node.attr("steps"))]


def _slice_batch(node, b, n):
    extra = dict(starts=(0,) + node.attr("starts"), stops=(n,) + node.attr("stops"),
                 steps=(1,) + node.attr("steps"))
    if node.op == "unslice":
        extra["shape"] = (n,) + node.attr("shape")
    return B.emit(node.op, (b[0],), **extra)


define(Primitive("slice", Kind.MOVEMENT, _slice_infer, lambda v, n: v[0][slices(dict(n.attrs))],
                 vjp=_slice_vjp, jvp=linear_jvp, batch=_slice_batch, arity=1))
define(Primitive("unslice", Kind.MOVEMENT, _unslice_infer, _unslice_impl,
                 vjp=_unslice_vjp, jvp=linear_jvp, batch=_slice_batch, arity=1))


# ---------------------------------------------------------------- concatenate

def _concat_infer(inputs, attrs):
    axis = attrs["axis"]
    if not inputs:
        raise ShapeError("concatenate: needs at least one operand")
    first = inputs[0]
    dtype = same_float_dtype("concatenate", inputs)
    for i in inputs:
        if i.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(i.shape, first.shape)) if k != axis):
            raise ShapeError(f"concatenate: shapes {[x.shape for x in inputs]} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(i.shape[axis] for i in inputs)
    return tuple(shape), dtype


def _concat_vjp(node, g):
    axis, out, start = node.attr("axis"), [], 0
    for x in node.inputs:
        sl = [slice(None)] * g.ndim
        sl[axis] = slice(start, start + x.shape[axis])
        out.append(B.slice_(g, sl))
        start += x.shape[axis]
    return out


def _concat_batch(node, b, n):
    parts = [bx if bx is not None else B.broadcast_to(x, (n,) + x.shape) for x, bx in zip(node.inputs, b)]
    return B.concatenate(parts, node.attr("axis") + 1)


define(Primitive("concatenate", Kind.MOVEMENT, _concat_infer,
                 lambda v, n: np.concatenate(v, axis=n.attr("axis")),
                 vjp=_concat_vjp, jvp=linear_jvp, batch=_concat_batch))
