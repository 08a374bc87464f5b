"""Lowering of reductions: one accumulator per output element; the operand
is read through the loop evaluator, so a producer cone is computed inside the
reduction instead of being stored first.

Sums are overflow-safe as the interpreter's are (docs/ieee.md): after the
accumulation loops, output elements that are not finite are summed again,
terms scaled by an exact power of two (``recheck_sums``)."""

from __future__ import annotations

from llvmlite import ir

from symdl.ir.ops.reduce import SUM_SCALE_EXPONENT
from symdl.ir.rewrite import ieee_active

from .scalar import I1, llvm_type
from .table import LOWERINGS, Lowering, Placement


def _accumulator(em, kernel, init: float):
    """``accumulate(out_idx, step)``: emits the loop over the elements reduced
    into output element ``out_idx``, folding each into an accumulator that
    starts at ``init`` with ``step(builder, acc, value)``; returns the result."""
    node = kernel.node
    (x,) = node.inputs
    axes = node.attr("axes")
    kept = [a for a in range(x.ndim) if a not in axes]
    ty = llvm_type(node.dtype)
    acc = em.alloca(ty)

    def accumulate(out_idx, step):
        em.b.store(ir.Constant(ty, init), acc)

        def inner(red_idx):
            full = [None] * x.ndim
            for a, i in zip(kept, out_idx):
                full[a] = i
            for a, i in zip(axes, red_idx):
                full[a] = i
            # (a fresh evaluator per loop: values computed in one loop do
            # not dominate another loop's blocks)
            v = em.values().get(x, full)
            em.b.store(step(em.b, em.b.load(acc, typ=ty), v), acc)
        em.loop_nest([x.shape[a] for a in axes], inner)
        return em.b.load(acc, typ=ty)
    return accumulate


def _reduce(em, kernel, init: float, combine) -> None:
    accumulate = _accumulator(em, kernel, init)
    node = kernel.node
    # output elements are independent: split across threads (codegen.parallel)
    em.outer_nest(node.shape, lambda idx: em.store(accumulate(idx, combine), kernel.out, idx, node.dtype))


def not_finite(em, value: ir.Value) -> ir.Value:
    """i1: ``value`` is inf or NaN."""
    ty = value.type
    fabs = em.b.call(em.ctx.intrinsic("fabs", ty), [value])
    return em.b.fcmp_unordered(">=", fabs, ir.Constant(ty, float("inf")))  # (true for NaN)


