"""Lowering of dense linear algebra: one kernel per op, looping over the batch
(leading axes) and running a textbook algorithm on each matrix.

* ``solve``: Gaussian elimination with partial pivoting (rows of the
  right-hand side swapped along), then back substitution; the matrix is
  factorised in scratch memory.
* ``det`` / ``logabsdet`` / ``det_sign``: the same elimination, keeping the
  product (or the sum of logarithms, or the sign) of the pivots.
* ``cholesky``: the Cholesky-Banachiewicz recurrence, reading the lower
  triangle.
* ``eigh``: cyclic Jacobi rotations on a scratch copy of the symmetric
  matrix (simple and accurate to a few ulps of the norm; fine for the small
  matrices of models), then eigenvalues sorted ascending and each
  eigenvector's largest component made positive, as the interpreter does.

No LAPACK: the matrices of symdl's users are small, and a dependency would
follow every exported library.  Matrices numpy refuses (exactly singular in
``solve``, not positive definite in ``cholesky``) and matrices with a NaN or
infinite entry give NaN, as in the interpreter.  Arithmetic is in the op's
dtype, like numpy's float32 routines, except ``eigh``, which rotates in
float64 (its many rotations would lose a digit in float32).
"""

from __future__ import annotations

from llvmlite import ir

from .scalar import I1, I64, llvm_type
from .table import LOWERINGS, Lowering, Placement

_MAX_SWEEPS = 60  # cyclic Jacobi converges quadratically: 6-12 sweeps in practice


def _i64(v) -> ir.Value:
    return I64(v) if isinstance(v, int) else v


class _Matrices:
    """Structured control flow and matrix access for one kernel: mutable
    scalars (stack slots), counted loops with run-time bounds, branches, and
    reads/writes of element (i, j) of the current batch entry of a view."""

    def __init__(self, em, kernel, compute: str | None = None):
        self.em, self.b, self.kernel = em, em.b, kernel
        self.node = kernel.node
        self.dtype = self.node.dtype              # of the operands and the result in memory
        self.compute = compute or self.dtype      # of the arithmetic and the scratch memory
        self.ty = llvm_type(self.compute)
        self.batch: list = []

    # scalars
    def const(self, v: float) -> ir.Value:
        return ir.Constant(self.ty, float(v))

    def var(self, init, ty=None) -> ir.Value:
        slot = self.em.alloca(ty or init.type)
        self.b.store(init, slot)
        return slot

    def get(self, slot) -> ir.Value:
        return self.b.load(slot, typ=slot.allocated_type)

    def set(self, slot, value) -> None:
        self.b.store(value, slot)

    def call(self, name: str, *args) -> ir.Value:
        return self.b.call(self.em.ctx.intrinsic(name, self.ty, len(args)), list(args))

    def abs(self, v) -> ir.Value:
        return self.call("fabs", v)

    def sqrt(self, v) -> ir.Value:
        return self.call("sqrt", v)

    # control flow
    def range(self, lo, hi, body) -> None:
        """``body(i)`` for ``lo <= i < hi`` (ints or i64 values)."""
        b = self.b
        lo, hi = _i64(lo), _i64(hi)
        pre = b.block
        header = self.em.fn.append_basic_block("la_loop")
        inner = self.em.fn.append_basic_block("la_body")
        after = self.em.fn.append_basic_block("la_next")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), inner, after)
        b.position_at_end(inner)
        body(i)
        i.add_incoming(b.add(i, I64(1)), b.block)
        b.branch(header)
        b.position_at_end(after)

    def when(self, cond, then, otherwise=None) -> None:
        if otherwise is None:
            with self.b.if_then(cond):
                then()
            return
        with self.b.if_else(cond) as (yes, no):
            with yes:
                then()
            with no:
                otherwise()

    # memory: element (i, j) of the current batch entry
    def at(self, view, i, j) -> ir.Value:
        value = self.em.load(view, self.batch + [_i64(i), _i64(j)], self.dtype)
        return value if self.compute == self.dtype else self.b.fpext(value, self.ty)

    def put(self, value, view, i, j) -> None:
        if self.compute != self.dtype:
            value = self.b.fptrunc(value, llvm_type(self.dtype))
        self.em.store(value, view, self.batch + [_i64(i), _i64(j)], self.dtype)

    def scratch_at(self, n: int, i, j) -> ir.Value:
        return self.em.load(self.kernel.scratch, [self._flat(n, i, j)], self.compute)

    def scratch_put(self, value, n: int, i, j) -> None:
        self.em.store(value, self.kernel.scratch, [self._flat(n, i, j)], self.compute)

    def _flat(self, n: int, i, j):
        i, j = _i64(i), _i64(j)
        return self.b.add(self.b.mul(i, I64(n)), j)

    def over_batch(self, lead_shape, body) -> None:
        def each(idx):
            self.batch = list(idx)
            body()
        self.em.loop_nest(list(lead_shape), each)

    def lt(self, a, c) -> ir.Value:
        return self.b.fcmp_ordered("<", a, c)

    def nonfinite(self, view, n: int, lower: bool) -> ir.Value:
        """Whether the matrix (its lower triangle with ``lower``) has a NaN or
        infinite entry (x - x is NaN exactly for those)."""
        b = self.b
        flag = self.var(ir.Constant(I1, 0))

        def check(i, j):
            x = self.at(view, i, j)
            self.set(flag, b.or_(self.get(flag), b.fcmp_unordered("!=", b.fsub(x, x), self.const(0.0))))
        self.range(0, n, lambda i: self.range(0, b.add(i, I64(1)) if lower else n, lambda j: check(i, j)))
        return self.get(flag)

    def fill_nan(self, view, rows: int, cols: int) -> None:
        nan = self.const(float("nan"))
        self.range(0, rows, lambda i: self.range(0, cols, lambda j: self.put(nan, view, i, j)))


