"""Shape and movement functions with numpy's signatures: ravel, repeat,
tile, roll, rot90, flip, swapaxes, moveaxis, atleast_nd, diag, diagonal,
tril, triu, pad, select, append, the split and stack families.  Each is a
composition of movement primitives and constant-index gathers, so it is
linear and its derivatives of every order follow."""

from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import functions as F
from ..core import apply
from ._common import arr, axis_of, gather_flat

__all__ = ["ravel", "repeat", "tile", "roll", "rot90", "flip", "flipud", "fliplr", "swapaxes", "moveaxis",
           "atleast_1d", "atleast_2d", "atleast_3d", "diag", "diagonal", "tril", "triu", "pad", "select",
           "append", "split", "array_split", "hsplit", "vsplit", "dsplit", "vstack", "hstack", "dstack",
           "column_stack", "concatenate", "stack", "copy", "rollaxis", "linspace"]


def _int(name, what, v) -> int:
    try:
        v = operator.index(v)
    except TypeError:
        raise TypeError(f"{name}: {what} must be an integer, got {v!r}") from None
    if not -(2 ** 62) < v < 2 ** 62:  # sizes and offsets are int64 in numpy and in compiled code
        raise ValueError(f"{name}: {what} = {v} is out of range")
    return v


def ravel(a, order="C"):
    """The elements in one dimension (C order; ``order='F'`` column-major).

    Example:
        >>> import symdl
        >>> symdl.ravel(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]))
        dlarray([1., 2., 3., 4.])
    """
    x = arr(a)
    if order in ("C", "A", "K"):
        return F.reshape(x, (-1,))
    if order == "F":
        return F.reshape(F.transpose(x), (-1,))
    raise ValueError(f"ravel: order must be 'C', 'F', 'A' or 'K', got {order!r}")


def copy(a, order="K", subok=False):
    """A copy (dlarrays are immutable: the same values, still differentiable).

    Example:
        >>> import symdl
        >>> symdl.copy(symdl.dlarray([1.0]))
        dlarray([1.])
    """
    x = arr(a)
    return F.dlarray._wrap(x._value.copy(), x._node, x._trace, x._fmt, ("alias", x) if x._node is not None else None)


def repeat(a, repeats, axis=None):
    """Repeat each element ``repeats`` times (an int or one count per element).

    Example:
        >>> import symdl
        >>> symdl.repeat(symdl.dlarray([1.0, 2.0]), [1, 3])
        dlarray([1., 2., 2., 2.])
    """
    x = arr(a)
    if axis is None:
        x, axis = F.reshape(x, (-1,)), 0
    ax = axis_of("repeat", axis, x.ndim)
    r = np.asarray(repeats)
    if r.dtype.kind not in "iu" or (r < 0).any():
        raise ValueError(f"repeat: repeats must be non-negative integers, got {repeats!r}")
    try:
        idx = np.repeat(np.arange(x.shape[ax]), r)
    except ValueError as err:
        raise ValueError(f"repeat: {err} (axis {ax} of shape {x.shape}, repeats {repeats!r})") from None
    return F.take(x, idx.astype(np.int64), axis=ax)


def tile(A, reps):
    """``A`` repeated ``reps`` times along each axis (numpy's ``tile``).

    Example:
        >>> import symdl
        >>> symdl.tile(symdl.dlarray([1.0, 2.0]), 2)
        dlarray([1., 2., 1., 2.])
    """
    x = arr(A)
    reps = tuple(_int("tile", "reps", r) for r in np.atleast_1d(np.asarray(reps)).tolist())
    if any(r < 0 for r in reps):
        raise ValueError(f"tile: reps must be non-negative, got {reps}")
    if x.ndim < len(reps):
        x = F.reshape(x, (1,) * (len(reps) - x.ndim) + x.shape)
    reps = (1,) * (x.ndim - len(reps)) + reps
    for ax, r in enumerate(reps):
        if r != 1:
            x = F.take(x, np.tile(np.arange(x.shape[ax]), r).astype(np.int64), axis=ax)
    return x


