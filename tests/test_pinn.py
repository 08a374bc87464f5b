"""dljacobian, dldivergence and dllaplacian against analytic results, with a
batch axis (each position differentiated on its own), labelled dims, the
coordinate axis in different places, and gradients of the results (they are
traced by default) against central differences of the analytic formulas."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import assert_close, numeric_grad

RTOL, ATOL = 1e-12, 1e-13


def points(shape, seed=0, lo=-1.0, hi=1.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(lo, hi, shape)


# ---------------------------------------------------------------- field A: coordinates on axis 0, batch on axis 1
# u = (x0^2 x1, sin x0 + exp x1)

def field_a(x):
    x0, x1 = x[0:1, :], x[1:2, :]
    return symdl.concatenate([x0 ** 2 * x1, symdl.sin(x0) + symdl.exp(x1)], axis=0)


def field_a_jacobian(x):
    x0, x1 = x
    return np.array([[2 * x0 * x1, x0 ** 2], [np.cos(x0), np.exp(x1)]])


def field_a_divergence(x):
    x0, x1 = x
    return (2 * x0 * x1 + np.exp(x1))[None, :]


def field_a_laplacian(x):
    x0, x1 = x
    return np.stack([2 * x1, -np.sin(x0) + np.exp(x1)])


@pytest.mark.parametrize("dim", [0, -2])
def test_field_a(dim):
    data = points((2, 4))

    def body(x):
        u = field_a(x)
        return symdl.dljacobian(u, x, dim), symdl.dldivergence(u, x, dim), symdl.dllaplacian(u, x, dim)
    jac, div, lap = symdl.dlfeval(body, symdl.dlarray(data))
    assert jac.shape == (2, 2, 4) and div.shape == (1, 4) and lap.shape == (2, 4)
    assert_close(symdl.extractdata(jac), field_a_jacobian(data), RTOL, ATOL, "jacobian")
    assert_close(symdl.extractdata(div), field_a_divergence(data), RTOL, ATOL, "divergence")
    assert_close(symdl.extractdata(lap), field_a_laplacian(data), RTOL, ATOL, "laplacian")


# ---------------------------------------------------------------- labelled dims: dim given as a label
# u = x exp(x0 + x1): J = e^s (I + x 1^T), div = e^s (2 + x0 + x1), laplacian_i = 2 e^s (1 + x_i)

@pytest.mark.parametrize("fmt", ["CB", "BC"])
def test_labelled_coordinate_dim(fmt):
    data = points((2, 4), seed=14)  # coordinates x batch, after permutation to canonical 'CB'
    x_in = symdl.dlarray(data if fmt == "CB" else data.T, fmt)
    assert x_in.fmt == "CB"

    def body(x):
        u = x * symdl.exp(symdl.sum(x, "C", keepdims=True))
        return symdl.dljacobian(u, x, "C"), symdl.dldivergence(u, x, "C"), symdl.dllaplacian(u, x, "C")
    jac, div, lap = symdl.dlfeval(body, x_in)
    e = np.exp(data.sum(axis=0))
    expect_jac = (np.eye(2)[:, :, None] + data[:, None, :]) * e
    assert_close(symdl.extractdata(jac), expect_jac, RTOL, ATOL, "jacobian")
    assert_close(symdl.extractdata(div), (e * (2 + data.sum(axis=0)))[None, :], RTOL, ATOL, "divergence")
    assert_close(symdl.extractdata(lap), 2 * e * (1 + data), RTOL, ATOL, "laplacian")


# ---------------------------------------------------------------- field B: batch on axis 0, coordinates on axis 1
# u = |x|^2 x in 3-D: J = 2 x x^T + |x|^2 I, div = 5 |x|^2, laplacian = 10 x

def field_b(x):
    return x * symdl.sum(x ** 2, axis=1, keepdims=True)


@pytest.mark.parametrize("dim", [1, -1])
def test_field_b_coordinates_on_second_axis(dim):
    data = points((5, 3), seed=1)

    def body(x):
        u = field_b(x)
        return symdl.dljacobian(u, x, dim), symdl.dldivergence(u, x, dim), symdl.dllaplacian(u, x, dim)
    jac, div, lap = symdl.dlfeval(body, symdl.dlarray(data))
    r2 = np.sum(data ** 2, axis=1)
    expect_jac = 2 * np.einsum("bi,bj->ijb", data, data) + np.eye(3)[:, :, None] * r2
    assert jac.shape == (3, 3, 5)
    assert_close(symdl.extractdata(jac), expect_jac, RTOL, ATOL, "jacobian")
    assert div.shape == (5, 1)
    assert_close(symdl.extractdata(div), 5 * r2[:, None], RTOL, ATOL, "divergence")
    assert lap.shape == (5, 3)
    assert_close(symdl.extractdata(lap), 10 * data, RTOL, ATOL, "laplacian")


# ---------------------------------------------------------------- field C: coordinates in the middle, two other axes
# x of shape (B, 2, T); u = (x0 x1^2, cos(x0 x1), x0 + x1^3): three components, two coordinates

def test_field_c_coordinates_between_batch_and_time():
    data = points((2, 2, 3), seed=2)
    x0, x1 = data[:, 0, :], data[:, 1, :]

    def body(x):
        a, b = x[:, 0:1, :], x[:, 1:2, :]
        u = symdl.concatenate([a * b ** 2, symdl.cos(a * b), a + b ** 3], axis=1)
        return symdl.dljacobian(u, x, 1), symdl.dllaplacian(u, x, 1)
    jac, lap = symdl.dlfeval(body, symdl.dlarray(data))
    s = np.sin(x0 * x1)
    expect_jac = np.array([[x1 ** 2, 2 * x0 * x1], [-x1 * s, -x0 * s], [np.ones_like(x0), 3 * x1 ** 2]])
    assert jac.shape == (3, 2, 2, 3)  # u components, x components, then B and T
    assert_close(symdl.extractdata(jac), expect_jac, RTOL, ATOL, "jacobian")
    c = np.cos(x0 * x1)
    expect_lap = np.stack([2 * x0, -(x1 ** 2 + x0 ** 2) * c, 6 * x1], axis=1)
    assert lap.shape == (2, 3, 3)
    assert_close(symdl.extractdata(lap), expect_lap, RTOL, ATOL, "laplacian")


# ---------------------------------------------------------------- scalar fields

@pytest.mark.parametrize("name", ["harmonic", "gaussian"])
def test_scalar_field_gradient_and_laplacian(name):
    data = points((2, 6), seed=3)
    x0, x1 = data

    def u_of(x):
        a, b = x[0:1, :], x[1:2, :]
        if name == "harmonic":
            return symdl.exp(a) * symdl.sin(b) + a ** 2 - b ** 2
        return symdl.exp(-(a ** 2) - 2 * b ** 2)

    def body(x):
        u = u_of(x)
        return symdl.dljacobian(u, x, 0), symdl.dllaplacian(u, x, 0)
    jac, lap = symdl.dlfeval(body, symdl.dlarray(data))
    if name == "harmonic":
        grad = np.array([np.exp(x0) * np.sin(x1) + 2 * x0, np.exp(x0) * np.cos(x1) - 2 * x1])
        expect_lap = np.zeros((1, 6))
    else:
        e = np.exp(-x0 ** 2 - 2 * x1 ** 2)
        grad = np.array([-2 * x0 * e, -4 * x1 * e])
        expect_lap = ((4 * x0 ** 2 - 2) + (16 * x1 ** 2 - 4)) * e
        expect_lap = expect_lap[None, :]
    assert jac.shape == (1, 2, 6)
    assert_close(symdl.extractdata(jac), grad[None], RTOL, ATOL, "jacobian")
    assert lap.shape == (1, 6)
    np.testing.assert_allclose(symdl.extractdata(lap), expect_lap, rtol=1e-12, atol=1e-12)


def test_batch_positions_are_independent():
    # the same point in every batch column gives the same derivative in every column
    col = np.array([0.3, -0.7])
    data = np.repeat(col[:, None], 3, axis=1)

    def body(x):
        u = field_a(x)
        return symdl.dljacobian(u, x, 0), symdl.dllaplacian(u, x, 0)
    jac, lap = symdl.dlfeval(body, symdl.dlarray(data))
    for b in range(3):
        assert_close(symdl.extractdata(jac)[:, :, b], field_a_jacobian(col[:, None])[:, :, 0], RTOL, ATOL)
        assert_close(symdl.extractdata(lap)[:, b], field_a_laplacian(col[:, None])[:, 0], RTOL, ATOL)


# ---------------------------------------------------------------- differentiating the results again

def test_gradient_of_laplacian_loss_with_respect_to_x():
    data = points((2, 4), seed=4)

    def body(x):
        lap = symdl.dllaplacian(field_a(x), x, 0)
        loss = symdl.sum(lap ** 2)
        return loss, symdl.dlgradient(loss, x)
    loss, g = symdl.dlfeval(body, symdl.dlarray(data))
    x0, x1 = data
    r = -np.sin(x0) + np.exp(x1)
    expect = np.array([2 * r * -np.cos(x0), 8 * x1 + 2 * r * np.exp(x1)])
    assert_close(float(loss), np.sum(field_a_laplacian(data) ** 2), RTOL, ATOL)
    assert_close(symdl.extractdata(g), expect, 1e-11, 1e-12)


def test_gradient_of_jacobian_and_divergence_with_respect_to_x():
    data = points((2, 3), seed=5)
    c = points((2, 2, 3), seed=6)

    def loss_np(x):
        return float(np.sum(field_a_jacobian(x) * c) + np.sum(np.sin(field_a_divergence(x))))

    def body(x):
        u = field_a(x)
        loss = symdl.sum(symdl.dljacobian(u, x, 0) * c) + symdl.sum(symdl.sin(symdl.dldivergence(u, x, 0)))
        return symdl.dlgradient(loss, x)
    g = symdl.dlfeval(body, symdl.dlarray(data))
    (expect,) = numeric_grad(loss_np, [data])
    assert_close(symdl.extractdata(g), expect, 1e-8, 1e-9)


def _pinn_loss_np(w, b, x):
    """sum(laplacian^2) + sum(divergence^2) of u = tanh(W x + b), analytically:
    du_i/dx_j = (1 - u_i^2) W_ij, d^2u_i/dx_j^2 = -2 u_i (1 - u_i^2) W_ij^2."""
    u = np.tanh(w @ x + b[:, None])
    s = 1 - u ** 2
    lap = -2 * u * s * np.sum(w ** 2, axis=1)[:, None]
    div = np.sum(s * np.diag(w)[:, None], axis=0)
    return float(np.sum(lap ** 2) + np.sum(div ** 2))


def test_pinn_loss_gradient_with_respect_to_parameters():
    x_data = points((2, 5), seed=7)
    w0 = points((2, 2), seed=8)
    b0 = points((2,), seed=9, lo=-0.5, hi=0.5)

    def body(w, b, x):
        u = symdl.tanh(w @ x + b.reshape(2, 1))
        lap = symdl.dllaplacian(u, x, 0)
        div = symdl.dldivergence(u, x, 0)
        loss = symdl.sum(lap ** 2) + symdl.sum(div ** 2)
        return (loss, *symdl.dlgradient(loss, w, b))
    loss, gw, gb = symdl.dlfeval(body, symdl.dlarray(w0), symdl.dlarray(b0), symdl.dlarray(x_data))
    assert_close(float(loss), _pinn_loss_np(w0, b0, x_data), RTOL, ATOL, "loss")
    expect_w, expect_b = numeric_grad(lambda w, b: _pinn_loss_np(w, b, x_data), [w0, b0])
    assert_close(symdl.extractdata(gw), expect_w, 1e-8, 1e-9, "d loss / d W")
    assert_close(symdl.extractdata(gb), expect_b, 1e-8, 1e-9, "d loss / d b")


def test_pinn_loss_second_order_in_parameters():
    # d/dW of <d loss/dW, V>: the derivative of a gradient of a Laplacian loss
    x_data = points((2, 3), seed=10)
    w0 = points((2, 2), seed=11)
    b0 = np.array([0.1, -0.2])
    v = points((2, 2), seed=12)

    def body(w, x):
        u = symdl.tanh(w @ x + b0[:, None])
        lap = symdl.dllaplacian(u, x, 0)
        div = symdl.dldivergence(u, x, 0)
        loss = symdl.sum(lap ** 2) + symdl.sum(div ** 2)
        gw = symdl.dlgradient(loss, w, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(gw * v), w)
    hv = symdl.dlfeval(body, symdl.dlarray(w0), symdl.dlarray(x_data))

    def directional(w):
        (g,) = numeric_grad(lambda ww: _pinn_loss_np(ww, b0, x_data), [w], rel=1e-4)
        return float(np.sum(g * v))
    (expect,) = numeric_grad(directional, [w0], rel=1e-3)
    assert_close(symdl.extractdata(hv), expect, 1e-5, 1e-6, "Hessian-vector product in W")


def test_results_untraced_when_higher_derivatives_disabled():
    data = points((2, 3), seed=13)

    def body(x):
        u = field_a(x)
        lap = symdl.dllaplacian(u, x, 0, enable_higher_derivatives=False)
        with pytest.raises(ValueError):
            symdl.dlgradient(symdl.sum(lap), x)
        return lap
    lap = symdl.dlfeval(body, symdl.dlarray(data))
    assert_close(symdl.extractdata(lap), field_a_laplacian(data), RTOL, ATOL)
