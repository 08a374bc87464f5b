"""Pooling with MATLAB's semantics: maxpool and avgpool over the spatial
(``'S'``) dimensions of a formatted dlarray, with stride and padding
(numbers or ``'same'``).

Written as decompositions, so derivatives of every order come from the
movement, elementwise and reduction rules; each is laid out to be one pass:

- windows that tile the (padded) input (stride = pool size, the usual 2 x 2
  stride 2 and global pooling): a reshape that gives each window axes of its
  own, then one reduction over them (a view of the input, no copy);
- overlapping windows, average: the sum of one strided slice per position in
  the window, a single fused loop (its derivative: the sum of their adjoints,
  one loop over the input);
- overlapping windows, maximum: those slices stacked (one copy each), then
  one reduction.  The maximum stays a reduction everywhere, so its derivative
  shares the cotangent equally among tied elements (MATLAB gives it to one of
  them); a chain of elementwise maxima would split ties differently.

maxpool pads with -inf (padding never wins); avgpool pads with 0 and divides
by the window size, as MATLAB's default.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
from collections import namedtuple

import numpy as np

from .. import functions as F
from ..array import dlarray, extractdata, stripdims
from ..core import apply, is_traced
from .args import describe, flag
from .spatial import pad_constant, padding_pairs, per_axis, spatial_axes

__all__ = ["maxpool", "avgpool", "maxunpool"]

# overlapping average windows of more positions than this are stacked and
# reduced instead of summed as one n-ary sum (whose loop body grows with it)
_MAX_SUM_TERMS = 64

_Geometry = namedtuple("_Geometry", "axes pool stride pads out")


def _geometry(X, pool_size, stride, padding, where: str) -> _Geometry:
    """The checked spatial arguments: X's spatial axes, pool size, stride,
    (before, after) padding and output size per spatial axis."""
    axes = spatial_axes(X, where)
    sizes = [X.shape[k] for k in axes]
    pool = per_axis(pool_size, len(axes), "pool_size", where)
    stride = per_axis(stride, len(axes), "stride", where)
    if any(v < 1 for v in pool + stride):
        raise ValueError(f"{where}: pool_size and stride must be positive, got {pool_size!r} and {stride!r}")
    pads = padding_pairs(padding, sizes, pool, stride, where)
    padded = [n + a + b for n, (a, b) in zip(sizes, pads)]
    if any(k > n for k, n in zip(pool, padded)):
        raise ValueError(f"{where}: the pool {pool} is larger than the (padded) spatial size {tuple(padded)} "
                         f"of X (shape {X.shape}, fmt {X._fmt!r})")
    out = [(n - k) // s + 1 for n, k, s in zip(padded, pool, stride)]
    return _Geometry(axes, pool, stride, pads, out)


def _offsets(geo: _Geometry) -> list[tuple[int, ...]]:
    return list(itertools.product(*(range(k) for k in geo.pool)))


def _slices(Xp, geo: _Geometry) -> list:
    """One strided slice of the padded input per position in the window:
    slice ``o`` holds, for every output element, the window's element at ``o``."""
    slices = []
    for offset in _offsets(geo):
        index = [slice(None)] * Xp.ndim
        for axis, o, s, m in zip(geo.axes, offset, geo.stride, geo.out):
            index[axis] = slice(o, o + (m - 1) * s + 1, s)
        slices.append(Xp[tuple(index)])
    return slices


def _stacked(Xp, geo: _Geometry):
    """The window positions stacked on a new leading axis.  Each slice gets
    its new axis by a broadcast (a view), so stacking is one copy per slice
    (``expand_dims`` would reshape a strided view: a second copy)."""
    return F.concatenate([F.broadcast_to(v, (1,) + v.shape) for v in _slices(Xp, geo)], axis=0)


def _tiles(geo: _Geometry) -> bool:
    """Whether the windows tile the padded input: stride = pool size."""
    return all(s == k for s, k in zip(geo.stride, geo.pool))


