"""training_options / train_network / classify (first slice)."""

import re

import numpy as np
import pytest

import symdl
from symdl import nn


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[2.0, -2.0, 0.0], [0.0, 0.0, 2.5]])
    return centers[:, y] + 0.4 * rng.normal(size=(2, n)), y


def _layers():
    return [nn.feature_input_layer(2), nn.fully_connected_layer(8), nn.relu_layer(), nn.fully_connected_layer(3),
            nn.softmax_layer(), nn.classification_layer()]


def test_progress_table_rows_match_the_history(capsys):
    X, y = _blobs()
    symdl.seed(0)
    opts = nn.training_options("sgdm", max_epochs=7, mini_batch_size=32, initial_learn_rate=0.1,
                               verbose_frequency=5)
    net, info = nn.train_network(X, y, _layers(), opts)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == out[3] == out[-1] == "|" + "=" * 88 + "|"
    assert {len(line) for line in out} == {90}   # every line of the table as wide as the separator
    assert "Epoch" in out[1] and "Mini-batch" in out[1] and "Loss" in out[2] and "Accuracy" in out[2]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out[4:-1]]
    total = 7 * 3
    assert [int(r[1]) for r in rows] == [1, 5, 10, 15, 20, 21]
    for epoch, it, elapsed, loss, acc, lr in rows:
        k = int(it) - 1
        assert int(epoch) == k // 3 + 1
        assert float(loss) == pytest.approx(info["training_loss"][k], abs=5e-5)
        assert float(acc.rstrip("%")) == pytest.approx(info["training_accuracy"][k], abs=5e-3)
        assert float(lr) == 0.1 and float(elapsed) >= 0
    assert len(info["training_loss"]) == total
    assert info["training_loss"][-1] < info["training_loss"][0]


def test_classify_returns_labels_of_the_training_kind():
    X, y = _blobs()
    names = np.array(["cat", "dog", "emu"])[y]
    opts = nn.training_options("adam", max_epochs=30, mini_batch_size=32, initial_learn_rate=0.02, verbose=False)
    symdl.seed(1)
    net, _ = nn.train_network(X, names, _layers(), opts)
    got = nn.classify(net, X)
    assert got.dtype.kind == "U" and set(got) <= {"cat", "dog", "emu"}
    assert (got == names).mean() > 0.95
    symdl.seed(1)
    net, _ = nn.train_network(X, y, _layers(), opts)
    got = nn.classify(net, X, mini_batch_size=10)
    assert got.dtype.kind == "i" and (got == y).mean() > 0.95


def test_one_sgdm_step_equals_the_formula():
    X, y = _blobs(n=12)
    opts = nn.training_options("sgdm", max_epochs=1, mini_batch_size=12, initial_learn_rate=0.5,
                               l2_regularization=0.0, shuffle="never", verbose=False)
    symdl.seed(4)
    net, _ = nn.train_network(X, y, _layers(), opts)
    symdl.seed(4)
    start = nn.dlnetwork(_layers()[:-1])
    T = symdl.dlarray(np.eye(3, dtype=np.float32)[:, y], "CB")

    def f(n):
        return symdl.dlgradient(symdl.crossentropy(nn.forward(n, X)[0], T), n)
    g = symdl.dlfeval(f, start)
    for layer, params in start.learnables.items():
        for p, v in params.items():
            want = symdl.extractdata(v) - 0.5 * symdl.extractdata(g[layer][p])    # velocity starts at 0
            np.testing.assert_allclose(symdl.extractdata(net.network.learnables[layer][p]), want, rtol=1e-5,
                                       atol=1e-6)


