"""Derivative checks against references that do not go through symdl's autodiff.

``check_grads(fun, args)`` is the workhorse: ``fun`` is written with numpy
functions and operators (``np.exp(x)``, ``x @ w``, ``x[::-1]``...), so on
dlarrays it runs through symdl's tracing and derivative rules, and on plain
float64 numpy arrays it is its own independent reference.  First-order
gradients and Hessian-vector products from ``dlgradient`` are compared with
Richardson-extrapolated central differences of that reference.

``assert_compiled_matches_interpreter(inputs, outputs, value_sets)`` compiles
a graph once and compares the native results with the numpy reference
interpreter (the oracle) for each set of input values.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import numpy as np

import symdl

__all__ = [
    "check_grads", "numeric_grad", "numeric_hvp", "symdl_grads", "symdl_hvp", "erf_ref", "erf_any",
    "assert_close", "assert_same", "assert_compiled_matches_interpreter",
]

_erf_vec = np.vectorize(math.erf, otypes=[np.float64])


def erf_ref(x: np.ndarray) -> np.ndarray:
    """erf in float64 from the standard library (independent of symdl)."""
    return _erf_vec(np.asarray(x, dtype=np.float64))


def erf_any(x):
    """``symdl.erf`` on dlarrays, the standard-library erf on numpy arrays."""
    if isinstance(x, symdl.dlarray):
        return symdl.erf(x)
    return erf_ref(x)


def assert_close(actual, desired, rtol: float, atol: float, what: str = "") -> None:
    """``assert_allclose`` with ``atol`` scaled by the size of ``desired``."""
    desired = np.asarray(desired, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != expected {desired.shape}"
    scale = max(1.0, float(np.max(np.abs(desired)))) if desired.size else 1.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol * scale, err_msg=what)


# ---------------------------------------------------------------- numeric references

def _as_float64(args: Sequence) -> list[np.ndarray]:
    return [np.array(a, dtype=np.float64) for a in args]


def _richardson(d: Callable[[float], float], h: float) -> float:
    """Central-difference estimate ``d(h)`` with error O(h^2) improved to O(h^4)."""
    return (4.0 * d(h / 2) - d(h)) / 3.0


def _steps(x: np.ndarray, rel: float) -> np.ndarray:
    return rel * (1.0 + np.abs(x))


def numeric_grad(f: Callable[..., float], args: Sequence[np.ndarray], rel: float = 1e-3) -> list[np.ndarray]:
    """Gradient of the scalar numpy function ``f(*args)`` by central differences."""
    args = _as_float64(args)
    grads = []
    for i, a in enumerate(args):
        g = np.zeros_like(a)
        hs = _steps(a, rel)
        for j in np.ndindex(a.shape):
            def d(h, i=i, j=j):
                plus = [b.copy() for b in args]
                minus = [b.copy() for b in args]
                plus[i][j] += h
                minus[i][j] -= h
                return (f(*plus) - f(*minus)) / (2 * h)
            g[j] = _richardson(d, float(hs[j]))
        grads.append(g)
    return grads


def numeric_hvp(f: Callable[..., float], args: Sequence[np.ndarray], vs: Sequence[np.ndarray],
                rel: float = 1e-2) -> list[np.ndarray]:
    """Hessian-vector product ``H v`` of the scalar numpy function ``f`` by mixed
    second central differences: (H v)_j = d/dx_j d/dt f(x + t v)."""
    args = _as_float64(args)
    vs = _as_float64(vs)
    out = []
    for i, a in enumerate(args):
        hv = np.zeros_like(a)
        hs = _steps(a, rel)
        for j in np.ndindex(a.shape):
            def d(h, i=i, j=j):
                def at(si: float, sj: float) -> float:
                    moved = [np.array(b + si * h * v) for b, v in zip(args, vs)]
                    moved[i][j] += sj * h
                    return f(*moved)
                return (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1)) / (4 * h * h)
            hv[j] = _richardson(d, float(hs[j]))
        out.append(hv)
    return out


# ---------------------------------------------------------------- symdl side

def _tuple(g, n: int) -> tuple:
    return (g,) if n == 1 else tuple(g)


def symdl_grads(fun: Callable, args: Sequence[np.ndarray], weights: np.ndarray) -> tuple[list[np.ndarray], list]:
    """``dlgradient`` of ``sum(fun(*args) * weights)`` with respect to every arg:
    the gradients as numpy arrays, and their dtypes."""
    def body(*xs):
        y = symdl.sum(fun(*xs) * weights)
        return _tuple(symdl.dlgradient(y, *xs), len(xs))
    out = symdl.dlfeval(body, *[symdl.dlarray(a) for a in args])
    return [symdl.extractdata(g) for g in out], [g.dtype for g in out]


def symdl_hvp(fun: Callable, args: Sequence[np.ndarray], weights: np.ndarray,
              vs: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray], list]:
    """First-order gradients (traced) and the gradient of ``sum_i <grad_i, v_i>``."""
    def body(*xs):
        y = symdl.sum(fun(*xs) * weights)
        gs = _tuple(symdl.dlgradient(y, *xs, enable_higher_derivatives=True), len(xs))
        s = None
        for g, v in zip(gs, vs):
            term = symdl.sum(g * v.astype(g.dtype))
            s = term if s is None else s + term
        hv = _tuple(symdl.dlgradient(s, *xs), len(xs))
        return gs, hv
    gs, hv = symdl.dlfeval(body, *[symdl.dlarray(a) for a in args])
    return [symdl.extractdata(g) for g in gs], [symdl.extractdata(h) for h in hv], [h.dtype for h in hv]


def _reference(fun: Callable) -> Callable[..., np.ndarray]:
    def ref(*xs):
        return np.asarray(fun(*xs), dtype=np.float64)
    return ref


def check_grads(fun: Callable, args: Sequence, order: int = 2, rtol: float | None = None,
                atol: float | None = None, seed: int = 0) -> None:
    """Check ``dlgradient`` of ``fun`` against central differences, to ``order`` (1 or 2).

    ``fun`` maps arrays to an array of any shape; it is reduced to a scalar with
    fixed random weights.  Every argument is differentiated.  The reference is
    ``fun`` run on float64 numpy arrays, so write ``fun`` with numpy functions
    and operators (they dispatch to symdl on dlarrays).  Arguments keep their
    dtype on the symdl side: float32 arguments must get float32 gradients,
    compared with the float64 reference at float32 tolerances.
    """
    assert order in (1, 2)
    args = [np.asarray(a) for a in args]
    for a in args:
        assert a.dtype in (np.float32, np.float64), f"check_grads: float arguments only, got {a.dtype}"
    low = any(a.dtype == np.float32 for a in args)
    rtol = rtol if rtol is not None else (2e-3 if low else 1e-6)
    atol = atol if atol is not None else (2e-4 if low else 1e-7)
    rng = np.random.default_rng(seed)
    ref = _reference(fun)
    args64 = _as_float64(args)
    out_dtype = np.result_type(*[a.dtype for a in args])
    weights = rng.standard_normal(ref(*args64).shape).astype(out_dtype)

    def scalar(*xs) -> float:
        return float(np.sum(ref(*xs) * weights.astype(np.float64)))

    expect = numeric_grad(scalar, args64)
    got, dtypes = symdl_grads(fun, args, weights)
    for k, (g, e, a, dt) in enumerate(zip(got, expect, args, dtypes)):
        assert dt == a.dtype, f"gradient {k} has dtype {dt}, argument has {a.dtype}"
        assert_close(g, e, rtol, atol, f"first-order gradient of argument {k}")
    if order == 1:
        return
    # unit max-norm directions: finite-difference steps never move an element by more than h
    vs = [rng.standard_normal(a.shape) for a in args]
    top = max(float(np.max(np.abs(v))) for v in vs)
    vs = [v / top for v in vs]
    expect_hv = numeric_hvp(scalar, args64, vs)
    got_g, got_hv, hv_dtypes = symdl_hvp(fun, args, weights, vs)
    for k, (g, e) in enumerate(zip(got_g, expect)):
        assert_close(g, e, rtol, atol, f"traced first-order gradient of argument {k}")
    for k, (h, e, a, dt) in enumerate(zip(got_hv, expect_hv, args, hv_dtypes)):
        assert dt == a.dtype, f"second-order gradient {k} has dtype {dt}, argument has {a.dtype}"
        # second differences lose about half the digits of first differences
        assert_close(h, e, max(rtol, 1e-5), max(atol, 1e-6), f"Hessian-vector product, argument {k}")


def central_grad(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar numpy function ``f`` at ``x`` (float64)."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def toy_reference(x1, x2):
    """The seed's toy function y = sum((x2 - x1^2)^2 + (1 - x1)^2) and its
    gradient, by hand (float64)."""
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    y = np.sum((x2 - x1 ** 2) ** 2 + (1 - x1) ** 2)
    return y, -4.0 * x1 * (x2 - x1 ** 2) - 2.0 * (1 - x1), 2.0 * (x2 - x1 ** 2)


# ---------------------------------------------------------------- compiled == interpreted

def assert_same(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float, what: str) -> None:
    """Same shape, dtype and values (NaN where NaN; ``atol`` relative to the
    largest finite magnitude of ``expected``)."""
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if expected.dtype.kind in "bi":
        np.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    finite = np.isfinite(expected)
    scale = max(1.0, float(np.max(np.abs(expected[finite])))) if finite.any() else 1.0
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=rtol,
                               atol=atol * scale, equal_nan=True, err_msg=what)


def assert_compiled_matches_interpreter(inputs, outputs, value_sets, rtol: float = 1e-12, atol: float = 1e-14,
                                        what: str = ""):
    """Compile ``outputs`` (graph nodes) as functions of ``inputs`` once, then
    compare the native results with ``symdl.ir.interpret`` for each tuple of
    input values.  Returns the native entry."""
    from codegen.compiler import compile_graph
    from symdl.ir.interpret import interpret

    entry = compile_graph(list(inputs), list(outputs)).entry()
    for values in value_sets:
        values = [np.asarray(v, dtype=n.dtype).reshape(n.shape) for n, v in zip(inputs, values)]
        got = entry(*values)
        expected = interpret(list(outputs), dict(zip(inputs, values)))
        assert len(got) == len(outputs)
        for k, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, rtol, atol, f"{what} output {k} ({outputs[k].op}{list(outputs[k].shape)})")
    return entry


def run_in_threads(work: Callable, args: Sequence) -> None:
    """``work(a)`` for every ``a`` of ``args``, each on a Python thread of
    its own, all at once; the first exception a worker raised is raised here
    (so workers may simply assert)."""
    errors: list[BaseException] = []

    def guarded(a):
        try:
            work(a)
        except BaseException as err:  # noqa: BLE001 (raised again below)
            errors.append(err)
    threads = [threading.Thread(target=guarded, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
