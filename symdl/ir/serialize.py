"""Graphs as plain data (for pickling, disk caches and content hashes), and back
to interned nodes."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence

import numpy as np

from .node import ArrayValue, Node, make_node
from .rewrite import toposort

__all__ = ["graph_to_data", "graph_from_data", "graph_digest", "graph_to_json", "graph_from_json"]

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


def _json_value(value):
    """Attribute values as JSON: arrays as base64 .npy bytes, non-finite
    floats as strings, tuples as lists (restored by ``_from_json``)."""
    import base64
    import io
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return {"npy": base64.b64encode(buf.getvalue()).decode()}
    if isinstance(value, tuple):
        return {"tuple": [_json_value(v) for v in value]}
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return value


def _from_json(value):
    import base64
    import io
    if isinstance(value, dict):
        if "npy" in value:
            return np.load(io.BytesIO(base64.b64decode(value["npy"])), allow_pickle=False)
        if "tuple" in value:
            return tuple(_from_json(v) for v in value["tuple"])
        if "float" in value:
            return float(value["float"])
    return value


def graph_to_json(inputs: Sequence[Node], outputs: Sequence[Node]) -> dict:
    """:func:`graph_to_data` in a JSON-safe form (no pickle: the disk cache
    stores graphs next to their object code and never unpickles)."""
    data = graph_to_data(inputs, outputs)
    data["nodes"] = [[op, list(ins), [[k, _json_value(v)] for k, v in attrs], list(shape), dtype]
                     for op, ins, attrs, shape, dtype in data["nodes"]]
    return data


def graph_from_json(data: dict) -> tuple[list[Node], list[Node]]:
    rows = [(op, tuple(ins), tuple((k, _from_json(v)) for k, v in attrs), tuple(shape), dtype)
            for op, ins, attrs, shape, dtype in data["nodes"]]
    return graph_from_data(dict(data, nodes=rows))
