"""First- and second-order derivative checks of every primitive and public
function against central differences of the numpy reference (see helpers).

Each ``fun`` is written with numpy functions and operators, so the same code
runs through symdl on dlarrays and is plain numpy on float64 arrays (the
reference).  Where symdl's own name is tested, ``dual`` picks symdl on
dlarrays and numpy on arrays.  Test points keep clear of kinks and of the
edges of domains, so finite differences are valid; behaviour at kinks (ties,
relu at 0, prod with zeros) is checked exactly against analytic values.
"""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import assert_close, check_grads, erf_any

RNG = np.random.default_rng(20240611)


def uniform(lo: float, hi: float, shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, shape)


def away_from_zero(shape, lo: float = 0.3, hi: float = 1.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(shape, gap: float = 0.25, seed: int = 0) -> np.ndarray:
    """Values at least ``gap`` apart (no ties, kinks of max/min far from the FD steps)."""
    n = int(np.prod(shape))
    vals = (np.random.default_rng(seed).permutation(n) - n / 2) * gap
    return vals.reshape(shape)


def dual(sym_fn, np_fn):
    """symdl's function on dlarrays, numpy's on numpy arrays."""
    def f(*args, **kwargs):
        if any(isinstance(a, symdl.dlarray) for a in args):
            return sym_fn(*args, **kwargs)
        return np_fn(*args, **kwargs)
    return f


def test_check_grads_detects_wrong_first_and_second_derivatives():
    # the checker itself: a reference that differs from what symdl differentiates must fail
    x = uniform(-1.0, 1.0, (2, 3), seed=99)
    with pytest.raises(AssertionError, match="first-order"):
        check_grads(dual(symdl.sin, lambda a: np.sin(a) * 1.001), [x], order=1)
    # same value and first derivative at x, different curvature: only the second order can see it
    wrong_curvature = dual(symdl.sin, lambda a: np.sin(a) + 1e-3 * (a - x) ** 2)
    check_grads(wrong_curvature, [x], order=1)
    with pytest.raises(AssertionError, match="Hessian-vector"):
        check_grads(wrong_curvature, [x], order=2)


def grad_of(fun, *args, higher_v=None):
    """symdl gradient of ``sum(fun(*args))`` (and, with ``higher_v``, the
    gradient of ``sum(grad * v)``), as numpy arrays."""
    def body(*xs):
        y = symdl.sum(fun(*xs))
        g = symdl.dlgradient(y, *xs, enable_higher_derivatives=higher_v is not None)
        gs = (g,) if len(xs) == 1 else g
        if higher_v is None:
            return gs
        s = symdl.sum(gs[0] * higher_v)
        return gs, symdl.dlgradient(s, *xs)
    return symdl.dlfeval(body, *[symdl.dlarray(np.asarray(a, dtype=float)) for a in args])


# ---------------------------------------------------------------- unary elementwise

UNARY = {
    # name: (function, low, high)
    "exp": (np.exp, -1.0, 1.0),
    "log": (np.log, 0.4, 2.0),
    "log1p": (np.log1p, -0.5, 1.5),
    "expm1": (np.expm1, -1.0, 1.0),
    "sqrt": (np.sqrt, 0.4, 2.0),
    "square": (np.square, -1.5, 1.5),
    "sin": (np.sin, -2.0, 2.0),
    "cos": (np.cos, -2.0, 2.0),
    "tan": (np.tan, -1.0, 1.0),
    "arcsin": (np.arcsin, -0.7, 0.7),
    "arccos": (np.arccos, -0.7, 0.7),
    "arctan": (np.arctan, -2.0, 2.0),
    "sinh": (np.sinh, -1.5, 1.5),
    "cosh": (np.cosh, -1.5, 1.5),
    "tanh": (np.tanh, -1.5, 1.5),
    "negative": (np.negative, -1.0, 1.0),
    "positive": (lambda a: +a, -1.0, 1.0),
    "reciprocal": (lambda a: 1.0 / a, 0.5, 2.0),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_numpy_functions(name):
    fn, lo, hi = UNARY[name]
    check_grads(lambda a: fn(a) * (1.0 + a), [uniform(lo, hi, (2, 3))])


SYMDL_UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "square", "sin", "cos", "tan", "arcsin",
               "arccos", "arctan", "sinh", "cosh", "tanh"]


@pytest.mark.parametrize("name", SYMDL_UNARY)
def test_unary_symdl_names(name):
    np_fn, lo, hi = UNARY[name]
    fn = dual(getattr(symdl, name), np_fn)
    check_grads(lambda a: fn(a), [uniform(lo, hi, (3, 2), seed=1)])


def test_erf():
    check_grads(lambda a: erf_any(a) * a, [uniform(-1.5, 1.5, (2, 3))])


@pytest.mark.parametrize("name", ["abs", "absolute", "symdl.abs", "operator"])
def test_abs_away_from_zero(name):
    fn = {"abs": np.abs, "absolute": np.absolute, "symdl.abs": dual(symdl.abs, np.abs),
          "operator": abs}[name]
    check_grads(lambda a: fn(a) ** 3, [away_from_zero((2, 3))])


PIECEWISE_CONSTANT = {
    "sign": (np.sign, symdl.sign, away_from_zero((2, 3))),
    "floor": (np.floor, symdl.floor, np.arange(-3, 3).reshape(2, 3) + uniform(0.2, 0.8, (2, 3))),
    "ceil": (np.ceil, symdl.ceil, np.arange(-3, 3).reshape(2, 3) + uniform(0.2, 0.8, (2, 3))),
}


@pytest.mark.parametrize("name", sorted(PIECEWISE_CONSTANT))
def test_piecewise_constant_has_zero_gradient(name):
    np_fn, sym_fn, x = PIECEWISE_CONSTANT[name]
    check_grads(lambda a: np_fn(a) * a, [x])
    check_grads(lambda a: dual(sym_fn, np_fn)(a) * np.sin(a), [x])
    # exactly zero (not NaN, not a tiny number), also below another function
    (g,), hv = grad_of(lambda a: sym_fn(np.exp(a)) * a + sym_fn(a * a), x, higher_v=np.ones_like(x))
    np.testing.assert_array_equal(symdl.extractdata(g), np_fn(np.exp(x)))
    np.testing.assert_array_equal(symdl.extractdata(hv), np.zeros_like(x))


def test_sign_gradient_is_zero_at_zero():
    x = np.array([0.0, -0.0, 1.0, -2.0])
    (g,), hv = grad_of(lambda a: np.sign(a) * 3.0 + np.sign(a) * a, x, higher_v=np.ones(4))
    np.testing.assert_array_equal(symdl.extractdata(g), np.sign(x))
    np.testing.assert_array_equal(symdl.extractdata(hv), np.zeros(4))


CONSTANT_GRADIENT = {
    # name: (function whose gradient does not depend on x, x, its gradient)
    "sign": (lambda a: np.sign(a) * 2.0, np.array([0.5, -1.0, 2.0]), np.zeros(3)),
    "floor": (lambda a: symdl.floor(a), np.array([0.5, -1.5, 2.25]), np.zeros(3)),
    # sum(2a - s) over 3 elements, s = a0 + a2 broadcast: d/da = 2 - 3 * [1, 0, 1]
    "linear": (lambda a: 2.0 * a - a[::2].sum(), np.array([0.5, -1.0, 2.0]), np.array([-1.0, 2.0, -1.0])),
    "empty slice": (lambda a: np.sin(a[2:2]), np.array([0.5, -1.0, 2.0]), np.zeros(3)),
}


@pytest.mark.parametrize("name", sorted(CONSTANT_GRADIENT))
def test_second_derivative_of_constant_gradient_is_zero(name):
    # SPEC 2: gradients taken with enable_higher_derivatives=True "can be
    # differentiated again, to any order, through every operation"; a constant
    # gradient has the zero derivative (as an unused x gets zeros).
    fn, x, expect = CONSTANT_GRADIENT[name]
    (g,), hv = grad_of(fn, x, higher_v=np.array([1.0, -2.0, 0.5]))
    np.testing.assert_array_equal(symdl.extractdata(g), expect)
    np.testing.assert_array_equal(symdl.extractdata(hv), np.zeros(3))


def test_composition_of_unary_functions():
    check_grads(lambda a: np.log1p(np.exp(np.tanh(a) * 2.0)) / np.sqrt(1.0 + a ** 2),
                [uniform(-1.5, 1.5, (4,))])


# ---------------------------------------------------------------- binary arithmetic and broadcasting

BROADCAST_SHAPES = [((2, 3), (2, 3)), ((3, 1), (1, 4)), ((2, 3), (3,)), ((), (2, 3)), ((2, 3), ()),
                    ((2, 1, 3), (4, 1)), ((1,), (2, 2))]
BINARY = {
    "add": lambda a, b: a + b,
    "subtract": lambda a, b: a - b,
    "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b,
    "np.add": np.add, "np.subtract": np.subtract, "np.multiply": np.multiply, "np.divide": np.divide,
}


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_arithmetic_broadcasting(name, shapes):
    fn = BINARY[name]
    a = uniform(0.5, 1.5, shapes[0], seed=2)
    b = uniform(0.5, 1.5, shapes[1], seed=3) * (1 if name.endswith("divide") else -1)
    check_grads(lambda x, y: np.sin(fn(x, y)) * fn(y, x), [a, b])


@pytest.mark.parametrize("name", ["radd", "rsub", "rmul", "rdiv", "sub_const", "div_const", "array_const"])
def test_arithmetic_with_constants(name):
    const = np.array([1.0, -2.0, 0.5])
    fn = {"radd": lambda a: 2.0 + a, "rsub": lambda a: 2.0 - a, "rmul": lambda a: -3.0 * a,
          "rdiv": lambda a: 3.0 / a, "sub_const": lambda a: a - 0.25, "div_const": lambda a: a / 4.0,
          "array_const": lambda a: const * a - a / const + const / a}[name]
    check_grads(lambda a: fn(a) * fn(a), [uniform(0.5, 1.5, (2, 3), seed=4)])


@pytest.mark.parametrize("p", [0, 1, 2, 3, 4, -1, -2, 0.5, 2.5, -1.5, 1 / 3, -0.75])
def test_power_scalar_exponent_positive_base(p):
    x = uniform(0.5, 2.0, (2, 3), seed=5)
    # multiplied by a non-linear function, so x ** 0 and x ** 1 have a second derivative to check too
    check_grads(lambda a: a ** p * np.sin(a), [x])
    check_grads(lambda a: np.power(a, p) * a ** 2, [x])
    check_grads(lambda a: dual(symdl.power, np.power)(a, p) + np.exp(a), [x])


@pytest.mark.parametrize("p", [2, 3, -1, -3, 2.0, 5.0])
def test_power_integer_exponent_negative_base(p):
    check_grads(lambda a: a ** p, [uniform(-2.0, -0.5, (2, 3), seed=6)])


def test_square_and_sqrt_of_negative_and_zero_free_data():
    x = away_from_zero((3,), seed=7)
    check_grads(lambda a: np.square(a) + dual(symdl.square, np.square)(a) * a, [x])
    check_grads(lambda a: np.sqrt(a * a + 1.0), [x])


@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3), (3,)), ((), (2, 2)), ((3, 1), ())], ids=str)
def test_power_array_exponent(shapes):
    a = uniform(0.5, 2.0, shapes[0], seed=8)
    b = uniform(-1.5, 2.5, shapes[1], seed=9)
    check_grads(lambda x, y: x ** y, [a, b])
    check_grads(lambda x, y: np.power(x, y) * y, [a, b])


