"""Lowering of contractions (dot_general): batched matrix multiplies.

Each ``dot_general`` is classified (:func:`classify`) from the planned
strided views of its operands and its output: batch axes become loops, the
free axes of A are collapsed into M, those of B into N, the contracted axes
into K, each collapse only where every view's strides allow it (axes that do
not collapse stay as loops outside the multiply; contracted ones accumulate).
The multiply itself is, by size and policy (:mod:`codegen.blas`):

* a call of BLAS (``?gemm``) for large products, when a BLAS was found, the
  strides have a unit stride BLAS can take, and the code is not exported;
* the generated packed micro-kernel of :mod:`.gemm` otherwise; it can run
  an elementwise loop kernel over the product as an epilogue (the planner's
  ``OpKernel.epilogue``: a layer's bias and activation), block by block
  while the product is in cache (:func:`_fuses`);
* the plain loop nest of :func:`_loop_nest` for tiny products, matrix-vector
  shapes, and always under ``ieee=True`` (it sums left to right, as
  docs/ieee.md promises).
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from symdl.ir.rewrite import ieee_active

from .. import blas
from .gemm import _round_up, blocking, epilogues, gemm_function, scratch_elements
from .reduce import recheck_sums
from ..views import View
from .scalar import I1, I32, I64, llvm_type
from .table import LOWERINGS, Lowering, Placement

__all__ = ["classify", "MatmulShape", "GEMM_MIN_WORK"]

#: Below this many multiply-adds (M*N*K) the loop nest, which LLVM unrolls
#: and vectorises for constant sizes, beats packing (measured with
#: benchmarks/bench_matmul.py); ``SYMDL_GEMM=always`` ignores it.
GEMM_MIN_WORK = 4096
#: Products of at least this many multiply-adds through the generated
#: kernel are cut into at most MAX_SLICES row slices that threads share
#: (``codegen.parallel``; starting threads costs 20-40 us, a 2^22 product
#: takes about 60 us on one core here).  The slices are fixed at compile
#: time, so results do not depend on the thread count.
GEMM_SPLIT_WORK = 1 << 22
MAX_SLICES = 4


@dataclass(frozen=True)
class MatmulShape:
    """A dot_general as ``C[outer] (=|+=) A[outer] @ B[outer]``: strides in
    elements of each view; ``outer`` loops are (extent, stride in A, in B,
    in C); ``k_outer`` are contracted axes that did not collapse into K
    (extent, stride in A, in B), summed by accumulating."""

    M: int
    N: int
    K: int
    rsa: int
    csa: int
    rsb: int
    csb: int
    rsc: int
    csc: int
    outer: tuple
    k_outer: tuple

    @property
    def work(self) -> int:
        return self.M * self.N * self.K

    def transposed(self) -> MatmulShape:
        """The same product as ``C.T = B.T @ A.T`` (operands swapped)."""
        return MatmulShape(self.N, self.M, self.K, self.csb, self.rsb, self.csa, self.rsa, self.csc, self.rsc,
                           tuple((e, sb, sa, sc) for e, sa, sb, sc in self.outer),
                           tuple((e, sb, sa) for e, sa, sb in self.k_outer))


def _collapse(axes: list) -> tuple[list, tuple]:
    """Split ``[(extent, strides...)]`` (outer to inner, no extent-1 axes)
    into the axes left as loops and one collapsed innermost run
    ``(extent, strides...)``: an axis joins the run when, in every view, its
    stride is the run's stride times the run's extent."""
    if not axes:
        return [], None
    n, *st = axes[-1]
    k = len(axes) - 1
    while k > 0:
        pn, *pst = axes[k - 1]
        if all(ps == s * n for ps, s in zip(pst, st)):
            n *= pn
            k -= 1
        else:
            break
    return axes[:k], (n, *st)


def _free_axes(node) -> tuple[list[int], list[int]]:
    """The axes of A and of B that are neither contracted nor batch, in
    order (the result's axes after the batch ones)."""
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    return ([i for i in range(a.ndim) if i not in ca and i not in ba],
            [i for i in range(b.ndim) if i not in cb and i not in bb])


def classify(node, av, bv, out) -> MatmulShape:
    """The matrix-multiply form of ``node`` with operands in views ``av``,
    ``bv`` and its result in ``out`` (see :class:`MatmulShape`)."""
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    free_a, free_b = _free_axes(node)
    nb, nfa = len(ba), len(free_a)
    sa, sb, sc = av.strides, bv.strides, out.strides
    outer = [(a.shape[x], sa[x], sb[y], sc[k]) for k, (x, y) in enumerate(zip(ba, bb)) if a.shape[x] != 1]
    m_axes = [(a.shape[x], sa[x], sc[nb + k]) for k, x in enumerate(free_a) if a.shape[x] != 1]
    n_axes = [(b.shape[y], sb[y], sc[nb + nfa + k]) for k, y in enumerate(free_b) if b.shape[y] != 1]
    k_axes = [(a.shape[x], sa[x], sb[y]) for x, y in zip(ca, cb) if a.shape[x] != 1]
    m_loops, m = _collapse(m_axes)
    n_loops, n = _collapse(n_axes)
    k_loops, k = _collapse(k_axes)
    outer += [(e, s_a, 0, s_c) for e, s_a, s_c in m_loops] + [(e, 0, s_b, s_c) for e, s_b, s_c in n_loops]
    m = m or (1, 0, 0)
    n = n or (1, 0, 0)
    k = k or (1, 0, 0)
    return MatmulShape(M=m[0], N=n[0], K=k[0], rsa=m[1], csa=k[1], rsb=k[2], csb=n[1], rsc=m[2], csc=n[2],
                       outer=tuple(outer), k_outer=tuple(k_loops))


def _sizes(node) -> tuple[int, int, int]:
    """(M, N, K) of a product before any collapse or swap."""
    a, b = node.inputs
    free_a, free_b = _free_axes(node)
    return (_prod(a.shape[i] for i in free_a), _prod(b.shape[i] for i in free_b),
            _prod(a.shape[i] for i in node.attr("contract")[0]))


def _scratch_slot(node) -> tuple[int, int]:
    """(elements of one set of packed panels, where its Bp starts): enough
    for the product in either operand order (the classified one, a slice of
    it, is never larger)."""
    m, n, k = _sizes(node)
    (a1, b1), (a2, b2) = scratch_elements(node.dtype, m, n, k), scratch_elements(node.dtype, n, m, k)
    return max(a1, a2) + max(b1, b2), max(a1, a2)


def _scratch(node) -> tuple[int, str]:
    """Packed panels for the generated kernel: one slot, or one per row
    slice when the product is large enough to be split among threads."""
    if ieee_active() or blas.gemm_mode() == "never":
        return 0, node.dtype
    m, n, k = _sizes(node)
    slots = MAX_SLICES if m * n * k >= GEMM_SPLIT_WORK else 1
    return slots * _scratch_slot(node)[0], node.dtype


def _prod(xs) -> int:
    p = 1
    for x in xs:
        p *= x
    return p


def _dot_general(em, kernel) -> None:
    plan = _plan_gemm(em, kernel)
    if plan is not None:
        _gemm_paths(em, kernel, plan)
        return
    _other_paths(em, kernel)
    if kernel.node.size:
        _overflow_safe(em, kernel)


def _generated(em, kernel) -> MatmulShape | None:
    """The classified product when the generated gemm computes it (not the
    loop nest, not BLAS)."""
    node = kernel.node
    a, bnode = node.inputs
    if ieee_active() or node.size == 0 or any(d == 0 for d in a.shape + bnode.shape):
        return None
    shape = classify(node, em.plan.location[a], em.plan.location[bnode], kernel.out)
    if blas.choose(shape, node.dtype) is not None or not _use_generated(shape):
        return None
    if kernel.scratch is None or kernel.scratch.shape[0] < _scratch(node)[0]:
        return None  # (never: the scratch rule sized it for this product)
    return shape


def _fuses(em, kernel) -> bool:
    """Whether the product runs ``kernel.epilogue`` fused: the generated gemm
    in one call (no loops outside the multiply), so that its blocks of C are
    blocks of the result."""
    shape = _generated(em, kernel)
    return shape is not None and not shape.outer and not shape.k_outer


@dataclass(frozen=True)
class _GemmPlan:
    """How the generated gemm computes a product: ``shape`` as classified,
    ``g`` as called (``C.T = B.T @ A.T`` when ``swap``), and the row slices
    of ``g`` that threads share (``rows`` each; one slice: not split)."""

    shape: MatmulShape
    g: MatmulShape
    swap: bool
    rows: int
    slices: int


def _plan_gemm(em, kernel) -> _GemmPlan | None:
    shape = _generated(em, kernel)
    if shape is None:
        return None
    bl = blocking(kernel.node.dtype)
    swap = shape.N < bl.NR and shape.M > shape.N  # the long side along the micro-kernel's vectors
    g = shape.transposed() if swap else shape
    if g.work < GEMM_SPLIT_WORK or g.outer or g.k_outer:
        return _GemmPlan(shape, g, swap, g.M, 1)
    rows = _round_up(-(-g.M // MAX_SLICES), bl.MR)   # whole register tiles per slice
    return _GemmPlan(shape, g, swap, rows, -(-g.M // rows))


def _split(em, kernel) -> int | None:
    """Row slices of a large product computed by the generated gemm (each
    with scratch panels of its own), shared among threads."""
    plan = _plan_gemm(em, kernel)
    return plan.slices if plan is not None and plan.slices > 1 else None


def _gemm_paths(em, kernel, p: _GemmPlan) -> None:
    """The product through the generated gemm: one call per entry of the
    loops outside the multiply, or (a large product split among threads)
    one call per row slice this thread runs.  The gemm reports whether a
    sum it stored is not finite; only then the overflow rule runs."""
    node = kernel.node
    g = p.g
    slot, panel_a = _scratch_slot(node)
    epilogue, which, ectx = None, I32(0), ir.Constant(ir.PointerType(), None)
    if kernel.epilogue is not None:
        epilogue = em.epilogue_function(kernel.epilogue, _result_index(node, p.shape.M, p.shape.N, p.swap), p.swap)
        which, ectx = I32(epilogues(em.module, node.dtype).add(epilogue)), em.bases.args
    fn = gemm_function(em.module, node.dtype)
    bad = em.alloca(I1)
    a, bnode = node.inputs
    av, bv = em.plan.location[a], em.plan.location[bnode]

    def call(pa, pb, pc, acc, m, row0, s):
        if p.swap:
            pa, pb = pb, pa
        ap = em._address(kernel.scratch, [I64(s * slot)], node.dtype)
        bp = em._address(kernel.scratch, [I64(s * slot + panel_a)], node.dtype)
        rc = em.b.call(fn, [I64(m), I64(g.N), I64(g.K), pa, I64(g.rsa), I64(g.csa), pb, I64(g.rsb), I64(g.csb),
                            pc, I64(g.rsc), I64(g.csc), acc, ap, bp, which, ectx, I64(row0)])
        em.b.store(em.b.or_(em.b.load(bad, typ=I1), em.b.icmp_signed("!=", rc, I32(0))), bad)

    em.b.store(ir.Constant(I1, 0), bad)
    part, em.outer_range = em.outer_range, None
    if p.slices == 1:
        if part is not None:
            raise AssertionError("a product split among threads must have row slices")
        _over_outer(em, kernel, p.shape, lambda pa, pb, pc, acc: call(pa, pb, pc, acc, g.M, 0, 0))
        if node.size:
            redo = None if kernel.epilogue is None else (lambda: em.loop_kernel(kernel.epilogue))
            _overflow_safe(em, kernel, em.b.load(bad, typ=I1), after_fix=redo)
        return
    # one slice after another, each checked on its own: the rows of a slice
    # are written by one thread only, whatever the thread count.  A call that
    # runs every slice (one thread) makes one gemm call of all rows instead:
    # the slices would pack B once each.  The sums are the same either way
    # (each element's terms in the same order), so results do not depend on
    # the thread count.
    lo, hi = part if part is not None else (I64(0), I64(p.slices))
    b = em.b

    def rows(r0, r1, s):
        b.store(ir.Constant(I1, 0), bad)
        # rows r0.. of the called gemm: rows of its A (A's rows, or B's
        # columns when swapped: g.rsa either way) and of its C
        pa = _base(em, av, node.dtype, av.offset + (0 if p.swap else r0 * g.rsa))
        pb = _base(em, bv, node.dtype, bv.offset + (r0 * g.rsa if p.swap else 0))
        pc = _base(em, kernel.out, node.dtype, kernel.out.offset + r0 * g.rsc)
        call(pa, pb, pc, I32(0), r1 - r0, r0, s)
        redo = None if epilogue is None else (
            lambda: b.call(epilogue, [em.bases.args, I64(r0), I64(r1 - r0), I64(0), I64(g.N)]))
        _overflow_safe(em, kernel, b.load(bad, typ=I1), rows=(p, r0, r1), after_fix=redo)

    every = b.and_(b.icmp_signed("==", lo, I64(0)), b.icmp_signed("==", hi, I64(p.slices)))
    with b.if_else(every) as (whole, some):
        with whole:
            rows(0, g.M, 0)
        with some:
            for s in range(p.slices):
                with b.if_then(b.and_(b.icmp_signed("<=", lo, I64(s)), b.icmp_signed(">", hi, I64(s)))):
                    rows(s * p.rows, min((s + 1) * p.rows, g.M), s)


def _base(em, view, dtype: str, offset: int):
    return em.b.gep(em.bases[view.buffer], [I64(offset)], source_etype=llvm_type(dtype, True))


def _other_paths(em, kernel) -> None:
    """BLAS (one call per entry of the loops outside the multiply) or the
    loop nest."""
    node = kernel.node
    a, bnode = node.inputs
    av, bv = em.plan.location[a], em.plan.location[bnode]
    trivial = ieee_active() or node.size == 0 or any(d == 0 for d in a.shape + bnode.shape)
    s = None if trivial else classify(node, av, bv, kernel.out)
    call = None if s is None else blas.choose(s, node.dtype)
    if call is None:
        _loop_nest(em, kernel)
    else:
        _over_outer(em, kernel, s, lambda pa, pb, pc, acc: call.emit(em, node.dtype, s, pa, pb, pc, acc))


def _result_index(node, M: int, N: int, swap: bool):
    """``index(b, r, c, flat)``: the result's index (a flat one, or one per
    axis) of row ``r``, column ``c`` of the gemm's C, for a product computed
    in one call (its free axes of A collapsed into M, those of B into N, in
    C order; batch axes of extent 1), with rows and columns swapped when the
    gemm computed ``C.T``."""
    nb = len(node.attr("batch")[0])
    free_a, free_b = ([x.shape[i] for i in axes] for x, axes in zip(node.inputs, _free_axes(node)))

    def unflatten(b, i, dims):
        """C-order indices of flat position ``i`` (< prod(dims)) in ``dims``."""
        out = []
        for k, d in enumerate(dims):
            inner = _prod(dims[k + 1:])
            if d == 1:
                out.append(I64(0))
                continue
            q = i if inner == 1 else b.udiv(i, I64(inner))
            outermost = all(e == 1 for e in dims[:k])  # q < d already
            out.append(q if outermost else b.urem(q, I64(d)))
        return out

    def index(b, r, c, flat):
        m, n = (c, r) if swap else (r, c)
        if flat:
            return [b.add(b.mul(m, I64(N), flags=["nsw"]), n, flags=["nsw"])]
        return [I64(0)] * nb + unflatten(b, m, free_a) + unflatten(b, n, free_b)
    return index


def _use_generated(shape: MatmulShape) -> bool:
    mode = blas.gemm_mode()
    if mode == "always":
        return True
    if mode == "never":
        return False
    # matrix-vector products: the loop nest's vectorised dot products need no packing
    return shape.M >= 4 and shape.N >= 4 and shape.work >= GEMM_MIN_WORK


def _over_outer(em, kernel, shape: MatmulShape, body) -> None:
    """``body(ptr A, ptr B, ptr C, accumulate i32)`` for every entry of the
    loops outside the multiply (batch axes, free axes that did not collapse,
    then contracted axes that did not collapse, which accumulate)."""
    node = kernel.node
    a, bnode = node.inputs
    av, bv, out = em.plan.location[a], em.plan.location[bnode], kernel.out
    b = em.b
    loops = list(shape.outer) + [(e, s_a, s_b, 0) for e, s_a, s_b in shape.k_outer]
    n_k = len(shape.k_outer)

    def base(view, offset):
        return b.gep(em.bases[view.buffer], [offset], source_etype=llvm_type(node.dtype, True))

    def inner(idx):
        offs = [I64(av.offset), I64(bv.offset), I64(out.offset)]
        for i, (_, *strides) in zip(idx, loops):
            offs = [o if s == 0 else b.add(o, b.mul(i, I64(s))) for o, s in zip(offs, strides)]
        acc = I32(0)
        for i in idx[len(idx) - n_k:] if n_k else []:
            acc = b.or_(acc, b.zext(b.icmp_signed("!=", i, I64(0)), I32))
        body(base(av, offs[0]), base(bv, offs[1]), base(out, offs[2]), acc)
    em.loop_nest([e for e, *_ in loops], inner)


def _operand_indices(node):
    """``indices(out_idx, c_idx) -> (A's index, B's index)`` of one term of
    the contraction: output element ``out_idx``, contracted position ``c_idx``."""
    a, bnode = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    free_a, free_b = _free_axes(node)
    nb, nfa = len(ba), len(free_a)

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
    return indices


def _overflow_safe(em, kernel, any_bad: ir.Value | None = None, rows=None, after_fix=None) -> None:
    """After any of the paths above stored the products' sums: an output
    element that is inf or NaN is summed again, its products (each rounded
    as IEEE rounds it: no fused multiply-add) scaled by a power of two, as
    the interpreter does (``_dot_impl`` in ``symdl/ir/ops/contract.py``; the
    rule is the one of sums, docs/ieee.md).  ``any_bad``: whether a stored
    sum was not finite, as the generated gemm reports it; without it, one
    scan of the output.  The re-summing runs only where something is not
    finite; ``after_fix`` then runs again what read the unfixed sums (a
    fused epilogue).  ``rows = (plan, r0, r1)``: only the rows r0..r1 of the
    called gemm's C (one slice of a product split among threads)."""
    node = kernel.node
    a, bnode = node.inputs
    av, bv = em.plan.location[a], em.plan.location[bnode]
    indices = _operand_indices(node)
    ty = llvm_type(node.dtype)
    contract_shape = [a.shape[x] for x in node.attr("contract")[0]]

    def rescan(out_idx, scale):
        acc = em.alloca(ty)
        em.b.store(ir.Constant(ty, 0.0), acc)

        def term(c_idx):
            ia, ib = indices(out_idx, c_idx)
            prod = em.b.fmul(em.load(av, ia, a.dtype), em.load(bv, ib, bnode.dtype))
            em.b.store(em.b.fadd(em.b.load(acc, typ=ty), em.b.fmul(prod, scale)), acc)
        em.loop_nest(contract_shape, term)
        return em.b.load(acc, typ=ty)
    if rows is None:
        recheck_sums(em, kernel.out, node.shape, node.dtype, rescan, any_bad=any_bad, after_fix=after_fix)
        return
    p, r0, r1 = rows
    g, out = p.g, kernel.out
    block = View(out.buffer, out.offset + r0 * g.rsc, (r1 - r0, g.N), (g.rsc, g.csc))
    index = _result_index(node, p.shape.M, p.shape.N, p.swap)

    def rescan_block(idx, scale):
        return rescan(index(em.b, em.b.add(idx[0], I64(r0)), idx[1], False), scale)
    recheck_sums(em, block, block.shape, node.dtype, rescan_block, any_bad=any_bad, after_fix=after_fix)


def _loop_nest(em, kernel) -> None:
    """With a wide enough b-free block the loops run batch, a-free,
    contracted, b-free (innermost over contiguous output: the vectoriser's
    favourite); otherwise each output element sums its contraction in a
    register."""
    node = kernel.node
    a, bnode = node.inputs
    av, bv = em.plan.location[a], em.plan.location[bnode]
    ca, ba = node.attr("contract")[0], node.attr("batch")[0]
    free_a, free_b = _free_axes(node)
    nb, nfa = len(ba), len(free_a)
    ty = llvm_type(node.dtype)
    b = em.b
    wide = 1
    for y in free_b:
        wide *= bnode.shape[y]

    indices = _operand_indices(node)

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


LOWERINGS["dot_general"] = Lowering(Placement.KERNEL, kernel=_dot_general, scratch=_scratch, fuses_epilogue=_fuses,
                                     split=_split)
