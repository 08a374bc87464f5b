"""Dense linear algebra on the last two axes (leading axes are a batch, as in
``numpy.linalg``): ``solve``, ``det``, ``logabsdet``, ``det_sign``,
``cholesky`` and ``eigh``.

Every derivative rule is written with these same primitives (a solve, a
transpose, a batched matrix product, ``where``), so derivatives of every
order follow.  The numpy semantics of each op is ``numpy.linalg``'s, with
two deliberate differences, both shared by the compiled kernels:

* a matrix numpy refuses (``LinAlgError``: an exactly singular matrix in
  ``solve``, a matrix that is not positive definite in ``cholesky``) gives
  NaN for that matrix of the batch instead of an exception, since native
  code cannot raise half-way through a graph; so does a matrix with a NaN
  or infinite entry (in the part read), where LAPACK's results are not
  defined;
* ``eigh`` returns its eigenvectors with a fixed sign (the component of
  largest magnitude is positive), so the result is a function of the matrix
  and native code and numpy agree.

``cholesky`` and ``eigh`` read only the lower triangle of their operand
(numpy's ``UPLO='L'``), and their derivatives are those of that function:
the upper triangle gets zero gradient.  ``eigh`` packs its two results in one
array of shape ``(..., n + 1, n)``: row 0 the eigenvalues (ascending), rows
1..n the eigenvectors (as columns, numpy's layout).
"""

from __future__ import annotations

import numpy as np

from .. import build as B
from ..node import Node
from .registry import Kind, Primitive, ShapeError, define, one_input, same_float_dtype

__all__ = ["solve", "det", "logabsdet", "det_sign", "cholesky", "eigh", "matrix_transpose", "matmul",
           "lower_symmetric", "lower_adjoint", "eye_like"]


# ---------------------------------------------------------------- graph helpers (used by the rules and symdl.linalg)

def matrix_transpose(x: Node) -> Node:
    """Swap the last two axes."""
    perm = tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)
    return B.transpose(x, perm)


def matmul(a: Node, b: Node) -> Node:
    """Batched matrix product of (..., m, k) and (..., k, n) with equal batch axes."""
    batch = tuple(range(a.ndim - 2))
    return B.dot_general(a, b, ((a.ndim - 1,), (b.ndim - 2,)), (batch, batch))


def eye_like(x: Node) -> Node:
    """The identity, broadcast to the (square) shape of ``x``."""
    return B.broadcast_to(B.eye(x.shape[-1], x.dtype), x.shape)


def _triangle(n: int, op: str) -> Node:
    """Boolean (n, n) mask of ``row op col`` ('gt': strictly lower, 'eq': diagonal)."""
    return B.compare(op, B.iota((n, n), 0), B.iota((n, n), 1))


def lower_symmetric(x: Node) -> Node:
    """The symmetric matrix whose lower triangle is that of ``x`` (what numpy's
    ``UPLO='L'`` routines read)."""
    n = x.shape[-1]
    zero = B.fill(0.0, x, ())
    strict = B.where(_triangle(n, "gt"), x, zero)
    return B.add(B.where(_triangle(n, "ge"), x, zero), matrix_transpose(strict))


def lower_adjoint(h: Node) -> Node:
    """The adjoint of :func:`lower_symmetric`: a cotangent ``h`` of the
    symmetric matrix sent back to the lower triangle it was read from."""
    n = h.shape[-1]
    zero = B.fill(0.0, h, ())
    return B.where(_triangle(n, "gt"), B.add(h, matrix_transpose(h)), B.where(_triangle(n, "eq"), h, zero))


def _phi(x: Node) -> Node:
    """Lower triangle with half the diagonal (Murray's Phi)."""
    n = x.shape[-1]
    zero = B.fill(0.0, x, ())
    return B.where(_triangle(n, "gt"), x, B.where(_triangle(n, "eq"), B.scale(x, 0.5), zero))


def solve(a: Node, b: Node) -> Node:
    return B.emit("solve", (a, b))


def det(a: Node) -> Node:
    return B.emit("det", (a,))


def logabsdet(a: Node) -> Node:
    return B.emit("logabsdet", (a,))


def det_sign(a: Node) -> Node:
    return B.emit("det_sign", (a,))


def cholesky(a: Node) -> Node:
    return B.emit("cholesky", (a,))


def eigh(a: Node) -> Node:
    return B.emit("eigh", (a,))


def _inv_transpose(a: Node) -> Node:
    """A^-T, as a solve (so it is differentiable again)."""
    return solve(matrix_transpose(a), eye_like(a))


def _as_matrix_scalar(s: Node) -> Node:
    """(...,) -> (..., 1, 1), to scale a stack of matrices."""
    return B.reshape(s, s.shape + (1, 1))


# ---------------------------------------------------------------- shape rules

def _square(op: str, a, what: str = "operand") -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ShapeError(f"{op}: the {what} must be a stack of square matrices (..., n, n), got shape {a.shape}")