def test_piecewise_schedule():
    X, y = _blobs(n=32)
    opts = nn.training_options("rmsprop", max_epochs=5, mini_batch_size=16, initial_learn_rate=0.01,
                               learn_rate_schedule="piecewise", learn_rate_drop_factor=0.5,
                               learn_rate_drop_period=2, verbose=False)
    _, info = nn.train_network(X, y, _layers(), opts)
    expected = [0.01 * 0.5 ** ((e - 1) // 2) for e in range(1, 6) for _ in range(2)]
    np.testing.assert_allclose(info["base_learn_rate"], expected, rtol=1e-15)


def test_regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 64))
    Y = np.array([1.0, -2.0, 0.5]) @ X + 0.3
    opts = nn.training_options("adam", max_epochs=40, mini_batch_size=16, initial_learn_rate=0.05,
                               l2_regularization=0.0, verbose=False)
    symdl.seed(0)
    net, info = nn.train_network(X, Y, [nn.feature_input_layer(3), nn.fully_connected_layer(1),
                                        nn.regression_layer()], opts)
    pred = symdl.extractdata(nn.predict(net.network, X)).ravel()
    assert np.abs(pred - Y).max() < 0.05
    assert info["training_accuracy"] is None


def test_training_errors():
    X, y = _blobs(n=10)
    with pytest.raises(ValueError, match="solver"):
        nn.training_options("lbfgs")
    with pytest.raises(TypeError, match="validation_data must be a pair"):
        nn.training_options("adam", validation_data=X)
    with pytest.raises(ValueError, match="plots must be 'none' or 'training-progress'"):
        nn.training_options("adam", plots="everything")
    with pytest.raises(ValueError, match="validation_frequency"):
        nn.training_options("adam", validation_frequency=0)
    with pytest.raises(ValueError, match="max_epochs"):
        nn.training_options("adam", max_epochs=0)
    opts = nn.training_options(verbose=False, max_epochs=1)
    with pytest.raises(ValueError, match="1-D array of 10 class labels"):
        nn.train_network(X, y[:5], _layers(), opts)
    with pytest.raises(ValueError, match="end with classification_layer"):
        nn.train_network(X, y, _layers()[:-1], opts)
    with pytest.raises(ValueError, match=re.escape("shape (2,) + (N,)")):
        nn.train_network(X[:1], y, _layers(), opts)
    with pytest.raises(TypeError, match="options must come from training_options"):
        nn.train_network(X, y, _layers(), {"solver": "adam"})
    with pytest.raises(TypeError, match="classification network"):
        nn.classify(nn.dlnetwork(_layers()[:-1]), X)