def test_power_constant_base_array_exponent():
    base = np.array([0.5, 2.0, 3.0])
    check_grads(lambda a: 2.0 ** a + base ** a, [uniform(-1.0, 1.0, (2, 3), seed=10)])


def test_arctan2_all_quadrants():
    # away from the origin and from the branch cut (x < 0, y = 0)
    y = np.array([[0.7, -0.8, 1.2], [-0.5, 0.9, -1.1]])
    x = np.array([[1.1, 0.6, -0.9], [-1.3, -0.4, 0.8]])
    check_grads(np.arctan2, [y, x])
    check_grads(lambda a, b: dual(symdl.arctan2, np.arctan2)(a, b * 2.0), [y, x])


def test_arctan2_broadcasting():
    check_grads(lambda a, b: np.arctan2(a, b), [uniform(0.3, 1.0, (2, 3), seed=11), uniform(0.5, 1.0, (3,))])


@pytest.mark.parametrize("which", ["maximum", "minimum"])
@pytest.mark.parametrize("shapes", [((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 3), ())], ids=str)
def test_maximum_minimum_without_ties(which, shapes):
    both = distinct((2 * int(np.prod(shapes[0])),), seed=12)
    a = both[:int(np.prod(shapes[0]))].reshape(shapes[0])
    b = both[int(np.prod(shapes[0])):][:max(1, int(np.prod(shapes[1])))].reshape(shapes[1])
    np_fn = getattr(np, which)
    check_grads(lambda x, y: np_fn(x, y) ** 2, [a, b])
    check_grads(lambda x, y: dual(getattr(symdl, which), np_fn)(x, y) * x, [a, b])


