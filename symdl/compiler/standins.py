"""Stand-in inputs: how a transform is traced inside another trace.

A transform called while another trace is active builds its graph in that
trace.  Its arguments are then graph nodes of the outer trace, or plain
values (numpy arrays, Python floats) that the outer trace has as constants.
Differentiating or batching with respect to such nodes directly would mix
things up: equal constants are one interned node (``f(x) = x * 2.0`` at
``x = 2.0``), an array passed twice is one node, and a primal that the
function also closes over is one node (perturbation confusion).  So the
function is traced on *stand-ins*, fresh input nodes of the arguments'
shapes, which are then replaced by the real nodes (``vmap``: by the batched
arguments).

:func:`call_in_trace` is the rule for a transform called inside a trace with
any arguments: it is built in the outer trace on stand-ins (so
``grad(lambda x: grad(lambda a: a * x)(x))`` is 1, not 2); when no argument
is traced there, the function may still close over values of the outer trace
(``vmap(lambda w: jacobian(lambda x: x * w)(x0))``), and only when the result
turns out not to depend on the outer trace is it compiled on its own, in a
trace of its own, and returned as plain numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..ir import build as B
from ..ir.node import Node
from ..ir.rewrite import ieee_semantics, toposort
from ..ir.shapes import dtype_name
from .. import tracing
from ..tracing import active_root
from ..tree import tree_flatten, tree_unflatten
from .dispatch import MISS
from .trace import is_numeric_leaf, leaf_array

__all__ = ["leaf_node", "stand_in", "depends_on", "wrap", "call_in_trace"]


def leaf_node(leaf, root, where: str, what: str) -> Node:
    """The graph node of an argument leaf in trace ``root``: its own node when
    traced there, otherwise a constant of its value (numpy arrays and Python
    floats reach a transform called inside another trace untraced)."""
    if isinstance(leaf, dlarray):
        if leaf._node is not None and leaf._trace is root:
            return leaf._node
        return root.const(np.asarray(leaf._value))
    if is_numeric_leaf(leaf):
        return root.const(leaf_array(leaf))
    raise TypeError(f"{where}: {what} must be a float array or a float, got {type(leaf).__name__}")


def stand_in(root, shape: tuple, dtype: str, value: np.ndarray | None) -> dlarray:
    """A fresh input node standing for an argument while a function is
    traced.  ``value`` is what the tracer computes with (the interpreter
    needs one; zeros when None)."""
    node = B.input_node(root.fresh_name("__standin__"), shape, dtype)
    if value is None:
        value = np.zeros(shape, dtype=dtype)
    root.memo[node] = np.asarray(value, dtype=dtype)
    return dlarray._wrap(root.memo[node], node, root, None)


def depends_on(outputs: list[Node], sources: set[Node]) -> set[Node]:
    """The nodes among the graph of ``outputs`` that depend on any of ``sources``."""
    dep = set(sources)
    for node in toposort(outputs):
        if node not in dep and any(i in dep for i in node.inputs):
            dep.add(node)
    return dep


def wrap(node: Node, fmt=None) -> dlarray:
    """A transform's traced result (as ``transforms._wrap``): its value only
    where the trace's code may look at values, else a zero-stride placeholder."""
    root = active_root()
    if not root.lazy_values:
        return dlarray._wrap(root.value(node), node, root, fmt)
    return dlarray._wrap(np.broadcast_to(np.zeros((), dtype=node.dtype), node.shape), node, root, fmt)


@contextlib.contextmanager
def detached():
    """No trace is active inside: a transform compiled here traces in a root
    context of its own, its inputs traced there (a trace nested in another
    shares the outer one's root, which its inputs are not traced in)."""
    state = tracing._STATE
    saved, state.stack = state.stack, []
    try:
        yield
    finally:
        state.stack = saved


def _inline(function: Callable, args: tuple, root, may_miss: bool) -> Any:
    """``function(*args)`` built in trace ``root``, every numeric argument
    leaf replaced by a stand-in and the stand-ins then by the leaves' nodes
    (constants for untraced leaves).  With ``may_miss``, :data:`MISS` when
    nothing in the result depends on the outer trace (the guards discarded)."""
    leaves, treedef = tree_flatten(args)
    mapping: dict[Node, Node] = {}
    new_leaves = []
    # a Python float argument's gradient comes back as a float (trace_program's
    # marks): a stand-in of a float input is one too, and so is a result marked
    floats, marks = getattr(root, "float_inputs", None), getattr(root, "float_results", None)
    for leaf in leaves:
        if isinstance(leaf, dlarray) or is_numeric_leaf(leaf):
            const = leaf_node(leaf, root, "", "")
            s = stand_in(root, const.shape, dtype_name(const.dtype),
                         leaf._value if isinstance(leaf, dlarray) else leaf_array(leaf))
            s._fmt = getattr(leaf, "_fmt", None)
            mapping[s._node] = const
            if floats is not None and const in floats:
                floats.add(s._node)
            new_leaves.append(s)
        else:
            new_leaves.append(leaf)
    start = len(root.guards)
    out = function(*tree_unflatten(treedef, new_leaves))
    out_leaves, out_def = tree_flatten(out)
    slots = [k for k, o in enumerate(out_leaves) if isinstance(o, dlarray) and o._node is not None
             and o._trace is root]
    guards = root.guards[start:]
    nodes = B.substitute([out_leaves[k]._node for k in slots] + [g for g, _ in guards], mapping)
    if may_miss and not any(node.op == "input" for node in toposort(nodes)):
        del root.guards[start:]   # a constant of the outer trace: compiled on its own instead
        return MISS
    root.guards[start:] = [(g, v) for g, (_, v) in zip(nodes[len(slots):], guards)]
    for k, node in zip(slots, nodes):
        if marks is not None and out_leaves[k]._node in marks:
            marks.add(node)
        out_leaves[k] = wrap(node, out_leaves[k]._fmt)
    return tree_unflatten(out_def, out_leaves)


def call_in_trace(cache, args: tuple, leaves: list, treedef, ieee: bool = False) -> Any:
    """A transform's call inside another trace (see the module docstring):
    built in the outer trace on stand-ins when an argument is traced there
    or the function closes over the trace's values, otherwise compiled on
    its own (numbers out, as outside any trace)."""
    root = active_root()
    traced = any(isinstance(x, dlarray) and x._node is not None and x._trace is root for x in leaves)
    result = _inline(cache.function, args, root, may_miss=not traced)
    if result is not MISS:
        return result
    with detached(), ieee_semantics(ieee):
        return cache.call(args, {}, leaves, treedef, traced=True)
