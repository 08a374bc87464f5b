"""Custom layers (seed 004's ELU): a custom backward is the derivative the
network uses, and it is itself differentiable."""

import numpy as np
import pytest

import symdl
from symdl import nn


class ELU(nn.Layer):
    """Seed 004: one learnable alpha per channel."""

    learnables = ("alpha",)

    def __init__(self, num_channels, name=""):
        super().__init__(name)
        self.alpha = np.linspace(0.5, 1.5, num_channels).reshape(1, 1, num_channels, 1)   # numpy broadcasting

    def predict(self, X):
        return symdl.maximum(X, 0.0) + self.alpha * (symdl.exp(symdl.minimum(X, 0.0)) - 1.0)

    def backward(self, X, Z, dLdZ, memory):
        # the blog's backward, written with symdl operations
        neg = X <= 0
        dLdX = dLdZ * symdl.where(neg, self.alpha + Z, 1.0)
        dLdAlpha = symdl.sum(dLdZ * (symdl.exp(symdl.minimum(X, 0.0)) - 1.0), axis=(0, 1, 3)).reshape(1, 1, -1, 1)
        return dLdX, dLdAlpha


class ELUAutodiff(ELU):
    backward = nn.Layer.backward      # no custom backward: automatic differentiation of predict


class ELUWrongBackward(ELU):
    def backward(self, X, Z, dLdZ, memory):
        dLdX, dLdAlpha = super().backward(X, Z, dLdZ, memory)
        return dLdX * 3.0, dLdAlpha * 0.0


def _net(layer_cls):
    symdl.seed(3)
    return nn.dlnetwork([nn.image_input_layer((4, 4, 2), normalization="none"), layer_cls(2, name="elu"),
                         nn.fully_connected_layer(1)], dtype="float64")


def _data():
    rng = np.random.default_rng(0)
    return symdl.dlarray(rng.normal(size=(4, 4, 2, 3)), "SSCB")


def _grads(net, X):
    def f(net, X):
        y = symdl.sum(nn.predict(net, X) ** 2)
        return symdl.dlgradient(y, net, X)
    g_net, g_x = symdl.dlfeval(f, net, X)
    return symdl.extractdata(g_net["elu"]["alpha"]), symdl.extractdata(g_x)


def test_custom_backward_equals_autodiff_of_predict():
    X = _data()
    a_custom, x_custom = _grads(_net(ELU), X)
    a_auto, x_auto = _grads(_net(ELUAutodiff), X)
    np.testing.assert_allclose(a_custom, a_auto, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x_custom, x_auto, rtol=1e-12, atol=1e-12)
    assert np.abs(a_auto).max() > 1e-3           # not a vacuous comparison


def test_a_different_backward_is_really_used():
    X = _data()
    a_auto, x_auto = _grads(_net(ELUAutodiff), X)
    a_wrong, x_wrong = _grads(_net(ELUWrongBackward), X)
    np.testing.assert_allclose(a_wrong, 0.0 * a_auto, atol=0)
    # the input gradient flows back through fc -> elu, scaled by 3 in the wrong backward
    np.testing.assert_allclose(x_wrong, 3.0 * x_auto, rtol=1e-12, atol=1e-12)
    # and the value is predict's, whatever the backward
    np.testing.assert_allclose(symdl.extractdata(nn.predict(_net(ELUWrongBackward), X)),
                               symdl.extractdata(nn.predict(_net(ELUAutodiff), X)), rtol=1e-15)


def _second(layer_cls, X, v):
    """d/dX <dL/dX, v>: second derivative through the layer."""
    net = _net(layer_cls)

    def f(net, X):
        y = symdl.sum(nn.predict(net, X) ** 2)
        gx = symdl.dlgradient(y, X, enable_higher_derivatives=True)
        s = symdl.sum(gx * v)
        return symdl.dlgradient(s, X, net)
    gx, gnet = symdl.dlfeval(f, net, X)
    return symdl.extractdata(gx), symdl.extractdata(gnet["elu"]["alpha"])


def test_second_derivatives_through_custom_backward():
    X = _data()
    v = np.random.default_rng(1).normal(size=X.shape)
    # the blog's backward is the exact derivative except at X == 0, so second
    # derivatives through it equal those of automatic differentiation
    hx_custom, ha_custom = _second(ELU, X, v)
    hx_auto, ha_auto = _second(ELUAutodiff, X, v)
    np.testing.assert_allclose(hx_custom, hx_auto, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ha_custom, ha_auto, rtol=1e-10, atol=1e-12)
    assert np.abs(hx_auto).max() > 1e-3


def test_second_derivative_follows_the_traced_backward():
    # a backward that is not predict's derivative: d/dX of it is what second order must give
    class Odd(nn.Layer):
        learnables = ()

        def predict(self, X):
            return X * 1.0

        def backward(self, X, Z, dLdZ, memory):
            return dLdZ * symdl.sin(X)          # "derivative" sin(X)

    net = nn.dlnetwork([nn.feature_input_layer(3), Odd(name="odd")], dtype="float64")
    x = np.array([[0.3], [-1.2], [2.0]])

    def f(net, X):
        y = symdl.sum(nn.predict(net, X))
        g = symdl.dlgradient(y, X, enable_higher_derivatives=True)   # sin(X)
        return g, symdl.dlgradient(symdl.sum(g), X)                    # cos(X)
    g, h = symdl.dlfeval(f, net, symdl.dlarray(x, "CB"))
    np.testing.assert_allclose(symdl.extractdata(g), np.sin(x), rtol=1e-14)
    np.testing.assert_allclose(symdl.extractdata(h), np.cos(x), rtol=1e-13)


