"""Saving and loading a dlnetwork without pickle: one ``.npz`` file holding
the learnables, the state and any array attributes of the layers, plus the
architecture as JSON (entry ``architecture``).

The JSON lists the layers in order, each as ``{"class": "module:QualName",
"attributes": {...}}`` (arrays as ``{"__array__": key}``, tuples as
``{"__tuple__": [...]}``, functions as ``{"__function__": "module:name"}``),
and the connections as ``{"layer": [source layer per input]}``, with
``inputs``, ``outputs``, ``dtype`` and ``format`` (``"symdl.dlnetwork/1"``).
Arrays are stored as ``learnables/<layer>/<param>``, ``state/<layer>/<name>``
and ``attributes/<layer>/<name>``.  Loading imports the layer classes named
in the file (a custom layer's module must be importable) and reads the
arrays with ``allow_pickle=False``.
"""

from __future__ import annotations

import importlib
import json
import os
import types

import numpy as np

from ..array import dlarray, extractdata
from .layer import Layer
from .network import _Architecture, dlnetwork

__all__ = ["save_network", "load_network"]

FORMAT = "symdl.dlnetwork/1"


def _qualname(obj) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _lookup(path: str, where: str):
    module, _, qual = path.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        raise ValueError(f"{where}: cannot find {path!r} (is its module importable?)") from None
    return obj


def _encode(value, key: str, arrays: dict):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, (dlarray, np.ndarray)):
        arrays[key] = extractdata(value) if isinstance(value, dlarray) else value
        return {"__array__": key, "fmt": value.fmt if isinstance(value, dlarray) else None}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{key}/{k}", arrays) for k, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{key}/{k}", arrays) for k, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"__dict__": {k: _encode(v, f"{key}/{k}", arrays) for k, v in value.items()}}
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)) and "<" not in value.__qualname__:
        return {"__function__": _qualname(value)}
    if callable(value):
        # e.g. a lambda initialiser: only used when the layer was initialised
        return {"__unsaved_callable__": repr(value)}
    raise TypeError(f"save_network: attribute {key!r} of type {type(value).__name__} cannot be saved")


def _decode(value, arrays, where: str):
    if isinstance(value, list):
        return [_decode(v, arrays, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__array__" in value:
        arr = arrays[value["__array__"]]
        return dlarray(arr, value["fmt"]) if value["fmt"] is not None else arr
    if "__tuple__" in value:
        return tuple(_decode(v, arrays, where) for v in value["__tuple__"])
    if "__dict__" in value:
        return {k: _decode(v, arrays, where) for k, v in value["__dict__"].items()}
    if "__function__" in value:
        return _lookup(value["__function__"], where)
    if "__unsaved_callable__" in value:
        return None
    raise ValueError(f"{where}: unknown entry {value!r}")


def save_network(net: dlnetwork, path: str | os.PathLike) -> None:
    """Write ``net`` to ``path`` (an ``.npz`` file; see the module docstring
    for the format).

    Example:
        >>> import numpy as np, os, tempfile, symdl
        >>> from symdl import nn
        >>> net = nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2)])
        >>> path = os.path.join(tempfile.mkdtemp(), "net.npz")
        >>> nn.save_network(net, path)
        >>> again = nn.load_network(path)
        >>> bool((symdl.extractdata(nn.predict(again, np.ones((3, 1)))) ==
        ...       symdl.extractdata(nn.predict(net, np.ones((3, 1))))).all())
        True
    """
    if not isinstance(net, dlnetwork):
        raise TypeError(f"save_network: net must be a dlnetwork, got {type(net).__name__}")
    arch, arrays = net._arch, {}
    layers = []
    for name in arch.order:
        lay = arch.layers[name]
        skip = set(lay.learnables) | set(lay.state_names) | {"_given"}
        attrs = {k: _encode(v, f"attributes/{name}/{k}", arrays) for k, v in vars(lay).items() if k not in skip}
        layers.append({"class": _qualname(type(lay)), "attributes": attrs})
    for kind, tree in (("learnables", net._learnables), ("state", net._state)):
        for layer, params in tree.items():
            for p, v in params.items():
                arrays[f"{kind}/{layer}/{p}"] = extractdata(v)
    spec = {"format": FORMAT, "dtype": arch.dtype, "layers": layers, "order": arch.order,
            "sources": arch.sources, "inputs": arch.inputs, "outputs": arch.outputs,
            "learnables": {k: list(v) for k, v in net._learnables.items()},
            "state": {k: list(v) for k, v in net._state.items()}}
    arrays["architecture"] = np.array(json.dumps(spec))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_network(path: str | os.PathLike) -> dlnetwork:
    """Read a network written by :func:`save_network` (no pickle).

    Example:
        >>> from symdl import nn
        >>> nn.load_network.__name__
        'load_network'
    """
    where = "load_network"
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    if "architecture" not in arrays:
        raise ValueError(f"{where}: {os.fspath(path)!r} is not a saved dlnetwork (no 'architecture' entry)")
    spec = json.loads(str(arrays["architecture"]))
    if spec.get("format") != FORMAT:
        raise ValueError(f"{where}: unknown format {spec.get('format')!r}, expected {FORMAT!r}")
    layers = []
    for entry in spec["layers"]:
        cls = _lookup(entry["class"], where)
        if not (isinstance(cls, type) and issubclass(cls, Layer)):
            raise ValueError(f"{where}: {entry['class']!r} is not a symdl.nn.Layer class")
        lay = object.__new__(cls)
        for k, v in entry["attributes"].items():
            object.__setattr__(lay, k, _decode(v, arrays, where))
        layers.append(lay)

    def tree(kind):
        return {layer: {p: dlarray(arrays[f"{kind}/{layer}/{p}"]) for p in names}
                for layer, names in spec[kind].items()}
    learnables, state = tree("learnables"), tree("state")
    for lay in layers:
        for p, v in {**learnables.get(lay.name, {}), **state.get(lay.name, {})}.items():
            object.__setattr__(lay, p, v)
    arch = _Architecture(layers, spec["order"], spec["sources"], spec["inputs"], spec["outputs"], spec["dtype"])
    return dlnetwork._make(arch, learnables, state)
