"""``dlnetwork``: a layer graph with initialised learnables and state, its
``forward`` (training behaviour) and ``predict`` (inference behaviour).

A dlnetwork is a registered container (:mod:`symdl.tree`): its leaves are
its learnables and its state, so it is a ``dlfeval``/``dlaccelerate``
argument keyed by their shapes, formats and types (one trace for a training
loop over one network), and ``dlgradient(loss, net)`` returns the gradient
shaped like ``net.learnables``.
"""

from __future__ import annotations

import copy
from collections import deque

import numpy as np

from ..array import dlarray, extractdata
from ..tree import register_container
from .graph import LayerGraph, layer_graph
from .layer import Layer
from .layers import InputLayer, OutputLayer

__all__ = ["dlnetwork", "forward", "predict"]


class _Architecture:
    """What does not change while training: the layers (templates), their
    order, the connections, inputs and outputs, the dtype.  Compared by
    identity, so every network derived from one ``dlnetwork`` call shares it."""

    def __init__(self, layers: list[Layer], order: list[str], sources: dict[str, list[str]],
                 inputs: list[str], outputs: list[str], dtype: str):
        self.layers = {lay.name: lay for lay in layers}
        self.order, self.sources, self.inputs, self.outputs, self.dtype = order, sources, inputs, outputs, dtype


class dlnetwork:
    """A network for custom training loops (MATLAB's ``dlnetwork``).

    ``dlnetwork(layers_or_graph, dtype='float32')`` takes a layer array or a
    :class:`LayerGraph`; sizes that depend on the input are inferred from the
    input layers' sizes and learnables are initialised (MATLAB's learnables
    are single precision: ``dtype='float32'``; inputs are converted to it).

    - ``net.learnables``: ``{layer_name: {param_name: dlarray}}``;
    - ``net.state``: ``{layer_name: {name: dlarray}}`` (batchnorm's
      ``trained_mean`` and ``trained_variance``);
    - ``net.layers``: the layers, with their current parameters;
    - ``forward(net, X)`` returns ``(Y, state)``; set the new state with
      ``net.state = state`` (MATLAB's ``net.State = state``);
    - ``predict(net, X)`` returns ``Y``.

    Example:
        >>> import numpy as np, symdl
        >>> from symdl import nn
        >>> symdl.seed(0)
        >>> net = nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2)])
        >>> {k: {p: v.shape for p, v in d.items()} for k, d in net.learnables.items()}
        {'fc': {'weights': (2, 3), 'bias': (2, 1)}}
        >>> nn.predict(net, np.ones((3, 5))).shape
        (2, 5)
    """

    def __init__(self, layers, *, dtype: str = "float32"):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"dlnetwork: dtype must be 'float32' or 'float64', got {dtype!r}")
        graph = layers if isinstance(layers, LayerGraph) else layer_graph(layers)
        self._arch, self._learnables, self._state = _build(graph, dtype)

    @classmethod
    def _make(cls, arch: _Architecture, learnables: dict, state: dict) -> dlnetwork:
        net = object.__new__(cls)
        net._arch, net._learnables, net._state = arch, learnables, state
        return net

    # ------------------------------------------------------------ properties
    @property
    def learnables(self) -> dict:
        return {k: dict(v) for k, v in self._learnables.items()}

    @learnables.setter
    def learnables(self, value) -> None:
        self._learnables = _like(value, self._learnables, "learnables")

    @property
    def state(self) -> dict:
        return {k: dict(v) for k, v in self._state.items()}

    @state.setter
    def state(self, value) -> None:
        self._state = _like(value, self._state, "state")

    @property
    def layers(self) -> list[Layer]:
        return [self._layer(name) for name in self._arch.order]

    @property
    def input_names(self) -> list[str]:
        return list(self._arch.inputs)

    @property
    def output_names(self) -> list[str]:
        return list(self._arch.outputs)

    @property
    def dtype(self) -> str:
        return self._arch.dtype

    def _layer(self, name: str) -> Layer:
        return self._arch.layers[name]._with({**self._learnables.get(name, {}), **self._state.get(name, {})})

    def forward(self, *X, outputs=None):
        return forward(self, *X, outputs=outputs)

    def predict(self, *X, outputs=None):
        return predict(self, *X, outputs=outputs)

    def __symdl_gradient_target__(self) -> dict:
        """What ``dlgradient(y, net)`` differentiates with respect to."""
        return self._learnables

    def __repr__(self) -> str:
        return (f"dlnetwork with {len(self._arch.order)} layers, inputs {self._arch.inputs}, "
                f"outputs {self._arch.outputs}")

    def __getstate__(self):
        return {"arch": self._arch, "learnables": self._learnables, "state": self._state}

    def __setstate__(self, s):
        self._arch, self._learnables, self._state = s["arch"], s["learnables"], s["state"]


