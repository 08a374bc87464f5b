"""numpy.linalg on dlarrays: values against numpy.linalg (eager and compiled,
several sizes, batched, both dtypes), first and second derivatives against
central differences of numpy itself (tests/helpers.check_grads), compiled
gradients against the interpreter, singular inputs, degenerate eigenvalues
and the error paths.

Tolerances follow the conditioning of the inputs: the test matrices are
diagonally dominant or shifted to be positive definite (condition numbers of
a few units), so results agree with LAPACK to a few ulps times the size;
float32 gets float32 tolerances.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import symdl
from symdl import linalg as L

from helpers import assert_close, check_grads, numeric_grad, numeric_hvp, symdl_grads, symdl_hvp

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = ("float64", "float32")
SIZES = (1, 3, 6)
BATCHES = ((), (2,), (2, 3))


def seed_of(*key) -> int:
    """A seed from the test's parameters, the same in every process (hash() is salted)."""
    return zlib.crc32(repr(key).encode())


def away_from_zero(rng, shape, dtype="float64"):
    """Entries of either sign with |x| in [0.3, 1.5]: |x|**p is smooth there."""
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 1.5, shape)).astype(dtype)


def dominant(rng, shape, dtype="float64"):
    """Diagonally dominant: well conditioned, either sign of determinant."""
    n = shape[-1]
    return (rng.uniform(-1, 1, shape) + n * np.diag(rng.choice([-1.0, 1.0], n))).astype(dtype)


def spd(rng, shape, dtype="float64"):
    m = rng.uniform(-1, 1, shape)
    return (m @ np.swapaxes(m, -1, -2) + shape[-1] * np.eye(shape[-1])).astype(dtype)


def symmetric(rng, shape, dtype="float64"):
    m = rng.uniform(-1, 1, shape)
    return ((m + np.swapaxes(m, -1, -2)) / 2).astype(dtype)


def upper_only(s):
    """The upper triangle of ``s`` with garbage below (UPLO='U' must not read it)."""
    return np.triu(s) + 7 * np.tril(np.ones(s.shape), -1)


def signed(v: np.ndarray) -> np.ndarray:
    """numpy's eigenvectors with symdl's sign convention: the component of
    largest magnitude of each eigenvector positive (first on ties)."""
    big = np.argmax(np.abs(v), axis=-2)[..., None, :]
    return v * np.where(np.take_along_axis(v, big, axis=-2) < 0, -1.0, 1.0)


def tol(dtype, n=6):
    return (1e-11, 1e-12) if dtype == "float64" else (2e-4 * n, 2e-5 * n)


def data(x):
    return symdl.extractdata(x) if isinstance(x, symdl.dlarray) else np.asarray(x)


# ---------------------------------------------------------------- values: eager and compiled against numpy.linalg

FUNCTIONS = {
    # name: (symdl function of a dlarray, numpy reference, input sampler)
    "inv": (np.linalg.inv, np.linalg.inv, dominant),
    "det": (np.linalg.det, np.linalg.det, dominant),
    "slogdet": (lambda a: tuple(np.linalg.slogdet(a)), lambda a: tuple(np.linalg.slogdet(a)), dominant),
    "cholesky": (np.linalg.cholesky, np.linalg.cholesky, spd),
    "cholesky_upper": (lambda a: np.linalg.cholesky(a, upper=True), lambda a: np.linalg.cholesky(a, upper=True), spd),
    "eigh": (lambda a: tuple(np.linalg.eigh(a)), lambda a: (np.linalg.eigh(a)[0], signed(np.linalg.eigh(a)[1])),
             symmetric),
    "eigh_upper": (lambda a: tuple(np.linalg.eigh(a, UPLO="U")),
                   lambda a: (np.linalg.eigh(a, "U")[0], signed(np.linalg.eigh(a, "U")[1])),
                   lambda rng, shape, dtype: upper_only(symmetric(rng, shape)).astype(dtype)),
    "eigvalsh": (np.linalg.eigvalsh, np.linalg.eigvalsh, symmetric),
}


