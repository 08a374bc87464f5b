"""Layer graphs (MATLAB's ``layerGraph``): layers with unique names and the
connections between their outputs and inputs, for DAG networks with skip
connections."""

from __future__ import annotations

import copy
from collections import Counter

from .layer import Layer

__all__ = ["LayerGraph", "layer_graph", "add_layers", "connect_layers", "disconnect_layers"]


class LayerGraph:
    """Layers and connections ``(source, destination)``, each
    ``'layer'`` or ``'layer/port'`` (MATLAB's ``'add/in2'``).  Functions
    that change a graph return a new one, as MATLAB's value semantics."""

    def __init__(self, layers: list[Layer], connections: list[tuple[str, str]]):
        self.layers = list(layers)
        self.connections = list(connections)

    def layer(self, name: str) -> Layer:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise ValueError(f"no layer named {name!r}; the layers are {[lay.name for lay in self.layers]}")

    def __repr__(self) -> str:
        return (f"LayerGraph with {len(self.layers)} layers {[lay.name for lay in self.layers]} and "
                f"{len(self.connections)} connections")


def _as_layers(layers, where: str) -> list[Layer]:
    if isinstance(layers, Layer):
        layers = [layers]
    try:
        layers = list(layers)
    except TypeError:
        raise TypeError(f"{where}: layers must be a Layer or a list of layers, got {type(layers).__name__}") from None
    for k, lay in enumerate(layers):
        if not isinstance(lay, Layer):
            raise TypeError(f"{where}: layers[{k}] must be a symdl.nn.Layer, got {type(lay).__name__}")
    return [copy.copy(lay) for lay in layers]


def _name_layers(existing: list[Layer], new: list[Layer], where: str) -> None:
    """MATLAB's scheme for unnamed layers: the type's default name when one
    layer of that type is unnamed, ``name_1``, ``name_2``, ... when several."""
    taken = [lay.name for lay in existing] + [lay.name for lay in new if lay.name]
    dupes = [n for n, c in Counter(taken).items() if c > 1]
    if dupes:
        raise ValueError(f"{where}: layer names must be unique, got {dupes[0]!r} more than once")
    used = set(taken)
    unnamed = Counter(_base(lay) for lay in new if not lay.name)
    counters: dict[str, int] = {}
    for lay in new:
        if lay.name:
            continue
        base = _base(lay)
        if unnamed[base] == 1 and base not in used:
            lay.name = base
        else:
            k = counters.get(base, 0)
            while True:
                k += 1
                if f"{base}_{k}" not in used:
                    break
            counters[base] = k
            lay.name = f"{base}_{k}"
        used.add(lay.name)


def _base(lay: Layer) -> str:
    """The default name of a layer (a custom layer's: its class name, lower case)."""
    return lay.default_name if lay.default_name != "layer" else type(lay).__name__.lower()


def _chain(layers: list[Layer]) -> list[tuple[str, str]]:
    out = []
    for a, b in zip(layers, layers[1:]):
        if a.output_names and b.input_names:
            out.append((f"{a.name}/{a.output_names[0]}", f"{b.name}/{b.input_names[0]}"))
    return out


def layer_graph(layers=()) -> LayerGraph:
    """A layer graph from a layer array, connected one after another
    (MATLAB's ``layerGraph(layers)``); unnamed layers are named.

    Example:
        >>> from symdl import nn
        >>> g = nn.layer_graph([nn.feature_input_layer(3), nn.fully_connected_layer(4), nn.relu_layer(),
        ...                     nn.fully_connected_layer(2)])
        >>> [lay.name for lay in g.layers], g.connections[0]
        (['featureinput', 'fc_1', 'relu', 'fc_2'], ('featureinput/out', 'fc_1/in'))
    """
    layers = _as_layers(layers, "layer_graph")
    _name_layers([], layers, "layer_graph")
    return LayerGraph(layers, _chain(layers))