@pytest.mark.parametrize("which", ["maximum", "minimum"])
def test_maximum_minimum_with_constants(which):
    np_fn = getattr(np, which)
    x = distinct((2, 3), gap=0.3, seed=13) + 0.1  # no element near 0.0
    check_grads(lambda a: np_fn(a, 0.0) * a, [x])
    check_grads(lambda a: np_fn(0.05, a) * np.exp(a), [x])


@pytest.mark.parametrize("relu", ["np.maximum", "symdl.maximum", "where"])
def test_relu_derivative_is_zero_at_zero(relu):
    fn = {"np.maximum": lambda a: np.maximum(a, 0.0), "symdl.maximum": lambda a: symdl.maximum(a, 0.0),
          "where": lambda a: np.where(a > 0.0, a, 0.0)}[relu]
    x = np.array([0.0, -1.0, 2.0, 0.0, -0.0])
    expect = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    (g,), hv = grad_of(fn, x, higher_v=np.ones(5))
    np.testing.assert_array_equal(symdl.extractdata(g), expect)
    np.testing.assert_array_equal(symdl.extractdata(hv), np.zeros(5))


def test_where_constant_condition():
    cond = np.array([[True, False, True], [False, False, True]])
    a, b = uniform(-1, 1, (2, 3), seed=14), uniform(-1, 1, (2, 3), seed=15)
    check_grads(lambda x, y: np.where(cond, np.sin(x), y ** 2), [a, b])
    check_grads(lambda x, y: dual(symdl.where, np.where)(cond, x * y, y), [a, b])


