"""fullyconnect (SPEC §4, §8): values against numpy (the non-batch
dimensions flattened in C order), time steps, bias shapes, derivatives
against central differences in X, weights and bias, compiled == eager, and
bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(9)


def data(x):
    return symdl.extractdata(x)


def test_cb_and_images():
    X = RNG.standard_normal((3, 5))
    W = RNG.standard_normal((4, 3))
    b = RNG.standard_normal(4)
    Y = symdl.fullyconnect(symdl.dlarray(X, "CB"), W, b)
    np.testing.assert_allclose(data(Y), W @ X + b[:, None], rtol=1e-13)
    assert Y.fmt == "CB" and Y.shape == (4, 5)
    img = RNG.standard_normal((2, 3, 4, 5))                      # H W C N
    W2 = RNG.standard_normal((6, 2 * 3 * 4))
    Y = symdl.fullyconnect(symdl.dlarray(img, "SSCB"), W2, bias=np.zeros((6, 1)))
    flat = img.transpose(3, 0, 1, 2).reshape(5, -1)              # each observation's (H, W, C) in C order
    np.testing.assert_allclose(data(Y), W2 @ flat.T, rtol=1e-13)


def test_sequences_use_the_same_weights_at_every_time_step():
    X = RNG.standard_normal((3, 2, 4))                           # C B T
    W = RNG.standard_normal((5, 3))
    b = RNG.standard_normal((5, 1))
    Y = symdl.fullyconnect(symdl.dlarray(X, "CBT"), W, b)
    assert Y.fmt == "CBT" and Y.shape == (5, 2, 4)
    np.testing.assert_allclose(data(Y), np.einsum("oc,cbt->obt", W, X) + b[:, :, None], rtol=1e-13)


def test_derivatives_against_central_differences():
    X = RNG.standard_normal((2, 2, 3))                           # S C B
    W = RNG.standard_normal((4, 4))
    b = RNG.standard_normal(4)
    w_out = RNG.standard_normal((4, 3))

    def f(x, w, bb):
        if isinstance(x, symdl.dlarray):
            y = symdl.fullyconnect(symdl.dlarray(x, "SCB"), w, bb)
            return symdl.sum(symdl.tanh(y) * w_out)
        flat = x.transpose(2, 0, 1).reshape(3, -1)
        return np.sum(np.tanh(w @ flat.T + bb[:, None]) * w_out)
    check_grads(f, [X, W, b], order=2)


def test_compiled_equals_eager():
    X = RNG.standard_normal((3, 4))
    W = RNG.standard_normal((2, 3))

    def loss(w, x):
        return symdl.sum(symdl.fullyconnect(symdl.dlarray(x, "CB"), w, np.zeros(2)) ** 2)
    eager = symdl.dlfeval(lambda w: symdl.dlgradient(loss(w, X), w), symdl.dlarray(W))
    np.testing.assert_allclose(symdl.grad(loss)(W, X), data(eager), rtol=1e-12)
    np.testing.assert_allclose(data(eager), 2 * (W @ X) @ X.T, rtol=1e-12)


def test_bad_input_is_a_clear_error():
    X = symdl.dlarray(RNG.standard_normal((3, 5)), "CB")
    with pytest.raises(ValueError, match=r"weights must be OutputSize x InputSize with InputSize = 3 .* \(4, 2\)"):
        symdl.fullyconnect(X, np.ones((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) or \(4, 1\), got \(3,\)"):
        symdl.fullyconnect(X, np.ones((4, 3)), np.zeros(3))
    with pytest.raises(TypeError, match="X must be a formatted dlarray"):   # a numpy array has no labels
        symdl.fullyconnect(np.ones((3, 5)), np.ones((4, 3)), np.zeros(4))
    with pytest.raises(TypeError, match="weights must be a dlarray or a real numeric array"):
        symdl.fullyconnect(X, "weights", np.zeros(4))
