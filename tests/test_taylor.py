"""Taylor-mode derivatives (symdl.autodiff.taylor) against sympy.diff evaluated
numerically, against nested symbolic differentiation, and compiled against
the interpreter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy

import symdl  # imported before codegen (codegen.compiler imports symdl.ir)
from codegen.compiler import compile_graph
from symdl.autodiff.reverse import jvp
from symdl.autodiff.taylor import taylor_coefficients, taylor_derivatives
from symdl.ir import build as B
from symdl.ir.interpret import interpret
from symdl.ir.rewrite import toposort

X = sympy.Symbol("x", real=True)
POINTS = np.array([-1.3, -0.4, 0.2, 0.7, 1.9])
ORDER = 8


def _shift(a, c):
    return B.linear([(a, 1.0)], c)


# name: (graph builder over x, the same function in SymPy)
CASES = {
    "exp(sin x)/(1+x^2)": (lambda x: B.div(B.fn("exp", B.fn("sin", x)), _shift(B.ipow(x, 2), 1.0)),
                           sympy.exp(sympy.sin(X)) / (1 + X**2)),
    "tanh(x log(2x+3))": (lambda x: B.fn("tanh", B.mul(x, B.fn("log", B.linear([(x, 2.0)], 3.0)))),
                          sympy.tanh(X * sympy.log(2 * X + 3))),
    "sqrt(cos x + 2)": (lambda x: B.powc(_shift(B.fn("cos", x), 2.0), 0.5), sympy.sqrt(sympy.cos(X) + 2)),
    "atan2(sin x, x+2.5)": (lambda x: B.fn("atan2", B.fn("sin", x), _shift(x, 2.5)),
                            sympy.atan2(sympy.sin(X), X + 2.5)),
    "(x+2)^sin x": (lambda x: B.fn("pow", _shift(x, 2.0), B.fn("sin", x)), (X + 2) ** sympy.sin(X)),
    "erf(x^2) cosh x": (lambda x: B.mul(B.fn("erf", B.ipow(x, 2)), B.fn("cosh", x)),
                        sympy.erf(X**2) * sympy.cosh(X)),
    "atan(x^3) - log1p(x^2)": (lambda x: B.sub(B.fn("atan", B.ipow(x, 3)), B.fn("log1p", B.ipow(x, 2))),
                               sympy.atan(X**3) - sympy.log(1 + X**2)),
    "(x+3)^-1.5 + tan(x/2)": (lambda x: B.add(B.powc(_shift(x, 3.0), -1.5), B.fn("tan", B.scale(x, 0.5))),
                              (X + 3) ** sympy.Rational(-3, 2) + sympy.tan(X / 2)),
    "expm1(sinh x) / x^2": (lambda x: B.mul(B.fn("expm1", B.fn("sinh", x)), B.ipow(x, -2)),
                            (sympy.exp(sympy.sinh(X)) - 1) / X**2),
    "max(x, sin x) + |x| + x^5": (lambda x: B.add(B.fn("maximum", x, B.fn("sin", x)), B.fn("abs", x), B.ipow(x, 5)),
                                  sympy.Max(X, sympy.sin(X)) + sympy.Abs(X) + X**5),
    "where(x > 0, exp x, cos x)": (lambda x: B.where(B.compare("gt", x, B.fill(0.0, x)), B.fn("exp", x),
                                                     B.fn("cos", x)),
                                   sympy.Piecewise((sympy.exp(X), X > 0), (sympy.cos(X), True))),
}


def _sympy_derivatives(expr, order: int) -> list[np.ndarray]:
    out, e = [], expr
    for _ in range(order + 1):
        out.append(np.array([float(e.subs(X, p).evalf(30)) for p in POINTS]))
        e = sympy.diff(e, X)
    return out


def _close(actual, expected, what):
    scale = 1.0 + np.abs(expected)
    err = np.max(np.abs(actual - expected) / scale)
    assert err < 1e-10, f"{what}: relative error {err:.2e}"


@pytest.mark.parametrize("name", list(CASES))
def test_taylor_matches_sympy_diff(name):
    build, expr = CASES[name]
    x = B.input_node("x", POINTS.shape, "float64")
    derivs = taylor_derivatives(build(x), x, ORDER)
    values = interpret(derivs, {x: POINTS})
    for k, (got, ref) in enumerate(zip(values, _sympy_derivatives(expr, ORDER))):
        _close(got, ref, f"{name}, order {k}")


def test_coefficients_are_derivatives_over_factorials():
    x = B.input_node("x", (), "float64")
    y = B.fn("exp", B.scale(x, 2.0))  # y_k = 2^k e^{2x} / k!
    coeffs = taylor_coefficients(y, x, 6)
    values = interpret(coeffs, {x: np.array(0.3)})
    for k, v in enumerate(values):
        np.testing.assert_allclose(v, 2.0**k * math.exp(0.6) / math.factorial(k), rtol=1e-14)


def test_structural_zeros_and_independence():
    x, w = B.input_node("x", (), "float64"), B.input_node("w", (), "float64")
    cubic = B.mul(B.ipow(x, 3), w)
    coeffs = taylor_coefficients(cubic, x, 6)
    assert coeffs[0] is cubic
    assert all(c is None for c in coeffs[4:])  # a cubic has no 4th coefficient
    assert taylor_coefficients(B.fn("sin", w), x, 3)[1:] == [None, None, None]
    assert taylor_derivatives(B.fn("sin", w), x, 2)[2].const_scalar() == 0.0


def test_finite_where_the_nested_derivative_is():
    # x^2.5 at 0: derivatives 1 and 2 are 0 and finite; a power recurrence
    # that divides by the base would give NaN there.
    x = B.input_node("x", (3,), "float64")
    at = np.array([0.0, 1.0, 4.0])
    derivs = taylor_derivatives(B.powc(x, 2.5), x, 3)
    got = interpret(derivs, {x: at})
    np.testing.assert_allclose(got[1], 2.5 * at**1.5)
    np.testing.assert_allclose(got[2], 3.75 * at**0.5)
    assert np.isinf(got[3][0]) and np.isfinite(got[3][1:]).all()


@pytest.mark.parametrize("name", ["exp(sin x)/(1+x^2)", "tanh(x log(2x+3))", "erf(x^2) cosh x"])
def test_taylor_agrees_with_nested(name):
    build, _ = CASES[name]
    x = B.input_node("x", POINTS.shape, "float64")
    y = build(x)
    taylor = taylor_derivatives(y, x, 6)[6]
    nested = y
    for _ in range(6):
        (nested,) = jvp([nested], [x], [B.fill(1.0, x)])
    a, b = interpret([taylor, nested], {x: POINTS})
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.max(np.abs(b)))
    if name.startswith("exp(sin"):  # recurrences all the way: smaller than nested
        assert len(toposort([taylor])) < len(toposort([nested]))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_compiled_equals_interpreted(dtype):
    x = B.input_node("x", POINTS.shape, dtype)
    outputs = []
    for name in ("exp(sin x)/(1+x^2)", "sqrt(cos x + 2)", "atan(x^3) - log1p(x^2)", "expm1(sinh x) / x^2"):
        outputs += taylor_derivatives(CASES[name][0](x), x, 5)[1:]
    entry = compile_graph([x], outputs).entry()
    values = POINTS.astype(dtype)
    got = entry(values)
    expected = interpret(outputs, {x: values})
    rtol = 1e-12 if dtype == "float64" else 2e-5
    for k, (g, e) in enumerate(zip(got, expected)):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol * max(1.0, float(np.max(np.abs(e)))),
                                   err_msg=f"output {k}")


def test_order_zero_and_bad_order():
    x = B.input_node("x", (), "float64")
    y = B.fn("sin", x)
    assert taylor_derivatives(y, x, 0) == [y]
    with pytest.raises(ValueError, match="order"):
        taylor_coefficients(y, x, -1)


def test_fallbacks_agree_with_the_recurrences():
    # nested differentiation of the subgraph, and composition with the
    # operation's own derivatives, give what the recurrences give
    from symdl.autodiff import taylor as T
    x = B.input_node("x", POINTS.shape, "float64")
    for y in (B.fn("atan2", B.fn("sin", x), _shift(x, 2.5)), B.fn("exp", B.fn("cos", x))):
        rule = T.taylor_coefficients(y, x, 5)
        nested = T._nested(y, 5, x)
        values = interpret(rule[1:] + nested[1:], {x: POINTS})
        for a, b in zip(values[:5], values[5:]):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)
    y = B.fn("exp", B.fn("cos", x))
    composed = T._compose(y, [T.taylor_coefficients(B.fn("cos", x), x, 5)], 5, x)
    values = interpret(T.taylor_coefficients(y, x, 5)[1:] + composed[1:], {x: POINTS})
    for a, b in zip(values[:5], values[5:]):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype, points", [
    ("float64", [-1e4, -800.0, -3.0, -0.5, 0.0, 0.5, 3.0, 800.0, 1e4]),
    ("float32", [-100.0, -3.0, 0.0, 3.0, 100.0]),
])
def test_every_unary_function_is_finite_where_nested_is(dtype, points):
    # Taylor mode must be as sound numerically as nested differentiation
    # (which uses each function's declared partials), at extreme inputs too.
    from symdl.ir.ops import functions as E
    x = B.input_node("x", (len(points),), dtype)
    at = np.array(points, dtype=dtype)
    tol = 1e-9 if dtype == "float64" else 1e-3
    for name, fn in E.FUNCTIONS.items():
        if fn.arity != 1 or not fn.differentiable or name.startswith(("ew_", "sympy_")):
            continue  # the built-ins (other tests define user functions with naive formulas)
        y = B.fn(name, x)
        nested, node = [], y
        for _ in range(4):
            (node,) = jvp([node], [x], [B.fill(1.0, x)])
            node = B.fill(0.0, x) if node is None else node
            nested.append(node)
        got = interpret(taylor_derivatives(y, x, 4)[1:], {x: at})
        want = interpret(nested, {x: at})
        for k, (a, b) in enumerate(zip(got, want), start=1):
            finite = np.isfinite(b)
            assert np.isfinite(a[finite]).all(), f"{name}, order {k}: not finite at {at[finite & ~np.isfinite(a)]}"
            np.testing.assert_allclose(a[finite], b[finite], rtol=tol, atol=tol, err_msg=f"{name}, order {k}")


def test_user_functions_compose_and_fall_back():
    # a user function of one varying argument composes with its own SymPy
    # derivatives; of two varying arguments it falls back to nested
    # differentiation of its subgraph
    softplus = symdl.elementwise(lambda a: sympy.log(1 + sympy.exp(a)), name="taylor_test_softplus")
    mix = symdl.elementwise(lambda a, b: a * sympy.exp(b) + sympy.sin(a * b), name="taylor_test_mix")
    x = B.input_node("x", POINTS.shape, "float64")
    y = B.add(B.fn(softplus.op, B.fn("sin", x)), B.fn(mix.op, B.fn("cos", x), B.ipow(x, 2)))
    expr = sympy.log(1 + sympy.exp(sympy.sin(X))) + sympy.cos(X) * sympy.exp(X**2) + sympy.sin(sympy.cos(X) * X**2)
    values = interpret(taylor_derivatives(y, x, 6), {x: POINTS})
    for k, (got, ref) in enumerate(zip(values, _sympy_derivatives(expr, 6))):
        _close(got, ref, f"order {k}")
