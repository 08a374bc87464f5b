"""``symdl.numpy`` (numpy's namespace for differentiable code), numpy's
keywords and ufunc methods on dlarrays, operators and methods, higher-order
derivatives against SymPy, numerical soundness, and bad input."""

from __future__ import annotations

import math

import numpy
import pytest
import sympy
from scipy.special import expit

import symdl
import symdl.numpy as np
from helpers import check_grads


# ---------------------------------------------------------------- the namespace

def test_autograd_idiom_differentiates():
    g = symdl.grad(lambda x: np.sum(np.array([x, 2 * x]) * x))
    assert float(g(3.0)) == 18.0   # d/dx (x^2 + 2 x^2) = 6x
    h = symdl.grad(lambda x: np.sum(np.asarray([[x, 1.0], [x ** 2, x]]) ** 2))
    a = 1.5
    assert float(h(a)) == pytest.approx(2 * a + 4 * a ** 3 + 2 * a, rel=1e-14)


def test_plain_data_stays_numpy():
    assert isinstance(np.array([1.0, 2.0]), numpy.ndarray)
    assert isinstance(np.sum(np.ones(3)), numpy.floating)
    assert np.pi == numpy.pi and np.float32 is numpy.float32 and np.newaxis is None
    assert np.linalg.LinAlgError is numpy.linalg.LinAlgError
    numpy.testing.assert_allclose(np.linalg.norm(numpy.array([3.0, 4.0])), 5.0)  # plain data: numpy's
    numpy.testing.assert_array_equal(np.r_[1.0, 2.0, 0:2], numpy.r_[1.0, 2.0, 0:2])
    numpy.testing.assert_array_equal(np.c_[[1.0], [2.0]], numpy.c_[[1.0], [2.0]])


def test_lists_of_traced_values_reach_the_functions():
    def f(x):
        return np.sum(np.exp([x, 2.0 * x])) + np.max([x, x * 3.0]) + np.mean((x, 1.0))
    a = 0.7
    expected = math.exp(a) + 2 * math.exp(2 * a) + 3 + 0.5
    assert float(symdl.grad(f)(a)) == pytest.approx(expected, rel=1e-13)


def test_r_and_c_build_from_traced_values():
    def f(x):
        r = np.r_[x, 2.0 * x[:1], 0:2]
        c = np.c_[x, x ** 2]
        return np.sum(r * r) + np.sum(c * 3.0)
    a = numpy.array([0.5, -1.0])
    expected = 2 * a + numpy.array([8 * a[0], 0.0]) + 3 + 6 * a
    numpy.testing.assert_allclose(symdl.grad(f)(a), expected, rtol=1e-14)
    x = symdl.dlarray(a)
    assert np.r_[x, 1.0].shape == (3,) and np.c_[x, x].shape == (2, 2)


def test_array_dtype_and_ndmin():
    x = symdl.dlarray(1.0)
    assert np.array([x, 2.0], dtype=numpy.float32).dtype == numpy.float32
    assert np.array([x], ndmin=3).shape == (1, 1, 1)
    with pytest.raises(TypeError, match="float32 or float64"):
        np.array([x], dtype=int)


def test_every_numpy_name_is_there():
    missing = [n for n in numpy.__all__ if not hasattr(np, n)]
    assert not missing


# ---------------------------------------------------------------- keywords, ufunc methods, operators, methods

