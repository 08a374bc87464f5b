"""A generated matrix multiply: packed panels and a register-blocked,
vectorised micro-kernel (the BLIS design), emitted once per module and dtype
as an internal function that contraction kernels call.

``gemm(M, N, K, A, rsa, csa, B, rsb, csb, C, rsc, csc, accumulate, Ap, Bp,
epilogue, ectx, erow)`` computes ``C = A @ B`` (``C += A @ B`` when
``accumulate`` is non-zero) for an ``M x K`` matrix ``A`` with element
strides ``(rsa, csa)``, a ``K x N`` matrix ``B`` with ``(rsb, csb)`` and an
``M x N`` result ``C`` with ``(rsc, csc)``.  Strides are arbitrary (zero and
transposed included): the packing copies absorb them, so every
transposition the derivative rules produce runs the same micro-kernel.
``Ap`` and ``Bp`` are scratch memory of :func:`scratch_elements` elements.
It returns 1 when a value it stored in C is inf or NaN (checked on the
tile in registers, so the caller's overflow rule needs no second pass over
C; see ``recheck_sums``), else 0.

Epilogues: a non-zero ``epilogue`` is the number :meth:`Epilogues.add`
gave a function ``f(ectx, r0, rn, c0, cn)``; gemm calls it for each block
``C[r0:r0+rn, c0:c0+cn]`` as soon as that block is final (the last block of
K: up to MC rows by NC columns, still in cache; ``r0`` counted from row
``-erow``: a call that computes rows of a larger product passes its first
row), so elementwise work on the product (a layer's bias and activation) runs while
its values are in cache instead of in a second pass over memory.  The
numbers are resolved by a ``switch`` in one dispatch function per module
and dtype (direct calls: no function pointers in the IR).

Loops, outermost first (``Blocking`` gives the sizes)::

    for jc in 0..N step NC:           B[:, jc:jc+NC] ...
      for pc in 0..K step KC:         ... rows pc:pc+KC packed into Bp (panels of NR columns)
        for ic in 0..M step MC:       A[ic:ic+MC, pc:pc+KC] packed into Ap (panels of MR rows)
          for jr in 0..nc step NR:
            for ir in 0..mc step MR:  micro-kernel: an MR x NR tile of C in registers,
                                      kc rank-1 updates (broadcast of A times vectors of B)

Packing (one internal function for the panels of both operands) picks its
copy from the strides at run time: vector copies when the panel's rows are
contiguous, VL x VL blocks transposed in registers when its columns are, and
element by element otherwise (zero strides, strided slices).  Small products
(``DIRECT_A_MAX_WORK``, ``DIRECT_B_MAX_WORK``) skip packing where an operand
has a unit stride: the micro-kernel then broadcasts A's elements from A
itself and loads B's rows from B (only B's last, partial panel is packed).
Edge tiles are stored with masked vector stores (or, for a C with contiguous
columns, transposed in registers and stored a column at a time); masked
loads and clamped rows mean no path reads outside an operand.

The tile of C lives in ``MR * NR / VL`` vector registers; the block sizes
come from the host's vector width and register count (:func:`blocking`),
read from the features LLVM reports for this machine.  Sums over K run in
a fixed order for given sizes (the same on every call); ``ieee=True``
compiles never come here (they keep the loop nest that sums left to right).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from llvmlite import ir

from .scalar import I32, I64, llvm_type

__all__ = ["Blocking", "blocking", "gemm_function", "scratch_elements", "GEMM_ARGS", "EPILOGUE_ARGS",
           "Epilogues", "epilogues"]

PTR = ir.PointerType()
#: The argument list of the generated function (for readers of the IR).
GEMM_ARGS = ("M", "N", "K", "A", "rsa", "csa", "B", "rsb", "csb", "C", "rsc", "csc", "accumulate", "Ap", "Bp",
             "epilogue", "ectx", "erow")
#: The arguments of an epilogue function: the caller's context pointer and
#: the final block of C (first row, rows, first column, columns).
EPILOGUE_ARGS = ("ectx", "r0", "rn", "c0", "cn")
EPILOGUE_TYPE = ir.FunctionType(ir.VoidType(), [PTR, I64, I64, I64, I64])


@dataclass(frozen=True)
class Blocking:
    """Register tile ``MR x NR`` (``NR = NV * VL``: NV vectors of VL lanes
    per row of the tile) and cache blocks ``MC x KC`` (packed A, kept in L2)
    and ``KC x NC`` (packed B)."""

    VL: int
    NV: int
    MR: int
    MC: int
    KC: int
    NC: int

    @property
    def NR(self) -> int:
        return self.NV * self.VL


def _vector_bits(features: str) -> tuple[int, int]:
    """(vector register bits, number of vector registers) from LLVM's
    feature string of the host (``+avx512f,+avx2,...``)."""
    feats = set(f[1:] for f in features.split(",") if f.startswith("+"))
    if "avx512f" in feats:
        return 512, 32
    if "avx" in feats or "avx2" in feats:
        return 256, 16
    if "neon" in feats or "sve" in feats:
        return 128, 32
    return 128, 16  # SSE2 (every x86-64) and anything unknown


@functools.cache
def blocking(dtype: str, features: str | None = None) -> Blocking:
    """The blocking for ``dtype`` on the host (or on a feature string).

    >>> b = blocking("float64", "+sse2")
    >>> (b.VL, b.NR, b.MR)
    (2, 4, 6)
    """
    if features is None:
        from codegen.llvm import host_target
        features = host_target().features
    bits, regs = _vector_bits(features)
    item = 8 if dtype == "float64" else 4
    vl = bits // (8 * item)
    # Two vectors per tile row; MR rows so that the MR*2 accumulators, two
    # vectors of B and one broadcast fit in the register file (BLIS's 6x16
    # on AVX2, 12x32 on AVX-512 for float32).
    mr = 12 if regs >= 32 else 6
    kc = 256
    mc = mr * max(1, (96 * 1024) // (kc * item * mr))   # packed A: about 96 KB (L2)
    nc = 2048 if item == 4 else 1024                    # packed B: 2 MB (L2/L3)
    return Blocking(VL=vl, NV=2, MR=mr, MC=mc, KC=kc, NC=nc)


#: Products of at most this many multiply-adds read A (a unit stride either
#: way) and B (contiguous rows) in place, without packing (OpenBLAS's "small
#: matrix" kernels do the same): there the copies cost about as much as the
#: arithmetic they feed (96^3: 1.3x numpy's time packed, 1.1x in place).
#: Larger products keep packing: rows of B read in place at a long stride
#: fight over cache sets (10 x 4096 x 4096 took 1.4x longer in place).
DIRECT_A_MAX_WORK = 128 ** 3
DIRECT_B_MAX_WORK = 128 ** 3


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def scratch_elements(dtype: str, m: int, n: int, k: int) -> tuple[int, int]:
    """(elements of Ap, elements of Bp) for a product of these sizes: at most
    one cache block each, less for small products."""
    bl = blocking(dtype)
    kc = max(1, min(bl.KC, k))
    return min(bl.MC, _round_up(max(m, 1), bl.MR)) * kc, kc * min(bl.NC, _round_up(max(n, 1), bl.NR))


def _name(dtype: str) -> str:
    return f"symdl_gemm_{'f64' if dtype == 'float64' else 'f32'}"


def gemm_function(module: ir.Module, dtype: str) -> ir.Function:
    """The module's gemm function for ``dtype``, emitted on first use."""
    fn = module.globals.get(_name(dtype))
    if fn is None:
        fn = _Gemm(module, dtype, _name(dtype)).fn
    return fn


