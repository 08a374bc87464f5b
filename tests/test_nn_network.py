"""Built-in layers against numpy references, initialisers against MATLAB's
formulas, layer graphs and dlnetwork (gradients against central
differences, dlaccelerate hit rate, pickling, error paths)."""

import pickle

import numpy as np
import pytest

import symdl
from symdl import nn

from helpers import numeric_grad


def _x(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def _value(a):
    return symdl.extractdata(a)


# ---------------------------------------------------------------- layers

def test_fully_connected_layer_against_numpy():
    symdl.seed(1)
    net = nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2)], dtype="float64")
    W, b = (_value(net.learnables["fc"][k]) for k in ("weights", "bias"))
    X = _x(3, 4)
    np.testing.assert_allclose(_value(nn.predict(net, X)), W @ X + b, rtol=1e-14)


def test_image_flatten_and_fc_read_c_order():
    symdl.seed(1)
    net = nn.dlnetwork([nn.image_input_layer((2, 3, 2), normalization="none"), nn.flatten_layer(),
                        nn.fully_connected_layer(2)], dtype="float64")
    W, b = (_value(net.learnables["fc"][k]) for k in ("weights", "bias"))
    X = _x(2, 3, 2, 5)
    ref = W @ np.moveaxis(X, 3, 0).reshape(5, 12).T + b      # each observation's (H, W, C) in C order
    np.testing.assert_allclose(_value(nn.predict(net, X)), ref, rtol=1e-13)


def test_convolution_layer_against_numpy():
    symdl.seed(2)
    net = nn.dlnetwork([nn.image_input_layer((5, 5, 2), normalization="none"),
                        nn.convolution2d_layer((3, 2), 4, bias_initializer="narrow-normal")], dtype="float64")
    W, b = (_value(net.learnables["conv"][k]) for k in ("weights", "bias"))
    assert W.shape == (3, 2, 2, 4) and b.shape == (1, 1, 4)
    X = _x(5, 5, 2, 2)
    ref = np.zeros((3, 4, 4, 2))
    for i in range(3):
        for j in range(4):
            ref[i, j] = np.einsum("hwcn,hwcf->fn", X[i:i + 3, j:j + 2], W) + b.reshape(4, 1)
    np.testing.assert_allclose(_value(nn.predict(net, X)), ref, rtol=1e-12, atol=1e-14)


