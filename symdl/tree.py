"""Flattening nested containers ("pytrees"): tuples, lists, dicts, namedtuples,
dataclasses, and any type registered with :func:`register_container`."""

from __future__ import annotations

import dataclasses
from typing import Any
from collections.abc import Callable

__all__ = ["tree_flatten", "tree_unflatten", "tree_map", "register_container", "Treedef", "flatten_call",
           "register_flat_leaf", "describe",
           "registry_version"]

_REGISTRY: dict[type, tuple[Callable, Callable]] = {}
# Bumped by every registration: code that checked a structure against the
# registry (symdl.compiler.fastcall's matchers) is valid for one version only.
_VERSION = [0]


def registry_version() -> int:
    """The current version of the container registry (see ``_VERSION``)."""
    return _VERSION[0]


def register_container(cls: type, flatten: Callable[[Any], tuple[list, Any]],
                       unflatten: Callable[[Any, list], Any]) -> None:
    """Teach symdl to look inside ``cls``: ``flatten(obj) -> (children, aux)``,
    ``unflatten(aux, children) -> obj``."""
    _REGISTRY[cls] = (flatten, unflatten)
    _VERSION[0] += 1


class Treedef:
    """The structure of a flattened container (leaves replaced by slots)."""

    __slots__ = ("kind", "aux", "children", "_hash")

    def __init__(self, kind, aux, children):
        self.kind, self.aux, self.children = kind, aux, children
        self._hash = hash((kind, _hashable(aux), children))

    def __eq__(self, other):
        return self is other or isinstance(other, Treedef) and self._hash == other._hash and \
            (self.kind, self.aux, self.children) == (other.kind, other.aux, other.children)

    def __hash__(self):
        return self._hash

    def __getstate__(self):
        return (self.kind, self.aux, self.children)

    def __setstate__(self, state):
        self.__init__(*state)

    def __repr__(self):
        return f"Treedef({self.kind}, {self.aux!r}, {self.children!r})"


def _hashable(aux):
    try:
        hash(aux)
        return aux
    except TypeError:
        return repr(aux)


LEAF = Treedef("leaf", None, ())


def _children(obj):
    t = type(obj)
    if t in _REGISTRY:
        children, aux = _REGISTRY[t][0](obj)
        return ("registered", (t, aux)), list(children)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return ("namedtuple", t), list(obj)
    if t is tuple:
        return ("tuple", None), list(obj)
    if t is list:
        return ("list", None), list(obj)
    if t is dict:
        keys = tuple(obj.keys())
        return ("dict", keys), [obj[k] for k in keys]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = tuple(f.name for f in dataclasses.fields(obj))
        return ("dataclass", (t, names)), [getattr(obj, n) for n in names]
    for base, (flatten, _) in _REGISTRY.items():
        if isinstance(obj, base):
            children, aux = flatten(obj)
            return ("registered", (base, aux)), list(children)
    return None, None


def tree_flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, Treedef]:
    """Leaves in a deterministic order and the structure to rebuild the tree."""
    leaves: list = []

    def walk(obj):
        if is_leaf is not None and is_leaf(obj):
            leaves.append(obj)
            return LEAF
        (kind, children) = _children(obj)
        if kind is None:
            leaves.append(obj)
            return LEAF
        return Treedef(kind[0], kind[1], tuple(walk(c) for c in children))

    return leaves, walk(tree)


def tree_unflatten(treedef: Treedef, leaves: list) -> Any:
    # A module-level helper rather than a nested recursive closure: the closure
    # would form a reference cycle that keeps the results alive until the
    # cyclic garbage collector runs.
    return _build(treedef, iter(leaves))


def _build(td: Treedef, it) -> Any:
    if td.kind == "leaf":
        return next(it)
    children = [_build(c, it) for c in td.children]
    if td.kind == "tuple":
        return tuple(children)
    if td.kind == "list":
        return children
    if td.kind == "dict":
        return dict(zip(td.aux, children))
    if td.kind == "namedtuple":
        return td.aux(*children)
    if td.kind == "dataclass":
        cls, names = td.aux
        obj = object.__new__(cls)
        for n, c in zip(names, children):
            object.__setattr__(obj, n, c)
        return obj
    cls, aux = td.aux
    return _REGISTRY[cls][1](aux, children)


def describe(treedef: Treedef, leaf: str = "x") -> str:
    """A structure written as Python, each leaf as ``leaf`` (for messages).

    Example:
        >>> describe(tree_flatten(((1.0, [2.0, 3.0]), {"k": 4.0}))[1])
        "((x, [x, x]), {'k': x})"
    """
    if treedef.kind == "leaf":
        return leaf
    parts = [describe(c, leaf) for c in treedef.children]
    if treedef.kind == "tuple":
        return f"({parts[0]},)" if len(parts) == 1 else f"({', '.join(parts)})"
    if treedef.kind == "list":
        return f"[{', '.join(parts)}]"
    if treedef.kind == "dict":
        return "{" + ", ".join(f"{k!r}: {p}" for k, p in zip(treedef.aux, parts)) + "}"
    if treedef.kind == "dataclass":
        cls, names = treedef.aux
        return f"{cls.__name__}({', '.join(f'{n}={p}' for n, p in zip(names, parts))})"
    cls = treedef.aux if treedef.kind == "namedtuple" else treedef.aux[0]
    return f"{cls.__name__}({', '.join(parts)})"


def tree_map(fn: Callable[[Any], Any], tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> Any:
    leaves, treedef = tree_flatten(tree, is_leaf)
    return tree_unflatten(treedef, [fn(x) for x in leaves])


_FLAT_TREEDEFS: dict[int, Treedef] = {}
_FLAT_TYPES: set[type] = {float, int}


def register_flat_leaf(cls: type) -> None:
    """Types that are always leaves (so a call with only them skips the walk)."""
    _FLAT_TYPES.add(cls)
    _VERSION[0] += 1


def flatten_call(args: tuple, kwargs: dict) -> tuple[list, Treedef]:
    """``tree_flatten((args, kwargs))``, with a fast path for the common call
    with only positional array/number arguments."""
    if not kwargs and all(type(a) in _FLAT_TYPES for a in args):
        td = _FLAT_TREEDEFS.get(len(args))
        if td is None:
            td = _FLAT_TREEDEFS[len(args)] = tree_flatten(((0,) * len(args), {}))[1]
        return list(args), td
    return tree_flatten((args, kwargs))
