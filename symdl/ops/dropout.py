"""dropout: zero each element with probability ``p`` and scale the others by
``1 / (1 - p)``, with fresh random numbers on every call (compiled code
included: the draw is part of the trace, as ``symdl.rand``)."""

from __future__ import annotations

from .. import functions as F
from ..array import dlarray
from ..random import rand
from .args import describe, real_number

__all__ = ["dropout"]


def dropout(X, probability: float = 0.5):
    """Inverted dropout: ``X / (1 - p)`` where a uniform draw is at least
    ``p``, 0 elsewhere, so the expected value is ``X``.  The derivative is the
    same mask, scaled.  ``probability=0`` returns ``X``.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.seed(1)
        >>> Y = symdl.dropout(symdl.dlarray(np.ones(10000)), 0.25)
        >>> np.unique(symdl.extractdata(Y)).round(6)
        array([0.      , 1.333333])
        >>> abs(float(symdl.mean(Y)) - 1.0) < 0.03
        True
    """
    p = real_number(probability, "probability", "dropout", "[0, 1)")
    if not isinstance(X, dlarray):
        raise TypeError(f"dropout: X must be a dlarray, got {describe(X)}")
    if p == 0.0:
        return X
    keep = rand(X.shape, like=X) >= p
    out = F.where(keep, X * (1.0 / (1.0 - p)), 0.0)
    out._fmt = X._fmt
    return out
