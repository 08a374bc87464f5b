"""Spatial arguments shared by pooling and convolution: per-axis sizes,
padding (numbers, pairs or ``'same'``), and constant padding of a dlarray."""

from __future__ import annotations

import math

import numpy as np

from .. import functions as F
from ..array import dlarray

__all__ = ["spatial_axes", "per_axis", "padding_pairs", "pad_constant"]


def spatial_axes(X, where: str, channels: bool = False) -> list[int]:
    """The axes of X's spatial ('S') dimensions; X must be formatted with
    them (and, with ``channels``, with one 'C' dimension)."""
    if not isinstance(X, dlarray):
        raise TypeError(f"{where}: X must be a formatted dlarray, e.g. 'SSCB'; got {type(X).__name__}")
    fmt = X._fmt
    if not fmt or "S" not in fmt or (channels and fmt.count("C") != 1):
        need = "spatial ('S') and channel ('C') dimensions" if channels else "spatial ('S') dimensions"
        raise ValueError(f"{where}: X must be a formatted dlarray with {need}, e.g. 'SSCB'; "
                         f"got {type(X).__name__} with fmt {fmt!r}")
    return [k for k, c in enumerate(fmt) if c == "S"]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def per_axis(value, n: int, name: str, where: str) -> tuple[int, ...]:
    """One int per spatial dimension: a float or string is a TypeError (no
    silent truncation), the wrong count a ValueError."""
    words = f"an int or {n} ints (one per spatial dimension)"
    if _is_int(value):
        return (int(value),) * n
    if not isinstance(value, (tuple, list, np.ndarray)) or not all(_is_int(v) for v in value):
        raise TypeError(f"{where}: {name} must be {words}, got {value!r} ({type(value).__name__})")
    if len(value) != n:
        raise ValueError(f"{where}: {name} must be {words}, got {tuple(int(v) for v in value)}")
    return tuple(int(v) for v in value)


_PADDING_FORMS = "'same', an int, one int per spatial dimension, or one (before, after) pair per spatial dimension"


def padding_pairs(padding, sizes, pool, stride, where: str) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis from MATLAB's forms: ``'same'``
    (output size ``ceil(size / stride)`` for a window of ``pool``), an int for
    every edge, one int per spatial dimension (both of its edges, MATLAB's
    ``[a b]``), or one ``(before, after)`` pair per spatial dimension.

    Example:
        >>> padding_pairs((1, 2), [5, 5], [3, 3], [1, 1], "dlconv")
        [(1, 1), (2, 2)]
    """
    n = len(sizes)
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"{where}: padding must be {_PADDING_FORMS}, got {padding!r}")
        pads = []
        for size, k, s in zip(sizes, pool, stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))   # the odd one after (bottom, right), as MATLAB
        return pads
    if _is_int(padding):
        pads = [(int(padding), int(padding))] * n
    elif isinstance(padding, (tuple, list, np.ndarray)) and len(padding) and all(_is_int(p) for p in padding):
        pads = [(int(p), int(p)) for p in padding]          # one int per spatial dimension
    else:
        try:
            pads = [(a, b) for a, b in padding]
        except (TypeError, ValueError):
            pads = None
        if pads is None or not all(_is_int(a) and _is_int(b) for a, b in pads):
            # a float is a TypeError: it would be truncated silently
            raise TypeError(f"{where}: padding must be {_PADDING_FORMS} (ints), got {padding!r}") from None
        pads = [(int(a), int(b)) for a, b in pads]
    if len(pads) != n or any(a < 0 or b < 0 for a, b in pads):
        raise ValueError(f"{where}: padding must be non-negative, one int or (before, after) pair per spatial "
                         f"dimension ({n}), got {padding!r}")
    return pads


def pad_constant(X, axes, pads, value: float):
    for axis, (before, after) in zip(axes, pads):
        parts = []
        for width in (before, None, after):
            if width is None:
                parts.append(X)
            elif width:
                shape = list(X.shape)
                shape[axis] = width
                parts.append(np.full(shape, value, dtype=X.dtype))
        if len(parts) > 1:
            fmt = X._fmt
            X = F.concatenate(parts, axis)
            X._fmt = fmt
    return X
