"""Graphs as plain data (for pickling, disk caches and content hashes), and back
to interned nodes."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence

import numpy as np

from .node import ArrayValue, Node, make_node
from .rewrite import toposort

__all__ = ["graph_to_data", "graph_from_data", "graph_digest"]

FORMAT = 1


def _attr_out(value):
    if isinstance(value, ArrayValue):
        return ("__array__", value.array)
    if isinstance(value, tuple):
        return tuple(_attr_out(v) for v in value)
    return value


def _attr_in(value):
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == "__array__" and isinstance(value[1], np.ndarray):
            return ArrayValue(value[1])
        return tuple(_attr_in(v) for v in value)
    return value


def graph_to_data(inputs: Sequence[Node], outputs: Sequence[Node]) -> dict:
    """Nodes in topological order as ``(op, input positions, attrs, shape, dtype)``."""
    order = list(inputs) + [n for n in toposort(outputs) if n not in set(inputs)]
    pos = {n: k for k, n in enumerate(order)}
    rows = [(n.op, tuple(pos[i] for i in n.inputs), tuple((k, _attr_out(v)) for k, v in n.attrs),
             n.shape, n.dtype) for n in order]
    return {"format": FORMAT, "nodes": rows, "inputs": list(range(len(inputs))),
            "outputs": [pos[o] for o in outputs]}


def graph_from_data(data: dict) -> tuple[list[Node], list[Node]]:
    if data.get("format") != FORMAT:
        raise ValueError(f"unsupported graph format {data.get('format')!r}")
    nodes: list[Node] = []
    for op, ins, attrs, shape, dtype in data["nodes"]:
        attrs = tuple((k, _attr_in(v)) for k, v in attrs)
        nodes.append(make_node(op, tuple(nodes[i] for i in ins), attrs, tuple(shape), dtype))
    return [nodes[i] for i in data["inputs"]], [nodes[i] for i in data["outputs"]]


def graph_digest(inputs: Sequence[Node], outputs: Sequence[Node]) -> str:
    """Content hash of a graph, independent of input names and of the process."""
    h = hashlib.sha256()
    order = list(inputs) + [n for n in toposort(outputs) if n not in set(inputs)]
    pos = {n: k for k, n in enumerate(order)}
    for n in order:
        if n.op == "input":
            h.update(repr(("input", n.shape, n.dtype)).encode())
        else:
            h.update(n.op.encode())
            h.update(repr(tuple(pos[i] for i in n.inputs)).encode())
            h.update(pickle.dumps(tuple((k, _attr_out(v)) for k, v in n.attrs), protocol=4))
            h.update(repr((n.shape, n.dtype)).encode())
    h.update(repr([pos[o] for o in outputs]).encode())
    return h.hexdigest()
