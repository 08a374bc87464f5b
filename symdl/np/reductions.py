"""Reductions and scans with numpy's keywords: sum, mean, prod, max, min
(``dtype=``, ``initial=``, ``where=``, ``out=None``), var and std (``ddof``),
cumsum, cumprod, diff; any and all."""

from __future__ import annotations

import builtins
import math

import numpy as np

from .. import functions as F
from ._common import arr, axes_of, axis_of, no_out, reduce_bool

__all__ = ["sum", "mean", "prod", "max", "min", "var", "std", "cumsum", "cumprod", "diff", "any", "all"]

_NOVALUE = np._NoValue


def _cast(name, x, dtype):
    x = arr(x)
    if dtype is None:
        return x
    d = np.dtype(dtype)
    if d.name not in ("float32", "float64"):
        raise TypeError(f"{name}: dtype must be float32 or float64 on dlarrays, got {d.name}")
    return F.astype(x, d) if d != x.dtype else x


def _given(v) -> bool:
    return v is not _NOVALUE and v is not None


def _operand(v):
    """A scalar keyword value as an operand: a dlarray stays one (and keeps
    its derivative), anything else becomes a Python float."""
    return v if isinstance(v, F.dlarray) else float(v)


def _differs(v, neutral: float) -> bool:
    return _given(v) and (isinstance(v, F.dlarray) or v != neutral)


def _where_mask(name, x, where):
    if where is _NOVALUE or where is True:
        return None
    mask = np.asarray(where, dtype=bool) if not isinstance(where, F.dlarray) else where
    if isinstance(mask, np.ndarray):
        try:
            np.broadcast_shapes(mask.shape, x.shape)
        except ValueError:
            raise ValueError(f"{name}: where= of shape {mask.shape} does not broadcast to {x.shape}") from None
    return mask


def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
    """numpy's ``sum`` with its keywords (``where=`` masks elements out,
    ``initial=`` is added).

    Example:
        >>> import symdl
        >>> float(symdl.sum(symdl.dlarray([1.0, 2.0, 3.0]), where=[True, False, True], initial=10.0))
        14.0
    """
    no_out("sum", out)
    x = _cast("sum", a, dtype)
    mask = _where_mask("sum", x, where)
    if mask is not None:
        x = F.where(mask, x, 0.0)
    total = F.sum(x, axis, bool(keepdims))
    return F.add(total, _operand(initial)) if _differs(initial, 0.0) else total


def mean(a, axis=None, dtype=None, out=None, keepdims=False, where=_NOVALUE):
    """numpy's ``mean`` with ``dtype=``, ``where=`` (mean of the chosen elements).

    Example:
        >>> import symdl
        >>> float(symdl.mean(symdl.dlarray([1.0, 2.0, 6.0]), where=[True, True, False]))
        1.5
    """
    no_out("mean", out)
    x = _cast("mean", a, dtype)
    mask = _where_mask("mean", x, where)
    if mask is None:
        return F.mean(x, axis, bool(keepdims))
    count = sum(F.where(mask, 1.0, 0.0) if isinstance(mask, F.dlarray) else
                np.broadcast_to(mask, x.shape).astype(x.dtype), axis, keepdims=keepdims)
    return F.divide(sum(x, axis, keepdims=keepdims, where=mask), count)


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
    """numpy's ``prod`` with its keywords (masked elements count as 1).

    Example:
        >>> import symdl
        >>> float(symdl.prod(symdl.dlarray([2.0, 3.0, 4.0]), where=[True, True, False], initial=0.5))
        3.0
    """
    no_out("prod", out)
    x = _cast("prod", a, dtype)
    mask = _where_mask("prod", x, where)
    if mask is not None:
        x = F.where(mask, x, 1.0)
    total = F.prod(x, axis, bool(keepdims))
    return F.multiply(total, _operand(initial)) if _differs(initial, 1.0) else total


