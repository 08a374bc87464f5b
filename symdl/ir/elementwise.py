"""Elementwise functions, each defined once as a SymPy expression.

The SymPy definition is the single source of truth: derivatives of every order
are ``sympy.diff`` of it (converted back into graph nodes by
:mod:`symdl.ir.sympy_bridge`), LaTeX comes from it, and the numpy reference
implementation is either a precise numpy ufunc or SymPy's lambdify.

SymPy is imported the first time a definition is needed (a derivative, a
LaTeX view, a user-defined function), not when symdl is imported: plain
array code and cached compiled functions never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from .ops import PRIMITIVES, elementwise

__all__ = ["ElementwiseFn", "FUNCTIONS", "define", "define_builtin", "partial_expr", "symbols",
           "by_sympy_head"]


@cache
def symbols() -> tuple:
    """The SymPy symbols x, y, z (real) in which the definitions are written."""
    import sympy
    return sympy.symbols("x y z", real=True)


class ElementwiseFn:
    """An elementwise function: its SymPy definition ``expr`` over ``params``
    (made on first use), its numpy implementation and arity."""

    __slots__ = ("name", "arity", "differentiable", "numpy_impl", "_definition", "_params", "_expr")

    def __init__(self, name: str, arity: int, definition: Callable[[], tuple], numpy_impl,
                 differentiable: bool = True):
        self.name, self.arity, self.differentiable = name, arity, differentiable
        self.numpy_impl = numpy_impl
        self._definition = definition
        self._params = self._expr = None

    def _define(self) -> None:
        if self._expr is None:
            self._params, self._expr = self._definition()

    @property
    def params(self) -> tuple:
        self._define()
        return self._params

    @property
    def expr(self) -> Any:
        self._define()
        return self._expr


FUNCTIONS: dict[str, ElementwiseFn] = {}
_HEAD_NAMES: dict[str, str] = {}   # SymPy class name -> op, for the built-in functions
_BY_HEAD: dict[type, str] = {}     # SymPy class -> op, for functions defined with a SymPy class


def define(name: str, expr, params: tuple | None = None, numpy_impl: Callable[..., np.ndarray] | None = None,
           differentiable: bool = True, head: type | None = None) -> ElementwiseFn:
    """Register an elementwise primitive ``name`` defined by the SymPy ``expr``
    (user functions: SymPy is already imported by the caller)."""
    import sympy
    if params is None:
        params = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    if numpy_impl is None:
        numpy_impl = sympy.lambdify(params, expr, modules="numpy")
    fn = ElementwiseFn(name, len(params), lambda: (params, expr), numpy_impl, differentiable)
    fn._params, fn._expr = params, expr
    FUNCTIONS[name] = fn
    if head is not None:
        _BY_HEAD[head] = name
    elementwise(name, numpy_impl, arity=len(params), differentiable=differentiable)
    return fn


def define_builtin(name: str, arity: int, definition: Callable[[Any, tuple], Any], numpy_impl,
                   differentiable: bool = True, head: str | None = None) -> ElementwiseFn:
    """Register a built-in function whose SymPy definition
    ``definition(sympy, symbols)`` is built on first use."""
    def make() -> tuple:
        import sympy
        params = symbols()[:arity]
        return params, definition(sympy, params)
    fn = ElementwiseFn(name, arity, make, numpy_impl, differentiable)
    FUNCTIONS[name] = fn
    if head is not None:
        _HEAD_NAMES[head] = name
    elementwise(name, numpy_impl, arity=arity, differentiable=differentiable)
    return fn


def by_sympy_head(head: type) -> str | None:
    """The op name of a registered function whose SymPy class is ``head``."""
    found = _BY_HEAD.get(head)
    if found is None:
        found = _HEAD_NAMES.get(head.__name__)
        if found is not None:
            import sympy
            if getattr(sympy, head.__name__, None) is not head:  # a user class of the same name
                found = None
    return found


@cache
def partial_expr(name: str, index: int):
    """d fn / d param[index] as a SymPy expression in the function's params."""
    import sympy
    fn = FUNCTIONS[name]
    return sympy.diff(fn.expr, fn.params[index])


def _erf(v):
    try:
        from scipy.special import erf
        return erf(v)
    except ImportError:  # scipy is optional: a vectorised math.erf is exact, only slower
        return np.vectorize(math.erf, otypes=[v.dtype])(v)


# name: (SymPy class name, numpy implementation)
_UNARY = {
    "exp": ("exp", np.exp), "log": ("log", np.log), "sin": ("sin", np.sin), "cos": ("cos", np.cos),
    "tan": ("tan", np.tan), "asin": ("asin", np.arcsin), "acos": ("acos", np.arccos),
    "atan": ("atan", np.arctan), "sinh": ("sinh", np.sinh), "cosh": ("cosh", np.cosh),
    "tanh": ("tanh", np.tanh), "asinh": ("asinh", np.arcsinh), "acosh": ("acosh", np.arccosh),
    "atanh": ("atanh", np.arctanh), "abs": ("Abs", np.abs), "erf": ("erf", _erf),
}
for _name, (_head, _impl) in _UNARY.items():
    define_builtin(_name, 1, lambda sp, p, _head=_head: getattr(sp, _head)(p[0]), _impl, head=_head)

# log1p and expm1 have no SymPy class of their own; defined by their value,
# computed by the accurate numpy routines.
define_builtin("log1p", 1, lambda sp, p: sp.log(1 + p[0]), np.log1p)
define_builtin("expm1", 1, lambda sp, p: sp.exp(p[0]) - 1, np.expm1)
define_builtin("atan2", 2, lambda sp, p: sp.atan2(p[0], p[1]), np.arctan2, head="atan2")
# Piecewise-constant functions: derivative zero wherever it exists.
define_builtin("sign", 1, lambda sp, p: sp.sign(p[0]), np.sign, differentiable=False, head="sign")
define_builtin("floor", 1, lambda sp, p: sp.floor(p[0]), np.floor, differentiable=False, head="floor")
define_builtin("ceil", 1, lambda sp, p: sp.ceiling(p[0]), np.ceil, differentiable=False, head="ceiling")
define_builtin("round", 1, lambda sp, p: sp.Function("round")(p[0]), np.round, differentiable=False)

assert all(name in PRIMITIVES for name in FUNCTIONS)
