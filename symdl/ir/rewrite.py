"""The one rewrite engine: tables of local rules applied to a fixed point.

A rule is a function ``rule(node) -> Node | None`` registered under a rule-set
name for the ops it matches (``'*'`` matches every op).  It returns an
equivalent node (built with the builders, which are themselves canonicalising)
or ``None`` when it does not apply.  The same tables serve two callers:

* construction: every builder runs the cheap sets in :data:`CONSTRUCTION` on
  the node it makes, so graphs are canonical as they are traced and
  derivatives collect like terms as they are built;
* passes: :func:`rewrite_graph` runs named sets over a whole graph to a fixed
  point (see :mod:`symdl.simplify`).

Under :func:`ieee_semantics` (``ieee=True`` of ``compile``, ``dlaccelerate``
and the transforms) only the sets in :data:`IEEE_EXACT` run, and the
constructors of sums and products keep their operands as written: nodes are
then evaluated step by step, as numpy evaluates the program (no like terms
collected, no re-association, no ``log(exp(x)) -> x``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

from .node import Node

__all__ = ["rule", "RULE_SETS", "CONSTRUCTION", "AFTER_CONSTRUCTOR", "CONSTRUCTORS", "constructor",
           "rewrite_node", "rewrite_graph", "toposort", "ieee_semantics", "ieee_active", "IEEE_EXACT"]

Rule = Callable[[Node], "Node | None"]
RULE_SETS: dict[str, dict[str, list[Rule]]] = defaultdict(lambda: defaultdict(list))

#: Rule sets applied to every node as it is built.  ``algebra`` is among
#: them so that a traced value (the interpreter's) and compiled code compute
#: the same simplified graph: nothing is simplified only on the way to LLVM.
CONSTRUCTION: tuple[str, ...] = ("canonical", "identity", "algebra", "fold")

#: The rule sets that never change an IEEE result (structural identities
#: and constant folding by the interpreter): the only ones under
#: :func:`ieee_semantics`.
IEEE_EXACT: frozenset[str] = frozenset({"identity", "fold"})

_IEEE: contextvars.ContextVar[bool] = contextvars.ContextVar("symdl_ieee", default=False)


def ieee_active() -> bool:
    """Whether nodes are being built with step-by-step IEEE semantics."""
    return _IEEE.get()


@contextlib.contextmanager
def ieee_semantics(on: bool = True) -> Iterator[None]:
    """Build (trace, differentiate, compile) with step-by-step IEEE semantics
    inside the block when ``on``; with real-number algebra when not."""
    token = _IEEE.set(bool(on))
    try:
        yield
    finally:
        _IEEE.reset(token)

#: A constructor builds the canonical form of ``op(inputs; attrs)`` from the
#: fields, before any node exists, so the raw node (which the ``canonical``
#: rule would only take apart again) is never interned.  It returns the
#: canonical node, or ``None`` when the fields are canonical as given.  The
#: ``canonical`` rule of the same op must agree with it (it handles nodes made
#: raw, by ``rebuild`` and deserialisation).
Constructor = Callable[[tuple, dict, tuple, str], "Node | None"]
CONSTRUCTORS: dict[str, Constructor] = {}

#: The construction sets that still apply to a constructor's result.
AFTER_CONSTRUCTOR: tuple[str, ...] = tuple(s for s in CONSTRUCTION if s != "canonical")

_MAX_STEPS = 64


_PLANS: dict[tuple, tuple] = {}  # (sets, op, ieee) -> rules to try, in order
_CONSTRUCTION_PLANS: dict[str, tuple] = {}  # op -> the plan of CONSTRUCTION (not IEEE)
_AFTER_CONSTRUCTOR_PLANS: dict[str, tuple] = {}  # op -> the plan of AFTER_CONSTRUCTOR (not IEEE)


def rule(set_name: str, *ops: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` as a rule of ``set_name`` for ``ops``."""
    def register(fn: Rule) -> Rule:
        for op in ops:
            RULE_SETS[set_name][op].append(fn)
        _PLANS.clear()
        _CONSTRUCTION_PLANS.clear()
        _AFTER_CONSTRUCTOR_PLANS.clear()
        return fn
    return register


