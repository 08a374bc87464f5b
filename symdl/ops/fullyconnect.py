"""fullyconnect: ``weights @ X + bias`` over the channels of every
observation (and time step), as MATLAB's."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..array import dlarray
from .args import as_dlarray, formatted

__all__ = ["fullyconnect"]


def fullyconnect(X, weights, bias):
    """Fully connected operation: every observation's non-batch dimensions
    (spatial, channel, ...) flattened in C order into a vector of
    ``InputSize``, then ``weights @ x + bias``.

    ``X`` is formatted (``'CB'``, ``'SSCB'``, ``'CBT'``...); ``weights`` is
    ``OutputSize x InputSize``; ``bias`` is ``(OutputSize,)`` or
    ``(OutputSize, 1)``.  The result is ``'CB'`` (``'CBT'`` when X has a time
    dimension: the same weights at every time step).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "CB")   # 3 channels, 2 observations
        >>> W = np.array([[1.0, 0.0, -1.0]])
        >>> symdl.fullyconnect(X, W, np.array([0.5]))
        dlarray([[-3.5, -3.5]], fmt='CB')
    """
    X = formatted(X, "fullyconnect")
    W = as_dlarray(weights, "weights", "fullyconnect", like=X)
    b = as_dlarray(bias, "bias", "fullyconnect", like=X)
    fmt = X._fmt
    batch = [k for k, c in enumerate(fmt) if c == "B"]
    time = [k for k, c in enumerate(fmt) if c == "T"]
    features = [k for k, c in enumerate(fmt) if c not in "BT"]
    in_size = int(np.prod([X.shape[k] for k in features], dtype=np.int64))
    if W.ndim != 2 or W.shape[1] != in_size:
        raise ValueError(f"fullyconnect: weights must be OutputSize x InputSize with InputSize = {in_size} "
                         f"(the non-batch dimensions of X, shape {X.shape}, fmt {fmt!r}), got shape {W.shape}")
    out_size = W.shape[0]
    if b.shape not in ((out_size,), (out_size, 1)):
        raise ValueError(f"fullyconnect: bias must have shape ({out_size},) or ({out_size}, 1), got {b.shape}")
    n = int(np.prod([X.shape[k] for k in batch], dtype=np.int64))
    t = int(np.prod([X.shape[k] for k in time], dtype=np.int64))
    if features == list(range(len(features))) and batch + time == list(range(len(features), X.ndim)):
        # features first, then batch, then time (MATLAB's canonical order):
        # one product in the result's own layout, (OutputSize, B * T), with
        # no transposed copy of the input or of the result
        x = F.reshape(X, (in_size, n * t))
        y = F.matmul(W, x) + F.reshape(b, (out_size, 1))
        if time:
            return dlarray(F.reshape(y, (out_size, n, t)), "CBT")
        return dlarray(y, "CB")
    # (features..., B, T) -> (T, B, features...) -> (T * B, InputSize)
    x = F.transpose(X, time + batch + features)
    x = F.reshape(x, (t * n, in_size))
    y = F.matmul(x, F.transpose(W, (1, 0))) + F.reshape(b, (1, out_size))     # (T * B, OutputSize)
    if time:
        y = F.transpose(F.reshape(y, (t, n, out_size)), (2, 1, 0))           # C B T
        return dlarray(y, "CBT")
    return dlarray(F.transpose(y, (1, 0)), "CB")
