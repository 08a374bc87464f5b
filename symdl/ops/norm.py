"""Normalisations with MATLAB's semantics: batchnorm (its three forms),
layernorm, groupnorm, instancenorm, and crosschannelnorm (local response
normalisation).

Each normalises ``X`` over some dimensions with the biased (population)
variance, computed in two passes (``mean((X - mean)^2)``, no cancellation)
with the deviations scaled before they are squared (no overflow), then
applies a per-channel scale and offset.  ``X`` must be formatted with a
``'C'`` dimension; offset and scale hold one value per channel (any shape
with that many elements, e.g. ``(C,)``, ``(C, 1)`` or MATLAB's ``1 x 1 x C``).
"""

from __future__ import annotations

import math

import numpy as np

from .. import functions as F
from ..array import dlarray
from ..core import apply
from .args import flag, formatted, integer, numeric, real_number
from .spatial import pad_constant

__all__ = ["batchnorm", "layernorm", "groupnorm", "instancenorm", "crosschannelnorm"]


def _channel_axis(X, where: str) -> int:
    formatted(X, where, "C", "'SSCB' or 'CB'")      # formats hold at most one 'C'
    return X._fmt.index("C")


def _per_channel(value, X: dlarray, axis: int, name: str, where: str):
    """``value`` (one number per channel) shaped to broadcast along X's channel axis."""
    v = numeric(value, name, where)
    v = v if isinstance(v, dlarray) else dlarray(v.astype(X.dtype, copy=False))
    c = X.shape[axis]
    if v.size != c:
        raise ValueError(f"{where}: {name} must hold one value per channel ({c}), got shape {v.shape}")
    shape = [1] * X.ndim
    shape[axis] = c
    out = F.reshape(v, shape)
    out._fmt = None
    return out


def _normalised(X, axes: tuple[int, ...], epsilon: float):
    """``(X - mean) / sqrt(var + epsilon)`` over ``axes``, with the mean and
    the biased variance.

    The deviations are divided by their largest magnitude ``s`` (at least
    sqrt(epsilon)) before they are squared, so the squares never overflow,
    whatever the size of X: ``u = d / s``, ``Y = u / sqrt(mean(u^2) +
    epsilon / s^2)``.  Y does not change with ``s``, so ``s`` is a constant
    to differentiation (as softmax's shift): the derivatives are exact.
    The variance ``s^2 mean(u^2)`` overflows only where it is not a number
    of the dtype."""
    mean = F.mean(X, axes, keepdims=True)
    d = X - mean
    s = apply("stop_gradient", [F.max(F.abs(d), axes, keepdims=True)])
    s = F.maximum(s, math.sqrt(epsilon)) if epsilon > 0 else F.where(s > 0.0, s, 1.0)
    inv = 1.0 / s                      # per channel (group, ...): a multiply per element, not a divide
    u = d * inv
    m2 = F.mean(u * u, axes, keepdims=True)
    Y = u * (1.0 / F.sqrt(m2 + epsilon * (inv * inv)))
    return Y, mean, m2 * (s * s)


def _labelled(Y, X) -> dlarray:
    Y._fmt = X._fmt
    return Y


def batchnorm(X, offset, scale, running_mean=None, running_var=None, *, training: bool | None = None,
              epsilon: float = 1e-5, mean_decay: float = 0.1, var_decay: float = 0.1):
    """Batch normalisation over every dimension but ``'C'``.

    - ``batchnorm(X, offset, scale)`` returns ``(Y, mean, var)`` of the batch;
    - ``batchnorm(X, offset, scale, running_mean, running_var)`` returns ``Y``
      normalised with the running statistics (inference);
    - with ``training=True`` it normalises with the batch statistics and returns
      ``(Y, new_running_mean, new_running_var)``, each running statistic
      ``decay * batch + (1 - decay) * running``.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0, 3.0], [2.0, 2.0]]), "CB")
        >>> Y, mu, var = symdl.batchnorm(X, np.zeros(2), np.ones(2))
        >>> np.round(symdl.extractdata(Y), 4), symdl.extractdata(mu).ravel(), symdl.extractdata(var).ravel()
        (array([[-1.,  1.],
               [ 0.,  0.]]), array([2., 2.]), array([1., 0.]))
    """
    where = "batchnorm"
    c = _channel_axis(X, where)
    epsilon = real_number(epsilon, "epsilon", where, "non-negative")
    mean_decay = real_number(mean_decay, "mean_decay", where, "[0, 1]")
    var_decay = real_number(var_decay, "var_decay", where, "[0, 1]")
    if training is not None:
        training = flag(training, "training", where)
    offset = _per_channel(offset, X, c, "offset", where)
    scale = _per_channel(scale, X, c, "scale", where)
    axes = tuple(k for k in range(X.ndim) if k != c)
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{where}: give both running_mean and running_var, or neither")
    if running_mean is None:
        if training is False:
            raise ValueError(f"{where}: inference (training=False) needs running_mean and running_var")
        normed, mean, var = _normalised(X, axes, epsilon)
        Y = _labelled(normed * scale + offset, X)
        return Y, _channels(mean, c), _channels(var, c)
    rm = _per_channel(running_mean, X, c, "running_mean", where)
    rv = _per_channel(running_var, X, c, "running_var", where)
    if not training:
        return _labelled((X - rm) / F.sqrt(rv + epsilon) * scale + offset, X)
    normed, mean, var = _normalised(X, axes, epsilon)
    Y = _labelled(normed * scale + offset, X)
    new_mean = _channels(mean * mean_decay + rm * (1.0 - mean_decay), c)
    new_var = _channels(var * var_decay + rv * (1.0 - var_decay), c)
    return Y, new_mean, new_var