def test_batchnorm_layer_forward_predict_and_state():
    net = nn.dlnetwork([nn.feature_input_layer(2), nn.batch_normalization_layer()], dtype="float64")
    X = _x(2, 6)
    Y, state = nn.forward(net, X)
    mu, var = X.mean(1, keepdims=True), X.var(1, keepdims=True)
    np.testing.assert_allclose(_value(Y), (X - mu) / np.sqrt(var + 1e-5), rtol=1e-12)
    np.testing.assert_allclose(_value(state["batchnorm"]["trained_mean"]), 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(_value(state["batchnorm"]["trained_variance"]), 0.1 * var + 0.9, rtol=1e-12)
    net.state = state
    np.testing.assert_allclose(_value(nn.predict(net, X)), (X - 0.1 * mu) / np.sqrt(0.1 * var + 0.9 + 1e-5),
                               rtol=1e-12)


def test_activation_layers_against_numpy():
    X = _x(3, 4)
    cases = [(nn.relu_layer(), np.maximum(X, 0)), (nn.leaky_relu_layer(0.2), np.where(X > 0, X, 0.2 * X)),
             (nn.elu_layer(0.5), np.where(X > 0, X, 0.5 * np.expm1(np.minimum(X, 0)))),
             (nn.tanh_layer(), np.tanh(X)), (nn.sigmoid_layer(), 1 / (1 + np.exp(-X))),
             (nn.softmax_layer(), np.exp(X) / np.exp(X).sum(0)), (nn.dropout_layer(), X)]
    for layer, ref in cases:
        net = nn.dlnetwork([nn.feature_input_layer(3), layer], dtype="float64")
        np.testing.assert_allclose(_value(nn.predict(net, X)), ref, rtol=1e-12, err_msg=layer.default_name)


def test_dropout_layer_is_active_in_forward_only():
    net = nn.dlnetwork([nn.feature_input_layer(50), nn.dropout_layer(0.5)], dtype="float64")
    X = np.ones((50, 40))
    Y, _ = nn.forward(net, X)
    assert set(np.unique(_value(Y))) == {0.0, 2.0}
    np.testing.assert_array_equal(_value(nn.predict(net, X)), X)


def test_pooling_layers_against_numpy():
    X = _x(4, 4, 1, 2)
    for layer, red in ((nn.max_pooling2d_layer(2, stride=2), np.max), (nn.average_pooling2d_layer(2, stride=2),
                                                                         np.mean)):
        net = nn.dlnetwork([nn.image_input_layer((4, 4, 1), normalization="none"), layer], dtype="float64")
        ref = red(X.reshape(2, 2, 2, 2, 1, 2), axis=(1, 3))
        np.testing.assert_allclose(_value(nn.predict(net, X)), ref, rtol=1e-13)


def test_image_input_zscore_normalization():
    layer = nn.image_input_layer((2, 2, 1), normalization="zscore", mean=0.5, standard_deviation=2.0)
    net = nn.dlnetwork([layer], dtype="float64")
    X = _x(2, 2, 1, 3)
    np.testing.assert_allclose(_value(nn.predict(net, X)), (X - 0.5) / 2.0, rtol=1e-14)


def test_layer_normalization_and_concatenation():
    g = nn.layer_graph([nn.feature_input_layer(3, name="x"), nn.layer_normalization_layer(name="ln"),
                        nn.concatenation_layer("C", 2, name="cat")])
    g = nn.connect_layers(g, "x", "cat/in2")
    net = nn.dlnetwork(g, dtype="float64")
    X = _x(3, 4)
    ln = (X - X.mean(0)) / np.sqrt(X.var(0) + 1e-5)
    np.testing.assert_allclose(_value(nn.predict(net, X)), np.concatenate([ln, X], 0), rtol=1e-12)


def test_embedding_layer_reads_columns():
    symdl.seed(0)
    net = nn.dlnetwork([nn.feature_input_layer(1), nn.embedding_layer(3, 5)], dtype="float64")
    W = _value(net.learnables["embedding"]["weights"])
    idx = np.array([[4.0, 0.0, 2.0]])
    np.testing.assert_allclose(_value(nn.predict(net, idx)), W[:, [4, 0, 2]], rtol=0)


def test_recurrent_layers_match_the_functional_ops():
    from symdl.ops import recurrent
    X = _x(2, 3, 4)
    for layer, fn in ((nn.lstm_layer(5), "lstm"), (nn.gru_layer(5), "gru")):
        net = nn.dlnetwork([nn.sequence_input_layer(2), layer], dtype="float64")
        p = net.learnables[fn]
        args = (p["input_weights"], p["recurrent_weights"], p["bias"])
        h0 = np.zeros((5, 1))
        ref = (recurrent.lstm(symdl.dlarray(X, "CBT"), h0, h0, *args) if fn == "lstm"
               else recurrent.gru(symdl.dlarray(X, "CBT"), h0, *args))[0]
        np.testing.assert_allclose(_value(nn.predict(net, X)), _value(ref), rtol=1e-13)
        if fn == "lstm":   # MATLAB's unit-forget-gate bias
            np.testing.assert_array_equal(_value(p["bias"]).ravel(), np.r_[np.zeros(5), np.ones(5), np.zeros(10)])


# ---------------------------------------------------------------- initialisers

def test_glorot_and_he_statistics_follow_matlab_formulas():
    symdl.seed(5)
    net = nn.dlnetwork([nn.image_input_layer((8, 8, 6), normalization="none"),
                        nn.convolution2d_layer(3, 40, name="glorot"),
                        nn.convolution2d_layer(3, 30, weights_initializer="he", name="he"),
                        nn.flatten_layer(), nn.fully_connected_layer(100, weights_initializer="narrow-normal")],
                       dtype="float64")
    w = _value(net.learnables["glorot"]["weights"])
    bound = np.sqrt(6 / (9 * 6 + 9 * 40))             # numIn = 3*3*C, numOut = 3*3*F
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.var() / (bound ** 2 / 3) - 1) < 0.05   # uniform variance b^2/3, n = 2160
    h = _value(net.learnables["he"]["weights"])
    assert abs(h.std() / np.sqrt(2 / (9 * 40)) - 1) < 0.05     # numIn = 3*3*40 (this layer's input channels)
    n = _value(net.learnables["fc"]["weights"])
    assert abs(n.std() / 0.01 - 1) < 0.05 and abs(n.mean()) < 1e-3
    assert not _value(net.learnables["glorot"]["bias"]).any()


