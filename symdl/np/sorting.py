"""Sorting and arg-functions: sort, partition, argsort, argmax, argmin,
nonzero.

The value of ``sort`` is a gather of ``x`` by a permutation (numpy's stable
argsort of the value), so the derivative flows through the permutation; ties
keep numpy's stable order.  The permutation (and every integer result Python
receives) is a fact about the traced values: it is recorded as a guard made of
comparisons between the gathered elements, so a compiled trace runs only for
inputs that order the same way and any other input is traced again -- never a
stale permutation.  NaN sorts last, as numpy.
"""

from __future__ import annotations

import numpy as np

from .. import functions as F
from ..core import is_traced
from ._common import arr, axis_of, gather_flat, guard_true
from .elementwise import isnan

__all__ = ["sort", "argsort", "partition", "argpartition", "argmax", "argmin", "nonzero", "flatnonzero"]


def _lt(a, b):
    """a < b in numpy's sort order (NaN after every number)."""
    return F.logical_or(F.compare("lt", a, b), F.logical_and(isnan(b), F.logical_not(isnan(a))))


def _le(a, b):
    """a <= b in numpy's sort order."""
    return F.logical_or(F.compare("le", a, b), isnan(b))


def _moved_positions(x, axis: int, order: np.ndarray) -> np.ndarray:
    """Flat positions into ``x`` of ``take_along_axis(x, order, axis)``."""
    pos = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    return np.take_along_axis(pos, order, axis=axis)


def _sorted_and_order(name, a, axis):
    x = arr(a)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    if x.ndim == 0:
        raise ValueError(f"{name}: needs an array of at least one dimension, got a 0-d one")
    ax = axis_of(name, axis, x.ndim)
    order = np.argsort(x._value, axis=ax, kind="stable")
    s = gather_flat(x, _moved_positions(x, ax, order))
    n = x.shape[ax]
    if is_traced(x) and n > 1:
        lo, hi = [slice(None)] * x.ndim, [slice(None)] * x.ndim
        lo[ax], hi[ax] = slice(0, n - 1), slice(1, n)
        increasing = order[tuple(lo)] < order[tuple(hi)]   # a tie keeps this pair only if stable
        a_, b_ = s[tuple(lo)], s[tuple(hi)]
        ordered = F.logical_or(F.logical_and(increasing, _le(a_, b_)),
                               F.logical_and(~increasing, _lt(a_, b_)))
        guard_true(ordered)
    return x, ax, order, s


def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Sorted copy along ``axis`` (None: flattened), differentiable: each
    element's derivative goes to the element it came from (ties in numpy's
    stable order).

    Example:
        >>> import symdl
        >>> symdl.sort(symdl.dlarray([3.0, 1.0, 2.0]))
        dlarray([1., 2., 3.])
    """
    if order is not None:
        raise TypeError("sort: order= (structured arrays) is not supported on dlarrays")
    return _sorted_and_order("sort", a, axis)[3]


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """numpy's stable ``argsort`` (an int64 numpy array; no derivative).  In a
    compiled function the order is a guard: another order traces again.

    Example:
        >>> import symdl
        >>> symdl.argsort(symdl.dlarray([3.0, 1.0, 2.0]))
        array([1, 2, 0])
    """
    if order is not None:
        raise TypeError("argsort: order= (structured arrays) is not supported on dlarrays")
    return _sorted_and_order("argsort", a, axis)[2]


def _check_kth(name, kth, n):
    ks = np.atleast_1d(np.asarray(kth))
    if ks.dtype.kind not in "iu":
        raise TypeError(f"{name}: kth must be integers, got {kth!r}")
    if ks.size and (ks.min() < -n or ks.max() >= n):
        raise ValueError(f"{name}: kth {kth!r} out of bounds for an axis of size {n}")


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A partitioned copy: the element at ``kth`` is where sorting puts it,
    smaller ones before and larger after.  numpy leaves the order inside each
    part unspecified; here it is the fully sorted order (a valid partition for
    every ``kth``), differentiable as :func:`sort`.

    Example:
        >>> import symdl
        >>> float(symdl.partition(symdl.dlarray([3.0, 1.0, 2.0]), 1)[1])
        2.0
    """
    x = arr(a)
    if axis is not None and x.ndim:
        _check_kth("partition", kth, x.shape[axis_of("partition", axis, x.ndim)])
    return sort(x, axis)


