"""Lowering of contractions (dot_general): loop nests over memory."""

from __future__ import annotations

from llvmlite import ir

from symdl.ir.rewrite import ieee_active

from .scalar import llvm_type
from .table import LOWERINGS, Lowering, Placement


def _dot_general(em, kernel) -> None:
    """With a wide enough b-free block the loops run batch, a-free,
    contracted, b-free (innermost over contiguous output: the vectoriser's
    favourite); otherwise each output element sums its contraction in a
    register."""
    node = kernel.node
    a, bnode = node.inputs
    av, bv = em.plan.location[a], em.plan.location[bnode]
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    free_a = [i for i in range(a.ndim) if i not in ca and i not in ba]
    free_b = [i for i in range(bnode.ndim) if i not in cb and i not in bb]
    nb, nfa = len(ba), len(free_a)
    ty = llvm_type(node.dtype)
    b = em.b
    wide = 1
    for y in free_b:
        wide *= bnode.shape[y]

    def indices(out_idx, c_idx):
        ia, ib = [None] * a.ndim, [None] * bnode.ndim
        for k, (x, y) in enumerate(zip(ba, bb)):
            ia[x] = ib[y] = out_idx[k]
        for k, x in enumerate(free_a):
            ia[x] = out_idx[nb + k]
        for k, y in enumerate(free_b):
            ib[y] = out_idx[nb + nfa + k]
        for k, (x, y) in enumerate(zip(ca, cb)):
            ia[x] = ib[y] = c_idx[k]
        return ia, ib

    contract_shape = [a.shape[x] for x in ca]
    if wide >= 8:
        zero = ir.Constant(ty, 0.0)
        em.loop_nest(node.shape, lambda o: em.store(zero, kernel.out, o, node.dtype))
        head = list(node.shape[:nb + nfa])
        tail = list(node.shape[nb + nfa:])

        def over_head(h_idx):
            def over_contract(c_idx):
                def over_tail(t_idx):
                    out_idx = h_idx + t_idx
                    ia, ib = indices(out_idx, c_idx)
                    prod = b.fmul(em.load(av, ia, a.dtype), em.load(bv, ib, bnode.dtype))
                    old = em.load(kernel.out, out_idx, node.dtype)
                    em.store(b.fadd(old, prod), kernel.out, out_idx, node.dtype)
                em.loop_nest(tail, over_tail)
            em.loop_nest(contract_shape, over_contract)
        em.loop_nest(head, over_head)
        return
    acc = em.alloca(ty)
    flags = () if ieee_active() else ("reassoc",)  # ieee=True: contraction sums left to right

    def outer(out_idx):
        b.store(ir.Constant(ty, 0.0), acc)

        def inner(c_idx):
            ia, ib = indices(out_idx, c_idx)
            prod = b.fmul(em.load(av, ia, a.dtype), em.load(bv, ib, bnode.dtype))
            b.store(b.fadd(b.load(acc, typ=ty), prod, flags=flags), acc)
        em.loop_nest(contract_shape, inner)
        em.store(b.load(acc, typ=ty), kernel.out, out_idx, node.dtype)
    em.loop_nest(node.shape, outer)


LOWERINGS["dot_general"] = Lowering(Placement.KERNEL, kernel=_dot_general)
