"""Straight-line Python for a repeated call signature: a *matcher* that
checks a call against the structure, types, shapes, dtypes, formats and
static values of a remembered call and returns the native entry's input
arrays, and a *builder* that rebuilds a program's output structure from the
entry's outputs.

Why generated code: flattening a 15-leaf call with the generic container
walk, building its :class:`~symdl.tree.Treedef`, computing its signature key
and reassembling the outputs through ``tree_unflatten`` costs tens of
microseconds per call, several times what checking the same facts in
straight-line code costs.  The generated source holds only variable names,
indices and lengths: every value (dict keys, shapes, dtypes, static values,
classes) is bound in the function's namespace, never written as text.

A matcher is built from one concrete call and accepts exactly the calls that
``tree_flatten`` and ``signature_key`` would give the same treedef and key
(the same leaf types too, so ``is_input`` and ``leaf_array`` decide the same):
anything it cannot check that way (user containers, dataclasses, namedtuples,
static objects keyed by identity, NaN static floats) makes no matcher, and
the caller keeps its full path.  A change of the container registry
invalidates every matcher (see :func:`symdl.tree.registry_version`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import tree as _tree
from ..array import dlarray
from .trace import leaf_array

__all__ = ["make_matcher", "make_builder", "make_runner", "MAX_LEAVES", "MISS"]

MISS = object()  # a fast path had no answer; take the full path

MAX_LEAVES = 4096  # larger calls keep the generic path (the generated source would be large)
_MAX_DEPTH = 32    # deeper nesting too (the generator recurses, the parser nests)


class _Unsupported(Exception):
    """The call holds something a matcher cannot check exactly."""


_STATIC_SCALARS = (int, str)
_NUMPY_KINDS = "biufc"


class _MatcherSource:
    """The source of a matcher, written while walking one call as
    ``tree_flatten`` walks it (the same order of leaves, checked after)."""

    def __init__(self, is_input: Callable[[Any], bool]):
        self.is_input = is_input
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"DL": dlarray, "ND": np.ndarray, "_asarray": np.asarray,
                                   "_leaf_array": leaf_array, "_copysign": math.copysign, "_tree": _tree}
        self.inputs: list[str] = []
        self.leaves: list[Any] = []
        self.count = 0

    def const(self, value: Any) -> str:
        name = f"c{len(self.ns)}"
        self.ns[name] = value
        return name

    def fresh(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def emit(self, line: str) -> None:
        self.lines.append("    " + line)

    def fail_unless(self, condition: str) -> None:
        self.emit(f"if not ({condition}): return None")

    # ------------------------------------------------------------ containers
    def node(self, obj: Any, var: str, depth: int) -> None:
        if depth > _MAX_DEPTH or len(self.leaves) > MAX_LEAVES:
            raise _Unsupported
        t = type(obj)
        if t in _tree._REGISTRY:
            raise _Unsupported  # a user container: its flatten function is not ours to inline
        if t is tuple or t is list:
            self.fail_unless(f"type({var}) is {self.const(t)} and len({var}) == {len(obj)}")
            self.children(list(obj), var, depth)
        elif t is dict:
            keys = tuple(obj)
            # key order is part of the treedef (the dict's aux), so compare the tuple
            self.fail_unless(f"type({var}) is dict and len({var}) == {len(obj)} and tuple({var}) == "
                             f"{self.const(keys)}")
            self.children(list(obj.values()), f"{var}.values()", depth)
        elif isinstance(obj, tuple) or isinstance(obj, list) or isinstance(obj, dict) \
                or (dataclasses.is_dataclass(obj) and not isinstance(obj, type)) \
                or any(isinstance(obj, base) for base in _tree._REGISTRY):
            raise _Unsupported  # namedtuples, subclasses, dataclasses, registered bases
        else:
            self.leaf(obj, var)

    def children(self, items: list, source: str, depth: int) -> None:
        if not items:
            return
        names = [self.fresh() for _ in items]
        self.emit(f"{', '.join(names)}, = {source}")
        for item, name in zip(items, names):
            self.node(item, name, depth + 1)

    # ------------------------------------------------------------ leaves
    def leaf(self, x: Any, v: str) -> None:
        self.leaves.append(x)
        t = type(x)
        if self.is_input(x):
            self.input_leaf(x, v, t)
        else:
            self.static_leaf(x, v, t)

    def input_leaf(self, x: Any, v: str, t: type) -> None:
        if t is dlarray:
            value = x._value
            a = v + "a"
            fmt = "is None" if x._fmt is None else f"== {self.const(x._fmt)}"
            # one condition per leaf (the walrus binds the value only once the type is known)
            self.fail_unless(f"type({v}) is DL and ({a} := {v}._value).shape == {self.const(value.shape)} and "
                             f"{v}._fmt {fmt} and {self._dtype_check(a, value.dtype)}")
            self.inputs.append(a)
        elif t is np.ndarray:
            self.fail_unless(f"type({v}) is ND and {v}.shape == {self.const(x.shape)} and "
                             f"{self._dtype_check(v, x.dtype)}")
            # leaf_array converts some dtypes; with the dtype fixed, it decides the same every call
            self.inputs.append(v if leaf_array(x) is x else f"_leaf_array({v})")
        elif t is float:
            self.fail_unless(f"type({v}) is float")
            self.inputs.append(f"_asarray({v})")
        elif isinstance(x, np.generic) and x.dtype.kind in _NUMPY_KINDS:
            self.fail_unless(f"type({v}) is {self.const(t)}")  # a numpy scalar type fixes the dtype
            self.inputs.append(f"_leaf_array({v})")
        else:
            raise _Unsupported

    def _dtype_check(self, a: str, dtype: np.dtype) -> str:
        d = self.const(dtype)
        return f"({a}.dtype is {d} or {a}.dtype == {d})"  # identical for the builtin dtypes: one pointer test

    def static_leaf(self, x: Any, v: str, t: type) -> None:
        # Exactly the equality of keys.static_key for these types.
        if x is None or t is bool:
            self.fail_unless(f"{v} is {self.const(x)}")
        elif t in _STATIC_SCALARS:
            self.fail_unless(f"type({v}) is {self.const(t)} and {v} == {self.const(x)}")
        elif t is float:
            if math.isnan(x):
                raise _Unsupported  # keyed by its bits: never equal to itself
            # keyed by bits: 0.0 and -0.0 differ
            self.fail_unless(f"type({v}) is float and {v} == {self.const(x)} and _copysign(1.0, {v}) == "
                             f"{math.copysign(1.0, x)!r}")
        elif isinstance(x, np.generic) and x.dtype.kind in _NUMPY_KINDS:
            self.fail_unless(f"type({v}) is {self.const(t)} and {v}.tobytes() == {self.const(x.tobytes())}")
        else:
            raise _Unsupported

    def compile(self, signature: str, check_leaves: list) -> Callable | None:
        if len(self.leaves) != len(check_leaves) or any(a is not b for a, b in zip(self.leaves, check_leaves)):
            return None  # not the order tree_flatten gives: never guess
        version = self.const(_tree.registry_version())
        body = [f"def match({signature}):",
                f"    if _tree._VERSION[0] != {version}: return None",
                *self.lines, f"    return [{', '.join(self.inputs)}]"]
        return _define(body, self.ns, "match")


def _define(lines: list[str], ns: dict, name: str) -> Callable | None:
    try:
        code = compile("\n".join(lines) + "\n", f"<symdl {name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None
    exec(code, ns)  # noqa: S102 (source made here from names and indices only; see the module docstring)
    # the function keeps ns as its globals; ns must not keep the function (a
    # reference cycle would hold the constants until the cyclic collector runs)
    return ns.pop(name)


def make_matcher(args: tuple, kwargs: dict | None, leaves: list, is_input: Callable[[Any], bool]
                 ) -> Callable | None:
    """``match(args, kwargs)`` (or ``match(args)`` when ``kwargs`` is None)
    returning the entry's input arrays when the call has this call's
    signature and ``None`` otherwise; ``None`` when the call holds something
    a matcher cannot check exactly.  ``leaves``: ``tree_flatten((args,
    kwargs))[0]`` (or of ``(args, {})``), checked against the matcher's own
    walk."""
    src = _MatcherSource(is_input)
    try:
        src.node(args, "args", 0)
        if kwargs is None:
            signature = "args"
        else:
            src.node(kwargs, "kwargs", 0)
            signature = "args, kwargs"
    except (_Unsupported, RecursionError):
        return None
    match = src.compile(signature, leaves)
    if match is None:
        return None
    # the call it was built from must pass
    if (match(args) if kwargs is None else match(args, kwargs)) is None:
        return None
    return match


# ---------------------------------------------------------------- outputs

class _BuilderSource:
    """The expression that rebuilds a program's output tree from ``outs``,
    slot by slot as ``Program.assemble`` does."""

    def __init__(self, slots: list, out_specs: list, strip: bool):
        self.slots = iter(slots)
        self.out_specs = out_specs
        self.strip = strip
        self.ns: dict[str, Any] = {"W": dlarray._wrap}

    def const(self, value: Any) -> str:
        name = f"c{len(self.ns)}"
        self.ns[name] = value
        return name

    def expr(self, td, depth: int) -> str:
        if depth > _MAX_DEPTH:
            raise _Unsupported
        if td.kind == "leaf":
            return self.slot(next(self.slots))
        parts = [self.expr(c, depth + 1) for c in td.children]
        if td.kind == "tuple":
            return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
        if td.kind == "list":
            return f"[{', '.join(parts)}]"
        if td.kind == "dict":
            return "{" + ", ".join(f"{self.const(k)}: {p}" for k, p in zip(td.aux, parts)) + "}"
        if td.kind == "namedtuple":
            return f"{self.const(td.aux)}({', '.join(parts)})"
        raise _Unsupported  # dataclasses and registered containers: Program.assemble does them

    def slot(self, slot: tuple) -> str:
        if slot[0] == "static":
            return self.const(slot[1])  # the very object Program.assemble returns
        _, k, fmt, wrap = slot
        value = f"outs[{k}]"
        if wrap == "float":
            # Program.assemble: value.item() for a 0-d value; the entry's output shape is fixed
            return f"{value}.item()" if self.out_specs[k][0] == () else value
        if wrap == "ndarray" or self.strip:
            return value
        return f"W({value}, None, None, {self.const(fmt)})"


def make_builder(program, out_specs: list, strip: bool = False) -> Callable | None:
    """``build(outs)``: ``program.assemble(outs)`` (with every dlarray result
    replaced by its value when ``strip``) as one expression, or None for
    output structures it does not cover."""
    src = _BuilderSource(program.out_slots, out_specs, strip)
    try:
        expression = src.expr(program.out_treedef, 0)
    except (_Unsupported, StopIteration, RecursionError):
        return None
    if next(src.slots, None) is not None:
        return None
    return _define(["def build(outs):", f"    return {expression}"], src.ns, "build")


def make_runner(program, entry, strip: bool = False) -> Callable:
    """``run(arrays)``: the program's result for the entry's input arrays of
    a later call (a fresh random key, never the tracing run's), or
    :data:`MISS` when a guard fails (Python control flow would take another
    branch).  ``strip``: dlarray results as their values (``compile``
    called without dlarrays)."""
    build = make_builder(program, entry.out_specs, strip)
    if build is None:
        # Program.assemble reads only outs[k] of array slots, so it takes the guards' outputs as well
        if strip:
            def build(outs, assemble=program.assemble):
                return _tree.tree_map(_value_of, assemble(outs))
        else:
            build = program.assemble
    if not program.uses_rng and not program.guard_nodes:
        def run(arrays):
            return build(entry(*arrays))
        return run
    n, call_arrays, guards_hold = len(program.array_outputs), program.call_arrays, program.guards_hold

    def run_checked(arrays):
        outs = entry(*call_arrays(arrays))
        return build(outs) if guards_hold(outs[n:]) else MISS
    return run_checked


def _value_of(x):
    return x._value if isinstance(x, dlarray) else x
