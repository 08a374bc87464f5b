"""The compiled function transforms grad, value_and_grad, jacobian, hessian,
hvp and derivative, against references that do not go through symdl:
closed forms, scipy.optimize.rosen_der / rosen_hess / rosen_hess_prod,
central differences of the same function run on plain numpy arrays, and
``sympy.diff``.

The functions under test are written with numpy functions and operators, so on
float64 numpy arrays they are their own independent reference.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import sympy
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess, rosen_hess_prod

import symdl

X = sympy.Symbol("x", real=True)


def rosenbrock(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def cubic(x):
    return np.sum(x ** 3)


def cube(x):
    return x ** 3


POINT = np.array([0.3, -1.2, 0.8, 1.5, 2.0])


# ---------------------------------------------------------------- numeric references

def central_jacobian(f, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """d f / d x with f's axes first, by Richardson-extrapolated central differences."""
    x = np.array(x, dtype=np.float64)
    y0 = np.asarray(f(x), dtype=np.float64)
    jac = np.zeros(y0.shape + x.shape)
    for j in np.ndindex(x.shape):
        def d(step, j=j):
            plus, minus = x.copy(), x.copy()
            plus[j] += step
            minus[j] -= step
            return (np.asarray(f(plus)) - np.asarray(f(minus))) / (2 * step)
        jac[(...,) + j] = (4.0 * d(h / 2) - d(h)) / 3.0
    return jac


def assert_close(actual, desired, rtol=1e-7, atol=1e-8):
    actual = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"shape {actual.shape} != expected {desired.shape}"
    np.testing.assert_allclose(actual.astype(np.float64), desired, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- grad / value_and_grad

def test_grad_closed_form_and_rosenbrock():
    x = np.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.25]])
    g = symdl.grad(cubic)(x)
    assert type(g) is np.ndarray and g.dtype == np.float64
    assert_close(g, 3 * x ** 2, rtol=1e-14, atol=0)
    assert_close(symdl.grad(rosenbrock)(POINT), rosen_der(POINT), rtol=1e-13, atol=1e-12)


def test_grad_of_a_general_function_against_central_differences():
    w = np.array([[0.3, -0.2], [0.5, 0.1], [-0.4, 0.7]])

    def f(x, b):
        h = np.tanh(x @ w + b)
        return np.sum(np.exp(-h ** 2) * np.sin(x[:, :2] * 3.0)) + np.sum(np.sqrt(1.0 + b ** 2))

    rng = np.random.default_rng(0)
    x, b = rng.standard_normal((4, 3)), rng.standard_normal(2)
    gx, gb = symdl.grad(f, argnums=(0, 1))(x, b)
    assert_close(gx, central_jacobian(lambda t: f(t, b), x), rtol=1e-7, atol=1e-9)
    assert_close(gb, central_jacobian(lambda t: f(x, t), b), rtol=1e-7, atol=1e-9)


def test_value_and_grad():
    value, g = symdl.value_and_grad(rosenbrock)(POINT)
    assert type(g) is np.ndarray
    assert_close(value, rosen(POINT), rtol=1e-14, atol=0)
    assert_close(g, rosen_der(POINT), rtol=1e-13, atol=1e-12)

    def f(a, b):
        return np.sum(a * b ** 2)

    a, b = np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5, 2.0])
    value, grads = symdl.value_and_grad(f, argnums=(0, 1))(a, b)
    assert isinstance(grads, tuple) and len(grads) == 2
    assert_close(value, np.sum(a * b ** 2), rtol=1e-15, atol=0)
    assert_close(grads[0], b ** 2, rtol=1e-15, atol=0)
    assert_close(grads[1], 2 * a * b, rtol=1e-15, atol=0)


