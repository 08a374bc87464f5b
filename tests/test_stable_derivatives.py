"""Derivatives of every elementwise function are as sound numerically as the
function: orders 1-4 at extreme finite inputs are finite (and right) wherever
the true derivative is a finite number of the dtype.

The reference is ``sympy.diff`` of each function's SymPy definition,
evaluated with 40-digit arithmetic (mpmath), independent of symdl's
derivative rules (declared or SymPy-derived) and of their numerics.  Both the
interpreter and compiled code are checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdl  # noqa: F401  (before codegen: symdl.ir is imported through the package)
from codegen.compiler import compile_graph
from symdl.autodiff.reverse import jvp
from symdl.ir import build as B
from symdl.ir.interpret import interpret
from symdl.ir.ops import PRIMITIVES
from symdl.ir.ops import functions as F

ORDERS = (1, 2, 3, 4)
POINTS = {"float64": (-1e4, -800.0, 800.0, 1e4, -30.0, 30.0), "float32": (-100.0, -30.0, 30.0, 100.0)}
# the built-in differentiable functions of one argument; atan2 and pow in each argument below
UNARY = sorted(op for op, fn in F.FUNCTIONS.items()
               if fn.differentiable and fn.arity == 1 and not op.startswith(("ew_", "sympy_")))


def derivatives(out, x, orders=ORDERS) -> list:
    """d^k out / dx^k for each k, by repeated forward mode on the graph."""
    result, d = [], out
    one = B.const(1.0, x.shape, x.dtype)
    for k in range(1, max(orders) + 1):
        (d,) = jvp([d], [x], [one])
        d = d if d is not None else B.fill(0.0, x)
        if k in orders:
            result.append(d if d.shape == x.shape else B.broadcast_to(d, x.shape))
    return result


def true_value(expr, sym, k: int, point: float):
    """The k-th derivative at ``point`` to 40 digits, or None where it (or the
    function) is not a real number."""
    at = sympy.Float(point, 50)
    if not expr.subs(sym, at).evalf(40).is_real:
        return None  # outside the function's real domain (acosh(-1e4))
    value = sympy.diff(expr, sym, k).subs(sym, at).evalf(40)
    if not value.is_real or not value.is_finite:
        return None
    return float(value)


def check(op_name: str, graph_of, expr, sym, dtype: str) -> None:
    points = POINTS[dtype]
    x = B.input_node("x", (len(points),), dtype)
    outs = derivatives(graph_of(x), x)
    values = np.array(points, dtype=dtype)
    interpreted = interpret(outs, {x: values})
    compiled = compile_graph([x], outs).entry()(values)
    big = float(np.finfo(dtype).max)
    # relative accuracy, with an absolute floor of a few roundings of O(1)
    # terms: 1 - tanh(x)^2 (as JAX and PyTorch compute it) is 0 at x = -30
    # where the true value is 3.5e-26
    rtol = 1e-7 if dtype == "float64" else 2e-3
    atol = 16 * float(np.finfo(dtype).eps)
    for k, got_i, got_c in zip(ORDERS, interpreted, compiled):
        for j, p in enumerate(points):
            want = true_value(expr, sym, k, p)
            if want is None or abs(want) > big:
                continue  # no finite true value to match
            where = f"d^{k} {op_name}({p}) in {dtype}"
            for label, got in (("interpreted", got_i[j]), ("compiled", got_c[j])):
                assert np.isfinite(got), f"{where} ({label}) is {got}, true value {want:.6g}"
                assert abs(float(got) - want) <= rtol * abs(want) + atol, \
                    f"{where} ({label}) is {got}, true value {want:.6g}"


@pytest.mark.parametrize("dtype", ("float64", "float32"))
@pytest.mark.parametrize("op", UNARY)
def test_unary_derivatives_are_finite_at_extremes(op, dtype):
    fn = F.FUNCTIONS[op]
    check(op, lambda x: B.fn(op, x), fn.expr, fn.params[0], dtype)


@pytest.mark.parametrize("dtype", ("float64", "float32"))
@pytest.mark.parametrize("op, argument", [("atan2", 0), ("atan2", 1), ("pow", 1)])
def test_binary_derivatives_are_finite_at_extremes(op, argument, dtype):
    s, t = sympy.symbols("s t", real=True)
    other = 1.5 if op == "atan2" else 0.5   # x ** y in y, at x = 0.5
    if op == "atan2":
        expr = sympy.atan2(s, other) if argument == 0 else sympy.atan2(other, s)
    else:
        expr = other ** s

    def graph_of(x):
        c = B.const(other, x.shape, x.dtype)
        return B.fn(op, x, c) if argument == 0 else B.fn(op, c, x)
    check(f"{op}[{argument}]", graph_of, expr, s, dtype)


def test_softplus_gradient_where_sympy_overflows():
    # the formula sympy.diff gives (exp(x)/(exp(x)+1)) is NaN beyond x = 709;
    # the declared partial is sigmoid(x)
    x = B.input_node("x", (3,), "float64")
    (d,) = derivatives(B.fn("softplus", x), x, orders=(1,))
    got = interpret([d], {x: np.array([710.0, 1e4, -1e4])})[0]
    np.testing.assert_array_equal(got, [1.0, 1.0, 0.0])


def test_sigmoid_derivatives_keep_relative_precision():
    # sigmoid' = sigmoid(x) sigmoid(-x) is accurate in the tails, where
    # sigmoid (1 - sigmoid) has lost every digit to cancellation
    xs = np.array([30.0, -30.0, 100.0, -700.0])
    x = B.input_node("x", xs.shape, "float64")
    d1, d2 = derivatives(B.fn("sigmoid", x), x, orders=(1, 2))
    got1, got2 = interpret([d1, d2], {x: xs})
    s = sympy.Symbol("s", real=True)
    sig = 1 / (1 + sympy.exp(-s))
    for k, got in ((1, got1), (2, got2)):
        want = [true_value(sig, s, k, p) for p in xs]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"d^{k} sigmoid")


def test_every_builtin_is_swept():
    assert {"sigmoid", "softplus", "exp", "tanh", "erf"} <= set(UNARY)
    assert all(op in PRIMITIVES for op in UNARY)


def test_user_functions_may_declare_stable_partials():
    softplus = symdl.elementwise(lambda t: sympy.log(1 + sympy.exp(t)), name="sd_softplus",
                                 partials=lambda t: [1 / (1 + sympy.exp(-t))])
    naive = symdl.elementwise(lambda t: sympy.log(1 + sympy.exp(t)), name="sd_softplus")

    def first_and_second(fn):
        def f(x):
            g = symdl.dlgradient(symdl.sum(fn(x)), x, enable_higher_derivatives=True)
            return g, symdl.dlgradient(symdl.sum(g), x)
        return f

    xs = symdl.dlarray(np.array([800.0, 0.0, -800.0]))
    g, h = symdl.dlfeval(first_and_second(softplus), xs)
    np.testing.assert_allclose(symdl.extractdata(g), [1.0, 0.5, 0.0], atol=1e-300)
    # the second derivative is sympy.diff of the declared partial: exp(-x)/(1+exp(-x))^2,
    # right where that formula is (its own overflow at x = -800 is the user's to declare away)
    np.testing.assert_allclose(symdl.extractdata(h)[:2], [0.0, 0.25], atol=1e-300)
    assert naive.op != softplus.op  # declared partials make a different function
    g_naive, _ = symdl.dlfeval(first_and_second(naive), xs)
    assert np.isnan(symdl.extractdata(g_naive)[0])  # what the declaration is for


def test_declared_partials_are_checked():
    with pytest.raises(ValueError, match="one expression per argument"):
        symdl.elementwise(lambda a, b: a * b, partials=lambda a, b: [b])
    with pytest.raises(TypeError, match="partials must be a callable"):
        symdl.elementwise(lambda a: a ** 2, partials=[2])
    with pytest.raises(ValueError, match="not the function's arguments"):
        symdl.elementwise(lambda a: a ** 2, partials=lambda a: [2 * sympy.Symbol("q")])


def test_derivative_of_a_power_in_its_exponent_is_zero_at_a_zero_base():
    # d/dp x**p = log(x) x**p, which is 0 (not 0 * -inf = NaN) at x == 0 for
    # p > 0: one zero in the data must not poison the gradient
    import symdl
    x = np.array([0.0, 1.0, 2.0])
    p = np.array([1.5, 2.0, 0.5])
    got = symdl.grad(lambda q: np.sum(x ** q))(p)
    np.testing.assert_allclose(got, [0.0, 0.0, np.log(2.0) * 2.0 ** 0.5], rtol=1e-15)
    second = symdl.hessian(lambda q: np.sum(x ** q))(p)       # log(x)^2 x^p on the diagonal
    np.testing.assert_allclose(np.diag(second), [0.0, 0.0, np.log(2.0) ** 2 * 2.0 ** 0.5], rtol=1e-14)
