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
