"""IEEE semantics (SPEC 9.3, docs/ieee.md).

* Default: simplification is real-number algebra, and the interpreter (the
  values of a trace under ``dlfeval``) and compiled code evaluate the same
  simplified graph, so they agree, inf and NaN included.
* ``ieee=True`` on ``compile``, ``dlaccelerate`` and the transforms: results
  match numpy evaluating the same program step by step.
* Either way a NaN in a value reaches the gradients that depend on it.

References: numpy evaluating the same Python function on plain arrays, and
hand-derived derivative formulas evaluated by numpy.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdl
from symdl import dlarray, dlfeval, dlgradient

INF, NAN = np.inf, np.nan

# ---------------------------------------------------------------- the cases


def _numpy(f, *args):
    with np.errstate(all="ignore"):
        return f(*[np.asarray(a, dtype=np.float64) for a in args])


def _traced(f, *args):
    """The interpreter's value: ``f`` traced under dlfeval."""
    out = dlfeval(f, *[dlarray(np.asarray(a, dtype=np.float64)) for a in args])
    return np.asarray(out._value if isinstance(out, dlarray) else out)


CASES = [  # (function, input, real-algebra result, IEEE result)
    (lambda x: x + (x - x), INF, INF, NAN),
    (lambda x: (x + 1.0) - x, 1e200, 1.0, 0.0),
    (lambda x: np.log(np.exp(x)), 1000.0, 1000.0, INF),
    (lambda x: (x * 1e200) * 1e200 / 1e200, 1e200, INF, INF),
    (lambda x: (x + 1e308) - 1e308, 1e308, 1e308, INF),
    (lambda x: x / x, 0.0, NAN, NAN),  # x / x -> 1 is fast-math only
    (lambda x: x * 0.0, INF, NAN, NAN),
]


@pytest.mark.parametrize("f, x, real, ieee", CASES)
def test_default_is_real_algebra_and_interpreter_agrees(f, x, real, ieee):
    compiled = symdl.compile(f, 1.0)(x)
    np.testing.assert_equal(compiled, real)
    np.testing.assert_equal(_traced(f, x), compiled)
    acc = symdl.dlaccelerate(f)
    np.testing.assert_equal(acc(dlarray(x))._value, real)  # first call: traced
    np.testing.assert_equal(acc(dlarray(x))._value, real)  # second: native


@pytest.mark.parametrize("f, x, real, ieee", CASES)
def test_ieee_true_matches_numpy(f, x, real, ieee):
    want = _numpy(f, x)
    np.testing.assert_equal(want, ieee)  # the table above is numpy's result
    np.testing.assert_equal(symdl.compile(f, 1.0, ieee=True)(x), want)
    acc = symdl.dlaccelerate(f, ieee=True)
    assert acc.ieee
    np.testing.assert_equal(acc(dlarray(x))._value, want)
    np.testing.assert_equal(acc(dlarray(x))._value, want)


def test_division_is_one_rounding():
    # a * (1 / b) overflows at subnormal b; numpy's a / b does not
    f = symdl.compile(lambda a, b: a / b, 1.0, 1.0)
    np.testing.assert_equal(f(1e-310, 1e-310), 1.0)
    np.testing.assert_equal(f(3.0, 7.0), 3.0 / 7.0)
    np.testing.assert_equal(_traced(lambda a, b: a / b, 3.0, 7.0), 3.0 / 7.0)
    np.testing.assert_equal((dlarray(3.0) / dlarray(7.0))._value, 3.0 / 7.0)


def test_ieee_reductions_are_overflow_safe():
    # numpy, step by step, adds left to right below 8 terms: 1e308 + 1e308 is
    # inf and stays inf; the exact sum is 1 (tests/test_sum_overflow.py has
    # the rule and its cases).  With and without ieee=True the sum is 1.
    x = np.array([1e308, 1e308, -1e308, -1e308, 1.0])
    f = lambda v: np.sum(v * 1.0)  # noqa: E731
    np.testing.assert_equal(_numpy(f, x), INF)
    np.testing.assert_equal(symdl.compile(f, x, ieee=True)(x), 1.0)
    np.testing.assert_equal(symdl.compile(f, x)(x), 1.0)
    np.testing.assert_equal(_traced(f, x), 1.0)


def test_ieee_contractions_match_numpy():
    m = np.array([[1e308, 1e308], [1.0, -1.0]])
    g = lambda a: a @ np.array([1.0, -1.0])  # noqa: E731
    np.testing.assert_equal(symdl.compile(g, m, ieee=True)(m), _numpy(g, m))