def test_initialisation_is_seeded_and_takes_callables():
    def build():
        return nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(
            2, bias_initializer=lambda shape: np.full(shape, 7.0))])
    symdl.seed(9)
    a = build()
    symdl.seed(9)
    b = build()
    np.testing.assert_array_equal(_value(a.learnables["fc"]["weights"]), _value(b.learnables["fc"]["weights"]))
    np.testing.assert_array_equal(_value(a.learnables["fc"]["bias"]), np.full((2, 1), 7.0, np.float32))
    with pytest.raises(ValueError, match="weights_initializer"):
        nn.fully_connected_layer(2, weights_initializer="glorious")


# ---------------------------------------------------------------- names and graphs

def test_matlab_default_names():
    g = nn.layer_graph([nn.image_input_layer((4, 4, 1)), nn.convolution2d_layer(3, 2), nn.relu_layer(),
                        nn.convolution2d_layer(3, 2), nn.relu_layer(), nn.fully_connected_layer(2),
                        nn.softmax_layer()])
    assert [lay.name for lay in g.layers] == ["imageinput", "conv_1", "relu_1", "conv_2", "relu_2", "fc",
                                              "softmax"]
    with pytest.raises(ValueError, match="unique"):
        nn.layer_graph([nn.relu_layer(name="a"), nn.relu_layer(name="a")])


def _skip_graph():
    g = nn.layer_graph([nn.feature_input_layer(3, name="x"), nn.fully_connected_layer(3, name="fc1"),
                        nn.tanh_layer(name="t"), nn.addition_layer(2, name="add"),
                        nn.fully_connected_layer(1, name="out")])
    return nn.connect_layers(g, "x", "add/in2")


def test_skip_connection_network_gradients_against_central_differences():
    symdl.seed(4)
    net = nn.dlnetwork(_skip_graph(), dtype="float64")
    X = _x(3, 5)
    p = net.learnables
    W1, b1, W2, b2 = (_value(p[k][n]) for k in ("fc1", "out") for n in ("weights", "bias"))

    def ref(W1, b1, W2, b2, X):
        return float(np.sum((W2 @ (np.tanh(W1 @ X + b1) + X) + b2) ** 2))
    np.testing.assert_allclose(_value(nn.predict(net, X)) ** 2, (W2 @ (np.tanh(W1 @ X + b1) + X) + b2) ** 2,
                               rtol=1e-12)

    def f(net, X):
        y = symdl.sum(nn.predict(net, X) ** 2)
        return symdl.dlgradient(y, net, X)
    g, gx = symdl.dlfeval(f, net, symdl.dlarray(X, "CB"))
    num = numeric_grad(ref, [W1, b1, W2, b2, X])
    got = [_value(g[k][n]) for k in ("fc1", "out") for n in ("weights", "bias")] + [_value(gx)]
    for a, e in zip(got, num):
        np.testing.assert_allclose(a, e, rtol=1e-7, atol=1e-9)
    assert set(g) == {"fc1", "out"} and set(g["fc1"]) == {"weights", "bias"}


def test_network_hessian_vector_product_against_central_differences():
    symdl.seed(4)
    net = nn.dlnetwork(_skip_graph(), dtype="float64")
    X = _x(3, 2)
    W1 = _value(net.learnables["fc1"]["weights"])
    v = _x(*W1.shape, seed=3)

    def loss(net, X):
        return symdl.sum(nn.predict(net, X) ** 2)

    def f(net, X):
        g = symdl.dlgradient(loss(net, X), net, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g["fc1"]["weights"] * v), net)["fc1"]["weights"]
    hv = _value(symdl.dlfeval(f, net, symdl.dlarray(X, "CB")))

    def grad_w1(w):
        n2 = pickle.loads(pickle.dumps(net))
        lrn = n2.learnables
        lrn["fc1"]["weights"] = symdl.dlarray(w)
        n2.learnables = lrn
        return _value(symdl.dlfeval(lambda n, X: symdl.dlgradient(loss(n, X), n), n2,
                                    symdl.dlarray(X, "CB"))["fc1"]["weights"])
    h = 1e-5
    ref = (grad_w1(W1 + h * v) - grad_w1(W1 - h * v)) / (2 * h)
    np.testing.assert_allclose(hv, ref, rtol=1e-6, atol=1e-8)