def test_numpy_keywords():
    a = numpy.arange(12.0).reshape(3, 4) - 5
    x = symdl.dlarray(a)
    cases = [
        (lambda m: numpy.clip(m, a_min=-1.0, a_max=2.0)), (lambda m: numpy.sum(m, dtype=numpy.float64)),
        (lambda m: numpy.sum(m, axis=0, initial=1.5)), (lambda m: numpy.sum(m, where=m > 0)),
        (lambda m: numpy.max(m, axis=1, initial=3.0)), (lambda m: numpy.mean(m, axis=1, keepdims=True)),
        (lambda m: numpy.prod(m[:, :2], axis=0, out=None)), (lambda m: numpy.exp(m / 10, dtype=numpy.float64)),
        (lambda m: numpy.exp(m / 10, out=None)), (lambda m: numpy.var(m, ddof=1, axis=1)),
        (lambda m: numpy.std(m, keepdims=True)), (lambda m: numpy.reshape(m, shape=(4, 3))),
        (lambda m: numpy.reshape(m, (4, 3), order="F")), (lambda m: numpy.take(m, [0, 5], mode="wrap", axis=1)),
        (lambda m: numpy.cumsum(m, axis=0, out=None)), (lambda m: numpy.where(m > 0, m, [1.0, 2.0, 3.0, 4.0])),
    ]
    for k, fn in enumerate(cases):
        numpy.testing.assert_allclose(symdl.extractdata(fn(x)), fn(a), rtol=1e-14, err_msg=f"case {k}")


def test_ufunc_methods():
    a = numpy.arange(1.0, 7.0).reshape(2, 3)
    x = symdl.dlarray(a)
    for fn in (lambda m: numpy.add.reduce(m), lambda m: numpy.multiply.reduce(m, axis=1),
               lambda m: numpy.maximum.reduce(m, axis=None), lambda m: numpy.add.accumulate(m, axis=1),
               lambda m: numpy.multiply.accumulate(m), lambda m: numpy.multiply.outer(m[0], m[1]),
               lambda m: numpy.subtract.outer(m[:, 0], m[0])):
        numpy.testing.assert_allclose(symdl.extractdata(fn(x)), fn(a), rtol=1e-14)
    check_grads(lambda m: numpy.multiply.accumulate(m, axis=1), [a / 3])


