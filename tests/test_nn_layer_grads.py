"""Every learnable layer's gradients (learnables and input) against central
differences of the layer's own eager evaluation (no autodiff involved)."""

import numpy as np
import pytest

import symdl
from symdl import nn

from helpers import numeric_grad


def _case(name):
    img = nn.image_input_layer((4, 4, 2), normalization="none")
    cases = {
        "fc": ([nn.feature_input_layer(3), nn.fully_connected_layer(2)], (3, 2), True),
        "conv2d": ([img, nn.convolution2d_layer(2, 2, padding="same")], (4, 4, 2, 1), True),
        "flatten-fc": ([nn.image_input_layer((5, 2), normalization="none"), nn.flatten_layer(),
                        nn.fully_connected_layer(2)], (5, 2, 1, 1), True),
        "conv1d-time": ([nn.sequence_input_layer(2, min_length=3), nn.convolution1d_layer(3, 2, stride=2)],
                        (2, 1, 6), True),
        "transposed": ([img, nn.transposed_convolution2d_layer(2, 1, stride=2)], (4, 4, 2, 1), True),
        "batchnorm": ([nn.feature_input_layer(2), nn.batch_normalization_layer()], (2, 4), True),
        "batchnorm-predict": ([nn.feature_input_layer(2), nn.batch_normalization_layer()], (2, 4), False),
        "layernorm": ([nn.feature_input_layer(3), nn.layer_normalization_layer()], (3, 2), True),
        "gelu-softmax": ([nn.feature_input_layer(3), nn.gelu_layer(), nn.softmax_layer()], (3, 2), True),
        "pool": ([img, nn.max_pooling2d_layer(2, stride=2), nn.average_pooling2d_layer(2)], (4, 4, 2, 1), True),
    }
    return cases[name]


def _set(net, names, values):
    lrn = net.learnables
    for (layer, p), v in zip(names, values):
        lrn[layer][p] = symdl.dlarray(v)
    net.learnables = lrn


def _check(layers, xshape, training, seed=0):
    symdl.seed(seed)
    net = nn.dlnetwork(layers, dtype="float64")
    rng = np.random.default_rng(seed)
    X = rng.normal(size=xshape)
    names = [(k, p) for k, d in net.learnables.items() for p in d]
    values = [symdl.extractdata(net.learnables[k][p]) for k, p in names]
    values = [v + 0.3 * rng.normal(size=v.shape) for v in values]       # away from the special initial values
    _set(net, names, values)
    Y0 = nn.predict(net, X)
    R = rng.normal(size=Y0.shape)

    def run(n, x):
        return (nn.forward(n, x)[0] if training else nn.predict(n, x))

    def loss(*args):
        n = nn.dlnetwork.__new__(nn.dlnetwork)
        n.__setstate__(net.__getstate__())
        _set(n, names, args[:-1])
        return float(np.sum(symdl.extractdata(run(n, args[-1])) * R))

    def f(n, x):
        y = symdl.sum(run(n, x) * R)
        return symdl.dlgradient(y, n, x)
    g, gx = symdl.dlfeval(f, net, symdl.dlarray(X, layers[0].fmt))
    got = [symdl.extractdata(g[k][p]) for k, p in names] + [symdl.extractdata(gx)]
    want = numeric_grad(loss, values + [X])
    for (what, a, e) in zip(names + ["X"], got, want):
        np.testing.assert_allclose(a, e, rtol=1e-6, atol=1e-8, err_msg=str(what))


@pytest.mark.parametrize("name", ["fc", "conv2d", "flatten-fc", "conv1d-time", "transposed", "batchnorm",
                                  "batchnorm-predict", "layernorm", "gelu-softmax", "pool"])
def test_layer_gradients_against_central_differences(name):
    layers, xshape, training = _case(name)
    _check(layers, xshape, training)


def test_convolution1d_over_time_against_numpy():
    symdl.seed(0)
    net = nn.dlnetwork([nn.sequence_input_layer(2, min_length=3), nn.convolution1d_layer(3, 4)], dtype="float64")
    W, b = (symdl.extractdata(net.learnables["conv"][k]) for k in ("weights", "bias"))
    X = np.random.default_rng(0).normal(size=(2, 3, 7))                  # C, B, T
    # cross-correlation over T: Y[f, b, t] = sum_{k, c} W[k, c, f] X[c, b, t + k]
    ref = np.stack([np.einsum("kcf,cbk->fb", W, X[:, :, t:t + 3]) for t in range(5)], axis=2)
    ref = ref + b.reshape(4, 1, 1)
    Y = nn.predict(net, X)
    assert Y.fmt == "CBT"
    np.testing.assert_allclose(symdl.extractdata(Y), ref, rtol=1e-12)
    with pytest.raises(ValueError, match="cannot take its input"):      # min_length 1 < filter size 3
        nn.dlnetwork([nn.sequence_input_layer(2), nn.convolution1d_layer(3, 4)])


def test_recurrent_layer_gradients():
    _check([nn.sequence_input_layer(2), nn.lstm_layer(2)], (2, 1, 3), True)
    _check([nn.sequence_input_layer(2), nn.gru_layer(2, output_mode="last")], (2, 1, 3), True)


def test_embedding_layer_gradient():
    symdl.seed(0)
    net = nn.dlnetwork([nn.feature_input_layer(1), nn.embedding_layer(2, 4)], dtype="float64")
    idx = np.array([[1.0, 3.0, 1.0]])
    R = np.random.default_rng(0).normal(size=(2, 3))

    def f(n):
        return symdl.dlgradient(symdl.sum(nn.predict(n, idx) * R), n)
    g = symdl.extractdata(symdl.dlfeval(f, net)["embedding"]["weights"])
    want = np.zeros((2, 4))
    for k, i in enumerate([1, 3, 1]):
        want[:, i] += R[:, k]                  # d/dW of sum(W[:, idx] * R)
    np.testing.assert_allclose(g, want, rtol=1e-14)
