"""numpy's breadth on dlarrays: the functions of SPEC section 9.2, grouped by
job (elementwise, reductions, sorting, shape, contractions, nondiff), and the
numpy protocol entries that route numpy's own functions, ufunc methods and
keywords to them.  Importing this package extends
``symdl.functions.NUMPY_FUNCTIONS`` / ``NUMPY_UFUNCS`` in place."""

from __future__ import annotations

import builtins

import numpy as np

from .. import functions as F
from . import contractions, elementwise, nondiff, reductions, shape, sorting  # noqa: F401  (the modules, by job)
from ._common import arr, no_out
from .contractions import cross, einsum, inner, kron, outer, tensordot, trace
from .elementwise import (cbrt, deg2rad, degrees, exp2, fabs, fmax, fmin, fmod, hypot, isfinite, isinf, isnan,
                          log2, log10, logaddexp, logaddexp2, mod, nan_to_num, rad2deg, radians, reciprocal,
                          remainder, sinc)
from .nondiff import (allclose, around, array_equal, count_nonzero, empty_like, fix, floor_divide, full_like,
                      isclose, ones_like, result_type, rint, round, trunc, zeros_like)
from .reductions import all, any, cumprod, cumsum, diff, max, mean, min, prod, std, sum, var
from .shape import (append, array_split, atleast_1d, atleast_2d, atleast_3d, column_stack, concatenate, copy, diag,
                    diagonal, dsplit, dstack, flip, fliplr, flipud, hsplit, hstack, moveaxis, pad, ravel, repeat, roll,
                    linspace, rollaxis, rot90, select, split, stack, swapaxes, tile, tril, triu, vsplit, vstack)
from .sorting import argmax, argmin, argpartition, argsort, flatnonzero, nonzero, partition, sort

__all__ = [
    "all", "allclose", "any", "append", "argmax", "argmin", "argpartition", "argsort", "around", "array_equal",
    "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "cbrt", "clip", "column_stack", "concatenate", "copy",
    "count_nonzero", "cross", "cumprod", "cumsum", "deg2rad", "degrees", "diag", "diagonal", "diff", "dsplit",
    "dstack", "einsum", "empty_like", "exp2", "fabs", "fix", "flatnonzero", "flip", "fliplr", "flipud",
    "floor_divide", "fmax", "fmin", "fmod", "full_like", "hsplit", "hstack", "hypot", "inner", "isclose",
    "isfinite", "isinf", "isnan", "kron", "linspace", "log10", "log2", "logaddexp", "logaddexp2", "max", "mean",
    "min", "mod", "moveaxis", "nan_to_num", "nonzero", "ones_like", "outer", "pad", "partition", "prod", "rad2deg",
    "radians", "ravel", "reciprocal", "remainder", "repeat", "result_type", "rint", "roll", "rollaxis", "rot90",
    "round", "select", "sinc", "sort", "split", "stack", "std", "sum", "swapaxes", "tensordot", "tile", "trace",
    "tril", "triu", "trunc", "var", "vsplit", "vstack", "where", "zeros_like",
]


# ---------------------------------------------------------------- numpy's keywords on the basic functions

def clip(a, a_min=np._NoValue, a_max=np._NoValue, out=None, *, min=np._NoValue, max=np._NoValue, **kwargs):
    """``a`` limited to ``[a_min, a_max]`` (numpy's ``clip``: either bound may
    be None; ``min=``/``max=`` are numpy 2's names for them).

    Example:
        >>> import symdl
        >>> symdl.clip(symdl.dlarray([-2.0, 0.5, 3.0]), a_min=-1.0, a_max=1.0)
        dlarray([-1. ,  0.5,  1. ])
    """
    no_out("clip", out)
    if kwargs:
        raise TypeError(f"clip: unsupported keywords {sorted(kwargs)}")
    lo = min if min is not np._NoValue else a_min
    hi = max if max is not np._NoValue else a_max
    lo = None if lo is np._NoValue else lo
    hi = None if hi is np._NoValue else hi
    if lo is None and hi is None:
        raise ValueError("clip: at least one of a_min and a_max must be given")
    x = arr(a)
    out = F.clip(x, lo, hi)
    out._fmt = x._fmt if out.ndim == x.ndim else None
    return out