# ---------------------------------------------------------------- Gaussian elimination

def _eliminate(m: _Matrices, n: int, on_swap, on_pivot, on_row=None) -> None:
    """Partial-pivoting elimination of the scratch matrix (n x n).  For each
    column: ``on_swap(c, p)`` after rows c and p swapped (p != c),
    ``on_pivot(c, pivot)``, and ``on_row(c, r, factor)`` for each row below
    eliminated with ``row_r -= factor * row_c``.  A zero pivot (the column is
    zero below the diagonal) skips the elimination of its column."""
    b = m.b

    def column(c):
        best = m.var(m.abs(m.scratch_at(n, c, c)))
        piv = m.var(c, I64)

        def candidate(r):
            v = m.abs(m.scratch_at(n, r, c))
            # unordered: a NaN is chosen, so it propagates
            m.when(b.fcmp_unordered(">", v, m.get(best)), lambda: (m.set(best, v), m.set(piv, r)))
        m.range(b.add(c, I64(1)), I64(n), candidate)
        p = m.get(piv)

        def swap():
            def one(j):
                x, y = m.scratch_at(n, c, j), m.scratch_at(n, p, j)
                m.scratch_put(y, n, c, j)
                m.scratch_put(x, n, p, j)
            m.range(0, n, one)
            on_swap(c, p)
        m.when(b.icmp_signed("!=", p, c), swap)
        pivot = m.scratch_at(n, c, c)
        on_pivot(c, pivot)

        def eliminate():
            def row(r):
                f = b.fdiv(m.scratch_at(n, r, c), pivot)

                def col(j):
                    m.scratch_put(b.fsub(m.scratch_at(n, r, j), b.fmul(f, m.scratch_at(n, c, j))), n, r, j)
                m.range(b.add(c, I64(1)), I64(n), col)
                if on_row is not None:
                    on_row(c, r, f)
            m.range(b.add(c, I64(1)), I64(n), row)
        m.when(b.fcmp_unordered("!=", pivot, m.const(0.0)), eliminate)
    m.range(0, n, column)


def _copy_to_scratch(m: _Matrices, a_view, n: int) -> None:
    m.range(0, n, lambda i: m.range(0, n, lambda j: m.scratch_put(m.at(a_view, i, j), n, i, j)))