def recheck_sums(em, out, shape, dtype: str, rescan, any_bad: ir.Value | None = None,
                 outer: tuple | None = None, after_fix=None) -> None:
    """Make the sums stored in ``out`` (a view of ``shape``) overflow-safe:
    each element that is inf or NaN is replaced by
    ``rescan(out_idx, scale) * 2**SUM_SCALE_EXPONENT``, where ``rescan``
    emits that element's sum again (a fresh accumulator, any order; no
    fast-math flag on the multiply) with every term multiplied by ``scale``
    (``2**-SUM_SCALE_EXPONENT``) and returns it.  The rule, and why it is exact:
    ``overflow_safe_sum`` in ``symdl/ir/ops/reduce.py``.

    ``any_bad`` (i1), when the caller tracked it while storing (an OR of
    ``not_finite`` of every stored sum: branch-free, so the accumulation
    loops still vectorise), skips everything when false; without it the
    stored sums are scanned once.  Any lowering that accumulates sums (a
    contraction's dot products) can call this on its output.

    ``outer``: the part of axis 0 this thread stored (a kernel split across
    threads, see ``Emitter.outer_nest``): only that part is checked, so
    threads never touch each other's outputs.

    ``after_fix()``, when given, is emitted after the fixing loop (only on
    the slow path): what was computed from the unfixed sums is computed again.

    Example (inside a kernel emitter, after the loops that stored ``out``)::

        recheck_sums(em, kernel.out, node.shape, node.dtype,
                     lambda idx, scale: dot(idx, scale), any_bad=flag)
    """
    b = em.b
    ty = llvm_type(dtype)
    if any_bad is None:
        flag = em.alloca(I1)
        b.store(ir.Constant(I1, 0), flag)

        def scan(idx):
            em.b.store(em.b.or_(em.b.load(flag, typ=I1), not_finite(em, em.load(out, idx, dtype))), flag)
        em.loop_nest(shape, scan, outer)
        any_bad = b.load(flag, typ=I1)
    slow = em.fn.append_basic_block("sums_not_finite")
    done = em.fn.append_basic_block("sums_checked")
    b.cbranch(any_bad, slow, done).set_weights([1, 1 << 20])
    b.position_at_end(slow)
    scale_down = ir.Constant(ty, 2.0 ** -SUM_SCALE_EXPONENT)
    scale_up = ir.Constant(ty, 2.0 ** SUM_SCALE_EXPONENT)

    def fix(idx):
        redo = em.fn.append_basic_block("sum_again")
        kept = em.fn.append_basic_block("sum_kept")
        em.b.cbranch(not_finite(em, em.load(out, idx, dtype)), redo, kept)
        em.b.position_at_end(redo)
        em.store(em.b.fmul(rescan(idx, scale_down), scale_up), out, idx, dtype)
        em.b.branch(kept)
        em.b.position_at_end(kept)
    em.loop_nest(shape, fix, outer)
    if after_fix is not None:
        after_fix()
    em.b.branch(done)
    em.b.position_at_end(done)


def _sum(em, kernel) -> None:
    # 'reassoc' on the accumulation only: LLVM may then keep several partial
    # sums in vector registers (a summation order like numpy's pairwise one,
    # not left to right); every other operation stays strict IEEE.  With
    # ieee=True the sum is left to right.
    flags = () if ieee_active() else ("reassoc",)
    node = kernel.node
    accumulate = _accumulator(em, kernel, 0.0)
    bad = em.alloca(I1)
    em.b.store(ir.Constant(I1, 0), bad)

    def body(idx):
        total = accumulate(idx, lambda b, a, v: b.fadd(a, v, flags=flags))
        em.store(total, kernel.out, idx, node.dtype)
        em.b.store(em.b.or_(em.b.load(bad, typ=I1), not_finite(em, total)), bad)
    # output elements are independent: split across threads (codegen.parallel);
    # the re-check covers the same part of axis 0
    part = em.outer_nest(node.shape, body)

    # The careful sum in order, without flags: the rare path need not be
    # vectorised (a scalar loop is less code for LLVM to optimise), and a
    # flag on the scaling multiply could let LLVM factor the scale out of
    # the sum again.
    def rescan(idx, scale):
        return accumulate(idx, lambda b, a, v: b.fadd(a, b.fmul(v, scale)))
    recheck_sums(em, kernel.out, node.shape, node.dtype, rescan, any_bad=em.b.load(bad, typ=I1), outer=part)


def _max(em, kernel) -> None:
    def combine(b, a, v):  # NaN wins, as numpy's max
        keep = b.or_(b.fcmp_ordered(">=", a, v), b.fcmp_unordered("uno", a, a))
        return b.select(keep, a, v)
    _reduce(em, kernel, float("-inf"), combine)


def _split(em, kernel) -> int | None:
    """Output rows are independent (``outer_nest``); a full reduction has
    only its reduction axis."""
    from .. import parallel  # (parallel imports this package)
    node = kernel.node
    if not node.shape or node.inputs[0].size < parallel.SPLIT_WORK:
        return None
    return node.shape[parallel.split_axis(node.shape)]


LOWERINGS["reduce_sum"] = Lowering(Placement.KERNEL, kernel=_sum, hosts_loop=True, split=_split)
LOWERINGS["reduce_max"] = Lowering(Placement.KERNEL, kernel=_max, hosts_loop=True, split=_split)
