"""Lowering of scans: one running accumulator per line along the axis; the
operand is read through the loop evaluator (producer cones computed inside)."""

from __future__ import annotations

from llvmlite import ir

from .scalar import I64, llvm_type
from .table import LOWERINGS, Lowering, Placement


def _cumsum(em, kernel) -> None:
    node = kernel.node
    (x,) = node.inputs
    axis, reverse = node.attr("axis"), node.attr("reverse")
    n = node.shape[axis]
    ty = llvm_type(node.dtype)
    acc = em.alloca(ty)
    lines = [d for k, d in enumerate(node.shape) if k != axis]

    def line(outer):
        em.b.store(ir.Constant(ty, 0.0), acc)

        def step(i):
            j = em.b.sub(I64(n - 1), i) if reverse else i
            idx = outer[:axis] + [j] + outer[axis:]
            total = em.b.fadd(em.b.load(acc, typ=ty), em.values().get(x, idx))  # in order, as numpy
            em.b.store(total, acc)
            em.store(total, kernel.out, idx, node.dtype)
        em.loop(n, step)
    em.loop_nest(lines, line)


LOWERINGS["cumsum"] = Lowering(Placement.KERNEL, kernel=_cumsum, hosts_loop=True)
