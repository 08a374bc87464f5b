"""Graphs as plain data (for pickling, disk caches and content hashes), and back
to interned nodes."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence

import numpy as np

from .node import ArrayValue, Node, make_node
from .rewrite import toposort

__all__ = ["graph_to_data", "graph_from_data", "graph_digest", "graph_to_json", "graph_from_json", "value_to_json",
           "value_from_json", "NotPortable"]

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


_DTYPES = frozenset({"float64", "float32", "float16", "int64", "int32", "bool"})


def _position(i, n: int, what: str) -> int:
    if type(i) is not int or not 0 <= i < n:
        raise ValueError(f"malformed graph: {what} {i!r} is not one of the {n} nodes before it")
    return i


def graph_from_data(data: dict) -> tuple[list[Node], list[Node]]:
    """Nodes from :func:`graph_to_data`, checked as they are read (a known
    op, inputs that come before, a shape of non-negative ints, a known
    dtype): malformed data is a ValueError, never a broken graph."""
    from .ops.registry import PRIMITIVES
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"unsupported graph format {data.get('format') if isinstance(data, dict) else data!r}")
    nodes: list[Node] = []
    try:
        for op, ins, attrs, shape, dtype in data["nodes"]:
            if op not in PRIMITIVES:
                raise ValueError(f"malformed graph: unknown op {op!r}")
            if dtype not in _DTYPES or not all(type(d) is int and d >= 0 for d in shape):
                raise ValueError(f"malformed graph: a node of shape {shape!r} and dtype {dtype!r}")
            inputs = tuple(nodes[_position(i, len(nodes), "input")] for i in ins)
            attrs = tuple((k, _attr_in(v)) for k, v in attrs)
            if not all(type(k) is str for k, _ in attrs):
                raise ValueError("malformed graph: an attribute name that is not a string")
            hash(attrs)
            nodes.append(make_node(op, inputs, attrs, tuple(shape), dtype))
        return ([nodes[_position(i, len(nodes), "input")] for i in data["inputs"]],
                [nodes[_position(i, len(nodes), "output")] for i in data["outputs"]])
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"malformed graph: {type(err).__name__}: {err}") from None


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
    """The graph of :func:`graph_to_json`; malformed data is a ValueError."""
    try:
        rows = [(op, tuple(ins), tuple((k, _from_json(v)) for k, v in attrs), tuple(shape), dtype)
                for op, ins, attrs, shape, dtype in data["nodes"]]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OSError) as err:
        raise ValueError(f"malformed graph: {type(err).__name__}: {err}") from None
    return graph_from_data(dict(data, nodes=rows))


# ---------------------------------------------------------------- plain values as JSON

class NotPortable(TypeError):
    """A value that :func:`value_to_json` cannot write without pickle."""

    def __init__(self, value):
        super().__init__(type(value).__name__)
        self.value = value


def _hexfloat(x: float) -> str:
    return x.hex() if x == x else "nan"


def value_to_json(v):
    """Plain Python data as JSON with type tags, so that it comes back with
    its exact types (tuples, -0.0, NaN, bytes, numpy arrays without
    pickle, the container structures of symdl.tree).  Anything else (a
    class, a function, an object) raises :class:`NotPortable`."""
    import base64
    import io
    from ..tree import Treedef
    t = type(v)
    if v is None or t is bool or t is str or t is int:
        return v
    if t is float:
        return {"f": _hexfloat(v)}
    if t is complex:
        return {"c": [_hexfloat(v.real), _hexfloat(v.imag)]}
    if t is bytes:
        return {"b": base64.b64encode(v).decode()}
    if t is tuple:
        return {"t": [value_to_json(x) for x in v]}
    if t is list:
        return {"l": [value_to_json(x) for x in v]}
    if t is dict:
        return {"d": [[value_to_json(k), value_to_json(x)] for k, x in v.items()]}
    if t is frozenset:
        return {"fs": [value_to_json(x) for x in v]}
    if t is np.ndarray and not v.dtype.hasobject:
        buf = io.BytesIO()
        np.save(buf, v, allow_pickle=False)
        return {"npy": base64.b64encode(buf.getvalue()).decode()}
    if isinstance(v, np.generic) and not v.dtype.hasobject:
        return {"npg": value_to_json(np.asarray(v))}
    if t is Treedef and v.kind in ("leaf", "tuple", "list", "dict"):
        return {"td": [v.kind, value_to_json(v.aux), [value_to_json(c) for c in v.children]]}
    raise NotPortable(v)


def value_from_json(j):
    """The value of :func:`value_to_json`; anything malformed is a ValueError."""
    import base64
    import binascii
    import io
    from ..tree import Treedef
    if j is None or type(j) in (bool, str, int):
        return j
    if type(j) is not dict or len(j) != 1:
        raise ValueError(f"malformed value {str(j)[:40]!r}")
    (tag, x), = j.items()
    try:
        if tag == "f":
            return float.fromhex(x)
        if tag == "c":
            re_, im = x
            return complex(float.fromhex(re_), float.fromhex(im))
        if tag == "b":
            return base64.b64decode(x.encode("ascii"), validate=True)
        if tag in ("t", "l", "fs"):
            items = [value_from_json(e) for e in x]
            return tuple(items) if tag == "t" else items if tag == "l" else frozenset(items)
        if tag == "d":
            return {value_from_json(k): value_from_json(e) for k, e in x}
        if tag == "npy":
            return np.load(io.BytesIO(base64.b64decode(x.encode("ascii"), validate=True)), allow_pickle=False)
        if tag == "npg":
            arr = value_from_json(x)
            if type(arr) is not np.ndarray or arr.ndim != 0:
                raise ValueError("a numpy scalar that is not a 0-d array")
            return arr[()]
        if tag == "td":
            kind, aux, children = x
            children = tuple(value_from_json(c) for c in children)
            if kind not in ("leaf", "tuple", "list", "dict") or not all(type(c) is Treedef for c in children):
                raise ValueError(f"a container structure of kind {kind!r}")
            return Treedef(kind, value_from_json(aux), children)
    except (TypeError, ValueError, AttributeError, binascii.Error, OSError, EOFError) as err:
        raise ValueError(f"malformed value with tag {tag!r}: {err}") from None
    raise ValueError(f"malformed value: unknown tag {tag!r}")
