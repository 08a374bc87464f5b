"""Lowering of movement primitives.  reshape, broadcast_to, transpose and
slice are views: a new (offset, shape, strides) over their operand's memory,
no code; read inside a loop they map the index to their operand's.  unslice
is a masked read at a shifted index (zero outside the placed region), so
padding and shifted sums need no pass over memory of their own.
concatenate copies its operands into sub-views of its result."""

from __future__ import annotations

from llvmlite import ir

from ..views import View, c_strides
from .scalar import I64, llvm_type
from .table import LOWERINGS, Lowering, Placement


def project(idx: list, shape: tuple, to: tuple) -> list:
    """The index of an operand of shape ``to`` broadcast against ``shape``."""
    lead = len(shape) - len(to)
    return [I64(0) if d == 1 and shape[lead + k] != 1 else idx[lead + k] for k, d in enumerate(to)]


# ---------------------------------------------------------------- views: memory, and reads at a mapped index

def _broadcast_view(node, base: View) -> View:
    return base.broadcast(node.shape)


def _transpose_view(node, base: View) -> View:
    return View(base.buffer, base.offset, node.shape, tuple(base.strides[p] for p in node.attr("perm")))


def _slice_view(node, base: View) -> View:
    offset = base.offset + sum(s * st for s, st in zip(node.attr("starts"), base.strides))
    strides = tuple(st * step for st, step in zip(base.strides, node.attr("steps")))
    return View(base.buffer, offset, node.shape, strides)


def _reshape_view(node, base: View) -> View | None:
    if base.contiguous():
        return View(base.buffer, base.offset, node.shape, c_strides(node.shape))
    return None  # a non-contiguous view: the planner copies it first


def _broadcast_at(values, node, idx):
    return values.get(node.inputs[0], project(idx, node.shape, node.inputs[0].shape))


def _transpose_at(values, node, idx):
    src = [None] * len(idx)
    for k, p in enumerate(node.attr("perm")):
        src[p] = idx[k]
    return values.get(node.inputs[0], src)


def _slice_at(values, node, idx):
    b = values.em.b
    src = []
    for i, start, step in zip(idx, node.attr("starts"), node.attr("steps")):
        j = i if step == 1 else b.mul(i, I64(step))
        src.append(j if start == 0 else b.add(j, I64(start)))
    return values.get(node.inputs[0], src)


LOWERINGS["broadcast_to"] = Lowering(Placement.VIEW, view=_broadcast_view, at_index=_broadcast_at)
LOWERINGS["transpose"] = Lowering(Placement.VIEW, view=_transpose_view, at_index=_transpose_at)
LOWERINGS["slice"] = Lowering(Placement.VIEW, view=_slice_view, at_index=_slice_at)
# a reshape read at an index would need division by the shape: it is a view of memory only
LOWERINGS["reshape"] = Lowering(Placement.VIEW, view=_reshape_view)


# ---------------------------------------------------------------- unslice: a masked read

def _unslice_at(values, node, idx):
    b = values.em.b
    (e,) = node.inputs
    ty = llvm_type(node.dtype)
    if e.size == 0:
        return ir.Constant(ty, 0.0)
    inside, mapped = None, []
    last = len(idx) - 1
    for axis, (i, start, step, d) in enumerate(zip(idx, node.attr("starts"), node.attr("steps"), e.shape)):
        j = b.sub(i, I64(start))
        if step == 1 and axis == last and values.inside_last:
            mapped.append(j)  # affine: the loop vectorises
            continue
        if step == 1:
            q = j
            ok = b.and_(b.icmp_signed(">=", q, I64(0)), b.icmp_signed("<", q, I64(d)))
        else:
            q = b.sdiv(j, I64(step))
            exact = b.icmp_signed("==", b.mul(q, I64(step)), j)
            ok = b.and_(exact, b.and_(b.icmp_signed(">=", q, I64(0)), b.icmp_signed("<", q, I64(d))))
        mapped.append(b.select(ok, q, I64(0)))  # always a valid index: the load stays in bounds
        inside = ok if inside is None else b.and_(inside, ok)
    value = values.get(e, mapped)
    return value if inside is None else b.select(inside, value, ir.Constant(ty, 0.0))


def _unslice_region(node) -> tuple[int, int] | None:
    """[start, stop) of the placed region along the last axis (unit steps only)."""
    if node.attr("steps")[-1] != 1:
        return None
    start = node.attr("starts")[-1]
    return start, start + node.inputs[0].shape[-1]


LOWERINGS["unslice"] = Lowering(Placement.LOOP, at_index=_unslice_at, region=_unslice_region, hosts_loop=True)


# ---------------------------------------------------------------- concatenate: copies into sub-views

def _concatenate_copies(node, out: View) -> list[tuple]:
    """(operand, sub-view of the result) pairs for the copy loops."""
    axis, start, copies = node.attr("axis"), 0, []
    for x in node.inputs:
        copies.append((x, View(out.buffer, out.offset + start * out.strides[axis], x.shape, out.strides)))
        start += x.shape[axis]
    return copies


LOWERINGS["concatenate"] = Lowering(Placement.COPY, copies=_concatenate_copies)