def where(condition, x=np._NoValue, y=np._NoValue):
    """``x`` where ``condition`` holds, else ``y``; with only a condition,
    numpy's ``nonzero(condition)``.

    Example:
        >>> import symdl
        >>> x = symdl.dlarray([-1.0, 2.0])
        >>> symdl.where(x > 0, x, 0.0)
        dlarray([0., 2.])
    """
    if x is np._NoValue and y is np._NoValue:
        return nonzero(condition)
    if x is np._NoValue or y is np._NoValue:
        raise ValueError("where: either both or neither of x and y should be given")
    return F.where(condition, arr(x) if isinstance(x, list) else x, arr(y) if isinstance(y, list) else y)


def _reshape(a, *args, **kwargs):
    order = kwargs.pop("order", "C")
    shape_ = kwargs.pop("shape", kwargs.pop("newshape", None))
    if args and isinstance(args[-1], str):
        *args, order = args
    if shape_ is None:
        if not args:
            raise TypeError("reshape: the new shape is missing")
        shape_ = args[0]
    if kwargs:
        raise TypeError(f"reshape: unsupported keywords {sorted(kwargs)}")
    x = arr(a)
    if order == "F":
        shp = tuple(np.atleast_1d(shape_).tolist())
        return F.transpose(F.reshape(F.transpose(x), shp[::-1]))
    if order not in ("C", "A"):
        raise ValueError(f"reshape: order must be 'C', 'F' or 'A', got {order!r}")
    return F.reshape(x, shape_)


def _take(a, indices, axis=None, out=None, mode=None):
    no_out("take", out)
    if mode not in (None, "raise"):
        idx = np.asarray(indices)
        n = arr(a).size if axis is None else arr(a).shape[axis]
        indices = np.clip(idx, 0, n - 1) if mode == "clip" else idx % n
    return F.take(arr(a), indices, axis)


def _with_out(fn, name):
    def call(*args, out=None, **kwargs):
        no_out(name, out)
        return fn(*[arr(v) if isinstance(v, (list, tuple)) else v for v in args], **kwargs)
    call.__name__ = name
    return call


def _squeeze(a, axis=None):
    return F.squeeze(arr(a), axis)


def _transpose(a, axes=None):
    return F.transpose(arr(a), axes)


def _expand_dims(a, axis):
    return F.expand_dims(arr(a), axis)


def _broadcast_to(array, shape, subok=False):
    return F.broadcast_to(arr(array), (shape,) if isinstance(shape, (int, np.integer)) else shape)


def _take_along_axis(arr_, indices, axis=-1):
    x = arr(arr_)
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: indices must be integers, got {idx.dtype}")
    from ._common import gather_flat
    if axis is None:
        return gather_flat(x, idx)
    ax = axis % x.ndim
    pos = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    return gather_flat(x, np.take_along_axis(pos, idx, axis=ax))


# ---------------------------------------------------------------- the protocol tables

_FUNCTIONS = {
    np.sum: reductions.sum, np.mean: reductions.mean, np.prod: reductions.prod, np.max: reductions.max,
    np.amax: reductions.max, np.min: reductions.min, np.amin: reductions.min, np.var: var, np.std: std,
    np.cumsum: reductions.cumsum, np.cumprod: cumprod, np.diff: diff, np.any: any, np.all: all,
    np.sort: sort, np.argsort: argsort, np.partition: partition, np.argpartition: argpartition,
    np.argmax: argmax, np.argmin: argmin, np.nonzero: nonzero, np.flatnonzero: flatnonzero,
    np.einsum: einsum, np.tensordot: tensordot, np.inner: inner, np.outer: outer, np.kron: kron,
    np.cross: cross, np.trace: trace,
    np.ravel: ravel, np.repeat: repeat, np.tile: tile, np.roll: roll, np.rot90: rot90, np.flip: flip,
    np.flipud: flipud, np.fliplr: fliplr, np.swapaxes: swapaxes, np.moveaxis: moveaxis,
    np.rollaxis: rollaxis, np.linspace: linspace,
    np.atleast_1d: atleast_1d, np.atleast_2d: atleast_2d, np.atleast_3d: atleast_3d, np.diag: diag,
    np.diagonal: diagonal, np.tril: tril, np.triu: triu, np.pad: pad, np.select: select, np.append: append,
    np.split: split, np.array_split: array_split, np.hsplit: hsplit, np.vsplit: vsplit, np.dsplit: dsplit,
    np.vstack: vstack, np.hstack: hstack, np.dstack: dstack, np.column_stack: column_stack,
    np.concatenate: shape.concatenate, np.stack: shape.stack, np.copy: copy,
    np.zeros_like: zeros_like, np.ones_like: ones_like, np.full_like: full_like, np.empty_like: empty_like,
    np.round: round, np.around: around, np.fix: fix, np.isclose: isclose, np.allclose: allclose,
    np.array_equal: array_equal, np.count_nonzero: count_nonzero, np.result_type: result_type,
    np.nan_to_num: nan_to_num, np.sinc: sinc, np.clip: clip, np.where: where,
    np.reshape: _reshape, np.take: _take, np.squeeze: _squeeze, np.transpose: _transpose,
    np.expand_dims: _expand_dims, np.broadcast_to: _broadcast_to, np.take_along_axis: _take_along_axis,
    np.matmul: _with_out(F.matmul, "matmul"), np.dot: _with_out(F.dot, "dot"),
    np.real: lambda x: x, np.shape: lambda x: arr(x).shape if isinstance(x, (list, tuple)) else x.shape,
    np.ndim: lambda x: x.ndim, np.size: lambda x, axis=None: x.size if axis is None else x.shape[axis],
    np.iscomplexobj: lambda x: False, np.isrealobj: lambda x: True,
}

