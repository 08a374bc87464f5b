"""``trace(fun, *args)``: the simplified Graph of a function, for inspection."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np

from .array import dlarray
from .autodiff.api import dlfeval
from .ir.graph import Graph
from .tracing import active_root
from .tree import tree_flatten
from .ir.shapes import dtype_name

__all__ = ["trace", "example_inputs"]


def example_inputs(args: tuple) -> tuple:
    """dlarrays, numpy arrays and Python floats become traced dlarrays."""
    def convert(a):
        if isinstance(a, dlarray):
            return a
        if isinstance(a, (float, np.floating)) or isinstance(a, np.ndarray) and a.dtype.kind == "f":
            return dlarray(a)
        return a
    from .tree import tree_map
    return tree_map(convert, args)


def trace(fun: Callable, *args: Any, simplify: bool = True) -> Graph:
    """Trace ``fun`` on example arguments and return its (simplified) ``Graph``.

    dlarrays, numpy float arrays and Python floats among ``args`` become graph
    inputs; the dlarrays that ``fun`` returns are the outputs.

    Example:
        >>> import symdl
        >>> g = symdl.trace(lambda x: symdl.exp(x) * x, 1.0)
        >>> print(g.latex())
        x e^{x}
    """
    from .simplify import simplify as run_passes
    if not callable(fun):
        raise TypeError(f"trace: fun must be callable, got {type(fun).__name__}")
    args = example_inputs(args)
    captured: dict[str, Any] = {}

    def body(*traced):
        leaves, _ = tree_flatten(traced)
        captured["inputs"] = [a._node for a in leaves if isinstance(a, dlarray) and a._node is not None]
        captured["ctx"] = active_root()
        out = fun(*traced)
        outs, _ = tree_flatten(out)
        captured["outputs"] = [o._node if o._node is not None else _const_node(o)
                               for o in outs if isinstance(o, dlarray)]
        return out

    dlfeval(body, *args)
    outputs = captured["outputs"]
    rng = getattr(captured["ctx"], "_rng_key", None)
    if rng is not None:  # symdl.rand/randn: the (seed, counter) key is the last input
        captured["inputs"].append(rng)
    if simplify:
        outputs = run_passes(outputs)
    names = _input_names(captured["inputs"])
    return Graph(captured["inputs"], outputs, names)


def _const_node(o: dlarray):
    from .ir import build as B
    return B.const(o._value, o.shape, dtype_name(o.dtype))


def _input_names(inputs) -> list[str]:
    names = [n for n in inputs if not n.attr("name").startswith("__rng__")]
    plain = ["x"] if len(names) == 1 else [f"x{k + 1}" for k in range(len(names))]
    return plain + ["rng_key"] * (len(inputs) - len(names))
