"""Shared helpers of the numpy breadth modules: operands as dlarrays, numpy's
ignorable keywords, axis arguments."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import functions as F
from ..core import is_traced
from ..ir.shapes import normalize_axes

__all__ = ["arr", "is_dl", "any_dl", "no_out", "axis_of", "axes_of", "guard_true", "gather_flat", "bool_of",
           "reduce_bool"]


def is_dl(x) -> bool:
    return isinstance(x, F.dlarray)


def any_dl(values) -> bool:
    """Whether a dlarray is among ``values`` (lists and tuples searched)."""
    for v in values:
        if is_dl(v) or isinstance(v, (list, tuple)) and any_dl(v):
            return True
    return False


def arr(x) -> Any:
    """``x`` as a dlarray; lists holding dlarrays are stacked (traced values stay traced)."""
    if is_dl(x):
        return x
    if isinstance(x, (list, tuple)) and any_dl(x):
        return F.stack([arr(v) for v in x])
    return F.dlarray(x)


def no_out(name: str, out=None, **ignored_defaults) -> None:
    """numpy's ``out=`` (dlarrays are immutable) and keywords that only have a
    default here are refused by name unless they hold that default."""
    if out is not None:
        raise TypeError(f"{name}: out= is not supported (dlarrays are immutable); got out={type(out).__name__}")
    for key, (value, default) in ignored_defaults.items():
        if value is not default and value != default:
            raise TypeError(f"{name}: {key}={value!r} is not supported (only {key}={default!r})")


def axis_of(name: str, axis, ndim: int) -> int:
    """One axis (int or a numpy integer), normalised; anything else a TypeError."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: axis must be an integer, got {axis!r}")
    return normalize_axes(name, int(axis), max(ndim, 1) if ndim == 0 else ndim)[0]


def axes_of(name: str, x, axis) -> tuple[int, ...]:
    return F._axes(x, axis, name)


def bool_of(x):
    """``x`` as a bool dlarray (numbers: ``x != 0``, as numpy's truth)."""
    x = arr(x)
    return x if x.dtype == np.bool_ else F.compare("ne", x, 0.0)


def reduce_bool(kind: str, x, axis=None, keepdims: bool = False):
    """numpy's ``any`` / ``all`` as a bool dlarray: a graph node when ``x`` is
    traced (no derivative), so a compiled trace computes it afresh."""
    c = bool_of(x)
    axes = axes_of(kind, c, axis)
    if any(c.shape[a] == 0 for a in axes):  # numpy: any of nothing is False, all of nothing is True
        shape = [1 if i in axes else d for i, d in enumerate(c.shape)] if keepdims else \
            [d for i, d in enumerate(c.shape) if i not in axes]
        return F.dlarray(np.full(shape, kind == "all")).astype(np.float64) > 0.5
    # any: some element true; all: no element false
    hit = c if kind == "any" else F.logical_not(c)
    count = F.max(F.where(hit, 1.0, 0.0), axes, keepdims)
    return F.compare("gt" if kind == "any" else "eq", count, 0.0)


def guard_true(cond) -> None:
    """Python code is about to rely on ``cond`` (a bool dlarray, true where it
    was computed): a compiled trace stays valid only while it stays true."""
    if is_traced(cond):
        reduce_bool("all", cond)._guard()


def gather_flat(x, positions: np.ndarray):
    """``x.ravel()[positions]`` shaped like ``positions`` (differentiable in x)."""
    positions = np.asarray(positions, dtype=np.int64)
    flat = F.reshape(x, (-1,))
    return F.reshape(F.take(flat, positions.reshape(-1), axis=0), positions.shape)