def test_dlaccelerate_training_loop_hits_one_trace():
    symdl.seed(0)
    net = nn.dlnetwork([nn.image_input_layer((6, 6, 1), normalization="none"), nn.convolution2d_layer(3, 2),
                        nn.batch_normalization_layer(), nn.relu_layer(), nn.fully_connected_layer(2),
                        nn.softmax_layer()], dtype="float64")
    T = np.eye(2)[:, [0, 1, 1, 0]]

    def model_gradients(net, X, T):
        Y, state = nn.forward(net, X)
        loss = symdl.crossentropy(Y, T)
        return loss, symdl.dlgradient(loss, net), state
    acc = symdl.dlaccelerate(model_gradients)
    X = symdl.dlarray(_x(6, 6, 1, 4), "SSCB")
    ref_loss, ref_grad, _ = symdl.dlfeval(model_gradients, net, X, T)
    for it in range(10):
        loss, grad, state = symdl.dlfeval(acc, net, X, T)
        if it == 0:
            np.testing.assert_allclose(_value(loss), _value(ref_loss), rtol=1e-12)
            np.testing.assert_allclose(_value(grad["conv"]["weights"]), _value(ref_grad["conv"]["weights"]),
                                       rtol=1e-10, atol=1e-12)
        net.state = state
        lrn, _, _ = symdl.adamupdate(net.learnables, grad, None, None, 1, learn_rate=0.01)
        net.learnables = lrn
    assert acc.hit_rate == 90
    assert acc.occupancy == 2


def test_pickle_round_trip():
    symdl.seed(0)
    net = nn.dlnetwork(_skip_graph())
    X = _x(3, 2)
    again = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(_value(nn.predict(again, X)), _value(nn.predict(net, X)))


# ---------------------------------------------------------------- errors

def test_connect_layers_errors_name_the_argument():
    g = nn.layer_graph([nn.feature_input_layer(2, name="x"), nn.addition_layer(2, name="add")])
    with pytest.raises(ValueError, match="destination 'nope' names no layer"):
        nn.connect_layers(g, "x", "nope")
    with pytest.raises(ValueError, match="source 'y' names no layer"):
        nn.connect_layers(g, "y", "add/in2")
    with pytest.raises(ValueError, match="no input 'in3'"):
        nn.connect_layers(g, "x", "add/in3")
    with pytest.raises(ValueError, match="already connected"):
        nn.connect_layers(g, "x", "add/in1")
    with pytest.raises(ValueError, match="input 'in2' of layer 'add' is not connected"):
        nn.dlnetwork(g)


def test_network_errors():
    with pytest.raises(ValueError, match="no input layer"):
        nn.dlnetwork([nn.fully_connected_layer(2)])
    g = nn.layer_graph([nn.feature_input_layer(2, name="x"), nn.addition_layer(2, name="a"),
                        nn.relu_layer(name="r")])
    with pytest.raises(ValueError, match="cycle"):
        nn.dlnetwork(nn.connect_layers(g, "r", "a/in2"))
    with pytest.raises(ValueError, match="layer 'fc' cannot be initialised.*weights must have shape"):
        nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2, weights=np.ones((2, 4)))])
    with pytest.raises(ValueError, match="output layer"):
        nn.dlnetwork([nn.feature_input_layer(3), nn.classification_layer()])
    net = nn.dlnetwork([nn.feature_input_layer(3), nn.relu_layer()])
    with pytest.raises(ValueError, match="input size"):
        nn.predict(net, np.ones((4, 2)))
    with pytest.raises(TypeError, match="net must be a dlnetwork"):
        nn.forward({"a": 1}, np.ones((3, 2)))
    with pytest.raises(ValueError, match="positive integer"):
        nn.fully_connected_layer(0)
    g = nn.layer_graph([nn.feature_input_layer(2, name="x"), nn.relu_layer(name="r"),
                        nn.addition_layer(2, name="add")])
    g = nn.connect_layers(g, "x", "add/in2")
    bad = nn.add_layers(g, [nn.fully_connected_layer(3, name="wide")])
    bad = nn.disconnect_layers(nn.connect_layers(bad, "x", "wide"), "x", "add/in2")
    with pytest.raises(ValueError, match="layer 'add' cannot take its input"):
        nn.dlnetwork(nn.connect_layers(bad, "wide", "add/in2"))