register_container(dlnetwork, lambda net: ([net._learnables, net._state], net._arch),
                   lambda arch, children: dlnetwork._make(arch, children[0], children[1]))


def _like(value, current: dict, what: str) -> dict:
    """``value`` checked to have ``current``'s layers, names and shapes."""
    if not isinstance(value, dict) or set(value) != set(current):
        raise ValueError(f"dlnetwork.{what} must be a dict with the layers {sorted(current)}, got "
                         f"{sorted(value) if isinstance(value, dict) else type(value).__name__}")
    out = {}
    for layer, params in current.items():
        given = value[layer]
        if not isinstance(given, dict) or set(given) != set(params):
            raise ValueError(f"dlnetwork.{what}[{layer!r}] must have the keys {sorted(params)}")
        out[layer] = {}
        for name, old in params.items():
            new = given[name]
            if not isinstance(new, dlarray):
                new = dlarray(np.asarray(new, dtype=old.dtype))
            if new.shape != old.shape:
                raise ValueError(f"dlnetwork.{what}[{layer!r}][{name!r}] must have shape {old.shape}, got "
                                 f"{new.shape}")
            out[layer][name] = new
    return out


# ---------------------------------------------------------------- building

def _build(graph: LayerGraph, dtype: str):
    where = "dlnetwork"
    layers = {lay.name: copy.copy(lay) for lay in graph.layers}
    for lay in layers.values():
        if isinstance(lay, OutputLayer):
            raise ValueError(f"{where}: layer {lay.name!r} is an output layer ({type(lay).__name__}); a dlnetwork "
                             "has none (compute the loss in the training loop), as MATLAB's")
    inputs = [name for name, lay in layers.items() if isinstance(lay, InputLayer)]
    if not inputs:
        raise ValueError(f"{where}: layers has no input layer (image_input_layer, feature_input_layer or "
                         "sequence_input_layer); its sizes are needed to initialise the network")
    sources: dict[str, list[str | None]] = {n: [None] * len(lay.input_names) for n, lay in layers.items()}
    users: dict[str, list[str]] = {n: [] for n in layers}
    for src, dst in graph.connections:
        s_name, d_name, d_port = src.split("/")[0], *dst.split("/")
        sources[d_name][layers[d_name].input_names.index(d_port)] = s_name
        users[s_name].append(d_name)
    for name, srcs in sources.items():
        for port, s in zip(layers[name].input_names, srcs):
            if s is None:
                raise ValueError(f"{where}: input {port!r} of layer {name!r} is not connected")
    order = _toposort(layers, sources, users)
    outputs = [n for n in layers if not users[n]]      # in the order the layers were given
    learnables, state, examples = {}, {}, {}
    for name in order:
        lay = layers[name]
        if isinstance(lay, InputLayer):
            examples[name] = lay.example(dtype)
            X = [examples[name]]
        else:
            X = [examples[s] for s in sources[name]]
            try:
                lay.initialize(*X)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where}: layer {name!r} cannot be initialised for its input(s) "
                                 f"{[(x.shape, x.fmt) for x in X]}: {exc}") from None
        learnables.update(_params(lay, lay.learnables, dtype, where, "learnable"))
        state.update(_params(lay, lay.state_names, dtype, where, "state"))
        if not isinstance(lay, InputLayer):
            try:
                examples[name] = lay._run(X, False)[0]
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{where}: layer {name!r} cannot take its input(s) "
                                 f"{[(x.shape, x.fmt) for x in X]}: {exc}") from None
        if not isinstance(examples[name], dlarray):
            raise TypeError(f"{where}: layer {name!r} must return a dlarray, got {type(examples[name]).__name__}")
    arch = _Architecture(list(layers.values()), order, {n: list(s) for n, s in sources.items()}, inputs,
                         outputs, dtype)
    return arch, learnables, state


