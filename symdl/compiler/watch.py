"""The function watch: what a trace depends on besides its arguments (code,
defaults, closures, globals, a bound method's object), re-checked on every
call so that an edit of the function is noticed and retraced."""

from __future__ import annotations

import dis
import functools
import math
import types
from collections.abc import Callable

import numpy as np

from ..array import dlarray

__all__ = ["FunctionWatch"]



_LIBRARY_MODULES = ("symdl", "codegen", "numpy", "scipy", "sympy", "builtins", "math")
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_MISSING = object()
# values whose attributes are code or library state, not user data
_NOT_PLAIN_OBJECTS = (types.ModuleType, type, types.FunctionType, types.MethodType, types.BuiltinFunctionType,
                      np.ndarray, np.generic)


def _is_library(fn) -> bool:
    module = getattr(fn, "__module__", "") or ""
    return module.split(".")[0] in _LIBRARY_MODULES


def _is_callable_object(value) -> bool:
    """An instance of a user class with a Python ``__call__``."""
    if not callable(value) or hasattr(value, "__code__") or isinstance(value, (types.MethodType, type)) \
            or _is_library(type(value)):
        return False
    call = type(value).__call__  # a Python function when the class defines __call__ in Python
    return isinstance(call, types.FunctionType) and not _is_library(call)


def _stored_attributes(code: types.CodeType) -> set[str]:
    """Attribute names ``code`` (or code nested in it) assigns or deletes
    (``calls.n += 1``): the function's own bookkeeping, not an input of the
    trace, so the watch does not look at them (it would retrace every call)."""
    names = {ins.argval for ins in dis.get_instructions(code) if ins.opname in ("STORE_ATTR", "DELETE_ATTR")}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _stored_attributes(const)
    return names


