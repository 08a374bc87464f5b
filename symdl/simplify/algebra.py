"""Algebraic identities of functions (``log(exp x) -> x``, ``|-y| -> |y|``, ...).

Real-number algebra: ``log(exp x) -> x`` avoids the overflow of ``exp`` (1000,
not inf, at 1000), the others are exact for IEEE inputs.  A construction set
(:data:`symdl.ir.rewrite.CONSTRUCTION`), so traced values and compiled code
agree; not applied under ``ieee=True``."""

from __future__ import annotations

from ..ir import build as B
from ..ir.node import Node
from ..ir.rewrite import rule

# f(g(x)) -> x where the composition is the identity on all of g's range.
_INVERSE_PAIRS = {("log", "exp"), ("log1p", "expm1"), ("asinh", "sinh")}


@rule("algebra", "log", "log1p", "asinh")
def inverse_of_inverse(node: Node) -> Node | None:
    (x,) = node.inputs
    if (node.op, x.op) in _INVERSE_PAIRS:
        return x.inputs[0]
    return None


@rule("algebra", "abs")
def abs_of_abs_or_even(node: Node) -> Node | None:
    (x,) = node.inputs
    if x.op in ("abs", "exp", "cosh"):
        return x  # already non-negative (NaN stays NaN)
    if x.op == "add" and len(x.inputs) == 1 and x.attr("const") == 0.0 and x.attr("coeffs")[0] == -1.0:
        return B.fn("abs", x.inputs[0])  # |-y| = |y|
    return None


@rule("algebra", "cos", "cosh")
def even_function_of_negation(node: Node) -> Node | None:
    (x,) = node.inputs
    if x.op == "add" and len(x.inputs) == 1 and x.attr("const") == 0.0 and x.attr("coeffs")[0] == -1.0:
        return B.fn(node.op, x.inputs[0])
    return None


@rule("algebra", "sin", "tan", "sinh", "tanh", "asin", "atan", "asinh", "atanh", "erf")
def odd_function_of_negation(node: Node) -> Node | None:
    (x,) = node.inputs
    if x.op == "add" and len(x.inputs) == 1 and x.attr("const") == 0.0 and x.attr("coeffs")[0] == -1.0:
        return B.neg(B.fn(node.op, x.inputs[0]))
    return None