def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices of :func:`partition` (the stable sort order; no derivative).

    Example:
        >>> import symdl
        >>> int(symdl.argpartition(symdl.dlarray([3.0, 1.0, 2.0]), 0)[0])
        1
    """
    x = arr(a)
    if axis is not None and x.ndim:
        _check_kth("argpartition", kth, x.shape[axis_of("argpartition", axis, x.ndim)])
    return argsort(x, axis)


def _arg_extreme(name, a, axis, keepdims, sign):
    x = arr(a)
    if axis is None:
        flat = F.reshape(x, (-1,))
        k = _arg_extreme(name, flat, 0, False, sign)
        return np.reshape(k, (1,) * x.ndim) if keepdims else k
    if x.size == 0:
        raise ValueError(f"{name}: attempt to get {name} of an empty sequence")
    ax = axis_of(name, axis, x.ndim)
    v = x._value if sign > 0 else -x._value
    k = np.argmax(v, axis=ax, keepdims=True)
    if is_traced(x):
        y = x if sign > 0 else F.negative(x)
        best = gather_flat(y, _moved_positions(y, ax, k))
        idx = np.arange(x.shape[ax]).reshape([-1 if i == ax else 1 for i in range(x.ndim)])
        before, after = idx < k, idx > k
        # numpy's first maximum: strictly larger than every element before it, not smaller than any after
        ok = F.logical_or(F.logical_and(before, _lt(y, best)), F.logical_and(after, _le(y, best)))
        guard_true(F.logical_or(ok, idx == k))
    if keepdims:
        return k
    k = np.squeeze(k, axis=ax)
    return k[()] if k.ndim == 0 else k  # a numpy integer for a single result, as numpy


def argmax(a, axis=None, out=None, *, keepdims=False):
    """Index of the (first) maximum, as numpy (an int64 numpy array or
    integer; no derivative; a guard in compiled code).

    Example:
        >>> import symdl
        >>> int(symdl.argmax(symdl.dlarray([1.0, 5.0, 5.0])))
        1
    """
    if out is not None:
        raise TypeError("argmax: out= is not supported")
    return _arg_extreme("argmax", a, axis, keepdims, 1)


def argmin(a, axis=None, out=None, *, keepdims=False):
    """Index of the (first) minimum (as :func:`argmax`).

    Example:
        >>> import symdl
        >>> int(symdl.argmin(symdl.dlarray([4.0, 1.0, 1.0])))
        1
    """
    if out is not None:
        raise TypeError("argmin: out= is not supported")
    return _arg_extreme("argmin", a, axis, keepdims, -1)


def nonzero(a):
    """Indices of the nonzero elements (a tuple of int64 numpy arrays, as
    numpy); which elements are zero is a guard in compiled code.

    Example:
        >>> import symdl
        >>> symdl.nonzero(symdl.dlarray([0.0, 3.0, 0.0, 1.0]))
        (array([1, 3]),)
    """
    x = arr(a)
    mask = x if x.dtype == np.bool_ else F.compare("ne", x, 0.0)
    mask._guard()  # the result's shape and contents depend on every element's zero-ness
    return np.nonzero(mask._value)


def flatnonzero(a):
    """Indices of the nonzero elements of the flattened array.

    Example:
        >>> import symdl
        >>> symdl.flatnonzero(symdl.dlarray([[0.0, 3.0], [1.0, 0.0]]))
        array([1, 2])
    """
    return nonzero(F.reshape(arr(a), (-1,)))[0]
