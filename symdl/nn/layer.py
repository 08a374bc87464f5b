"""The ``Layer`` base class: MATLAB's custom-layer template (learnable
parameters, ``predict``, optional ``forward`` and ``backward``), and the
construct that makes a custom ``backward`` the layer's derivative while
keeping it differentiable."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from ..array import dlarray
from ..autodiff.api import gradient_nodes
from ..core import apply, is_traced
from ..ir import build as B
from ..ir.shapes import dtype_name
from ..tracing import active_root, current
from .. import functions as F

__all__ = ["Layer"]


class Layer:
    """Base class of every layer, built-in or custom (MATLAB's
    ``nnet.layer.Layer``).

    A custom layer names its learnable attributes in the class attribute
    ``learnables`` and defines ``predict(self, X)``; optionally
    ``forward(self, X)`` returning ``(Z, memory)`` (training behaviour) and
    ``backward(self, X, Z, dLdZ, memory)`` returning ``dLdX`` followed by one
    gradient per learnable (in the order of ``learnables``).  A layer with
    several inputs lists their names in ``input_names`` (MATLAB's
    ``InputNames``, e.g. ``("in1", "in2")``) and takes them as separate
    arguments: ``predict(self, X1, X2)``, ``backward(self, X1, X2, Z, dLdZ,
    memory)`` returning ``dLdX1, dLdX2, dLdW...``.

    When ``backward`` is defined, the network's derivatives through the layer
    are the ones it computes (written with symdl operations, it is traced, so
    second derivatives through it are derivatives of the traced backward,
    exactly up to fourth order; a fifth derivative through it is a
    ValueError, never an inexact value; see :func:`custom_backward_call`).  It must
    be linear in ``dLdZ`` (a vector-Jacobian product), and ``forward`` /
    ``predict`` must be deterministic: they are evaluated again at the same
    point to build the derivative.

    Example:
        >>> import numpy as np, symdl
        >>> from symdl import nn
        >>> class Scale(nn.Layer):
        ...     learnables = ("s",)
        ...     def __init__(self, name=""):
        ...         super().__init__(name)
        ...         self.s = np.array([2.0])
        ...     def predict(self, X):
        ...         return X * self.s
        >>> net = nn.dlnetwork([nn.feature_input_layer(1), Scale("scale")], dtype="float64")
        >>> nn.predict(net, symdl.dlarray(np.array([[1.0, 3.0]]), "CB"))
        dlarray([[2., 6.]], fmt='CB')
    """

    learnables: tuple[str, ...] = ()
    #: non-learnable parameters updated by training (batchnorm's statistics)
    state_names: tuple[str, ...] = ()
    input_names: tuple[str, ...] = ("in",)
    output_names: tuple[str, ...] = ("out",)
    #: the name MATLAB gives an unnamed layer of this type
    default_name: str = "layer"
    #: '' until named (a subclass need not call Layer.__init__)
    name: str = ""

    def __init__(self, name: str = ""):
        if not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a str, got {type(name).__name__}")
        self.name = name

    # ------------------------------------------------------------ the template
    def predict(self, *X):
        raise NotImplementedError(f"{type(self).__name__} must define predict(self, X)")

    def forward(self, *X):
        """Training behaviour; by default ``predict`` and no memory."""
        return self.predict(*X), None

    def initialize(self, *X) -> None:
        """Set parameters that depend on the input (``X`` is an example input
        with one observation); learnables still ``None`` afterwards are an
        error.  Built-in layers infer their sizes here."""

    # ------------------------------------------------------------ machinery
    @property
    def num_inputs(self) -> int:
        return len(self.input_names)

    def _run(self, inputs: list, training: bool) -> tuple[Any, dict]:
        """The layer's output and its new state (a dict, empty when none)."""
        if type(self).backward is not Layer.backward:
            return custom_backward_call(self, inputs, training), {}
        if training:
            return self.forward(*inputs)[0], {}
        return self.predict(*inputs), {}

    def backward(self, *args):   # the marker of "no custom backward" (a subclass overrides it)
        raise NotImplementedError(f"{type(self).__name__} has no custom backward: its derivatives come from "
                                  "automatic differentiation of predict/forward")

    def _with(self, values: dict) -> Layer:
        """A copy with the given parameter values (the network's current ones)."""
        out = copy.copy(self)
        for key, value in values.items():
            object.__setattr__(out, key, value)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


# Gauss-Legendre nodes on [0, 1]: see custom_backward_call.
_GAUSS = ((0.5 - math.sqrt(3.0) / 6.0, 0.5), (0.5 + math.sqrt(3.0) / 6.0, 0.5))
_EXACT_ORDER = 4  # two Gauss-Legendre nodes: moments exact up to t^3


def _stop(x):
    out = apply("stop_gradient", [x])
    out._fmt = x._fmt
    return out


