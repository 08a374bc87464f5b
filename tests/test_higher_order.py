"""Derivatives of order 1..8 by nested ``dlgradient`` calls, against
``sympy.diff`` evaluated to 30 digits; the size of the derivative graphs
against SymPy's common-subexpression-eliminated derivative; mixed partials
and Hessians against SymPy."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import sympy

import symdl

X, Y = sympy.symbols("x y", real=True)

# name: (symdl function, the same function in SymPy, evaluation points)
COMPOSITIONS = {
    "exp(sin x)/(1+x^2)": (lambda x: symdl.exp(symdl.sin(x)) / (1 + x ** 2),
                           sympy.exp(sympy.sin(X)) / (1 + X ** 2), (-0.7, 0.3, 1.2)),
    "tanh(x)*log1p(x^2)": (lambda x: symdl.tanh(x) * symdl.log1p(x ** 2),
                           sympy.tanh(X) * sympy.log(1 + X ** 2), (-0.7, 0.3, 1.2)),
    "atan(x)^3": (lambda x: symdl.arctan(x) ** 3, sympy.atan(X) ** 3, (-0.7, 0.3, 1.2)),
    "sqrt(1+x^2)*cos(x)": (lambda x: symdl.sqrt(1 + x ** 2) * symdl.cos(x),
                           sympy.sqrt(1 + X ** 2) * sympy.cos(X), (-0.7, 0.3, 1.2)),
    "x^2.5": (lambda x: x ** 2.5, X ** sympy.Rational(5, 2), (0.4, 1.1, 2.0)),
    "erf(x)*expm1(-x)": (lambda x: symdl.erf(x) * symdl.expm1(-x),
                         sympy.erf(X) * (sympy.exp(-X) - 1), (-0.7, 0.3, 1.2)),
    "asin(x/2)+x/(1+exp(-x))": (lambda x: symdl.arcsin(x / 2) + x / (1 + symdl.exp(-x)),
                                sympy.asin(X / 2) + X / (1 + sympy.exp(-X)), (-0.7, 0.3, 1.2)),
}
ORDERS = range(1, 9)


@cache
def sympy_derivative(name: str, k: int) -> sympy.Expr:
    expr = COMPOSITIONS[name][1]
    return expr if k == 0 else sympy.diff(sympy_derivative(name, k - 1), X)


def reference_values(name: str, k: int) -> np.ndarray:
    d = sympy_derivative(name, k)
    return np.array([float(d.evalf(30, subs={X: sympy.Float(p, 30)})) for p in COMPOSITIONS[name][2]])


def nested_scalar(g, k: int):
    """x -> d^k g / dx^k by k nested dlgradient calls (scalar x: forward mode)."""
    def f(x):
        y = g(x)
        for _ in range(k):
            y = symdl.dlgradient(y, x, enable_higher_derivatives=True)
        return y
    return f


def nested_elementwise(g, k: int):
    """Vector x -> elementwise d^k g / dx^k: each gradient of sum(...) (reverse mode)."""
    def f(x):
        y = g(x)
        for _ in range(k):
            y = symdl.dlgradient(symdl.sum(y), x, enable_higher_derivatives=True)
        return y
    return f


@pytest.mark.parametrize("k", ORDERS)
@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_kth_derivative_scalar_input(name, k):
    g, _, points = COMPOSITIONS[name]
    got = [float(symdl.dlfeval(nested_scalar(g, k), symdl.dlarray(p))) for p in points]
    np.testing.assert_allclose(got, reference_values(name, k), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("name", sorted(COMPOSITIONS))
def test_kth_derivative_vector_input(name, k):
    g, _, points = COMPOSITIONS[name]
    got = symdl.extractdata(symdl.dlfeval(nested_elementwise(g, k), symdl.dlarray(np.array(points))))
    np.testing.assert_allclose(got, reference_values(name, k), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_kth_derivative_float32(k):
    name = "exp(sin x)/(1+x^2)"
    g, _, points = COMPOSITIONS[name]
    out = symdl.dlfeval(nested_elementwise(g, k), symdl.dlarray(np.array(points, dtype=np.float32)))
    assert out.dtype == np.float32
    ref = reference_values(name, k)
    np.testing.assert_allclose(symdl.extractdata(out), ref, rtol=2e-4, atol=2e-4 * np.max(np.abs(ref)))


def cse_op_count(expr: sympy.Expr) -> int:
    """Operations of ``expr`` after SymPy's common-subexpression elimination."""
    replacements, reduced = sympy.cse(expr)
    return sum(sympy.count_ops(e) for _, e in replacements) + sum(sympy.count_ops(e) for e in reduced)