def _extreme(name, fn, combine, a, axis, out, keepdims, initial, where):
    no_out(name, out)
    x = arr(a)
    mask = _where_mask(name, x, where)
    if mask is not None:
        if not _given(initial):
            raise ValueError(f"{name}: where= needs initial= (the value of an all-masked reduction)")
        x = F.where(mask, x, _operand(initial))
    if _given(initial) and builtins.any(x.shape[k] == 0 for k in axes_of(name, x, axis)):
        shape = [1 if i in axes_of(name, x, axis) else d for i, d in enumerate(x.shape)]
        fill = F.broadcast_to(F.astype(initial, x.dtype), shape) if isinstance(initial, F.dlarray) else \
            np.full(shape, float(initial), dtype=x.dtype)
        x = F.concatenate([x, fill], axis=axes_of(name, x, axis)[0])
    out = fn(x, axis, bool(keepdims))
    return combine(out, _operand(initial)) if _given(initial) else out


def max(a, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
    """numpy's ``max`` (``amax``) with ``initial=`` and ``where=``.

    Example:
        >>> import symdl
        >>> float(symdl.max(symdl.dlarray([1.0, 5.0]), initial=7.0))
        7.0
    """
    return _extreme("max", F.max, F.maximum, a, axis, out, keepdims, initial, where)


def min(a, axis=None, out=None, keepdims=False, initial=_NOVALUE, where=_NOVALUE):
    """numpy's ``min`` (``amin``) with ``initial=`` and ``where=``.

    Example:
        >>> import symdl
        >>> float(symdl.min(symdl.dlarray([1.0, 5.0]), where=[False, True], initial=9.0))
        5.0
    """
    return _extreme("min", F.min, F.minimum, a, axis, out, keepdims, initial, where)


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE, mean=_NOVALUE,
        correction=_NOVALUE):
    """Variance ``sum((x - mean)**2) / (N - ddof)`` over ``axis``.

    Example:
        >>> import symdl
        >>> x = symdl.dlarray([1.0, 2.0, 3.0, 4.0])
        >>> float(symdl.var(x)), float(symdl.var(x[:2], ddof=1))
        (1.25, 0.5)
    """
    no_out("var", out)
    if mean is not _NOVALUE:
        raise TypeError("var: mean= is not supported")
    if correction is not _NOVALUE:
        ddof = correction
    x = _cast("var", a, dtype)
    if where is not _NOVALUE and where is not True:
        raise TypeError("var: where= is not supported")
    axes = axes_of("var", x, axis)
    n = math.prod(x.shape[k] for k in axes)
    centred = F.subtract(x, F.mean(x, axes, True))
    ss = F.sum(F.square(centred), axes, bool(keepdims))
    dof = n - ddof
    return F.multiply(ss, 1.0 / dof) if dof > 0 else F.divide(ss, 0.0)  # numpy: inf or NaN


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=_NOVALUE, mean=_NOVALUE,
        correction=_NOVALUE):
    """Standard deviation, ``sqrt(var(...))`` (its derivative is infinite
    where all elements are equal, as the square root's at 0).

    Example:
        >>> import symdl
        >>> float(symdl.std(symdl.dlarray([1.0, 3.0])))
        1.0
    """
    return F.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, mean=mean, correction=correction))


def cumsum(a, axis=None, dtype=None, out=None):
    """numpy's ``cumsum`` (``axis=None`` runs over the flattened array).

    Example:
        >>> import symdl
        >>> symdl.cumsum(symdl.dlarray([1.0, 2.0, 3.0]))
        dlarray([1., 3., 6.])
    """
    no_out("cumsum", out)
    return F.cumsum(arr(a), axis, dtype)


def cumprod(a, axis=None, dtype=None, out=None):
    """Running products along ``axis`` (None: flattened), as a log-depth
    scan of elementwise products, so derivatives of every order are exact
    even where elements are zero.

    Example:
        >>> import symdl
        >>> symdl.cumprod(symdl.dlarray([1.0, 2.0, 3.0, 0.0, 5.0]))
        dlarray([1., 2., 6., 0., 0.])
    """
    no_out("cumprod", out)
    x = _cast("cumprod", a, dtype)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    ax = axis_of("cumprod", axis, x.ndim)
    n = x.shape[ax]
    shift = 1
    while shift < n:  # Hillis-Steele: after the step, y[i] is the product of x[i-2s+1 .. i]
        head = [slice(None)] * x.ndim
        tail, prev = list(head), list(head)
        head[ax], tail[ax], prev[ax] = slice(0, shift), slice(shift, n), slice(0, n - shift)
        x = F.concatenate([x[tuple(head)], F.multiply(x[tuple(tail)], x[tuple(prev)])], axis=ax)
        shift *= 2
    return x