class Epilogues:
    """The dispatch function ``NAME_epilogue(i32 which, ectx, r0, rn, c0, cn)``
    of one module and dtype: a ``switch`` on ``which`` whose cases call the
    epilogue functions added so far (cases are added as kernels are emitted;
    llvmlite writes the IR text only at the end).  The state lives in the
    module itself (the switch's cases), so nothing outlives the module."""

    def __init__(self, module: ir.Module, dtype: str):
        name = _name(dtype) + "_epilogue"
        fn = module.globals.get(name)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I32, *EPILOGUE_TYPE.args]), name)
            fn.linkage = "internal"
            fn.attributes.add("nounwind")
            b = ir.IRBuilder(fn.append_basic_block("entry"))
            done = fn.append_basic_block("done")
            b.switch(fn.args[0], done)
            b.position_at_end(done)
            b.ret_void()
        self.fn = fn
        self.switch = fn.blocks[0].terminator

    def add(self, epilogue: ir.Function) -> int:
        """The number (>= 1) that makes gemm call ``epilogue``."""
        which = len(self.switch.cases) + 1
        block = self.fn.append_basic_block(f"case{which}")
        b = ir.IRBuilder(block)
        b.call(epilogue, list(self.fn.args[1:]))
        b.ret_void()
        self.switch.add_case(I32(which), block)
        return which


