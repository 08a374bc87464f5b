"""Activations (SPEC §4): values against numpy formulas (MATLAB's
definitions), labels kept, derivatives of first and second order against
central differences, third order finite at extreme inputs, compiled ==
eager, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import erf

import symdl
from helpers import check_grads

X = np.array([[-3.0, -0.7, 0.4], [2.5, -0.25, 1.2]])


def data(x):
    return symdl.extractdata(x)


REFERENCES = {
    "relu": (symdl.relu, lambda x: np.maximum(x, 0)),
    "leakyrelu": (symdl.leakyrelu, lambda x: np.where(x > 0, x, 0.01 * x)),
    "leakyrelu 0.2": (lambda x: symdl.leakyrelu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (symdl.elu, lambda x: np.where(x > 0, x, np.expm1(x))),
    "elu 0.5": (lambda x: symdl.elu(x, 0.5), lambda x: np.where(x > 0, x, 0.5 * np.expm1(x))),
    "gelu": (symdl.gelu, lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2)))),
    "gelu tanh": (lambda x: symdl.gelu(x, "tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
    "sigmoid": (symdl.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_values_labels_and_dtypes(name):
    fn, ref = REFERENCES[name]
    y = fn(symdl.dlarray(X, "CB"))
    np.testing.assert_allclose(data(y), ref(X), rtol=1e-14, atol=1e-16)
    assert y.fmt == "CB"
    y32 = fn(symdl.dlarray(X.astype(np.float32)))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(data(y32), ref(X), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_first_and_second_derivatives(name):
    fn, _ = REFERENCES[name]
    w = np.array([[0.3, -1.0, 2.0], [1.5, 0.7, -0.4]])
    # points away from the kinks of relu/leakyrelu/elu (their derivatives jump there)
    check_grads(lambda x: np.sum(fn(x) * w), [X], order=2)


def test_relu_derivative_at_zero_is_zero_as_matlab():
    g = symdl.dlfeval(lambda x: symdl.dlgradient(symdl.sum(symdl.relu(x)), x), symdl.dlarray([0.0, 1.0]))
    np.testing.assert_array_equal(data(g), [0.0, 1.0])


def test_softmax_over_channels():
    logits = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, 0.5], [-1.0, 1.0, 0.5]])   # C x B
    y = symdl.softmax(symdl.dlarray(logits, "CB"))
    e = np.exp(logits - logits.max(axis=0))
    np.testing.assert_allclose(data(y), e / e.sum(axis=0), rtol=1e-14)
    assert y.fmt == "CB"
    images = np.random.default_rng(0).standard_normal((2, 2, 3, 4))             # S S C B
    y = symdl.softmax(symdl.dlarray(images, "SSCB"))
    e = np.exp(images - images.max(axis=2, keepdims=True))
    np.testing.assert_allclose(data(y), e / e.sum(axis=2, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(data(symdl.softmax(symdl.dlarray(logits), dim=1)),
                               np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), rtol=1e-14)


def test_softmax_derivatives_and_extreme_logits():
    logits = np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, 1.0]])
    w = np.array([[0.2, 1.0], [-0.5, 0.3], [1.1, -0.7]])
    check_grads(lambda z: np.sum(symdl.softmax(symdl.dlarray(z, "CB")) * w)
                if isinstance(z, symdl.dlarray) else np.sum(np.exp(z) / np.exp(z).sum(axis=0) * w), [logits],
                order=2)
    for dtype in (np.float64, np.float32):
        big = np.array([[1e4, -1e4], [0.0, 1e4], [-1e4, 0.0]], dtype=dtype)

        def third(z, dtype=dtype):
            y = symdl.sum(symdl.softmax(z) * symdl.dlarray(w.astype(dtype), "CB"))
            for _ in range(3):
                y = symdl.sum(symdl.dlgradient(y, z, enable_higher_derivatives=True) * 0.5)
            return y
        out = symdl.dlfeval(third, symdl.dlarray(big, "CB"))
        assert np.isfinite(data(out)).all()
        y = symdl.softmax(symdl.dlarray(big, "CB"))
        np.testing.assert_array_equal(data(y), np.array([[1, 0], [0, 1], [0, 0]], dtype=dtype))


def test_third_derivatives_are_finite_at_extreme_inputs():
    for name in ("elu", "gelu", "gelu tanh", "sigmoid"):
        fn, _ = REFERENCES[name]

        def third(x, fn=fn):
            y = symdl.sum(fn(x))
            for _ in range(3):
                y = symdl.sum(symdl.dlgradient(y, x, enable_higher_derivatives=True))
            return y
        out = symdl.dlfeval(third, symdl.dlarray(np.array([-800.0, -30.0, 30.0, 800.0])))
        assert np.isfinite(float(out)), name


def test_compiled_equals_eager():
    def loss(x):
        return symdl.sum(symdl.softmax(symdl.gelu(x) + symdl.elu(x) * 0.5 + symdl.leakyrelu(x), dim=0))

    grad = symdl.grad(lambda x: loss(x))
    eager = symdl.dlfeval(lambda x: symdl.dlgradient(loss(x), x), symdl.dlarray(X))
    np.testing.assert_allclose(grad(X), data(eager), rtol=1e-12, atol=1e-14)


def test_bad_input_is_a_clear_error():
    x = symdl.dlarray(X)
    with pytest.raises(ValueError, match=r"softmax: X has no 'C' \(channel\) dimension"):
        symdl.softmax(x)
    with pytest.raises(ValueError, match="softmax: dim must be an axis"):
        symdl.softmax(x, dim=5)
    with pytest.raises(ValueError, match="softmax: dim 'C' must name exactly one dimension"):
        symdl.softmax(symdl.dlarray(X, "SB"), dim="C")
    with pytest.raises(TypeError, match="leakyrelu: scale must be a finite real number, got 'big'"):
        symdl.leakyrelu(x, "big")
    with pytest.raises(ValueError, match="elu: alpha must be a positive finite number"):
        symdl.elu(x, -1.0)
    with pytest.raises(ValueError, match=r"gelu: approximation must be one of \('none', 'tanh'\)"):
        symdl.gelu(x, "erf")
    with pytest.raises(TypeError, match="relu: X must be a dlarray or a real numeric array"):
        symdl.relu("text")