def _solve(em, kernel) -> None:
    m = _Matrices(em, kernel)
    b = m.b
    a, rhs = kernel.node.inputs
    av, bv, out = em.plan.location[a], em.plan.location[rhs], kernel.out
    n, k = a.shape[-1], rhs.shape[-1]
    singular = m.var(ir.Constant(I1, 0))

    def one():
        b.store(ir.Constant(I1, 0), singular)
        _copy_to_scratch(m, av, n)
        m.range(0, n, lambda i: m.range(0, k, lambda j: m.put(m.at(bv, i, j), out, i, j)))

        def swap(c, p):
            def one_col(j):
                x, y = m.at(out, c, j), m.at(out, p, j)
                m.put(y, out, c, j)
                m.put(x, out, p, j)
            m.range(0, k, one_col)

        def pivot(c, value):
            m.when(b.fcmp_ordered("==", value, m.const(0.0)), lambda: m.set(singular, ir.Constant(I1, 1)))

        def row(c, r, f):
            m.range(0, k, lambda j: m.put(b.fsub(m.at(out, r, j), b.fmul(f, m.at(out, c, j))), out, r, j))
        _eliminate(m, n, swap, pivot, row)

        def back(step):
            c = b.sub(I64(n - 1), step)

            def col(j):
                acc = m.var(m.at(out, c, j))
                m.range(b.add(c, I64(1)), I64(n),
                        lambda r: m.set(acc, b.fsub(m.get(acc), b.fmul(m.scratch_at(n, c, r), m.at(out, r, j)))))
                m.put(b.fdiv(m.get(acc), m.scratch_at(n, c, c)), out, c, j)
            m.range(0, k, col)
        m.range(0, n, back)
        m.when(m.get(singular), lambda: m.fill_nan(out, n, k))
    m.over_batch(a.shape[:-2], lambda: m.when(m.nonfinite(av, n, False), lambda: m.fill_nan(out, n, k), one))


def _determinant(mode: str):
    def emit(em, kernel) -> None:
        m = _Matrices(em, kernel)
        b = m.b
        (a,) = kernel.node.inputs
        av, out = em.plan.location[a], kernel.out
        n = a.shape[-1]
        acc = m.var(m.const(0.0))    # product of the pivots (det) or sum of log|pivot| (logabsdet)
        sign = m.var(m.const(1.0))

        def one():
            m.set(acc, m.const(0.0 if mode == "logabsdet" else 1.0))
            m.set(sign, m.const(1.0))
            _copy_to_scratch(m, av, n)

            def swap(c, p):
                m.set(sign, b.fneg(m.get(sign)))

            def pivot(c, value):
                if mode == "det":
                    m.set(acc, b.fmul(m.get(acc), value))
                elif mode == "logabsdet":
                    m.set(acc, b.fadd(m.get(acc), m.call("log", m.abs(value))))
                else:  # the sign of the pivot: 1, -1, 0, or NaN (NaN * 0 is NaN)
                    s = b.select(m.lt(m.const(0.0), value), m.const(1.0),
                                 b.select(m.lt(value, m.const(0.0)), m.const(-1.0), b.fmul(value, m.const(0.0))))
                    m.set(sign, b.fmul(m.get(sign), s))
            _eliminate(m, n, swap, pivot)
            if mode == "det":
                result = b.fmul(m.get(sign), m.get(acc))
            elif mode == "logabsdet":
                result = m.get(acc)
            else:
                result = m.get(sign)
            em.store(result, out, m.batch, m.dtype)

        def undefined():
            em.store(m.const(float("nan")), out, m.batch, m.dtype)
        m.over_batch(a.shape[:-2], lambda: m.when(m.nonfinite(av, n, False), undefined, one))
    return emit


# ---------------------------------------------------------------- Cholesky

