"""Tracing a Python function into a compilable program for one input signature.

A program knows which argument leaves are array inputs, how to rebuild the
output structure from the graph's outputs, and the guards: values that
Python control flow read during the trace, re-checked (bit for bit) on every
reuse.  The signature key that selects a program lives in
:mod:`symdl.compiler.dispatch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np

from ..array import dlarray
from ..ir import build as B
from ..ir.node import Node
from ..tracing import TraceContext
from ..tree import Treedef, tree_flatten, tree_unflatten
from ..ir.shapes import dtype_name

__all__ = ["Program", "trace_program", "is_numeric_leaf", "is_dlarray_leaf", "leaf_array", "same_bits"]


@dataclass
class Program:
    inputs: list[Node]
    array_outputs: list[Node]
    guard_nodes: list[Node]
    guard_values: list[np.ndarray]
    out_treedef: Treedef
    out_slots: list            # per output leaf: ("array", k, fmt, wrap) or ("static", value)
    input_names: list[str]
    uses_rng: bool = False     # last input is the (seed, counter) key of symdl.rand/randn
    trace_key: np.ndarray | None = None  # the key the tracing run drew with

    def call_arrays(self, arrays: list[np.ndarray], first: bool = False) -> list[np.ndarray]:
        """Argument arrays plus, when the program draws random numbers, a key:
        fresh, except on the run right after tracing, which repeats the
        tracing run's draw (so a seed gives the same numbers traced or cached)."""
        if self.uses_rng:
            from ..random import next_key
            return [*arrays, self.trace_key if first and self.trace_key is not None else next_key()]
        return arrays

    def __getstate__(self):
        from ..ir.serialize import graph_to_data
        state = dict(self.__dict__)
        n, g = len(self.array_outputs), len(self.guard_nodes)
        state["graph"] = graph_to_data(self.inputs, self.array_outputs + self.guard_nodes)
        state["counts"] = (n, g)
        for key in ("inputs", "array_outputs", "guard_nodes"):
            del state[key]
        return state

    def __setstate__(self, state):
        from ..ir.serialize import graph_from_data
        inputs, outputs = graph_from_data(state.pop("graph"))
        n, _ = state.pop("counts")
        self.__dict__.update(state)
        self.inputs, self.array_outputs, self.guard_nodes = inputs, outputs[:n], outputs[n:]

    @property
    def graph_outputs(self) -> list[Node]:
        return self.array_outputs + self.guard_nodes

    def guards_hold(self, guard_results: list[np.ndarray]) -> bool:
        """Whether this call read the values the trace read.  Bit for bit:
        ``float(x)`` of 0.0 and of -0.0 may take different branches
        (``math.atan2``, ``math.copysign``)."""
        if not self.guard_values:
            return True
        return all(same_bits(got, want) for got, want in zip(guard_results, self.guard_values))

    def assemble_scalars(self, values: list[float]) -> Any:
        """The output structure from Python numbers (all-scalar fast path)."""
        builder = self.__dict__.get("_scalar_builder")
        if builder is None:
            builder = self._scalar_builder = _structure_builder(self.out_treedef, [s[1] for s in self.out_slots])
        return builder(values)

    def assemble(self, arrays: list[np.ndarray]) -> Any:
        leaves = []
        append = leaves.append
        for slot in self.out_slots:
            if slot[0] == "static":
                append(slot[1])
            else:
                _, k, fmt, wrap = slot
                value = arrays[k]
                if wrap == "float":
                    append(value.item() if value.ndim == 0 else value)
                else:
                    append(value if wrap == "ndarray" else dlarray._wrap(value, None, None, fmt))
        return tree_unflatten(self.out_treedef, leaves)


def _structure_builder(treedef: Treedef, positions: list[int]) -> Callable[[list], Any]:
    """A function that rebuilds ``treedef`` from a flat list (plain tuples are
    rebuilt directly, anything else through tree_unflatten)."""
    if treedef.kind == "leaf":
        k = positions[0]
        return lambda v: v[k]
    if treedef.kind == "tuple" and all(c.kind == "leaf" for c in treedef.children):
        ks = tuple(positions)
        return lambda v: tuple(v[k] for k in ks)
    if treedef.kind == "tuple" and len(treedef.children) == 2 and treedef.children[0].kind == "leaf" \
            and treedef.children[1].kind == "tuple" \
            and all(c.kind == "leaf" for c in treedef.children[1].children):
        k0, rest = positions[0], tuple(positions[1:])
        return lambda v: (v[k0], tuple(v[k] for k in rest))
    return lambda v: tree_unflatten(treedef, [v[k] for k in positions])


