"""Normalisations (SPEC §4, §8): batchnorm's three forms, layernorm,
groupnorm, instancenorm against numpy formulas (population variance),
derivatives against central differences, finite with a constant channel,
and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(11)
IMG = RNG.standard_normal((3, 2, 4, 5))      # H W C N
OFF = RNG.standard_normal(4)
SCL = RNG.uniform(0.5, 2.0, 4)
EPS = 1e-5


def data(x):
    return symdl.extractdata(x)


def ref_norm(x, axes):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS), mean, var


def affine(y, axis, ndim):
    shape = [1] * ndim
    shape[axis] = -1
    return y * SCL.reshape(shape) + OFF.reshape(shape)


def test_batchnorm_three_forms():
    X = symdl.dlarray(IMG, "SSCB")
    Y, mu, var = symdl.batchnorm(X, OFF, SCL)
    ny, nmu, nvar = ref_norm(IMG, (0, 1, 3))
    np.testing.assert_allclose(data(Y), affine(ny, 2, 4), rtol=1e-12)
    np.testing.assert_allclose(data(mu).ravel(), nmu.ravel(), rtol=1e-13)
    np.testing.assert_allclose(data(var).ravel(), nvar.ravel(), rtol=1e-13)
    assert Y.fmt == "SSCB" and data(mu).shape == (4, 1)
    rm, rv = RNG.standard_normal(4), RNG.uniform(0.5, 2, 4)
    Yi = symdl.batchnorm(X, OFF, SCL, rm, rv)                              # inference
    np.testing.assert_allclose(data(Yi), affine((IMG - rm.reshape(1, 1, 4, 1)) /
                                                np.sqrt(rv.reshape(1, 1, 4, 1) + EPS), 2, 4), rtol=1e-12)
    Yt, nm, nv = symdl.batchnorm(X, OFF, SCL, rm.reshape(4, 1), rv.reshape(4, 1), training=True)
    np.testing.assert_allclose(data(Yt), data(Y), rtol=1e-14)
    np.testing.assert_allclose(data(nm).ravel(), 0.1 * nmu.ravel() + 0.9 * rm, rtol=1e-13)
    np.testing.assert_allclose(data(nv).ravel(), 0.1 * nvar.ravel() + 0.9 * rv, rtol=1e-13)


def test_layer_group_and_instance_norm():
    X = symdl.dlarray(IMG, "SSCB")
    np.testing.assert_allclose(data(symdl.layernorm(X, OFF, SCL)), affine(ref_norm(IMG, (0, 1, 2))[0], 2, 4),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(data(symdl.instancenorm(X, OFF, SCL)), affine(ref_norm(IMG, (0, 1))[0], 2, 4),
                               rtol=1e-12, atol=1e-14)
    grouped = IMG.reshape(3, 2, 2, 2, 5)                                   # C = 4 -> 2 groups of 2
    ref = ref_norm(grouped, (0, 1, 3))[0].reshape(3, 2, 4, 5)
    np.testing.assert_allclose(data(symdl.groupnorm(X, 2, OFF, SCL)), affine(ref, 2, 4), rtol=1e-12, atol=1e-14)
    cbt = RNG.standard_normal((4, 3, 2))                                   # C B T: per observation and step
    np.testing.assert_allclose(data(symdl.layernorm(symdl.dlarray(cbt, "CBT"), OFF, SCL)),
                               affine(ref_norm(cbt, (0,))[0], 0, 3), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("which", ["batchnorm", "layernorm", "groupnorm", "instancenorm"])
def test_derivatives_against_central_differences(which):
    x0 = RNG.standard_normal((3, 4, 3))                                    # S C B
    w = RNG.standard_normal((3, 4, 3))
    axes = {"batchnorm": (0, 2), "layernorm": (0, 1), "instancenorm": (0,)}

    def f(x, off, scl):
        if isinstance(x, symdl.dlarray):
            X = symdl.dlarray(x, "SCB")
            y = {"batchnorm": lambda: symdl.batchnorm(X, off, scl)[0],
                 "layernorm": lambda: symdl.layernorm(X, off, scl),
                 "groupnorm": lambda: symdl.groupnorm(X, 2, off, scl),
                 "instancenorm": lambda: symdl.instancenorm(X, off, scl)}[which]()
            return symdl.sum(y * w)
        if which == "groupnorm":
            g = x.reshape(3, 2, 2, 3)
            y = ref_norm(g, (0, 2))[0].reshape(3, 4, 3)
        else:
            y = ref_norm(x, axes[which])[0]
        return np.sum((y * scl.reshape(1, 4, 1) + off.reshape(1, 4, 1)) * w)
    check_grads(f, [x0, OFF.copy(), SCL.copy()], order=2)


def test_constant_channel_is_finite_to_second_order():
    x = np.ones((2, 3, 4))
    x[:, 1, :] = RNG.standard_normal((2, 4))

    def f(z):
        y = symdl.sum(symdl.batchnorm(z, np.zeros(3), np.ones(3))[0] ** 2)
        g = symdl.dlgradient(y, z, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g * g), z)
    assert np.isfinite(data(symdl.dlfeval(f, symdl.dlarray(x, "SCB")))).all()


def test_bad_input_is_a_clear_error():
    X = symdl.dlarray(IMG, "SSCB")
    with pytest.raises(ValueError, match=r"batchnorm: offset must hold one value per channel \(4\), got shape \(3,\)"):
        symdl.batchnorm(X, np.zeros(3), SCL)
    with pytest.raises(ValueError, match="give both running_mean and running_var"):
        symdl.batchnorm(X, OFF, SCL, np.zeros(4))
    with pytest.raises(ValueError, match="inference .* needs running_mean and running_var"):
        symdl.batchnorm(X, OFF, SCL, training=False)
    with pytest.raises(ValueError, match="groupnorm: num_groups must be a positive divisor of the number of channels"):
        symdl.groupnorm(X, 3, OFF, SCL)
    with pytest.raises(ValueError, match="layernorm: X must be a formatted dlarray with one 'C' dimension"):
        symdl.layernorm(symdl.dlarray(IMG), OFF, SCL)


def ref_crosschannel(x, w, alpha, beta, k, axis):
    sq = x ** 2
    c = x.shape[axis]
    before = (w - 1) // 2
    ss = np.zeros_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - before), min(c, ch - before + w)
        window = np.take(sq, range(lo, hi), axis=axis).sum(axis=axis)
        index = [slice(None)] * x.ndim
        index[axis] = ch
        ss[tuple(index)] = window
    return x / (k + alpha * ss / w) ** beta


@pytest.mark.parametrize("w", [1, 3, 4, 5])
def test_crosschannelnorm_against_numpy_and_central_differences(w):
    x = RNG.standard_normal((2, 5, 3))                                     # S C B
    got = symdl.crosschannelnorm(symdl.dlarray(x, "SCB"), w, alpha=0.5, beta=0.75, k=1.5)
    np.testing.assert_allclose(data(got), ref_crosschannel(x, w, 0.5, 0.75, 1.5, 1), rtol=1e-13)
    assert got.fmt == "SCB"
    weights = RNG.standard_normal((2, 5, 3))

    def f(z):
        if isinstance(z, symdl.dlarray):
            return symdl.sum(symdl.crosschannelnorm(symdl.dlarray(z, "SCB"), w, alpha=0.5, beta=0.75, k=1.5)
                             * weights)
        return np.sum(ref_crosschannel(z, w, 0.5, 0.75, 1.5, 1) * weights)
    check_grads(f, [x], order=2)


def _exact_crosschannel(x, w, alpha, beta, k):
    """MATLAB's formula with exact squares and window sums (fractions) and the
    log of the exact denominator: finite wherever the true result is, at any
    magnitude.  x is channels x observations."""
    import math
    from fractions import Fraction
    channels, before = x.shape[0], (w - 1) // 2
    out = np.empty(x.shape)
    for c in range(channels):
        for b in range(x.shape[1]):
            window = range(max(0, c - before), min(channels, c - before + w))
            den = Fraction(k) + Fraction(alpha) / w * sum(Fraction(float(x[j, b])) ** 2 for j in window)
            v = float(x[c, b])
            if den == 0:                             # k = 0 and a window of zeros: v / 0
                out[c, b] = math.copysign(math.inf, v) if v else math.nan
                continue
            shift = den.numerator.bit_length() - den.denominator.bit_length()   # den = r 2^shift, r near 1
            log_den = math.log(den / Fraction(2) ** shift) + shift * math.log(2.0)
            out[c, b] = math.copysign(math.exp(math.log(abs(v)) - beta * log_den), v) if v else 0.0
    return out


HUGE = np.array([[1e200, 3.0, -1e300, 0.0], [2e200, -1e-300, 1e308, 0.0],
                 [-5e199, 0.5, 1.0, 1e-320], [1.0, 2.0, 3.0, 0.0]])


@pytest.mark.parametrize("k", [2.0, 0.0])
def test_crosschannelnorm_is_finite_where_the_squares_overflow_or_underflow(k):
    """|x| > 1e154 overflows x^2 (the formula as written gives x / inf = 0)
    and, with k = 0, |x| < 1e-162 underflows it (x / 0 = inf); the results are
    the exact ones, interpreted, compiled and for float32 beyond 1.8e19."""
    want = _exact_crosschannel(HUGE, 3, 1e-4, 0.75, k)
    X = symdl.dlarray(HUGE, "CB")
    got = data(symdl.crosschannelnorm(X, 3, alpha=1e-4, beta=0.75, k=k))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0.0)
    acc = symdl.dlaccelerate(lambda X: symdl.crosschannelnorm(X, 3, alpha=1e-4, beta=0.75, k=k))
    np.testing.assert_allclose(data(symdl.dlfeval(acc, X)), want, rtol=1e-12, atol=0.0)
    x32 = np.array([[1e30, 3.0, -2e25], [4e30, -1.0, 1e20], [-5.0, 0.5, 1.0]])
    got32 = symdl.crosschannelnorm(symdl.dlarray(x32.astype(np.float32), "CB"), 3, alpha=1e-4, beta=0.75, k=k)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(data(got32), _exact_crosschannel(x32.astype(np.float32), 3, 1e-4, 0.75, k),
                               rtol=2e-5, atol=1e-43)          # (a subnormal float32 result)


def test_crosschannelnorm_gradient_where_the_squares_overflow():
    """The gradient at 1e200-sized inputs against central differences of the
    exact formula (steps relative to each element)."""
    x = HUGE[:, :3].copy()
    x[1, 1] = -1e-3          # (no central difference across a subnormal)
    weights = np.array([[1.0, -2.0, 0.5], [0.25, 1.5, -1.0], [2.0, 1.0, 1.0], [-1.0, 0.5, 2.0]])

    def loss(X):
        return symdl.sum(symdl.crosschannelnorm(X, 3, alpha=1e-4, beta=0.75, k=2.0) * weights)
    got = data(symdl.dlfeval(lambda X: symdl.dlgradient(loss(X), X), symdl.dlarray(x, "CB")))
    want = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        h = 1e-5 * abs(x[idx])
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        f = [np.sum(_exact_crosschannel(z, 3, 1e-4, 0.75, 2.0) * weights) for z in (up, down)]
        want[idx] = (f[0] - f[1]) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)   # (entries near 1e-298: beyond differences)
    assert np.all(np.isfinite(got))


def test_crosschannelnorm_bad_input():
    X = symdl.dlarray(IMG, "SSCB")
    with pytest.raises(ValueError, match="window_channel_size must be a positive integer"):
        symdl.crosschannelnorm(X, 0)
    with pytest.raises(TypeError, match="crosschannelnorm: beta must be a finite real number"):
        symdl.crosschannelnorm(X, 3, beta="x")


def test_crosschannelnorm_window_wider_than_the_channels():
    """A window of any width (even 2**62) covers at most every channel: the
    same result as a window of all channels, at once (it used to loop over
    the window's width)."""
    X = symdl.dlarray(np.arange(1.0, 4.0).reshape(3, 1), "CB")
    for w in (7, 2 ** 62):
        got = symdl.extractdata(symdl.crosschannelnorm(X, w, alpha=1.0, beta=1.0, k=0.0)).ravel()
        # every channel's window holds all three channels: ss = 1 + 4 + 9, divided by the window size
        np.testing.assert_allclose(got, np.arange(1.0, 4.0) / (14.0 / w), rtol=1e-12)