def _params(lay: Layer, names, dtype: str, where: str, kind: str) -> dict:
    if not names:
        return {}
    out = {}
    for p in names:
        value = getattr(lay, p, None)
        if value is None:
            raise ValueError(f"{where}: {kind} parameter {p!r} of layer {lay.name!r} is not set (set it in the "
                             "layer's constructor or initialize)")
        value = value if isinstance(value, dlarray) else dlarray(np.asarray(value))
        if value.dtype.name != dtype:
            value = dlarray(np.asarray(extractdata(value), dtype=dtype))
        out[p] = value
        setattr(lay, p, value)
    return {lay.name: out}


def _toposort(layers: dict, sources: dict, users: dict) -> list[str]:
    """Kahn's algorithm in the order the layers were given; a cycle is an error."""
    pending = {n: len(s) for n, s in sources.items()}
    ready = deque(n for n in layers if pending[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for u in users[n]:
            pending[u] -= 1
            if pending[u] == 0:
                ready.append(u)
    if len(order) != len(layers):
        stuck = [n for n in layers if n not in order]
        raise ValueError(f"dlnetwork: the layer graph has a cycle through the layers {stuck}")
    return order


# ---------------------------------------------------------------- evaluation

def _check_net(net, where: str) -> None:
    if not isinstance(net, dlnetwork):
        raise TypeError(f"{where}: net must be a dlnetwork, got {type(net).__name__}")


def _evaluate(net: dlnetwork, X: tuple, training: bool, where: str, outputs=None):
    arch = net._arch
    wanted = arch.outputs if outputs is None else _output_names(arch, outputs, where)
    if len(X) != len(arch.inputs):
        raise ValueError(f"{where}: the network has {len(arch.inputs)} input(s) {arch.inputs}, got {len(X)} X")
    values: dict[str, dlarray] = {}
    state = {k: dict(v) for k, v in net._state.items()}
    feed = dict(zip(arch.inputs, X))
    for name in arch.order:
        lay = arch.layers[name]
        if isinstance(lay, InputLayer):
            values[name] = lay.predict(lay.check(feed[name], arch.dtype))
            continue
        current = net._layer(name)
        out, new_state = current._run([values[s] for s in arch.sources[name]], training)
        values[name] = out
        if new_state:
            state[name].update(new_state)
    outs = [values[o] for o in wanted]
    return outs, state


def _output_names(arch: _Architecture, outputs, where: str) -> list[str]:
    names = [outputs] if isinstance(outputs, str) else list(outputs)
    out = []
    for spec in names:
        name = spec.split("/")[0] if isinstance(spec, str) else None
        if name not in arch.layers:
            raise ValueError(f"{where}: outputs names no layer {spec!r}; the layers are {arch.order}")
        out.append(name)
    return out


def forward(net: dlnetwork, *X, outputs=None):
    """The network's outputs with training behaviour (batch statistics,
    dropout active) and its updated state: ``Y, state = forward(net, X)``
    (several outputs: ``Y1, Y2, state``).  Set it with ``net.state = state``.
    ``outputs`` (MATLAB's ``'Outputs'``) names the layers whose outputs to
    return instead of the network's outputs.

    Example:
        >>> import numpy as np, symdl
        >>> from symdl import nn
        >>> net = nn.dlnetwork([nn.feature_input_layer(2), nn.batch_normalization_layer()], dtype="float64")
        >>> Y, state = nn.forward(net, np.array([[1.0, 3.0], [0.0, 4.0]]))
        >>> symdl.extractdata(state["batchnorm"]["trained_mean"]).ravel()   # 0.1 * batch mean + 0.9 * 0
        array([0.2, 0.2])
    """
    _check_net(net, "forward")
    outs, state = _evaluate(net, X, True, "forward", outputs)
    return (*outs, state)


def predict(net: dlnetwork, *X, outputs=None):
    """The network's outputs with inference behaviour (running statistics,
    no dropout): one output or a tuple.  ``outputs`` names layers whose
    outputs to return (MATLAB's ``'Outputs'``).

    Example:
        >>> import numpy as np
        >>> from symdl import nn
        >>> net = nn.dlnetwork([nn.feature_input_layer(2), nn.relu_layer()])
        >>> nn.predict(net, np.array([[-1.0], [2.0]]))
        dlarray([[0.],
                 [2.]], fmt='CB')
    """
    _check_net(net, "predict")
    outs, _ = _evaluate(net, X, False, "predict", outputs)
    return outs[0] if len(outs) == 1 else tuple(outs)