def custom_backward_call(layer: Layer, inputs: list, training: bool):
    """The layer's output, whose derivatives are given by ``layer.backward``.

    The value is ``Z = forward/predict(X)``.  For derivatives, with ``p`` the
    primals (inputs and learnables), ``d = p - stop_gradient(p)`` (zero, with
    derivative one) and ``B(q)`` the linear map ``dLdZ -> backward(q, ...)``,
    the output is ``stop_gradient(Z) + sum_k w_k B(q_k)^T d`` with
    ``q_k = stop_gradient(p) + t_k d``.  Its first derivative is exactly
    ``backward`` at ``p``; its n-th derivative is ``n * sum_k w_k t_k^(n-1)``
    times the (n-1)-th derivative of the traced backward, so with the two
    Gauss-Legendre nodes (whose moments sum_k w_k t_k^m equal 1/(m+1) up to
    m = 3) derivatives are exact up to fourth order.  ``d`` is marked with
    ``order_limit`` (limit 4): a fifth derivative through the layer is a
    ValueError naming it (more nodes would only move the limit).  ``B^T d``
    is the gradient of ``<B(v), d>`` with respect to a stand-in ``v`` for
    dLdZ.
    """
    names = layer.learnables
    Z = _evaluate(layer, inputs, training)
    primals = list(inputs) + [getattr(layer, n) for n in names]
    root = active_root()
    if not any(is_traced(p) for p in primals) or not current().gradients_allowed:
        return Z          # nothing will be differentiated: no derivative construct to compute
    if not isinstance(Z, dlarray):
        raise TypeError(f"{layer.name or type(layer).__name__}: predict must return a dlarray, "
                        f"got {type(Z).__name__}")
    live = [isinstance(p, dlarray) and is_traced(p) for p in primals]
    stopped = [_stop(p) if t else p for p, t in zip(primals, live)]
    what = f"the custom backward of layer {layer.name or type(layer).__name__!r}"
    deltas = [apply("order_limit", [p - s], p._fmt, level=0, limit=_EXACT_ORDER, what=what) if t else None
              for p, s, t in zip(primals, stopped, live)]
    out = _stop(Z)
    for t_k, w_k in _GAUSS:
        q = [s + d * t_k if d is not None else s for s, d in zip(stopped, deltas)]
        q_layer = layer._with(dict(zip(names, q[len(inputs):])))
        q_inputs = q[:len(inputs)]
        if training:
            Zq, memory = q_layer.forward(*q_inputs)
        else:
            Zq, memory = q_layer.predict(*q_inputs), None
        v_node = B.input_node(root.fresh_name("__dLdZ__"), Z.shape, dtype_name(Z.dtype))
        root.memo[v_node] = np.zeros(Z.shape, Z.dtype)
        v = dlarray._wrap(root.memo[v_node], v_node, root, Z._fmt)
        grads = q_layer.backward(*q_inputs, Zq, v, memory)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(primals):
            raise ValueError(f"{layer.name or type(layer).__name__}: backward must return {len(inputs)} input "
                             f"gradient(s) and one per learnable {list(names)}: {len(primals)} values, "
                             f"got {len(grads)}")
        y = None
        for k, (g, d, p) in enumerate(zip(grads, deltas, primals)):
            if d is None:
                continue
            if np.shape(g) != np.shape(p):
                what = f"dLd{names[k - len(inputs)]}" if k >= len(inputs) else f"dLdX{k + 1}"
                raise ValueError(f"{layer.name or type(layer).__name__}: backward's {what} has shape "
                                 f"{np.shape(g)}, expected {np.shape(p)}")
            term = F.sum(g * d)
            y = term if y is None else y + term
        if y is None or not is_traced(y):
            continue
        ynode = B.reshape(y._node, ()) if y.shape != () else y._node
        (s,) = gradient_nodes(ynode, [v_node])
        if s is None:
            continue
        if _depends_on(s, v_node):
            raise ValueError(f"{layer.name or type(layer).__name__}: backward must be linear in dLdZ "
                             "(a vector-Jacobian product)")
        s = B.convert(s, v_node.dtype)
        sval = root.values([s])[0]
        out = out + dlarray._wrap(sval, s, root, Z._fmt) * w_k
    out._fmt = Z._fmt
    return out


def _evaluate(layer: Layer, inputs: list, training: bool):
    if training:
        result = layer.forward(*inputs)
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(f"{layer.name or type(layer).__name__}: forward must return (Z, memory)")
        return result[0]
    return layer.predict(*inputs)


def _depends_on(node, target) -> bool:
    stack, seen = [node], set()
    while stack:
        n = stack.pop()
        if n is target:
            return True
        if n in seen:
            continue
        seen.add(n)
        stack.extend(n.inputs)
    return False
