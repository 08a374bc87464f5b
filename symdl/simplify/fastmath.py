"""Fast-math rules: identities of real algebra that are wrong for some IEEE
values (``0 * inf`` is NaN, ``0 / 0`` is NaN).  Off by default; enable with
``simplify(..., fast_math=True)``."""

from __future__ import annotations

from ..ir import build as B
from ..ir.node import Node, make_node
from ..ir.rewrite import rule


@rule("fastmath", "add")
def drop_zero_terms(node: Node) -> Node | None:
    """``0 * x + y -> y`` (wrong when x is infinite or NaN)."""
    coeffs = node.attr("coeffs")
    if 0.0 not in coeffs:
        return None
    kept = [(t, c) for t, c in zip(node.inputs, coeffs) if c != 0.0]
    if not kept:
        return B.fill(node.attr("const"), node)
    out = B.linear(kept, node.attr("const"))
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


@rule("fastmath", "mul")
def cancel_powers(node: Node) -> Node | None:
    """``x^a * x^-b -> x^(a-b)`` (wrong at x = 0 and for infinite x)."""
    totals: dict[Node, int] = {}
    for b, e in zip(node.inputs, node.attr("exps")):
        totals[b] = totals.get(b, 0) + e
    if len(totals) == len(node.inputs):
        return None
    kept = [(b, e) for b, e in totals.items() if e != 0]
    if not kept:
        return B.fill(1.0, node)
    out = make_node("mul", tuple(b for b, _ in kept), (("exps", tuple(e for _, e in kept)),),
                    B.common_shape("mul", [b for b, _ in kept]), node.dtype)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


@rule("fastmath", "exp")
def exp_of_log(node: Node) -> Node | None:
    """``exp(log x) -> x`` (wrong for x < 0, where the left side is NaN)."""
    (x,) = node.inputs
    return x.inputs[0] if x.op == "log" else None