def test_argnums_int_selects_one_argument_and_tuple_returns_tuple():
    def f(a, b, c):
        return np.sum(a * np.sin(b) + c ** 2 * b)

    a, b, c = np.array([1.0, 2.0]), np.array([0.5, -0.3]), np.array([2.0, -1.0])
    gb = symdl.grad(f, argnums=1)(a, b, c)
    assert type(gb) is np.ndarray
    assert_close(gb, a * np.cos(b) + c ** 2, rtol=1e-14, atol=0)
    assert_close(symdl.grad(f, argnums=-1)(a, b, c), 2 * c * b, rtol=1e-14, atol=0)
    out = symdl.grad(f, argnums=(2, 0))(a, b, c)
    assert isinstance(out, tuple) and len(out) == 2
    assert_close(out[0], 2 * c * b, rtol=1e-14, atol=0)
    assert_close(out[1], np.sin(b), rtol=1e-14, atol=0)
    single = symdl.grad(f, argnums=(0,))(a, b, c)
    assert isinstance(single, tuple) and len(single) == 1
    assert_close(single[0], np.sin(b), rtol=1e-14, atol=0)


def test_grad_through_reversed_and_strided_slices():
    x = np.array([0.3, -1.1, 0.8, 2.0])
    assert_close(symdl.grad(lambda x: np.sum(x * x[::-1]))(x), 2 * x[::-1], rtol=1e-15, atol=0)
    assert_close(symdl.grad(lambda x: np.sum(np.sin(x[::-1]) * np.arange(4.0)))(x),
                 np.cos(x) * np.arange(4.0)[::-1], rtol=1e-15, atol=0)
    expect = np.zeros(4)
    expect[3::-2] = 3 * x[3::-2] ** 2
    assert_close(symdl.grad(lambda x: np.sum(x[::-2] ** 3))(x), expect, rtol=1e-15, atol=0)
    m = np.arange(6.0).reshape(2, 3)
    assert_close(symdl.grad(lambda m: np.sum(m[::-1, ::-1] * m))(m), 2 * m[::-1, ::-1], rtol=0, atol=0)


def test_grad_of_unused_argument_is_zero():
    g = symdl.grad(lambda a, b: np.sum(a ** 2), argnums=1)(np.ones(3), np.array([[1.0, 2.0]]))
    assert_close(g, np.zeros((1, 2)), rtol=0, atol=0)


def test_grad_of_a_python_float_and_a_size_one_output():
    g = symdl.grad(lambda t: t ** 3 + np.sin(t))(2.0)
    assert_close(g, 3 * 4.0 + np.cos(2.0), rtol=1e-15, atol=0)
    g = symdl.grad(lambda x: np.reshape(np.sum(x * x), (1, 1)))(np.array([1.0, -2.0]))
    assert_close(g, [2.0, -4.0], rtol=0, atol=0)


def test_value_dependent_python_control_flow_is_not_frozen():
    def f(x):
        if float(np.sum(x)) > 0:
            return np.sum(x ** 2)
        return np.sum(x ** 3)

    g = symdl.grad(f)
    pos, neg = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    assert_close(g(pos), 2 * pos, rtol=0, atol=0)
    assert_close(g(neg), 3 * neg ** 2, rtol=0, atol=0)
    assert_close(g(pos * 3), 6 * pos, rtol=0, atol=0)


# ---------------------------------------------------------------- jacobian

A = np.array([[0.5, -1.0, 0.2, 0.0, 1.5], [2.0, 0.3, -0.7, 1.1, -0.4]])


def test_jacobian_fewer_outputs_than_inputs():          # m < n: reverse mode
    x = np.array([0.1, -0.5, 1.2, 0.7, -2.0])
    J = symdl.jacobian(lambda x: A @ np.tanh(x))(x)
    assert type(J) is np.ndarray and J.shape == (2, 5)
    assert_close(J, A * (1 - np.tanh(x) ** 2), rtol=1e-14, atol=1e-15)


