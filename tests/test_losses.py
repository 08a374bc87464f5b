"""Losses and one-hot encoding (SPEC §4): values against numpy formulas,
MATLAB's normalisation by the number of observations, derivatives against
central differences, crossentropy of softmax finite at logits of +-1e4 in
float32 and float64, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(3)
Y = RNG.uniform(0.1, 0.9, (3, 4))
T = RNG.uniform(-1.0, 1.0, (3, 4))
ONEHOT = np.eye(3)[:, [0, 2, 1, 2]]


def data(x):
    return symdl.extractdata(x)


def cb(a):
    return symdl.dlarray(a, "CB")


def test_values_against_formulas():
    n = 4  # observations along B
    np.testing.assert_allclose(float(symdl.mse(cb(Y), T)), np.sum((Y - T) ** 2) / (2 * n), rtol=1e-14)
    np.testing.assert_allclose(float(symdl.l2loss(cb(Y), T)), np.sum((Y - T) ** 2) / n, rtol=1e-14)
    np.testing.assert_allclose(float(symdl.l1loss(cb(Y), T)), np.sum(np.abs(Y - T)) / n, rtol=1e-14)
    d = np.abs(Y - T * 3)
    want = np.sum(np.where(d <= 1.0, 0.5 * d ** 2, d - 0.5)) / n
    np.testing.assert_allclose(float(symdl.huber(cb(Y), T * 3)), want, rtol=1e-14)
    np.testing.assert_allclose(float(symdl.crossentropy(cb(Y), ONEHOT)), -np.sum(ONEHOT * np.log(Y)) / n, rtol=1e-14)
    sseb = symdl.dlarray(RNG.uniform(0.1, 1, (2, 2, 3, 5)), "SSCB")   # N = 5 observations
    np.testing.assert_allclose(float(symdl.mse(sseb, np.zeros((2, 2, 3, 5)))),
                               np.sum(data(sseb) ** 2) / 10, rtol=1e-14)
    np.testing.assert_allclose(float(symdl.mse(symdl.dlarray(Y), T, normalization="all-elements")),
                               np.sum((Y - T) ** 2) / 2 / Y.size, rtol=1e-14)
    np.testing.assert_allclose(float(symdl.l1loss(symdl.dlarray(Y), T, normalization="none")),
                               np.sum(np.abs(Y - T)), rtol=1e-14)
    assert symdl.mse(cb(Y), T).shape == () and symdl.mse(cb(Y), T).fmt == ""   # unformatted, as MATLAB


@pytest.mark.parametrize("loss", ["mse", "l1loss", "l2loss", "huber", "crossentropy"])
def test_derivatives_against_central_differences(loss):
    fn = getattr(symdl, loss)
    target = ONEHOT if loss == "crossentropy" else T

    def f(y):
        if isinstance(y, symdl.dlarray):
            return fn(symdl.dlarray(y, "CB"), target)
        d = y - target   # the numpy reference
        return {"mse": np.sum(d ** 2) / 8, "l1loss": np.sum(np.abs(d)) / 4, "l2loss": np.sum(d ** 2) / 4,
                "huber": np.sum(np.where(np.abs(d) <= 1, 0.5 * d ** 2, np.abs(d) - 0.5)) / 4,
                "crossentropy": -np.sum(target * np.log(y)) / 4}[loss]
    check_grads(f, [Y], order=2)


def test_crossentropy_of_softmax_is_finite_for_huge_logits():
    for dtype in (np.float64, np.float32):
        logits = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], dtype=dtype).T   # 3 classes x 2 observations
        target = np.eye(3, dtype=dtype)[:, [1, 0]]                               # both wrong by 2e4

        def f(z, target=target):
            loss = symdl.crossentropy(symdl.softmax(z), target)
            g = symdl.dlgradient(loss, z, enable_higher_derivatives=True)
            return loss, g, symdl.dlgradient(symdl.sum(g * g), z)
        loss, g, h = symdl.dlfeval(f, symdl.dlarray(logits, "CB"))
        assert float(loss) == pytest.approx(2e4, rel=1e-6)                        # -log softmax = 2e4 each, / 2
        expected = (np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0) - target) / 2
        np.testing.assert_allclose(data(g), expected, atol=1e-6)
        assert np.isfinite(data(h)).all() and data(g).dtype == dtype
        untraced = symdl.crossentropy(symdl.softmax(symdl.dlarray(logits, "CB")), target)
        assert float(untraced) == pytest.approx(2e4, rel=1e-6)                   # outside dlfeval too


def test_crossentropy_compiled_equals_eager():
    def loss(z):
        return symdl.crossentropy(symdl.softmax(symdl.dlarray(z, "CB")), ONEHOT)
    logits = RNG.standard_normal((3, 4))
    eager = symdl.dlfeval(lambda z: symdl.dlgradient(loss(z), z), symdl.dlarray(logits))
    np.testing.assert_allclose(symdl.grad(loss)(logits), data(eager), rtol=1e-12, atol=1e-15)
    p = np.exp(logits) / np.exp(logits).sum(0)
    np.testing.assert_allclose(data(eager), (p - ONEHOT) / 4, rtol=1e-12)


def test_onehot_round_trip():
    labels = np.array([3, 1, 3, 2])
    Y = symdl.onehotencode(labels)
    np.testing.assert_array_equal(data(Y), [[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 1, 0]])
    assert Y.fmt == "CB"
    np.testing.assert_array_equal(symdl.onehotdecode(Y, [1, 2, 3]), labels)
    words = symdl.onehotencode(["b", "a"], classes=["a", "b", "c"])
    assert data(words).shape == (3, 2)
    assert list(symdl.onehotdecode(words, ["a", "b", "c"])) == ["b", "a"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"mse: targets must have the shape of Y, \(3, 4\), got \(4, 3\)"):
        symdl.mse(cb(Y), T.T)
    with pytest.raises(ValueError, match="targets must have the format of Y, 'CB', got 'SB'"):
        symdl.l1loss(cb(Y), symdl.dlarray(T, "SB"))
    with pytest.raises(ValueError, match="Y has no format, so its observations are unknown"):
        symdl.crossentropy(symdl.dlarray(Y), ONEHOT)
    with pytest.raises(ValueError, match="normalization must be one of"):
        symdl.mse(cb(Y), T, normalization="mean")
    with pytest.raises(ValueError, match="transition_point must be a positive finite number"):
        symdl.huber(cb(Y), T, transition_point=0)
    with pytest.raises(TypeError, match="crossentropy: Y must be a dlarray"):
        symdl.crossentropy(Y, ONEHOT)
    with pytest.raises(ValueError, match=r"onehotencode: labels \['z'\] are not among the classes"):
        symdl.onehotencode(["a", "z"], classes=["a", "b"])
    with pytest.raises(ValueError, match="onehotdecode: classes must list one label per entry"):
        symdl.onehotdecode(cb(Y), ["a", "b"])