@pytest.mark.parametrize("k", ORDERS)
def test_derivative_graph_no_larger_than_sympy_cse(k):
    name = "exp(sin x)/(1+x^2)"
    g = COMPOSITIONS[name][0]
    graph = symdl.trace(nested_scalar(g, k), 0.5)
    # the traced graph computes the right thing...
    (value,) = graph(np.array(0.5))
    ref = float(sympy_derivative(name, k).evalf(30, subs={X: sympy.Rational(1, 2)}))
    np.testing.assert_allclose(float(value), ref, rtol=1e-9)
    # ...with no more nodes (inputs and constants included) than SymPy has operations
    assert len(graph) <= cse_op_count(sympy_derivative(name, k))


# ---------------------------------------------------------------- mixed partials

def F_XY_SYMDL(x, y):
    return symdl.exp(x * y) * symdl.sin(x + y ** 2) / (1 + x ** 2)


F_XY = sympy.exp(X * Y) * sympy.sin(X + Y ** 2) / (1 + X ** 2)
POINTS_XY = [(0.3, -0.6), (-0.8, 0.5), (1.1, 0.9)]


def _at(expr: sympy.Expr, p) -> float:
    return float(expr.evalf(30, subs={X: sympy.Float(p[0], 30), Y: sympy.Float(p[1], 30)}))


@pytest.mark.parametrize("point", POINTS_XY, ids=str)
def test_mixed_partials_two_scalars(point):
    def body(x, y):
        f = F_XY_SYMDL(x, y)
        fx = symdl.dlgradient(f, x, enable_higher_derivatives=True)
        fy = symdl.dlgradient(f, y, enable_higher_derivatives=True)
        fxy = symdl.dlgradient(fx, y, enable_higher_derivatives=True)
        fyx = symdl.dlgradient(fy, x, enable_higher_derivatives=True)
        fxyy = symdl.dlgradient(fxy, y, enable_higher_derivatives=True)
        fxxyy = symdl.dlgradient(fxyy, x)
        return fxy, fyx, fxyy, fxxyy
    got = [float(v) for v in symdl.dlfeval(body, symdl.dlarray(point[0]), symdl.dlarray(point[1]))]
    expect = [_at(sympy.diff(F_XY, X, Y), point), _at(sympy.diff(F_XY, Y, X), point),
              _at(sympy.diff(F_XY, X, Y, Y), point), _at(sympy.diff(F_XY, X, X, Y, Y), point)]
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("point", POINTS_XY, ids=str)
def test_mixed_partials_both_inputs_at_once(point):
    # dlgradient with respect to (x, y) together takes the reverse-mode path
    def body(x, y):
        f = F_XY_SYMDL(x, y)
        fx, fy = symdl.dlgradient(f, x, y, enable_higher_derivatives=True)
        fxx, fxy = symdl.dlgradient(fx, x, y, enable_higher_derivatives=True)
        fyx, fyy = symdl.dlgradient(fy, x, y, enable_higher_derivatives=True)
        return fx, fy, fxx, fxy, fyx, fyy, symdl.dlgradient(fxy, x, y)
    out = symdl.dlfeval(body, symdl.dlarray(point[0]), symdl.dlarray(point[1]))
    got = [float(v) for v in out[:6]] + [float(v) for v in out[6]]
    partials = [(X,), (Y,), (X, X), (X, Y), (Y, X), (Y, Y), (X, Y, X), (X, Y, Y)]
    expect = [_at(sympy.diff(F_XY, *p), point) for p in partials]
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- Hessians of vector inputs