def test_recurrent_output_mode_last_is_the_last_step():
    X = _x(2, 3, 4)
    symdl.seed(1)
    seq = nn.dlnetwork([nn.sequence_input_layer(2), nn.lstm_layer(5, name="r")], dtype="float64")
    symdl.seed(1)
    last = nn.dlnetwork([nn.sequence_input_layer(2), nn.lstm_layer(5, output_mode="last", name="r")],
                        dtype="float64")
    Y = nn.predict(last, X)
    assert Y.fmt == "CB"
    np.testing.assert_array_equal(_value(Y), _value(nn.predict(seq, X))[:, :, -1])


class Shift(nn.Layer):
    """A module-level custom layer (save_network names its class)."""

    learnables = ("b",)

    def __init__(self, name=""):
        super().__init__(name)
        self.b = np.array([[0.5], [-0.5], [1.0]])

    def predict(self, X):
        return X + self.b


def test_save_and_load_without_pickle(tmp_path):
    symdl.seed(0)
    g = nn.layer_graph([nn.image_input_layer((4, 4, 2), mean=0.25), nn.convolution2d_layer(3, 3, padding="same"),
                        nn.batch_normalization_layer(), nn.tanh_layer(), nn.max_pooling2d_layer(2, stride=2),
                        nn.flatten_layer(), nn.fully_connected_layer(3), Shift(name="shift"),
                        nn.addition_layer(2, name="add"), nn.softmax_layer()])
    g = nn.connect_layers(g, "fc", "add/in2")
    net = nn.dlnetwork(g)
    X = _x(4, 4, 2, 3)
    _, state = nn.forward(net, X)
    net.state = state
    path = tmp_path / "net.npz"
    nn.save_network(net, path)
    with np.load(path, allow_pickle=False) as data:      # readable without pickle
        assert "architecture" in data.files and "learnables/conv/weights" in data.files
    again = nn.load_network(path)
    np.testing.assert_array_equal(_value(nn.predict(again, X)), _value(nn.predict(net, X)))
    np.testing.assert_array_equal(_value(again.state["batchnorm"]["trained_mean"]),
                                  _value(state["batchnorm"]["trained_mean"]))
    assert [lay.name for lay in again.layers] == [lay.name for lay in net.layers]
    with pytest.raises(TypeError, match="net must be a dlnetwork"):
        nn.save_network({"a": 1}, path)
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not a saved dlnetwork"):
        nn.load_network(tmp_path / "other.npz")


def test_outputs_of_inner_layers():
    net = nn.dlnetwork([nn.feature_input_layer(2), nn.relu_layer(), nn.fully_connected_layer(2)], dtype="float64")
    X = _x(2, 3)
    r, fc = nn.predict(net, X, outputs=["relu", "fc"])
    np.testing.assert_array_equal(_value(r), np.maximum(X, 0))
    np.testing.assert_array_equal(_value(fc), _value(nn.predict(net, X)))
    with pytest.raises(ValueError, match="outputs names no layer 'nope'"):
        nn.forward(net, X, outputs="nope")


def test_embedding_indices_are_not_frozen_into_an_accelerated_trace():
    symdl.seed(0)
    net = nn.dlnetwork([nn.feature_input_layer(1), nn.embedding_layer(2, 5)], dtype="float64")
    W = _value(net.learnables["embedding"]["weights"])
    acc = symdl.dlaccelerate(lambda n, x: nn.predict(n, x))
    for idx in ([[0.0, 1.0]], [[4.0, 2.0]]):
        got = symdl.dlfeval(acc, net, symdl.dlarray(np.array(idx), "CB"))
        np.testing.assert_array_equal(_value(got), W[:, np.array(idx[0], dtype=int)])
    assert acc.hit_rate == 50


def test_two_inputs_and_two_outputs():
    g = nn.layer_graph([nn.feature_input_layer(2, name="a"), nn.concatenation_layer("C", 2, name="cat"),
                        nn.relu_layer(name="r")])
    g = nn.add_layers(g, [nn.feature_input_layer(3, name="b"), nn.tanh_layer(name="t")])
    g = nn.connect_layers(g, "b", "cat/in2")
    net = nn.dlnetwork(g, dtype="float64")
    assert net.input_names == ["a", "b"] and net.output_names == ["r", "t"]
    A, B = _x(2, 4), _x(3, 4, seed=1)
    r, t, state = nn.forward(net, A, B)
    np.testing.assert_array_equal(_value(r), np.maximum(np.concatenate([A, B]), 0))
    np.testing.assert_allclose(_value(t), np.tanh(B), rtol=1e-15)
    assert state == {}
    with pytest.raises(ValueError, match="2 input"):
        nn.predict(net, A)
