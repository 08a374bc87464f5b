"""Before planning: ops without native code are replaced by their declared
decomposition (user functions defined by SymPy), and ops that are the
identity at run time (``stop_gradient``, ``order_limit``) by their operand.  An op with neither is a
TypeError naming it, never a silent expansion."""

from __future__ import annotations

from symdl.ir import build as B
from symdl.ir.node import Node
from symdl.ir.ops import primitive
from symdl.ir.rewrite import toposort

from .lower.table import has_lowering

__all__ = ["decompose"]

#: Ops that only mean something to differentiation: in compiled code they are
#: their operand, so they are dropped (a gradient returned through
#: ``stop_gradient`` is then written straight into its output buffer).
_IDENTITY = frozenset({"stop_gradient", "order_limit"})


def decompose(outputs: list[Node]) -> list[Node]:
    """``outputs`` with every op the code generator cannot lower decomposed."""
    order = toposort(outputs)
    if all(has_lowering(n.op) and n.op not in _IDENTITY for n in order):
        return list(outputs)
    new: dict[Node, Node] = {}
    for node in order:
        ins = tuple(new.get(i, i) for i in node.inputs)
        if node.op in _IDENTITY:
            new[node] = ins[0]
            continue
        cur = node if ins == node.inputs else B.emit(node.op, ins, **dict(node.attrs))
        if not has_lowering(cur.op):
            rule = primitive(cur.op).decomposition
            if rule is None:
                raise TypeError(f"cannot compile the op {cur.op!r}: it has no native lowering "
                                "and no declared decomposition")
            cur = rule(cur, has_lowering)
        new[node] = cur
    return [new[o] for o in outputs]