def test_where_traced_condition_and_broadcasting():
    a = distinct((2, 3), gap=0.3, seed=16) + 0.1
    b = uniform(-1, 1, (3,), seed=17)
    check_grads(lambda x, y: np.where(x > 0.0, x ** 3, y * x), [a, b])
    check_grads(lambda x, y: np.where(np.array([True, False, True]), x, 2.0) * y, [a, b])


def test_clip():
    x = np.array([[-1.2, -0.3, 0.1], [0.35, 0.9, 2.0]])  # away from the bounds -0.5 and 0.5
    check_grads(lambda a: np.clip(a, -0.5, 0.5) * a, [x])
    check_grads(lambda a: dual(symdl.clip, np.clip)(a, -0.5, None) ** 2, [x])
    check_grads(lambda a: dual(symdl.clip, np.clip)(a, None, 0.5) ** 2, [x])


# ---------------------------------------------------------------- reductions

AXES = [None, 0, 1, -1, (0, 2)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min"])
def test_reductions(name, axis, keepdims):
    np_fn = getattr(np, name)
    if name == "prod":
        x = away_from_zero((2, 3, 4), lo=0.6, hi=1.4, seed=18)
    else:
        x = distinct((2, 3, 4), seed=18)
    check_grads(lambda a: np.sin(np_fn(a, axis=axis, keepdims=keepdims)) * 2.0, [x])
    check_grads(lambda a: dual(getattr(symdl, name), np_fn)(np.exp(a / 2), axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "prod", "max", "min"])
def test_reduction_methods(name):
    x = distinct((3, 4), seed=19) / 3 + (1.0 if name == "prod" else 0.0)
    check_grads(lambda a: getattr(np.exp(a), name)(axis=1) * getattr(a, name)(), [x])
    check_grads(lambda a: getattr(a, name)(axis=0, keepdims=True) * a, [x])


def _prod_of_others(x: np.ndarray) -> np.ndarray:
    """d prod(x) / d x_j, as the product of the other elements (no division)."""
    flat = x.reshape(-1)
    return np.array([np.prod(np.delete(flat, j)) for j in range(flat.size)]).reshape(x.shape)


def _prod_hessian(x: np.ndarray) -> np.ndarray:
    """d^2 prod(x) / dx_j dx_k: the product of the elements other than j and k (0 on the diagonal)."""
    flat = x.reshape(-1)
    n = flat.size
    h = np.zeros((n, n))
    for j in range(n):
        for k in range(n):
            if j != k:
                h[j, k] = np.prod(np.delete(flat, [j, k]))
    return h


@pytest.mark.parametrize("x", [
    [2.0, 0.0, 3.0, -1.5],
    [0.0, 0.0, 5.0],
    [0.0, 2.0, -3.0, 0.5, 4.0],
    [1.5, -2.0, 4.0, 0.5, 3.0, -1.0, 2.0],
    [0.0, 7.0],
], ids=str)
def test_prod_with_zeros_is_exact(x):
    # halves and small integers: every product is exact in float64
    x = np.array(x)
    v = np.arange(1.0, x.size + 1.0)
    (g,), hv = grad_of(np.prod, x, higher_v=v)
    np.testing.assert_array_equal(symdl.extractdata(g), _prod_of_others(x))
    np.testing.assert_array_equal(symdl.extractdata(hv), _prod_hessian(x) @ v)


def test_prod_with_zeros_along_an_axis():
    x = np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 5.0], [1.5, -2.0, 4.0]])
    w = np.array([1.0, -2.0, 0.5])
    expect = np.stack([_prod_of_others(row) * wi for row, wi in zip(x, w)])
    for keepdims in (False, True):
        (g,) = grad_of(lambda a, kd=keepdims: np.prod(a, axis=1, keepdims=kd).reshape(-1) * w, x)
        np.testing.assert_array_equal(symdl.extractdata(g), expect)
    (g,) = grad_of(lambda a: np.prod(a.T, axis=0) * w, x)
    np.testing.assert_array_equal(symdl.extractdata(g), expect)