def diff(a, n=1, axis=-1, prepend=_NOVALUE, append=_NOVALUE):
    """``n``-th forward difference along ``axis`` (numpy's ``diff``, with
    ``prepend=`` / ``append=``).

    Example:
        >>> import symdl
        >>> symdl.diff(symdl.dlarray([1.0, 4.0, 9.0, 16.0]), n=2)
        dlarray([2., 2.])
    """
    x = arr(a)
    if x.ndim == 0:
        raise ValueError("diff: needs an array of at least one dimension, got a 0-d one")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"diff: order n must be a non-negative integer, got {n!r}")
    ax = axis_of("diff", axis, x.ndim)
    parts = []
    for extra in (prepend, append):
        if extra is _NOVALUE:
            parts.append(None)
            continue
        e = arr(extra) if isinstance(extra, (F.dlarray, list, tuple)) else np.asarray(extra)
        if np.ndim(e._value if isinstance(e, F.dlarray) else e) == 0:
            shape = list(x.shape)
            shape[ax] = 1
            e = F.broadcast_to(arr(e), shape) if isinstance(e, F.dlarray) else np.broadcast_to(e, shape)
        parts.append(e)
    pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
    if len(pieces) > 1:
        x = F.concatenate(pieces, axis=ax)
    for _ in range(int(n)):
        m = x.shape[ax]
        hi, lo = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        hi[ax], lo[ax] = slice(1, m), slice(0, builtins.max(m - 1, 0))
        x = F.subtract(x[tuple(hi)], x[tuple(lo)])
    return x


def any(a, axis=None, out=None, keepdims=False, *, where=_NOVALUE):
    """Whether any element (along ``axis``) is nonzero: a bool dlarray with no
    derivative (``if np.any(x > 0):`` is a guard in compiled code).

    Example:
        >>> import numpy as np, symdl
        >>> bool(np.any(symdl.dlarray([0.0, 2.0])))
        True
    """
    no_out("any", out)
    if where is not _NOVALUE and where is not True:
        a = F.logical_and(F.compare("ne", arr(a), 0.0), np.asarray(where, dtype=bool))
    return reduce_bool("any", a, axis, bool(keepdims))


def all(a, axis=None, out=None, keepdims=False, *, where=_NOVALUE):
    """Whether every element (along ``axis``) is nonzero (bool dlarray, no derivative).

    Example:
        >>> import numpy as np, symdl
        >>> bool(np.all(symdl.dlarray([0.0, 2.0])))
        False
    """
    no_out("all", out)
    if where is not _NOVALUE and where is not True:
        a = F.logical_or(F.compare("ne", arr(a), 0.0), ~np.asarray(where, dtype=bool))
    return reduce_bool("all", a, axis, bool(keepdims))


# ---------------------------------------------------------------- symdl's own spelling
# symdl.sum(x, axis, keepdims) takes keepdims second (SPEC section 1, as the
# methods did); numpy's other keywords are accepted by name.  numpy.sum and
# the dlarray methods use numpy's order (axis, dtype, out, keepdims).

def _axis_keepdims_first(numpy_version):
    def reduce(a, axis=None, keepdims=False, **numpy_keywords):
        return numpy_version(a, axis, keepdims=keepdims, **numpy_keywords)
    reduce.__name__ = reduce.__qualname__ = numpy_version.__name__
    reduce.__doc__ = (f"``{numpy_version.__name__}`` over ``axis`` (int, tuple, label letter; None: all), "
                      "``keepdims`` second; numpy's keywords (``dtype=``, ``initial=``, ``where=``) by name.\n\n"
                      "    Example:\n        >>> import numpy as np, symdl\n"
                      "        >>> x = symdl.dlarray(np.array([[1.0, 2.0], [3.0, 4.0]]), 'CB')\n"
                      f"        >>> symdl.{numpy_version.__name__}(x, 'B', True).shape\n        (2, 1)\n")
    return reduce


TOP_LEVEL = {f.__name__: _axis_keepdims_first(f) for f in (sum, mean, prod, max, min)}