def _channels(stat, axis: int):
    """A per-channel statistic as a (C, 1) column (MATLAB's C x 1)."""
    out = F.reshape(stat, (stat.shape[axis], 1))
    out._fmt = None
    return out


def layernorm(X, offset, scale, *, epsilon: float = 1e-5):
    """Layer normalisation of each observation (and time step) over its
    spatial and channel dimensions, then the per-channel scale and offset.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0, 5.0], [3.0, 5.0]]), "CB")
        >>> np.round(symdl.extractdata(symdl.layernorm(X, np.zeros(2), np.ones(2))), 4)
        array([[-1.,  0.],
               [ 1.,  0.]])
    """
    c = _channel_axis(X, "layernorm")
    epsilon = real_number(epsilon, "epsilon", "layernorm", "non-negative")
    axes = tuple(k for k, label in enumerate(X._fmt) if label in "SCU")
    offset = _per_channel(offset, X, c, "offset", "layernorm")
    scale = _per_channel(scale, X, c, "scale", "layernorm")
    normed, _, _ = _normalised(X, axes, epsilon)
    return _labelled(normed * scale + offset, X)


def groupnorm(X, num_groups: int, offset, scale, *, epsilon: float = 1e-5):
    """Group normalisation: the channels in ``num_groups`` groups of equal
    size, each observation normalised over its spatial dimensions and the
    channels of one group; ``num_groups = C`` is instance normalisation, 1 is
    layer normalisation over space and channels.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0], [3.0], [10.0], [30.0]]), "CB")
        >>> np.round(symdl.extractdata(symdl.groupnorm(X, 2, np.zeros(4), np.ones(4))).ravel(), 4)
        array([-1.,  1., -1.,  1.])
    """
    return _groupnorm(X, num_groups, offset, scale, epsilon, "groupnorm")


def _groupnorm(X, num_groups, offset, scale, epsilon, where: str):
    c = _channel_axis(X, where)
    channels = X.shape[c]
    g = integer(num_groups, "num_groups", where)
    if channels % g:
        raise ValueError(f"{where}: num_groups must be a positive divisor of the number of channels ({channels}) of X "
                         f"(shape {X.shape}, fmt {X._fmt!r}), got {g}")
    epsilon = real_number(epsilon, "epsilon", where, "non-negative")
    offset = _per_channel(offset, X, c, "offset", where)
    scale = _per_channel(scale, X, c, "scale", where)
    shape = list(X.shape)
    grouped = F.reshape(X, shape[:c] + [g, channels // g] + shape[c + 1:])   # C -> (groups, per group)
    axes = tuple(k for k, label in enumerate(X._fmt) if label in "SU" and k < c) + (c + 1,) + \
        tuple(k + 1 for k, label in enumerate(X._fmt) if label in "SU" and k > c)
    normed, _, _ = _normalised(grouped, axes, epsilon)
    normed = F.reshape(normed, shape)
    return _labelled(normed * scale + offset, X)


def instancenorm(X, offset, scale, *, epsilon: float = 1e-5):
    """Instance normalisation: each channel of each observation over its
    spatial dimensions (``groupnorm`` with one group per channel).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[[1.0], [2.0]], [[3.0], [6.0]]]), "SCB")   # 2 positions, 2 channels
        >>> np.round(symdl.extractdata(symdl.instancenorm(X, np.zeros(2), np.ones(2))).ravel(), 4)
        array([-1., -1.,  1.,  1.])
    """
    c = _channel_axis(X, "instancenorm")
    return _groupnorm(X, X.shape[c], offset, scale, epsilon, "instancenorm")


def crosschannelnorm(X, window_channel_size: int, *, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
    """Local response normalisation across channels:
    ``X / (k + alpha * ss / window_channel_size) ** beta``, ``ss`` the sum of
    squares over a window of channels around each channel (``(w - 1) // 2``
    before it and the rest after, clipped at the edges).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0], [2.0], [3.0]]), "CB")
        >>> np.round(symdl.extractdata(symdl.crosschannelnorm(X, 3, alpha=1.0, beta=1.0, k=0.0)).ravel(), 4)
        array([0.6   , 0.4286, 0.6923])
    """
    c = _channel_axis(X, "crosschannelnorm")
    w = integer(window_channel_size, "window_channel_size", "crosschannelnorm")
    alpha, beta, k = (real_number(v, n, "crosschannelnorm") for v, n in ((alpha, "alpha"), (beta, "beta"), (k, "k")))
    channels, before = X.shape[c], (int(w) - 1) // 2
    sq = X * X
    ss = None
    after = int(w) - 1 - before
    # channel c + shift contributes to channel c; shifts of a channel count or more reach no channel
    # (a window wider than the channels is fine, and a huge one must not loop for ever)
    for shift in range(-min(before, channels), min(after, channels) + 1):
        lo, hi = max(0, -shift), min(channels, channels - shift)
        if lo >= hi:
            continue
        part = F.take(sq, np.arange(lo + shift, hi + shift), axis=c)
        part = pad_constant(part, [c], [(lo, channels - hi)], 0.0)
        ss = part if ss is None else ss + part
    return _labelled(X / F.power(ss * (float(alpha) / int(w)) + float(k), float(beta)), X)
