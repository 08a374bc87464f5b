"""Argument checks shared by the deep-learning operations: each names the
function, the argument, what it expected and what came."""

from __future__ import annotations

from numbers import Real

import numpy as np

from ..array import dlarray

__all__ = ["as_dlarray", "real_number"]


def as_dlarray(value, name: str, where: str) -> dlarray:
    """``value`` as a dlarray (a real numeric array is wrapped)."""
    if isinstance(value, dlarray):
        return value
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{where}: {name} must be a dlarray or a real numeric array, got {type(value).__name__}")
    return dlarray(arr)


def real_number(value, name: str, where: str) -> float:
    """``value`` as a float; bools and non-numbers are a TypeError."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    return float(value)
