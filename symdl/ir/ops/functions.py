"""Elementwise mathematical functions, each defined once as a SymPy expression.

The SymPy definition is the single source of truth for the *value*: LaTeX
comes from it, derivatives default to ``sympy.diff`` of it (converted back
into graph nodes), and the numpy reference implementation is either a precise
numpy routine or SymPy's lambdify.  Where ``sympy.diff`` gives a formula that
overflows (``exp(x)/(exp(x)+1)`` for softplus), the definition declares its
partials in a stable form instead (``sigmoid(x)``); declared partials are used
at every order, since they are graph nodes whose own derivatives are again
the declared ones.

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

from .. import build as B
from ..node import Node
from .elementwise import elementwise_primitive
from .registry import PartialsRule

__all__ = ["ElementwiseFn", "FUNCTIONS", "define", "define_builtin", "partial_expr", "symbols",
           "by_sympy_head"]


@cache
def symbols() -> tuple:
    """The SymPy symbols x, y, z (real) in which the definitions are written."""
    import sympy
    return sympy.symbols("x y z", real=True)


class ElementwiseFn:
    """An elementwise function: its SymPy definition ``expr`` over ``params``
    (made on first use), its numpy implementation, arity and, optionally,
    declared partials."""

    __slots__ = ("name", "arity", "differentiable", "numpy_impl", "declared", "_definition", "_params", "_expr")

    def __init__(self, name: str, arity: int, definition: Callable[[], tuple], numpy_impl,
                 differentiable: bool = True, declared: PartialsRule | None = None):
        self.name, self.arity, self.differentiable = name, arity, differentiable
        self.numpy_impl = numpy_impl
        self.declared = declared
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


def _register(fn: ElementwiseFn, decomposition=None) -> ElementwiseFn:
    FUNCTIONS[fn.name] = fn
    partials = fn.declared or (lambda node: [_sympy_partial(node, i) for i in range(len(node.inputs))])
    elementwise_primitive(fn.name, fn.numpy_impl, arity=fn.arity, differentiable=fn.differentiable,
                          partials=partials if fn.differentiable else None, decomposition=decomposition)
    return fn


def define(name: str, expr, params: tuple | None = None, numpy_impl: Callable[..., np.ndarray] | None = None,
           differentiable: bool = True, head: type | None = None,
           partials: PartialsRule | None = None) -> ElementwiseFn:
    """Register an elementwise primitive ``name`` defined by the SymPy ``expr``
    (user functions: SymPy is already imported by the caller).  Compiled
    code computes it as its definition written with the functions that have
    native code (its declared decomposition)."""
    if params is None:
        params = tuple(sorted(expr.free_symbols, key=lambda s: s.name))
    if numpy_impl is None:
        numpy_impl = _lambdify_arrays(params, expr)
    fn = ElementwiseFn(name, len(params), lambda: (params, expr), numpy_impl, differentiable, partials)
    fn._params, fn._expr = params, expr
    if head is not None:
        _BY_HEAD[head] = name
    return _register(fn, decomposition=expand_definition)


def _lambdify_arrays(params: tuple, expr) -> Callable[..., np.ndarray]:
    """``expr`` as a function of numpy arrays.  lambdify's numpy printer writes
    the functions numpy lacks (loggamma, erf, gamma, ...) with ``math``, which
    takes scalars only: scipy.special is preferred where it is installed (it
    is optional), and anything still scalar-only is vectorised."""
    import sympy
    try:
        import scipy.special  # noqa: F401
        modules = ["scipy", "numpy"]
    except ImportError:
        modules = ["numpy"]
    impl = sympy.lambdify(params, expr, modules=modules)

    def run(*values):
        try:
            return impl(*values)
        except TypeError:  # a math.* function given an array
            arrays = np.broadcast_arrays(*values)
            otype = np.result_type(*arrays) if arrays else np.float64
            return np.vectorize(impl, otypes=[otype])(*arrays)
    return run


def define_builtin(name: str, arity: int, definition: Callable[[Any, tuple], Any], numpy_impl,
                   differentiable: bool = True, head: str | None = None,
                   partials: PartialsRule | None = None) -> ElementwiseFn:
    """Register a built-in function whose SymPy definition
    ``definition(sympy, symbols)`` is built on first use; ``partials(node)``,
    when given, are its derivatives as nodes (stable forms)."""
    def make() -> tuple:
        import sympy
        params = symbols()[:arity]
        return params, definition(sympy, params)
    if head is not None:
        _HEAD_NAMES[head] = name
    return _register(ElementwiseFn(name, arity, make, numpy_impl, differentiable, partials))


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


# ---------------------------------------------------------------- derivatives from SymPy

@cache
def _self_symbol():
    """The symbol that stands for the function itself in its derivative."""
    import sympy
    return sympy.Symbol("__self__", real=True)


@cache
def _partial_sympy(name: str, i: int):
    """The partial derivative, with the function itself written as the self
    symbol (d exp = exp, d tanh = 1 - tanh^2) so the derivative reuses the node."""
    fn = FUNCTIONS[name]
    return partial_expr(name, i).subs(fn.expr, _self_symbol())


@cache
def _partial_program(name: str, i: int, dtype: str):
    """The partial derivative as a program of builder calls on (the
    function's operands..., the function's node), or None when it is 0: the
    SymPy expression is walked once, not once per node differentiated."""
    from ..sympy_bridge import compile_sympy
    expr = _partial_sympy(name, i)
    if expr == 0:
        return None
    return compile_sympy(expr, (*FUNCTIONS[name].params, _self_symbol()), dtype)


def _sympy_partial(node: Node, i: int) -> Node | None:
    program = _partial_program(node.op, i, node.dtype)
    return None if program is None else program(*node.inputs, node)


# ---------------------------------------------------------------- compiled code of user functions

def expand_definition(node: Node, native: Callable[[str], bool]) -> Node:
    """``node`` (a function defined only by SymPy) as graph nodes of functions
    that ``native`` accepts: its definition, rewritten (sec -> 1/cos, ...)
    where it uses others; a TypeError names what cannot be compiled."""
    from ..sympy_bridge import from_sympy
    fn = FUNCTIONS[node.op]
    out = from_sympy(_native_form(fn.expr, node.op, native), dict(zip(fn.params, node.inputs)), node.dtype)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


def _native_form(expr, op: str, native: Callable[[str], bool]):
    import sympy

    def foreign(e):
        return [f for f in e.atoms(sympy.Function)
                if not (by_sympy_head(type(f)) and native(by_sympy_head(type(f))))
                and not isinstance(f, (sympy.Max, sympy.Min, sympy.Piecewise))]

    if not foreign(expr):
        return expr
    for target in (sympy.cos, sympy.sin, sympy.exp, sympy.log, sympy.tan, sympy.atan, sympy.erf, sympy.Piecewise):
        rewritten = expr.rewrite(target)
        if not foreign(rewritten):
            return rewritten
    names = sorted({type(f).__name__ for f in foreign(expr)})
    raise TypeError(f"cannot compile {op}: the SymPy function(s) {names} have no native code; "
                    "write them with exp, log, sin, cos, tan, ... or use the interpreter")


# ---------------------------------------------------------------- the built-in functions

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


def _sigmoid_np(x):
    # exp of a non-positive number only: no overflow for any input
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus_np(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_partials(node: Node) -> list:
    # sigmoid' = sigmoid(x) sigmoid(-x): bounded, again made of sigmoids (so
    # every order is), and without the cancellation of sigmoid (1 - sigmoid),
    # which loses all digits of the tail (x = 30: 1 - sigmoid is 1e-13 from 1)
    (x,) = node.inputs
    return [B.mul(node, B.fn("sigmoid", B.neg(x)))]


def _softplus_partials(node: Node) -> list:
    # sympy.diff gives exp(x)/(exp(x)+1): inf/inf = NaN beyond x = 709
    return [B.fn("sigmoid", node.inputs[0])]


define_builtin("sigmoid", 1, lambda sp, p: 1 / (1 + sp.exp(-p[0])), _sigmoid_np, partials=_sigmoid_partials)
define_builtin("softplus", 1, lambda sp, p: sp.log(1 + sp.exp(p[0])), _softplus_np, partials=_softplus_partials)

# Piecewise-constant functions: derivative zero wherever it exists.
define_builtin("sign", 1, lambda sp, p: sp.sign(p[0]), np.sign, differentiable=False, head="sign")
define_builtin("floor", 1, lambda sp, p: sp.floor(p[0]), np.floor, differentiable=False, head="floor")
define_builtin("ceil", 1, lambda sp, p: sp.ceiling(p[0]), np.ceil, differentiable=False, head="ceiling")
define_builtin("round", 1, lambda sp, p: sp.Function("round")(p[0]), np.round, differentiable=False)


# ---------------------------------------------------------------- numpy's other elementwise functions
# Each has a native routine (libm or a few instructions, codegen/lower/elementwise.py)
# and declared partials: written with existing nodes, so every order follows.

_LN2, _LN10 = math.log(2.0), math.log(10.0)


def _log_base_partials(scale: float):
    def partials(node: Node) -> list:  # d log_b(x) = 1 / (x ln b)
        return [B.scale(B.ipow(node.inputs[0], -1), scale)]
    return partials


def _exp2_partials(node: Node) -> list:  # d 2**x = ln 2 * 2**x
    return [B.scale(node, _LN2)]


def _cbrt_partials(node: Node) -> list:
    # d cbrt(x) = 1 / (3 cbrt(x)**2): +inf at 0, as numpy's/autograd's formula
    return [B.scale(B.ipow(node, -2), 1.0 / 3.0)]


def _hypot_partials(node: Node) -> list:  # d hypot / dx = x / hypot (NaN at the origin, as autograd)
    x, y = node.inputs
    return [B.div(x, node), B.div(y, node)]


def _logaddexp_partials(node: Node) -> list:
    # d/dx log(e^x + e^y) = sigmoid(x - y): bounded, and sigmoid's own
    # partials are stable, so every order is finite for finite inputs
    x, y = node.inputs
    return [B.fn("sigmoid", B.sub(x, y)), B.fn("sigmoid", B.sub(y, x))]


def _one(node: Node) -> Node:
    return B.fill(1.0, node, ())


def _mod_partials(node: Node) -> list:
    # x - floor(x / y) * y: d/dx = 1, d/dy = -floor(x / y) (away from the jumps)
    x, y = node.inputs
    return [_one(node), B.neg(B.fn("floor", B.div(x, y)))]


def _fmod_partials(node: Node) -> list:
    # x - trunc(x / y) * y (the sign of x, as C's fmod)
    x, y = node.inputs
    return [_one(node), B.neg(B.fn("trunc", B.div(x, y)))]


define_builtin("log2", 1, lambda sp, p: sp.log(p[0]) / sp.log(2), np.log2, partials=_log_base_partials(1 / _LN2))
define_builtin("log10", 1, lambda sp, p: sp.log(p[0]) / sp.log(10), np.log10,
               partials=_log_base_partials(1 / _LN10))
define_builtin("exp2", 1, lambda sp, p: 2 ** p[0], np.exp2, partials=_exp2_partials)
define_builtin("cbrt", 1, lambda sp, p: sp.sign(p[0]) * sp.Abs(p[0]) ** sp.Rational(1, 3), np.cbrt,
               partials=_cbrt_partials)
define_builtin("hypot", 2, lambda sp, p: sp.sqrt(p[0] ** 2 + p[1] ** 2), np.hypot, partials=_hypot_partials)
define_builtin("logaddexp", 2, lambda sp, p: sp.log(sp.exp(p[0]) + sp.exp(p[1])), np.logaddexp,
               partials=_logaddexp_partials)
define_builtin("mod", 2, lambda sp, p: sp.Mod(p[0], p[1]), np.remainder, partials=_mod_partials)
define_builtin("fmod", 2, lambda sp, p: p[0] - p[1] * sp.Function("trunc")(p[0] / p[1]), np.fmod,
               partials=_fmod_partials)
define_builtin("trunc", 1, lambda sp, p: sp.Function("trunc")(p[0]), np.trunc, differentiable=False)
define_builtin("floor_divide", 2, lambda sp, p: sp.floor(p[0] / p[1]), np.floor_divide, differentiable=False)
