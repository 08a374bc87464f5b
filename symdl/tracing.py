"""Trace contexts: ``dlfeval`` runs a function on real values while recording
the graph of every operation on traced dlarrays."""

from __future__ import annotations

import importlib
import threading
from typing import Any
from collections.abc import Callable, MutableMapping

import numpy as np

from .collector import calm_collector
from .ir import build as B
from .ir.interpret import evaluate
from .ir.node import VALUE_TABLES, Node
from .ir.shapes import dtype_name

__all__ = ["TraceContext", "current", "active_root", "tracing_active"]

# the interpreter module (``symdl.ir`` exports its ``interpret`` function
# under the module's name); looked up per call so that tests can count calls
_interpreter = importlib.import_module(".ir.interpret", __package__)

class _ThreadState(threading.local):
    """Each thread's stack of active contexts (``__init__`` runs once per
    thread, so reading the stack is one attribute access: every dlarray
    operation asks whether a trace is active)."""

    def __init__(self):
        self.stack: list[TraceContext] = []


_STATE = _ThreadState()


def _stack() -> list[TraceContext]:
    return _STATE.stack


class NodeValues(MutableMapping):
    """Values by node for one trace, weakly keyed: a node that nothing uses
    any more (a discarded intermediate, a printed or compared value) takes
    its value with it.  Keyed by each node's own intern reference, so the hot
    paths (``TraceContext.value``) look up ``data[node._ref]`` directly with
    no new weak reference per access; the node's death drops the entry while
    the table is registered (from the root trace's start to its end)."""

    __slots__ = ("data",)

    def __init__(self):
        self.data: dict = {}

    def __getitem__(self, node: Node) -> np.ndarray:
        return self.data[node._ref]

    def get(self, node: Node, default=None):
        return self.data.get(node._ref, default)

    def __setitem__(self, node: Node, value: np.ndarray) -> None:
        self.data[node._ref] = value

    def __delitem__(self, node: Node) -> None:
        del self.data[node._ref]

    def __contains__(self, node) -> bool:
        return isinstance(node, Node) and node._ref in self.data

    def __iter__(self):
        for ref in list(self.data):
            node = ref()
            if node is not None:
                yield node

    def __len__(self) -> int:
        return len(self.data)

    def track(self) -> None:
        VALUE_TABLES.append(self.data)

    def untrack(self) -> None:
        """Stop following node deaths (the trace is over: nothing adds values)."""
        for k, table in enumerate(VALUE_TABLES):
            if table is self.data:
                del VALUE_TABLES[k]
                break


