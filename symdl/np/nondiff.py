"""numpy functions without a derivative that pass dlarrays through: their
results carry no derivative.  Values that stay arrays are graph nodes of
non-differentiable primitives (so compiled code computes them afresh);
values Python receives (``allclose``) are recorded as guards."""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ._common import arr, is_dl, no_out, reduce_bool
from .elementwise import isfinite, isnan

__all__ = ["zeros_like", "ones_like", "full_like", "empty_like", "round", "around", "rint", "trunc", "fix",
           "floor_divide", "isclose", "allclose", "array_equal", "result_type", "count_nonzero"]


def _like(name, a, fill, dtype, shape):
    x = a if is_dl(a) else np.asarray(a)
    shape = x.shape if shape is None else tuple(np.atleast_1d(shape).tolist())
    dt = np.dtype(dtype) if dtype is not None else x.dtype
    value = np.full(shape, fill, dtype=dt)
    if dt.name not in ("float32", "float64"):
        return value  # an integer or bool array is numpy data, not a dlarray
    fmt = getattr(x, "_fmt", None) if shape == x.shape else None
    return F.dlarray._wrap(value, None, None, fmt)


def zeros_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """Zeros of ``a``'s shape and dtype (a constant: no derivative).

    Example:
        >>> import symdl
        >>> symdl.zeros_like(symdl.dlarray([1.0, 2.0]))
        dlarray([0., 0.])
    """
    return _like("zeros_like", a, 0, dtype, shape)


def ones_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """Ones of ``a``'s shape and dtype (a constant).

    Example:
        >>> import symdl
        >>> symdl.ones_like(symdl.dlarray([1.0, 2.0]))
        dlarray([1., 1.])
    """
    return _like("ones_like", a, 1, dtype, shape)


def empty_like(a, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """Zeros of ``a``'s shape and dtype (numpy leaves them uninitialised).

    Example:
        >>> import symdl
        >>> symdl.empty_like(symdl.dlarray([1.0])).shape
        (1,)
    """
    return _like("empty_like", a, 0, dtype, shape)


def full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None, *, device=None):
    """``fill_value`` in ``a``'s shape and dtype (a constant).

    Example:
        >>> import symdl
        >>> symdl.full_like(symdl.dlarray([1.0, 2.0]), 7.0)
        dlarray([7., 7.])
    """
    if is_dl(fill_value):  # a traced fill value stays differentiable: broadcast, not copied out
        template = _like("full_like", a, 0, dtype, shape)
        if not isinstance(template, F.dlarray):
            raise TypeError(f"full_like: a dlarray fill_value needs a float dtype, got {template.dtype}")
        filled = F.broadcast_to(F.astype(fill_value, template.dtype), template.shape)
        filled._fmt = template._fmt
        return filled
    return _like("full_like", a, fill_value, dtype, shape)


def round(a, decimals=0, out=None):
    """Round half to even (numpy's ``round``), to ``decimals`` places; no
    derivative (zero almost everywhere).

    Example:
        >>> import numpy as np, symdl
        >>> np.round(symdl.dlarray([0.5, 1.5, 2.675]), 2)
        dlarray([0.5 , 1.5 , 2.68])
    """
    no_out("round", out)
    x = arr(a)
    if not isinstance(decimals, (int, np.integer)):
        raise TypeError(f"round: decimals must be an integer, got {decimals!r}")
    if decimals == 0:
        return F._elementwise("round", [x])
    # numpy's own method: scale, round, scale back
    scale = 10.0 ** abs(int(decimals))
    if decimals > 0:
        return F.divide(F._elementwise("round", [F.multiply(x, scale)]), scale)
    return F.multiply(F._elementwise("round", [F.divide(x, scale)]), scale)


around = round


def rint(x):
    """Round to the nearest integer, half to even (no derivative).

    Example:
        >>> import symdl
        >>> symdl.rint(symdl.dlarray([0.5, 1.5, -2.5]))
        dlarray([ 0.,  2., -2.])
    """
    return F._elementwise("round", [x])


