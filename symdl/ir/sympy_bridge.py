"""Conversion between SymPy expressions and graph nodes.

``from_sympy`` turns derivative expressions (from ``sympy.diff`` of the
elementwise definitions) into canonical nodes; ``to_sympy`` shows a graph as
mathematics for ``Graph.to_sympy()`` / ``Graph.latex()``.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from collections.abc import Callable

import sympy

from . import build as B
from .ops import functions as E
from .node import ArrayValue, Node

__all__ = ["from_sympy", "compile_sympy", "to_sympy", "number"]

_RELATIONAL = {sympy.StrictGreaterThan: "gt", sympy.GreaterThan: "ge", sympy.StrictLessThan: "lt",
               sympy.LessThan: "le", sympy.Equality: "eq", sympy.Unequality: "ne"}
_MINMAX = {sympy.Max: "maximum", sympy.Min: "minimum"}


def from_sympy(expr: sympy.Expr, env: dict[sympy.Symbol, Node], dtype: str) -> Node:
    """Canonical nodes computing ``expr`` with symbols bound by ``env``."""
    return _walk(expr, env, dtype, B)


def _walk(expr, env: dict, dtype: str, b):
    """``expr`` through the builders ``b`` (``symdl.ir.build`` or a
    :class:`_Recorder`), symbols bound by ``env``."""
    memo: dict[sympy.Basic, object] = {}

    def scalar(value):
        return b.const(float(value), (), dtype)

    def conv(e: sympy.Basic):
        if e in memo:
            return memo[e]
        out = _convert(e, conv, scalar, env, b)
        memo[e] = out
        return out

    return conv(sympy.sympify(expr))


def _convert(e, conv: Callable, scalar: Callable, env, b):
    # Every builder call is decided by the expression alone (never by the
    # nodes the builders return), which lets compile_sympy record them once.
    if isinstance(e, sympy.Symbol):
        return env[e]
    if e.is_Number or isinstance(e, sympy.NumberSymbol):
        return scalar(e.evalf(20))
    if isinstance(e, sympy.Add):
        constant, rest = e.as_coeff_Add()
        terms = []
        for arg in sympy.Add.make_args(rest):
            c, t = arg.as_coeff_Mul()
            terms.append((conv(t), float(c)))
        return b.linear(terms, float(constant))
    if isinstance(e, sympy.Mul):
        c, rest = e.as_coeff_Mul()
        factors, exps = [], []
        for f in sympy.Mul.make_args(rest):
            base, ex = f.as_base_exp()
            if ex.is_Integer:
                factors.append(conv(base))
                exps.append(int(ex))
            else:
                factors.append(conv(f))
                exps.append(1)
        return b.scale(b.emit("mul", factors, exps=tuple(exps)), float(c))
    if isinstance(e, sympy.Pow):
        base, ex = e.args
        if ex.is_Integer:
            return b.ipow(conv(base), int(ex))
        if ex.is_Number:
            return b.powc(conv(base), float(ex))
        return b.fn("pow", conv(base), conv(ex))
    if type(e) in _MINMAX:
        out = conv(e.args[0])
        for arg in e.args[1:]:
            out = b.fn(_MINMAX[type(e)], out, conv(arg))
        return out
    if type(e) in _RELATIONAL:
        return b.compare(_RELATIONAL[type(e)], conv(e.lhs), conv(e.rhs))
    if isinstance(e, sympy.Piecewise):
        *pieces, (last, cond) = e.args
        if cond != sympy.true:
            raise ValueError("Piecewise without an otherwise-branch cannot become a graph")
        out = conv(last)
        for value, cond in reversed(pieces):
            out = b.where(conv(cond), conv(value), out)
        return out
    if isinstance(e, sympy.DiracDelta):
        # the derivative of a step (Heaviside, Max, Min): zero wherever it
        # exists, as the derivatives of sign and floor (sympy has no number for it)
        return scalar(0)
    if isinstance(e, sympy.Function) or isinstance(e, sympy.Expr) and e.args:
        name = E.by_sympy_head(type(e))
        args = e.args
        if name is not None and E.FUNCTIONS[name].arity != len(args):
            name = None  # registered with another number of arguments (DiracDelta(x) and DiracDelta(x, 1))
        if name is None and any(a.is_Number for a in args) and not all(a.is_Number for a in args):
            name, args = _define_applied(e)
        elif name is None:
            name = _define_from_head(type(e), len(args))
        return b.fn(name, *(conv(a) for a in args))
    raise TypeError(f"cannot turn the SymPy expression {e} ({type(e).__name__}) into a graph")


# ---------------------------------------------------------------- SymPy -> a replayable builder program
# A derivative rule from SymPy (d tanh = 1 - tanh^2) is converted for every
# node it differentiates; walking the SymPy expression each time (hashing,
# evalf, as_coeff_Mul) cost more than the graph it builds.  compile_sympy
# walks it once with a recorder in place of the builders; the program then
# makes the same builder calls, in the same order, on any nodes: the very
# nodes from_sympy makes.

class _Slot:
    """A value of a program: an argument (by position) or a step's result."""

    __slots__ = ("k",)

    def __init__(self, k: int):
        self.k = k


