"""dlconv: MATLAB's convolution (cross-correlation) over the spatial
dimensions, 1-D to 3-D, with stride, padding (numbers or ``'same'``),
dilation and groups.

Written as a decomposition: for each position in the filter, a strided slice
of the zero-padded input (channels last) times that position's weights,
summed, so derivatives of every order come from the slice and contraction
rules.  (Fast convolution kernels belong to the code generator.)
"""

from __future__ import annotations

import itertools

from .. import functions as F
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
    space = spatial_axes(X, where, channels=True)
    W = as_dlarray(weights, "weights", where)
    c_axis = X._fmt.index("C")
    n, channels = len(space), X.shape[c_axis]
    if W.ndim == n + 2:
        groups, filters = 1, W.shape[n + 1]
        W = F.reshape(W, W.shape + (1,))
    elif W.ndim == n + 3:
        groups, filters = W.shape[n + 2], W.shape[n + 1] * W.shape[n + 2]
    else:
        raise ValueError(f"{where}: weights must have {n + 2} dimensions (filter sizes, C, F) or {n + 3} "
                         f"(filter sizes, C/G, F/G, G) for X with {n} spatial dimensions, got shape {W.shape}")
    per_group_in = W.shape[n]
    if per_group_in * groups != channels:
        raise ValueError(f"{where}: weights take {per_group_in} channels per group x {groups} groups, but X has "
                         f"{channels} channels (shape {X.shape}, fmt {X._fmt!r})")
    b = as_dlarray(bias, "bias", where)
    if b.size not in (1, filters):
        raise ValueError(f"{where}: bias must hold {filters} values (one per filter) or one, got shape {b.shape}")
    kernel = W.shape[:n]
    stride = per_axis(stride, n, "stride", where)
    dilation = per_axis(dilation, n, "dilation", where)
    if any(v < 1 for v in stride + dilation):
        raise ValueError(f"{where}: stride and dilation must be positive, got {stride} and {dilation}")
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    sizes = [X.shape[k] for k in space]
    pads = padding_pairs(padding, sizes, reach, stride, where)
    padded = [s + a + z for s, (a, z) in zip(sizes, pads)]
    if any(r > p for r, p in zip(reach, padded)):
        raise ValueError(f"{where}: the filter (reach {tuple(reach)} with dilation) is larger than the (padded) "
                         f"spatial size {tuple(padded)} of X")
    out = [(p - r) // s + 1 for p, r, s in zip(padded, reach, stride)]
    # channels last: (spatial..., other..., C)
    others = [k for k in range(X.ndim) if k not in space and k != c_axis]
    Xc = F.transpose(pad_constant(X, space, pads, 0.0), space + others + [c_axis])
    total = None
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = [slice(o * d, o * d + (m - 1) * s + 1, s) for o, d, m, s in zip(offset, dilation, out, stride)]
        window = Xc[tuple(index) + (Ellipsis,)]                        # (out..., other..., C)
        w = W[offset]                                                  # (C/G, F/G, G)
        parts = [F.matmul(window[..., g * per_group_in:(g + 1) * per_group_in], w[:, :, g]) for g in range(groups)]
        term = parts[0] if groups == 1 else F.concatenate(parts, axis=-1)
        total = term if total is None else total + term
    total = total + F.reshape(b, (-1,)) if b.size == filters else total + F.reshape(b, ())
    # back to X's layout: spatial and other axes where they were, F in C's place
    order = space + others + [c_axis]
    inverse = [order.index(k) for k in range(X.ndim)]
    Y = F.transpose(total, inverse)
    Y._fmt = X._fmt
    return Y


def dltranspconv(X, weights, bias, stride=1, cropping=0, dilation=1):
    raise NotImplementedError