class TraceContext:
    """One ``dlfeval`` call.  Nested calls share the outermost call's values,
    so what an inner call traced stays differentiable in the outer one."""

    def __init__(self):
        stack = _stack()
        self.parent = stack[-1] if stack else None
        self.root: TraceContext = self.parent.root if self.parent else self
        # Values by node, weakly keyed: a node that nothing uses any more (a
        # discarded intermediate, a printed or compared value) takes its value
        # with it; every live node keeps its value, so nothing is evaluated
        # twice and dlgradient finds the forward values it needs.
        self.memo: NodeValues = self.root.memo if self.parent else NodeValues()
        self.active = False
        # Python control flow that read traced values: (node, value seen).
        self.guards: list[tuple[Node, np.ndarray]] = self.root.guards if self.parent else []
        # dlgradient works inside dlfeval (run_traced sets it for its own
        # context) and in what that context calls; a trace made outside any
        # dlfeval (dlaccelerate called directly) does not allow it
        self.gradients_allowed = True if self.parent is None else self.parent.gradients_allowed
        # A transform's own trace: nobody reads its values, so results made by
        # transforms need no interpretation (see transforms._wrap).
        self.lazy_values = False if self.parent is None else self.root.lazy_values

    def rng_key(self) -> Node:
        """The (seed, call counter) input of this trace's random numbers."""
        root = self.root
        if getattr(root, "_rng_key", None) is None:
            from .random import next_key
            root._rng_key = B.input_node(self.fresh_name("__rng__"), (2,), "int64")
            root._rng_streams = 0
            self.memo[root._rng_key] = next_key()
        return root._rng_key

    def next_stream(self) -> int:
        root = self.root
        root._rng_streams += 1
        return root._rng_streams

    def record_guard(self, node: Node, value: np.ndarray) -> None:
        """The trace is only valid while ``node`` evaluates to ``value``."""
        if node.op != "const":
            self.guards.append((node, np.array(value, copy=True)))

    def __enter__(self) -> TraceContext:
        self.active = True
        if self.parent is None:
            self.memo.track()
        _stack().append(self)
        return self

    def __exit__(self, *exc) -> None:
        self.active = False
        popped = _stack().pop()
        assert popped is self
        if self.parent is None:
            self.memo.untrack()

    # ------------------------------------------------------------ values
    def fresh_name(self, prefix: str) -> str:
        """Input names count per outermost trace, so a trace's canonical operand
        order (which sorts by content digests, names included) is the same in
        every process and after any number of earlier traces."""
        root = self.root
        root._inputs_made = getattr(root, "_inputs_made", 0) + 1
        return f"{prefix}{root._inputs_made - 1}"

    def new_input(self, value: np.ndarray, prefix: str = "x") -> Node:
        node = B.input_node(self.fresh_name(prefix), value.shape, dtype_name(value.dtype))
        self.memo[node] = value
        return node

    def value(self, node: Node) -> np.ndarray:
        """The value of ``node``, evaluated once (only what the memo lacks)."""
        data = self.memo.data
        v = data.get(node._ref)
        if v is None:
            inputs = node.inputs
            try:  # the usual case: a new node whose operands all have values
                if len(inputs) == 1:  # (no comprehension for the commonest arities)
                    operands = [data[inputs[0]._ref]]
                elif len(inputs) == 2:
                    operands = [data[inputs[0]._ref], data[inputs[1]._ref]]
                else:
                    operands = [data[i._ref] for i in inputs]
            except KeyError:
                return evaluate([node], self.memo)[0]
            if node.op == "input":
                return evaluate([node], self.memo)[0]  # the interpreter's error for an unbound input
            v = data[node._ref] = _interpreter.eval_node(node, operands)
        return v

    def values(self, nodes: list[Node]) -> list[np.ndarray]:
        return evaluate(nodes, self.memo)

    def const(self, value: np.ndarray) -> Node:
        """A constant operand of a traced operation, with its value memoised."""
        if value.ndim == 0 and value.dtype.kind == "f":
            # the builder's fast path for one number (the same node as below)
            node = B.const(float(value), (), dtype_name(value.dtype))
        else:
            node = B.const(value, value.shape, dtype_name(value.dtype))
        self.memo.setdefault(node, np.asarray(value))
        return node


def current() -> TraceContext | None:
    """The innermost active ``dlfeval`` context, or None."""
    stack = _STATE.stack
    return stack[-1] if stack else None


def active_root() -> TraceContext | None:
    """The outermost active context (the one whose values nested calls share), or None."""
    stack = _STATE.stack
    return stack[0] if stack else None


def tracing_active() -> bool:
    """Whether any ``dlfeval`` or compiled trace is running on this thread."""
    return bool(_STATE.stack)


def run_traced(fun: Callable, args: tuple, kwargs: dict, wrap_input: Callable[[Any, TraceContext], Any]):
    """Run ``fun`` in a new context with dlarray leaves of the arguments traced."""
    from .tree import tree_map
    from .array import dlarray
    with calm_collector(), TraceContext() as ctx:
        ctx.gradients_allowed = True   # an explicit dlfeval, even inside a trace that forbids dlgradient
        targs, tkwargs = tree_map(lambda a: wrap_input(a, ctx) if isinstance(a, dlarray) else a,
                                  (args, kwargs))
        out = fun(*targs, **tkwargs)
    return ctx, out