def _cholesky(em, kernel) -> None:
    m = _Matrices(em, kernel)
    b = m.b
    (a,) = kernel.node.inputs
    av, out = em.plan.location[a], kernel.out
    n = a.shape[-1]
    bad = m.var(ir.Constant(I1, 0))

    def one():
        b.store(ir.Constant(I1, 0), bad)

        def column(j):
            def dot_rows(i):
                acc = m.var(m.at(av, i, j))
                m.range(0, j, lambda k: m.set(acc, b.fsub(m.get(acc), b.fmul(m.at(out, i, k), m.at(out, j, k)))))
                return m.get(acc)
            s = dot_rows(j)
            # not positive definite (or NaN): the whole factor becomes NaN below
            m.when(b.fcmp_unordered("<=", s, m.const(0.0)), lambda: m.set(bad, ir.Constant(I1, 1)))
            d = m.sqrt(s)
            m.put(d, out, j, j)
            m.range(0, j, lambda i: m.put(m.const(0.0), out, i, j))
            m.range(b.add(j, I64(1)), I64(n), lambda i: m.put(b.fdiv(dot_rows(i), d), out, i, j))
        m.range(0, n, column)
        m.when(m.get(bad), lambda: m.fill_nan(out, n, n))
    m.over_batch(a.shape[:-2], lambda: m.when(m.nonfinite(av, n, True), lambda: m.fill_nan(out, n, n), one))


# ---------------------------------------------------------------- symmetric eigenproblem (cyclic Jacobi)

def _eigh(em, kernel) -> None:
    # float64 arithmetic for float32 too: the many rotations of Jacobi would
    # otherwise lose a digit against LAPACK's float32 routine
    m = _Matrices(em, kernel, "float64")
    b = m.b
    (a,) = kernel.node.inputs
    av, out = em.plan.location[a], kernel.out
    n = a.shape[-1]
    one_, zero = m.const(1.0), m.const(0.0)
    rotated = m.var(ir.Constant(I1, 1))

    def s_at(i, j):
        return m.scratch_at(n, i, j)

    def s_put(v, i, j):
        m.scratch_put(v, n, i, j)

    def v_at(i, j):  # the eigenvectors: rows n..2n-1 of the scratch memory
        return m.scratch_at(n, b.add(_i64(i), I64(n)), j)

    def v_put(v, i, j):
        m.scratch_put(v, n, b.add(_i64(i), I64(n)), j)

    def rotate(p, q):
        apq = s_at(p, q)
        app, aqq = s_at(p, p), s_at(q, q)
        g = b.fmul(m.const(100.0), m.abs(apq))
        negligible = b.and_(b.fcmp_ordered("==", b.fadd(m.abs(app), g), m.abs(app)),
                            b.fcmp_ordered("==", b.fadd(m.abs(aqq), g), m.abs(aqq)))

        def drop():
            s_put(zero, p, q)
            s_put(zero, q, p)

        def turn():
            m.set(rotated, ir.Constant(I1, 1))
            theta = b.fdiv(b.fsub(aqq, app), b.fmul(m.const(2.0), apq))
            at = m.abs(theta)
            # sqrt(1 + theta^2) without overflow for large theta
            big = m.lt(one_, at)
            inv = b.fdiv(one_, b.select(big, at, one_))
            root = b.select(big, b.fmul(at, m.sqrt(b.fadd(one_, b.fmul(inv, inv)))),
                            m.sqrt(b.fadd(one_, b.fmul(theta, theta))))
            t = b.fdiv(b.select(m.lt(theta, zero), m.const(-1.0), one_), b.fadd(at, root))
            c = b.fdiv(one_, m.sqrt(b.fadd(one_, b.fmul(t, t))))
            s = b.fmul(t, c)

            def columns(k):
                x, y = s_at(k, p), s_at(k, q)
                s_put(b.fsub(b.fmul(c, x), b.fmul(s, y)), k, p)
                s_put(b.fadd(b.fmul(s, x), b.fmul(c, y)), k, q)

            def rows(k):
                x, y = s_at(p, k), s_at(q, k)
                s_put(b.fsub(b.fmul(c, x), b.fmul(s, y)), p, k)
                s_put(b.fadd(b.fmul(s, x), b.fmul(c, y)), q, k)

            def vectors(k):
                x, y = v_at(k, p), v_at(k, q)
                v_put(b.fsub(b.fmul(c, x), b.fmul(s, y)), k, p)
                v_put(b.fadd(b.fmul(s, x), b.fmul(c, y)), k, q)
            m.range(0, n, columns)
            m.range(0, n, rows)
            m.range(0, n, vectors)
            # the rotation zeroes (p, q) exactly; the diagonal from its closed form
            s_put(b.fsub(app, b.fmul(t, apq)), p, p)
            s_put(b.fadd(aqq, b.fmul(t, apq)), q, q)
            s_put(zero, p, q)
            s_put(zero, q, p)
        m.when(b.fcmp_unordered("!=", apq, zero), lambda: m.when(negligible, drop, turn))

    def sweep(_):
        def go():
            m.set(rotated, ir.Constant(I1, 0))
            m.range(0, n, lambda p: m.range(b.add(p, I64(1)), I64(n), lambda q: rotate(p, q)))
        m.when(m.get(rotated), go)

    def one():
        # the symmetric matrix of the lower triangle; V = I
        def fill(i, j):
            lower = b.select(b.icmp_signed("<", i, j), m.at(av, j, i), m.at(av, i, j))
            s_put(lower, i, j)
            v_put(b.select(b.icmp_signed("==", i, j), one_, zero), i, j)
        m.range(0, n, lambda i: m.range(0, n, lambda j: fill(i, j)))
        m.set(rotated, ir.Constant(I1, 1))
        m.range(0, _MAX_SWEEPS, sweep)
        m.range(0, n, lambda k: m.put(s_at(k, k), out, 0, k))
        m.range(0, n, lambda i: m.range(0, n, lambda j: m.put(v_at(i, j), out, b.add(i, I64(1)), j)))
        _sort_and_sign(m, out, n)
    m.over_batch(a.shape[:-2], lambda: m.when(m.nonfinite(av, n, True), lambda: m.fill_nan(out, n + 1, n), one))


