"""Lowering of gathers and scatter-adds: every index is checked at run time
(an out-of-range index returns an error code, never touches memory)."""

from __future__ import annotations

from llvmlite import ir

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


def _take_add(em, kernel) -> None:
    node = kernel.node
    g, idx = node.inputs
    axis = node.attr("axis")
    gv, iv = em.plan.location[g], em.plan.location[idx]
    ty = llvm_type(node.dtype)
    em.loop_nest(node.shape, lambda o: em.store(ir.Constant(ty, 0.0), kernel.out, o, node.dtype))

    def body(g_idx):
        mid = g_idx[axis:axis + idx.ndim]
        i = _checked_index(em, iv, mid, node.shape[axis])
        target = g_idx[:axis] + [i] + g_idx[axis + idx.ndim:]
        old = em.load(kernel.out, target, node.dtype)
        em.store(em.b.fadd(old, em.load(gv, g_idx, g.dtype)), kernel.out, target, node.dtype)
    em.loop_nest(g.shape, body)


LOWERINGS["take"] = Lowering(Placement.KERNEL, kernel=_take)
LOWERINGS["take_add"] = Lowering(Placement.KERNEL, kernel=_take_add)
