"""embed: word indices -> vectors, the columns of an embedding matrix (a
gather, whose derivative in the weights is a scatter-add; derivatives of
every order, where MATLAB's embed stops at the first)."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..array import dlarray
from ..core import apply, is_traced
from .args import numeric

__all__ = ["embed"]


def embed(X, weights):
    """The embedding of each word index in ``X``: column ``X[...]`` of
    ``weights`` (``EmbeddingDimension x NumWords``).  Indices are 0-based,
    as everywhere in symdl (MATLAB's are 1-based).

    ``X`` holds integer indices, formatted with ``'B'`` (and ``'T'``; a
    singleton ``'C'`` is allowed), or a plain integer array read as ``'BT'``
    when 2-D and ``'B'`` when 1-D.  The result is ``'CB'`` or ``'CBT'``, with
    ``C`` the embedding dimension.

    Example:
        >>> import numpy as np, symdl
        >>> W = np.array([[0.0, 10.0, 20.0], [1.0, 11.0, 21.0]])   # 2-D vectors of 3 words
        >>> symdl.embed(np.array([2, 0]), W)
        dlarray([[20.,  0.],
                 [21.,  1.]], fmt='CB')
    """
    if isinstance(X, dlarray):
        fmt, values = X._fmt, X._value
    else:
        values = numeric(X, "X", "embed")
        fmt = {1: "B", 2: "BT"}.get(values.ndim)
    if not fmt or "B" not in fmt or any(c not in "CBT" for c in fmt) or \
            ("C" in fmt and values.shape[fmt.index("C")] != 1):
        raise ValueError(f"embed: X must hold word indices with a 'B' dimension (and 'T'; 'C' of size 1), "
                         f"got shape {values.shape} with fmt {fmt!r}")
    if values.dtype.kind not in "iuf":
        raise ValueError(f"embed: X must hold integer word indices, got dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        bad = values[values != np.round(values)].ravel()[0]
        raise ValueError(f"embed: X must hold integer word indices, got the non-integer value {float(bad)!r}")
    W = numeric(weights, "weights", "embed")
    W = W if isinstance(W, dlarray) else dlarray(W.astype(float, copy=False) if W.dtype.kind in "biu" else W)
    if W.ndim != 2:
        raise ValueError(f"embed: weights must be EmbeddingDimension x NumWords, got shape {W.shape}")
    idx = values.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= W.shape[1]):
        raise ValueError(f"embed: word indices must be in 0..{W.shape[1] - 1} (0-based; the weights hold "
                         f"{W.shape[1]} words), got {int(idx.min())}..{int(idx.max())}")
    batch = values.shape[fmt.index("B")]
    steps = values.shape[fmt.index("T")] if "T" in fmt else 1
    order = [fmt.index("B")] + ([fmt.index("T")] if "T" in fmt else [])
    perm = order + [k for k in range(idx.ndim) if k not in order]   # B-major, then T
    if is_traced(X):
        # Indices that are data of the trace (a dlaccelerate argument, say)
        # are gathered with at run time: reading their values here would
        # freeze them into a compiled trace.  A negative or fractional index
        # becomes NumWords, so the run-time bounds check refuses it (as the
        # check above does now) instead of wrapping or truncating it.
        Xf = X if X.dtype.kind == "f" else F.astype(X, "float64")
        bad = F.logical_or(F.compare("lt", Xf, 0.0), F.compare("ne", Xf, F.floor(Xf)))
        safe = F.where(bad, float(W.shape[1]), Xf)
        flat_idx = F.reshape(F.transpose(apply("convert", [safe], dtype="int64"), perm), (-1,))
        cols = apply("take", [W, flat_idx], axis=1)                 # D x (B * T)
    else:
        cols = F.take(W, np.transpose(idx, perm).reshape(-1), axis=1)
    Y = F.reshape(cols, (W.shape[0], batch, steps))
    return dlarray(Y, "CBT") if "T" in fmt else dlarray(F.reshape(Y, (W.shape[0], batch)), "CB")