def test_prod_third_derivative_with_zeros():
    # d^3/dx0 dx1 dx2 of x0*x1*x2*x3 is x3; with x1 = 0 all lower-order terms vanish
    x = np.array([2.0, 0.0, 3.0, -1.5])

    def body(a):
        y = np.prod(a)
        g = symdl.dlgradient(y, a, enable_higher_derivatives=True)
        h = symdl.dlgradient(g[0], a, enable_higher_derivatives=True)
        return symdl.dlgradient(h[1], a)
    t = symdl.extractdata(symdl.dlfeval(body, symdl.dlarray(x)))
    np.testing.assert_array_equal(t, [0.0, 0.0, x[3], x[2]])


@pytest.mark.parametrize("which", ["max", "min"])
def test_max_min_ties_share_the_gradient_equally(which):
    sign = 1.0 if which == "max" else -1.0
    x = sign * np.array([1.0, 3.0, 3.0, 2.0])
    (g,) = grad_of(getattr(np, which), x)
    np.testing.assert_allclose(symdl.extractdata(g), [0.0, 0.5, 0.5, 0.0], rtol=1e-15)
    x3 = sign * np.array([4.0, 4.0, 4.0, -1.0])
    (g,) = grad_of(lambda a: getattr(symdl, which)(a) * 6.0, x3)
    np.testing.assert_allclose(symdl.extractdata(g), [2.0, 2.0, 2.0, 0.0], rtol=1e-15)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("which", ["max", "min"])
def test_max_min_ties_along_an_axis(which, keepdims):
    sign = 1.0 if which == "max" else -1.0
    x = sign * np.array([[1.0, 5.0, 5.0, 0.0], [2.0, 2.0, 2.0, 2.0], [7.0, 1.0, 3.0, 7.0]])
    w = np.array([1.0, 2.0, 3.0])
    expect = np.array([[0, 0.5, 0.5, 0], [0.5, 0.5, 0.5, 0.5], [1.5, 0, 0, 1.5]]) * 1.0
    (g,) = grad_of(lambda a: getattr(np, which)(a, axis=1, keepdims=keepdims).reshape(-1) * w, x)
    np.testing.assert_allclose(symdl.extractdata(g), expect, rtol=1e-15)
    (g,) = grad_of(lambda a: getattr(np, which)(a.T, axis=0) * w, x)
    np.testing.assert_allclose(symdl.extractdata(g), expect, rtol=1e-15)


def test_max_ties_second_order_is_zero():
    x = np.array([[1.0, 5.0, 5.0], [2.0, 2.0, 0.0]])
    (g,), hv = grad_of(lambda a: np.max(a, axis=1) * 3.0, x, higher_v=np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(symdl.extractdata(g), [[0, 1.5, 1.5], [1.5, 1.5, 0]], rtol=1e-15)
    np.testing.assert_array_equal(symdl.extractdata(hv), np.zeros((2, 3)))


def test_max_of_nonlinear_function_with_ties():
    # max(x^2) over [-2, 1, 2]: tie between -2 and 2, d/dx = 2x / 2 at each
    x = np.array([-2.0, 1.0, 2.0])
    v = np.array([1.0, 1.0, 1.0])
    (g,), hv = grad_of(lambda a: np.max(a * a), x, higher_v=v)
    np.testing.assert_allclose(symdl.extractdata(g), [-2.0, 0.0, 2.0], rtol=1e-15)
    # the second derivative of each branch is 2, shared half-half
    np.testing.assert_allclose(symdl.extractdata(hv), [1.0, 0.0, 1.0], rtol=1e-15)


def test_logsumexp_composition():
    def lse(a):
        m = np.max(a, axis=1, keepdims=True)
        return (m + np.log(np.sum(np.exp(a - m), axis=1, keepdims=True))) * 1.0
    check_grads(lse, [distinct((3, 4), seed=20)])


# ---------------------------------------------------------------- products

MATMUL_SHAPES = [((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 4)),
                 ((2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (2, 3, 4)), ((2, 2, 3), (3,)),
                 ((1, 2, 3), (2, 3, 2))]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes):
    a, b = uniform(-1, 1, shapes[0], seed=21), uniform(-1, 1, shapes[1], seed=22)
    check_grads(lambda x, y: np.tanh(x @ y), [a, b])
    check_grads(lambda x, y: np.matmul(x * y.sum(), y), [a, b])
    check_grads(lambda x, y: dual(symdl.matmul, np.matmul)(x, np.sin(y)), [a, b])


DOT_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((2, 3, 4), (4,)),
              ((2, 3), (4, 3, 2)), ((), (2, 3)), ((2, 3), ())]


