"""embed: columns of the weights by 0-based word index, sequences, the
gradient accumulates over repeated words, derivatives of higher order
through it, compiled == eager, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(13)
W = RNG.standard_normal((3, 5))     # 3-D vectors of 5 words


def data(x):
    return symdl.extractdata(x)


def test_values_and_formats():
    idx = np.array([[4, 0, 2], [1, 1, 3]])                 # B x T
    Y = symdl.embed(idx, W)
    assert Y.fmt == "CBT" and Y.shape == (3, 2, 3)
    np.testing.assert_array_equal(data(Y), W[:, idx])
    Y = symdl.embed(symdl.dlarray(idx[None].astype(float), "CBT"), W)   # a singleton C, float indices
    np.testing.assert_array_equal(data(Y), W[:, idx])
    np.testing.assert_array_equal(data(symdl.embed(np.array([3, 3]), W)), W[:, [3, 3]])


def test_gradients_accumulate_over_repeated_words_and_go_to_any_order():
    idx = np.array([1, 4, 1])

    def f(w):
        if isinstance(w, symdl.dlarray):
            return symdl.sum(symdl.tanh(symdl.embed(idx, w)) ** 2)
        return np.sum(np.tanh(w[:, idx]) ** 2)
    check_grads(f, [W], order=2)
    g = symdl.grad(lambda w: symdl.sum(symdl.embed(idx, w)))(W)
    np.testing.assert_array_equal(g, np.tile([0, 2, 0, 0, 1], (3, 1)))   # word 1 twice, word 4 once

    def third(w):
        y = symdl.sum(symdl.exp(symdl.embed(idx, w)))
        for _ in range(3):
            y = symdl.sum(symdl.dlgradient(y, w, enable_higher_derivatives=True))
        return y
    # d^3/dw^3 of sum(exp(w[:, idx])) summed: each occurrence contributes exp(w)
    assert float(symdl.dlfeval(third, symdl.dlarray(W))) == pytest.approx(np.sum(np.exp(W[:, idx])), rel=1e-12)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"word indices must be in 0..4 .* got 0..5"):
        symdl.embed(np.array([0, 5]), W)
    with pytest.raises(ValueError, match="X must hold integer word indices"):
        symdl.embed(np.array([0.5, 1.0]), W)
    with pytest.raises(ValueError, match="X must hold word indices with a 'B' dimension"):
        symdl.embed(symdl.dlarray(np.zeros((2, 3)), "SS"), W)
    with pytest.raises(ValueError, match="weights must be EmbeddingDimension x NumWords"):
        symdl.embed(np.array([0]), np.ones(3))


def test_traced_indices_are_read_at_run_time_not_frozen_into_a_compiled_trace():
    """embed's indices as a dlaccelerate argument: each call gathers the
    columns its own indices name (reading the traced values at trace time
    froze the first call's indices into the trace: stale results)."""
    from codegen.abi import NativeError

    W0 = np.arange(12.0).reshape(3, 4)

    def f(X, W):
        Y = symdl.embed(X, W)
        L = symdl.sum(Y * Y)
        return L, symdl.dlgradient(L, W)

    acc = symdl.dlaccelerate(f)
    W = symdl.dlarray(W0)
    for idx in ([1, 3], [0, 2], [2, 2], [3, 0]):
        L, g = symdl.dlfeval(acc, symdl.dlarray(np.array(idx, dtype=float), "B"), W)
        expected_g = np.zeros_like(W0)
        for i in idx:
            expected_g[:, i] += 2 * W0[:, i]
        assert float(L) == np.sum(W0[:, idx] ** 2)
        np.testing.assert_array_equal(symdl.extractdata(g), expected_g)
    assert acc.occupancy > 0 and acc.hit_rate == 75.0   # one trace served all four calls
    for bad in ([1, 4], [-1, 0], [0.5, 1]):   # out of range, negative, fractional: refused at run time
        with pytest.raises(NativeError, match="out of range"):
            symdl.dlfeval(acc, symdl.dlarray(np.array(bad, dtype=float), "B"), W)