def test_jacobian_more_outputs_than_inputs():           # m > n: forward mode
    x = np.array([0.4, -1.3])

    def f(x):
        return np.concatenate([x * x[::-1], np.sin(x) ** 2, np.exp(x[:1] * x[1:]), A.T[:, :1] @ x[:1]])

    J = symdl.jacobian(f)(x)
    assert J.shape == (10, 2)
    expect = np.zeros((10, 2))
    expect[0] = [x[1], x[0]]
    expect[1] = [x[1], x[0]]
    expect[2:4] = np.diag(2 * np.sin(x) * np.cos(x))
    expect[4] = np.exp(x[0] * x[1]) * np.array([x[1], x[0]])
    expect[5:, 0] = A[0]
    assert_close(J, expect, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("out_shape", [(2, 2), (2, 3, 4)], ids=["m<n", "m>n"])
def test_jacobian_shape_is_output_dims_then_input_dims(out_shape):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3))
    w = rng.standard_normal(out_shape + (2, 3))

    def f(x):
        flat = np.reshape(x, (6,))
        return np.tanh(np.reshape(np.reshape(w, (-1, 6)) @ (flat * np.cos(flat)), out_shape))

    J = symdl.jacobian(f)(x)
    assert J.shape == out_shape + (2, 3)
    assert_close(J, central_jacobian(f, x), rtol=1e-7, atol=1e-9)


def test_jacobian_of_scalar_output_and_of_scalar_input():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    J = symdl.jacobian(lambda x: np.sum(x ** 2))(x)
    assert J.shape == (2, 2)
    assert_close(J, 2 * x, rtol=0, atol=0)
    J = symdl.jacobian(lambda t: np.stack([t, t ** 2, np.sin(t)]))(np.array(0.5))
    assert J.shape == (3,)
    assert_close(J, [1.0, 1.0, np.cos(0.5)], rtol=1e-15, atol=0)


def test_jacobian_argnums_tuple():
    def f(a, b):
        return a * np.sum(b ** 2)

    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0])
    Ja, Jb = symdl.jacobian(f, argnums=(0, 1))(a, b)
    assert_close(Ja, np.eye(3) * np.sum(b ** 2), rtol=0, atol=0)
    assert_close(Jb, np.outer(a, 2 * b), rtol=0, atol=0)
    Jb_only = symdl.jacobian(f, argnums=1)(a, b)
    assert type(Jb_only) is np.ndarray
    assert_close(Jb_only, np.outer(a, 2 * b), rtol=0, atol=0)


# ---------------------------------------------------------------- hessian / hvp

def test_hessian_rosenbrock_and_closed_form():
    H = symdl.hessian(rosenbrock)(POINT)
    assert type(H) is np.ndarray and H.shape == (5, 5)
    assert_close(H, rosen_hess(POINT), rtol=1e-13, atol=1e-12)
    x = np.array([0.5, -2.0, 3.0])
    assert_close(symdl.hessian(cubic)(x), np.diag(6 * x), rtol=0, atol=0)


def test_hessian_of_matrix_input_has_shape_x_shape_twice():
    def f(x):
        return (np.sum(np.sin(x) * x[:, [2, 0, 1]]) + np.sum(np.sum(x, axis=1) ** 3)
                + np.sum(x[0] * x[1] ** 2) + np.sum(x[:, 1:] * np.exp(x[:, :-1])))

    # the same function in SymPy, differentiated exactly
    s = sympy.Matrix(2, 3, sympy.symbols("s0:6", real=True))
    perm = [2, 0, 1]
    expr = sum(sympy.sin(s[i, j]) * s[i, perm[j]] for i in range(2) for j in range(3)) \
        + sum(sum(s[i, j] for j in range(3)) ** 3 for i in range(2)) + sum(s[0, j] * s[1, j] ** 2 for j in range(3)) \
        + sum(s[i, j + 1] * sympy.exp(s[i, j]) for i in range(2) for j in range(2))
    x = np.array([[0.3, -1.1, 0.8], [1.4, 0.2, -0.6]])
    at = dict(zip(list(s), x.ravel()))
    expect = np.array(sympy.hessian(expr, list(s)).subs(at).evalf(), dtype=np.float64).reshape(2, 3, 2, 3)
    assert_close(f(x), float(expr.subs(at)), rtol=1e-14, atol=0)   # the two definitions agree
    H = symdl.hessian(f)(x)
    assert H.shape == (2, 3, 2, 3)
    assert_close(H, expect, rtol=1e-13, atol=1e-13)