X3 = sympy.symbols("x0:3", real=True)
A = np.array([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0], [-0.75, 0.3, 0.6], [0.2, 0.1, -0.4]])


REVERSALS = {"slice": lambda x: x[::-1], "take": lambda x: x[np.array([2, 1, 0])]}


def _f_vec_symdl(x, reverse=REVERSALS["slice"]):
    z = A @ x
    lse = symdl.log(symdl.sum(symdl.exp(z)))
    return lse + symdl.prod(x) * symdl.sin(x[0] - x[2]) + symdl.sum(reverse(x) * x ** 2)


def _f_vec_sympy():
    z = [sum(sympy.Float(A[i, j]) * X3[j] for j in range(3)) for i in range(4)]
    lse = sympy.log(sum(sympy.exp(zi) for zi in z))
    return lse + X3[0] * X3[1] * X3[2] * sympy.sin(X3[0] - X3[2]) + sum(X3[2 - i] * X3[i] ** 2 for i in range(3))


def _subs(p):
    return {s: sympy.Float(v, 30) for s, v in zip(X3, p)}


@pytest.mark.parametrize("reversal", sorted(REVERSALS))
@pytest.mark.parametrize("point", [(0.3, -0.6, 0.9), (-1.2, 0.4, 0.1)], ids=str)
def test_hessian_by_nested_dlgradient(point, reversal):
    def body(x):
        g = symdl.dlgradient(_f_vec_symdl(x, REVERSALS[reversal]), x, enable_higher_derivatives=True)
        rows = [symdl.dlgradient(g[i], x) for i in range(3)]
        return g, symdl.stack(rows)
    g, h = symdl.dlfeval(body, symdl.dlarray(np.array(point)))
    f = _f_vec_sympy()
    grad_ref = np.array([float(sympy.diff(f, s).evalf(30, subs=_subs(point))) for s in X3])
    hess_ref = np.array(sympy.hessian(f, X3).evalf(30, subs=_subs(point)), dtype=float)
    np.testing.assert_allclose(symdl.extractdata(g), grad_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(symdl.extractdata(h), hess_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ij", [(0, 0), (0, 2), (1, 2)], ids=str)
def test_third_derivative_tensor_slice(ij):
    i, j = ij
    point = (0.3, -0.6, 0.9)

    def body(x):
        g = symdl.dlgradient(_f_vec_symdl(x, REVERSALS["take"]), x, enable_higher_derivatives=True)
        h = symdl.dlgradient(g[i], x, enable_higher_derivatives=True)
        return symdl.dlgradient(h[j], x)
    got = symdl.extractdata(symdl.dlfeval(body, symdl.dlarray(np.array(point))))
    d2 = sympy.diff(_f_vec_sympy(), X3[i], X3[j])
    expect = [float(sympy.diff(d2, s).evalf(30, subs=_subs(point))) for s in X3]
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)


def test_hessian_of_matrix_input():
    # f(W) = sum(tanh(W @ v)): Hessian entries d^2 f / dW_ab dW_cd against SymPy
    v = np.array([0.5, -1.0, 2.0])
    w0 = np.array([[0.2, -0.1, 0.3], [-0.4, 0.25, 0.1]])
    ws = sympy.Matrix(2, 3, sympy.symbols("w0:6", real=True))
    fs = sum(sympy.tanh(sum(ws[a, b] * sympy.Float(v[b]) for b in range(3))) for a in range(2))
    subs = {ws[a, b]: sympy.Float(w0[a, b], 30) for a in range(2) for b in range(3)}

    def body(w):
        g = symdl.dlgradient(symdl.sum(symdl.tanh(w @ v)), w, enable_higher_derivatives=True)
        return symdl.stack([symdl.dlgradient(g[a, b], w) for a in range(2) for b in range(3)])
    got = symdl.extractdata(symdl.dlfeval(body, symdl.dlarray(w0))).reshape(6, 6)
    expect = np.array(sympy.hessian(fs, list(ws)).evalf(30, subs=subs), dtype=float)
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-12)
