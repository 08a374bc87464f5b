"""Lowering of reductions: one accumulator per output element; the operand
is read through the loop evaluator, so a producer cone is computed inside the
reduction instead of being stored first.

Sums are overflow-safe as the interpreter's are (docs/ieee.md): an output
element whose sum is not finite is summed again, terms scaled by an exact
power of two, in a branch after the accumulation loop."""

from __future__ import annotations

from llvmlite import ir

from symdl.ir.ops.reduce import SUM_SCALE_EXPONENT
from symdl.ir.rewrite import ieee_active

from .scalar import llvm_type
from .table import LOWERINGS, Lowering, Placement


def _reduce(em, kernel, init: float, combine, finish=None) -> None:
    """One accumulator per output element: ``combine`` folds the operand's
    elements into it; ``finish(accumulate, result)``, if given, may replace
    the result (``accumulate(step)`` emits the loop over the reduced
    elements again, into the reset accumulator, and returns its value)."""
    node = kernel.node
    (x,) = node.inputs
    axes = node.attr("axes")
    kept = [a for a in range(x.ndim) if a not in axes]
    ty = llvm_type(node.dtype)
    acc = em.alloca(ty)

    def outer(out_idx):
        def accumulate(step):
            em.b.store(ir.Constant(ty, init), acc)

            def inner(red_idx):
                full = [None] * x.ndim
                for a, i in zip(kept, out_idx):
                    full[a] = i
                for a, i in zip(axes, red_idx):
                    full[a] = i
                # (a fresh evaluator per loop: values computed in one loop
                # do not dominate another loop's blocks)
                v = em.values().get(x, full)
                em.b.store(step(em.b, em.b.load(acc, typ=ty), v), acc)
            em.loop_nest([x.shape[a] for a in axes], inner)
            return em.b.load(acc, typ=ty)
        result = accumulate(combine)
        if finish is not None:
            result = finish(accumulate, result)
        em.store(result, kernel.out, out_idx, node.dtype)
    em.loop_nest(node.shape, outer)


def overflow_safe(em, ty: ir.Type, fast: ir.Value, rescan) -> ir.Value:
    """The overflow-safe result of a sum whose fast value is ``fast``: that
    value when it is finite, else ``rescan(scale) * 2**SUM_SCALE_EXPONENT``,
    where ``rescan(scale)`` emits the same sum again (a fresh accumulator,
    same order and flags) with each term multiplied by ``scale``
    (``2**-SUM_SCALE_EXPONENT``) and returns it.  The rule and why it is
    exact: ``overflow_safe_sum`` in ``symdl/ir/ops/reduce.py``.  The fast
    path pays one compare and a predicted branch per sum; any lowering that
    accumulates sums (a contraction's dot products) can call it on each
    output element.

    Example (inside a kernel emitter; ``acc`` an accumulator slot)::

        total = overflow_safe(em, ty, total, lambda scale: sum_loop(scale))
    """
    b = em.b
    fabs = b.call(em.ctx.intrinsic("fabs", ty), [fast])
    finite = b.fcmp_ordered("<", fabs, ir.Constant(ty, float("inf")))  # false for NaN
    fast_block = b.block
    slow = em.fn.append_basic_block("sum_not_finite")
    done = em.fn.append_basic_block("sum_done")
    b.cbranch(finite, done, slow).set_weights([1 << 20, 1])
    b.position_at_end(slow)
    scaled = rescan(ir.Constant(ty, 2.0 ** -SUM_SCALE_EXPONENT))
    scaled = b.fmul(scaled, ir.Constant(ty, 2.0 ** SUM_SCALE_EXPONENT))
    slow_block = b.block
    b.branch(done)
    b.position_at_end(done)
    result = b.phi(ty)
    result.add_incoming(fast, fast_block)
    result.add_incoming(scaled, slow_block)
    return result


def _sum(em, kernel) -> None:
    # 'reassoc' on the accumulation only: LLVM may then keep several partial
    # sums in vector registers (a summation order like numpy's pairwise one,
    # not left to right); every other operation stays strict IEEE.  With
    # ieee=True the sum is left to right.
    flags = () if ieee_active() else ("reassoc",)
    ty = llvm_type(kernel.node.dtype)

    def add(b, a, v):
        return b.fadd(a, v, flags=flags)

    def careful(accumulate, fast):
        # (no flags on the scaling multiply: with them LLVM could factor
        # the scale out of the sum again)
        return overflow_safe(em, ty, fast, lambda scale: accumulate(
            lambda b, a, v: b.fadd(a, b.fmul(v, scale), flags=flags)))

    _reduce(em, kernel, 0.0, add, careful)


def _max(em, kernel) -> None:
    def combine(b, a, v):  # NaN wins, as numpy's max
        keep = b.or_(b.fcmp_ordered(">=", a, v), b.fcmp_unordered("uno", a, a))
        return b.select(keep, a, v)
    _reduce(em, kernel, float("-inf"), combine)


LOWERINGS["reduce_sum"] = Lowering(Placement.KERNEL, kernel=_sum, hosts_loop=True)
LOWERINGS["reduce_max"] = Lowering(Placement.KERNEL, kernel=_max, hosts_loop=True)