class _Recorder:
    """Stands in for :mod:`symdl.ir.build` while an expression is walked:
    each builder call becomes a step (a function of the values so far, with
    the positions of its operands built in), its result a slot.  Every node
    operand _convert passes is a slot: a symbol's or an earlier step's."""

    def __init__(self, n_args: int):
        self.steps: list[Callable] = []
        self.n_args = n_args

    def _step(self, step: Callable) -> _Slot:
        self.steps.append(step)
        return _Slot(self.n_args + len(self.steps) - 1)

    def const(self, value, shape, dtype):
        return self._step(lambda v: B.const(value, shape, dtype))

    def linear(self, terms, constant):
        ks = [(t.k, c) for t, c in terms]
        return self._step(lambda v: B.linear([(v[k], c) for k, c in ks], constant))

    def scale(self, a, c):
        k = a.k
        return self._step(lambda v: B.scale(v[k], c))

    def emit(self, op, inputs, **attrs):
        ks = [i.k for i in inputs]
        return self._step(lambda v: B.emit(op, [v[k] for k in ks], **attrs))

    def ipow(self, a, n):
        k = a.k
        return self._step(lambda v: B.ipow(v[k], n))

    def powc(self, a, p):
        k = a.k
        return self._step(lambda v: B.powc(v[k], p))

    def fn(self, name, *args):
        ks = [a.k for a in args]
        return self._step(lambda v: B.fn(name, *[v[k] for k in ks]))

    def compare(self, op, a, b):
        ka, kb = a.k, b.k
        return self._step(lambda v: B.compare(op, v[ka], v[kb]))

    def where(self, c, a, b):
        kc, ka, kb = c.k, a.k, b.k
        return self._step(lambda v: B.where(v[kc], v[ka], v[kb]))


class SympyProgram:
    """``expr`` of ``symbols`` as builder calls: ``program(*nodes)`` is
    ``from_sympy(expr, dict(zip(symbols, nodes)), dtype)``."""

    __slots__ = ("steps", "out")

    def __init__(self, expr, symbols: tuple, dtype: str):
        recorder = _Recorder(len(symbols))
        self.out = _walk(expr, {s: _Slot(k) for k, s in enumerate(symbols)}, dtype, recorder).k
        self.steps = tuple(recorder.steps)

    def __call__(self, *nodes: Node) -> Node:
        values = list(nodes)
        for step in self.steps:
            values.append(step(values))
        return values[self.out]


def compile_sympy(expr: sympy.Expr, symbols: tuple, dtype: str) -> SympyProgram:
    """``expr`` as a program of builder calls on nodes bound to ``symbols``
    in order (see :class:`SympyProgram`)."""
    return SympyProgram(expr, tuple(symbols), dtype)