_UFUNCS = {
    np.log2: log2, np.log10: log10, np.exp2: exp2, np.cbrt: cbrt, np.reciprocal: reciprocal, np.fabs: fabs,
    np.deg2rad: deg2rad, np.rad2deg: rad2deg, np.radians: radians, np.degrees: degrees,
    np.logaddexp: logaddexp, np.logaddexp2: logaddexp2, np.hypot: hypot, np.remainder: mod, np.fmod: fmod,
    np.fmax: fmax, np.fmin: fmin, np.isnan: isnan, np.isinf: isinf, np.isfinite: isfinite,
    np.rint: rint, np.trunc: trunc, np.floor_divide: floor_divide, np.conjugate: lambda x: x,
    np.logical_xor: lambda a, b: F.logical_and(F.logical_or(a, b), F.logical_not(F.logical_and(a, b))),
}

F.NUMPY_FUNCTIONS.update(_FUNCTIONS)
F.NUMPY_UFUNCS.update(_UFUNCS)

# ufunc.reduce / ufunc.accumulate on dlarrays
REDUCERS = {np.add: reductions.sum, np.multiply: reductions.prod, np.maximum: reductions.max,
            np.minimum: reductions.min, np.logical_and: all, np.logical_or: any}
ACCUMULATORS = {np.add: reductions.cumsum, np.multiply: cumprod}

# keywords of a ufunc call that change nothing at their default
_UFUNC_DEFAULTS = {"casting": "same_kind", "order": "K", "subok": True, "where": True, "signature": None}


def call_ufunc(ufunc, method: str, inputs, kwargs):
    """``ufunc.method(*inputs, **kwargs)`` on dlarrays, or None when symdl has no rule."""
    kwargs = dict(kwargs)
    out = kwargs.pop("out", None)
    if out is not None and not (isinstance(out, tuple) and builtins.all(o is None for o in out)):
        raise TypeError(f"numpy.{ufunc.__name__}: dlarrays are immutable; out= is not supported")
    if method == "__call__":
        fn = F.NUMPY_UFUNCS.get(ufunc)
        if fn is None:
            return None
        dtype = kwargs.pop("dtype", None)
        for key, default in _UFUNC_DEFAULTS.items():
            if key in kwargs and kwargs.pop(key) is not default:
                raise TypeError(f"numpy.{ufunc.__name__}: {key}= is not supported on dlarrays")
        if kwargs:
            raise TypeError(f"numpy.{ufunc.__name__}: unsupported keywords {sorted(kwargs)}")
        result = fn(*inputs)
        return result if dtype is None else F.astype(result, dtype)
    if method == "reduce" and ufunc in REDUCERS:
        axis = kwargs.pop("axis", 0)
        if ufunc in (np.logical_and, np.logical_or, np.maximum, np.minimum) and kwargs.get("dtype") is None:
            kwargs.pop("dtype", None)  # these reductions have no dtype keyword; None is its default
        return REDUCERS[ufunc](inputs[0], axis, **kwargs)
    if method == "accumulate" and ufunc in ACCUMULATORS:
        return ACCUMULATORS[ufunc](inputs[0], kwargs.pop("axis", 0), **kwargs)
    if method == "outer" and ufunc in F.NUMPY_UFUNCS and len(inputs) == 2 and not kwargs:
        a, b = arr(inputs[0]), arr(inputs[1])
        return F.NUMPY_UFUNCS[ufunc](F.reshape(a, a.shape + (1,) * b.ndim), b)
    return None