def _sort_and_sign(m: _Matrices, out, n: int) -> None:
    """Selection sort of the eigenvalues (row 0) ascending, moving their
    eigenvectors along; then each eigenvector's largest component positive."""
    b = m.b

    def place(i):
        best = m.var(i, I64)
        m.range(b.add(i, I64(1)), I64(n),
                lambda j: m.when(m.lt(m.at(out, 0, j), m.at(out, 0, m.get(best))), lambda: m.set(best, j)))
        j = m.get(best)

        def swap():
            def row(r):
                x, y = m.at(out, r, i), m.at(out, r, j)
                m.put(y, out, r, i)
                m.put(x, out, r, j)
            m.range(0, n + 1, row)
        m.when(b.icmp_signed("!=", j, i), swap)
    m.range(0, n, place)

    def sign(k):
        big = m.var(I64(1), I64)
        m.range(2, n + 1, lambda r: m.when(b.fcmp_ordered(">", m.abs(m.at(out, r, k)), m.abs(m.at(out, m.get(big), k))),
                                           lambda: m.set(big, r)))
        flip = m.lt(m.at(out, m.get(big), k), m.const(0.0))
        m.when(flip, lambda: m.range(1, n + 1, lambda r: m.put(b.fneg(m.at(out, r, k)), out, r, k)))
    m.range(0, n, sign)


def _square_scratch(node) -> tuple[int, str]:
    return max(node.inputs[0].shape[-1] ** 2, 1), node.dtype


def _eigh_scratch(node) -> tuple[int, str]:
    return max(2 * node.inputs[0].shape[-1] ** 2, 1), "float64"  # the matrix and the eigenvectors


LOWERINGS["solve"] = Lowering(Placement.KERNEL, kernel=_solve, scratch=_square_scratch)
LOWERINGS["det"] = Lowering(Placement.KERNEL, kernel=_determinant("det"), scratch=_square_scratch)
LOWERINGS["logabsdet"] = Lowering(Placement.KERNEL, kernel=_determinant("logabsdet"), scratch=_square_scratch)
LOWERINGS["det_sign"] = Lowering(Placement.KERNEL, kernel=_determinant("det_sign"), scratch=_square_scratch)
LOWERINGS["cholesky"] = Lowering(Placement.KERNEL, kernel=_cholesky)
LOWERINGS["eigh"] = Lowering(Placement.KERNEL, kernel=_eigh, scratch=_eigh_scratch)