def test_hessian_argnums_tuple_gives_blocks():
    def f(a, b):
        return np.sum(a ** 2 * b[0]) + np.sum(np.sin(b) * b)

    a, b = np.array([1.0, -2.0]), np.array([0.5, 1.5, -1.0])
    H = symdl.hessian(f, argnums=(0, 1))(a, b)
    assert len(H) == 2 and all(len(row) == 2 for row in H)
    Haa, Hab = H[0]
    Hba, Hbb = H[1]
    assert Haa.shape == (2, 2) and Hab.shape == (2, 3) and Hba.shape == (3, 2) and Hbb.shape == (3, 3)
    assert_close(Haa, 2 * b[0] * np.eye(2), rtol=0, atol=0)
    e0 = np.array([1.0, 0.0, 0.0])
    assert_close(Hab, np.outer(2 * a, e0), rtol=0, atol=0)
    assert_close(Hba, np.outer(e0, 2 * a), rtol=0, atol=0)
    assert_close(Hbb, np.diag(2 * np.cos(b) - b * np.sin(b)), rtol=1e-15, atol=1e-15)


def test_hvp():
    v = np.array([1.0, -0.5, 2.0, 0.0, 0.3])
    hv = symdl.hvp(rosenbrock)(POINT, v)
    assert type(hv) is np.ndarray and hv.shape == (5,)
    assert_close(hv, rosen_hess_prod(POINT, v), rtol=1e-13, atol=1e-12)
    x = np.array([[0.5, -1.0], [2.0, 0.25]])
    w = np.array([[1.0, 2.0], [-1.0, 0.5]])
    assert_close(symdl.hvp(cubic)(x, w), 6 * x * w, rtol=1e-15, atol=0)

    def f(a, b):
        return np.sum(a * b ** 3)

    a, b, u = np.array([1.0, 2.0]), np.array([0.5, -1.5]), np.array([2.0, 1.0])
    assert_close(symdl.hvp(f, argnums=1)(a, b, u), 6 * a * b * u, rtol=1e-15, atol=0)


def test_hvp_of_a_general_function_against_sympy():
    def f(x):
        return np.sum(np.exp(-x ** 2) * np.cos(x[:, 1:] * x[:, :-1]).sum(axis=1)[:, None]) + np.sum(np.log1p(x ** 4))

    s = sympy.Matrix(2, 3, sympy.symbols("s0:6", real=True))
    expr = sum(sympy.exp(-s[i, j] ** 2) * sum(sympy.cos(s[i, k + 1] * s[i, k]) for k in range(2))
               for i in range(2) for j in range(3)) + sum(sympy.log(1 + t ** 4) for t in s)
    x = np.array([[0.3, -1.1, 0.8], [1.4, 0.2, -0.6]])
    v = np.array([[1.0, -2.0, 0.5], [0.0, 0.3, -1.0]])
    at = dict(zip(list(s), x.ravel()))
    hess = np.array(sympy.hessian(expr, list(s)).subs(at).evalf(), dtype=np.float64)
    assert_close(f(x), float(expr.subs(at)), rtol=1e-14, atol=0)
    assert_close(symdl.hvp(f)(x, v), (hess @ v.ravel()).reshape(2, 3), rtol=1e-12, atol=1e-12)
    assert_close(symdl.hessian(f)(x), hess.reshape(2, 3, 2, 3), rtol=1e-12, atol=1e-12)


def test_hessian_through_maximum_and_where():
    x = np.array([-1.5, -0.2, 0.4, 2.0])
    H = symdl.hessian(lambda x: np.sum(np.maximum(x, 0.0) ** 3 + np.where(x > 0, x ** 2, -x ** 4)))(x)
    assert_close(H, np.diag(6 * np.maximum(x, 0) + np.where(x > 0, 2.0, -12 * x ** 2)), rtol=1e-15, atol=0)