def test_ieee_transforms():
    f = lambda x: np.sum(x + (x - x))  # noqa: E731
    x = np.array([1.0, INF])
    v, g = symdl.value_and_grad(f, ieee=True)(x)
    np.testing.assert_equal(v, NAN)
    np.testing.assert_equal(g, [1.0, 1.0])  # d/dx (x + (x - x)) = 1 + (1 - 1)
    np.testing.assert_equal(symdl.value_and_grad(f)(x)[0], INF)
    h = lambda x: np.log(np.exp(x)) * 2.0  # noqa: E731
    xs = np.array([1000.0, 1.0])
    np.testing.assert_equal(symdl.jacobian(h, ieee=True)(xs).diagonal()[1], 2.0)
    np.testing.assert_equal(symdl.jacobian(h, ieee=True)(xs).diagonal()[0], NAN)  # 2 exp(x) / exp(x) = inf/inf
    np.testing.assert_equal(symdl.jacobian(h)(xs).diagonal(), [2.0, 2.0])  # log(exp(x)) -> x
    k = lambda x: np.sum((x + 1.0) - x) * 1.0  # noqa: E731
    big = np.array([1e200])
    np.testing.assert_equal(symdl.grad(k, ieee=True)(big), [0.0])
    assert symdl.hessian(k, ieee=True)(big).shape == (1, 1)
    np.testing.assert_equal(symdl.hvp(k, ieee=True)(big, np.ones(1)), [0.0])
    d = symdl.derivative(lambda x: np.log(np.exp(x)), order=2, ieee=True)(np.array([1.0]))
    np.testing.assert_allclose(d, [0.0], atol=1e-12)


@pytest.mark.parametrize("make", [
    lambda: symdl.compile(lambda x: x, 1.0, ieee=1),
    lambda: symdl.dlaccelerate(lambda x: x, ieee="yes"),
    lambda: symdl.grad(lambda x: x, ieee=None),
    lambda: symdl.hessian(lambda x: x, ieee=0.0),
])
def test_ieee_must_be_a_bool(make):
    with pytest.raises(TypeError, match="ieee must be True or False"):
        make()


def test_ieee_is_part_of_the_disk_cache_key(private_cache):
    # the same graph (no sum or product to keep apart) compiles to different
    # code: left-to-right sums under ieee=True
    f = lambda x: np.sum(x)  # noqa: E731
    x = np.array([1e308, 1e308, -1e308, -1e308, 1.0, 2.0, 3.0, 4.0, 5.0])
    a = symdl.compile(f, x)
    assert len(list(private_cache.rglob("*.o"))) == 1
    b = symdl.compile(f, x, ieee=True)
    assert len(list(private_cache.rglob("*.o"))) == 2  # not the default entry
    assert "reassoc" in a.llvm_ir and "reassoc" not in b.llvm_ir
    np.testing.assert_equal(b(x), 15.0)  # the exact sum (overflow-safe, either way)
    np.testing.assert_equal(a(x), 15.0)


def _cancels(x):
    return x + (x - x)


def test_ieee_llvm_ir_has_no_fast_math_flags():
    x = np.ones(64)
    f = lambda v: np.sum(v * 2.0)  # noqa: E731
    assert "reassoc" in symdl.compile(f, x).llvm_ir  # the default sums vectorised
    ir = symdl.compile(f, x, ieee=True).llvm_ir
    for flag in ("reassoc", "fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn"):
        assert f" {flag} " not in ir


def test_ieee_accelerated_function_pickles():
    acc = symdl.dlaccelerate(_cancels, ieee=True)
    acc(dlarray(1.0))
    again = pickle.loads(pickle.dumps(acc))
    assert again.ieee
    np.testing.assert_equal(again(dlarray(INF))._value, NAN)


# ---------------------------------------------------------------- NaN reaches gradients

NAN_GRADS = [  # (function of a vector, numpy formula of its gradient)
    (lambda x: np.sum(np.maximum(x, 0.0) ** 2), lambda x: 2 * np.maximum(x, 0) * (x > 0)),
    (lambda x: np.sum(np.maximum(0.0, x) ** 2), lambda x: 2 * np.maximum(x, 0) * (x > 0)),
    (lambda x: np.sum(np.minimum(x, 0.0) ** 2), lambda x: 2 * np.minimum(x, 0) * (x < 0)),
    (lambda x: np.sum(np.maximum(x, x[::-1]) ** 2),
     lambda x: 2 * np.maximum(x, x[::-1]) * (x > x[::-1]) + (2 * np.maximum(x, x[::-1]) * (x[::-1] > x))[::-1]),
    (lambda x: np.max(x) ** 2, lambda x: 2 * np.max(x) * (x == np.max(x))),
    (lambda x: np.sum(symdl.relu(x) ** 2) if isinstance(x, dlarray) else np.sum(np.maximum(x, 0) ** 2),
     lambda x: 2 * np.maximum(x, 0) * (x > 0)),
]


@pytest.mark.parametrize("ieee", [False, True])
@pytest.mark.parametrize("f, formula", NAN_GRADS)
def test_nan_reaches_the_gradient(f, formula, ieee):
    x = np.array([1.5, NAN, -0.5, 2.0])
    want = _numpy(formula, x)
    assert np.isnan(want).any()
    got = symdl.grad(f, ieee=ieee)(x)
    np.testing.assert_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-14)
    traced = dlfeval(lambda v: dlgradient(f(v), v), dlarray(x))._value
    np.testing.assert_equal(traced, got)


