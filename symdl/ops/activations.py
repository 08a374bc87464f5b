"""Activations with MATLAB's semantics: relu, leakyrelu, elu, gelu, softmax.

Each is written with symdl's functions, so it works on formatted and
unformatted dlarrays, traced or not, and its derivatives of every order come
from the primitives' rules.  The formulas are the numerically stable ones:
elu evaluates ``expm1`` of ``min(x, 0)`` only (no overflow for large x), and
softmax subtracts the maximum along its dimension (treated as a constant:
softmax does not change with the shift, so the derivative is exact and
skips the maximum's tie rule).
"""

from __future__ import annotations

import math
import numpy as np

from .. import functions as F
from ..array import dlarray, finddim
from ..core import apply
from .args import as_dlarray, choice, real_number

__all__ = ["relu", "leakyrelu", "elu", "gelu", "softmax", "softmax_logits", "shifted_by_max", "axis_of"]


def relu(X):
    """Rectified linear unit ``max(X, 0)`` (derivative 0 at 0, as MATLAB's).

    Example:
        >>> import symdl
        >>> symdl.relu(symdl.dlarray([-1.5, 0.0, 2.0]))
        dlarray([0., 0., 2.])
    """
    return F.maximum(as_dlarray(X, "X", "relu"), 0.0)


def leakyrelu(X, scale: float = 0.01):
    """``X`` where positive, ``scale * X`` elsewhere (MATLAB's default scale 0.01).

    Example:
        >>> import symdl
        >>> symdl.leakyrelu(symdl.dlarray([-2.0, 3.0]), 0.1)
        dlarray([-0.2,  3. ])
    """
    X = as_dlarray(X, "X", "leakyrelu")
    scale = real_number(scale, "scale", "leakyrelu")
    return F.where(X > 0.0, X, X * scale)


def elu(X, alpha: float = 1.0):
    """Exponential linear unit: ``X`` where positive, ``alpha * (exp(X) - 1)``
    elsewhere; ``alpha`` must be positive.

    Example:
        >>> import numpy as np, symdl
        >>> np.round(symdl.extractdata(symdl.elu(symdl.dlarray([-1.0, 2.0]))), 6)
        array([-0.632121,  2.      ])
    """
    X = as_dlarray(X, "X", "elu")
    alpha = real_number(alpha, "alpha", "elu", "positive")
    # expm1 of min(X, 0) only: exact near 0, and no overflow for large X
    return F.maximum(X, 0.0) + F.expm1(F.minimum(X, 0.0)) * alpha


def gelu(X, approximation: str = "none"):
    """Gaussian error linear unit ``X/2 (1 + erf(X/sqrt 2))``; with
    ``approximation='tanh'``, ``X/2 (1 + tanh(sqrt(2/pi) (X + 0.044715 X^3)))``.

    Example:
        >>> import numpy as np, symdl
        >>> np.round(symdl.extractdata(symdl.gelu(symdl.dlarray([-1.0, 1.0]))), 6)
        array([-0.158655,  0.841345])
    """
    X = as_dlarray(X, "X", "gelu")
    choice(approximation, ("none", "tanh"), "approximation", "gelu")
    # erf and tanh are +-1 to the last bit beyond |X| = 40, and their
    # derivatives (x^k exp(-x^2/2) terms) underflow to 0 there: clamping X
    # inside them changes no result, and keeps X^2, X^3 and the derivatives'
    # polynomial factors from overflowing (inf * 0 = NaN) for huge X
    Xc = F.clip(X, -_GELU_CLAMP, _GELU_CLAMP)
    if approximation == "none":
        return X * 0.5 * (F.erf(Xc * (1.0 / math.sqrt(2.0))) + 1.0)
    inner = (Xc + F.power(Xc, 3) * 0.044715) * math.sqrt(2.0 / math.pi)
    return X * 0.5 * (F.tanh(inner) + 1.0)


_GELU_CLAMP = 40.0


def softmax(X, dim=None):
    """Softmax over the channel dimension ``'C'`` of a formatted dlarray (as
    MATLAB), or over axis ``dim`` (an int or a label letter).

    Example:
        >>> import numpy as np, symdl
        >>> Y = symdl.softmax(symdl.dlarray(np.array([[1.0, 0.0], [1.0, 1e4]]), "CB"))
        >>> symdl.extractdata(Y)
        array([[0.5, 0. ],
               [0.5, 1. ]])
    """
    X = as_dlarray(X, "X", "softmax")
    if dim is None:
        if X.fmt is None or "C" not in X.fmt:
            raise ValueError("softmax: X has no 'C' (channel) dimension: give it a format with 'C' "
                             f"or the axis as dim= (X has shape {X.shape}, fmt {X.fmt or None!r})")
        dim = "C"
    axis = axis_of(X, dim, "dim", "softmax")
    e = F.exp(shifted_by_max(X, axis))
    out = e / F.sum(e, axis, keepdims=True)
    # an alias of the result that says where it came from: crossentropy of a
    # softmax output works from the logits (log-softmax); the replay of
    # dlgradient follows the alias as any other
    return dlarray._wrap(out._value, out._node, out._trace, X._fmt, ("alias", out, ("softmax", X, axis)))


def axis_of(X, dim, name: str, where: str, array: str = "X") -> int:
    """The one axis of X that ``dim`` names: an int in ``-ndim..ndim-1`` or a
    label letter that X's format holds exactly once."""
    if isinstance(dim, str):
        if len(dim) != 1 or dim.upper() not in "SCBTU":
            raise ValueError(f"{where}: {name} must be an axis or one label letter of 'SCBTU', got {dim!r}")
        axes = finddim(X, dim.upper()) if X._fmt else []
        if len(axes) != 1:
            raise ValueError(f"{where}: {name} {dim!r} must name exactly one dimension of {array} "
                             f"(shape {X.shape}, fmt {X._fmt or None!r})")
        return axes[0]
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an int axis or a label letter, got {dim!r} ({type(dim).__name__})")
    if not -X.ndim <= dim < X.ndim:
        raise ValueError(f"{where}: {name} must be an axis of {array} (0..{X.ndim - 1}; {array} has shape "
                         f"{X.shape}), got {dim}")
    return int(dim) % X.ndim


def softmax_logits(Y) -> tuple | None:
    """``(logits, axis)`` when ``Y`` is the output of :func:`softmax`, else None."""
    origin = Y._origin if isinstance(Y, dlarray) else None
    if origin is not None and origin[0] == "alias" and len(origin) > 2 and origin[2][0] == "softmax":
        return origin[2][1:]
    return None


def shifted_by_max(X, axis: int):
    """``X - max(X)`` along ``axis``, the maximum a constant to differentiation
    (softmax and log-softmax do not change with the shift, so their
    derivatives are exact, and the maximum's tie rule is never involved)."""
    return X - apply("stop_gradient", [F.max(X, axis, keepdims=True)])