def test_zerocenter_mean_comes_from_the_training_data():
    X, y = _blobs(n=32)
    X = X + 5.0
    layers = [nn.feature_input_layer(2, normalization="zerocenter")] + _layers()[1:]
    net, _ = nn.train_network(X, y, layers, nn.training_options(max_epochs=1, verbose=False))
    first = net.network.layers[0]
    np.testing.assert_allclose(first.mean, X.mean(axis=1))
    relu_in = nn.predict(net.network, X, outputs="featureinput")
    np.testing.assert_allclose(symdl.extractdata(relu_in), X - X.mean(axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
    assert layers[0].mean is None                      # the caller's layer is not changed


@pytest.mark.parametrize("solver", ["sgdm", "adam", "rmsprop"])
def test_each_training_step_is_one_native_call_of_one_trace(solver, monkeypatch, tmp_path):
    """The loss, gradients and the solver's update of a step are one
    dlaccelerate call: a whole run compiles two programs (the first step,
    whose solver state is still None, and every later step), however many
    iterations and learning rates it has."""
    from symdl.compiler.pipeline import STATS
    monkeypatch.setenv("SYMDL_CACHE_DIR", "0")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 96)
    X = np.stack([y * 2.0 - 1.0, rng.normal(size=96)]) + 0.1 * rng.normal(size=(2, 96))
    symdl.seed(1)
    layers = [nn.feature_input_layer(2), nn.fully_connected_layer(3), nn.relu_layer(), nn.fully_connected_layer(2),
              nn.softmax_layer(), nn.classification_layer()]
    opts = nn.training_options(solver, max_epochs=6, mini_batch_size=16, initial_learn_rate=0.05, verbose=False,
                               learn_rate_schedule="piecewise", learn_rate_drop_period=2)
    before = STATS["compiled"]
    net, info = nn.train_network(X, y, layers, opts)
    assert len(info["training_loss"]) == 36
    assert STATS["compiled"] - before == 2
    assert len(set(info["base_learn_rate"])) == 3           # three learning rates, still one trace
    assert float((nn.classify(net, X) == y).mean()) > 0.9


def test_validation_data_every_validation_frequency_iterations_and_at_the_end(capsys):
    """Validation loss and accuracy are those of predict on the validation set
    (computed here independently from the final network), at iteration 1,
    every validation_frequency iterations and the last; NaN elsewhere; the
    progress table shows them in two more columns."""
    X, y = _blobs(n=96, seed=0)
    Xv, yv = _blobs(n=40, seed=5)
    symdl.seed(2)
    opts = nn.training_options("adam", max_epochs=5, mini_batch_size=32, initial_learn_rate=0.05,
                               validation_data=(Xv, yv), validation_frequency=4, verbose_frequency=4)
    net, info = nn.train_network(X, y, _layers(), opts)
    total = 5 * 3
    checked = [k + 1 for k, v in enumerate(info["validation_loss"]) if not np.isnan(v)]
    assert checked == [1, 4, 8, 12, 15] and len(info["validation_loss"]) == total
    # the last validation point is the trained network's loss and accuracy on the validation set
    Yv = symdl.extractdata(nn.predict(net.network, symdl.dlarray(Xv.astype(np.float32), "CB")))
    T = np.eye(3)[:, yv]
    expected_loss = -np.sum(T * np.log(Yv)) / len(yv)
    assert info["validation_loss"][-1] == pytest.approx(expected_loss, rel=1e-4)
    assert info["validation_accuracy"][-1] == pytest.approx(100.0 * np.mean(Yv.argmax(0) == yv))
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert "Validation" in lines[1] and len({len(line) for line in lines}) == 1
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:-1]]
    assert [int(r[1]) for r in rows] == [1, 4, 8, 12, 15]
    for r in rows:
        k = int(r[1]) - 1
        assert float(r[5]) == pytest.approx(info["validation_loss"][k], abs=5e-5)
        assert float(r[6].rstrip("%")) == pytest.approx(info["validation_accuracy"][k], abs=5e-3)
    assert out.err == ""          # not a terminal: no progress bar


def test_training_progress_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib", reason="the training plot needs matplotlib (an optional extra)")
    X, y = _blobs(n=64)
    path = tmp_path / "progress.png"
    opts = nn.training_options("sgdm", max_epochs=3, mini_batch_size=16, verbose=False, validation_data=(X, y),
                               validation_frequency=2, plots="training-progress", plots_file=str(path))
    symdl.seed(3)
    nn.train_network(X, y, _layers(), opts)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_validation_labels_must_be_training_classes():
    X, y = _blobs(n=32)
    opts = nn.training_options("adam", max_epochs=1, verbose=False, validation_data=(X, np.full(32, 7)))
    with pytest.raises(ValueError, match="label 7 of the validation Y is not among the classes"):
        nn.train_network(X, y, _layers(), opts)
    opts = nn.training_options("adam", max_epochs=1, verbose=False, validation_data=(X[:1], y))
    with pytest.raises(ValueError, match="validation_data"):
        nn.train_network(X, y, _layers(), opts)


def test_a_progress_bar_on_a_terminal(monkeypatch, capsys):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    X, y = _blobs(n=64)
    opts = nn.training_options("adam", max_epochs=2, mini_batch_size=16, initial_learn_rate=0.05)
    symdl.seed(4)
    nn.train_network(X, y, _layers(), opts)
    drawn = term.getvalue()
    assert drawn.count("\r") == 8 and drawn.endswith("] 8/8 iterations\n")
    assert "[###############...............] 4/8 iterations" in drawn
