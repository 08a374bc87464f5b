"""Argument checks shared by the deep-learning operations and optimisers:
each names the function, the argument, what it expected and what came.

Wrong kinds of value (a string for an array, a float for a count) are a
``TypeError``; values of the right kind that are out of range or of the
wrong shape are a ``ValueError`` (SPEC §7)."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

from ..array import dlarray

__all__ = ["as_dlarray", "numeric", "real_number", "integer", "flag", "choice", "formatted", "describe"]


def describe(value) -> str:
    """What came, for a message: the type, and the dtype of an array."""
    if isinstance(value, (np.ndarray, dlarray)):
        return f"{type(value).__name__} of dtype {value.dtype} and shape {value.shape}"
    return type(value).__name__


def numeric(value, name: str, where: str) -> np.ndarray | dlarray:
    """``value`` itself when a dlarray, else as a real numeric numpy array
    (bool, integer or float; anything else is a TypeError)."""
    if isinstance(value, dlarray):
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):   # ragged nesting
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        got = describe(value)
        if arr is not None and arr.dtype.kind == "c" and not isinstance(value, np.ndarray):
            got += " of complex numbers"
        raise TypeError(f"{where}: {name} must be a dlarray or a real numeric array, got {got}")
    return arr


def as_dlarray(value, name: str, where: str, like: dlarray | None = None) -> dlarray:
    """``value`` as a dlarray (a real numeric array is wrapped; with ``like``,
    in its dtype: numpy data does not turn a float32 computation into float64)."""
    value = numeric(value, name, where)
    if isinstance(value, dlarray):
        return value
    return dlarray(value if like is None else value.astype(like.dtype, copy=False))


def formatted(X, where: str, need: str = "", example: str = "'CB' or 'SSCB'") -> dlarray:
    """X must be a dlarray (else TypeError) with a format holding the labels
    ``need`` (else ValueError); returns X."""
    if not isinstance(X, dlarray):
        raise TypeError(f"{where}: X must be a formatted dlarray (e.g. {example}), got {describe(X)}")
    fmt = X._fmt
    if not fmt or any(label not in fmt for label in need):
        what = " and ".join(f"one '{label}' dimension" for label in need) if need else "dimension labels"
        raise ValueError(f"{where}: X must be a formatted dlarray with {what} (e.g. {example}); "
                         f"got shape {X.shape} with fmt {fmt or None!r}")
    return X


# ranges of hyper-parameters: the words for the message, and the test
_RANGES = {
    "finite": ("a finite real number", lambda v: math.isfinite(v)),
    "positive": ("a positive finite number", lambda v: math.isfinite(v) and v > 0),
    "non-negative": ("a non-negative finite number", lambda v: math.isfinite(v) and v >= 0),
    "[0, 1]": ("a number in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "[0, 1)": ("a number in [0, 1)", lambda v: 0.0 <= v < 1.0),
}


def real_number(value, name: str, where: str, kind: str = "finite") -> float:
    """``value`` as a float: bools and non-numbers are a TypeError, numbers
    outside ``kind`` (a key of the ranges above; NaN never passes) a ValueError."""
    words, ok = _RANGES[kind]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be {words}, got {value!r} ({type(value).__name__})")
    if not ok(float(value)):
        raise ValueError(f"{where}: {name} must be {words}, got {float(value)!r}")
    return float(value)


def integer(value, name: str, where: str, low: int = 1) -> int:
    """``value`` as an int of at least ``low``: a float or bool is a TypeError
    (no silent truncation), a smaller int a ValueError."""
    words = "a positive integer" if low == 1 else f"an integer >= {low}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{where}: {name} must be {words}, got {value!r} ({type(value).__name__})")
    if value < low:
        raise ValueError(f"{where}: {name} must be {words}, got {int(value)}")
    return int(value)


def flag(value, name: str, where: str) -> bool:
    """A bool (numpy's too); anything else is a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def choice(value, options: tuple[str, ...], name: str, where: str) -> str:
    """One of the strings ``options``: another string is a ValueError, a
    non-string a TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: {name} must be one of {options}, got {value!r} ({type(value).__name__})")
    if value not in options:
        raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
    return value