def trunc(x):
    """Round towards zero (no derivative).

    Example:
        >>> import symdl
        >>> symdl.trunc(symdl.dlarray([-1.7, 1.7]))
        dlarray([-1.,  1.])
    """
    return F._elementwise("trunc", [x])


def fix(x, out=None):
    """Round towards zero (numpy's ``fix``, the same as :func:`trunc`).

    Example:
        >>> import symdl
        >>> symdl.fix(symdl.dlarray([-1.7]))
        dlarray([-1.])
    """
    no_out("fix", out)
    return trunc(x)


def floor_divide(a, b):
    """``floor(a / b)`` computed as numpy does (from the remainder, so
    ``7 // 0.7`` is 9 as numpy, not 10); the ``//`` operator; no derivative.

    Example:
        >>> import symdl
        >>> symdl.floor_divide(symdl.dlarray([7.0, -7.0]), 2.0)
        dlarray([ 3., -4.])
    """
    return F._elementwise("floor_divide", [a, b])


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """Elementwise ``|a - b| <= atol + rtol * |b|`` (infinities close only to
    themselves; NaN to NaN with ``equal_nan``): a bool dlarray, no derivative.

    Example:
        >>> import symdl
        >>> symdl.isclose(symdl.dlarray([1.0, 2.0]), [1.0 + 1e-9, 2.1])
        dlarray([ True, False])
    """
    a, b = (arr(v) for v in F.to_operands([arr(a), arr(b)]))
    both_finite = F.logical_and(isfinite(a), isfinite(b))
    close = F.compare("le", F.abs(F.subtract(a, b)), F.add(F.multiply(F.abs(b), float(rtol)), float(atol)))
    out = F.where(both_finite, F.where(close, 1.0, 0.0), F.where(F.compare("eq", a, b), 1.0, 0.0))
    out = F.compare("gt", out, 0.5)
    if equal_nan:
        out = F.logical_or(out, F.logical_and(isnan(a), isnan(b)))
    return out


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False) -> bool:
    """Whether every element is close (a Python bool, as numpy; a guard in
    compiled code).

    Example:
        >>> import symdl
        >>> symdl.allclose(symdl.dlarray([1.0, 2.0]), [1.0, 2.0 + 1e-9])
        True
    """
    return bool(reduce_bool("all", isclose(a, b, rtol, atol, equal_nan)))


def array_equal(a1, a2, equal_nan=False) -> bool:
    """Same shape and elements (a Python bool; a guard in compiled code).

    Example:
        >>> import symdl
        >>> symdl.array_equal(symdl.dlarray([1.0, 2.0]), [1.0, 2.0])
        True
    """
    a, b = arr(a1), arr(a2)
    if a.shape != b.shape:
        return False
    same = F.compare("eq", a, b)
    if equal_nan:
        same = F.logical_or(same, F.logical_and(isnan(a), isnan(b)))
    return bool(reduce_bool("all", same))


def count_nonzero(a, axis=None, *, keepdims=False):
    """Number of nonzero elements (an int64 numpy value; a guard in compiled code).

    Example:
        >>> import symdl
        >>> int(symdl.count_nonzero(symdl.dlarray([0.0, 2.0, 3.0])))
        2
    """
    x = arr(a)
    mask = x if x.dtype == np.bool_ else F.compare("ne", x, 0.0)
    counts = F.sum(F.where(mask, 1.0, 0.0), axis, keepdims)
    counts._guard()  # Python gets the counts: a compiled trace holds while they are the same
    out = np.count_nonzero(mask._value, axis=axis, keepdims=keepdims)
    return out


def result_type(*arrays_and_dtypes):
    """numpy's ``result_type`` with dlarrays counted by their dtype.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.result_type(symdl.dlarray(np.float32(1.0)), np.float32)
        dtype('float32')
    """
    return np.result_type(*[a.dtype if is_dl(a) else a for a in arrays_and_dtypes])