def roll(a, shift, axis=None):
    """Elements shifted cyclically along ``axis`` (None: the flattened array).

    Example:
        >>> import symdl
        >>> symdl.roll(symdl.dlarray([1.0, 2.0, 3.0]), 1)
        dlarray([3., 1., 2.])
    """
    x = arr(a)
    if axis is None:
        return F.reshape(roll(F.reshape(x, (-1,)), shift, 0), x.shape)
    if x.ndim == 0:
        raise ValueError(f"roll: axis {axis!r} is out of range for a 0-d array (use axis=None)")
    shifts, axes = np.broadcast_arrays(np.asarray(shift), np.asarray(axis))
    total: dict[int, int] = {}
    for s, ax in zip(shifts.ravel().tolist(), axes.ravel().tolist()):
        ax = axis_of("roll", ax, x.ndim)
        total[ax] = total.get(ax, 0) + _int("roll", "shift", s)
    for ax, s in total.items():
        n = x.shape[ax]
        if n:
            x = F.take(x, ((np.arange(n) - s) % n).astype(np.int64), axis=ax)
    return x


def flip(m, axis=None):
    """Reverse the order of elements along ``axis`` (None: every axis).

    Example:
        >>> import symdl
        >>> symdl.flip(symdl.dlarray([1.0, 2.0, 3.0]))
        dlarray([3., 2., 1.])
    """
    x = arr(m)
    axes = range(x.ndim) if axis is None else F._axes(x, axis, "flip")
    key = [slice(None)] * x.ndim
    for ax in axes:
        key[ax] = slice(None, None, -1)
    return x[tuple(key)] if x.ndim else x


def rot90(m, k=1, axes=(0, 1)):
    """Rotate by 90 degrees ``k`` times in the plane of ``axes`` (numpy's rule:
    from the first axis towards the second).

    Example:
        >>> import symdl
        >>> symdl.rot90(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]))
        dlarray([[2., 4.],
                 [1., 3.]])
    """
    x = arr(m)
    if len(axes) != 2:
        raise ValueError(f"rot90: axes must be two axes, got {axes!r}")
    if x.ndim < 2:
        raise ValueError(f"rot90: needs an array of at least two dimensions, got shape {x.shape}")
    a0, a1 = axis_of("rot90", axes[0], x.ndim), axis_of("rot90", axes[1], x.ndim)
    if a0 == a1:
        raise ValueError(f"rot90: axes must be different, got {axes!r}")
    k = _int("rot90", "k", k) % 4
    if k == 0:
        return x
    if k == 2:
        return flip(flip(x, a0), a1)
    perm = list(range(x.ndim))
    perm[a0], perm[a1] = perm[a1], perm[a0]
    if k == 1:
        return F.transpose(flip(x, a1), perm)
    return flip(F.transpose(x, perm), a1)


def flipud(m):
    """Reverse along axis 0.

    Example:
        >>> import symdl
        >>> symdl.flipud(symdl.dlarray([[1.0], [2.0]]))
        dlarray([[2.],
                 [1.]])
    """
    x = arr(m)
    if x.ndim < 1:
        raise ValueError("flipud: needs an array of at least one dimension")
    return flip(x, 0)


def fliplr(m):
    """Reverse along axis 1.

    Example:
        >>> import symdl
        >>> symdl.fliplr(symdl.dlarray([[1.0, 2.0]]))
        dlarray([[2., 1.]])
    """
    x = arr(m)
    if x.ndim < 2:
        raise ValueError(f"fliplr: needs an array of at least two dimensions, got shape {x.shape}")
    return flip(x, 1)


def swapaxes(a, axis1, axis2):
    """Exchange two axes.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.swapaxes(symdl.dlarray(np.zeros((2, 3, 4))), 0, 2).shape
        (4, 3, 2)
    """
    x = arr(a)
    i, j = axis_of("swapaxes", axis1, x.ndim), axis_of("swapaxes", axis2, x.ndim)
    perm = list(range(x.ndim))
    perm[i], perm[j] = perm[j], perm[i]
    return F.transpose(x, perm)


def moveaxis(a, source, destination):
    """Move axes to new positions (the others keep their order).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.moveaxis(symdl.dlarray(np.zeros((2, 3, 4))), 0, -1).shape
        (3, 4, 2)
    """
    x = arr(a)
    src = [axis_of("moveaxis", s, x.ndim) for s in np.atleast_1d(source).tolist()]
    dst = [axis_of("moveaxis", d, x.ndim) for d in np.atleast_1d(destination).tolist()]
    if len(src) != len(dst) or len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"moveaxis: source {source!r} and destination {destination!r} must be distinct "
                         "axes of equal number")
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return F.transpose(x, order)


