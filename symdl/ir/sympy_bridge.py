"""Conversion between SymPy expressions and graph nodes.

``from_sympy`` turns derivative expressions (from ``sympy.diff`` of the
elementwise definitions) into canonical nodes; ``to_sympy`` shows a graph as
mathematics for ``Graph.to_sympy()`` / ``Graph.latex()``.
"""

from __future__ import annotations

from fractions import Fraction
from collections.abc import Callable

import sympy

from . import build as B
from .ops import functions as E
from .node import ArrayValue, Node

__all__ = ["from_sympy", "to_sympy", "number"]

_RELATIONAL = {sympy.StrictGreaterThan: "gt", sympy.GreaterThan: "ge", sympy.StrictLessThan: "lt",
               sympy.LessThan: "le", sympy.Equality: "eq", sympy.Unequality: "ne"}
_MINMAX = {sympy.Max: "maximum", sympy.Min: "minimum"}


def from_sympy(expr: sympy.Expr, env: dict[sympy.Symbol, Node], dtype: str) -> Node:
    """Canonical nodes computing ``expr`` with symbols bound by ``env``."""
    memo: dict[sympy.Basic, Node] = {}

    def scalar(value) -> Node:
        return B.const(float(value), (), dtype)

    def conv(e: sympy.Basic) -> Node:
        if e in memo:
            return memo[e]
        out = _convert(e, conv, scalar, env)
        memo[e] = out
        return out

    return conv(sympy.sympify(expr))


def _convert(e, conv: Callable, scalar: Callable, env) -> Node:
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
        return B.linear(terms, float(constant))
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
        return B.scale(B.emit("mul", factors, exps=tuple(exps)), float(c))
    if isinstance(e, sympy.Pow):
        base, ex = e.args
        if ex.is_Integer:
            return B.ipow(conv(base), int(ex))
        if ex.is_Number:
            return B.powc(conv(base), float(ex))
        return B.fn("pow", conv(base), conv(ex))
    if type(e) in _MINMAX:
        out = conv(e.args[0])
        for arg in e.args[1:]:
            out = B.fn(_MINMAX[type(e)], out, conv(arg))
        return out
    if type(e) in _RELATIONAL:
        return B.compare(_RELATIONAL[type(e)], conv(e.lhs), conv(e.rhs))
    if isinstance(e, sympy.Piecewise):
        *pieces, (last, cond) = e.args
        if cond != sympy.true:
            raise ValueError("Piecewise without an otherwise-branch cannot become a graph")
        out = conv(last)
        for value, cond in reversed(pieces):
            out = B.where(conv(cond), conv(value), out)
        return out
    if isinstance(e, sympy.Function) or isinstance(e, sympy.Expr) and e.args:
        name = E.by_sympy_head(type(e))
        if name is None:
            name = _define_from_head(type(e), len(e.args))
        return B.fn(name, *(conv(a) for a in e.args))
    raise TypeError(f"cannot turn the SymPy expression {e} ({type(e).__name__}) into a graph")


def _define_from_head(head: type, arity: int) -> str:
    """Register an elementwise op for a SymPy function that has none yet."""
    name = f"sympy_{head.__name__}"
    params = E.symbols()[:arity]
    E.define(name, head(*params), params, head=head)
    return name


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
    if op == "stop_gradient":  # the value is its argument's; only derivatives differ
        return args[0]
    if op in ("convert", "broadcast_to", "reshape") and node.size == 1:
        return args[0]
    head = sympy.Function(op)
    return head(*args)