def add_layers(graph: LayerGraph, layers) -> LayerGraph:
    """``graph`` with ``layers`` added and connected one after another
    (MATLAB's ``addLayers``); they are not connected to the existing layers.

    Example:
        >>> from symdl import nn
        >>> g = nn.add_layers(nn.layer_graph([nn.feature_input_layer(3)]), [nn.relu_layer(name="skip")])
        >>> [lay.name for lay in g.layers]
        ['featureinput', 'skip']
    """
    _check_graph(graph, "add_layers")
    layers = _as_layers(layers, "add_layers")
    _name_layers(graph.layers, layers, "add_layers")
    return LayerGraph(graph.layers + layers, graph.connections + _chain(layers))


def _check_graph(graph, where: str) -> None:
    if not isinstance(graph, LayerGraph):
        raise TypeError(f"{where}: graph must be a LayerGraph (from layer_graph), got {type(graph).__name__}")


def _resolve(graph: LayerGraph, spec, kind: str, where: str, argname: str) -> str:
    """``'layer'`` or ``'layer/port'`` as a full ``'layer/port'``."""
    if not isinstance(spec, str):
        raise TypeError(f"{where}: {argname} must be a str 'layer' or 'layer/port', got {type(spec).__name__}")
    name, _, port = spec.partition("/")
    layers = {lay.name: lay for lay in graph.layers}
    if name not in layers:
        raise ValueError(f"{where}: {argname} {spec!r} names no layer; the layers are {list(layers)}")
    lay = layers[name]
    ports = lay.input_names if kind == "in" else lay.output_names
    if not ports:
        raise ValueError(f"{where}: {argname} {spec!r}: layer {name!r} has no {kind}puts")
    if not port:
        if len(ports) != 1:
            raise ValueError(f"{where}: {argname} {spec!r}: layer {name!r} has {kind}puts {list(ports)}; "
                             f"name one, e.g. '{name}/{ports[0]}'")
        port = ports[0]
    if port not in ports:
        raise ValueError(f"{where}: {argname} {spec!r}: layer {name!r} has no {kind}put {port!r}; its "
                         f"{kind}puts are {list(ports)}")
    return f"{name}/{port}"


def connect_layers(graph: LayerGraph, source: str, destination: str) -> LayerGraph:
    """``graph`` with the output ``source`` connected to the input
    ``destination`` (MATLAB's ``connectLayers``; e.g. ``'add/in2'``).

    Example:
        >>> from symdl import nn
        >>> g = nn.layer_graph([nn.feature_input_layer(2, name="x"), nn.relu_layer(name="r"),
        ...                     nn.addition_layer(2, name="add")])
        >>> nn.connect_layers(g, "x", "add/in2").connections[-1]
        ('x/out', 'add/in2')
    """
    where = "connect_layers"
    _check_graph(graph, where)
    src = _resolve(graph, source, "out", where, "source")
    dst = _resolve(graph, destination, "in", where, "destination")
    if any(d == dst for _, d in graph.connections):
        raise ValueError(f"{where}: destination {destination!r} is already connected")
    return LayerGraph(graph.layers, graph.connections + [(src, dst)])


def disconnect_layers(graph: LayerGraph, source: str, destination: str) -> LayerGraph:
    """``graph`` without the connection ``source -> destination`` (MATLAB's ``disconnectLayers``).

    Example:
        >>> from symdl import nn
        >>> g = nn.layer_graph([nn.feature_input_layer(2), nn.relu_layer()])
        >>> nn.disconnect_layers(g, "featureinput", "relu").connections
        []
    """
    where = "disconnect_layers"
    _check_graph(graph, where)
    src = _resolve(graph, source, "out", where, "source")
    dst = _resolve(graph, destination, "in", where, "destination")
    if (src, dst) not in graph.connections:
        raise ValueError(f"{where}: {source!r} is not connected to {destination!r}")
    return LayerGraph(graph.layers, [c for c in graph.connections if c != (src, dst)])