def _outputs(out):
    return [data(o) for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_values_match_numpy_eager_and_compiled(name, batch, dtype):
    fn, ref, sample = FUNCTIONS[name]
    rng = np.random.default_rng(seed_of(name, batch, dtype))
    for n in SIZES:
        a = sample(rng, batch + (n, n), dtype)
        expected = _outputs(ref(a.astype(np.float64)))
        # eigenvectors move by eps * |A| / gap; the smallest gap of these samples is checked
        gapped = name.startswith("eigh") and n > 1
        gap = float(np.min(np.diff(np.linalg.eigvalsh(a.astype(np.float64)), axis=-1))) if gapped else 1.0
        rtol, atol = tol(dtype, n)
        if gapped:
            atol = atol / min(1.0, gap)
        eager = _outputs(fn(symdl.dlarray(a)))
        compiled = _outputs(symdl.compile(fn, a)(a))
        for got_set, how in ((eager, "eager"), (compiled, "compiled")):
            for got, exp in zip(got_set, expected):
                assert got.dtype == np.dtype(dtype), f"{name} {how}: dtype {got.dtype}"
                assert_close(got, exp, rtol, atol, f"{name} {how} n={n} batch={batch}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_solve_shapes_as_numpy(dtype):
    rng = np.random.default_rng(1)
    rtol, atol = tol(dtype)
    a = dominant(rng, (2, 3, 4, 4), dtype)
    cases = [(a, rng.standard_normal(4)),                      # vector right-hand side, broadcast over the batch
             (a, rng.standard_normal((4, 2))),                  # one matrix for every batch entry
             (a[0, 0], rng.standard_normal((2, 3, 4, 5))),     # one coefficient matrix for a batch of b
             (a[:, :1], rng.standard_normal((3, 4, 1))),       # batch axes broadcast both ways
             (a[0, 0], rng.standard_normal(4))]
    for x, b in cases:
        b = b.astype(dtype)
        expected = np.linalg.solve(x.astype(np.float64), b.astype(np.float64))
        got = data(L.solve(symdl.dlarray(x), b))
        assert got.shape == expected.shape
        assert_close(got, expected, rtol, atol, f"solve {x.shape} {b.shape}")
        compiled = symdl.compile(lambda p, q: np.linalg.solve(p, q), x, b)(x, b)
        assert_close(compiled, expected, rtol, atol, f"compiled solve {x.shape} {b.shape}")


def test_mixed_dtypes_promote_as_numpy():
    rng = np.random.default_rng(2)
    a = dominant(rng, (3, 3), "float32")
    b = rng.standard_normal(3)  # float64
    x = L.solve(symdl.dlarray(a), b)
    assert x.dtype == np.float64
    assert_close(data(x), np.linalg.solve(a.astype(np.float64), b), 1e-12, 1e-13, "promoted solve")
    assert L.det(symdl.dlarray(np.eye(2, dtype=np.int64))).dtype == np.float64  # integer data become float64


def test_larger_matrices_compiled():
    rng = np.random.default_rng(3)
    for n in (20, 40):
        a = dominant(rng, (n, n))
        s = symmetric(rng, (n, n))
        inv, w, v = symdl.compile(lambda p, q: (np.linalg.inv(p), *np.linalg.eigh(q)), a, s)(a, s)
        assert_close(inv, np.linalg.inv(a), 1e-10, 1e-12, f"inv n={n}")
        ew, ev = np.linalg.eigh(s)
        assert_close(w, ew, 1e-10, 1e-12, f"eigenvalues n={n}")
        gap = float(np.min(np.diff(ew)))
        assert_close(v, signed(ev), 1e-9, 1e-13 * n / gap, f"eigenvectors n={n}")
        np.testing.assert_allclose(s @ v, v * w, atol=1e-12 * n)


# ---------------------------------------------------------------- norm

VECTOR_ORDS = (None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, -1.5)
MATRIX_ORDS = (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_matches_numpy(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    x[0, 0, 0] = 0.0  # ord=0 counts it out
    rtol, atol = tol(dtype)
    calls = [dict(ord=o, axis=ax, keepdims=k) for o in VECTOR_ORDS for ax in (0, -1, (1,)) for k in (False, True)]
    calls += [dict(ord=o, axis=ax, keepdims=k) for o in MATRIX_ORDS for ax in ((1, 2), (2, 0), (-1, -2))
              for k in (False, True)]
    calls += [dict(), dict(keepdims=True)]
    for kw in calls:
        expected = np.linalg.norm(x.astype(np.float64), **kw)
        got = data(np.linalg.norm(symdl.dlarray(x), **kw))
        assert got.dtype == np.dtype(dtype)
        assert_close(got, expected, rtol, atol, f"norm {kw}")
    for o in VECTOR_ORDS:  # axis=None: a 1-D x is a vector, a 2-D x a matrix
        assert_close(data(L.norm(symdl.dlarray(x[0, 0]), o)), np.linalg.norm(x[0, 0].astype(np.float64), o),
                     rtol, atol, f"vector norm {o}")
    for o in MATRIX_ORDS:
        assert_close(data(L.norm(symdl.dlarray(x[1]), o)), np.linalg.norm(x[1].astype(np.float64), o),
                     rtol, atol, f"matrix norm {o}")
    compiled = symdl.compile(lambda v: [np.linalg.norm(v, o, (1, 2)) for o in MATRIX_ORDS], x)(x)
    for o, got in zip(MATRIX_ORDS, compiled):
        assert_close(got, np.linalg.norm(x.astype(np.float64), o, (1, 2)), rtol, atol, f"compiled norm {o}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_and_matrix_norm_match_numpy(dtype):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    rtol, atol = tol(dtype)
    for kw in [dict(), dict(ord=1), dict(axis=(0, 2), ord=np.inf), dict(axis=-1, keepdims=True, ord=3),
               dict(axis=(2, 1), keepdims=True), dict(axis=None, keepdims=True, ord=-np.inf)]:
        assert_close(data(np.linalg.vector_norm(symdl.dlarray(x), **kw)),
                     np.linalg.vector_norm(x.astype(np.float64), **kw), rtol, atol, f"vector_norm {kw}")
    for kw in [dict(), dict(ord="nuc"), dict(ord=2, keepdims=True), dict(ord=-np.inf)]:
        assert_close(data(np.linalg.matrix_norm(symdl.dlarray(x), **kw)),
                     np.linalg.matrix_norm(x.astype(np.float64), **kw), rtol, atol, f"matrix_norm {kw}")
    with pytest.raises(ValueError, match="at least 2"):
        L.matrix_norm(symdl.dlarray(x[0, 0]))
    with pytest.raises(ValueError, match="'nuc'.*vectors"):
        L.vector_norm(symdl.dlarray(x), ord="nuc")


def test_matrix_norms_of_rank_deficient_matrices_are_accurate():
    # the singular values come from eigh of [[0, A], [A^T, 0]]: zero singular
    # values stay zero to eps * |A| (not sqrt(eps), as eigh of A^T A would give)
    u = np.array([[1.0], [2.0], [-1.0]])
    a = u @ np.array([[3.0, 0.5, 1.0, -2.0]])
    for o in ("nuc", 2, -2):
        assert_close(data(L.norm(symdl.dlarray(a), o)), np.linalg.norm(a, o), 1e-13, 1e-14, f"rank one, ord={o}")


# ---------------------------------------------------------------- derivatives: first and second order

def _sym_fun(fn):
    """fn of a symmetric matrix built from a general one: every perturbation symmetric."""
    return lambda x: fn(x + np.transpose(x, tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2)))


def _eigh_flat(x):
    w, v = np.linalg.eigh(x)
    if not isinstance(x, symdl.dlarray):
        v = signed(v)  # the numpy reference with symdl's sign convention
    return symdl.concatenate([w[..., None, :], v], axis=-2) if isinstance(x, symdl.dlarray) \
        else np.concatenate([w[..., None, :], v], axis=-2)


GRAD_CASES = {
    "inv": (np.linalg.inv, dominant),
    "solve_a": (lambda a: np.linalg.solve(a, np.array([[1.0, -2.0], [0.5, 1.0], [2.0, 0.0]])), dominant),
    "det": (np.linalg.det, dominant),
    "logabsdet": (lambda a: np.linalg.slogdet(a)[1], dominant),
    "sign_times_logdet": (lambda a: np.linalg.slogdet(a)[0] * np.linalg.slogdet(a)[1], dominant),
    "cholesky": (np.linalg.cholesky, spd),             # lower triangle read: upper entries get 0
    "cholesky_symmetric": (_sym_fun(np.linalg.cholesky), spd),
    "cholesky_upper": (lambda a: np.linalg.cholesky(a, upper=True), spd),
    "eigh": (_eigh_flat, symmetric),                   # lower triangle read
    "eigh_symmetric": (_sym_fun(_eigh_flat), symmetric),
    "eigh_upper": (lambda a: np.linalg.eigh(a, "U")[0] + np.linalg.eigh(a, "U")[1][..., 0, :] ** 2, symmetric),
    "eigvalsh": (np.linalg.eigvalsh, symmetric),
    "norm_nuc": (lambda a: np.linalg.norm(a, "nuc", axis=(-2, -1)), dominant),
    "norm_2": (lambda a: np.linalg.norm(a, 2, axis=(-2, -1)), dominant),
    "norm_minus_2": (lambda a: np.linalg.norm(a, -2, axis=(-2, -1)), dominant),
    "norm_fro": (lambda a: np.linalg.norm(a, "fro", axis=(-2, -1)), dominant),
    "norm_vectors": (lambda a: np.linalg.norm(a, 3, axis=-1) + np.linalg.norm(a, 1.5, axis=-2), away_from_zero),
    "vector_norm_axes": (lambda a: np.linalg.vector_norm(a, axis=(-2, -1), ord=2.5), away_from_zero),
    "matrix_norm_inf": (lambda a: np.linalg.matrix_norm(a, ord=np.inf) + np.linalg.matrix_norm(a, ord=-1),
                        away_from_zero),
}


def check_matrix_grads(fn, args, seed=0, rtol=1e-6, atol=1e-7):
    """``helpers.check_grads`` with a finer step for the second order: matrix
    functions (eigenvectors with gaps of a few tenths) have large third
    derivatives, so the Hessian-vector reference takes relative steps of
    1e-3 (truncation ~1e-10) instead of 1e-2 (truncation ~1e-4)."""
    args = [np.asarray(a, dtype=np.float64) for a in args]
    rng = np.random.default_rng(seed)

    def ref(*xs):
        return np.asarray(fn(*xs), dtype=np.float64)
    weights = rng.standard_normal(ref(*args).shape)

    def scalar(*xs):
        return float(np.sum(ref(*xs) * weights))
    got, _ = symdl_grads(fn, args, weights)
    for k, (g, e) in enumerate(zip(got, numeric_grad(scalar, args))):
        assert_close(g, e, rtol, atol, f"first-order gradient of argument {k}")
    vs = [rng.standard_normal(a.shape) for a in args]
    top = max(float(np.max(np.abs(v))) for v in vs)
    vs = [v / top for v in vs]
    _, hv, _ = symdl_hvp(fn, args, weights, vs)
    for k, (h, e) in enumerate(zip(hv, numeric_hvp(scalar, args, vs, rel=1e-3))):
        assert_close(h, e, 10 * rtol, 10 * atol, f"Hessian-vector product, argument {k}")


@pytest.mark.parametrize("batch", [(), (2,)])
@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_first_and_second_derivatives_match_central_differences(name, batch):
    fn, sample = GRAD_CASES[name]
    rng = np.random.default_rng(seed_of(name, batch))
    a = sample(rng, batch + (3, 3))
    check_matrix_grads(fn, [a])


def test_one_by_one_matrices_by_hand():
    # 1 x 1: inv = 1/a, det = a, log|det| = log|a|, cholesky = sqrt(a), eigh = (a, 1)
    def body(x):
        outs = [np.linalg.inv(x), np.linalg.det(x), np.linalg.slogdet(x)[1], np.linalg.cholesky(x),
                np.linalg.eigh(x)[0], np.linalg.eigh(x)[1]]
        return [symdl.dlgradient(symdl.sum(o), x) for o in outs]

    a = 2.5
    got = [float(g[0, 0]) for g in symdl.dlfeval(body, symdl.dlarray([[a]]))]
    assert got == pytest.approx([-1 / a ** 2, 1.0, 1 / a, 0.5 / np.sqrt(a), 1.0, 0.0], rel=1e-14)


@pytest.mark.parametrize("name", ["inv", "logabsdet", "cholesky", "eigh", "norm_nuc"])
def test_gradients_of_larger_batched_matrices(name):
    fn, sample = GRAD_CASES[name]
    rng = np.random.default_rng(13)
    a = sample(rng, (2, 2, 6, 6))
    weights = rng.standard_normal(np.asarray(fn(a)).shape)
    got, _ = symdl_grads(fn, [a], weights)
    expected = numeric_grad(lambda x: float(np.sum(np.asarray(fn(x)) * weights)), [a])
    assert_close(got[0], expected[0], 1e-6, 1e-7, f"{name} gradient, 2x2 batch of 6x6")


def test_solve_derivatives_in_both_operands():
    rng = np.random.default_rng(5)
    a, b = dominant(rng, (2, 3, 3)), rng.standard_normal((2, 3, 2))
    check_grads(np.linalg.solve, [a, b], order=2)
    check_matrix_grads(np.linalg.solve, [a[0], b[0, :, 0]])  # vector right-hand side


def test_float32_gradients_stay_float32():
    rng = np.random.default_rng(6)
    check_grads(lambda a: np.linalg.inv(a) + np.linalg.slogdet(a)[1][..., None, None],
                [dominant(rng, (3, 3), "float32")], order=1)
    check_grads(np.linalg.eigvalsh, [symmetric(rng, (3, 3), "float32")], order=1)


def test_third_derivative_of_logdet():
    # d^3/dt^3 log det(A + t E) = 2 tr((A^-1 E)^3): the rules are differentiable again and again
    rng = np.random.default_rng(7)
    a, e = spd(rng, (3, 3)), rng.standard_normal((3, 3))

    def f(t):
        return np.linalg.slogdet(a + t * e)[1]

    def third(t):
        g1 = symdl.dlgradient(f(t), t, enable_higher_derivatives=True)
        g2 = symdl.dlgradient(g1, t, enable_higher_derivatives=True)
        return symdl.dlgradient(g2, t)

    got = float(symdl.dlfeval(third, symdl.dlarray(0.0)))
    m = np.linalg.solve(a, e)
    assert got == pytest.approx(2 * np.trace(m @ m @ m), rel=1e-10)


def test_compiled_gradients_and_hessians_match_the_interpreter():
    rng = np.random.default_rng(8)
    a = spd(rng, (4, 4))

    def loss(x):
        w, v = np.linalg.eigh(x)
        c = np.linalg.cholesky(x)
        return (symdl.sum(np.linalg.inv(x) * x.T) + np.linalg.slogdet(x)[1] + symdl.sum(w ** 3)
                + symdl.sum(v[..., 0] ** 2 * w) + symdl.sum(c * c * c) + np.linalg.norm(x, "nuc"))

    compiled_grad = symdl.grad(loss)(a)
    eager_grad = data(symdl.dlfeval(lambda x: symdl.dlgradient(loss(x), x), symdl.dlarray(a)))
    assert_close(compiled_grad, eager_grad, 1e-10, 1e-12, "compiled gradient")
    assert_close(compiled_grad, numeric_grad(lambda x: float(data(loss(symdl.dlarray(x)))), [a])[0],
                 1e-6, 1e-7, "gradient against central differences")
    compiled_hessian = symdl.hessian(loss)(a)
    flat = compiled_hessian.reshape(16, 16)

    def grad_entry(x):
        return data(symdl.dlfeval(lambda y: symdl.dlgradient(loss(y), y), symdl.dlarray(x)))
    h = 1e-5
    for k in (0, 5, 7, 13):  # columns of the Hessian by central differences of the gradient
        e = np.zeros(16)
        e[k] = h
        column = (grad_entry(a + e.reshape(4, 4)) - grad_entry(a - e.reshape(4, 4))) / (2 * h)
        assert_close(flat[:, k], column.reshape(16), 1e-5, 1e-6, f"Hessian column {k}")


def test_batching_solve_in_its_right_hand_side_only():
    # vmap over b with one shared a: the batching rule broadcasts a (against a loop)
    from symdl.autodiff.batching import batch_graph
    from symdl.ir import build as B
    from symdl.ir.interpret import interpret
    rng = np.random.default_rng(14)
    a, b = B.input_node("a", (3, 3), "float64"), B.input_node("b", (3, 2), "float64")
    node = B.emit("solve", (a, b))
    stacked = B.input_node("bs", (4, 3, 2), "float64")
    (out,) = batch_graph([node], {b: stacked}, 4)
    av, bv = dominant(rng, (3, 3)), rng.standard_normal((4, 3, 2))
    got = interpret([out], {a: av, stacked: bv})[0]
    np.testing.assert_allclose(got, np.stack([np.linalg.solve(av, bv[k]) for k in range(4)]), rtol=1e-12)


# ---------------------------------------------------------------- degenerate eigenvalues

def _degenerate(rng):
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    return q @ np.diag([1.0, 1.0, 2.5, 4.0]) @ q.T


def test_eigenvalue_functions_are_differentiated_correctly_at_repeated_eigenvalues():
    rng = np.random.default_rng(9)
    a = _degenerate(rng)
    x = symdl.dlarray(a)
    grad_trace = data(symdl.dlfeval(lambda y: symdl.dlgradient(symdl.sum(L.eigvalsh(y)), y), x))
    np.testing.assert_allclose(grad_trace, np.eye(4), atol=1e-12)  # sum(w) = trace
    # sum(w**2) = |S|_F^2 of the symmetric matrix read from the lower triangle
    grad_sq = data(symdl.dlfeval(lambda y: symdl.dlgradient(symdl.sum(L.eigvalsh(y) ** 2), y), x))
    expected = np.tril(4 * a, -1) + np.diag(2 * np.diag(a))
    np.testing.assert_allclose(grad_sq, expected, atol=1e-11)
    # symmetric perturbations: the directional derivative of the sum over the repeated pair is tr(V_S^T E V_S)
    e = symmetric(rng, (4, 4))
    w, v = np.linalg.eigh(a)
    got = symdl.dlfeval(lambda t: symdl.dlgradient(symdl.sum(L.eigvalsh(a + t * e)[:2]), t), symdl.dlarray(0.0))
    assert float(got) == pytest.approx(np.trace(v[:, :2].T @ e @ v[:, :2]), rel=1e-9)


def test_projector_onto_a_repeated_eigenspace_is_differentiated_correctly():
    # the eigenvectors of the repeated pair are any basis of their plane, but
    # the projector onto the plane is smooth; dropping the coupling of the
    # pair (F = 0 there) gives its exact derivative
    rng = np.random.default_rng(10)
    a = _degenerate(rng)
    c = rng.standard_normal((4, 4))

    def projector_loss(x):
        v = np.linalg.eigh(x)[1][:, :2]
        return symdl.sum((v @ v.T) * c) if isinstance(x, symdl.dlarray) else float(np.sum((v @ v.T) * c))

    got = data(symdl.dlfeval(lambda y: symdl.dlgradient(projector_loss(y), y), symdl.dlarray(a)))
    expected = numeric_grad(projector_loss, [a], rel=1e-6)[0]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert np.all(np.isfinite(got))


def test_projector_gradient_compiled_at_a_repeated_eigenvalue():
    # the Jacobi kernel picks its own basis of the plane: the gradient is the same
    rng = np.random.default_rng(12)
    a = _degenerate(rng)
    c = rng.standard_normal((4, 4))

    def projector_loss(x):
        v = np.linalg.eigh(x)[1][:, :2]
        return symdl.sum((v @ v.T) * c) if isinstance(x, symdl.dlarray) else float(np.sum((v @ v.T) * c))

    expected = numeric_grad(projector_loss, [a], rel=1e-6)[0]
    np.testing.assert_allclose(symdl.grad(projector_loss)(a), expected, atol=1e-6)


def test_eigenvector_gradients_at_repeated_eigenvalues_are_finite():
    # documented: a single eigenvector of a repeated eigenvalue has no
    # derivative; symdl returns finite numbers (the coupling dropped), not NaN
    a = np.diag([1.0, 1.0, 3.0])
    g = data(symdl.dlfeval(lambda y: symdl.dlgradient(symdl.sum(L.eigh(y)[1][:, 0] * [1.0, 2.0, 3.0]), y),
                           symdl.dlarray(a)))
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------- singular and indefinite matrices

def test_singular_and_indefinite_matrices_give_nan_eager_and_compiled():
    singular = np.array([[[1.0, 2.0], [2.0, 4.0]], [[2.0, 0.0], [0.0, 4.0]]])
    indefinite = np.array([[[1.0, 0.0], [0.0, -1.0]], [[4.0, 2.0], [2.0, 5.0]]])

    def f(a, s):
        return np.linalg.inv(a), np.linalg.det(a), *np.linalg.slogdet(a), np.linalg.cholesky(s)

    for out in (f(symdl.dlarray(singular), symdl.dlarray(indefinite)),
                symdl.compile(f, singular, indefinite)(singular, indefinite)):
        inv, det, sign, logdet, chol = (data(o) for o in out)
        assert np.all(np.isnan(inv[0])) and np.allclose(inv[1], np.linalg.inv(singular[1]))
        assert det[0] == 0.0 and det[1] == pytest.approx(8.0)   # numpy: det 0, no error
        assert sign[0] == 0.0 and logdet[0] == -np.inf            # numpy: (0, -inf)
        assert np.all(np.isnan(chol[0])) and np.allclose(chol[1], np.linalg.cholesky(indefinite[1]))


def test_a_matrix_with_nan_or_inf_gives_nan_eager_and_compiled():
    # LAPACK's results are not defined there: the whole result of that matrix is NaN
    good = np.array([[2.0, 0.5, 0.0], [0.5, 3.0, 0.1], [0.0, 0.1, 1.0]])
    stack = np.array([good, good, good, good])
    stack[0, 2, 0] = np.nan      # read by every function
    stack[1, 1, 0] = np.inf
    stack[2, 0, 2] = np.nan      # upper triangle: read by inv/det/slogdet, not by cholesky/eigh

    def f(a):
        return (np.linalg.inv(a), np.linalg.det(a), *np.linalg.slogdet(a), np.linalg.cholesky(a),
                *np.linalg.eigh(a))

    for out in (f(symdl.dlarray(stack)), symdl.compile(f, stack)(stack)):
        inv, det, sign, logdet, chol, w, v = (data(o) for o in out)
        for k in (0, 1, 2):
            assert np.all(np.isnan(inv[k])) and np.isnan(det[k]) and np.isnan(sign[k]) and np.isnan(logdet[k])
        for k in (0, 1):
            assert np.all(np.isnan(chol[k])) and np.all(np.isnan(w[k])) and np.all(np.isnan(v[k]))
        assert_close(chol[2], np.linalg.cholesky(good), 1e-12, 1e-13, "upper NaN not read")
        assert_close(w[2], np.linalg.eigvalsh(good), 1e-12, 1e-13, "upper NaN not read")
        assert_close(inv[3], np.linalg.inv(good), 1e-12, 1e-13, "the other matrices of the batch")
    b = np.array([1.0, np.nan, 2.0])  # NaN in a right-hand side propagates by arithmetic, as in numpy
    x = data(symdl.compile(lambda p, q: np.linalg.solve(p, q), good, b)(good, b))
    assert np.isnan(x).any()


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("fn", [L.inv, L.det, L.slogdet, L.cholesky, L.eigh, L.eigvalsh])
def test_non_square_is_a_value_error(fn):
    # numpy's LinAlgError, which is a ValueError
    assert issubclass(np.linalg.LinAlgError, ValueError)
    with pytest.raises(np.linalg.LinAlgError, match=r"square.*\(2, 3\)"):
        fn(symdl.dlarray(np.ones((2, 3))))
    with pytest.raises(ValueError, match="square"):
        fn(symdl.dlarray(np.ones(3)))


def test_complex_input_is_a_type_error():
    with pytest.raises(TypeError, match="complex"):
        L.inv(np.eye(2) * 1j)
    with pytest.raises(TypeError, match="complex"):
        L.solve(np.eye(2), np.ones(2) * 1j)


def test_solve_shape_mismatch_is_a_value_error():
    with pytest.raises(ValueError, match=r"b of shape \(3,\).*\(2, 2\)"):
        L.solve(symdl.dlarray(np.eye(2)), np.ones(3))
    with pytest.raises(ValueError, match=r"b of shape \(3, 1\)"):
        L.solve(symdl.dlarray(np.eye(2)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="broadcast|shape"):
        L.solve(symdl.dlarray(np.ones((3, 2, 2)) + np.eye(2)), np.ones((4, 2, 1)))


def test_bad_norm_arguments():
    x = symdl.dlarray(np.ones((2, 3)))
    with pytest.raises(ValueError, match="'fro'.*vectors"):
        L.norm(x, "fro", axis=0)
    with pytest.raises(ValueError, match="3.*matrices"):
        L.norm(x, 3)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        L.norm(symdl.dlarray(np.ones((2, 2, 2))), 1)
    with pytest.raises(ValueError, match="repeated"):
        L.norm(x, None, axis=(1, 1))
    with pytest.raises(ValueError, match="one or two axes"):
        L.norm(symdl.dlarray(np.ones((2, 2, 2))), None, axis=(0, 1, 2))
    with pytest.raises(TypeError, match="axis"):
        L.norm(x, None, axis="B")


def test_bad_uplo_and_upper():
    with pytest.raises(ValueError, match="UPLO"):
        L.eigh(symdl.dlarray(np.eye(2)), UPLO="X")
    with pytest.raises(TypeError, match="upper"):
        L.cholesky(symdl.dlarray(np.eye(2)), upper="yes")


def test_numpy_linalg_dispatches_on_dlarrays():
    x = symdl.dlarray(np.array([[2.0, 1.0], [1.0, 3.0]]))
    for fn in (np.linalg.inv, np.linalg.det, np.linalg.cholesky, np.linalg.eigvalsh, np.linalg.norm):
        assert isinstance(fn(x), symdl.dlarray)
    w, v = np.linalg.eigh(x)
    assert isinstance(np.linalg.eigh(x), L.EighResult) and isinstance(v, symdl.dlarray)
    assert np.linalg.slogdet(x)._fields == ("sign", "logabsdet")