def test_operators_and_methods():
    a = numpy.array([5.5, -5.5, 2.25, -0.75])
    b = numpy.array([2.0, 2.0, -1.5, -0.5])
    x, y = symdl.dlarray(a), symdl.dlarray(b)
    for got, expected in [(x % y, a % b), (x // y, a // b), (7.0 % x, 7.0 % a), (7.0 // x, 7.0 // a),
                          (x % 2.0, a % 2.0), (divmod(x, y)[0], divmod(a, b)[0]), (divmod(x, y)[1], divmod(a, b)[1]),
                          (x.clip(-1.0, 1.0), a.clip(-1.0, 1.0)), (x.var(), a.var()), (x.std(ddof=1), a.std(ddof=1)),
                          (x.cumsum(), a.cumsum()), (x.cumprod(), a.cumprod()), (x.ravel(), a.ravel()),
                          (x.flatten(), a.flatten()), (x.copy(), a.copy()), (x.dot(y), a.dot(b)),
                          (x.round(1), a.round(1)), (x.reshape(2, 2).trace(), a.reshape(2, 2).trace()),
                          (x.reshape(2, 2).diagonal(), a.reshape(2, 2).diagonal()), (x.repeat(2), a.repeat(2)),
                          (x.reshape(2, 2).swapaxes(0, 1), a.reshape(2, 2).swapaxes(0, 1)),
                          (x.sum(where=x > 0), a.sum(where=a > 0)), (x.max(initial=10.0), a.max(initial=10.0))]:
        numpy.testing.assert_allclose(symdl.extractdata(got), expected, rtol=1e-15)
    assert x.argmax() == a.argmax() and x.argmin() == a.argmin()
    numpy.testing.assert_array_equal(x.argsort(), a.argsort(kind="stable"))
    assert x.item(1) == a[1] and x.tolist() == a.tolist()
    s = symdl.dlarray(a)
    s.sort()
    numpy.testing.assert_array_equal(symdl.extractdata(s), numpy.sort(a))


def test_in_place_sort_is_differentiable():
    w = numpy.array([1.0, 2.0, 3.0])

    def f(x):
        y = x * 1.0
        y.sort()
        return symdl.sum(y * w)
    a = numpy.array([0.3, -1.0, 2.0])
    expected = numpy.zeros(3)
    expected[numpy.argsort(a)] = w
    numpy.testing.assert_array_equal(symdl.grad(f)(a), expected)


# ---------------------------------------------------------------- higher orders against SymPy

_t = sympy.Symbol("t", real=True)


def _nth_derivative(fun, n, a):
    """n-th derivative of an elementwise function through nested dlgradient."""
    def body(x):
        y = fun(x)
        for _ in range(n):
            y = symdl.dlgradient(symdl.sum(y), x, enable_higher_derivatives=True)
        return y
    return symdl.extractdata(symdl.dlfeval(body, symdl.dlarray(a)))


@pytest.mark.parametrize("name, fun, expr, points", [
    ("log2", numpy.log2, sympy.log(_t, 2), [0.5, 1.7]),
    ("log10", numpy.log10, sympy.log(_t, 10), [0.5, 3.0]),
    ("exp2", numpy.exp2, 2 ** _t, [-1.2, 0.4]),
    ("cbrt", numpy.cbrt, sympy.real_root(_t, 3), [0.4, 2.5]),
    ("sinc", numpy.sinc, sympy.sin(sympy.pi * _t) / (sympy.pi * _t), [0.3, -0.45, 0.55, 2.2]),
    ("logaddexp", lambda x: numpy.logaddexp(x, 0.5 * x), sympy.log(sympy.exp(_t) + sympy.exp(_t / 2)), [-1.0, 2.0]),
    ("hypot", lambda x: numpy.hypot(x, 2.0), sympy.sqrt(_t ** 2 + 4), [-1.0, 0.3]),
    ("reciprocal", numpy.reciprocal, 1 / _t, [0.7, -2.0]),
])
@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_higher_orders_match_sympy(name, fun, expr, points, order):
    a = numpy.array(points)
    expected = [float(sympy.diff(expr, _t, order).subs(_t, p).evalf(30)) for p in points]
    numpy.testing.assert_allclose(_nth_derivative(fun, order, a), expected, rtol=1e-9, atol=1e-9)


def test_sinc_derivatives_at_zero_are_the_limits():
    expr = sympy.sin(sympy.pi * _t) / (sympy.pi * _t)
    for order in range(0, 7):
        expected = float(sympy.limit(sympy.diff(expr, _t, order), _t, 0))
        got = _nth_derivative(numpy.sinc, order, numpy.array([0.0]))[0]
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12), order


def test_mod_derivatives():
    # d/da mod(a, b) = 1, d/db = -floor(a / b); second derivatives are zero
    a, b = numpy.array([5.3, -5.3, 0.4]), numpy.array([2.0, 2.0, -0.3])
    def body(x, y):
        r = numpy.mod(x, y) + numpy.fmod(x, y)
        gx, gy = symdl.dlgradient(symdl.sum(r), x, y, enable_higher_derivatives=True)
        return gx, gy, symdl.dlgradient(symdl.sum(gx * gx + gy), x, y)
    gx, gy, (hx, hy) = symdl.dlfeval(body, symdl.dlarray(a), symdl.dlarray(b))
    numpy.testing.assert_array_equal(symdl.extractdata(gx), [2.0, 2.0, 2.0])
    numpy.testing.assert_array_equal(symdl.extractdata(gy), -numpy.floor(a / b) - numpy.trunc(a / b))
    numpy.testing.assert_array_equal(symdl.extractdata(hx), 0.0)
    numpy.testing.assert_array_equal(symdl.extractdata(hy), 0.0)


# ---------------------------------------------------------------- numerical soundness

