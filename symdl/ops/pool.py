"""Pooling with MATLAB's semantics: maxpool and avgpool over the spatial
(``'S'``) dimensions of a formatted dlarray, with stride and padding
(numbers or ``'same'``).

Written as a decomposition: one strided slice of the (padded) input per
position in the pooling window, then the maximum or the mean over them, so
derivatives of every order come from the slice and reduction rules.  maxpool
pads with -inf (padding never wins); avgpool pads with 0 and divides by the
window size, as MATLAB's default.  At a tie for the maximum the derivative is
shared equally among the tied elements (MATLAB gives it to one of them).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from .. import functions as F
from ..array import dlarray
from .spatial import pad_constant, padding_pairs, per_axis

__all__ = ["maxpool", "avgpool"]


def _windows(X, pool_size, stride, padding, fill: float, where: str):
    if not isinstance(X, dlarray) or not X._fmt or "S" not in X._fmt:
        raise ValueError(f"{where}: X must be a formatted dlarray with spatial ('S') dimensions, e.g. 'SSCB'; "
                         f"got {type(X).__name__} with fmt {getattr(X, '_fmt', None)!r}")
    axes = [k for k, c in enumerate(X._fmt) if c == "S"]
    sizes = [X.shape[k] for k in axes]
    pool = per_axis(pool_size, len(axes), "pool_size", where)
    stride = per_axis(stride, len(axes), "stride", where)
    if any(v < 1 for v in pool + stride):
        raise ValueError(f"{where}: pool_size and stride must be positive, got {pool_size!r} and {stride!r}")
    pads = padding_pairs(padding, sizes, pool, stride, where)
    padded = [n + a + b for n, (a, b) in zip(sizes, pads)]
    if any(k > n for k, n in zip(pool, padded)):
        raise ValueError(f"{where}: the pool {pool} is larger than the (padded) spatial size {tuple(padded)} "
                         f"of X (shape {X.shape}, fmt {X._fmt!r})")
    out = [(n - k) // s + 1 for n, k, s in zip(padded, pool, stride)]
    Xp = pad_constant(X, axes, pads, fill)
    slices = []
    for offset in itertools.product(*(range(k) for k in pool)):
        index = [slice(None)] * X.ndim
        for axis, o, s, m in zip(axes, offset, stride, out):
            index[axis] = slice(o, o + (m - 1) * s + 1, s)
        slices.append(Xp[tuple(index)])
    return F.stack(slices, axis=0), math.prod(pool)


def maxpool(X, pool_size, stride=1, padding=0):
    """The maximum over each pooling window of the spatial dimensions.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.arange(16.0).reshape(4, 4), "SS")
        >>> symdl.maxpool(X, 2, stride=2)
        dlarray([[ 5.,  7.],
                 [13., 15.]], fmt='SS')
    """
    windows, _ = _windows(X, pool_size, stride, padding, -np.inf, "maxpool")
    out = F.max(windows, axis=0)
    out._fmt = X._fmt
    return out


def avgpool(X, pool_size, stride=1, padding=0):
    """The mean over each pooling window of the spatial dimensions (padding
    counts as zeros in the mean, as MATLAB's default).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.arange(16.0).reshape(4, 4), "SS")
        >>> symdl.avgpool(X, 2, stride=2)
        dlarray([[ 2.5,  4.5],
                 [10.5, 12.5]], fmt='SS')
    """
    windows, count = _windows(X, pool_size, stride, padding, 0.0, "avgpool")
    out = F.sum(windows, axis=0) * (1.0 / count)
    out._fmt = X._fmt
    return out