def _blocks(Xp, geo: _Geometry):
    """For tiling windows: the padded input (cut to whole windows) reshaped
    so that each spatial axis of size ``out * k`` becomes ``(out, k)``, and
    the axes of the ``k``s, the ones to reduce."""
    used = [slice(None)] * Xp.ndim
    for axis, m, k in zip(geo.axes, geo.out, geo.pool):
        used[axis] = slice(0, m * k)
    Xu = Xp[tuple(used)]
    shape, window_axes = [], []
    for axis, d in enumerate(Xu.shape):
        if axis in geo.axes:
            k = geo.pool[geo.axes.index(axis)]
            shape += [d // k, k]
            window_axes.append(len(shape) - 1)
        else:
            shape.append(d)
    return F.reshape(Xu, tuple(shape)), tuple(window_axes)


def maxpool(X, pool_size, stride=1, padding=0, return_indices: bool = False):
    """The maximum over each pooling window of the spatial dimensions.
    With ``return_indices=True``, ``(Y, indices, input_size)`` as MATLAB's
    ``[Y, indx, inputSize] = maxpool(...)``: for each element of Y the flat
    (C-order) index into X of the window's maximum (the first one at a tie),
    for :func:`maxunpool`.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.arange(16.0).reshape(4, 4), "SS")
        >>> symdl.maxpool(X, 2, stride=2)
        dlarray([[ 5.,  7.],
                 [13., 15.]], fmt='SS')
    """
    return_indices = flag(return_indices, "return_indices", "maxpool")
    geo = _geometry(X, pool_size, stride, padding, "maxpool")
    Xp = pad_constant(X, geo.axes, geo.pads, -np.inf)
    if _tiles(geo) and not return_indices:
        blocks, window_axes = _blocks(Xp, geo)
        out = F.max(blocks, axis=window_axes)
    else:
        windows = _stacked(Xp, geo)
        out = F.max(windows, axis=0)
    out._fmt = X._fmt
    if return_indices:
        return out, _argmax_indices(windows, geo, X.shape), X.shape
    return out


def avgpool(X, pool_size, stride=1, padding=0):
    """The mean over each pooling window of the spatial dimensions (padding
    counts as zeros in the mean, as MATLAB's default).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.arange(16.0).reshape(4, 4), "SS")
        >>> symdl.avgpool(X, 2, stride=2)
        dlarray([[ 2.5,  4.5],
                 [10.5, 12.5]], fmt='SS')
    """
    geo = _geometry(X, pool_size, stride, padding, "avgpool")
    Xp = pad_constant(X, geo.axes, geo.pads, 0.0)
    count = math.prod(geo.pool)
    if _tiles(geo):
        blocks, window_axes = _blocks(Xp, geo)
        total = F.sum(blocks, axis=window_axes)
    elif count <= _MAX_SUM_TERMS:
        total = functools.reduce(operator.add, _slices(Xp, geo))
    else:
        total = F.sum(_stacked(Xp, geo), axis=0)
    out = total * (1.0 / count)
    out._fmt = X._fmt
    return out


def _argmax_indices(windows, geo: _Geometry, input_shape):
    """The flat (C-order) index into the input of each window's first
    maximum (numpy's argmax: the first NaN where there is one).

    Window positions run in C order, so the first maximum is the one of
    smallest flat index: the minimum over the window of the flat index where
    the element is a maximum.  Written with symdl's operations, so when X is
    traced the indices are computed by the trace for every input (reading
    this call's values would freeze them into a compiled trace, and
    maxunpool would place later inputs at the first input's maxima): then a
    dlarray of float64 integers, carrying no derivative; otherwise an int64
    numpy array.  A position in the padding gets the index ``X.size`` (out
    of range), never chosen unless the whole window is padding."""
    axes, stride, before = geo.axes, geo.stride, [a for a, _ in geo.pads]
    out_shape = windows.shape[1:]
    coords = np.indices(out_shape)
    flat = []
    for offset in _offsets(geo):
        position, inside = list(coords), np.ones(out_shape, dtype=bool)
        for k, (axis, s, b) in enumerate(zip(axes, stride, before)):
            position[axis] = coords[axis] * s + offset[k] - b
            inside &= (position[axis] >= 0) & (position[axis] < input_shape[axis])
        index = np.ravel_multi_index(tuple(np.where(inside, p, 0) for p in position), input_shape)
        flat.append(np.where(inside, index, math.prod(input_shape)).astype(np.float64))
    flat = np.stack(flat)                                    # (positions, out...): data, from the geometry
    best = apply("stop_gradient", [F.max(windows, axis=0, keepdims=True)])
    chosen = F.logical_or(F.compare("eq", windows, best), F.compare("ne", windows, windows))
    indices = F.min(F.where(chosen, flat, np.inf), axis=0)
    indices._fmt = None
    if is_traced(indices):
        return indices
    return extractdata(indices).astype(np.int64)


def maxunpool(Y, indices, input_size):
    """The inverse of max pooling: zeros of ``input_size`` with each element
    of Y placed at its index (summed where windows overlap), as MATLAB's
    ``maxunpool(Y, indx, inputSize)``.  Linear in Y, differentiable to any order.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([[1.0, 5.0], [3.0, 2.0]]), "SS")
        >>> Y, idx, size = symdl.maxpool(X, 2, return_indices=True)
        >>> symdl.maxunpool(Y, idx, size)
        dlarray([[0., 5.],
                 [0., 0.]], fmt='SS')
    """
    if not isinstance(Y, dlarray):
        raise TypeError(f"maxunpool: Y must be a dlarray, got {describe(Y)}")
    traced_idx = isinstance(indices, dlarray) and is_traced(indices)
    idx = indices._value if isinstance(indices, dlarray) else np.asarray(indices)
    if isinstance(indices, dlarray) and idx.dtype.kind == "f" and np.all(np.isfinite(idx)) and \
            np.all(idx == np.round(idx)):
        idx = idx.astype(np.int64)       # maxpool's indices of a traced X: integers in a float array
    if isinstance(input_size, str) or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                                              for d in np.atleast_1d(np.asarray(input_size, dtype=object))):
        raise TypeError(f"maxunpool: input_size must be a tuple of ints (the shape of maxpool's input), "
                        f"got {input_size!r}")
    size = tuple(int(d) for d in input_size)
    if any(d < 0 for d in size):
        raise ValueError(f"maxunpool: input_size must be a shape (non-negative ints), got {size}")
    total = math.prod(size)
    if idx.shape != Y.shape or idx.dtype.kind not in "iu":
        raise ValueError(f"maxunpool: indices must be integers of Y's shape {Y.shape}, got {idx.dtype}{idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= total):
        raise ValueError(f"maxunpool: indices must be in 0..{total - 1} for input_size {size}")
    flat = F.reshape(Y, (Y.size,))
    if traced_idx:
        # computed by the trace (maxpool of a traced X): used as computed on every call; the
        # values checked above are this call's, later ones are checked by take_add's bounds check
        where = apply("convert", [F.reshape(stripdims(indices), (Y.size,))], dtype="int64")
    else:
        where = idx.reshape(-1).astype(np.int64)
    placed = apply("take_add", [flat, where], axis=0, size=total)
    out = F.reshape(placed, size)
    out._fmt = Y._fmt if Y._fmt and len(Y._fmt) == len(size) else None
    return out
