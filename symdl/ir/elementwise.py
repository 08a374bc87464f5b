"""Elementwise functions, each defined once as a SymPy expression.

The SymPy definition is the single source of truth: derivatives of every order
are ``sympy.diff`` of it (converted back into graph nodes by
:mod:`symdl.ir.sympy_bridge`), LaTeX comes from it, and the numpy reference
implementation is either a precise numpy ufunc or SymPy's lambdify.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from collections.abc import Callable

import numpy as np
import sympy

from .ops import PRIMITIVES, elementwise

__all__ = ["ElementwiseFn", "FUNCTIONS", "define", "partial_expr", "SYMBOLS", "by_sympy_head"]

SYMBOLS = sympy.symbols("x y z", real=True)


@dataclass(frozen=True)
class ElementwiseFn:
    """An elementwise function: its SymPy definition over ``params``."""

    name: str
    params: tuple[sympy.Symbol, ...]
    expr: sympy.Expr
    differentiable: bool = True
    numpy_impl: Callable[..., np.ndarray] | None = field(default=None, compare=False)


FUNCTIONS: dict[str, ElementwiseFn] = {}
_BY_HEAD: dict[type, str] = {}


def define(name: str, expr: sympy.Expr, params: tuple[sympy.Symbol, ...] | None = None,
           numpy_impl: Callable[..., np.ndarray] | None = None, differentiable: bool = True,
           head: type | None = None) -> ElementwiseFn:
    """Register an elementwise primitive ``name`` defined by the SymPy ``expr``."""
    if params is None:
        params = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    if numpy_impl is None:
        numpy_impl = sympy.lambdify(params, expr, modules="numpy")
    fn = ElementwiseFn(name, params, expr, differentiable, numpy_impl)
    FUNCTIONS[name] = fn
    if head is not None:
        _BY_HEAD[head] = name
    elementwise(name, numpy_impl, arity=len(params), differentiable=differentiable)
    return fn


def by_sympy_head(head: type) -> str | None:
    """The op name of a registered function whose SymPy class is ``head``."""
    return _BY_HEAD.get(head)


@cache
def partial_expr(name: str, index: int) -> sympy.Expr:
    """d fn / d param[index] as a SymPy expression in the function's params."""
    fn = FUNCTIONS[name]
    return sympy.diff(fn.expr, fn.params[index])


def _erf(v):
    try:
        from scipy.special import erf
        return erf(v)
    except ImportError:  # scipy is optional: a vectorised math.erf is exact, only slower
        return np.vectorize(math.erf, otypes=[v.dtype])(v)


x, y, _ = SYMBOLS
_UNARY = {
    "exp": (sympy.exp, np.exp), "log": (sympy.log, np.log),
    "sin": (sympy.sin, np.sin), "cos": (sympy.cos, np.cos), "tan": (sympy.tan, np.tan),
    "asin": (sympy.asin, np.arcsin), "acos": (sympy.acos, np.arccos), "atan": (sympy.atan, np.arctan),
    "sinh": (sympy.sinh, np.sinh), "cosh": (sympy.cosh, np.cosh), "tanh": (sympy.tanh, np.tanh),
    "asinh": (sympy.asinh, np.arcsinh), "acosh": (sympy.acosh, np.arccosh),
    "atanh": (sympy.atanh, np.arctanh), "abs": (sympy.Abs, np.abs), "erf": (sympy.erf, _erf),
}
for _name, (_head, _impl) in _UNARY.items():
    define(_name, _head(x), (x,), _impl, head=_head)

# log1p and expm1 have no SymPy class of their own; defined by their value,
# computed by the accurate numpy routines.
define("log1p", sympy.log(1 + x), (x,), np.log1p)
define("expm1", sympy.exp(x) - 1, (x,), np.expm1)
define("atan2", sympy.atan2(y, x), (y, x), np.arctan2, head=sympy.atan2)
# Piecewise-constant functions: derivative zero wherever it exists.
define("sign", sympy.sign(x), (x,), np.sign, differentiable=False, head=sympy.sign)
define("floor", sympy.floor(x), (x,), np.floor, differentiable=False, head=sympy.floor)
define("ceil", sympy.ceiling(x), (x,), np.ceil, differentiable=False, head=sympy.ceiling)
define("round", sympy.Function("round")(x), (x,), np.round, differentiable=False)

assert all(name in PRIMITIVES for name in FUNCTIONS)
