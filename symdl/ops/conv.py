"""dlconv and dltranspconv: MATLAB's convolution (cross-correlation) over the
spatial dimensions, 1-D to 3-D, with stride, padding (numbers or ``'same'``),
dilation and groups, and its transpose (adjoint) with cropping.

Written as decompositions around ONE contraction each (im2col), the shape a
matrix-multiply kernel wants: dlconv copies the strided slices of the
zero-padded, channels-first input one after the other into a patch array (a
row per filter position and channel of the group, a column per output pixel)
and multiplies the weights by it; dltranspconv multiplies the input by all filter
positions' weights at once and places each position's contributions at its
strided output positions (``unslice``, the adjoint of a slice), summed in one
pass (col2im).  Groups are the contraction's batch axis.  Derivatives of
every order come from the slice, concatenate and contraction rules, so each
gradient is again one contraction (plus a col2im pass for the input's).
"""

from __future__ import annotations

import itertools
import math
from collections import namedtuple

import numpy as np

from .. import functions as F
from ..core import apply, to_operands
from .args import as_dlarray
from .spatial import pad_constant, padding_pairs, per_axis, spatial_axes

__all__ = ["dlconv", "dltranspconv"]


def dlconv(X, weights, bias, stride=1, padding=0, dilation=1):
    """Convolve ``X`` (formatted, e.g. ``'SSCB'``) with ``weights`` and add
    ``bias``.

    ``weights`` is ``filterH x filterW x C x F`` (one size per spatial
    dimension, then channels in, then filters); grouped convolution takes
    MATLAB's 5-D ``filterH x filterW x C/G x F/G x G``.  ``bias`` holds F
    values.  The result has X's format, with F channels.

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.arange(9.0).reshape(3, 3, 1, 1), "SSCB")
        >>> W = np.ones((2, 2, 1, 1))
        >>> symdl.extractdata(symdl.dlconv(X, W, 0.0))[:, :, 0, 0]   # sums of 2 x 2 windows
        array([[ 8., 12.],
               [20., 24.]])
    """
    where = "dlconv"
    space, c_axis, W, b, groups, filters, per_group_in, kernel, stride, dilation = \
        _arguments(X, weights, bias, stride, dilation, where, transposed=False)
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    sizes = [X.shape[k] for k in space]
    pads = padding_pairs(padding, sizes, reach, stride, where)
    padded = [s + a + z for s, (a, z) in zip(sizes, pads)]
    if any(r > p for r, p in zip(reach, padded)):
        raise ValueError(f"{where}: the filter (reach {tuple(reach)} with dilation) is larger than the (padded) "
                         f"spatial size {tuple(padded)} of X")
    out = [(p - r) // s + 1 for p, r, s in zip(padded, reach, stride)]
    # channels first: (C, spatial..., other...); for 'SSCB' the batch stays the contiguous axis
    others = [k for k in range(X.ndim) if k not in space and k != c_axis]
    order = [c_axis] + space + others
    Xc = F.transpose(pad_constant(X, space, pads, 0.0), order)
    rest = Xc.shape[1 + len(space):]
    W, Xc = to_operands([W, Xc])
    depth = math.prod(kernel) * per_group_in            # the contraction: filter positions x channels per group
    cols = math.prod(out) * math.prod(rest)             # one column per output pixel (and observation)
    patches = _patches(Xc, kernel, out, stride, dilation, groups, per_group_in)
    per_group_out = filters // groups
    if groups == 1:
        # (depth x F)^T (depth x cols) -> F x cols
        total = apply("dot_general", [F.reshape(W, (depth, filters)), F.reshape(patches, (depth, cols))],
                      contract=((0,), (0,)), batch=((), ()))
    else:
        # the groups are the contraction's batch axis: (G, depth, F/G) x (G, depth, cols) -> (G, F/G, cols)
        Wg = F.reshape(F.transpose(W, (W.ndim - 1,) + tuple(range(W.ndim - 1))), (groups, depth, per_group_out))
        total = apply("dot_general", [Wg, F.reshape(patches, (groups, depth, cols))],
                      contract=((1,), (1,)), batch=((0,), (0,)))
    return _finish(F.reshape(total, (filters,) + tuple(out) + tuple(rest)), b, filters, X, order)


def _patches(Xc, kernel, out, stride, dilation, groups: int, per_group_in: int):
    """im2col: the strided slices of the padded, channels-first input ``Xc``
    (one per group and filter position, each ``C/G x out... x other...``)
    stacked on a new leading axis, ordered (group, filter position, channel):
    reshaped to ``(G, positions * C/G, columns)`` it is the contraction's
    operand, every output pixel's receptive field one column.  Each slice
    gets its new axis by a broadcast (a view), so stacking copies it once
    (``expand_dims`` would reshape a strided view: a second copy)."""
    n = len(kernel)
    keep = (slice(None),) * (Xc.ndim - n - 1)
    columns = []
    for g in range(groups):
        channels = slice(g * per_group_in, (g + 1) * per_group_in) if groups > 1 else slice(None)
        for offset in itertools.product(*(range(k) for k in kernel)):
            index = tuple(slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in zip(offset, dilation, out, stride))
            column = Xc[(channels,) + index + keep]                   # (C/G, out..., other...)
            columns.append(F.broadcast_to(column, (1,) + column.shape))
    return columns[0] if len(columns) == 1 else F.concatenate(columns, axis=0)


def dltranspconv(X, weights, bias, stride=1, cropping=0, dilation=1):
    """Transposed convolution of ``X`` (formatted, e.g. ``'SSCB'``) with
    ``weights``, plus ``bias``: MATLAB's ``dltranspconv``, the adjoint of
    :func:`dlconv` with the same weights, stride and dilation.

    ``weights`` is ``filterH x filterW x numFilters x numChannels`` (one size
    per spatial dimension; ``numChannels`` is X's channel count, the result
    has ``numFilters`` channels), or for grouped transposed convolution
    MATLAB's 5-D ``filterH x filterW x numFiltersPerGroup x
    numChannelsPerGroup x numGroups``.  This is the layout of dlconv's weights
    read the other way, so ``dltranspconv(Y, W, 0)`` is the transpose of
    ``dlconv(X, W, 0)``.  ``bias`` holds numFilters (x numGroups) values or one.

    Each spatial output size is ``stride*(in - 1) + dilation*(filter - 1) + 1``
    minus the cropping.  ``cropping``: an int for every edge, one int per
    spatial dimension (both edges), one ``(before, after)`` pair per spatial
    dimension, or ``'same'`` (output size ``stride * in``; an odd total crop
    takes the extra row or column from the end, as MATLAB).

    Example:
        >>> import numpy as np, symdl
        >>> X = symdl.dlarray(np.array([1.0, 2.0]).reshape(2, 1, 1), "SCB")
        >>> W = np.array([1.0, 10.0, 100.0]).reshape(3, 1, 1)
        >>> symdl.extractdata(symdl.dltranspconv(X, W, 0.0, stride=2))[:, 0, 0]
        array([  1.,  10., 102.,  20., 200.])
    """
    where = "dltranspconv"
    space, c_axis, W, b, groups, filters, per_group_in, kernel, stride, dilation = \
        _arguments(X, weights, bias, stride, dilation, where, transposed=True)
    n = len(space)
    sizes = [X.shape[k] for k in space]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    full = [(m - 1) * s + r for m, s, r in zip(sizes, stride, reach)]
    crops = _cropping_pairs(cropping, n, reach, stride, where)
    out = [f - a - z for f, (a, z) in zip(full, crops)]
    if any(o < 1 for o in out):
        raise ValueError(f"{where}: cropping {cropping!r} removes the whole output (uncropped spatial size "
                         f"{tuple(full)}, cropping {tuple(crops)})")
    # channels first: (C, spatial..., other...)
    others = [k for k in range(X.ndim) if k not in space and k != c_axis]
    order = [c_axis] + space + others
    Xc = F.transpose(X, order)
    rest = Xc.shape[1 + n:]
    W, Xc = to_operands([W, Xc])
    positions, per_group_out = math.prod(kernel), filters // groups
    cols = math.prod(sizes) * math.prod(rest)
    # one contraction gives every input pixel's contribution to each filter position:
    # Z[position, filter, pixel] = sum over the group's channels of W[position, filter, channel] X[channel, pixel]
    if groups == 1:
        Wt = F.reshape(F.transpose(W, (n + 1,) + tuple(range(n)) + (n, n + 2)), (per_group_in, positions * filters))
        Z = apply("dot_general", [Wt, F.reshape(Xc, (per_group_in, cols))], contract=((0,), (0,)), batch=((), ()))
        Z = F.reshape(Z, (positions, filters) + tuple(sizes) + tuple(rest))
        lead = ()
    else:
        Wt = F.reshape(F.transpose(W, (n + 2, n + 1) + tuple(range(n)) + (n,)),
                       (groups, per_group_in, positions * per_group_out))
        Z = apply("dot_general", [Wt, F.reshape(Xc, (groups, per_group_in, cols))],
                  contract=((1,), (1,)), batch=((0,), (0,)))
        Z = F.reshape(Z, (groups, positions, per_group_out) + tuple(sizes) + tuple(rest))
        lead = (slice(None),)
    # col2im: each position's contributions placed (unslice) at the strided output
    # positions they belong to, summed in one pass over the output
    head = ((groups,) if groups > 1 else ()) + (1, per_group_out)     # ([G,] 1, F/G): the placed array's lead
    shape = head + tuple(out) + tuple(rest)
    total = None
    for p, offset in enumerate(itertools.product(*(range(k) for k in kernel))):
        # input index i lands at output o*d + i*s - crop_before; keep those inside [0, out)
        first, last = [], []
        for o, d, s, m, (before, _), size in zip(offset, dilation, stride, sizes, crops, out):
            shift = o * d - before
            first.append(max(0, -(shift // s) if shift < 0 else 0))
            last.append(min(m - 1, (size - 1 - shift) // s))
        if any(f > e for f, e in zip(first, last)):
            continue                                                    # this filter tap is cropped away
        index = lead + (slice(p, p + 1), slice(None)) + tuple(slice(f, e + 1) for f, e in zip(first, last))
        term = Z[index + (slice(None),) * len(rest)]                    # ([G,] 1, F/G, in..., other...)
        starts = [o * d - before + f * s for o, d, (before, _), f, s in zip(offset, dilation, crops, first, stride)]
        stops = [a + (e - f) * s + 1 for a, f, e, s in zip(starts, first, last, stride)]
        k = len(head)
        placed = apply("unslice", [term], starts=(0,) * k + tuple(starts) + (0,) * len(rest),
                       stops=shape[:k] + tuple(stops) + tuple(rest), steps=(1,) * k + tuple(stride) + (1,) * len(rest),
                       shape=shape)
        total = placed if total is None else total + placed
    if total is None:       # every tap cropped away (stride larger than the filter): bias only
        total = F.broadcast_to(np.zeros((), dtype=Xc.dtype), shape)
    return _finish(F.reshape(total, (filters,) + tuple(out) + tuple(rest)), b, filters, X, order)


_Arguments = namedtuple("_Arguments", "space c_axis W b groups filters per_group_in kernel stride dilation")


def _arguments(X, weights, bias, stride, dilation, where: str, transposed: bool) -> _Arguments:
    """The checked arguments both convolutions share: X's spatial and channel
    axes, the weights in their 5-D grouped form (a 4-D form gets G = 1), the
    group and filter counts, the bias, the filter size, stride and dilation.
    dlconv's weights are ``filter... x C/G x F/G x G``, dltranspconv's the same
    array read the other way (``filter... x F/G x C/G x G``)."""
    space = spatial_axes(X, where, channels=True)
    # numpy weights and bias take X's dtype (float32 data stays float32, as fullyconnect)
    W = as_dlarray(weights, "weights", where, like=X)
    c_axis = X._fmt.index("C")
    n, channels = len(space), X.shape[c_axis]
    if W.ndim == n + 2:
        W = F.reshape(W, W.shape + (1,))
    elif W.ndim != n + 3:
        layout = "numFilters, numChannels" if transposed else "C, F"
        grouped = "numFiltersPerGroup, numChannelsPerGroup, numGroups" if transposed else "C/G, F/G, G"
        raise ValueError(f"{where}: weights must have {n + 2} dimensions (filter sizes, {layout}) or {n + 3} "
                         f"(filter sizes, {grouped}) for X with {n} spatial dimensions, got shape {W.shape}")
    groups = W.shape[n + 2]
    per_group_in, per_group_out = (W.shape[n + 1], W.shape[n]) if transposed else (W.shape[n], W.shape[n + 1])
    filters = per_group_out * groups
    if per_group_in * groups != channels:
        raise ValueError(f"{where}: weights take {per_group_in} channels per group x {groups} groups, but X has "
                         f"{channels} channels (shape {X.shape}, fmt {X._fmt!r})")
    b = as_dlarray(bias, "bias", where, like=X)
    if b.size not in (1, filters):
        raise ValueError(f"{where}: bias must hold {filters} values (one per filter) or one, got shape {b.shape}")
    stride = per_axis(stride, n, "stride", where)
    dilation = per_axis(dilation, n, "dilation", where)
    if any(v < 1 for v in stride + dilation):
        raise ValueError(f"{where}: stride and dilation must be positive, got {stride} and {dilation}")
    return _Arguments(space, c_axis, W, b, groups, filters, per_group_in, W.shape[:n], stride, dilation)


def _finish(total, b, filters: int, X, order):
    """Add the bias to the result, whose axes are X's in ``order`` (the
    filters in C's place), and put it back in X's layout."""
    if b.size == filters:
        c = order.index(X._fmt.index("C"))
        total = total + F.reshape(b, tuple(filters if k == c else 1 for k in range(total.ndim)))
    else:
        total = total + F.reshape(b, ())
    Y = F.transpose(total, [order.index(k) for k in range(X.ndim)])
    Y._fmt = X._fmt
    return Y


def _cropping_pairs(cropping, n: int, reach, stride, where: str) -> list[tuple[int, int]]:
    """(before, after) crops per spatial axis; negative only for 'same' with a
    stride larger than the filter's reach (then the end is padded with zeros,
    which is what the transpose of dlconv's 'same' does)."""
    if isinstance(cropping, str):
        if cropping != "same":
            raise ValueError(f"{where}: cropping must be 'same', a non-negative int, one int per spatial "
                             f"dimension or one (before, after) pair per spatial dimension, got {cropping!r}")
        pairs = []
        for r, s in zip(reach, stride):
            total = r - s                       # output size stride * input size
            pairs.append((total // 2, total - total // 2) if total >= 0 else (0, total))
        return pairs
    if isinstance(cropping, (int, np.integer)) and not isinstance(cropping, bool):
        pairs = [(int(cropping), int(cropping))] * n
    else:
        items = list(cropping) if isinstance(cropping, (list, tuple, np.ndarray)) else None
        if items is not None and len(items) == n and all(isinstance(c, (int, np.integer)) and
                                                         not isinstance(c, bool) for c in items):
            pairs = [(int(c), int(c)) for c in items]
        else:
            try:
                pairs = [(int(a), int(z)) for a, z in items]
                ok = all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for p in items for c in p)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{where}: cropping must be 'same', a non-negative int, one int per spatial "
                                 f"dimension or one (before, after) pair per spatial dimension, got {cropping!r}")
    if len(pairs) != n or any(a < 0 or z < 0 for a, z in pairs):
        raise ValueError(f"{where}: cropping must be non-negative, one value or (before, after) pair per spatial "
                         f"dimension ({n}), got {cropping!r}")
    return pairs