@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_logaddexp_every_order_is_finite_for_large_inputs(dtype):
    a = numpy.array([-1e4, -50.0, 0.0, 30.0, 1e4, 3e4], dtype=dtype)
    b = numpy.array([1e4, 60.0, 0.0, -30.0, 1e4 + 1, -3e4], dtype=dtype)
    for f in (lambda x: numpy.logaddexp(x, b), lambda x: numpy.logaddexp2(x, b)):
        for order in range(4):
            d = _nth_derivative(f, order, a)
            assert d.dtype == dtype and numpy.all(numpy.isfinite(d)), (order, d)
    numpy.testing.assert_allclose(_nth_derivative(lambda x: numpy.logaddexp(x, b), 1, a.astype(numpy.float64)),
                                  expit(a.astype(numpy.float64) - b), rtol=1e-6)


def test_hypot_does_not_overflow():
    g = symdl.value_and_grad(lambda x: numpy.sum(numpy.hypot(x, 1e300)))
    value, grad = g(numpy.array([1e300]))
    assert value == pytest.approx(math.hypot(1e300, 1e300), rel=1e-15)
    assert grad[0] == pytest.approx(1 / math.sqrt(2), rel=1e-15)


def test_fmax_fmin_nan_to_num_handle_nan():
    a = numpy.array([numpy.nan, 1.0, numpy.nan, -numpy.inf])
    b = numpy.array([2.0, numpy.nan, numpy.nan, 0.0])
    x, y = symdl.dlarray(a), symdl.dlarray(b)
    numpy.testing.assert_array_equal(symdl.extractdata(numpy.fmax(x, y)), numpy.fmax(a, b))
    numpy.testing.assert_array_equal(symdl.extractdata(numpy.fmin(x, y)), numpy.fmin(a, b))
    numpy.testing.assert_array_equal(symdl.extractdata(numpy.nan_to_num(x, nan=5.0, neginf=-7.0)),
                                     numpy.nan_to_num(a, nan=5.0, neginf=-7.0))
    # the derivative goes to the operand that is not NaN (the first when both are)
    g = symdl.dlfeval(lambda u, v: symdl.dlgradient(symdl.sum(numpy.fmax(u, v)), u, v), x, y)
    numpy.testing.assert_array_equal(symdl.extractdata(g[0]), [0.0, 1.0, 1.0, 0.0])
    numpy.testing.assert_array_equal(symdl.extractdata(g[1]), [1.0, 0.0, 0.0, 1.0])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, error, match", [
    (lambda x: numpy.sum(x, out=numpy.zeros(())), TypeError, "out="),
    (lambda x: numpy.sum(x, dtype=int), TypeError, "sum: dtype must be float32 or float64"),
    (lambda x: numpy.max(x, where=x > 0), ValueError, "max: where= needs initial="),
    (lambda x: numpy.clip(x), ValueError, "clip: at least one of a_min and a_max"),
    (lambda x: numpy.einsum("ij,jk->ik", x, x[0]), ValueError, "einsum"),
    (lambda x: numpy.einsum("ij,jk->iz", x, x), ValueError, "output label 'z'"),
    (lambda x: numpy.einsum("i->i", x), ValueError, "einsum: subscript 'i' has 1 labels"),
    (lambda x: numpy.einsum("ij,jk->ik", x, x.T[:2]), ValueError, "einsum: label 'j' has size"),
    (lambda x: numpy.einsum("...j->j", x), ValueError, "einsum: output has more dimensions"),
    (lambda x: numpy.tensordot(x, x, axes=3), ValueError, "tensordot: axes=3"),
    (lambda x: numpy.tensordot(x, x, axes=([0], [0, 1])), ValueError, "tensordot"),
    (lambda x: numpy.cross(x[:, :1], x), ValueError, "cross: incompatible dimensions"),
    (lambda x: numpy.split(x, 2, axis=1), ValueError, "split: array split does not result in an equal division"),
    (lambda x: numpy.pad(x, 1, mode="median"), ValueError, "pad: mode 'median' is not supported"),
    (lambda x: numpy.pad(x, -1), ValueError, "pad: pad_width must be non-negative"),
    (lambda x: numpy.repeat(x, [1, 2], axis=1), ValueError, "repeat"),
    (lambda x: numpy.diag(x[None]), ValueError, "diag: input must be 1-D or 2-D"),
    (lambda x: numpy.diagonal(x, axis1=1, axis2=1), ValueError, "diagonal: axis1 and axis2"),
    (lambda x: numpy.rot90(x, axes=(0, 0)), ValueError, "rot90: axes must be different"),
    (lambda x: numpy.moveaxis(x, [0, 1], [0]), ValueError, "moveaxis"),
    (lambda x: numpy.diff(x, n=-1), ValueError, "diff: order n"),
    (lambda x: numpy.partition(x[0], 7), ValueError, "partition: kth 7 out of bounds"),
    (lambda x: numpy.select([x > 0], [x, x]), ValueError, "select: condlist"),
    (lambda x: numpy.vsplit(x[0], 1), ValueError, "vsplit: only works on arrays of 2 or more"),
    (lambda x: numpy.fliplr(x[0]), ValueError, "fliplr"),
    (lambda x: numpy.sort(x, axis=2), ValueError, "sort"),
    (lambda x: numpy.argmax(x[:0]), ValueError, "argmax: attempt to get argmax of an empty sequence"),
    (lambda x: numpy.var(x, mean=0.0), TypeError, "var: mean="),
    (lambda x: numpy.roll(x, 1.5, axis=0), TypeError, "roll: shift must be an integer"),
    (lambda x: numpy.exp(x, where=x > 0), TypeError, "exp: where="),
])
@pytest.mark.parametrize("traced", [False, True])
def test_bad_input_is_a_clear_error(call, error, match, traced):
    x = symdl.dlarray(numpy.arange(6.0).reshape(2, 3))
    with pytest.raises(error, match=match):
        if traced:
            symdl.dlfeval(call, x)
        else:
            call(x)