def rollaxis(a, axis, start=0):
    """numpy's ``rollaxis``: axis ``axis`` moved to before position ``start``.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.rollaxis(symdl.dlarray(np.zeros((2, 3, 4))), 2).shape
        (4, 2, 3)
    """
    x = arr(a)
    ax = axis_of("rollaxis", axis, x.ndim)
    start = _int("rollaxis", "start", start)
    if not -x.ndim <= start <= x.ndim:
        raise ValueError(f"rollaxis: start {start} out of range for {x.ndim} dimensions")
    start = start % (x.ndim + 1) if start < 0 else start
    if ax < start:
        start -= 1
    return moveaxis(x, ax, start) if ax != start else x


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """``num`` evenly spaced values from ``start`` to ``stop`` (numpy's
    formula: ``start + arange(num) * step``, the last one exactly ``stop``),
    differentiable in ``start`` and ``stop``.

    Example:
        >>> import symdl
        >>> symdl.linspace(symdl.dlarray(0.0), 1.0, 5)
        dlarray([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    num = _int("linspace", "num", num)
    if num < 0:
        raise ValueError(f"linspace: number of samples must be non-negative, got {num}")
    lo, hi = F.to_operands([arr(start), arr(stop)], None if dtype is None else np.dtype(dtype).name)
    lo, hi = arr(lo), arr(hi)
    div = num - 1 if endpoint else num
    shape = np.broadcast_shapes(lo.shape, hi.shape)
    t = np.arange(num, dtype=lo.dtype).reshape((num,) + (1,) * len(shape))
    delta = F.subtract(hi, lo)
    step = F.divide(delta, float(div)) if div > 0 else None
    if step is not None:
        y = F.add(F.multiply(t, step), lo)
    else:  # numpy: num of 1 (or 0) gives start alone
        y = F.add(F.multiply(t, delta), lo)
    if endpoint and num > 1:
        y = F.concatenate([y[:-1], F.reshape(F.broadcast_to(hi, shape), (1,) + shape)], axis=0)
    if axis != 0:
        y = moveaxis(y, 0, axis)
    if retstep:
        return y, step if step is not None else F.multiply(delta, np.nan)
    return y


def _atleast(shapes_for, arys):
    out = []
    for a in arys:
        x = arr(a)
        out.append(F.reshape(x, shapes_for(x.shape)))
    return out[0] if len(out) == 1 else tuple(out)


def atleast_1d(*arys):
    """Each input with at least one dimension.

    Example:
        >>> import symdl
        >>> symdl.atleast_1d(symdl.dlarray(1.0)).shape
        (1,)
    """
    return _atleast(lambda s: s if len(s) >= 1 else (1,), arys)


def atleast_2d(*arys):
    """Each input with at least two dimensions (a vector becomes one row).

    Example:
        >>> import symdl
        >>> symdl.atleast_2d(symdl.dlarray([1.0, 2.0])).shape
        (1, 2)
    """
    return _atleast(lambda s: s if len(s) >= 2 else (1,) * (2 - len(s)) + s, arys)


def atleast_3d(*arys):
    """Each input with at least three dimensions, as numpy: (N,) -> (1, N, 1),
    (M, N) -> (M, N, 1).

    Example:
        >>> import symdl
        >>> symdl.atleast_3d(symdl.dlarray([1.0, 2.0])).shape
        (1, 2, 1)
    """
    def shape(s):
        return {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}.get(len(s), s)
    return _atleast(shape, arys)


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The diagonal of the ``axis1`` x ``axis2`` planes, as the last axis.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.diagonal(symdl.dlarray(np.arange(9.0).reshape(3, 3)), 1)
        dlarray([1., 5.])
    """
    x = arr(a)
    if x.ndim < 2:
        raise ValueError(f"diagonal: needs an array of at least two dimensions, got shape {x.shape}")
    offset = _int("diagonal", "offset", offset)
    a1, a2 = axis_of("diagonal", axis1, x.ndim), axis_of("diagonal", axis2, x.ndim)
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 cannot be the same, got {axis1} and {axis2}")
    # numpy's own index arithmetic, on the positions of the elements
    positions = np.diagonal(np.arange(x.size, dtype=np.int64).reshape(x.shape), offset, a1, a2)
    return gather_flat(x, positions)


