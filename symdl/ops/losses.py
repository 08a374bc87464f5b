"""Losses with MATLAB's semantics, and one-hot encoding.

``crossentropy``, ``mse`` (half mean squared error), ``l1loss``, ``l2loss``
and ``huber`` sum over every element and divide by the number of
observations (the size of the ``'B'`` dimension; MATLAB's
``NormalizationFactor='batch-size'``), or as ``normalization`` says:
``'all-elements'`` (the number of elements) or ``'none'``.  The result is a
scalar dlarray.  ``crossentropy`` of a ``softmax`` output works from the
logits (log-softmax), so it stays finite for logits of any size.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..array import dlarray
from ..formats import check_fmt
from .activations import axis_of, shifted_by_max, softmax_logits
from ..np.sorting import argmax as np_argmax
from .args import choice, describe, numeric, real_number

__all__ = ["crossentropy", "mse", "l1loss", "l2loss", "huber", "onehotencode", "onehotdecode"]

_NORMALIZATIONS = ("batch-size", "all-elements", "none")


def _pair(Y, T, normalization: str, where: str) -> tuple[dlarray, dlarray]:
    """Predictions and targets of the same shape (and format, when both
    have one); nothing is broadcast."""
    if not isinstance(Y, dlarray):
        raise TypeError(f"{where}: Y must be a dlarray (the predictions), got {describe(Y)}")
    choice(normalization, _NORMALIZATIONS, "normalization", where)
    T = numeric(T, "targets", where)
    if T.shape != Y.shape:
        raise ValueError(f"{where}: targets must have the shape of Y, {Y.shape}, got {T.shape} "
                         "(nothing is broadcast)")
    if not isinstance(T, dlarray):
        # data, so in Y's dtype (a float64 numpy target keeps a float32 loss float32);
        # Y's labels are in canonical order already: no permutation
        T = dlarray(T.astype(Y.dtype, copy=False), Y._fmt or None)
    if Y._fmt and T._fmt and T._fmt != Y._fmt:
        raise ValueError(f"{where}: targets must have the format of Y, {Y._fmt!r}, got {T._fmt!r}")
    return Y, T


def _normalize(total: dlarray, Y: dlarray, normalization: str, where: str) -> dlarray:
    if normalization == "none":
        return total
    if normalization == "all-elements":
        return total / float(max(Y.size, 1))
    if not Y._fmt:
        raise ValueError(f"{where}: Y has no format, so its observations are unknown: give Y a format with 'B' "
                         "(e.g. 'CB') or normalization='all-elements' or 'none'")
    n = int(np.prod([d for d, c in zip(Y.shape, Y._fmt) if c == "B"], dtype=np.int64)) if "B" in Y._fmt else 1
    return total / float(max(n, 1))


def _scalar(x: dlarray) -> dlarray:
    x = F.reshape(x, ())
    x._fmt = None
    return x


def crossentropy(Y, targets, normalization: str = "batch-size"):
    """Cross-entropy ``-sum(T log Y) / N`` of probabilities ``Y`` (over the
    channel dimension) and targets ``T`` (one-hot or probabilities), N the
    number of observations.  Of ``softmax(X)`` it is computed from ``X``.

    Example:
        >>> import numpy as np, symdl
        >>> Y = symdl.dlarray(np.array([[0.8, 0.3], [0.2, 0.7]]), "CB")
        >>> T = symdl.dlarray(np.array([[1.0, 0.0], [0.0, 1.0]]), "CB")
        >>> round(float(symdl.crossentropy(Y, T)), 6)   # -(log 0.8 + log 0.7) / 2
        0.289909
    """
    Y, T = _pair(Y, targets, normalization, "crossentropy")
    source = softmax_logits(Y)
    if source is not None:  # log-softmax of the logits: finite where Y underflowed to 0
        logits, axis = source
        shifted = shifted_by_max(logits, axis)
        log_y = shifted - F.log(F.sum(F.exp(shifted), axis, keepdims=True))
    else:
        log_y = F.log(Y)
    # T log Y is 0 where T is 0, also where Y is 0 there (0 * -inf would be NaN)
    terms = F.where(T == 0.0, 0.0, T * log_y)
    return _scalar(_normalize(-F.sum(terms), Y, normalization, "crossentropy"))


def mse(Y, targets, normalization: str = "batch-size"):
    """Half mean squared error ``sum((Y - T)^2) / (2 N)`` (MATLAB's ``mse``).

    Example:
        >>> import numpy as np, symdl
        >>> Y = symdl.dlarray(np.array([[1.0, 2.0]]), "CB")
        >>> float(symdl.mse(Y, np.array([[0.0, 0.0]])))   # (1 + 4) / (2 * 2)
        1.25
    """
    Y, T = _pair(Y, targets, normalization, "mse")
    d = Y - T
    return _scalar(_normalize(F.sum(d * d) * 0.5, Y, normalization, "mse"))


def l2loss(Y, targets, normalization: str = "batch-size"):
    """``sum((Y - T)^2) / N``.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.l2loss(symdl.dlarray(np.array([[1.0, 2.0]]), "CB"), np.zeros((1, 2))))
        2.5
    """
    Y, T = _pair(Y, targets, normalization, "l2loss")
    d = Y - T
    return _scalar(_normalize(F.sum(d * d), Y, normalization, "l2loss"))


def l1loss(Y, targets, normalization: str = "batch-size"):
    """``sum(|Y - T|) / N``.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.l1loss(symdl.dlarray(np.array([[1.0, -2.0]]), "CB"), np.zeros((1, 2))))
        1.5
    """
    Y, T = _pair(Y, targets, normalization, "l1loss")
    return _scalar(_normalize(F.sum(F.abs(Y - T)), Y, normalization, "l1loss"))


def huber(Y, targets, transition_point: float = 1.0, normalization: str = "batch-size"):
    """Huber loss: ``d^2 / 2`` where ``|d| <= delta``, ``delta (|d| - delta/2)``
    beyond (``d = Y - T``, ``delta = transition_point``), summed and divided by N.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.huber(symdl.dlarray(np.array([[0.5, 3.0]]), "CB"), np.zeros((1, 2))))   # (0.125 + 2.5) / 2
        1.3125
    """
    Y, T = _pair(Y, targets, normalization, "huber")
    delta = real_number(transition_point, "transition_point", "huber", "positive")
    d = Y - T
    a = F.abs(d)
    per = F.where(a <= delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    return _scalar(_normalize(F.sum(per), Y, normalization, "huber"))


def onehotencode(labels, classes=None, fmt: str = "CB", dtype: str = "float64"):
    """One-hot encoding of a 1-D array of class labels (ints or strings):
    a ``len(classes) x N`` dlarray labelled ``fmt`` (channels first).
    ``classes`` defaults to the sorted distinct labels.

    Example:
        >>> import symdl
        >>> symdl.onehotencode(["cat", "dog", "cat"])
        dlarray([[1., 0., 1.],
                 [0., 1., 0.]], fmt='CB')
    """
    where = "onehotencode"
    if isinstance(fmt, str):
        try:
            fmt = check_fmt(fmt, 2)
        except ValueError as e:
            raise ValueError(f"{where}: fmt must be two labels, one of them 'C', e.g. 'CB'; {e}") from None
    if not isinstance(fmt, str) or "C" not in fmt:
        raise (TypeError if not isinstance(fmt, str) else ValueError)(
            f"{where}: fmt must be two labels, one of them 'C', e.g. 'CB'; got {fmt!r} ({type(fmt).__name__})")
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind not in (np.float32, np.float64):
        raise ValueError(f"{where}: dtype must be 'float32' or 'float64', got {dtype!r}")
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"onehotencode: labels must be a 1-D array of class labels, got shape {labels.shape}")
    classes = np.unique(labels) if classes is None else np.asarray(classes)
    if classes.ndim != 1 or len(np.unique(classes)) != len(classes):
        raise ValueError(f"onehotencode: classes must be distinct labels in a 1-D array, got {classes!r}")
    index = {c.item() if hasattr(c, "item") else c: k for k, c in enumerate(classes)}
    unknown = sorted({lab.item() if hasattr(lab, "item") else lab for lab in labels} - set(index), key=str)
    if unknown:
        raise ValueError(f"onehotencode: labels {unknown[:5]} are not among the classes {list(index)[:10]}")
    out = np.zeros((len(classes), len(labels)), dtype=kind)
    out[[index[lab.item() if hasattr(lab, "item") else lab] for lab in labels], np.arange(len(labels))] = 1
    # classes along the 'C' label wherever fmt puts it ('BC' too); dlarray
    # then permutes to the canonical order
    return dlarray(out if fmt[0] == "C" else out.T, fmt)


def onehotdecode(Y, classes, dim="C"):
    """The class of largest value along ``dim`` (a label letter or an axis)
    for each observation: an array of labels of ``classes``' kind.

    Example:
        >>> import numpy as np, symdl
        >>> Y = symdl.dlarray(np.array([[0.9, 0.2], [0.1, 0.8]]), "CB")
        >>> symdl.onehotdecode(Y, ["cat", "dog"])
        array(['cat', 'dog'], dtype='<U3')
    """
    Y = numeric(Y, "Y", "onehotdecode")
    values = Y._value if isinstance(Y, dlarray) else Y
    axis = axis_of(Y if isinstance(Y, dlarray) else dlarray(Y), dim, "dim", "onehotdecode", "Y")
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) != values.shape[axis]:
        raise ValueError(f"onehotdecode: classes must list one label per entry of dimension {dim!r} "
                         f"({values.shape[axis]}), got {len(np.atleast_1d(classes))}")
    if isinstance(Y, dlarray):
        # symdl's argmax: on a traced Y the winning classes are a guard of the trace, so a
        # compiled trace never answers another input with this call's labels
        return classes[np_argmax(Y, axis=axis)]
    return classes[np.argmax(values, axis=axis)]
