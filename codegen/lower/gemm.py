"""A generated matrix multiply: packed panels and a register-blocked,
vectorised micro-kernel (the BLIS design), emitted once per module and dtype
as an internal function that contraction kernels call.

``gemm(M, N, K, A, rsa, csa, B, rsb, csb, C, rsc, csc, accumulate, Ap, Bp)``
computes ``C = A @ B`` (``C += A @ B`` when ``accumulate`` is non-zero) for
an ``M x K`` matrix ``A`` with element strides ``(rsa, csa)``, a ``K x N``
matrix ``B`` with ``(rsb, csb)`` and an ``M x N`` result ``C`` with
``(rsc, csc)``.  Strides are arbitrary (zero and transposed included): the
packing copies absorb them, so every transposition the derivative rules
produce runs the same micro-kernel.  ``Ap`` and ``Bp`` are scratch memory
of :func:`scratch_elements` elements.

Loops, outermost first (``Blocking`` gives the sizes)::

    for jc in 0..N step NC:           B[:, jc:jc+NC] ...
      for pc in 0..K step KC:         ... rows pc:pc+KC packed into Bp (panels of NR columns)
        for ic in 0..M step MC:       A[ic:ic+MC, pc:pc+KC] packed into Ap (panels of MR rows)
          for jr in 0..nc step NR:
            for ir in 0..mc step MR:  micro-kernel: an MR x NR tile of C in registers,
                                      kc rank-1 updates (broadcast of A times vectors of B)

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

__all__ = ["Blocking", "blocking", "gemm_function", "scratch_elements", "GEMM_ARGS"]

PTR = ir.PointerType()
#: The argument list of the generated function (for readers of the IR).
GEMM_ARGS = ("M", "N", "K", "A", "rsa", "csa", "B", "rsb", "csb", "C", "rsc", "csc", "accumulate", "Ap", "Bp")


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


def _round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def scratch_elements(dtype: str, m: int, n: int, k: int) -> tuple[int, int]:
    """(elements of Ap, elements of Bp) for a product of these sizes: at most
    one cache block each, less for small products."""
    bl = blocking(dtype)
    kc = max(1, min(bl.KC, k))
    return min(bl.MC, _round_up(max(m, 1), bl.MR)) * kc, kc * min(bl.NC, _round_up(max(n, 1), bl.NR))


def gemm_function(module: ir.Module, dtype: str) -> ir.Function:
    """The module's gemm function for ``dtype``, emitted on first use."""
    name = f"symdl_gemm_{'f64' if dtype == 'float64' else 'f32'}"
    fn = module.globals.get(name)
    if fn is None:
        fn = _Gemm(module, dtype, name).fn
    return fn


