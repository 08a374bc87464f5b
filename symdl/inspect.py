"""``trace(fun, *args)``: the simplified Graph of a function, for inspection."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

from .compiler.trace import is_numeric_leaf, trace_program
from .ir.graph import Graph

__all__ = ["trace"]


def trace(fun: Callable, *args: Any, simplify: bool = True) -> Graph:
    """Trace ``fun`` on example arguments and return its (simplified) ``Graph``.

    The arguments count as ``compile`` counts them (the same tracing entry):
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
    program, _ = trace_program(fun, args, {}, is_numeric_leaf)
    outputs = program.array_outputs
    if simplify:
        outputs = run_passes(outputs)
    return Graph(program.inputs, outputs, _input_names(program))


def _input_names(program) -> list[str]:
    n = len(program.inputs) - (1 if program.uses_rng else 0)  # the random key is the last input
    plain = ["x"] if n == 1 else [f"x{k + 1}" for k in range(n)]
    return plain + ["rng_key"] * (len(program.inputs) - n)
