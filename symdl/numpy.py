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

import builtins as _builtins
import functools
import types

import numpy as _np
from numpy import *  # noqa: F403  (numpy's namespace, overridden below where dlarrays need it)
from numpy import random  # noqa: F401

from . import functions as _F
from .compiler.keys import ByIdentity
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
    """numpy's ``fn``; with a dlarray anywhere among the arguments, symdl's
    version of it directly (numpy's own dispatch looks only at some
    arguments: ``full_like(numpy_array, traced_value)`` would not reach symdl)."""
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _common.any_dl(args) or _common.any_dl(kwargs.values()):
            args = tuple(_lift(a) for a in args)
            kwargs = {k: _lift(v) for k, v in kwargs.items()}
            impl = _F.NUMPY_FUNCTIONS.get(fn)
            if impl is not None:
                return impl(*args, **kwargs)
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


def _linalg_namespace() -> types.ModuleType:
    """numpy.linalg with the same wrapping: ``np.linalg.det([[x, 1.0], [2.0, x]])``
    reaches symdl's version for the functions symdl defines."""
    space = types.ModuleType("symdl.numpy.linalg", _np.linalg.__doc__)
    for name in dir(_np.linalg):
        if name.startswith("_"):
            continue
        obj = getattr(_np.linalg, name)
        is_function = callable(obj) and not isinstance(obj, type)
        setattr(space, name, _wrap_function(obj) if is_function else obj)
    space.eigh = _eigh
    return space


def _eigh(a, UPLO="L"):
    """numpy.linalg.eigh with symdl's eigenvector signs for plain data too
    (each eigenvector's largest component positive): the same function
    whether its argument is traced or not, so that finite differences of a
    function agree with its gradient (LAPACK's signs are arbitrary)."""
    from . import linalg as _L
    if _common.any_dl([a]):
        return _L.eigh(_lift(a), UPLO)
    w, v = _L.eigh(_np.asarray(a), UPLO)
    return _L.EighResult(w._value.copy(), v._value.copy())


linalg = _linalg_namespace()


def _nesting(obj) -> tuple[int, ...]:
    """The shape of the nested lists/tuples around the leaves; ragged nesting
    is a ValueError, as numpy."""
    if not isinstance(obj, (list, tuple)):
        return ()
    inner = {_nesting(v) for v in obj}
    if len(inner) > 1:
        raise ValueError(f"array: the nested sequences are ragged (shapes {sorted(inner)}); numpy needs "
                         "a rectangular nesting")
    return (len(obj),) + (inner.pop() if inner else ())


def _dlarray_depth(obj, depth: int = 0) -> int | None:
    """How many sequences deep the shallowest dlarray sits."""
    if isinstance(obj, _F.dlarray):
        return depth
    if not isinstance(obj, (list, tuple)):
        return None
    found = [d for d in (_dlarray_depth(v, depth + 1) for v in obj) if d is not None]
    return _builtins.min(found) if found else None  # numpy's min shadows the builtin here


def _numbers_as_leaves(obj, leaf_depth: int | None, depth: int = 0):
    """Sequences of plain numbers at the depth of the dlarrays become numpy
    leaves, so ``[x, [1.0, 2.0]]`` with x of shape (2,) is a (2, 2) array, as
    numpy nests arrays and lists alike."""
    if not isinstance(obj, (list, tuple)) or leaf_depth is None:
        return obj
    if depth == leaf_depth:
        return obj if _common.any_dl([obj]) else _np.asarray(obj)
    return [_numbers_as_leaves(v, leaf_depth, depth + 1) for v in obj]


def _leaves(obj, out: list) -> list:
    if isinstance(obj, (list, tuple)):
        for v in obj:
            _leaves(v, out)
    else:
        out.append(obj)
    return out


def _build(obj):
    """Nested lists/tuples of numbers and dlarrays as one dlarray.  Each
    distinct traced value enters the graph once and a constant-index gather
    places it, so a list of 100 000 references to a few values stays a small
    graph (and its derivative a scatter-add)."""
    if isinstance(obj, _F.dlarray):
        return obj
    obj = _numbers_as_leaves(obj, _dlarray_depth(obj))
    outer = _nesting(obj)
    leaves = _leaves(obj, [])
    shapes = {tuple(_np.shape(v._value if isinstance(v, _F.dlarray) else v)) for v in leaves}
    if len(shapes) > 1:
        raise ValueError(f"array: the elements have different shapes {sorted(shapes)}")
    shape = shapes.pop() if shapes else ()
    constants, distinct, position = [], {}, []
    for v in leaves:
        if isinstance(v, _F.dlarray):
            key = ("node", v._node) if v._node is not None else ("value", ByIdentity(v))
            distinct.setdefault(key, v)
            position.append(key)
        else:
            position.append(len(constants))
            constants.append(v)
    slot = {k: i for i, k in enumerate(distinct)}
    parts = [_F.reshape(v, (1,) + shape) for v in distinct.values()]
    offset = 0
    if constants:
        # Python numbers are weak (a float32 value stays float32), numpy data is not
        strong = [c.dtype for c in constants if isinstance(c, (_np.ndarray, _np.generic))]
        dtype = _np.result_type(*[v.dtype for v in distinct.values()], *strong)
        dtype = dtype if dtype in (_np.float32, _np.float64) else _np.float64
        parts.insert(0, _np.asarray(constants, dtype=dtype).reshape((len(constants),) + shape))
        offset = len(constants)
    idx = _np.array([p if isinstance(p, int) else offset + slot[p] for p in position], dtype=_np.int64)
    base = _F.concatenate(parts, axis=0) if len(parts) > 1 else _F.dlarray(parts[0]) \
        if not isinstance(parts[0], _F.dlarray) else parts[0]
    if not (len(idx) == base.shape[0] and (idx == _np.arange(len(idx))).all()):
        base = _F.take(base, idx, axis=0)
    return _F.reshape(base, tuple(outer) + shape)


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
