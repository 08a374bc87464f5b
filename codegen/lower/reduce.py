"""Lowering of reductions: one accumulator per output element; the operand
is read through the loop evaluator, so a producer cone is computed inside the
reduction instead of being stored first."""

from __future__ import annotations

from llvmlite import ir

from symdl.ir.rewrite import ieee_active

from .scalar import llvm_type
from .table import LOWERINGS, Lowering, Placement


def _reduce(em, kernel, init: float, combine) -> None:
    node = kernel.node
    (x,) = node.inputs
    axes = node.attr("axes")
    kept = [a for a in range(x.ndim) if a not in axes]
    ty = llvm_type(node.dtype)
    acc = em.alloca(ty)

    def outer(out_idx):
        em.b.store(ir.Constant(ty, init), acc)

        def inner(red_idx):
            full = [None] * x.ndim
            for a, i in zip(kept, out_idx):
                full[a] = i
            for a, i in zip(axes, red_idx):
                full[a] = i
            v = em.values().get(x, full)
            em.b.store(combine(em.b, em.b.load(acc, typ=ty), v), acc)
        em.loop_nest([x.shape[a] for a in axes], inner)
        em.store(em.b.load(acc, typ=ty), kernel.out, out_idx, node.dtype)
    # output elements are independent: split across threads (codegen.parallel)
    em.outer_nest(node.shape, outer)


def _sum(em, kernel) -> None:
    # 'reassoc' on the accumulation only: LLVM may then keep several partial
    # sums in vector registers (a summation order like numpy's pairwise one,
    # not left to right); every other operation stays strict IEEE.  With
    # ieee=True the sum is left to right (re-association can turn an
    # overflow into a finite result).
    flags = () if ieee_active() else ("reassoc",)
    _reduce(em, kernel, 0.0, lambda b, a, v: b.fadd(a, v, flags=flags))


def _max(em, kernel) -> None:
    def combine(b, a, v):  # NaN wins, as numpy's max
        keep = b.or_(b.fcmp_ordered(">=", a, v), b.fcmp_unordered("uno", a, a))
        return b.select(keep, a, v)
    _reduce(em, kernel, float("-inf"), combine)


LOWERINGS["reduce_sum"] = Lowering(Placement.KERNEL, kernel=_sum, hosts_loop=True)
LOWERINGS["reduce_max"] = Lowering(Placement.KERNEL, kernel=_max, hosts_loop=True)