class _Gemm:
    """Emits the gemm function (see the module docstring)."""

    def __init__(self, module: ir.Module, dtype: str, name: str):
        self.bl = bl = blocking(dtype)
        self.ty = ty = llvm_type(dtype)
        self.vec = ir.VectorType(ty, bl.VL)
        self.align = 8 if dtype == "float64" else 4
        args = [I64, I64, I64, PTR, I64, I64, PTR, I64, I64, PTR, I64, I64, I32, PTR, PTR]
        fn = ir.Function(module, ir.FunctionType(ir.VoidType(), args), name)
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.attributes.add("nounwind")
        for a, n in zip(fn.args, GEMM_ARGS):
            a.name = n
        for k in (3, 6, 9, 13, 14):
            fn.args[k].add_attribute("noalias")
        self.fn, self.module = fn, module
        fma_name = f"llvm.fmuladd.v{bl.VL}{'f64' if dtype == 'float64' else 'f32'}"
        self.fmuladd = module.globals.get(fma_name) or ir.Function(
            module, ir.FunctionType(self.vec, [self.vec] * 3), fma_name)
        entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(entry)
        self.entry = entry
        with self.b.goto_block(entry):
            self.tile = self.b.alloca(ty, size=I64(bl.MR * bl.NR))
            self.tile.align = 64
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
        (M, N, K, A, rsa, csa, B, rsb, csb, C, rsc, csc, acc, Ap, Bp) = self.fn.args
        acc_in = b.icmp_signed("!=", acc, I32(0))
        # K = 0 still runs one (empty) block so that C is written (zeros)
        k_end = b.select(b.icmp_signed("<", K, I64(1)), I64(1), K)

        def over_jc(jc):
            nc = self._min(I64(bl.NC), b.sub(N, jc))

            def over_pc(pc):
                kc = self._min(I64(bl.KC), b.sub(K, pc))
                kc = b.select(b.icmp_signed("<", kc, I64(0)), I64(0), kc)
                self._pack_b(B, rsb, csb, pc, jc, kc, nc, Bp)
                accumulate = b.or_(acc_in, b.icmp_signed(">", pc, I64(0)))

                def over_ic(ic):
                    mc = self._min(I64(bl.MC), b.sub(M, ic))
                    self._pack_a(A, rsa, csa, ic, pc, mc, kc, Ap)

                    def over_jr(jr):
                        nr = self._min(I64(bl.NR), b.sub(nc, jr))
                        bp = self._gep(Bp, self._mul(jr, kc))

                        def over_ir(ir_):
                            mr = self._min(I64(bl.MR), b.sub(mc, ir_))
                            ap = self._gep(Ap, self._mul(ir_, kc))
                            crow = self._add(ic, ir_)
                            ccol = self._add(jc, jr)
                            c = self._gep(C, self._add(self._mul(crow, rsc), self._mul(ccol, csc)))
                            self._micro(kc, ap, bp, c, rsc, csc, mr, nr, accumulate)
                        self._for(0, mc, bl.MR, over_ir)
                    self._for(0, nc, bl.NR, over_jr)
                self._for(0, M, bl.MC, over_ic)
            self._for(0, k_end, bl.KC, over_pc)
        self._for(0, N, bl.NC, over_jc)
        b.ret_void()

    def _pack_a(self, A, rsa, csa, ic, pc, mc, kc, Ap) -> None:
        """Ap[(r*kc + p)*MR + i] = A[ic + r*MR + i, pc + p], zero past row mc."""
        b, MR = self.b, self.bl.MR
        zero = ir.Constant(self.ty, 0.0)

        def panel(r0):
            valid = self._min(I64(MR), b.sub(mc, r0))
            dst0 = self._mul(r0, kc)   # r*MR*kc = r0*kc
            src_row = self._add(ic, r0)

            def col(p):
                dst = self._add(dst0, self._mul(p, I64(MR)))
                src = self._add(self._mul(src_row, rsa), self._mul(self._add(pc, p), csa))

                def copy(i):
                    v = b.load(self._gep(A, self._add(src, self._mul(i, rsa))), typ=self.ty)
                    b.store(v, self._gep(Ap, self._add(dst, i)))
                self._for(0, valid, 1, copy)
                self._for(valid, MR, 1, lambda i: b.store(zero, self._gep(Ap, self._add(dst, i))))
            self._for(0, kc, 1, col)
        self._for(0, mc, MR, panel)

    def _pack_b(self, B, rsb, csb, pc, jc, kc, nc, Bp) -> None:
        """Bp[(s*kc + p)*NR + j] = B[pc + p, jc + s*NR + j], zero past column nc."""
        b, NR = self.b, self.bl.NR
        zero = ir.Constant(self.ty, 0.0)

        def panel(s0):
            valid = self._min(I64(NR), b.sub(nc, s0))
            dst0 = self._mul(s0, kc)
            src_col = self._add(jc, s0)

            def row(p):
                dst = self._add(dst0, self._mul(p, I64(NR)))
                src = self._add(self._mul(self._add(pc, p), rsb), self._mul(src_col, csb))

                def copy(j):
                    v = b.load(self._gep(B, self._add(src, self._mul(j, csb))), typ=self.ty)
                    b.store(v, self._gep(Bp, self._add(dst, j)))
                self._for(0, valid, 1, copy)
                self._for(valid, NR, 1, lambda j: b.store(zero, self._gep(Bp, self._add(dst, j))))
            self._for(0, kc, 1, row)
        self._for(0, nc, NR, panel)

    # ------------------------------------------------------------ the micro-kernel
    def _micro(self, kc, ap, bp, c, rsc, csc, mr, nr, accumulate) -> None:
        """The MR x NR tile ``c`` (= or += its first mr x nr entries) from kc
        rank-1 updates of packed panels, accumulated in registers."""
        b, bl = self.b, self.bl
        MR, NV, VL = bl.MR, bl.NV, bl.VL
        zero_vec = ir.Constant(self.vec, [0.0] * VL)
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
            phi.add_incoming(zero_vec, pre)
            accs.append(phi)
        b.cbranch(b.icmp_signed("<", p, kc), inner, after)
        b.position_at_end(inner)
        bvecs = []
        bbase = self._mul(p, I64(bl.NR))
        for v in range(NV):
            ptr = self._gep(bp, self._add(bbase, I64(v * VL)))
            bvecs.append(b.load(ptr, typ=self.vec, align=self.align))
        abase = self._mul(p, I64(MR))
        new = []
        for i in range(MR):
            a = b.load(self._gep(ap, self._add(abase, I64(i))), typ=self.ty)
            splat = b.shuffle_vector(b.insert_element(undef, a, I32(0)), undef, splat_mask)
            for v in range(NV):
                new.append(b.call(self.fmuladd, [splat, bvecs[v], accs[i * NV + v]]))
        for phi, val in zip(accs, new):
            phi.add_incoming(val, inner)
        p.add_incoming(self._add(p, I64(1)), inner)
        b.branch(head)
        b.position_at_end(after)
        self._write_tile(accs, c, rsc, csc, mr, nr, accumulate)

    def _write_tile(self, accs, c, rsc, csc, mr, nr, accumulate) -> None:
        b, bl = self.b, self.bl
        MR, NV, VL, NR = bl.MR, bl.NV, bl.VL, bl.NR
        full = b.and_(b.and_(b.icmp_signed("==", mr, I64(MR)), b.icmp_signed("==", nr, I64(NR))),
                      b.icmp_signed("==", csc, I64(1)))
        with b.if_else(full) as (whole, edge):
            with whole:  # whole tile, rows contiguous: vector loads and stores
                for i in range(MR):
                    row = self._mul(I64(i), rsc)
                    for v in range(NV):
                        ptr = self._gep(c, self._add(row, I64(v * VL)))
                        val = accs[i * NV + v]
                        old = b.load(ptr, typ=self.vec, align=self.align)
                        val = b.select(accumulate, b.fadd(old, val), val)
                        b.store(val, ptr, align=self.align)
            with edge:  # through the stack tile, element by element with C's strides
                for i in range(MR):
                    for v in range(NV):
                        ptr = b.bitcast(self._gep(self.tile, I64(i * NR + v * VL)), ir.PointerType(self.vec))
                        b.store(accs[i * NV + v], ptr, align=self.align)

                def row(i):
                    def col(j):
                        t = b.load(self._gep(self.tile, self._add(self._mul(i, I64(NR)), j)), typ=self.ty)
                        ptr = self._gep(c, self._add(self._mul(i, rsc), self._mul(j, csc)))
                        b.store(b.select(accumulate, b.fadd(b.load(ptr, typ=self.ty), t), t), ptr)
                    self._for(0, nr, 1, col)
                self._for(0, mr, 1, row)