def diag(v, k=0):
    """A 1-D ``v``: the square matrix with ``v`` on diagonal ``k``; a 2-D
    ``v``: its ``k``-th diagonal.

    Example:
        >>> import symdl
        >>> symdl.diag(symdl.dlarray([1.0, 2.0]))
        dlarray([[1., 0.],
                 [0., 2.]])
    """
    x = arr(v)
    k = _int("diag", "k", k)
    if x.ndim == 2:
        return diagonal(x, k)
    if x.ndim != 1:
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {x.shape}")
    n = x.shape[0] + builtins.abs(k)
    rows = np.arange(x.shape[0]) + builtins.max(-k, 0)
    cols = np.arange(x.shape[0]) + builtins.max(k, 0)
    flat = apply("take_add", [x, (rows * n + cols).astype(np.int64)], axis=0, size=n * n)
    return F.reshape(flat, (n, n))


def _triangle(name, m, k, lower):
    x = arr(m)
    if x.ndim < 1:
        raise ValueError(f"{name}: needs an array of at least one dimension")
    k = _int(name, "k", k)
    rows, cols = (x.shape[-1], x.shape[-1]) if x.ndim == 1 else x.shape[-2:]
    keep = np.tri(rows, cols, k, dtype=bool) if lower else ~np.tri(rows, cols, k - 1, dtype=bool)
    return F.where(keep, x, 0.0)


def tril(m, k=0):
    """The lower triangle (elements above diagonal ``k`` zeroed), of the last two axes.

    Example:
        >>> import symdl
        >>> symdl.tril(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]))
        dlarray([[1., 0.],
                 [3., 4.]])
    """
    return _triangle("tril", m, k, True)


def triu(m, k=0):
    """The upper triangle (elements below diagonal ``k`` zeroed).

    Example:
        >>> import symdl
        >>> symdl.triu(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]))
        dlarray([[1., 2.],
                 [0., 4.]])
    """
    return _triangle("triu", m, k, False)


_INDEX_MODES = ("edge", "reflect", "symmetric", "wrap")


def pad(array, pad_width, mode="constant", **kwargs):
    """numpy's ``pad`` in the modes that move elements: 'constant' (with
    ``constant_values``), 'edge', 'reflect', 'symmetric', 'wrap'.

    Example:
        >>> import symdl
        >>> symdl.pad(symdl.dlarray([1.0, 2.0]), (1, 2), mode="edge")
        dlarray([1., 1., 2., 2., 2.])
    """
    x = arr(array)
    try:
        widths = np.broadcast_to(np.asarray(pad_width), (x.ndim, 2))
    except ValueError:
        raise ValueError(f"pad: pad_width {pad_width!r} does not fit an array of shape {x.shape}") from None
    if widths.dtype.kind not in "iu" or (widths < 0).any():
        raise ValueError(f"pad: pad_width must be non-negative integers, got {pad_width!r}")
    if mode == "constant":
        extra = set(kwargs) - {"constant_values"}
        if extra:
            raise TypeError(f"pad: unexpected keywords {sorted(extra)} for mode 'constant'")
        values = np.broadcast_to(np.asarray(kwargs.get("constant_values", 0), dtype=x.dtype), (x.ndim, 2))
        for ax, ((before, after), (cb, ca)) in enumerate(zip(widths.tolist(), values.tolist())):
            parts = []
            for width, c in ((before, cb), (after, ca)):
                shape = list(x.shape)
                shape[ax] = width
                parts.append(np.full(shape, c, dtype=x.dtype))
            x = F.concatenate([parts[0], x, parts[1]], axis=ax)
        return x
    if mode in _INDEX_MODES:
        if kwargs.get("reflect_type", "even") != "even" or set(kwargs) - {"reflect_type"}:
            raise TypeError(f"pad: mode {mode!r} takes no keywords here except reflect_type='even', got {kwargs}")
        for ax, (before, after) in enumerate(widths.tolist()):
            if before or after:
                if x.shape[ax] == 0:
                    raise ValueError(f"pad: cannot pad an empty axis {ax} in mode {mode!r}")
                idx = np.pad(np.arange(x.shape[ax]), (before, after), mode=mode)  # numpy's own index mapping
                x = F.take(x, idx.astype(np.int64), axis=ax)
        return x
    if callable(mode):
        raise TypeError("pad: a function as mode is not supported on dlarrays")
    raise ValueError(f"pad: mode {mode!r} is not supported on dlarrays; use 'constant', 'edge', 'reflect', "
                     "'symmetric' or 'wrap'")