def _square_infer(op: str, out_shape):
    def infer(inputs, attrs):
        a = one_input(op, inputs)
        dtype = same_float_dtype(op, inputs)
        _square(op, a)
        return out_shape(a.shape), dtype
    return infer


def _solve_infer(inputs, attrs):
    if len(inputs) != 2:
        raise ShapeError(f"solve: takes two operands, got {len(inputs)}")
    a, b = inputs
    dtype = same_float_dtype("solve", inputs)
    _square("solve", a, "coefficient matrix")
    if b.ndim != a.ndim or b.shape[:-1] != a.shape[:-1]:
        raise ShapeError(f"solve: right-hand side of shape {b.shape} does not fit the matrices {a.shape} "
                         f"(expected {a.shape[:-1] + ('k',)})")
    return b.shape, dtype


# ---------------------------------------------------------------- numpy semantics

def _per_matrix(fn, values, shape, dtype):
    """``fn`` on each matrix of the batch; a matrix numpy refuses gives NaN."""
    lead = shape[:len(values[0].shape) - 2]
    out = np.empty(shape, dtype=dtype)
    for idx in np.ndindex(*lead):
        try:
            out[idx] = fn(*(v[idx] for v in values))
        except np.linalg.LinAlgError:
            out[idx] = np.nan
    return out


def _guarded(fn, lower: bool = False):
    """numpy's batched call; only when it refuses a matrix, one by one.  A
    matrix with a NaN or infinite entry (in the triangle read, with
    ``lower``) gives NaN for all of its result: LAPACK's output is not
    defined there, and the compiled kernels do the same."""
    def impl(values, node):
        values = [np.asarray(v, dtype=node.dtype) for v in values]
        try:
            out = np.asarray(fn(*values), dtype=node.dtype)
        except np.linalg.LinAlgError:
            out = _per_matrix(fn, values, node.shape, node.dtype)
        a = values[0]
        read = np.tril(a) if lower else a
        bad = ~np.isfinite(read).all(axis=(-2, -1))
        if bad.any():
            out = np.array(out)
            out[bad] = np.nan
        return out
    return impl


def _cholesky_np(a):
    return np.linalg.cholesky(a)  # reads the lower triangle only


def _eigh_np(a):
    """Eigenvalues (ascending) over eigenvectors with the largest-magnitude
    component positive (first on ties), packed as (..., n + 1, n)."""
    n = a.shape[-1]
    if n == 0:
        return np.zeros(a.shape[:-2] + (1, 0), dtype=a.dtype)
    w, v = np.linalg.eigh(a, UPLO="L")
    big = np.argmax(np.abs(v), axis=-2)[..., None, :]
    sign = np.where(np.take_along_axis(v, big, axis=-2) < 0, -1.0, 1.0).astype(v.dtype)
    packed = np.empty(a.shape[:-2] + (n + 1, n), dtype=a.dtype)
    packed[..., 0, :] = w
    packed[..., 1:, :] = v * sign
    return packed


# ---------------------------------------------------------------- derivative rules

def _solve_vjp(node, g):
    a, _ = node.inputs
    gb = solve(matrix_transpose(a), g)
    ga = B.neg(matmul(gb, matrix_transpose(node)))
    return [ga, gb]


def _solve_jvp(node, t):
    a, _ = node.inputs
    ta, tb = t
    if ta is None and tb is None:
        return None
    rhs = tb if ta is None else B.neg(matmul(ta, node)) if tb is None else B.sub(tb, matmul(ta, node))
    return solve(a, rhs)


def _batched_operands(node, ins, n):
    return [b if b is not None else B.broadcast_to(x, (n,) + x.shape) for x, b in zip(node.inputs, ins)]


def _det_vjp(node, g):
    (a,) = node.inputs
    return [B.mul(_as_matrix_scalar(B.mul(g, node)), _inv_transpose(a))]


def _det_jvp(node, t):
    (a,) = node.inputs
    if t[0] is None:
        return None
    return B.mul(node, B.reduce_sum(B.mul(_inv_transpose(a), t[0]), (a.ndim - 2, a.ndim - 1)))


def _logabsdet_vjp(node, g):
    (a,) = node.inputs
    return [B.mul(_as_matrix_scalar(g), _inv_transpose(a))]


def _logabsdet_jvp(node, t):
    (a,) = node.inputs
    if t[0] is None:
        return None
    return B.reduce_sum(B.mul(_inv_transpose(a), t[0]), (a.ndim - 2, a.ndim - 1))


def _cholesky_jvp(node, t):
    # S = L L^T, dL = L Phi(L^-1 dS L^-T) (Murray, arXiv:1602.07527); dS read from the lower triangle
    if t[0] is None:
        return None
    low = node
    y = solve(low, lower_symmetric(t[0]))             # L^-1 dS
    z = solve(low, matrix_transpose(y))               # L^-1 dS L^-T (dS symmetric)
    return matmul(low, _phi(z))


def _cholesky_vjp(node, g):
    # P = L^-T Phi(L^T G) L^-1 satisfies <G, dL> = <P, dS>; then back to the lower triangle
    low_t = matrix_transpose(node)
    q = solve(low_t, _phi(matmul(low_t, g)))           # L^-T Phi(L^T G)
    p = matrix_transpose(solve(low_t, matrix_transpose(q)))  # ... L^-1
    return [lower_adjoint(p)]


