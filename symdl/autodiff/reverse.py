"""Reverse and forward mode over a graph: iterative loops in a deterministic
order, driven by the rules each primitive carries (``symdl.ir.ops``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..ir import build as B
from ..ir.node import Node
from ..ir.ops import PRIMITIVES, primitive
from ..ir.rewrite import toposort


class NoDerivativeRule(TypeError):
    """An op in the path between inputs and outputs has no derivative rule."""


def _depends(order: list[Node], wrt: Sequence[Node]) -> set[Node]:
    """Nodes of ``order`` that depend on any of ``wrt``."""
    dep = set(wrt)
    for node in order:
        if node not in dep:
            for i in node.inputs:  # (a loop, not any(...): this visits every node of the graph)
                if i in dep:
                    dep.add(node)
                    break
    return dep


def vjp(outputs: Sequence[Node], cotangents: Sequence[Node], wrt: Sequence[Node]) -> list[Node | None]:
    """Cotangents of ``wrt`` given cotangents of ``outputs`` (``None``: independent).

    One pass over the reverse topological order; contributions to a node are
    collected in a list and summed once, as one canonical n-ary sum, when the
    node is reached.  Each edge's contribution is summed down to its input's
    shape (un-broadcasting).
    """
    order = toposort(outputs)
    relevant = _depends(order, wrt)
    wanted = set(wrt)
    pending: dict[Node, list[Node]] = {}
    for out, cot in zip(outputs, cotangents):
        if out in relevant:
            pending.setdefault(out, []).append(cot)
    done: dict[Node, Node] = {}
    marks: list[Node] = []   # order_limit marks the derivative passed through
    for node in reversed(order):
        contribs = pending.pop(node, None)
        if not contribs:
            continue
        g = contribs[0] if len(contribs) == 1 else B.add(*contribs)  # one canonical sum of them all
        if node in wanted:
            done[node] = g
        inputs = node.inputs
        for i in inputs:
            if i in relevant:
                break
        else:  # no input depends on wrt (or none at all): nothing to pass on
            continue
        prim = PRIMITIVES.get(node.op) or primitive(node.op)
        if not prim.differentiable:
            continue
        if node.op == "order_limit":
            marks.append(node)
        rule = prim.vjp
        if rule is None:
            raise NoDerivativeRule(f"the op {node.op!r} has no derivative rule")
        for inp, cot in zip(inputs, rule(node, g)):
            if cot is None or inp not in relevant:
                continue
            if cot.shape != inp.shape:
                cot = B.unbroadcast(cot, inp.shape)
            contribs = pending.get(inp)
            if contribs is None:
                pending[inp] = [cot]
            else:
                contribs.append(cot)
    return count_orders([done.get(x) for x in wrt], marks)


def jvp(outputs: Sequence[Node], wrt: Sequence[Node], tangents: Sequence[Node]) -> list[Node | None]:
    """Tangents of ``outputs`` given tangents of ``wrt`` (forward mode)."""
    order = toposort(outputs)
    relevant = _depends(order, wrt)
    tangent: dict[Node, Node | None] = dict(zip(wrt, tangents))
    marks: list[Node] = []
    for node in order:
        if node in tangent or node not in relevant:
            continue
        prim = primitive(node.op)
        if not prim.differentiable:
            tangent[node] = None
            continue
        rule = prim.jvp
        if rule is None:
            raise NoDerivativeRule(f"the op {node.op!r} has no derivative rule")
        t = rule(node, [tangent.get(i) for i in node.inputs])
        if node.op == "order_limit" and t is not None:
            marks.append(node)
        if t is not None and t.shape != node.shape:
            t = B.broadcast_to(t, node.shape)
        tangent[node] = t
    return count_orders([tangent.get(o) for o in outputs], marks)


def count_orders(results: list[Node | None], marks: list[Node]) -> list[Node | None]:
    """``results`` of a derivative that passed through the ``order_limit``
    nodes ``marks``, with those marks one level up in the results' graph
    (marks the derivative did not pass through keep theirs).  A mark that
    would go beyond its limit is a ValueError naming what it marks: that
    derivative would not be exact."""
    if not marks:
        return results
    for m in marks:
        if m.attr("level") + 1 > m.attr("limit"):
            raise ValueError(f"{m.attr('what')}: derivatives of order above {m.attr('limit')} through it are "
                             f"not available (exact up to order {m.attr('limit')}); this is derivative "
                             f"{m.attr('level') + 1}")
    marks = set(marks)

    def up(node, ins):
        if node not in marks:
            return None
        return B.emit("order_limit", ins, level=node.attr("level") + 1, limit=node.attr("limit"),
                      what=node.attr("what"))
    present = [r for r in results if r is not None]
    done = dict(zip(present, B.substitute(present, {}, replace=up)))
    return [None if r is None else done[r] for r in results]
