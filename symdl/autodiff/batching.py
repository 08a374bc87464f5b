"""Batching a graph along a new leading axis (vmap at the graph level).

Given replacements with a leading batch axis for some nodes, every node that
depends on them is rebuilt with that axis in front, by one small rule per op
kind.  Used to form Jacobians and Hessians from one symbolic VJP/JVP with a
batch of basis vectors, instead of one graph per basis vector.
"""

from __future__ import annotations

from ..ir import build as B
from ..ir.node import Node
from ..ir.ops import primitive
from ..ir.rewrite import toposort

__all__ = ["batch_graph"]


def _lift(x: Node, n: int, rank: int) -> Node:
    """A batched operand (n, *s) as (n, 1.., *s) of total rank ``rank + 1``."""
    pad = rank - (x.ndim - 1)
    return x if pad <= 0 else B.reshape(x, (n,) + (1,) * pad + x.shape[1:])


def _full(x: Node, batched: Node | None, n: int) -> Node:
    """The batched version of an operand (broadcast when it was not batched)."""
    return batched if batched is not None else B.broadcast_to(x, (n,) + x.shape)


def batch_graph(outputs: list[Node], replacements: dict[Node, Node], n: int) -> list[Node]:
    """Batched versions (leading axis of size ``n``) of ``outputs``."""
    new: dict[Node, Node] = dict(replacements)
    for node in toposort(outputs):
        if node in new:
            continue
        ins = [new.get(i) for i in node.inputs]
        if all(i is None for i in ins):
            continue
        new[node] = _batch(node, ins, n)
    return [new[o] if o in new else B.broadcast_to(o, (n,) + o.shape) for o in outputs]


def _batch(node: Node, ins: list, n: int) -> Node:
    op, attrs = node.op, dict(node.attrs)
    kind = primitive(op).kind
    if kind == "elementwise":
        operands = [_lift(b, n, node.ndim) if b is not None else x for x, b in zip(node.inputs, ins)]
        out = B.emit(op, operands, **attrs)
        return out if out.shape == (n,) + node.shape else B.broadcast_to(out, (n,) + node.shape)
    bx = ins[0]
    if op == "broadcast_to":
        return B.broadcast_to(_lift(bx, n, node.ndim), (n,) + node.shape)
    if op == "reshape":
        return B.reshape(bx, (n,) + node.shape)
    if op == "transpose":
        return B.transpose(bx, (0,) + tuple(p + 1 for p in attrs["perm"]))
    if op in ("slice", "unslice"):
        extra = dict(starts=(0,) + attrs["starts"], stops=(n,) + attrs["stops"], steps=(1,) + attrs["steps"])
        if op == "unslice":
            extra["shape"] = (n,) + attrs["shape"]
        return B.emit(op, (bx,), **extra)
    if op == "concatenate":
        parts = [_full(x_, b, n) for x_, b in zip(node.inputs, ins)]
        return B.concatenate(parts, attrs["axis"] + 1)
    if op in ("reduce_sum", "reduce_max"):
        return B.emit(op, (bx,), axes=tuple(a + 1 for a in attrs["axes"]))
    if op == "take":
        if ins[1] is not None:
            raise TypeError("batching: indices of take cannot be batched")
        return B.take(bx, node.inputs[1], attrs["axis"] + 1)
    if op == "take_add":
        if ins[1] is not None:
            raise TypeError("batching: indices of take_add cannot be batched")
        return B.take_add(bx, node.inputs[1], attrs["axis"] + 1, attrs["size"])
    if op == "dot_general":
        return _batch_dot(node, ins, n)
    raise TypeError(f"batching: no rule for op {op!r}")


def _batch_dot(node: Node, ins: list, n: int) -> Node:
    a, b = node.inputs
    ba_, bb_ = ins
    (ca, cb), (bta, btb) = node.attr("contract"), node.attr("batch")
    shift = lambda axes: tuple(x + 1 for x in axes)  # noqa: E731
    if ba_ is not None and bb_ is not None:
        return B.dot_general(ba_, bb_, (shift(ca), shift(cb)), ((0,) + shift(bta), (0,) + shift(btb)))
    if ba_ is not None:
        out = B.dot_general(ba_, b, (shift(ca), cb), (shift(bta), btb))
        pos = len(bta)  # the new axis is a's first free axis, right after the batch axes
    else:
        out = B.dot_general(a, bb_, (ca, shift(cb)), (bta, shift(btb)))
        free_a = a.ndim - len(ca) - len(bta)
        pos = len(bta) + free_a
    if pos == 0:
        return out
    perm = [pos] + [i for i in range(out.ndim) if i != pos]
    return B.transpose(out, perm)