@pytest.mark.parametrize("shapes", DOT_SHAPES, ids=str)
def test_dot(shapes):
    a, b = uniform(-1, 1, shapes[0], seed=23), uniform(-1, 1, shapes[1], seed=24)
    check_grads(lambda x, y: np.sin(np.dot(x, y)), [a, b])
    check_grads(lambda x, y: dual(symdl.dot, np.dot)(x ** 2, y) * 0.5, [a, b])


def test_matmul_same_operand_twice():
    check_grads(lambda x: x @ x @ x, [uniform(-1, 1, (3, 3), seed=25)])
    check_grads(lambda x: x.T @ x, [uniform(-1, 1, (2, 3), seed=26)])


# ---------------------------------------------------------------- movement

def test_concatenate():
    a, b, c = uniform(-1, 1, (2, 3), seed=27), uniform(-1, 1, (2, 1), seed=28), uniform(-1, 1, (1, 3), seed=29)
    check_grads(lambda x, y: np.sin(np.concatenate([x, y], axis=1)) * 2.0, [a, b])
    check_grads(lambda x, y: np.concatenate([x, y, x], axis=-1) ** 2, [a, b])
    check_grads(lambda x, z: np.concatenate((x ** 2, z), axis=0) * x.sum(), [a, c])
    check_grads(lambda x, z: np.concatenate([x, z], axis=None) ** 3, [a, c])
    check_grads(lambda x: dual(symdl.concatenate, np.concatenate)([x, x * x], axis=0), [a])


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack(axis):
    a, b = uniform(-1, 1, (2, 3), seed=30), uniform(-1, 1, (2, 3), seed=31)
    check_grads(lambda x, y: np.sin(np.stack([x, y, x * y], axis=axis)), [a, b])
    check_grads(lambda x, y: dual(symdl.stack, np.stack)((x, y ** 2), axis=axis) * 1.5, [a, b])


@pytest.mark.parametrize("shape", [(-1,), (3, 4), (4, 3, 1), (2, -1, 2), (12, 1)], ids=str)
def test_reshape(shape):
    x = uniform(-1, 1, (2, 3, 2), seed=32)
    check_grads(lambda a: np.sin(np.reshape(a, shape)) * np.arange(12.0).reshape(shape), [x])
    check_grads(lambda a: (a ** 2).reshape(shape) * 2.0, [x])
    check_grads(lambda a: dual(symdl.reshape, np.reshape)(a, shape) ** 3, [x])


def test_flatten_and_ravel():
    x = uniform(-1, 1, (2, 3), seed=33)
    check_grads(lambda a: a.flatten() ** 2 * np.arange(6.0), [x])
    check_grads(lambda a: np.sin(a.ravel()) * np.arange(6.0), [x])


@pytest.mark.parametrize("axes", [None, (1, 0, 2), (2, 0, 1), (0, 2, 1), (-1, 0, 1)], ids=str)
def test_transpose(axes):
    x = uniform(-1, 1, (2, 3, 4), seed=34)
    w = np.arange(24.0).reshape(np.transpose(x, axes).shape)
    check_grads(lambda a: np.transpose(a ** 2, axes) * w, [x])
    check_grads(lambda a: np.sin(dual(symdl.transpose, np.transpose)(a, axes)) * w, [x])


def test_transpose_method_and_T():
    x = uniform(-1, 1, (2, 3), seed=35)
    w = np.arange(6.0).reshape(3, 2)
    check_grads(lambda a: a.T ** 2 * w, [x])
    check_grads(lambda a: np.sin(a.transpose()) * w, [x])
    check_grads(lambda a: a.transpose(1, 0) * a.T, [x])


@pytest.mark.parametrize("axis", [None, 0, 2, (0, 2), -1])
def test_squeeze(axis):
    x = uniform(-1, 1, (1, 3, 1), seed=36)
    check_grads(lambda a: np.squeeze(a ** 2, axis=axis) * np.squeeze(a, axis), [x])
    check_grads(lambda a: np.sin(dual(symdl.squeeze, np.squeeze)(a, axis)), [x])


def test_squeeze_method():
    check_grads(lambda a: a.squeeze() ** 2 * np.arange(3.0), [uniform(-1, 1, (3, 1), seed=37)])