def select(condlist, choicelist, default=0):
    """The element of the first choice whose condition holds, else ``default``.

    Example:
        >>> import symdl
        >>> x = symdl.dlarray([-1.0, 0.5, 2.0])
        >>> symdl.select([x < 0, x > 1], [-x, x * 10], default=0.0)
        dlarray([ 1.,  0., 20.])
    """
    condlist, choicelist = list(condlist), list(choicelist)
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: condlist ({len(condlist)}) and choicelist ({len(choicelist)}) "
                         "must have the same length")
    if not condlist:
        raise ValueError("select: condlist must not be empty")
    out = default
    for cond, choice in zip(reversed(condlist), reversed(choicelist)):
        c = cond if isinstance(cond, F.dlarray) else np.asarray(cond)
        if c.dtype != np.bool_:
            raise TypeError(f"select: conditions must be bool arrays, got dtype {c.dtype}")
        out = F.where(c, choice, out)
    shape = np.broadcast_shapes(*[F._shape(v) for v in condlist + choicelist + [default]])
    return F.broadcast_to(arr(out), shape) if F._shape(out) != shape else arr(out)


def append(arr_, values, axis=None):
    """``arr`` with ``values`` appended (flattened when ``axis`` is None).

    Example:
        >>> import symdl
        >>> symdl.append(symdl.dlarray([1.0]), [2.0, 3.0])
        dlarray([1., 2., 3.])
    """
    if axis is None:
        return F.concatenate([ravel(arr_), ravel(values)], axis=0)
    return F.concatenate([arr(arr_), arr(values)], axis=axis)


def _split_points(name, n, indices_or_sections, equal):
    if isinstance(indices_or_sections, (int, np.integer)):
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError(f"{name}: number of sections must be larger than 0, got {sections}")
        if equal and n % sections:
            raise ValueError(f"{name}: array split does not result in an equal division ({n} into {sections})")
        each, extra = divmod(n, sections)
        sizes = [each + 1] * extra + [each] * (sections - extra)
        return np.cumsum([0] + sizes).tolist()
    points = [_int(name, "indices", i) for i in indices_or_sections]
    return [0] + points + [n]


def array_split(ary, indices_or_sections, axis=0):
    """Split into pieces (sections may differ in size by one), as numpy.

    Example:
        >>> import symdl
        >>> [p.shape for p in symdl.array_split(symdl.dlarray([1.0, 2.0, 3.0]), 2)]
        [(2,), (1,)]
    """
    return _split("array_split", ary, indices_or_sections, axis, equal=False)


def split(ary, indices_or_sections, axis=0):
    """Split into equal sections or at the given indices.

    Example:
        >>> import symdl
        >>> symdl.split(symdl.dlarray([1.0, 2.0, 3.0, 4.0]), [1])
        [dlarray([1.]), dlarray([2., 3., 4.])]
    """
    return _split("split", ary, indices_or_sections, axis, equal=True)


def _split(name, ary, indices_or_sections, axis, equal):
    x = arr(ary)
    if x.ndim == 0:
        raise ValueError(f"{name}: cannot split a 0-d array")
    ax = axis_of(name, axis, x.ndim)
    n = x.shape[ax]
    points = _split_points(name, n, indices_or_sections, equal)
    out = []
    for start, stop in zip(points[:-1], points[1:]):
        key = [slice(None)] * x.ndim
        key[ax] = slice(start, stop)
        out.append(x[tuple(key)])
    return out


def hsplit(ary, indices_or_sections):
    """Split along axis 1 (axis 0 for 1-D input).

    Example:
        >>> import symdl
        >>> [p.shape for p in symdl.hsplit(symdl.dlarray([[1.0, 2.0]]), 2)]
        [(1, 1), (1, 1)]
    """
    x = arr(ary)
    if x.ndim == 0:
        raise ValueError("hsplit: only works on arrays of 1 or more dimensions")
    return split(x, indices_or_sections, 1 if x.ndim > 1 else 0)


def vsplit(ary, indices_or_sections):
    """Split along axis 0 (arrays of at least two dimensions).

    Example:
        >>> import symdl
        >>> [p.shape for p in symdl.vsplit(symdl.dlarray([[1.0], [2.0]]), 2)]
        [(1, 1), (1, 1)]
    """
    x = arr(ary)
    if x.ndim < 2:
        raise ValueError(f"vsplit: only works on arrays of 2 or more dimensions, got shape {x.shape}")
    return split(x, indices_or_sections, 0)


