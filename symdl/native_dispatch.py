"""Calling a compiled all-float transform through a native dispatcher.

After a transform has compiled a signature of Python floats, its instance is
given a class whose ``__call__`` is the native dispatcher of
:mod:`codegen.pyentry`: float arguments, the function-watch checks and the
result tuples are handled in native code, and anything else falls back to
the Python path (``_Transform._call``), which retraces, refreshes the watch
and installs a new dispatcher when needed.
"""

from __future__ import annotations

import ctypes

import numpy as np

from codegen import llvm, pyentry

__all__ = ["install"]

_NATIVE_PROBES = {"__code__", "__defaults__", "cell_contents"}


def _structure(program):
    """The output tree as output indices (nested tuples), or None when the
    result is not made only of tuples and array outputs."""
    slots = iter(program.out_slots)

    def walk(td):
        if td.kind == "leaf":
            slot = next(slots)
            return slot[1] if slot[0] == "array" else None
        if td.kind != "tuple":
            return None
        children = [walk(c) for c in td.children]
        return None if any(c is None for c in children) else tuple(children)

    return walk(program.out_treedef)


def _probes_supported(probes) -> bool:
    return all((kind == "attr" and key in _NATIVE_PROBES) or (kind == "item" and isinstance(obj, dict)
                                                               and type(key) is str)
               for kind, obj, key, _ in probes)


def install(transform, trace) -> None:
    """Give ``transform`` a native dispatcher for ``trace`` when it can have one."""
    acc = transform._acc
    entry = trace.entry
    f64 = np.dtype(np.float64)
    if not pyentry.available() or not trace.scalar or not _probes_supported(acc._fingerprint.probes):
        return
    if any(d != f64 for _, d in entry.in_specs + entry.out_specs):
        return
    structure = _structure(trace.program)
    if structure is None:
        return
    state = entry._main
    counter = ctypes.c_int64(0)
    dispatcher = pyentry.ScalarDispatcher(
        ctypes.cast(entry._plain_fn, ctypes.c_void_p).value, len(entry.in_specs), len(entry.out_specs),
        state.ptrs[len(state.ptrs) - 1], structure, list(acc._fingerprint.probes), transform._call, counter,
        llvm.host_target(), keep=(trace, state))
    base = type(transform).__mro__[1] if type(transform).__dict__.get("_native") else type(transform)
    native_class = type(base.__name__, (base,), {
        "__call__": staticmethod(dispatcher.function), "_native": dispatcher,
        "__module__": base.__module__, "__doc__": base.__doc__})
    transform.__class__ = native_class
