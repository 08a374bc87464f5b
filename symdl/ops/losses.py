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
from .activations import shifted_by_max, softmax_logits

__all__ = ["crossentropy", "mse", "l1loss", "l2loss", "huber", "onehotencode", "onehotdecode"]

_NORMALIZATIONS = ("batch-size", "all-elements", "none")


def _pair(Y, T, where: str) -> tuple[dlarray, dlarray]:
    if not isinstance(Y, dlarray):
        raise TypeError(f"{where}: Y must be a dlarray, got {type(Y).__name__}")
    T = T if isinstance(T, dlarray) else dlarray(np.asarray(T), Y._fmt)
    if T.shape != Y.shape:
        raise ValueError(f"{where}: targets must have the shape of Y, {Y.shape}, got {T.shape}")
    if Y._fmt and T._fmt and T._fmt != Y._fmt:
        raise ValueError(f"{where}: targets must have the format of Y, {Y._fmt!r}, got {T._fmt!r}")
    return Y, T


def _normalize(total: dlarray, Y: dlarray, normalization: str, where: str) -> dlarray:
    if normalization == "none":
        return total
    if normalization == "all-elements":
        return total / float(max(Y.size, 1))
    if normalization != "batch-size":
        raise ValueError(f"{where}: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
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
    Y, T = _pair(Y, targets, "crossentropy")
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
    Y, T = _pair(Y, targets, "mse")
    d = Y - T
    return _scalar(_normalize(F.sum(d * d) * 0.5, Y, normalization, "mse"))


def l2loss(Y, targets, normalization: str = "batch-size"):
    """``sum((Y - T)^2) / N``.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.l2loss(symdl.dlarray(np.array([[1.0, 2.0]]), "CB"), np.zeros((1, 2))))
        2.5
    """
    Y, T = _pair(Y, targets, "l2loss")
    d = Y - T
    return _scalar(_normalize(F.sum(d * d), Y, normalization, "l2loss"))


def l1loss(Y, targets, normalization: str = "batch-size"):
    """``sum(|Y - T|) / N``.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.l1loss(symdl.dlarray(np.array([[1.0, -2.0]]), "CB"), np.zeros((1, 2))))
        1.5
    """
    Y, T = _pair(Y, targets, "l1loss")
    return _scalar(_normalize(F.sum(F.abs(Y - T)), Y, normalization, "l1loss"))


def huber(Y, targets, transition_point: float = 1.0, normalization: str = "batch-size"):
    """Huber loss: ``d^2 / 2`` where ``|d| <= delta``, ``delta (|d| - delta/2)``
    beyond (``d = Y - T``, ``delta = transition_point``), summed and divided by N.

    Example:
        >>> import numpy as np, symdl
        >>> float(symdl.huber(symdl.dlarray(np.array([[0.5, 3.0]]), "CB"), np.zeros((1, 2))))   # (0.125 + 2.5) / 2
        1.3125
    """
    Y, T = _pair(Y, targets, "huber")
    if isinstance(transition_point, bool) or not isinstance(transition_point, (int, float)) \
            or not transition_point > 0:
        raise ValueError(f"huber: transition_point must be a positive number, got {transition_point!r}")
    delta = float(transition_point)
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
    out = np.zeros((len(classes), len(labels)), dtype=dtype)
    out[[index[lab.item() if hasattr(lab, "item") else lab] for lab in labels], np.arange(len(labels))] = 1
    return dlarray(out, fmt)


def onehotdecode(Y, classes, dim="C"):
    """The class of largest value along ``dim`` (a label letter or an axis)
    for each observation: an array of labels of ``classes``' kind.

    Example:
        >>> import numpy as np, symdl
        >>> Y = symdl.dlarray(np.array([[0.9, 0.2], [0.1, 0.8]]), "CB")
        >>> symdl.onehotdecode(Y, ["cat", "dog"])
        array(['cat', 'dog'], dtype='<U3')
    """
    values = Y._value if isinstance(Y, dlarray) else np.asarray(Y)
    if isinstance(dim, str):
        if not isinstance(Y, dlarray) or not Y._fmt or Y._fmt.count(dim) != 1:
            raise ValueError(f"onehotdecode: dim {dim!r} must name exactly one dimension of Y "
                             f"(fmt {getattr(Y, 'fmt', None)!r})")
        axis = Y._fmt.index(dim)
    else:
        axis = int(dim)
    classes = np.asarray(classes)
    if classes.ndim != 1 or len(classes) != values.shape[axis]:
        raise ValueError(f"onehotdecode: classes must list one label per entry of dimension {dim!r} "
                         f"({values.shape[axis]}), got {len(np.atleast_1d(classes))}")
    return classes[np.argmax(values, axis=axis)]