def _global_names(code: types.CodeType) -> list[str]:
    """The names ``code`` may read as globals, with those of the code nested
    in it: before Python 3.12 a comprehension (and always a lambda or a
    nested function) has a code object of its own, whose globals are
    read when the function runs."""
    names = dict.fromkeys(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(dict.fromkeys(_global_names(const)))
    return list(names)


def _same_scalar(now, expected) -> bool:
    """Equal Python scalars of one type; floats also by sign (0.0 vs -0.0)."""
    if type(now) is not type(expected) or type(now) not in _SCALARS or now != expected:
        return False
    return type(now) is not float or math.copysign(1.0, now) == math.copysign(1.0, expected)


class FunctionWatch:
    """What a trace of a function depends on besides its arguments: the code
    objects, defaults, closure cells and global names of the function and of
    the user functions it reaches (depth 3), and the attributes of the object
    of a bound method it reaches.  ``changed()`` is a flat list of identity
    checks, cheap enough for every call.  Library functions (symdl, numpy,
    ...) are not followed, but the user functions that symdl's own wrappers
    (the transforms) hold are.  ``extra``: more callables to watch the same
    way (functions passed as static arguments).

    Example:
        >>> namespace = {"scale": 2.0}
        >>> exec("def f(x):\\n    return scale * x", namespace)   # a user function reading a global
        >>> watch = FunctionWatch(namespace["f"])
        >>> watch.changed()
        False
        >>> namespace["scale"] = -2.0
        >>> watch.changed()
        True
    """

    def __init__(self, fn: Callable, extra=()):
        self.probes: list[tuple] = []
        self._seen: set[int] = set()
        self._watch(fn, 0)
        for other in extra:
            self._follow(other, 0)

    def _watch(self, fn: Callable, depth: int) -> None:
        if isinstance(fn, functools.partial):
            # its keywords can be changed in place; its function is watched as fun
            self._probe("attr", fn, "keywords", fn.keywords)
            self._watch(fn.func, depth + 1)
            return
        if _is_callable_object(fn):
            # an instance of a class with __call__ (a loss or model object):
            # watched as the bound method, its attributes included
            self._watch(types.MethodType(type(fn).__call__, fn), depth)
            return
        owner = getattr(fn, "__self__", None)
        if owner is not None and hasattr(owner, "__dict__") and not isinstance(owner, types.ModuleType):
            for name, value in vars(owner).items():  # a bound method reads its object's state
                self._probe("item", vars(owner), name, value)
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        if code is None or id(fn) in self._seen or depth > 3:
            return
        self._seen.add(id(fn))
        if _is_library(fn):
            # symdl's own wrappers (the transforms) are fixed once made: only
            # the user functions they hold are watched
            for cell in fn.__closure__ or ():
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                if isinstance(value, functools.partial) or _is_callable_object(value):
                    self._watch(value, depth + 1)  # the transformed fun itself: its state too
                else:
                    self._follow(value, depth)
            return
        self.probes.append(("attr", fn, "__code__", code))
        self.probes.append(("attr", fn, "__defaults__", fn.__defaults__))
        if fn.__kwdefaults__ is not None:
            # keyword-only defaults (probed only where they exist: native
            # dispatchers check __code__, __defaults__ and cells only)
            self._probe("attr", fn, "__kwdefaults__", fn.__kwdefaults__)
        names = _global_names(code)
        read_attributes = [n for n in names if n not in _stored_attributes(code)]
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self._probe("attr", cell, "cell_contents", value)
            self._probe_attributes(value, read_attributes)
            self._follow(value, depth)
        glb = fn.__globals__
        for name in names:
            value = glb.get(name, _MISSING)
            if value is _MISSING or isinstance(value, types.ModuleType):
                continue
            self._probe("item", glb, name, value)
            self._probe_attributes(value, read_attributes)
            self._follow(value, depth)

    def _probe_attributes(self, value, names: list[str]) -> None:
        """The attributes of an object the code reads (``cfg.scale`` of a
        global or captured ``cfg``) that the code names: rebinding one is
        noticed.  Only names in the code, so a big object costs nothing; its
        instance ``__dict__`` is a dict, which native dispatchers check too."""
        if isinstance(value, _NOT_PLAIN_OBJECTS):
            return
        attrs = getattr(value, "__dict__", None)
        if type(attrs) is not dict:
            return
        for name in names:
            if name in attrs:
                self._probe("item", attrs, name, attrs[name])

    def _probe(self, kind: str, obj, key, value, depth: int = 0) -> None:
        self.probes.append((kind, obj, key, value))
        if isinstance(value, np.ndarray):  # contents may change in place
            self.probes.append(("array", value, None, value.copy()))
        elif isinstance(value, dlarray):
            self.probes.append(("attr", value, "_value", value._value))
        elif depth < 2 and isinstance(value, (dict, list)) and len(value) <= 64:
            # a configuration dict or list read by the function, one level deep
            self.probes.append(("len", value, None, len(value)))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                self._probe("item" if isinstance(value, dict) else "index", value, k, v, depth + 1)

    def _follow(self, value, depth: int) -> None:
        if isinstance(value, types.MethodType) and not _is_library(value.__func__):
            self._watch(value, depth + 1)  # a bound method: its object's attributes too
        elif isinstance(value, types.FunctionType) and not _is_library(value):
            self._watch(value, depth + 1)
        elif isinstance(value, functools.partial):
            self._watch(value.func, depth + 1)
        elif _is_callable_object(value):
            # a callable object the code calls: its code, not its state (a
            # call counter or logger updates its own attributes on every call)
            self._watch(type(value).__call__, depth + 1)

    def changed(self) -> bool:
        for kind, obj, key, expected in self.probes:
            if kind == "array":
                if obj.shape != expected.shape or not np.array_equal(obj, expected, equal_nan=True):
                    return True
                continue
            if kind == "len":
                if len(obj) != expected:
                    return True
                continue
            if kind == "attr":
                now = getattr(obj, key, _MISSING)
            elif kind == "index":
                now = obj[key] if key < len(obj) else _MISSING
            else:
                now = obj.get(key, _MISSING)
            if now is not expected and not _same_scalar(now, expected):
                return True
        return False


