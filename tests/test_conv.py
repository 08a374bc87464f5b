"""dlconv: against a direct loop in numpy (cross-correlation as MATLAB),
1-D to 3-D, stride, padding ('same' too), dilation, groups; derivatives in
X, weights and bias against central differences; bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(19)


def data(x):
    return symdl.extractdata(x)


def ref_conv(x, w, b, nsp, stride, pads, dilation, groups):
    """x: (spatial..., C, N); w: (k..., C/G, F/G, G); direct loops."""
    xp = np.pad(x, list(pads) + [(0, 0), (0, 0)])
    kernel = w.shape[:nsp]
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    out = [(xp.shape[i] - reach[i]) // stride[i] + 1 for i in range(nsp)]
    cg, fg = w.shape[nsp], w.shape[nsp + 1]
    y = np.zeros(out + [fg * groups, x.shape[-1]])
    for pos in itertools.product(*(range(m) for m in out)):
        for off in itertools.product(*(range(k) for k in kernel)):
            at = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, off, dilation))
            for g in range(groups):
                xs = xp[at][g * cg:(g + 1) * cg]                      # (C/G, N)
                y[pos][g * fg:(g + 1) * fg] += w[off][:, :, g].T @ xs
    return y + np.reshape(b, (-1, 1))


def pads_of(padding, sizes, reach, stride):
    if padding == "same":
        out = []
        for n, r, s in zip(sizes, reach, stride):
            total = max((math.ceil(n / s) - 1) * s + r - n, 0)
            out.append((total // 2, total - total // 2))
        return out
    return [(padding, padding)] * len(sizes) if isinstance(padding, int) else list(padding)


CASES = [  # fmt, x shape, kernel, C/G, F/G, groups, stride, padding, dilation
    ("SSCB", (5, 6, 3, 2), (3, 2), 3, 4, 1, (1, 1), 0, (1, 1)),
    ("SSCB", (6, 6, 4, 2), (3, 3), 2, 3, 2, (2, 1), "same", (1, 2)),
    ("SCB", (9, 2, 3), (3,), 2, 2, 1, (2,), 1, (2,)),
    ("SSSCB", (4, 3, 4, 2, 1), (2, 2, 2), 2, 2, 1, (1, 1, 2), ((1, 0), (0, 1), (0, 0)), (1, 1, 1)),
]


@pytest.mark.parametrize("fmt, shape, kernel, cg, fg, groups, stride, padding, dilation", CASES)
def test_values_against_a_direct_loop(fmt, shape, kernel, cg, fg, groups, stride, padding, dilation):
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal(kernel + (cg, fg, groups))
    b = RNG.standard_normal(fg * groups)
    weights = w[..., 0] if groups == 1 else w                          # MATLAB's 4-D form when ungrouped
    y = symdl.dlconv(symdl.dlarray(x, fmt), weights, b, stride=stride, padding=padding, dilation=dilation)
    nsp = fmt.count("S")
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    pads = pads_of(padding, shape[:nsp], reach, stride)
    np.testing.assert_allclose(data(y), ref_conv(x, w, b, nsp, stride, pads, dilation, groups), rtol=1e-12,
                               atol=1e-12)
    assert y.fmt == fmt


def test_derivatives_in_x_weights_and_bias():
    x0 = RNG.standard_normal((4, 5, 2, 2)) * 0.5
    w0 = RNG.standard_normal((2, 3, 2, 3)) * 0.3   # moderate tanh arguments: central differences stay accurate
    b0 = RNG.standard_normal(3)
    out_w = RNG.standard_normal((2, 3, 3, 2))

    def f(x, w, b):
        if isinstance(x, symdl.dlarray):
            y = symdl.dlconv(symdl.dlarray(x, "SSCB"), w, b, stride=(2, 1), padding=((0, 1), (0, 0)))
            return symdl.sum(symdl.tanh(y) * out_w)
        y = ref_conv(x, w[..., None], b, 2, (2, 1), [(0, 1), (0, 0)], (1, 1), 1)
        return np.sum(np.tanh(y) * out_w)
    check_grads(f, [x0, w0, b0], order=2)


def test_bad_input_is_a_clear_error():
    X = symdl.dlarray(RNG.standard_normal((5, 5, 3, 2)), "SSCB")
    with pytest.raises(ValueError, match="weights take 2 channels per group x 1 groups, but X has 3 channels"):
        symdl.dlconv(X, np.ones((3, 3, 2, 4)), 0.0)
    with pytest.raises(ValueError, match="bias must hold 4 values"):
        symdl.dlconv(X, np.ones((3, 3, 3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match="weights must have 4 dimensions"):
        symdl.dlconv(X, np.ones((3, 3)), 0.0)
    with pytest.raises(ValueError, match="the filter .* is larger than the"):
        symdl.dlconv(X, np.ones((6, 6, 3, 1)), 0.0)
    with pytest.raises(ValueError, match="X must be a formatted dlarray with spatial"):
        symdl.dlconv(symdl.dlarray(np.ones((5, 5))), np.ones((3, 3, 1, 1)), 0.0)