def test_transforms_of_functions_that_do_not_depend_on_the_argument():
    x, y = np.array([1.0, 2.0, 3.0]), np.array([[0.5, -1.0]])
    J = symdl.jacobian(lambda x, y: y * 2.0, argnums=0)(x, y)
    assert_close(J, np.zeros((1, 2, 3)), rtol=0, atol=0)
    assert_close(symdl.hvp(lambda x: np.sum(x) * 2.0)(x, x), np.zeros(3), rtol=0, atol=0)
    assert_close(symdl.hessian(lambda x: np.sum(x) * 2.0)(x), np.zeros((3, 3)), rtol=0, atol=0)
    assert_close(symdl.derivative(lambda x: x * 2.0 + 1.0, order=2)(x), np.zeros(3), rtol=0, atol=0)


# ---------------------------------------------------------------- derivative

@cache
def sympy_nth(expr: sympy.Expr, n: int):
    return sympy.lambdify(X, sympy.diff(expr, X, n), "numpy")


DERIVATIVE_CASES = {
    "exp(sin x)/(1+x^2)": (lambda x: np.exp(np.sin(x)) / (1 + x ** 2), sympy.exp(sympy.sin(X)) / (1 + X ** 2)),
    "tanh(x)*log1p(x^2)": (lambda x: np.tanh(x) * np.log1p(x ** 2), sympy.tanh(X) * sympy.log(1 + X ** 2)),
    "sqrt(1+x^2)*cos(3x)": (lambda x: np.sqrt(1 + x ** 2) * np.cos(3 * x), sympy.sqrt(1 + X ** 2) * sympy.cos(3 * X)),
}


@pytest.mark.parametrize("name", list(DERIVATIVE_CASES))
@pytest.mark.parametrize("order", range(0, 7))
def test_derivative_against_sympy(name, order):
    fun, expr = DERIVATIVE_CASES[name]
    x = np.array([[-2.0, -0.7, 0.0], [0.3, 1.2, 2.5]])
    d = symdl.derivative(fun, order=order)(x)
    assert type(d) is np.ndarray and d.shape == x.shape and d.dtype == np.float64
    expect = np.broadcast_to(sympy_nth(expr, order)(x), x.shape)
    assert_close(d, expect, rtol=1e-11, atol=1e-11 * max(1.0, float(np.max(np.abs(expect)))))


def test_derivative_of_user_elementwise_function():
    softplus = symdl.elementwise(lambda t: sympy.log(1 + sympy.exp(t)), name="tr_softplus")
    expr = sympy.log(1 + sympy.exp(X))
    x = np.linspace(-3.0, 3.0, 7)
    for order in (1, 2, 4):
        assert_close(symdl.derivative(softplus, order=order)(x), sympy_nth(expr, order)(x), rtol=1e-12, atol=1e-13)


def test_derivative_of_piecewise_functions_away_from_the_kinks():
    x = np.array([-2.0, -0.5, 0.5, 3.0])
    assert_close(symdl.derivative(np.abs)(x), np.sign(x), rtol=0, atol=0)
    assert_close(symdl.derivative(np.abs, order=2)(x), np.zeros(4), rtol=0, atol=0)
    relu3 = symdl.derivative(lambda t: np.maximum(t, 0.0) ** 3, order=2)
    assert_close(relu3(x), 6 * np.maximum(x, 0.0), rtol=1e-15, atol=0)


def test_derivative_default_order_is_one():
    x = np.array([0.1, 0.2])
    assert_close(symdl.derivative(np.sin)(x), np.cos(x), rtol=1e-15, atol=0)


# ---------------------------------------------------------------- dtypes and array types

F32_TRANSFORMS = {
    "grad": (lambda: symdl.grad(rosenbrock), (POINT,), lambda x: rosen_der(x)),
    "value_and_grad": (lambda: symdl.value_and_grad(rosenbrock), (POINT,), lambda x: (rosen(x), rosen_der(x))),
    "hessian": (lambda: symdl.hessian(rosenbrock), (POINT,), lambda x: rosen_hess(x)),
    "jacobian": (lambda: symdl.jacobian(lambda x: A @ np.tanh(x)), (POINT,), lambda x: A * (1 - np.tanh(x) ** 2)),
    "hvp": (lambda: symdl.hvp(rosenbrock), (POINT, np.ones(5)), lambda x, v: rosen_hess_prod(x, v)),
    "derivative": (lambda: symdl.derivative(np.sin, order=3), (POINT,), lambda x: -np.cos(x)),
}


