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
    fmt = X._fmt if isinstance(X, dlarray) else None
    if not fmt or "S" not in fmt or (channels and fmt.count("C") != 1):
        need = "spatial ('S') and channel ('C') dimensions" if channels else "spatial ('S') dimensions"
        raise ValueError(f"{where}: X must be a formatted dlarray with {need}, e.g. 'SSCB'; "
                         f"got {type(X).__name__} with fmt {fmt!r}")
    return [k for k, c in enumerate(fmt) if c == "S"]


def per_axis(value, n: int, name: str, where: str) -> tuple[int, ...]:
    values = (value,) * n if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else tuple(value)
    if len(values) != n or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{where}: {name} must be an int or {n} ints (one per spatial dimension), got {value!r}")
    return tuple(int(v) for v in values)


def padding_pairs(padding, sizes, pool, stride, where: str) -> list[tuple[int, int]]:
    n = len(sizes)
    if isinstance(padding, str):
        if padding != "same":
            raise ValueError(f"{where}: padding must be 'same', an int, or one (before, after) pair per "
                             f"spatial dimension, got {padding!r}")
        pads = []
        for size, k, s in zip(sizes, pool, stride):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))   # the odd one after (bottom, right), as MATLAB
        return pads
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        pads = [(int(padding), int(padding))] * n
    else:
        try:
            pads = [(int(a), int(b)) for a, b in padding]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: padding must be 'same', an int, or one (before, after) pair per "
                             f"spatial dimension, got {padding!r}") from None
    if len(pads) != n or any(a < 0 or b < 0 for a, b in pads):
        raise ValueError(f"{where}: padding must be non-negative, one (before, after) pair per spatial "
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
