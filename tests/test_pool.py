"""maxpool and avgpool: against a loop over windows in numpy (stride,
padding, 'same', 1-D to 3-D), derivatives against central differences, and
bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(17)


def data(x):
    return symdl.extractdata(x)


def ref_pool(x, nsp, pool, stride, pads, kind):
    """x has nsp leading spatial axes; a loop over every output position."""
    fill = -np.inf if kind == "max" else 0.0
    width = [(a, b) for a, b in pads] + [(0, 0)] * (x.ndim - nsp)
    xp = np.pad(x, width, constant_values=fill)
    out_shape = [(xp.shape[i] - pool[i]) // stride[i] + 1 for i in range(nsp)]
    out = np.zeros(out_shape + list(x.shape[nsp:]))
    for pos in itertools.product(*(range(m) for m in out_shape)):
        window = xp[tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, stride, pool))]
        flat = window.reshape(-1, *x.shape[nsp:])
        out[pos] = flat.max(axis=0) if kind == "max" else flat.sum(axis=0) / math.prod(pool)
    return out


CASES = [
    ("SSCB", (5, 6, 2, 3), (2, 2), (2, 2), 0),
    ("SSCB", (5, 6, 2, 3), (3, 2), (1, 2), ((1, 0), (0, 1))),
    ("SSCB", (5, 7, 2, 2), (3, 3), (2, 2), "same"),
    ("SCB", (9, 2, 2), (3,), (2,), 1),
    ("SSSCB", (4, 3, 4, 1, 2), (2, 2, 2), (2, 1, 2), 0),
]


def pads_of(padding, sizes, pool, stride):
    if padding == "same":
        out = []
        for n, k, s in zip(sizes, pool, stride):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(padding, int):
        return [(padding, padding)] * len(sizes)
    return list(padding)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("fmt, shape, pool, stride, padding", CASES)
def test_values_against_a_loop(kind, fmt, shape, pool, stride, padding):
    x = RNG.standard_normal(shape)
    fn = symdl.maxpool if kind == "max" else symdl.avgpool
    y = fn(symdl.dlarray(x, fmt), pool, stride=stride, padding=padding)
    nsp = fmt.count("S")
    pads = pads_of(padding, shape[:nsp], pool, stride)
    np.testing.assert_allclose(data(y), ref_pool(x, nsp, pool, stride, pads, kind), rtol=1e-14)
    assert y.fmt == fmt
    if padding == "same":
        assert y.shape[:nsp] == tuple(math.ceil(n / s) for n, s in zip(shape, stride))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_derivatives_against_central_differences(kind):
    x0 = RNG.standard_normal((5, 4, 2, 2))
    w = RNG.standard_normal((2, 3, 2, 2))
    fn = symdl.maxpool if kind == "max" else symdl.avgpool

    def f(x):
        if isinstance(x, symdl.dlarray):
            return symdl.sum(symdl.tanh(fn(symdl.dlarray(x, "SSCB"), (3, 2), stride=(2, 1), padding=((1, 0), (0, 0))))
                             * w)
        return np.sum(np.tanh(ref_pool(x, 2, (3, 2), (2, 1), [(1, 0), (0, 0)], kind)) * w)
    check_grads(f, [x0], order=2)


def test_bad_input_is_a_clear_error():
    X = symdl.dlarray(RNG.standard_normal((3, 3, 1, 1)), "SSCB")
    with pytest.raises(ValueError, match=r"maxpool: the pool \(4, 4\) is larger than the \(padded\) spatial size"):
        symdl.maxpool(X, 4)
    with pytest.raises(ValueError, match="padding must be 'same', an int"):
        symdl.avgpool(X, 2, padding="valid")
    with pytest.raises(ValueError, match="pool_size must be an int or 2 ints"):
        symdl.maxpool(X, (2, 2, 2))
    with pytest.raises(ValueError, match="X must be a formatted dlarray with spatial"):
        symdl.maxpool(symdl.dlarray(np.ones((3, 3))), 2)
    with pytest.raises(ValueError, match="pool_size and stride must be positive"):
        symdl.avgpool(X, 2, stride=0)


def test_maxpool_indices_and_maxunpool_are_matlabs_pair():
    x = RNG.standard_normal((4, 5, 2, 3))
    X = symdl.dlarray(x, "SSCB")
    Y, idx, size = symdl.maxpool(X, (2, 2), stride=(2, 2), padding=((0, 0), (0, 1)), return_indices=True)
    assert size == x.shape and idx.shape == Y.shape
    np.testing.assert_array_equal(x.reshape(-1)[idx], data(Y))          # each index points at its window's max
    U = symdl.maxunpool(Y, idx, size)
    expected = np.zeros(x.size)
    np.add.at(expected, idx.reshape(-1), data(Y).reshape(-1))
    np.testing.assert_array_equal(data(U), expected.reshape(x.shape))
    assert U.fmt == "SSCB"
    # unpooling is linear in Y: its gradient is the gather at the same indices
    w = RNG.standard_normal(x.shape)
    g = symdl.dlfeval(lambda y: symdl.dlgradient(symdl.sum(symdl.maxunpool(y, idx, size) * w), y), Y)
    np.testing.assert_allclose(data(g), w.reshape(-1)[idx], rtol=1e-15)


def test_maxunpool_bad_input():
    Y = symdl.dlarray(np.ones((2, 2, 1, 1)), "SSCB")
    with pytest.raises(ValueError, match="indices must be integers of Y's shape"):
        symdl.maxunpool(Y, np.zeros((3,), dtype=int), (4, 4, 1, 1))
    with pytest.raises(ValueError, match=r"indices must be in 0..15"):
        symdl.maxunpool(Y, np.full((2, 2, 1, 1), 16), (4, 4, 1, 1))


# ---------------------------------------------------------------- each layout of the decomposition
# tiling windows (stride = pool: a reshaped view and one reduction), overlapping
# average windows (one fused sum of slices; stacked beyond 64 positions),
# overlapping maximum windows (stacked slices and one reduction)

LAYOUT_CASES = [  # fmt, x shape, pool, stride, padding
    ("SSCB", (7, 5, 3, 2), (2, 2), (2, 2), "same"),                    # tiling, odd sizes padded at the end
    ("SSCB", (7, 6, 2, 2), (3, 2), (3, 2), ((1, 0), (0, 1))),          # tiling, asymmetric padding, a cut row
    ("SSCB", (6, 5, 2, 3), (6, 5), (6, 5), 0),                         # global pooling
    ("SCBT", (9, 2, 2, 3), (3,), (3,), 0),                             # tiling with an extra 'T' dimension
    ("SSCB", (12, 11, 2, 2), (9, 9), (1, 2), 0),                       # 81 overlapping positions: stacked
    ("SSCB", (6, 6, 2, 2), (2, 2), (3, 3), 1),                         # stride > pool: gaps between windows
    ("SSSCB", (4, 5, 4, 2, 2), (2, 3, 2), (2, 3, 2), ((0, 0), (1, 0), (0, 1))),
]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("fmt, shape, pool, stride, padding", LAYOUT_CASES)
def test_every_layout_eager_and_compiled_against_a_loop(kind, fmt, shape, pool, stride, padding, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    fn = symdl.maxpool if kind == "max" else symdl.avgpool

    def pool_it(X):
        return fn(X, pool, stride=stride, padding=padding)

    nsp = fmt.count("S")
    expect = ref_pool(x.astype(np.float64), nsp, pool, stride, pads_of(padding, shape[:nsp], pool, stride), kind)
    X = symdl.dlarray(x, fmt)
    tol = dict(rtol=1e-13, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    for y in (symdl.dlfeval(pool_it, X), symdl.dlaccelerate(pool_it)(X)):
        assert y.fmt == fmt and y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(data(y), expect, **tol)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", [LAYOUT_CASES[1], LAYOUT_CASES[3]], ids=["tiling-2d", "tiling-1d-T"])
def test_tiling_derivatives_against_central_differences(kind, case):
    fmt, shape, pool, stride, padding = case
    x0 = RNG.standard_normal(shape)
    fn = symdl.maxpool if kind == "max" else symdl.avgpool
    nsp = fmt.count("S")
    pads = pads_of(padding, shape[:nsp], pool, stride)

    def f(x):
        if isinstance(x, symdl.dlarray):
            return symdl.tanh(fn(symdl.dlarray(x, fmt), pool, stride=stride, padding=padding))
        return np.tanh(ref_pool(x, nsp, pool, stride, pads, kind))
    check_grads(f, [x0], order=2)


def test_stacked_average_derivatives_against_central_differences():
    x0 = RNG.standard_normal((10, 9, 1, 1))

    def f(x):
        if isinstance(x, symdl.dlarray):
            return symdl.avgpool(symdl.dlarray(x, "SSCB"), (9, 8), stride=1) ** 2
        return ref_pool(x, 2, (9, 8), (1, 1), [(0, 0), (0, 0)], "avg") ** 2
    check_grads(f, [x0], order=2)


@pytest.mark.parametrize("pool, stride", [((2, 2), (2, 2)), ((3, 3), (1, 1))], ids=["tiling", "overlapping"])
def test_ties_share_the_gradient_equally_compiled_and_interpreted(pool, stride):
    """A constant input ties every window: each of its k elements gets 1/k of
    the window's cotangent (overlapping windows add their shares)."""
    x = np.full((4, 4, 1, 1), 3.0)
    w = RNG.standard_normal(((4 - pool[0]) // stride[0] + 1,) * 2)

    def grad(X):
        Y = symdl.maxpool(X, pool, stride=stride)
        return symdl.dlgradient(symdl.sum(Y * w[:, :, None, None]), X)

    expect = np.zeros((4, 4))
    k = pool[0] * pool[1]
    for i, j in itertools.product(*(range(d) for d in w.shape)):
        expect[i * stride[0]:i * stride[0] + pool[0], j * stride[1]:j * stride[1] + pool[1]] += w[i, j] / k
    X = symdl.dlarray(x, "SSCB")
    for run in (grad, symdl.dlaccelerate(grad)):
        np.testing.assert_allclose(data(symdl.dlfeval(run, X))[:, :, 0, 0], expect, rtol=1e-14, atol=1e-15)


def test_compiled_gradients_equal_interpreted():
    x = RNG.standard_normal((6, 7, 2, 2))
    w = RNG.standard_normal((3, 4, 2, 2))

    def loss_grad(X):
        y = symdl.sum(symdl.maxpool(X, 2, stride=2, padding="same") * w) \
            + symdl.sum(symdl.avgpool(X, (3, 2), stride=(2, 2), padding="same") ** 2)
        return y, symdl.dlgradient(y, X)

    X = symdl.dlarray(x, "SSCB")
    (y0, g0), (y1, g1) = symdl.dlfeval(loss_grad, X), symdl.dlfeval(symdl.dlaccelerate(loss_grad), X)
    np.testing.assert_allclose(float(y1), float(y0), rtol=1e-13)
    np.testing.assert_allclose(data(g1), data(g0), rtol=1e-12, atol=1e-14)
