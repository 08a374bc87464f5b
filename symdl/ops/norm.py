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


def _normalised(X, axes: tuple[int, ...], epsilon: float, where: str):
    """``(X - mean) / sqrt(var + epsilon)`` over ``axes``, with the mean and
    the biased variance.

    The deviations are divided by their largest magnitude ``s`` (at least
    sqrt(epsilon)) before they are squared, so the squares never overflow,
    whatever the size of X: ``u = d / s``, ``Y = u / sqrt(mean(u^2) +
    epsilon / s^2)``.  Y does not change with ``s``, so ``s`` is a constant
    to differentiation (as softmax's shift): the derivatives are exact.
    The variance ``s^2 mean(u^2)`` overflows only where it is not a number
    of the dtype."""
    if any(X.shape[a] == 0 for a in axes):
        raise ValueError(f"{where}: the dimensions normalised over must not be empty (no statistics of no "
                         f"elements), got X of shape {X.shape}")
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
        normed, mean, var = _normalised(X, axes, epsilon, where)
        Y = _labelled(normed * scale + offset, X)
        return Y, _channels(mean, c), _channels(var, c)
    rm = _per_channel(running_mean, X, c, "running_mean", where)
    rv = _per_channel(running_var, X, c, "running_var", where)
    if not training:
        return _labelled((X - rm) / F.sqrt(rv + epsilon) * scale + offset, X)
    normed, mean, var = _normalised(X, axes, epsilon, where)
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
    normed, _, _ = _normalised(X, axes, epsilon, "layernorm")
    return _labelled(normed * scale + offset, X)


def groupnorm(X, num_groups: int, offset, scale, *, epsilon: float = 1e-5):
    """Group normalisation: the channels in ``num_groups`` groups of equal
    size, each observation normalised over the channels of one group and its
    spatial, time and unspecified (``'S'``, ``'T'``, ``'U'``) dimensions, as
    MATLAB's; ``num_groups = C`` is instance normalisation, 1 normalises over
    all of them.

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
    # MATLAB's: over the group's channels and the 'S', 'T' and 'U' dimensions of each observation
    axes = tuple(k for k, label in enumerate(X._fmt) if label in "STU" and k < c) + (c + 1,) + \
        tuple(k + 1 for k, label in enumerate(X._fmt) if label in "STU" and k > c)
    normed, _, _ = _normalised(grouped, axes, epsilon, where)
    normed = F.reshape(normed, shape)
    return _labelled(normed * scale + offset, X)


def instancenorm(X, offset, scale, *, epsilon: float = 1e-5):
    """Instance normalisation: each channel of each observation over its
    spatial, time and unspecified dimensions, as MATLAB's (``groupnorm`` with
    one group per channel).

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
    alpha, beta, k, w = float(alpha), float(beta), float(k), int(w)
    if alpha == 0.0:     # k ** beta as numpy's power gives it (0 for k = 0, NaN for k < 0 and fractional beta)
        with np.errstate(all="ignore"):
            return _labelled(X / float(np.power(np.float64(k), beta)), X)
    # The formula as written where no square in the window can overflow (the
    # values of MATLAB's definition, rounding for rounding).  Beyond that (and,
    # when k = 0, wherever a window is not all zeros, since squares of tiny
    # values underflow to a zero denominator) with m the window's largest |x|
    # and S the window's sum of (x / m)^2 (at least 1):
    #     log(k + a ss) = b + log1p(k exp(-b)),  b = log(a) + 2 log(m) + log(S)
    #     Z = (X / m) exp(log(m) - beta log(k + a ss)),
    # exact for every m > 0, so m is held constant for derivatives (exact at
    # every order).  Each branch sees inputs that keep it finite where it is
    # not taken, so it passes no NaN to the gradients (docs/ieee.md).
    a = alpha / w
    limit = 2.0 ** 50 if X.dtype == np.float32 else 2.0 ** 450
    magnitude = apply("stop_gradient", [F.abs(X)])
    m = _across_window(magnitude, c, w, lambda part: part, F.maximum)
    scaled_at = m > limit if k != 0.0 else m > 0.0
    plain_X = F.where(magnitude > limit, 1.0, X)
    plain = X / F.power(_across_window(plain_X, c, w, lambda part: part * part, F.add) * a + k, beta)
    m = F.where(scaled_at, m, 1.0)
    S = F.where(scaled_at, _across_window(X, c, w, lambda part: (part / m) ** 2, F.add), 1.0)
    b = F.log(S) + F.log(m) * 2.0 + math.log(a)
    # (k = 0: no k term; else b is large here, as m is, and exp(-b) finite)
    log_denominator = b if k == 0.0 else b + F.log1p(F.exp(-b) * k)
    scaled = X / m * F.exp(F.log(m) - log_denominator * beta)
    return _labelled(F.where(scaled_at, scaled, plain), X)


def _across_window(X, c: int, w: int, term, combine):
    """``combine`` over each channel's window of ``term(part)``, ``part`` the
    input shifted so that channel c + shift sits at channel c (zeros where it
    falls outside): ``(w - 1) // 2`` channels before each channel and the rest
    after, clipped at the edges.  Shifts of a channel count or more reach no
    channel (a window wider than the channels is fine, and a huge one must not
    loop for ever)."""
    channels, before = X.shape[c], (w - 1) // 2
    total = None
    for shift in range(-min(before, channels), min(w - 1 - before, channels) + 1):
        lo, hi = max(0, -shift), min(channels, channels - shift)
        if lo >= hi:
            continue
        part = pad_constant(F.take(X, np.arange(lo + shift, hi + shift), axis=c), [c], [(lo, channels - hi)], 0.0)
        value = term(part)
        total = value if total is None else combine(total, value)
    return total