@pytest.mark.parametrize("axis", [0, 1, 2, -1, (0, 2), (0, 1)], ids=str)
def test_expand_dims(axis):
    x = uniform(-1, 1, (2, 3), seed=38)
    check_grads(lambda a: np.expand_dims(a ** 2, axis) * np.sin(np.expand_dims(a, axis)), [x])
    check_grads(lambda a: dual(symdl.expand_dims, np.expand_dims)(a, axis) ** 3, [x])


def test_broadcast_to():
    x = uniform(-1, 1, (3, 1), seed=39)
    w = np.arange(12.0).reshape(2, 3, 2)
    check_grads(lambda a: np.sin(np.broadcast_to(a, (2, 3, 2))) * w, [x])


# ---------------------------------------------------------------- indexing

INDEX_KEYS_2D = {
    "int": 1,
    "negative int": -1,
    "two ints": (2, -2),
    "slice": slice(1, 3),
    "reversed": slice(None, None, -1),
    "negative step": slice(None, None, -2),
    "negative step bounds": (slice(3, 0, -2), slice(4, None, -3)),
    "mixed int slice": (slice(None), 2),
    "None": None,
    "None int": (None, 1),
    "ellipsis int": (Ellipsis, 1),
    "int ellipsis": (1, Ellipsis),
    "ellipsis None": (Ellipsis, None),
    "slice None step": (slice(None), None, slice(None, None, 2)),
    "int array repeated": np.array([0, 2, 2]),
    "int array negative": np.array([-1, 0]),
    "int array on axis 1": (slice(None), np.array([4, 0, 0])),
    "2-D int array": np.array([[0, 1], [3, 3]]),
    "int list": [3, 0],
    "two int arrays": (np.array([0, 1, 3]), np.array([1, 1, -1])),
    "bool rows": np.array([True, False, True, True]),
    "bool mask": np.arange(20).reshape(4, 5) % 3 == 0,
    "bool cols with slice": (slice(1, None), np.array([False, True, True, False, True])),
}


@pytest.mark.parametrize("name", sorted(INDEX_KEYS_2D))
def test_getitem_2d(name):
    key = INDEX_KEYS_2D[name]
    x = uniform(-1, 1, (4, 5), seed=40)
    check_grads(lambda a: np.sin(a[key]) * (a ** 2)[key], [x])


INDEX_KEYS_3D = {
    "negative ellipsis reversed": (-1, Ellipsis, slice(None, None, -1)),
    "advanced separated by slice": (np.array([0, 1]), slice(None), np.array([3, 1])),
    "advanced adjacent": (slice(None), np.array([2, 0]), np.array([1, 1])),
    "int and int array": (1, np.array([0, 2])),
    "bool 2-D mask then slice": (np.array([[True, False, True], [False, True, True]]), slice(1, 3)),
    "None everywhere": (None, 1, None, slice(None, None, -1), None),
}


@pytest.mark.parametrize("name", sorted(INDEX_KEYS_3D))
def test_getitem_3d(name):
    key = INDEX_KEYS_3D[name]
    x = uniform(-1, 1, (2, 3, 4), seed=41)
    check_grads(lambda a: np.cos(a[key]) * a[key], [x])


def test_getitem_chained_and_scalar():
    x = uniform(-1, 1, (3, 4), seed=42)
    check_grads(lambda a: a[1][2] * a[2, 1] + np.exp(a[0][::-1][1]), [x])
    check_grads(lambda a: a[::-1][:, 1:][1:, ::2] ** 2, [x])


def test_setitem_constant_value():
    x = uniform(-1, 1, (4, 5), seed=43)

    def f(a):
        y = a * 1.0
        y[1] = 5.0
        y[:, -1] = np.arange(4.0)
        return np.sin(y) * y
    check_grads(f, [x])


SETITEM_CASES = {
    # name: (key, shape of the value)
    "int row": (1, (5,)),
    "slice broadcast": ((slice(None), slice(1, 3)), (2,)),
    "reversed slice": (slice(None, None, -2), (2, 5)),
    "repeated int array": (np.array([0, 2, 0]), (3, 5)),
    "bool mask": (np.arange(20).reshape(4, 5) % 3 == 1, (7,)),
    "ellipsis": ((Ellipsis, -1), (4,)),
    "scalar value": ((2, 3), ()),
    "two int arrays": ((np.array([0, 3, 0]), np.array([1, 2, 1])), (3,)),
}


@pytest.mark.parametrize("name", sorted(SETITEM_CASES))
def test_setitem_traced_value(name):
    key, vshape = SETITEM_CASES[name]
    x = uniform(-1, 1, (4, 5), seed=44)
    v = uniform(-1, 1, vshape, seed=45)

    def f(a, b):
        y = a * 2.0
        y[key] = np.sin(b) * b
        return y * np.cos(y) + a
    check_grads(f, [x, v])