def test_third_derivative_follows_the_traced_backward():
    class Odd(nn.Layer):
        def predict(self, X):
            return X * 1.0

        def backward(self, X, Z, dLdZ, memory):
            return dLdZ * symdl.sin(X)

    net = nn.dlnetwork([nn.feature_input_layer(2), Odd(name="odd")], dtype="float64")
    x = np.array([[0.3], [-1.2]])

    def f(net, X):
        g = symdl.dlgradient(symdl.sum(nn.predict(net, X)), X, enable_higher_derivatives=True)
        h = symdl.dlgradient(symdl.sum(g), X, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(h), X)                      # -sin(X)
    t = symdl.dlfeval(f, net, symdl.dlarray(x, "CB"))
    np.testing.assert_allclose(symdl.extractdata(t), -np.sin(x), rtol=1e-12)


def test_backward_with_wrong_count_is_an_error():
    class Bad(ELU):
        def backward(self, X, Z, dLdZ, memory):
            return dLdZ

    net = _net(Bad)
    with pytest.raises(ValueError, match="backward must return"):
        _grads(net, _data())


def test_unset_learnable_is_an_error():
    class Unset(nn.Layer):
        learnables = ("w",)

        def predict(self, X):
            return X

    with pytest.raises(ValueError, match="'w' of layer 'unset' is not set"):
        nn.dlnetwork([nn.feature_input_layer(2), Unset()])


def test_custom_backward_compiled_matches_interpreted():
    net = _net(ELUWrongBackward)          # a backward that differs from autodiff: compiled code must use it too
    X = _data()

    def f(net, X):
        y = symdl.sum(nn.predict(net, X) ** 2)
        g, gx = symdl.dlgradient(y, net, X)
        return y, g["elu"]["alpha"], gx
    ref = symdl.dlfeval(f, net, X)
    acc = symdl.dlaccelerate(f)
    for _ in range(2):
        got = symdl.dlfeval(acc, net, X)
        for a, e in zip(got, ref):
            np.testing.assert_allclose(symdl.extractdata(a), symdl.extractdata(e), rtol=1e-12, atol=1e-14)
    assert acc.hit_rate == 50


class Scaled(nn.Layer):
    """forward keeps memory for backward; training and inference differ."""

    learnables = ("w",)

    def __init__(self, name=""):
        super().__init__(name)
        self.w = np.array([[2.0], [3.0]])

    def predict(self, X):
        return X * self.w

    def forward(self, X):
        e = symdl.exp(X)
        return e * self.w, e                          # memory: exp(X)

    def backward(self, X, Z, dLdZ, memory):
        return dLdZ * memory * self.w, symdl.sum(dLdZ * memory, axis=1).reshape(2, 1)


def test_custom_forward_memory_and_state_of_training():
    net = nn.dlnetwork([nn.feature_input_layer(2), Scaled(name="s")], dtype="float64")
    x = np.array([[0.1, -0.4, 0.7], [1.1, 0.2, -0.3]])
    w = np.array([[2.0], [3.0]])

    def f(net, X):
        Y, _ = nn.forward(net, X)
        y = symdl.sum(Y * Y)
        return (Y,) + symdl.dlgradient(y, net, X)
    Y, g, gx = symdl.dlfeval(f, net, symdl.dlarray(x, "CB"))
    np.testing.assert_allclose(symdl.extractdata(Y), np.exp(x) * w, rtol=1e-14)
    # y = sum((w e^x)^2): dy/dw = sum(2 w e^{2x}), dy/dx = 2 w^2 e^{2x}
    np.testing.assert_allclose(symdl.extractdata(g["s"]["w"]), (2 * w * np.exp(2 * x)).sum(1, keepdims=True),
                               rtol=1e-13)
    np.testing.assert_allclose(symdl.extractdata(gx), 2 * w ** 2 * np.exp(2 * x), rtol=1e-13)
    np.testing.assert_allclose(symdl.extractdata(nn.predict(net, x)), x * w, rtol=1e-14)


def test_custom_layer_without_base_init_gets_a_default_name():
    class Twice(nn.Layer):
        def __init__(self):
            pass                          # no super().__init__: still named

        def predict(self, X):
            return X * 2.0

    net = nn.dlnetwork([nn.feature_input_layer(1), Twice(), Twice()], dtype="float64")
    assert [lay.name for lay in net.layers] == ["featureinput", "twice_1", "twice_2"]
    np.testing.assert_array_equal(symdl.extractdata(nn.predict(net, np.array([[1.5]]))), [[6.0]])


def test_nonlinear_backward_is_an_error():
    class Bad(nn.Layer):
        def predict(self, X):
            return X * 1.0

        def backward(self, X, Z, dLdZ, memory):
            return dLdZ * dLdZ

    net = nn.dlnetwork([nn.feature_input_layer(2), Bad(name="bad")], dtype="float64")

    def f(net, X):
        return symdl.dlgradient(symdl.sum(nn.predict(net, X)), X)
    with pytest.raises(ValueError, match="linear in dLdZ"):
        symdl.dlfeval(f, net, symdl.dlarray(np.ones((2, 1)), "CB"))


def test_accelerated_predict_without_gradients_equals_eager():
    net = _net(ELU)
    X = _data()
    acc = symdl.dlaccelerate(lambda n, x: nn.predict(n, x))       # called outside dlfeval: no gradients
    np.testing.assert_allclose(symdl.extractdata(acc(net, X)), symdl.extractdata(nn.predict(net, X)),
                               rtol=1e-13)