def _define_from_head(head: type, arity: int) -> str:
    """Register an elementwise op for a SymPy function that has none yet."""
    name = f"sympy_{head.__name__}"
    if name in E.FUNCTIONS and E.FUNCTIONS[name].arity != arity:
        name = f"{name}_{arity}"  # the head already names a definition with another arity
        if name in E.FUNCTIONS:
            return name
        params = E.symbols()[:arity] if arity <= 3 else sympy.symbols(f"x0:{arity}", real=True)
        E.define(name, head(*params), params)
        return name
    params = E.symbols()[:arity]
    E.define(name, head(*params), params, head=head)
    return name


def _define_applied(e: sympy.Function) -> tuple[str, tuple]:
    """An op for a SymPy function with some numeric arguments, such as
    ``polygamma(0, x)`` or ``besselj(1, x)``: the numbers are part of its
    definition, not operands, since SymPy cannot differentiate with respect
    to them (an unevaluated ``Derivative``).  Returns the op and its operands."""
    symbolic = tuple(a for a in e.args if not a.is_Number)
    params = E.symbols()[:len(symbolic)] if len(symbolic) <= 3 else \
        sympy.symbols(f"x0:{len(symbolic)}", real=True)
    it = iter(params)
    body = type(e)(*(a if a.is_Number else next(it) for a in e.args))
    digest = hashlib.blake2b(sympy.srepr(body).encode(), digest_size=6).hexdigest()
    name = f"sympy_{type(e).__name__}_{digest}"
    if name not in E.FUNCTIONS:
        E.define(name, body, params)
    return name, symbolic


# ---------------------------------------------------------------- graph -> SymPy

def number(value: float) -> sympy.Expr:
    """A readable SymPy number: integers and simple fractions stay exact."""
    if value != value or value in (float("inf"), float("-inf")):
        return sympy.Float(value)
    frac = Fraction(value).limit_denominator(1000)
    if float(frac) == value:
        return sympy.Rational(frac.numerator, frac.denominator)
    return sympy.Float(value)


def to_sympy(outputs: list[Node], order: list[Node], names: dict[Node, str]) -> list[sympy.Expr]:
    """SymPy expressions of ``outputs`` (``order``: the graph's nodes, topological)."""
    memo: dict[Node, sympy.Expr] = {}
    for node in order:
        args = [memo[i] for i in node.inputs]
        memo[node] = _node_to_sympy(node, args, names)
    return [memo[o] for o in outputs]


def _node_to_sympy(node: Node, args: list, names: dict[Node, str]) -> sympy.Expr:
    op = node.op
    if op == "input":
        return sympy.Symbol(names.get(node, node.attr("name")), real=True)
    if op == "const":
        value = node.attr("value")
        if isinstance(value, ArrayValue):
            return sympy.Symbol(f"c_{{{node.digest.hex()[:6]}}}")
        return number(value) if node.dtype != "bool" else sympy.sympify(bool(value))
    if op == "add":
        return sympy.Add(number(node.attr("const")),
                         *(number(c) * a for c, a in zip(node.attr("coeffs"), args)))
    if op == "mul":
        return sympy.Mul(*(a ** e for a, e in zip(args, node.attr("exps"))))
    if op == "powc":
        return args[0] ** number(node.attr("p"))
    if op == "pow":
        return args[0] ** args[1]
    if op in E.FUNCTIONS:
        fn = E.FUNCTIONS[op]
        return fn.expr.xreplace(dict(zip(fn.params, args)))
    if op in ("maximum", "minimum"):
        return (sympy.Max if op == "maximum" else sympy.Min)(*args)
    inverse_rel = {v: k for k, v in _RELATIONAL.items()}
    if op in inverse_rel:
        return inverse_rel[op](*args)
    if op == "where":
        return sympy.Piecewise((args[1], args[0]), (args[2], True))
    if op in ("stop_gradient", "order_limit"):  # the value is its argument's; only derivatives differ
        return args[0]
    if op in ("convert", "broadcast_to", "reshape") and node.size == 1:
        return args[0]
    head = sympy.Function(op)
    return head(*args)
