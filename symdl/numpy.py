"""numpy's namespace for differentiable code, as ``autograd.numpy`` and
``jax.numpy``: ``import symdl.numpy as np``.

Every numpy name is here.  Functions work on plain numpy data exactly as
numpy's; given dlarrays (also inside lists: ``np.sum([x, 2 * x])``) they run
symdl's differentiable versions.  ``array``, ``asarray`` and the ``r_`` /
``c_`` helpers build arrays from traced values with ``symdl.stack`` /
``symdl.concatenate``, so the autograd idiom works:

    >>> import symdl, symdl.numpy as np
    >>> g = symdl.grad(lambda x: np.sum(np.array([x, 2 * x]) * x))
    >>> float(g(3.0))   # d/dx (x*x + 2x*x) = 6x
    18.0
"""

from __future__ import annotations

import functools

import numpy as _np
from numpy import *  # noqa: F403  (numpy's namespace, overridden below where dlarrays need it)
from numpy import linalg, random  # noqa: F401  (numpy.linalg dispatches on dlarrays by itself)

from . import functions as _F
from .np import _common

globals().pop("test", None)  # numpy's test runner: not a function of arrays (and pytest would try to collect it)

# functions whose argument is itself a sequence of arrays: numpy's own
# dispatch already finds the dlarrays in it
_SEQUENCE_FUNCTIONS = {"concatenate", "stack", "vstack", "hstack", "dstack", "column_stack", "block", "select",
                       "einsum", "result_type", "broadcast_arrays", "meshgrid"}


def _lift(v):
    """A list or tuple holding dlarrays as one (stacked) dlarray; else ``v``."""
    if isinstance(v, (list, tuple)) and _common.any_dl(v):
        return _common.arr(v)
    return v


def _wrap_function(fn):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _common.any_dl(args) or _common.any_dl(kwargs.values()):
            args = tuple(_lift(a) for a in args)
            kwargs = {k: _lift(v) for k, v in kwargs.items()}
        return fn(*args, **kwargs)
    return call


class _Ufunc:
    """A numpy ufunc whose calls and methods also take lists of dlarrays."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.__doc__ = ufunc.__doc__

    def __call__(self, *args, **kwargs):
        return self._ufunc(*(_lift(a) for a in args), **kwargs)

    def __getattr__(self, name):
        attr = getattr(self._ufunc, name)
        if name in ("reduce", "accumulate", "outer", "reduceat", "at"):
            return lambda *args, **kwargs: attr(*(_lift(a) for a in args), **kwargs)
        return attr

    def __repr__(self):
        return f"<symdl.numpy ufunc {self.__name__!r}>"


def _install() -> None:
    """Each numpy name (aliases too: ``abs``, ``amax``) of a function or ufunc
    that dlarrays support, wrapped so that lists holding dlarrays work."""
    g = globals()
    supported = set(_F.NUMPY_FUNCTIONS) | set(_F.NUMPY_UFUNCS)
    for name in dir(_np):
        if name.startswith("_"):
            continue
        obj = getattr(_np, name)
        try:
            known = obj in supported
        except TypeError:  # unhashable
            continue
        if not known:
            continue
        if isinstance(obj, _np.ufunc):
            g[name] = _Ufunc(obj)
        elif name not in _SEQUENCE_FUNCTIONS:
            g[name] = _wrap_function(obj)


_install()


def _build(obj):
    """Nested lists/tuples of numbers and dlarrays as one dlarray."""
    if isinstance(obj, _F.dlarray):
        return obj
    if isinstance(obj, (list, tuple)):
        if not obj:
            return _F.dlarray(_np.zeros(0))
        return _F.stack([_build(v) for v in obj])
    return _np.asarray(obj)


def array(object, dtype=None, *, copy=True, order="K", subok=False, ndmin=0, like=None):
    """numpy's ``array``; lists holding dlarrays become a dlarray built with
    ``symdl.stack`` (traced values stay traced).

    Example:
        >>> import symdl, symdl.numpy as np
        >>> np.array([symdl.dlarray(1.0), 2.0])
        dlarray([1., 2.])
    """
    if not _common.any_dl([object]):
        return _np.array(object, dtype=dtype, copy=copy, order=order, subok=subok, ndmin=ndmin)
    out = _build(object)
    if dtype is not None:
        d = _np.dtype(dtype)
        if d.name not in ("float32", "float64"):
            raise TypeError(f"array: a dlarray has dtype float32 or float64, not {d.name} "
                            "(for plain data, use symdl.extractdata)")
        out = _F.astype(out, d)
    if not isinstance(out, _F.dlarray):
        out = _F.dlarray(out)
    if out.ndim < ndmin:
        out = _F.reshape(out, (1,) * (ndmin - out.ndim) + out.shape)
    return out


def asarray(a, dtype=None, order=None, *, like=None, **kwargs):
    """numpy's ``asarray``; a dlarray (or a list holding dlarrays) stays a dlarray.

    Example:
        >>> import symdl, symdl.numpy as np
        >>> np.asarray([symdl.dlarray(1.0), 2.0]).shape
        (2,)
    """
    if not _common.any_dl([a]):
        return _np.asarray(a, dtype=dtype, order=order, **kwargs)
    return array(a, dtype=dtype)


asanyarray = ascontiguousarray = asarray


class _Concatenator:
    """``r_`` / ``c_``: numpy's when no dlarray is involved; with dlarrays,
    items (scalars, arrays, slices as ranges) joined along the first axis
    (``r_``) or as columns (``c_``)."""

    def __init__(self, numpy_version, columns: bool):
        self._numpy, self._columns = numpy_version, columns

    def __getitem__(self, key):
        items = key if isinstance(key, tuple) else (key,)
        if not _common.any_dl(items):
            return self._numpy[key]
        parts = []
        for item in items:
            if isinstance(item, str):
                raise TypeError(f"{'c_' if self._columns else 'r_'}: directive strings are not supported "
                                "with dlarrays")
            if isinstance(item, slice):
                item = self._numpy[item]
            x = _common.arr(item)
            if self._columns:
                x = _F.reshape(x, (1, 1) if x.ndim == 0 else (x.shape[0], 1) if x.ndim == 1 else x.shape)
            elif x.ndim == 0:
                x = _F.reshape(x, (1,))
            parts.append(x)
        return _F.concatenate(parts, axis=-1 if self._columns else 0)


r_ = _Concatenator(_np.r_, columns=False)
c_ = _Concatenator(_np.c_, columns=True)


def __getattr__(name):
    # numpy names outside numpy.__all__ (numpy.float_ and friends)
    return getattr(_np, name)