def test_nan_reaches_second_derivatives():
    f = lambda x: np.sum(np.maximum(x, 0.0) ** 3)  # noqa: E731
    x = np.array([1.5, NAN, -0.5])
    h = symdl.hessian(f)(x)
    assert np.isnan(h[1, 1])
    np.testing.assert_allclose(h[0, 0], 6 * 1.5)
    hv = symdl.hvp(f)(x, np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(hv[0], 6 * 1.5)
    # away from the NaN, derivatives are as before (central differences)
    y = np.array([1.5, 0.7, -0.5])
    eps = 1e-6
    fd = [(f(y + eps * e) - f(y - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(symdl.grad(f)(y), fd, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- random programs

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, 3.0, -2.5, 1e200, -1e200, 1e-310, 700.0, 1000.0, INF, -INF, NAN]
UNARY = {
    "neg": np.negative, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "tanh": np.tanh,
    "abs": np.abs, "square": lambda a: a * a, "half": lambda a: a * 0.5, "plus1": lambda a: a + 1.0,
    "recip": lambda a: 1.0 / a, "sum": np.sum,
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "max": np.maximum, "min": np.minimum,
}


@st.composite
def programs(draw):
    """A straight-line program over two inputs: (op, operand indices) steps."""
    steps = []
    for k in range(draw(st.integers(1, 7))):
        n = 2 + k
        if draw(st.booleans()):
            steps.append((draw(st.sampled_from(sorted(UNARY))), (draw(st.integers(0, n - 1)),)))
        else:
            steps.append((draw(st.sampled_from(sorted(BINARY))),
                          (draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1)))))
    return steps


def _run(steps, x, y):
    vals = [x, y]
    for op, args in steps:
        fn = UNARY.get(op) or BINARY[op]
        vals.append(fn(*[vals[i] for i in args]))
    return vals[-1]


def _same(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    np.testing.assert_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions")
    both = ~np.isnan(want)
    inf = np.isinf(want) | np.isinf(got)
    np.testing.assert_equal(got[both & inf], want[both & inf], err_msg=f"{what}: infinities")
    # numpy's and the C library's exp, tanh, ... may differ in the last bit,
    # and a difference of nearly equal terms (1 - tanh(x)**2 in a derivative)
    # turns that into a larger relative error of a small result: atol
    np.testing.assert_allclose(got[both & ~inf], want[both & ~inf], rtol=1e-8, atol=1e-9, err_msg=what)


values = st.lists(st.sampled_from(SPECIAL), min_size=3, max_size=3).map(np.array)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), values, values)
def test_random_programs_interpreted_equals_compiled(steps, x, y):
    def f(a, b):
        return _run(steps, a, b)

    def with_gradient(a, b):
        out = f(a, b)
        return (out, *dlgradient(symdl.sum(out), a, b))

    compiled = symdl.compile(with_gradient, x, y)(x, y)
    traced = dlfeval(with_gradient, dlarray(x), dlarray(y))
    for k, (c, t) in enumerate(zip(compiled, traced)):
        _same(c, t._value, f"output {k} of {steps} at x={x}, y={y}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), values, values)
def test_random_programs_ieee_match_numpy(steps, x, y):
    def f(a, b):
        return _run(steps, a, b)

    want = _numpy(f, x, y)
    _same(symdl.compile(f, x, y, ieee=True)(x, y), want, f"{steps} at x={x}, y={y}")


# ---------------------------------------------------------------- derivatives under ieee=True

@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_ieee_derivatives_match_sympy(order):
    import sympy
    t = sympy.Symbol("t")
    expr = sympy.exp(sympy.sin(t)) / (1 + t ** 2)
    reference = sympy.lambdify(t, sympy.diff(expr, t, order), "numpy")
    xs = np.linspace(-2.0, 2.0, 9)
    got = symdl.derivative(lambda x: np.exp(np.sin(x)) / (1.0 + x ** 2), order=order, ieee=True)(xs)
    np.testing.assert_allclose(got, reference(xs), rtol=1e-11, atol=1e-12)


def test_ieee_hessian_and_hvp_match_central_differences():
    def f(x):
        return np.sum(np.sin(x) * x ** 2) + np.tanh(x[0] * x[1])

    x = np.array([0.3, -0.7, 1.1])
    eps = 1e-4
    def grad_fd(y):
        return np.array([(f(y + eps * e) - f(y - eps * e)) / (2 * eps) for e in np.eye(3)])
    hess_fd = np.array([(grad_fd(x + eps * e) - grad_fd(x - eps * e)) / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(symdl.grad(f, ieee=True)(x), grad_fd(x), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(symdl.hessian(f, ieee=True)(x), hess_fd, rtol=1e-5, atol=1e-6)
    v = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(symdl.hvp(f, ieee=True)(x, v), hess_fd @ v, rtol=1e-5, atol=1e-6)