def epilogues(module: ir.Module, dtype: str) -> Epilogues:
    """The module's epilogue dispatch for ``dtype``."""
    return Epilogues(module, dtype)


class _Gemm:
    """Emits the gemm function (see the module docstring)."""

    def __init__(self, module: ir.Module, dtype: str, name: str):
        self.bl = bl = blocking(dtype)
        self.ty = ty = llvm_type(dtype)
        self.vec = ir.VectorType(ty, bl.VL)
        self.align = 8 if dtype == "float64" else 4
        args = [I64, I64, I64, PTR, I64, I64, PTR, I64, I64, PTR, I64, I64, I32, PTR, PTR, I32, PTR, I64]
        fn = ir.Function(module, ir.FunctionType(I32, args), name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        for a, n in zip(fn.args, GEMM_ARGS):
            a.name = n
        # A, B and the scratch panels are noalias; C is not: an epilogue
        # (inlined here by LLVM) reads C through the workspace pointer
        for k in (3, 6, 13, 14):
            fn.args[k].add_attribute("noalias")
        self.fn, self.module = fn, module
        self._vname = f"v{bl.VL}{'f64' if dtype == 'float64' else 'f32'}"
        self.zero_vec = ir.Constant(self.vec, [0.0] * bl.VL)
        fma_name = f"llvm.fmuladd.v{bl.VL}{'f64' if dtype == 'float64' else 'f32'}"
        self.fmuladd = module.globals.get(fma_name) or ir.Function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), fma_name)
        self.pack = self._pack_function(name + "_pack")
        self.dispatch = Epilogues(module, dtype).fn
        entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.entry = entry
        with self.b.goto_block(entry):
            self.tile = self.b.alloca(ty, size=I64(bl.MR * bl.NR))
            self.tile.align = 64
            self.bad = self.b.alloca(ir.IntType(1))  # a stored value was inf or NaN
            self.b.store(ir.Constant(ir.IntType(1), 0), self.bad)
        self._body()

    # ------------------------------------------------------------ helpers
    def _for(self, lo, hi, step, body) -> None:
        """``body(i)`` for ``i = lo, lo+step, ... < hi`` (i64 values or ints)."""
        b = self.b
        lo = I64(lo) if isinstance(lo, int) else lo
        hi = I64(hi) if isinstance(hi, int) else hi
        pre = b.block
        head = self.fn.append_basic_block("g_loop")
        inner = self.fn.append_basic_block("g_body")
        after = self.fn.append_basic_block("g_next")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), inner, after)
        b.position_at_end(inner)
        body(i)
        i.add_incoming(b.add(i, I64(step), flags=["nsw"]), b.block)
        b.branch(head)
        b.position_at_end(after)

    def _min(self, x, y):
        return self.b.select(self.b.icmp_signed("<", x, y), x, y)

    def _gep(self, base, off):
        return self.b.gep(base, [off], source_etype=self.ty)

    def _mul(self, x, y):
        return self.b.mul(x, y, flags=["nsw"])

    def _add(self, x, y):
        return self.b.add(x, y, flags=["nsw"])

    # ------------------------------------------------------------ the loops
    def _body(self) -> None:
        b, bl = self.b, self.bl
        (M, N, K, A, rsa, csa, B, rsb, csb, C, rsc, csc, acc, Ap, Bp, epilogue, ectx, erow) = self.fn.args
        has_epilogue = b.icmp_signed("!=", epilogue, I32(0))
        acc_in = b.icmp_signed("!=", acc, I32(0))
        # K = 0 still runs one (empty) block so that C is written (zeros)
        k_end = b.select(b.icmp_signed("<", K, I64(1)), I64(1), K)
        # small products: B with contiguous rows read in place (rows ldb = rsb
        # apart instead of NR), A with a unit stride read in place (broadcasts
        # with its strides); see DIRECT_A_MAX_WORK
        work = self._mul(self._mul(M, N), K)
        direct = b.and_(b.icmp_signed("==", csb, I64(1)), b.icmp_signed("<=", work, I64(DIRECT_B_MAX_WORK)))
        direct_a = b.and_(b.icmp_signed("<=", work, I64(DIRECT_A_MAX_WORK)),
                          b.or_(b.icmp_signed("==", csa, I64(1)), b.icmp_signed("==", rsa, I64(1))))

        def over_jc(jc):
            nc = self._min(I64(bl.NC), b.sub(N, jc))

            def over_pc(pc):
                kc = self._min(I64(bl.KC), b.sub(K, pc))
                kc = b.select(b.icmp_signed("<", kc, I64(0)), I64(0), kc)
                # direct: whole panels of B read in place, only the last partial one packed
                nfull = b.sub(nc, b.srem(nc, I64(bl.NR)))
                packed_from = b.select(direct, nfull, I64(0))
                self._pack_b(B, rsb, csb, pc, self._add(jc, packed_from), kc, b.sub(nc, packed_from), Bp)
                accumulate = b.or_(acc_in, b.icmp_signed(">", pc, I64(0)))
                # the last block of K: what it stores is final (K = 0: the one empty block)
                final = b.and_(has_epilogue, b.icmp_signed(">=", self._add(pc, kc), K))
                b_here = self._gep(B, self._add(self._mul(pc, rsb), jc))

                def over_ic(ic):
                    mc = self._min(I64(bl.MC), b.sub(M, ic))
                    with b.if_then(b.not_(direct_a)):
                        self._pack_a(A, rsa, csa, ic, pc, mc, kc, Ap)
                    a_here = self._gep(A, self._add(self._mul(ic, rsa), self._mul(pc, csa)))

                    def over_jr(jr):
                        nr = self._min(I64(bl.NR), b.sub(nc, jr))
                        in_place = b.and_(direct, b.icmp_signed("<", jr, nfull))
                        bp = b.select(in_place, self._gep(b_here, jr),
                                      self._gep(Bp, self._mul(b.sub(jr, packed_from), kc)))
                        ldb = b.select(in_place, rsb, I64(bl.NR))

                        def over_ir(ir_):
                            mr = self._min(I64(bl.MR), b.sub(mc, ir_))
                            ap = b.select(direct_a, self._gep(a_here, self._mul(ir_, rsa)),
                                          self._gep(Ap, self._mul(ir_, kc)))
                            crow = self._add(ic, ir_)
                            ccol = self._add(jc, jr)
                            c = self._gep(C, self._add(self._mul(crow, rsc), self._mul(ccol, csc)))
                            self._micro(kc, ap, direct_a, rsa, csa, bp, ldb, c, rsc, csc, mr, nr, accumulate)
                        self._for(0, mc, bl.MR, over_ir)
                    self._for(0, nc, bl.NR, over_jr)
                    # this block of C is final and in cache: the epilogue, over
                    # whole rows of the block (long runs of the result's memory)
                    with b.if_then(final):
                        b.call(self.dispatch, [epilogue, ectx, self._add(erow, ic), mc, jc, nc])
                self._for(0, M, bl.MC, over_ic)
            self._for(0, k_end, bl.KC, over_pc)
        self._for(0, N, bl.NC, over_jc)
        b.ret(b.zext(b.load(self.bad, typ=ir.IntType(1)), I32))

    def _pack_a(self, A, rsa, csa, ic, pc, mc, kc, Ap) -> None:
        """Ap[(r*kc + p)*MR + i] = A[ic + r*MR + i, pc + p], zero past row mc."""
        b, MR = self.b, self.bl.MR
        src0 = self._add(self._mul(ic, rsa), self._mul(pc, csa))

        def panel(r0):
            valid = self._min(I64(MR), b.sub(mc, r0))
            src = self._gep(A, self._add(src0, self._mul(r0, rsa)))
            b.call(self.pack, [src, rsa, csa, I64(MR), valid, kc, self._gep(Ap, self._mul(r0, kc))])
        self._for(0, mc, MR, panel)

    def _pack_b(self, B, rsb, csb, pc, jc, kc, nc, Bp) -> None:
        """Bp[(s*kc + p)*NR + j] = B[pc + p, jc + s*NR + j], zero past column nc."""
        b, NR = self.b, self.bl.NR
        src0 = self._add(self._mul(pc, rsb), self._mul(jc, csb))

        def panel(s0):
            valid = self._min(I64(NR), b.sub(nc, s0))
            src = self._gep(B, self._add(src0, self._mul(s0, csb)))
            b.call(self.pack, [src, csb, rsb, I64(NR), valid, kc, self._gep(Bp, self._mul(s0, kc))])
        self._for(0, nc, NR, panel)

    def _pack_function(self, name: str) -> ir.Function:
        """``pack(src, sr, sk, R, valid, kc, dst)``: one packed panel,
        ``dst[p*R + i] = src[i*sr + p*sk]`` for rows ``i < valid`` and
        ``p < kc``, zeros in rows ``valid <= i < R``.  One function for the
        panels of A (R = MR) and of B (R = NR): its three copies, chosen by
        the strides at run time, are the bulk of the code.  Rows contiguous
        in memory (``sr == 1``): vector loads of a column of the panel;
        columns contiguous (``sk == 1``): VL x VL blocks read along the
        contiguous axis and transposed in registers; anything else (zero
        strides, strided slices): element by element.  Masked loads never
        touch memory past row ``valid`` or column ``kc``."""
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR, I64, I64, I64, I64, I64, PTR]), name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        for a, n in zip(fn.args, ("src", "sr", "sk", "R", "valid", "kc", "dst")):
            a.name = n
        fn.args[0].add_attribute("noalias")
        fn.args[6].add_attribute("noalias")
        saved = self.fn, getattr(self, "b", None)
        self.fn = fn
        self.b = b = ir.IRBuilder(fn.append_basic_block("entry"))
        src, sr, sk, R, valid, kc, dst = fn.args
        with b.if_else(b.icmp_signed("==", sr, I64(1))) as (rows_contig, other):
            with rows_contig:
                self._pack_rows_contiguous(src, sk, R, valid, kc, dst)
            with other:
                with b.if_else(b.icmp_signed("==", sk, I64(1))) as (cols_contig, general):
                    with cols_contig:
                        self._pack_transposing(src, sr, R, valid, kc, dst)
                    with general:
                        self._pack_scalar(src, sr, sk, R, valid, kc, dst)
        b.ret_void()
        self.fn, self.b = saved
        return fn

    def _lanes_below(self, n, offset: int = 0):
        """The mask ``lane + offset < n`` (n an i64 value)."""
        VL = self.bl.VL
        lanes = ir.Constant(ir.VectorType(I64, VL), [j + offset for j in range(VL)])
        return self.b.icmp_signed("<", lanes, self._splat(n, I64))

    def _splat(self, x, ty):
        VL = self.bl.VL
        vty = ir.VectorType(ty, VL)
        undef = ir.Constant(vty, ir.Undefined)
        one = self.b.insert_element(undef, x, I32(0))
        return self.b.shuffle_vector(one, undef, ir.Constant(ir.VectorType(I32, VL), [0] * VL))

    def _masked_load(self, ptr, mask):
        name = f"llvm.masked.load.{self._vname}.p0"
        fn = self.module.globals.get(name) or ir.Function(
            self.module, ir.FunctionType(self.vec, [PTR, I32, mask.type, self.vec]), name)
        return self.b.call(fn, [ptr, I32(self.align), mask, self.zero_vec])

    def _not_finite(self, val):
        """Lanes of ``val`` that are inf or NaN (``x - x`` is NaN exactly there)."""
        return self.b.fcmp_unordered("uno", self.b.fsub(val, val), self.zero_vec)

    def _note_bad(self, lanes: list) -> None:
        """OR the i1 vectors ``lanes`` (stored values that are not finite)
        into the function's flag: one reduction per tile."""
        b = self.b
        acc = lanes[0]
        for x in lanes[1:]:
            acc = b.or_(acc, x)
        i1v = acc.type
        name = f"llvm.vector.reduce.or.v{self.bl.VL}i1"
        fn = self.module.globals.get(name) or ir.Function(self.module, ir.FunctionType(ir.IntType(1), [i1v]), name)
        b.store(b.or_(b.load(self.bad, typ=ir.IntType(1)), b.call(fn, [acc])), self.bad)

    def _masked_store(self, val, ptr, mask) -> None:
        name = f"llvm.masked.store.{self._vname}.p0"
        fn = self.module.globals.get(name) or ir.Function(
            self.module, ir.FunctionType(ir.VoidType(), [self.vec, PTR, I32, mask.type]), name)
        self.b.call(fn, [val, ptr, I32(self.align), mask])

    def _pack_rows_contiguous(self, src, sk, R, valid, kc, dst) -> None:
        b = self.b

        def chunk(c0):
            load_mask = self._lanes_below(b.sub(valid, c0))
            store_mask = self._lanes_below(b.sub(R, c0))

            def col(p):
                v = self._masked_load(self._gep(src, self._add(self._mul(p, sk), c0)), load_mask)
                self._masked_store(v, self._gep(dst, self._add(self._mul(p, R), c0)), store_mask)
            self._for(0, kc, 1, col)
        self._for(0, R, self.bl.VL, chunk)

    def _transpose(self, rows: list) -> list:
        """The VL x VL transpose of ``rows`` (VL vectors): log2(VL) rounds of
        swapping the off-diagonal blocks of halving size (two-input shuffles)."""
        b, VL = self.b, self.bl.VL
        v = list(rows)
        d = VL // 2
        while d >= 1:
            lo = ir.Constant(ir.VectorType(I32, VL), [j if not j & d else VL + j - d for j in range(VL)])
            hi = ir.Constant(ir.VectorType(I32, VL), [j + d if not j & d else VL + j for j in range(VL)])
            for i in range(VL):
                if not i & d:
                    v[i], v[i + d] = b.shuffle_vector(v[i], v[i + d], lo), b.shuffle_vector(v[i], v[i + d], hi)
            d //= 2
        return v

    def _pack_transposing(self, src, sr, R, valid, kc, dst) -> None:
        b, VL = self.b, self.bl.VL

        def block(p0):
            kv = b.sub(kc, p0)
            kmask = self._lanes_below(kv)

            def group(g0):
                # a whole VL x VL block of valid rows (valid <= R): plain loads and stores
                whole = b.and_(b.icmp_signed(">=", kv, I64(VL)), b.icmp_signed("<=", self._add(g0, I64(VL)), valid))
                with b.if_else(whole) as (fast, edge):
                    with fast:
                        rows = [b.load(self._gep(src, self._add(self._mul(self._add(g0, I64(i)), sr), p0)),
                                       typ=self.vec, align=self.align) for i in range(VL)]
                        for t, col in enumerate(self._transpose(rows)):
                            ptr = self._gep(dst, self._add(self._mul(self._add(p0, I64(t)), R), g0))
                            b.store(col, ptr, align=self.align)
                    with edge:
                        edge_block(g0)

            def edge_block(g0):
                rows = []
                for i in range(VL):
                    row = self._add(g0, I64(i))
                    mask = b.and_(kmask, self._splat(b.icmp_signed("<", row, valid), ir.IntType(1)))
                    rows.append(self._masked_load(self._gep(src, self._add(self._mul(row, sr), p0)), mask))
                cols = self._transpose(rows)
                in_panel = self._lanes_below(b.sub(R, g0))
                for t in range(VL):
                    ptr = self._gep(dst, self._add(self._mul(self._add(p0, I64(t)), R), g0))
                    mask = b.and_(in_panel, self._splat(b.icmp_signed("<", I64(t), kv), ir.IntType(1)))
                    self._masked_store(cols[t], ptr, mask)
            self._for(0, R, VL, group)
        self._for(0, kc, VL, block)

    def _pack_scalar(self, src, sr, sk, R, valid, kc, dst) -> None:
        b = self.b
        zero = ir.Constant(self.ty, 0.0)

        def col(p):
            d = self._mul(p, R)
            s = self._mul(p, sk)

            def copy(i):
                v = b.load(self._gep(src, self._add(s, self._mul(i, sr))), typ=self.ty)
                b.store(v, self._gep(dst, self._add(d, i)))
            self._for(0, valid, 1, copy)
            self._for(valid, R, 1, lambda i: b.store(zero, self._gep(dst, self._add(d, i))))
        self._for(0, kc, 1, col)

    # ------------------------------------------------------------ the micro-kernel
    def _micro(self, kc, ap, a_direct, rsa, csa, bp, ldb, c, rsc, csc, mr, nr, accumulate) -> None:
        """The MR x NR tile ``c`` (= or += its first mr x nr entries) from kc
        rank-1 updates, accumulated in registers.  ``ap`` is the packed panel
        of A, or (``a_direct``) A itself, read with its strides: rows past
        ``mr`` then repeat row mr - 1 (never a read outside A; those rows of
        the tile are not stored)."""
        b, MR = self.b, self.bl.MR
        with b.if_else(a_direct) as (direct, packed):
            with direct:
                last = b.sub(mr, I64(1))
                rows = [self._gep(ap, self._mul(self._min(I64(i), last), rsa)) for i in range(MR)]
                accs_d = self._rank1_loop(kc, lambda i, p: self._gep(rows[i], self._mul(p, csa)), bp, ldb)
                end_d = b.block
            with packed:
                accs_p = self._rank1_loop(kc, lambda i, p: self._gep(ap, self._add(self._mul(p, I64(MR)), I64(i))),
                                          bp, ldb)
                end_p = b.block
        accs = []
        for x, y in zip(accs_d, accs_p):
            phi = b.phi(self.vec)
            phi.add_incoming(x, end_d)
            phi.add_incoming(y, end_p)
            accs.append(phi)
        self._write_tile(accs, c, rsc, csc, mr, nr, accumulate)

    def _rank1_loop(self, kc, a_ptr, bp, ldb) -> list:
        """The MR*NV accumulators after kc rank-1 updates: broadcasts of
        ``a_ptr(i, p)`` times the NV vectors of B's row p (at bp + p*ldb)."""
        b, bl = self.b, self.bl
        MR, NV, VL = bl.MR, bl.NV, bl.VL
        splat_mask = ir.Constant(ir.VectorType(I32, VL), [0] * VL)
        undef = ir.Constant(self.vec, ir.Undefined)

        pre = b.block
        head = self.fn.append_basic_block("mk_loop")
        inner = self.fn.append_basic_block("mk_body")
        after = self.fn.append_basic_block("mk_done")
        b.branch(head)
        b.position_at_end(head)
        p = b.phi(I64)
        p.add_incoming(I64(0), pre)
        accs = []
        for _ in range(MR * NV):
            phi = b.phi(self.vec)
            phi.add_incoming(self.zero_vec, pre)
            accs.append(phi)
        b.cbranch(b.icmp_signed("<", p, kc), inner, after)
        b.position_at_end(inner)
        bvecs = []
        bbase = self._mul(p, ldb)
        for v in range(NV):
            ptr = self._gep(bp, self._add(bbase, I64(v * VL)))
            bvecs.append(b.load(ptr, typ=self.vec, align=self.align))
        new = []
        for i in range(MR):
            a = b.load(a_ptr(i, p), typ=self.ty)
            splat = b.shuffle_vector(b.insert_element(undef, a, I32(0)), undef, splat_mask)
            for v in range(NV):
                new.append(b.call(self.fmuladd, [splat, bvecs[v], accs[i * NV + v]]))
        for phi, val in zip(accs, new):
            phi.add_incoming(val, inner)
        p.add_incoming(self._add(p, I64(1)), inner)
        b.branch(head)
        b.position_at_end(after)
        return accs

    def _write_tile(self, accs, c, rsc, csc, mr, nr, accumulate) -> None:
        b, bl = self.b, self.bl
        MR, NV, VL, NR = bl.MR, bl.NV, bl.VL, bl.NR
        full = b.and_(b.and_(b.icmp_signed("==", mr, I64(MR)), b.icmp_signed("==", nr, I64(NR))),
                      b.icmp_signed("==", csc, I64(1)))
        with b.if_else(full) as (whole, edge):
            with whole:  # whole tile, rows contiguous: vector loads and stores
                bad = []
                for i in range(MR):
                    row = self._mul(I64(i), rsc)
                    for v in range(NV):
                        ptr = self._gep(c, self._add(row, I64(v * VL)))
                        val = accs[i * NV + v]
                        old = b.load(ptr, typ=self.vec, align=self.align)
                        val = b.select(accumulate, b.fadd(old, val), val)
                        b.store(val, ptr, align=self.align)
                        bad.append(self._not_finite(val))
                self._note_bad(bad)
            with edge:
                with b.if_else(b.icmp_signed("==", csc, I64(1))) as (rows, strided):
                    with rows:  # rows contiguous: masked vector loads and stores, nothing past mr x nr touched
                        bad = []
                        for v in range(NV):
                            cols = self._lanes_below(nr, v * VL)
                            for i in range(MR):
                                mask = b.and_(cols, self._splat(b.icmp_signed("<", I64(i), mr), ir.IntType(1)))
                                ptr = self._gep(c, self._add(self._mul(I64(i), rsc), I64(v * VL)))
                                val = accs[i * NV + v]
                                old = self._masked_load(ptr, mask)
                                val = b.select(accumulate, b.fadd(old, val), val)
                                self._masked_store(val, ptr, mask)
                                bad.append(b.and_(mask, self._not_finite(val)))
                        self._note_bad(bad)
                    with strided:
                        with b.if_else(b.icmp_signed("==", rsc, I64(1))) as (cols, other):
                            with cols:
                                self._write_columns(accs, c, csc, mr, nr, accumulate)
                            with other:  # through the stack tile, element by element with C's strides
                                self._write_strided(accs, c, rsc, csc, mr, nr, accumulate)

    def _write_columns(self, accs, c, csc, mr, nr, accumulate) -> None:
        """A tile of a C whose columns are contiguous (a transposed result, as
        when the operands were swapped to put the long side along the
        vectors): the tile transposed in registers, VL rows at a time, then
        one masked store per column."""
        b, bl = self.b, self.bl
        MR, NV, VL = bl.MR, bl.NV, bl.VL
        bad = []
        for g0 in range(0, MR, VL):
            in_rows = self._lanes_below(mr, g0)
            for v in range(NV):
                rows = [accs[(g0 + i) * NV + v] if g0 + i < MR else self.zero_vec for i in range(VL)]
                for t, col in enumerate(self._transpose(rows)):
                    j = v * VL + t
                    mask = b.and_(in_rows, self._splat(b.icmp_signed("<", I64(j), nr), ir.IntType(1)))
                    ptr = self._gep(c, self._add(self._mul(I64(j), csc), I64(g0)))
                    old = self._masked_load(ptr, mask)
                    val = b.select(accumulate, b.fadd(old, col), col)
                    self._masked_store(val, ptr, mask)
                    bad.append(b.and_(mask, self._not_finite(val)))
        self._note_bad(bad)

    def _write_strided(self, accs, c, rsc, csc, mr, nr, accumulate) -> None:
        """An edge tile of a C whose rows are not contiguous (a transposed
        result): through the stack tile, element by element with C's strides."""
        b, bl = self.b, self.bl
        MR, NV, VL, NR = bl.MR, bl.NV, bl.VL, bl.NR
        for i in range(MR):
            for v in range(NV):
                ptr = b.bitcast(self._gep(self.tile, I64(i * NR + v * VL)), ir.PointerType(self.vec))
                b.store(accs[i * NV + v], ptr, align=self.align)

        def row(i):
            def col(j):
                t = b.load(self._gep(self.tile, self._add(self._mul(i, I64(NR)), j)), typ=self.ty)
                ptr = self._gep(c, self._add(self._mul(i, rsc), self._mul(j, csc)))
                val = b.select(accumulate, b.fadd(b.load(ptr, typ=self.ty), t), t)
                b.store(val, ptr)
                bad = b.fcmp_unordered("uno", b.fsub(val, val), ir.Constant(self.ty, 0.0))
                b.store(b.or_(b.load(self.bad, typ=ir.IntType(1)), bad), self.bad)
            self._for(0, nr, 1, col)
        self._for(0, mr, 1, row)

