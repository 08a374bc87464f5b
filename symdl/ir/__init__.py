"""The graph IR: interned nodes, the primitive catalogue, canonical builders,
the rewrite engine, the reference interpreter and the Graph container."""

from . import canonical as _canonical  # noqa: F401  (registers the construction rules)
from . import ops as _ops  # noqa: F401  (registers every primitive family)
from .node import ArrayValue, Node, make_node
from .ops import PRIMITIVES, primitive
from .rewrite import rewrite_graph, toposort
from .interpret import evaluate, interpret

__all__ = ["ArrayValue", "Node", "make_node", "PRIMITIVES", "primitive", "rewrite_graph",
           "toposort", "evaluate", "interpret"]
