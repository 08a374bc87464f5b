"""Batching a graph along a new leading axis (vmap at the graph level).

Given replacements with a leading batch axis for some nodes, every node that
depends on them is rebuilt with that axis in front, by the batching rule its
primitive carries (``symdl.ir.ops``).  Used to form Jacobians and Hessians
from one symbolic VJP/JVP with a batch of basis vectors, instead of one graph
per basis vector.
"""

from __future__ import annotations

from ..ir import build as B
from ..ir.node import Node
from ..ir.ops import primitive
from ..ir.rewrite import toposort

__all__ = ["batch_graph"]


def batch_graph(outputs: list[Node], replacements: dict[Node, Node], n: int) -> list[Node]:
    """Batched versions (leading axis of size ``n``) of ``outputs``."""
    new: dict[Node, Node] = dict(replacements)
    for node in toposort(outputs):
        if node in new:
            continue
        ins = [new.get(i) for i in node.inputs]
        if all(i is None for i in ins):
            continue
        rule = primitive(node.op).batch
        if rule is None:
            raise TypeError(f"batching: no rule for op {node.op!r}")
        new[node] = rule(node, ins, n)
    return [new[o] if o in new else B.broadcast_to(o, (n,) + o.shape) for o in outputs]