def _leaves(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("name", list(F32_TRANSFORMS))
def test_float32_stays_float32(name):
    make, args, ref = F32_TRANSFORMS[name]
    out = make()(*[a.astype(np.float32) for a in args])
    expect = ref(*[a.astype(np.float32).astype(np.float64) for a in args])
    for got, e in zip(_leaves(out), _leaves(expect)):
        assert np.asarray(got).dtype == np.float32, f"{name} returned {np.asarray(got).dtype}"
        scale = max(1.0, float(np.max(np.abs(e))))
        assert_close(got, e, rtol=2e-5, atol=2e-5 * scale)


@pytest.mark.parametrize("name", list(F32_TRANSFORMS))
def test_dlarray_in_dlarray_out_numpy_in_numpy_out(name):
    make, args, ref = F32_TRANSFORMS[name]
    fn = make()
    expect = ref(*args)
    from_numpy = fn(*args)
    from_dl = fn(*[symdl.dlarray(a) for a in args])
    for got_np, got_dl, e in zip(_leaves(from_numpy), _leaves(from_dl), _leaves(expect)):
        assert isinstance(got_dl, symdl.dlarray), f"{name}: dlarray input gave {type(got_dl).__name__}"
        assert isinstance(got_np, (np.ndarray, np.floating)) and not isinstance(got_np, symdl.dlarray), \
            f"{name}: numpy input gave {type(got_np).__name__}"
        assert_close(symdl.extractdata(got_dl), e, rtol=1e-12, atol=1e-12)
        assert_close(got_np, e, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- caching

def _counting(fun):
    calls = [0]

    def counted(*args):
        calls[0] += 1
        return fun(*args)
    return counted, calls


CACHE_TRANSFORMS = {
    "grad": (symdl.grad, (1,), lambda x: 3 * x ** 2),
    "value_and_grad": (symdl.value_and_grad, (1,), lambda x: (np.sum(x ** 3), 3 * x ** 2)),
    "jacobian": (symdl.jacobian, (1,), lambda x: np.diag(3 * x.ravel() ** 2).reshape(x.shape + x.shape)),
    "hessian": (symdl.hessian, (1,), lambda x: np.diag(6 * x.ravel()).reshape(x.shape + x.shape)),
    "hvp": (symdl.hvp, (2,), lambda x, v: 6 * x * v),
    "derivative": (lambda f: symdl.derivative(f, order=2), (1,), lambda x: 6 * x),
}


@pytest.mark.parametrize("name", list(CACHE_TRANSFORMS))
def test_same_signature_reuses_compiled_code_and_new_shape_retraces(name):
    transform, (nargs,), ref = CACHE_TRANSFORMS[name]
    base = cube if name in ("derivative", "jacobian") else cubic
    counted, calls = _counting(base)
    fn = transform(counted)
    rng = np.random.default_rng(3)

    def call(shape):
        args = [rng.standard_normal(shape) for _ in range(nargs)]
        out = fn(*args)
        for got, e in zip(_leaves(out), _leaves(ref(*args))):
            assert_close(got, e, rtol=1e-13, atol=1e-13)

    call((3,))
    first = calls[0]
    assert first >= 1
    call((3,))
    call((3,))
    assert calls[0] == first, f"{name}: fun's Python body ran again for the same signature"
    call((2, 2))
    assert calls[0] > first, f"{name}: a new shape did not retrace"
    second = calls[0]
    call((2, 2))
    call((3,))
    assert calls[0] == second, f"{name}: an earlier signature was traced again"


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("transform", [symdl.grad, symdl.value_and_grad, symdl.hessian])
def test_non_scalar_output_is_a_value_error(transform):
    with pytest.raises(ValueError, match="scalar"):
        transform(lambda x: x ** 2)(np.ones(3))


ARGNUM_TRANSFORMS = {"grad": symdl.grad, "value_and_grad": symdl.value_and_grad, "jacobian": symdl.jacobian,
                     "hessian": symdl.hessian}


@pytest.mark.parametrize("name", list(ARGNUM_TRANSFORMS))
def test_argnums_out_of_range_is_a_value_error(name):
    transform = ARGNUM_TRANSFORMS[name]
    x = np.ones(2)
    with pytest.raises(ValueError, match="argnums"):
        transform(cubic, argnums=1)(x)
    with pytest.raises(ValueError, match="argnums"):
        transform(cubic, argnums=(0, -2))(x)
    with pytest.raises(ValueError, match="argnums"):
        symdl.hvp(cubic, argnums=1)(x, x)


@pytest.mark.parametrize("bad", ["0", 0.5, None, (0, 1.0), (), True], ids=repr)
@pytest.mark.parametrize("name", list(ARGNUM_TRANSFORMS))
def test_argnums_of_the_wrong_type_is_a_type_error_naming_argnums(name, bad):
    with pytest.raises(TypeError, match="argnums"):
        ARGNUM_TRANSFORMS[name](cubic, argnums=bad)(np.ones(2))


def test_hvp_errors():
    with pytest.raises(ValueError, match="shape"):
        symdl.hvp(cubic)(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="shape"):
        symdl.hvp(cubic)(np.ones((2, 2)), np.ones(4))
    with pytest.raises(TypeError):
        symdl.hvp(cubic, argnums=(0,))
    with pytest.raises(ValueError, match="scalar"):
        symdl.hvp(lambda x: x ** 2)(np.ones(3), np.ones(3))


def test_derivative_of_shape_changing_fun_is_a_value_error():
    with pytest.raises(ValueError, match="elementwise"):
        symdl.derivative(lambda x: np.sum(x ** 2))(np.arange(3.0))
    with pytest.raises(ValueError, match="elementwise"):
        symdl.derivative(lambda x: x[1:] * 2.0)(np.arange(3.0))


@pytest.mark.parametrize("fun", [lambda x: x * np.sum(x), lambda x: x[::-1] ** 2, lambda x: x - np.mean(x)],
                         ids=["x*sum(x)", "reverse", "centering"])
def test_derivative_of_coupled_fun_is_a_value_error(fun):
    """Same shape but not elementwise: element i depends on other elements, so
    there is no elementwise derivative; a number would be silently wrong."""
    with pytest.raises(ValueError, match="elementwise"):
        symdl.derivative(fun, order=1)(np.array([0.5, 1.0, 2.0]))


@pytest.mark.parametrize("order", [-1, 1.5, "2", True])
def test_derivative_order_must_be_a_non_negative_int(order):
    with pytest.raises(ValueError, match="order"):
        symdl.derivative(np.sin, order=order)


# ---------------------------------------------------------------- scipy.optimize

X0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2])


# tight tolerances: Newton-CG's default xtol stops about 2e-4 short of the minimum
OPTIONS = {"trust-exact": {"gtol": 1e-10}, "Newton-CG": {"xtol": 1e-10}}


@pytest.mark.parametrize("method", ["trust-exact", "Newton-CG"])
def test_scipy_minimize_with_grad_and_hessian(method):
    res = minimize(rosenbrock, X0, jac=symdl.grad(rosenbrock), hess=symdl.hessian(rosenbrock), method=method,
                   options=OPTIONS[method])
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(5), atol=1e-6)
    # as many steps as with scipy's own derivatives
    ref = minimize(rosen, X0, jac=rosen_der, hess=rosen_hess, method=method, options=OPTIONS[method])
    assert abs(res.nit - ref.nit) <= 1


def test_scipy_newton_cg_with_hvp():
    res = minimize(rosenbrock, X0, jac=symdl.grad(rosenbrock), hessp=symdl.hvp(rosenbrock), method="Newton-CG",
                   options=OPTIONS["Newton-CG"])
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(5), atol=1e-6)