# ---------------------------------------------------------------- the transforms compose with the new functions

def _numeric_jacobian(f, a, eps=1e-6):
    cols = []
    for j in range(a.size):
        d = numpy.zeros_like(a)
        d.flat[j] = eps
        cols.append((numpy.asarray(f(a + d)) - numpy.asarray(f(a - d))).ravel() / (2 * eps))
    return numpy.stack(cols, axis=-1)


def test_hessian_and_jacobian_through_sort_einsum_cumprod_logaddexp():
    w = numpy.array([0.5, -1.0, 2.0, 0.25])

    def f(x):
        s = numpy.sort(x)
        c = numpy.cumprod(x[::-1])
        e = numpy.einsum("i,j,ij->", x, s, numpy.outer(c, w))
        return numpy.sum(s ** 3 * w) + numpy.sum(numpy.logaddexp(x, 2.0 * x)) + 0.1 * e

    def fx(x):
        return numpy.concatenate([numpy.sort(x) ** 2, numpy.diff(numpy.cumprod(x)), [numpy.var(x)]])

    a = numpy.array([0.3, -1.2, 0.9, 0.1])
    grad = symdl.grad(f)
    numpy.testing.assert_allclose(grad(a), _numeric_jacobian(f, a)[0], rtol=1e-6, atol=1e-6)  # f itself: numpy
    numpy.testing.assert_allclose(symdl.hessian(f)(a), _numeric_jacobian(grad, a), rtol=1e-6, atol=1e-6)
    numpy.testing.assert_allclose(symdl.jacobian(fx)(a), _numeric_jacobian(fx, a), rtol=1e-6, atol=1e-6)
    v = numpy.array([1.0, -0.5, 0.25, 2.0])
    numpy.testing.assert_allclose(symdl.hvp(f)(a, v), _numeric_jacobian(grad, a) @ v, rtol=1e-6, atol=1e-6)
    # another order of the elements: the compiled transforms trace again
    b = a[::-1].copy()
    numpy.testing.assert_allclose(symdl.hessian(f)(b), _numeric_jacobian(grad, b), rtol=1e-6, atol=1e-6)


