"""``jvp`` and ``vjp`` against references that do not go through symdl's
autodiff: central differences of the same function run on plain numpy arrays
(directional derivatives, Jacobians), scipy's ``rosen_hess_prod`` and hand
formulas; compositions with ``grad``, ``hessian``, ``vmap`` and each other;
caching; the compiled graph against the interpreter; error paths.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import rosen_der, rosen_hess_prod

import symdl

from helpers import assert_compiled_matches_interpreter, numeric_grad
from test_transforms import central_jacobian, rosenbrock

RNG = np.random.default_rng(7)
X = RNG.standard_normal(4)
V = RNG.standard_normal(4)
W = RNG.standard_normal((4, 3))


def f(x, w):
    """R^4 x R^(4x3) -> R^3."""
    return np.tanh(x @ w) * np.sum(np.sin(x))


def close(actual, desired, rtol=1e-10, atol=1e-12):
    actual = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"shape {actual.shape} != expected {desired.shape}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


def directional(fun, primals, tangents, h=1e-3):
    """d/dt fun(primals + t tangents) at 0, Richardson-extrapolated central differences."""
    def d(step):
        plus = [p + step * t for p, t in zip(primals, tangents)]
        minus = [p - step * t for p, t in zip(primals, tangents)]
        return (np.asarray(fun(*plus)) - np.asarray(fun(*minus))) / (2 * step)
    return (4.0 * d(h / 2) - d(h)) / 3.0


# ---------------------------------------------------------------- jvp

def test_jvp_against_central_differences_and_jacobian():
    tw = RNG.standard_normal(W.shape)
    y, t = symdl.jvp(f, (X, W), (V, tw))
    close(y, f(X, W))
    close(t, directional(f, [X, W], [V, tw]), rtol=1e-8, atol=1e-10)
    jx = central_jacobian(lambda x: f(x, W), X)
    jw = central_jacobian(lambda w: f(X, w), W)
    close(t, jx @ V + np.tensordot(jw, tw, axes=2), rtol=1e-8, atol=1e-10)


def test_jvp_containers_and_tuple_result():
    def g(p):
        z = p["a"] * p["b"][0] + p["b"][1]
        return z ** 2, {"s": np.sum(np.exp(z))}
    p = {"a": X, "b": [1.5, X[::-1].copy()]}
    tp = {"a": V, "b": [0.5, np.ones(4)]}
    y, t = symdl.jvp(g, (p,), (tp,))
    assert isinstance(t, tuple) and set(t[1]) == {"s"}

    def flat(a, b0, b1):
        z = a * b0 + b1
        return np.concatenate([z ** 2, [np.sum(np.exp(z))]])
    ref = directional(flat, [X, 1.5, X[::-1]], [V, 0.5, np.ones(4)])
    close(t[0], ref[:4], rtol=1e-8, atol=1e-10)
    close(t[1]["s"], ref[4], rtol=1e-8, atol=1e-10)
    close(y[0], flat(X, 1.5, X[::-1])[:4])


def test_jvp_python_floats_give_floats():
    y, t = symdl.jvp(lambda a, b: a * np.sin(b), (2.0, 0.5), (1.0, -1.0))
    assert type(y) is float and type(t) is float
    close(t, np.sin(0.5) - 2.0 * np.cos(0.5))


def test_jvp_float32():
    x32, v32 = X.astype(np.float32), V.astype(np.float32)
    y, t = symdl.jvp(lambda x: np.exp(x) * x, (x32,), (v32,))
    assert y.dtype == np.float32 and t.dtype == np.float32
    close(t, np.exp(X) * (1 + X) * V, rtol=1e-5, atol=1e-6)
    # a Python float tangent takes its primal's dtype (as JAX's weak types)
    _, t = symdl.jvp(lambda s: s * s, (np.float32(3.0),), (1.0,))
    assert np.asarray(t).dtype == np.float32 and float(t) == 6.0


def test_jvp_of_grad_is_hessian_vector_product():
    x = np.array([0.3, -1.2, 0.8, 1.5, 2.0])
    v = np.array([1.0, -0.5, 0.25, 2.0, 0.0])
    g, hv = symdl.jvp(symdl.grad(rosenbrock), (x,), (v,))
    close(g, rosen_der(x))
    close(hv, rosen_hess_prod(x, v), rtol=1e-12, atol=1e-10)


def test_grad_of_function_using_jvp():
    def loss(x):
        _, t = symdl.jvp(lambda z: np.sin(z) * np.sum(z ** 2), (x,), (V,))
        return np.sum(t ** 2)

    def ref(x):
        return float(np.sum(directional(lambda z: np.sin(z) * np.sum(z ** 2), [x], [V]) ** 2))
    # the reference's directional derivative is exact here: by hand
    def t_exact(x):
        return np.cos(x) * V * np.sum(x ** 2) + np.sin(x) * 2 * np.sum(x * V)
    assert np.allclose(directional(lambda z: np.sin(z) * np.sum(z ** 2), [X], [V]), t_exact(X), atol=1e-9)
    got = symdl.grad(loss)(X)
    close(got, numeric_grad(lambda x: float(np.sum(t_exact(x) ** 2)), [X])[0], rtol=1e-7, atol=1e-9)
    del ref


def test_jvp_of_jvp_second_directional_derivative():
    fun = lambda x: np.sum(np.exp(x) * x ** 2)   # noqa: E731
    inner = lambda x: symdl.jvp(fun, (x,), (V,))[1]   # noqa: E731
    _, second = symdl.jvp(inner, (X,), (V,))
    # d2/dt2 sum(exp(x) x^2) along v: sum(exp(x) (x^2 + 4x + 2) v^2)
    close(second, np.sum(np.exp(X) * (X ** 2 + 4 * X + 2) * V ** 2))


def test_hessian_of_jvp_third_order():
    H = symdl.hessian(lambda x: symdl.jvp(lambda z: np.sum(z ** 4), (x,), (V,))[1])(X)
    close(H, np.diag(24 * X * V))   # d2/dx2 of sum(4 x^3 v)


def test_jvp_with_one_array_as_two_primals():
    # inside grad, x is one traced node passed as both primals: each must stay
    # its own variable (only the first gets a tangent)
    got = symdl.grad(lambda x: np.sum(symdl.jvp(lambda a, b: a * b ** 2, (x, x), (V, np.zeros(4)))[1]))(X)
    close(got, 2 * X * V)   # d/dx sum(v x^2)


def test_vmap_of_jvp_and_jvp_of_vmap():
    batch = RNG.standard_normal((3, 4))
    fun = lambda z: np.tanh(z) * np.sum(z)   # noqa: E731
    got = symdl.vmap(lambda z: symdl.jvp(fun, (z,), (V,))[1])(batch)
    close(got, np.stack([directional(fun, [b], [V]) for b in batch]), rtol=1e-8, atol=1e-10)
    tb = RNG.standard_normal((3, 4))
    _, t = symdl.jvp(symdl.vmap(fun), (batch,), (tb,))
    close(t, np.stack([directional(fun, [b], [v]) for b, v in zip(batch, tb)]), rtol=1e-8, atol=1e-10)


def test_jvp_guards_retrace_on_the_other_branch():
    def piecewise(x):
        return x ** 2 if float(x) > 0 else -3.0 * x
    assert symdl.jvp(piecewise, (2.0,), (1.0,)) == (4.0, 4.0)
    assert symdl.jvp(piecewise, (-2.0,), (1.0,)) == (6.0, -3.0)
    assert symdl.jvp(piecewise, (3.0,), (1.0,)) == (9.0, 6.0)


def test_jvp_is_cached_per_function():
    calls = []

    def counted(x):
        calls.append(1)
        return np.sin(x)
    for k in range(3):
        _, t = symdl.jvp(counted, (X + k,), (V,))
        close(t, np.cos(X + k) * V)
    assert len(calls) == 1
    symdl.jvp(counted, (X[:2],), (V[:2],))   # a new signature: a new trace
    assert len(calls) == 2


# ---------------------------------------------------------------- vjp

def test_vjp_against_cotangent_times_jacobian():
    y, pullback = symdl.vjp(f, X, W)
    close(y, f(X, W))
    c = RNG.standard_normal(3)
    gx, gw = pullback(c)
    close(gx, c @ central_jacobian(lambda x: f(x, W), X), rtol=1e-8, atol=1e-10)
    close(gw, np.tensordot(c, central_jacobian(lambda w: f(X, w), W), axes=1), rtol=1e-8, atol=1e-10)


def test_vjp_containers():
    def g(p, s):
        return {"u": np.sum(p["w"] * s), "v": p["w"] * p["b"]}
    p = {"w": X, "b": 0.5}
    out, pullback = symdl.vjp(g, p, 2.0)
    close(out["u"], np.sum(X) * 2.0)
    (gp, gs) = pullback({"u": 1.0, "v": V})
    assert set(gp) == {"w", "b"}
    close(gp["w"], 2.0 + V * 0.5)
    close(gp["b"], np.sum(V * X))
    close(gs, np.sum(X))


class Counter:
    """Counts calls (an object attribute: the function watch does not read
    it, while a list in a closure would count as the function's state)."""
    n = 0


def test_pullback_is_compiled_once():
    calls = Counter()

    def counted(x, w):
        calls.n += 1
        return f(x, w)
    _, pullback = symdl.vjp(counted, X, W)
    first = calls.n
    c1, c2 = RNG.standard_normal(3), RNG.standard_normal(3)
    g1 = pullback(c1)
    g2 = pullback(c2)
    assert calls.n == first + 1               # the pullback traced once, reused for the second cotangent
    assert pullback.hit_rate == 50.0
    close(g1[0] + g2[0], pullback(c1 + c2)[0], rtol=1e-12)   # linear in the cotangent
    # another vjp of the same function and signature reuses both compiled parts
    _, again = symdl.vjp(counted, X + 1.0, W)
    again(c1)
    assert calls.n == first + 1


def test_vjp_of_grad_is_hessian_vector_product():
    x = np.array([0.3, -1.2, 0.8, 1.5, 2.0])
    v = np.array([1.0, -0.5, 0.25, 2.0, 0.0])
    g, pullback = symdl.vjp(symdl.grad(rosenbrock), x)
    close(g, rosen_der(x))
    (hv,) = pullback(v)
    close(hv, rosen_hess_prod(x, v), rtol=1e-12, atol=1e-10)   # the Hessian is symmetric


def test_grad_through_pullback():
    c = RNG.standard_normal(3)

    def loss(w):
        _, pullback = symdl.vjp(lambda x: f(x, w), X)
        return np.sum(pullback(c)[0] ** 2)

    def ref(w):
        return float(np.sum((c @ central_jacobian(lambda x: f(x, w), X, h=1e-2)) ** 2))
    got = symdl.grad(loss)(W)
    # central differences of a central-difference Jacobian: a loose check,
    # and the exact one by nested dlgradient
    close(got, numeric_grad(ref, [W], rel=1e-3)[0], rtol=1e-4, atol=1e-6)
    def nested(x, w):   # the same second derivative by nested dlgradient
        gx = symdl.dlgradient(symdl.sum(f(x, w) * c), x, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(gx ** 2), w)
    exact = symdl.extractdata(symdl.dlfeval(nested, symdl.dlarray(X), symdl.dlarray(W)))
    close(got, exact, rtol=1e-10, atol=1e-12)


def test_vmap_of_pullback_gives_jacobian_rows():
    _, pullback = symdl.vjp(lambda x: f(x, W), X)
    rows = symdl.vmap(lambda c: pullback(c)[0])(np.eye(3))
    close(rows, central_jacobian(lambda x: f(x, W), X), rtol=1e-8, atol=1e-10)


def test_vjp_python_float_primal_gives_float_gradient():
    y, pullback = symdl.vjp(lambda a: a ** 3, 2.0)
    assert y == 8.0 and pullback(1.0) == (12.0,)


# ---------------------------------------------------------------- compiled == interpreted

def test_compiled_matches_interpreter():
    graph = symdl.trace(lambda x, w, v: symdl.jvp(f, (x, w), (v, w)), X, W, V)
    assert_compiled_matches_interpreter(graph.inputs, graph.outputs, [(X, W, V), (V, -W, X)])
    c = RNG.standard_normal(3)
    graph = symdl.trace(lambda x, w, c: symdl.vjp(f, x, w)[1](c), X, W, c)
    assert_compiled_matches_interpreter(graph.inputs, graph.outputs, [(X, W, c), (V, W * 2, -c)])


# ---------------------------------------------------------------- errors

def test_jvp_errors():
    with pytest.raises(ValueError, match=r"tangent leaf 0 has shape \(3,\), but its primal has shape \(4,\)"):
        symdl.jvp(np.sin, (X,), (np.ones(3),))
    with pytest.raises(TypeError, match="tangent leaf 0 has dtype float32, but its primal has dtype float64"):
        symdl.jvp(np.sin, (X,), (V.astype(np.float32),))
    structure = r"tangents must have the structure of primals, \(\{'a': x\},\); got \(\[x\],\)"
    with pytest.raises(ValueError, match=structure):
        symdl.jvp(lambda p: p["a"], ({"a": X},), ([V],))
    with pytest.raises(ValueError, match="primals has 1 entries but tangents has 2"):
        symdl.jvp(np.sin, (X,), (V, V))
    with pytest.raises(TypeError, match="primals must be a tuple or list"):
        symdl.jvp(np.sin, X, V)
    with pytest.raises(TypeError, match="tangents must be a tuple or list"):
        symdl.jvp(np.sin, (X,), V)
    with pytest.raises(TypeError, match="primals must be float arrays or floats .* got str"):
        symdl.jvp(lambda s: s, ("a",), ("b",))
    with pytest.raises(TypeError, match="fun must be callable"):
        symdl.jvp(None, (X,), (V,))
    with pytest.raises(TypeError, match="fun must return arrays or floats"):
        symdl.jvp(lambda x: "x", (X,), (V,))


def test_vjp_errors():
    _, pullback = symdl.vjp(f, X, W)
    with pytest.raises(ValueError, match=r"cotangent leaf 0 has shape \(4,\), but its result has shape \(3,\)"):
        pullback(np.ones(4))
    with pytest.raises(TypeError, match="cotangent leaf 0 has dtype float32, but its result has dtype float64"):
        pullback(np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"cotangent must have the structure of fun's result, x; got \(x, x\)"):
        pullback((np.ones(3), np.ones(3)))
    with pytest.raises(TypeError, match="give at least one primal"):
        symdl.vjp(f)
    with pytest.raises(TypeError, match="primals must be float arrays or floats .* got str"):
        symdl.vjp(lambda s: s, "a")
    with pytest.raises(TypeError, match="fun must be callable"):
        symdl.vjp(3, X)


def test_functions_closing_over_an_outer_traced_value():
    # X and V are plain numpy arrays, w a value of grad's trace: jvp and vjp
    # are built in grad's trace, so w stays a variable
    def via_jvp(w):
        return np.sum(symdl.jvp(lambda x: f(x, w), (X,), (V,))[1])

    def via_vjp(w):
        return np.sum(symdl.vjp(lambda x: f(x, w), X)[1](np.ones(3))[0] * V)

    def ref(w):   # sum(J_x V), by a central difference along V
        return float(np.sum(directional(lambda x: f(x, w), [X], [V])))
    expect = numeric_grad(ref, [W])[0]
    close(symdl.grad(via_jvp)(W), expect, rtol=1e-5, atol=1e-7)
    close(symdl.grad(via_vjp)(W), expect, rtol=1e-5, atol=1e-7)   # 1 @ J_x @ V is the same number


def test_has_aux():
    y, t, aux = symdl.jvp(lambda x: (np.sin(x), {"sq": x ** 2, "tag": "hi"}), (X,), (V,), has_aux=True)
    close(t, np.cos(X) * V)
    close(aux["sq"], X ** 2)
    assert aux["tag"] == "hi"
    y, pullback, aux = symdl.vjp(lambda x: (np.sum(x ** 2), x * 3.0), X, has_aux=True)
    close(y, np.sum(X ** 2))
    close(aux, X * 3.0)
    close(pullback(2.0)[0], 4.0 * X)
    # aux is a value of the outer trace too: grad of a function of it
    got = symdl.grad(lambda x: np.sum(symdl.jvp(lambda z: (z ** 2, z ** 3), (x,), (V,), has_aux=True)[2]))(X)
    close(got, 3 * X ** 2)
    with pytest.raises(TypeError, match=r"has_aux=True, fun must return a pair \(output, aux\), got dlarray"):
        symdl.jvp(lambda x: x, (X,), (V,), has_aux=True)
    with pytest.raises(TypeError, match="has_aux must be True or False"):
        symdl.vjp(np.sin, X, has_aux=1)


def test_no_perturbation_confusion():
    # d/dx [ d/da (a x) at a = x ] = d/dx x = 1 (the inner derivative treats
    # the closed-over x as a constant even though the primal is x itself)
    assert symdl.grad(lambda x: symdl.jvp(lambda a: a * x, (x,), (1.0,))[1])(2.0) == 1.0
    assert symdl.grad(lambda x: symdl.vjp(lambda a: a * x, x)[1](1.0)[0])(2.0) == 1.0
    assert symdl.grad(lambda x: symdl.grad(lambda a: a * x)(x))(2.0) == 1.0     # was 2.0 before stand-ins
    hv = symdl.grad(lambda x: np.sum(symdl.jacobian(lambda a: a * x)(x)))(X)        # d/dx sum(diag(x))
    close(hv, np.ones(4))


def test_vmap_of_jvp_over_tangents_gives_jacobian_columns():
    cols = symdl.vmap(lambda t: symdl.jvp(lambda x: f(x, W), (X,), (t,))[1], out_axes=1)(np.eye(4))
    close(cols, central_jacobian(lambda x: f(x, W), X), rtol=1e-8, atol=1e-10)


def test_vjp_float32_and_dlarrays():
    x32 = X.astype(np.float32)
    y, pullback = symdl.vjp(lambda x: np.exp(x) * x, x32)
    (g,) = pullback(np.ones(4, np.float32))
    assert y.dtype == np.float32 and g.dtype == np.float32
    close(g, np.exp(X) * (1 + X), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="cotangent leaf 0 has dtype float64, but its result has dtype float32"):
        pullback(np.ones(4))
    y, t = symdl.jvp(np.sin, (symdl.dlarray(X),), (symdl.dlarray(V),))
    assert isinstance(y, symdl.dlarray) and isinstance(t, symdl.dlarray)
    close(symdl.extractdata(t), np.cos(X) * V)
    _, pullback = symdl.vjp(np.sin, symdl.dlarray(X))
    (g,) = pullback(symdl.dlarray(V))
    assert isinstance(g, symdl.dlarray)
    close(symdl.extractdata(g), np.cos(X) * V)


def test_ieee_keyword():
    # (x + 1) - x: 1 in real-number algebra (the default), 0 step by step in
    # IEEE at x = 1e300 (numpy's value)
    x = np.array([[1e300, 1.0]])
    fun = lambda x: (x + 1.0) - x   # noqa: E731
    close(symdl.vmap(fun, ieee=True)(x), fun(x))
    close(symdl.jvp(fun, (x,), (x,), ieee=True)[0], fun(x))
    close(symdl.vjp(fun, x, ieee=True)[0], fun(x))
    close(symdl.vmap(fun)(x), np.ones((1, 2)))
    with pytest.raises(TypeError, match="ieee must be True or False"):
        symdl.vmap(fun, ieee=1)
    with pytest.raises(TypeError, match="ieee must be True or False"):
        symdl.jvp(fun, (x,), (x,), ieee="yes")