def test_setitem_data_dependent_mask():
    x = distinct((3, 4), gap=0.3, seed=46) + 0.1

    def f(a):
        y = a ** 3
        y[a > 0.0] = 0.0
        return y * np.exp(a)
    check_grads(f, [x])


def test_setitem_value_depends_on_same_array():
    x = uniform(-1, 1, (3, 3), seed=47)

    def f(a):
        y = a + 0.0
        y[0] = a[2] * a[1]
        y[:, 2] = y[:, 0] ** 2
        return y
    check_grads(f, [x])


# ---------------------------------------------------------------- float32

FLOAT32_CASES = {
    "exp tanh": lambda a, b: np.exp(np.tanh(a)) * b,
    "matmul": lambda a, b: np.tanh(a @ b.T),
    "power": lambda a, b: np.abs(a) ** 2.5 + b ** 3,
    "array power": lambda a, b: (np.abs(a) + 0.5) ** b,
    "arctan2": lambda a, b: np.arctan2(a, b + 3.0),
    "reductions": lambda a, b: np.sum(a * b, axis=1) + np.max(a, axis=0).sum() + np.prod(b, axis=1),
    "indexing": lambda a, b: a[::-1, 1] * b[np.array([0, 0, 1]), -1],
    "where clip": lambda a, b: np.where(a > 0, np.clip(b, -0.5, 0.5), a * b),
    "concat stack": lambda a, b: np.sin(np.stack([np.concatenate([a, b], axis=1),
                                                  np.concatenate([b, a * a], axis=1)])),
    "scalar weak": lambda a, b: 2.0 * a * a + b / 3.0 - 1.5,
    "erf": lambda a, b: erf_any(a) * b,
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_inputs_give_float32_gradients(name):
    a = away_from_zero((3, 4), lo=0.2, hi=1.0, seed=48).astype(np.float32)
    b = (distinct((3, 4), gap=0.1, seed=49) + 0.05).astype(np.float32)
    check_grads(FLOAT32_CASES[name], [a, b])


def test_float32_setitem():
    def f(a, b):
        y = a * 1.0
        y[1:, ::2] = b
        return np.sin(y)
    check_grads(f, [uniform(-1, 1, (3, 4), seed=50).astype(np.float32),
                    uniform(-1, 1, (2, 2), seed=51).astype(np.float32)])


def test_mixed_float32_float64_arguments():
    a = uniform(-1, 1, (2, 3), seed=52).astype(np.float32)
    b = uniform(-1, 1, (2, 3), seed=53)
    check_grads(lambda x, y: np.sin(x) * y, [a, b])


# ---------------------------------------------------------------- dlgradient plumbing

def test_gradient_of_unused_input_is_zero_at_every_order():
    x, z = uniform(-1, 1, (2, 3), seed=54), uniform(-1, 1, (4,), seed=55)

    def body(a, b):
        y = np.sum(np.sin(a))
        ga, gb = symdl.dlgradient(y, a, b, enable_higher_derivatives=True)
        hb = symdl.dlgradient(np.sum(ga * ga), b)
        return ga, gb, hb
    ga, gb, hb = symdl.dlfeval(body, symdl.dlarray(x), symdl.dlarray(z))
    assert_close(symdl.extractdata(ga), np.cos(x), 1e-14, 0.0)
    np.testing.assert_array_equal(symdl.extractdata(gb), np.zeros(4))
    np.testing.assert_array_equal(symdl.extractdata(hb), np.zeros(4))


def test_gradient_with_respect_to_container_and_intermediate():
    x = uniform(-1, 1, (3,), seed=56)

    def body(a):
        h = np.sin(a)
        y = np.sum(h * h * a)
        return symdl.dlgradient(y, {"a": a, "h": [h]})
    g = symdl.dlfeval(body, symdl.dlarray(x))
    assert_close(symdl.extractdata(g["a"]), np.sin(x) ** 2 + 2 * np.sin(x) * np.cos(x) * x, 1e-13, 0.0)
    assert_close(symdl.extractdata(g["h"][0]), 2 * np.sin(x) * x, 1e-13, 0.0)


def test_formatted_input_keeps_labels_and_gradient():
    data = uniform(-1, 1, (3, 2), seed=57)

    def body(a):
        y = np.sum(np.exp(a) * np.arange(1.0, 4.0)[:, None])
        return symdl.dlgradient(y, a)
    g = symdl.dlfeval(body, symdl.dlarray(data, "CB"))
    assert g.fmt == "CB"
    assert_close(symdl.extractdata(g), np.exp(data) * np.arange(1.0, 4.0)[:, None], 1e-14, 0.0)