def _eigh_parts(node):
    n = node.shape[-1]
    lead = (slice(None),) * (node.ndim - 2)
    w = B.reshape(B.slice_(node, lead + (slice(0, 1), slice(None))), node.shape[:-2] + (n,))
    v = B.slice_(node, lead + (slice(1, None), slice(None)))
    return w, v


#: Eigenvalues closer than this many ulps of the largest one (times n) are
#: one repeated eigenvalue: no eigensolver separates them (their computed
#: gap is rounding noise), and 1 / gap would only amplify that noise.
_TIE_ULPS = 64


def _eigh_gaps(w: Node) -> Node:
    """F[i, j] = 1 / (w[j] - w[i]) between distinct eigenvalues, and 0 on
    the diagonal and between repeated eigenvalues (equal to within
    ``_TIE_ULPS * n`` ulps of the largest): there the eigenvectors are any
    basis of the eigenspace and symdl drops their coupling, which is exact
    for every function invariant under a change of that basis (eigenvalues,
    projectors); see docs/linalg.md.  The inner ``where`` keeps the
    derivative of the unused branch finite."""
    n = w.shape[-1]
    wi = B.reshape(w, w.shape + (1,))
    wj = B.reshape(w, w.shape[:-1] + (1, n))
    gap = B.sub(wj, wi)
    eps = float(np.finfo(w.dtype).eps) * _TIE_ULPS * n
    scale = B.reshape(B.reduce_max(B.fn("abs", w), (w.ndim - 1,)), w.shape[:-1] + (1, 1))
    apart = B.compare("gt", B.fn("abs", gap), B.mul(scale, B.fill(eps, w, ())))
    one, zero = B.fill(1.0, gap, ()), B.fill(0.0, gap, ())
    return B.where(apart, B.div(one, B.where(apart, gap, one)), zero)


def _eigh_jvp(node, t):
    # dw = diag(V^T dS V), dV = V (F o V^T dS V)
    if t[0] is None:
        return None
    w, v = _eigh_parts(node)
    ds = lower_symmetric(t[0])
    m = matmul(matrix_transpose(v), matmul(ds, v))
    dw = B.reduce_sum(B.mul(v, matmul(ds, v)), (v.ndim - 2,))
    dv = matmul(v, B.mul(_eigh_gaps(w), m))
    return B.concatenate([B.reshape(dw, dw.shape[:-1] + (1, dw.shape[-1])), dv], node.ndim - 2)


def _eigh_vjp(node, g):
    # H = V (diag(gw) + F o V^T gV) V^T satisfies <g, dE> = <H, dS>
    w, v = _eigh_parts(node)
    gw, gv = _eigh_parts(g)
    n = w.shape[-1]
    diag = B.mul(B.reshape(gw, gw.shape[:-1] + (1, n)), eye_like(v))
    inner = B.add(diag, B.mul(_eigh_gaps(w), matmul(matrix_transpose(v), gv)))
    h = matmul(v, matmul(inner, matrix_transpose(v)))
    return [lower_adjoint(h)]


def _unary_batch(op):
    return lambda node, b, n: B.emit(op, (b[0],))


# ---------------------------------------------------------------- the catalogue

define(Primitive("solve", Kind.LINALG, _solve_infer, _guarded(np.linalg.solve), vjp=_solve_vjp, jvp=_solve_jvp,
                 batch=lambda node, b, n: B.emit("solve", tuple(_batched_operands(node, b, n))), arity=2))
define(Primitive("det", Kind.LINALG, _square_infer("det", lambda s: s[:-2]), _guarded(np.linalg.det),
                 vjp=_det_vjp, jvp=_det_jvp, batch=_unary_batch("det"), arity=1))
define(Primitive("logabsdet", Kind.LINALG, _square_infer("logabsdet", lambda s: s[:-2]),
                 _guarded(lambda a: np.linalg.slogdet(a)[1]), vjp=_logabsdet_vjp, jvp=_logabsdet_jvp,
                 batch=_unary_batch("logabsdet"), arity=1))
define(Primitive("det_sign", Kind.LINALG, _square_infer("det_sign", lambda s: s[:-2]),
                 _guarded(lambda a: np.linalg.slogdet(a)[0]), batch=_unary_batch("det_sign"),
                 differentiable=False, arity=1))
define(Primitive("cholesky", Kind.LINALG, _square_infer("cholesky", lambda s: s),
                 _guarded(_cholesky_np, lower=True), vjp=_cholesky_vjp, jvp=_cholesky_jvp,
                 batch=_unary_batch("cholesky"), arity=1))
define(Primitive("eigh", Kind.LINALG, _square_infer("eigh", lambda s: s[:-2] + (s[-1] + 1, s[-1])),
                 _guarded(_eigh_np, lower=True), vjp=_eigh_vjp, jvp=_eigh_jvp, batch=_unary_batch("eigh"), arity=1))