def dsplit(ary, indices_or_sections):
    """Split along axis 2 (arrays of at least three dimensions).

    Example:
        >>> import numpy as np, symdl
        >>> [p.shape for p in symdl.dsplit(symdl.dlarray(np.zeros((1, 1, 4))), 2)]
        [(1, 1, 2), (1, 1, 2)]
    """
    x = arr(ary)
    if x.ndim < 3:
        raise ValueError(f"dsplit: only works on arrays of 3 or more dimensions, got shape {x.shape}")
    return split(x, indices_or_sections, 2)


def _listed(name, tup):
    if isinstance(tup, (F.dlarray, np.ndarray)):
        # numpy reads an array as the sequence of its sub-arrays along axis 0
        if tup.ndim == 0:
            raise TypeError(f"{name}: expected a sequence of arrays, got a 0-d array")
        return [tup[k] for k in range(tup.shape[0])]
    if not isinstance(tup, (list, tuple)):
        raise TypeError(f"{name}: expected a sequence of arrays, got {type(tup).__name__}")
    if not tup:
        raise ValueError(f"{name}: needs at least one array")
    return list(tup)


def concatenate(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """numpy's ``concatenate`` (lists may hold traced values and numbers).

    Example:
        >>> import symdl
        >>> symdl.concatenate([symdl.dlarray([1.0]), [2.0]])
        dlarray([1., 2.])
    """
    if out is not None:
        raise TypeError("concatenate: out= is not supported (dlarrays are immutable)")
    parts = [arr(a) for a in _listed("concatenate", arrays)]
    if dtype is not None:
        parts = [F.astype(p, dtype) for p in parts]
    return F.concatenate(parts, axis=axis)


def stack(arrays, axis=0, out=None, *, dtype=None, casting="same_kind"):
    """numpy's ``stack`` (lists may hold traced values and numbers).

    Example:
        >>> import symdl
        >>> symdl.stack([symdl.dlarray(1.0), 2.0])
        dlarray([1., 2.])
    """
    if out is not None:
        raise TypeError("stack: out= is not supported (dlarrays are immutable)")
    parts = [arr(a) for a in _listed("stack", arrays)]
    if dtype is not None:
        parts = [F.astype(p, dtype) for p in parts]
    return F.stack(parts, axis=axis)


def vstack(tup, *, dtype=None, casting="same_kind"):
    """Stack rows: 1-D inputs become rows, then join along axis 0.

    Example:
        >>> import symdl
        >>> symdl.vstack([symdl.dlarray([1.0, 2.0]), [3.0, 4.0]]).shape
        (2, 2)
    """
    parts = [atleast_2d(a) for a in _listed("vstack", tup)]
    return concatenate(parts, 0, dtype=dtype)


def hstack(tup, *, dtype=None, casting="same_kind"):
    """Join along axis 1 (axis 0 for 1-D inputs).

    Example:
        >>> import symdl
        >>> symdl.hstack([symdl.dlarray([1.0]), [2.0, 3.0]])
        dlarray([1., 2., 3.])
    """
    parts = [atleast_1d(a) for a in _listed("hstack", tup)]
    return concatenate(parts, 0 if parts[0].ndim == 1 else 1, dtype=dtype)


def dstack(tup):
    """Join along axis 2 after :func:`atleast_3d`.

    Example:
        >>> import symdl
        >>> symdl.dstack([symdl.dlarray([1.0, 2.0]), [3.0, 4.0]]).shape
        (1, 2, 2)
    """
    parts = [atleast_3d(a) for a in _listed("dstack", tup)]
    return concatenate(parts, 2)


def column_stack(tup):
    """1-D inputs as columns (2-D ones as they are), joined along axis 1.

    Example:
        >>> import symdl
        >>> symdl.column_stack([symdl.dlarray([1.0, 2.0]), [3.0, 4.0]])
        dlarray([[1., 3.],
                 [2., 4.]])
    """
    parts = []
    for a in _listed("column_stack", tup):
        x = arr(a)
        parts.append(F.reshape(x, (x.shape[0], 1)) if x.ndim == 1 else atleast_2d(x) if x.ndim < 2 else x)
    return concatenate(parts, 1)
