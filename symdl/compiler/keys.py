"""Signature keys: what identifies a call for the trace cache.  Array inputs
count by shape, dtype, labels and traced-ness; static (non-array) arguments
by value (floats by their bits, containers by their contents); a value that
cannot be keyed is an error, never keyed by identity by accident."""

from __future__ import annotations

import enum
import struct
import types
from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..tree import Treedef, tree_flatten
from .trace import leaf_array
from ..ir.shapes import dtype_name

__all__ = ["signature_key", "static_key", "Unkeyable", "unkeyable_error", "FLOAT_PART", "ByIdentity"]


class ByIdentity:
    """Identity as a key, holding the object so that its address is never
    reused while the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return type(other) is ByIdentity and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)

    def __repr__(self):
        return f"<{getattr(self.obj, '__qualname__', type(self.obj).__name__)}>"


class Unkeyable(TypeError):
    """A static argument (or something inside it) has no value to key by."""

    def __init__(self, value: Any, leaf: int = -1):
        super().__init__(type(value).__name__)
        self.value, self.leaf = value, leaf


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _key_items(values, found: list) -> tuple:
    return tuple(static_key(v, found) for v in values)


_KEY_RULES: dict[type, Callable[[Any, list], Any]] = {
    type(None): lambda v, found: None,
    bool: lambda v, found: ("bool", v),
    int: lambda v, found: ("int", v),
    str: lambda v, found: ("str", v),
    bytes: lambda v, found: ("bytes", v),
    type(Ellipsis): lambda v, found: ("...",),
    float: lambda v, found: ("float", _bits(v)),  # 0.0 and -0.0 differ; a NaN is its bits
    complex: lambda v, found: ("complex", _bits(v.real), _bits(v.imag)),
    tuple: lambda v, found: ("tuple", _key_items(v, found)),
    list: lambda v, found: ("list", _key_items(v, found)),
    dict: lambda v, found: ("dict", _key_items(v.keys(), found), _key_items(v.values(), found)),
    set: lambda v, found: ("set", frozenset(_key_items(v, found))),
    frozenset: lambda v, found: ("frozenset", frozenset(_key_items(v, found))),
    range: lambda v, found: ("range", v.start, v.stop, v.step),
    slice: lambda v, found: ("slice", _key_items((v.start, v.stop, v.step), found)),
}


def _ndarray_key(a: np.ndarray, found: list) -> tuple:
    if a.dtype.hasobject:
        return ("ndarray", "object", a.shape, _key_items(a.flat, found))
    return ("ndarray", a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def _has_value_semantics(t: type) -> bool:
    return t.__eq__ is not object.__eq__ and t.__hash__ is not None and t.__hash__ is not object.__hash__


def static_key(value: Any, found: list | None = None) -> Any:
    """A hashable key for a static (non-array) argument, by value (SPEC §9.3).

    Numbers by type and bits, containers by contents, numpy arrays by dtype,
    shape and bytes, enum members by member.  Functions, bound methods,
    builtins, ufuncs, classes and modules are keyed by identity (the key
    holds them, so the identity stays theirs); functions and bound methods go
    to ``found`` so that the cache watches their code, closures and object as
    it watches ``fun``'s.  Objects whose type compares by value (``__eq__``
    and ``__hash__``: fractions, SymPy expressions) are keyed by that value.
    Anything else (an object that compares by identity, a callable object
    whose state could change unseen) raises :class:`Unkeyable`.

    Example:
        >>> static_key(0.0) == static_key(-0.0)
        False
        >>> static_key({1.0, 2.0}) == static_key({2.0, 1.0})
        True
    """
    found = [] if found is None else found
    rule = _KEY_RULES.get(type(value))
    if rule is not None:
        return rule(value, found)
    if isinstance(value, np.ndarray):
        return _ndarray_key(value, found)
    if isinstance(value, np.generic):
        return ("numpy", value.dtype.str, value.tobytes()) if value.dtype.kind != "O" else static_key(value.item())
    if isinstance(value, enum.Enum):
        return ("enum", ByIdentity(type(value)), value.name)
    if isinstance(value, types.FunctionType):
        found.append(value)  # user code: watched as fun is
        return ("function", ByIdentity(value))
    if isinstance(value, types.MethodType):
        found.append(value)  # and a bound method's object, as for fun
        return ("method", ByIdentity(value.__self__), ByIdentity(value.__func__))
    if isinstance(value, _FIXED_CALLABLES):
        return ("object", ByIdentity(value))  # builtins, ufuncs, classes, modules: fixed once made
    if _has_value_semantics(type(value)):
        return ("value", ByIdentity(type(value)), value)
    raise Unkeyable(value)


_FIXED_CALLABLES = (types.BuiltinFunctionType, types.BuiltinMethodType, np.ufunc, type, types.ModuleType)


FLOAT_PART = ("F", (), "float64", None)  # a Python float input (scalar results come back as floats)


def _input_part(x) -> tuple:
    if type(x) is float:
        return FLOAT_PART
    if isinstance(x, dlarray):
        # dtype by name: byte order is the caller's business (converted on entry)
        return ("D", x._value.shape, dtype_name(x._value.dtype), x._fmt)
    arr = leaf_array(x)
    return ("A", arr.shape, dtype_name(arr.dtype), None)


def signature_key(leaves: list, treedef: Treedef, is_input: Callable, traced: bool,
                  found: list | None = None) -> tuple:
    """The input signature: structure, each input's kind, shape, dtype and
    fmt, each static leaf's value (see :func:`static_key`), traced-ness."""
    parts = []
    for k, x in enumerate(leaves):
        if is_input(x):
            parts.append(_input_part(x))
            continue
        try:
            parts.append(("S", static_key(x, found)))
        except Unkeyable as err:
            raise Unkeyable(err.value, k) from None
    return (treedef, tuple(parts), traced)


def unkeyable_error(where: str, err: Unkeyable, args: tuple, kwargs: dict) -> TypeError:
    """The TypeError for a static argument that has no value to key by."""
    label, outer = _argument_of_leaf(args, kwargs, err.leaf)
    inner = type(err.value).__name__
    subject = inner if outer is err.value else f"it holds a {inner}, which"
    # a class with __eq__ but no __hash__ (Python then sets __hash__ to None) is unhashable
    what = f"{subject} is unhashable (it defines __eq__ but no __hash__)" if type(err.value).__hash__ is None \
        else f"{subject} compares by identity (no __eq__ and __hash__ of its own)"
    return TypeError(
        f"{where}: {label} (a {type(outer).__name__}) is static, so the cache of compiled traces keys it by "
        f"value, but {what}. Pass arrays as arrays, give "
        f"{inner} __eq__ and __hash__ that compare by value, or let fun read the object from a closure "
        f"instead (its attributes are then frozen into each trace)")


def _argument_of_leaf(args: tuple, kwargs: dict, leaf: int) -> tuple[str, Any]:
    """'argument k' or "keyword argument 'name'" holding flat leaf ``leaf``."""
    start = 0
    named = [(f"argument {k}", a) for k, a in enumerate(args)] + \
        [(f"keyword argument {name!r}", v) for name, v in kwargs.items()]
    for label, value in named:
        n = len(tree_flatten(value)[0])
        if start <= leaf < start + n:
            return label, value
        start += n
    return f"argument {leaf}", None


