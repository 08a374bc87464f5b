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


def test_sequence_derivatives_against_central_differences():
    # 'CBT': features, then batch, then time: one product (OutputSize, B * T)
    X = RNG.standard_normal((3, 2, 4))
    W = RNG.standard_normal((2, 3))
    b = RNG.standard_normal(2)
    w_out = RNG.standard_normal((2, 2, 4))

    def f(x, w, bb):
        if isinstance(x, symdl.dlarray):
            return symdl.sum(symdl.tanh(symdl.fullyconnect(symdl.dlarray(x, "CBT"), w, bb)) * w_out)
        return np.sum(np.tanh(np.einsum("oc,cbt->obt", w, x) + bb[:, None, None]) * w_out)
    check_grads(f, [X, W, b], order=2)


def test_features_after_the_batch_dimension():
    # 'CBU': the U dimension is a feature that follows B in the array, so the
    # observations are not contiguous columns (the transposing path)
    X = RNG.standard_normal((3, 4, 2))                           # C B U
    W = RNG.standard_normal((5, 6))
    b = RNG.standard_normal(5)
    flat = X.transpose(1, 0, 2).reshape(4, 6)                    # each observation's (C, U) in C order
    Y = symdl.fullyconnect(symdl.dlarray(X, "CBU"), W, b)
    assert Y.fmt == "CB"
    np.testing.assert_allclose(data(Y), W @ flat.T + b[:, None], rtol=1e-13)

    def f(x, w):
        if isinstance(x, symdl.dlarray):
            return symdl.sum(symdl.fullyconnect(symdl.dlarray(x, "CBU"), w, b) ** 2)
        return np.sum((w @ x.transpose(1, 0, 2).reshape(4, 6).T + b[:, None]) ** 2)
    check_grads(f, [X, W], order=2)


@pytest.mark.parametrize("fmt,shape", [("CB", (6, 8)), ("SSCB", (2, 3, 1, 8))])
def test_a_layer_and_its_gradients_need_no_transposed_copies(fmt, shape):
    # the product is written in the result's layout ((OutputSize, B), as the
    # bias and activation read it) and the cotangent products in their
    # operands' layouts, so no loop of the compiled plan reads a transpose
    from codegen.plan import LoopKernel, make_plan
    from codegen.decompose import decompose
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal((4, 6))

    def loss(w, x):
        return symdl.sum(symdl.relu(symdl.fullyconnect(symdl.dlarray(x, fmt), w, np.ones(4))) ** 2)
    g = symdl.grad(loss, argnums=(0, 1))
    gw, gx = g(w, x)
    flat = x.reshape(6, 8)
    z = w @ flat + 1
    dz = 2 * np.maximum(z, 0) * (z > 0)
    np.testing.assert_allclose(gw, dz @ flat.T, rtol=1e-12)
    np.testing.assert_allclose(gx, (w.T @ dz).reshape(shape), rtol=1e-12)
    program = symdl.trace(lambda w, x: symdl.dlfeval(
        lambda w, x: symdl.dlgradient(loss(w, x), (w, x)), symdl.dlarray(w), symdl.dlarray(x)), w, x)
    outputs = decompose(list(program.outputs))
    plan = make_plan(list(program.inputs), outputs)
    for k in plan.kernels:
        if isinstance(k, LoopKernel):
            read = [i for n in k.members for i in n.inputs] + [n for n, _ in k.stores if n not in k.members]
            for i in read:
                view = plan.location.get(i)
                if view is not None and len(view.shape) == 2:
                    assert view.strides[-1] in (0, 1), f"a loop reads {i.op} transposed: {view}"