def test_traced_keyword_values_keep_their_derivative():
    a = numpy.array([1.0, -2.0, 3.0])

    def f(x, s):
        return (numpy.sum(x, initial=s) + numpy.max(x, where=x < 0, initial=s) + numpy.prod(x, initial=s)
                + numpy.sum(numpy.nan_to_num(x / 0.0 * 0.0, nan=s)))
    g = symdl.dlfeval(lambda x, s: symdl.dlgradient(f(x, s), s), symdl.dlarray(a), symdl.dlarray(0.5))
    # d/ds: sum + max(-2, s) (s wins) + prod * s + three NaN replacements
    assert float(g) == pytest.approx(1.0 + 1.0 + numpy.prod(a) + 3.0, rel=1e-14)


def test_numpy_integer_axes_are_accepted():
    a = numpy.arange(6.0).reshape(2, 3)
    x = symdl.dlarray(a)
    i0, i1 = numpy.int64(0), numpy.int64(1)
    for k, f in enumerate([lambda m: numpy.sum(m, axis=i1), lambda m: numpy.var(m, axis=i0),
                           lambda m: numpy.sort(m, axis=i0), lambda m: numpy.roll(m, i1, axis=i1),
                           lambda m: numpy.cumsum(m, axis=i1), lambda m: numpy.max(m, axis=(i0, i1)),
                           lambda m: numpy.expand_dims(m, i1), lambda m: numpy.concatenate([m, m], axis=i1),
                           lambda m: numpy.stack([m, m], axis=i1), lambda m: numpy.mean(m, i0)]):
        numpy.testing.assert_array_equal(symdl.extractdata(f(x)), f(a), err_msg=f"case {k}")


@pytest.mark.parametrize("name", ["concatenate", "stack", "vstack", "hstack", "dstack", "column_stack"])
def test_stacking_functions_read_an_array_as_the_sequence_of_its_rows(name):
    a = np.arange(6.0).reshape(2, 3)
    got = getattr(symdl, name)(symdl.dlarray(a))
    np.testing.assert_array_equal(symdl.extractdata(got), getattr(np, name)(a))
    g = symdl.grad(lambda x: symdl.sum(symdl.sin(getattr(symdl, name)(x))))(a)
    np.testing.assert_allclose(g, np.cos(a), rtol=1e-14)


def test_eigh_has_the_same_eigenvector_signs_traced_or_not():
    """symdl.numpy.linalg.eigh on plain data uses symdl's sign rule, so a
    function of eigenvectors is one function: its finite differences (plain
    data) agree with its gradient (traced)."""
    import symdl.numpy as snp
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 5))
    a = a + a.T
    u = rng.standard_normal((5, 5))

    def f(x):
        w, v = snp.linalg.eigh(x)
        return snp.sum(v * u) + snp.sum(w)

    w_plain, v_plain = snp.linalg.eigh(a)
    w_np, v_np = np.linalg.eigh(a)
    np.testing.assert_allclose(w_plain, w_np, rtol=1e-12)
    np.testing.assert_allclose(np.abs(v_plain), np.abs(v_np), atol=1e-12)   # up to sign
    rows = np.abs(v_plain).argmax(axis=0)
    assert np.all(v_plain[rows, np.arange(5)] > 0)
    g = symdl.grad(f)(a)
    d = rng.standard_normal((5, 5))
    d = d + d.T
    eps = 1e-6
    numeric = (f(a + eps * d) - f(a - eps * d)) / (2 * eps)
    # eigh reads the lower triangle: the derivative along d is the gradient's pairing with d's lower part
    np.testing.assert_allclose(np.sum(g * np.tril(d)), numeric, rtol=1e-5, atol=1e-8)