def constructor(op: str) -> Callable[[Constructor], Constructor]:
    """Register ``fn`` as the constructor of ``op`` (see :data:`CONSTRUCTORS`)."""
    def register(fn: Constructor) -> Constructor:
        CONSTRUCTORS[op] = fn
        return fn
    return register


def _make_plan(sets: tuple, op: str, ieee: bool) -> tuple:
    return tuple(fn for name in sets if not ieee or name in IEEE_EXACT
                 for fn in (*RULE_SETS[name].get(op, ()), *RULE_SETS[name].get("*", ())))


def _rules_for(sets: tuple, op: str) -> tuple:
    ieee = _IEEE.get()
    if not ieee and (sets is CONSTRUCTION or sets is AFTER_CONSTRUCTOR):
        # the builders' sets (every node built): one lookup by op, no key to hash
        table = _CONSTRUCTION_PLANS if sets is CONSTRUCTION else _AFTER_CONSTRUCTOR_PLANS
        plan = table.get(op)
        if plan is None:
            plan = table[op] = _make_plan(sets, op, ieee)
        return plan
    key = (sets, op, ieee)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _make_plan(sets, op, ieee)
    return plan


def rewrite_node(node: Node, sets: Sequence[str]) -> Node:
    """Apply the rules of ``sets`` to ``node`` until none fires (the first rule
    that fires wins; then the new node starts over)."""
    if type(sets) is not tuple:
        sets = tuple(sets)
    for _ in range(_MAX_STEPS):
        for fn in _rules_for(sets, node.op):
            new = fn(node)
            if new is not None and new is not node:
                if new.shape != node.shape or new.dtype != node.dtype:
                    raise AssertionError(f"rule {fn.__name__} changed {node!r} into {new!r}")
                node = new
                break
        else:
            return node
    return node


def toposort(outputs: Iterable[Node]) -> list[Node]:
    """Nodes reachable from ``outputs``, inputs before users, deterministic.

    Iterative (no recursion limit on deep graphs); the order depends only on
    the graph, never on set or dict iteration of unrelated objects.
    """
    order: list[Node] = []
    seen: set[Node] = set()
    for out in outputs:
        if out in seen:
            continue
        stack = [(out, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0 and node in seen:
                continue
            if i < len(node.inputs):
                stack.append((node, i + 1))
                child = node.inputs[i]
                if child not in seen:
                    stack.append((child, 0))
            else:
                if node not in seen:
                    seen.add(node)
                    order.append(node)
    return order


def _construct(node: Node, inputs: tuple[Node, ...]) -> Node | None:
    """``node`` with new inputs through its constructor, if it has one (the
    node's shape is kept, as :func:`~symdl.ir.build.rebuild` keeps it)."""
    construct = None if _IEEE.get() else CONSTRUCTORS.get(node.op)
    return None if construct is None else construct(inputs, dict(node.attrs), node.shape, node.dtype)


def rewrite_graph(outputs: Sequence[Node], sets: Sequence[str], max_rounds: int = 16) -> list[Node]:
    """Rewrite every node reachable from ``outputs`` with ``sets`` (plus the
    construction sets) until a whole round changes nothing."""
    from .build import rebuild  # the builders depend on this module

    all_sets = tuple(dict.fromkeys((*sets, *CONSTRUCTION)))
    outputs = list(outputs)
    for _ in range(max_rounds):
        mapping: dict[Node, Node] = {}
        for node in toposort(outputs):
            inputs = tuple(mapping[i] for i in node.inputs)
            new = node if inputs == node.inputs else _construct(node, inputs) or rebuild(node, inputs)
            mapping[node] = rewrite_node(new, all_sets)
        new_outputs = [mapping[o] for o in outputs]
        if new_outputs == outputs:
            break
        outputs = new_outputs
    return outputs
