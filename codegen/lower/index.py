"""Lowering of gathers and scatter-adds: every index is checked at run time
(an out-of-range index returns an error code, never touches memory)."""

from __future__ import annotations

from llvmlite import ir

from ..views import View, c_strides
from .scalar import I64, llvm_type
from .table import LOWERINGS, Lowering, Placement


def _checked_index(em, idx_view, mid: list, n: int) -> ir.Value:
    b = em.b
    i = em.load(idx_view, mid, "int64")
    i = b.select(b.icmp_signed("<", i, I64(0)), b.add(i, I64(n)), i)
    ok = b.and_(b.icmp_signed(">=", i, I64(0)), b.icmp_signed("<", i, I64(n)))
    good = em.fn.append_basic_block("index_ok")
    b.cbranch(ok, good, em.index_error_block())
    b.position_at_end(good)
    return i


def _take(em, kernel) -> None:
    node = kernel.node
    x, idx = node.inputs
    axis = node.attr("axis")
    xv, iv = em.plan.location[x], em.plan.location[idx]

    def body(out_idx):
        mid = out_idx[axis:axis + idx.ndim]
        i = _checked_index(em, iv, mid, x.shape[axis])
        full = out_idx[:axis] + [i] + out_idx[axis + idx.ndim:]
        em.store(em.load(xv, full, x.dtype), kernel.out, out_idx, node.dtype)
    em.loop_nest(node.shape, body)


def _flat_out(node, out: View) -> View:
    """The result with its scattered block (``size`` a tuple of lengths) as
    one axis: the kernel's own contiguous output, so a reshape of it."""
    size = node.attr("size")
    if not isinstance(size, (tuple, list)):
        return out
    axis = node.attr("axis")
    block = 1
    for d in size:
        block *= d
    shape = node.shape[:axis] + (block,) + node.shape[axis + len(size):]
    assert out.contiguous(), "take_add writes a fresh contiguous buffer"
    return View(out.buffer, out.offset, shape, c_strides(shape))


def _take_add(em, kernel) -> None:
    node = kernel.node
    g, idx = node.inputs
    axis = node.attr("axis")
    gv, iv = em.plan.location[g], em.plan.location[idx]
    out = _flat_out(node, kernel.out)
    ty = llvm_type(node.dtype)
    em.loop_nest(out.shape, lambda o: em.store(ir.Constant(ty, 0.0), out, o, node.dtype))

    def body(g_idx):
        mid = g_idx[axis:axis + idx.ndim]
        i = _checked_index(em, iv, mid, out.shape[axis])
        target = g_idx[:axis] + [i] + g_idx[axis + idx.ndim:]
        old = em.load(out, target, node.dtype)
        em.store(em.b.fadd(old, em.load(gv, g_idx, g.dtype)), out, target, node.dtype)
    em.loop_nest(g.shape, body)


LOWERINGS["take"] = Lowering(Placement.KERNEL, kernel=_take)
LOWERINGS["take_add"] = Lowering(Placement.KERNEL, kernel=_take_add)