def same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal shape and bits, where every NaN is the same NaN: compiled code and
    numpy may set a NaN's sign or payload differently, and a guard that never
    held again would make a fresh trace fail its own guards."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        return False
    if got.dtype != want.dtype:
        want = want.astype(got.dtype)
    if got.tobytes() == want.tobytes():
        return True
    if got.dtype.kind != "f":
        return False
    nan = np.isnan(got)
    return bool(np.array_equal(nan, np.isnan(want)) and np.array_equal(got[~nan], want[~nan])
                and np.array_equal(np.signbit(got[~nan]), np.signbit(want[~nan])))


def is_dlarray_leaf(x) -> bool:
    return isinstance(x, dlarray)


def is_numeric_leaf(x) -> bool:
    """compile/export/transforms: dlarrays, float numpy arrays and Python floats are inputs."""
    if isinstance(x, dlarray):
        return True
    if isinstance(x, bool):
        return False
    if isinstance(x, (float, np.floating)):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind in "fiu"


def leaf_array(x) -> np.ndarray:
    if isinstance(x, dlarray):
        return x._value
    arr = np.asarray(x)
    # the dlarray rule (SPEC §1): float32 and float64 stay, other numbers
    # (integers, float16, long double) compute in float64
    return arr if dtype_name(arr.dtype) in ("float32", "float64") else arr.astype(np.float64)


def trace_program(fun: Callable, args: tuple, kwargs: dict, is_input: Callable,
                  gradients_allowed: bool = True, out_wrap: str = "auto",
                  lazy_values: bool = False) -> tuple[Program, Any]:
    """Run ``fun`` once under a fresh trace and return its program and result.

    ``out_wrap``: 'auto' returns dlarrays where ``fun`` returned dlarrays;
    'ndarray' returns numpy arrays; 'match' returns dlarrays when any input
    was a dlarray and numpy arrays otherwise (function transforms).
    """
    leaves, treedef = tree_flatten((args, kwargs))
    if out_wrap == "match":
        arrays_in = [x for x in leaves if is_input(x)]
        if any(isinstance(x, dlarray) for x in arrays_in):
            out_wrap = "auto"
        elif arrays_in and all(type(x) is float for x in arrays_in):
            out_wrap = "float"  # numbers in, numbers out (0-d results become Python floats)
        else:
            out_wrap = "ndarray"
    ctx = TraceContext()
    ctx.gradients_allowed = gradients_allowed
    ctx.lazy_values = lazy_values
    # Results that stand for a Python float argument (its gradient, marked by
    # the transforms): returned as Python floats even when other arguments
    # make the call return arrays.
    ctx.float_inputs, ctx.float_results = set(), set()
    inputs: list[Node] = []
    traced_leaves = []
    with ctx:
        for x in leaves:
            if is_input(x):
                arr = leaf_array(x)
                node = ctx.new_input(arr, "a")
                inputs.append(node)
                if type(x) is float:
                    ctx.float_inputs.add(node)
                traced_leaves.append(dlarray._wrap(arr, node, ctx, getattr(x, "_fmt", None)))
            else:
                traced_leaves.append(x)
        targs, tkwargs = tree_unflatten(treedef, traced_leaves)
        result = fun(*targs, **tkwargs)
        out_leaves, out_treedef = tree_flatten(result)
        array_outputs: list[Node] = []
        slots = []
        for o in out_leaves:
            if isinstance(o, dlarray):
                node = o._node if (o._node is not None and o._trace is ctx) else \
                    B.const(o._value, o.shape, dtype_name(o.dtype))
                wrap = "dlarray" if out_wrap == "auto" else out_wrap
                if wrap == "ndarray" and node.shape == () and o._node in ctx.float_results:
                    wrap = "float"
                slots.append(("array", len(array_outputs), o._fmt, wrap))
                array_outputs.append(node)
            else:
                slots.append(("static", o))
    guard_nodes, guard_values, seen = [], [], set()
    for node, value in ctx.guards:
        if node not in seen:
            seen.add(node)
            guard_nodes.append(node)
            guard_values.append(value)
    rng = getattr(ctx, "_rng_key", None)
    if rng is not None:
        inputs.append(rng)
    names = [f"in{k}" for k in range(len(inputs))]
    program = Program(inputs, array_outputs, guard_nodes, guard_values, out_treedef, slots, names,
                      uses_rng=rng is not None, trace_key=ctx.memo.get(rng) if rng is not None else None)
    return program, result
