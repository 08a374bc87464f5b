"""Data-parallel training on a Dask cluster (SPEC §9.4): one local cluster of
two worker processes per module; on its workers, tracing and LLVM raise (and
count), so every parallel run here also shows that the compiled step travels
instead of being rebuilt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import symdl
from symdl import nn

distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install 'symdl[dask]')")
cloudpickle = pytest.importorskip("cloudpickle", reason="dask.distributed is not installed")

ROOT = Path(__file__).resolve().parent.parent


def _install_probes():
    """On a worker: tracing, LLVM optimisation and object-code emission
    count and raise; unpickled CompiledFunctions are counted."""
    import types

    import codegen.llvm as llvm
    import symdl.compiler.aot as aot
    import symdl.tracing as tracing
    probe = types.ModuleType("_symdl_probe")
    probe.counts = {"traces": 0, "llvm": 0, "unpickled": 0}
    sys.modules["_symdl_probe"] = probe

    def forbid(kind, what):
        def refuse(*args, **kwargs):
            probe.counts[kind] += 1
            raise AssertionError(f"{what} on a Dask worker")
        return refuse

    tracing.TraceContext.__init__ = forbid("traces", "tracing")
    for name in ("optimize", "compile_object", "assembly"):
        setattr(llvm, name, forbid("llvm", f"LLVM ({name})"))
    setstate = aot.CompiledFunction.__setstate__

    def counted(self, state):
        probe.counts["unpickled"] += 1
        setstate(self, state)
    aot.CompiledFunction.__setstate__ = counted
    return symdl.__file__


def _counts():
    return dict(sys.modules["_symdl_probe"].counts)


def _reset_counts():
    for k in sys.modules["_symdl_probe"].counts:
        sys.modules["_symdl_probe"].counts[k] = 0


@pytest.fixture(scope="module")
def client():
    cloudpickle.register_pickle_by_value(sys.modules[__name__])   # the probes run on the workers
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    c = distributed.Client(cluster)
    try:
        files = c.run(_install_probes)
        assert set(files.values()) == {symdl.__file__}    # the workers run this tree's symdl
        yield c
    finally:
        c.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _blobs(n, features=16, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(scale=1.5, size=(features, classes))
    return (centers[:, y] + rng.normal(size=(features, n))).astype(np.float32), y


def _mlp(features=16, classes=4, output=None):
    return [nn.feature_input_layer(features), nn.fully_connected_layer(12), nn.relu_layer(),
            nn.fully_connected_layer(classes), *([nn.softmax_layer(), nn.classification_layer()]
                                                 if output is None else [output])]


def _train(X, y, layers, solver, client=None, **opts):
    symdl.seed(0)
    env = {"execution_environment": "parallel", "cluster": client} if client is not None else {}
    return nn.train_network(X, y, layers, nn.training_options(solver, verbose=False, **opts, **env))


def _max_difference(a, b):
    la, lb = a.network.learnables, b.network.learnables
    return max(float(np.max(np.abs(symdl.extractdata(la[k][p]) - symdl.extractdata(lb[k][p]))))
               for k in la for p in la[k])


@pytest.mark.parametrize("solver", ["adam", "sgdm", "rmsprop"])
def test_fifty_steps_match_one_process(client, solver):
    # 250 observations in mini-batches of 25 (shards of 13 and 12): 50 steps
    X, y = _blobs(250)
    opts = dict(max_epochs=5, mini_batch_size=25, initial_learn_rate=0.01, shuffle="every-epoch")
    one, info1 = _train(X, y, _mlp(), solver, **opts)
    par, info2 = _train(X, y, _mlp(), solver, client, **opts)
    assert len(info2["training_loss"]) == 50
    assert _max_difference(one, par) < 1e-5
    if solver == "adam":   # the tolerance tells steps apart: 40 steps are far from 50
        assert _max_difference(one, _train(X, y, _mlp(), solver, **{**opts, "max_epochs": 4})[0]) > 1e-3
    np.testing.assert_allclose(info2["training_loss"], info1["training_loss"], rtol=1e-5)
    assert info2["training_accuracy"] == info1["training_accuracy"]
    assert info2["base_learn_rate"] == info1["base_learn_rate"]


def test_regression_without_l2_matches_one_process(client):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(5, 120)).astype(np.float32)
    Y = np.stack([X[0] - 2 * X[1], np.sin(X[2])]).astype(np.float32)
    layers = [nn.feature_input_layer(5), nn.fully_connected_layer(8), nn.tanh_layer(), nn.fully_connected_layer(2),
              nn.regression_layer()]
    opts = dict(max_epochs=4, mini_batch_size=30, l2_regularization=0.0)
    one, info1 = _train(X, Y, layers, "adam", **opts)
    par, info2 = _train(X, Y, layers, "adam", client, **opts)
    assert _max_difference(one, par) < 1e-5
    assert info2["training_accuracy"] is None
    np.testing.assert_allclose(info2["training_loss"], info1["training_loss"], rtol=1e-5)


def test_compiled_step_travels_once_and_workers_never_trace_or_compile(client):
    X, y = _blobs(90)
    client.run(_reset_counts)
    # mini-batches of 9 over 2 workers: shards of 5 and 4, two compiled steps, 30 iterations
    _, info = _train(X, y, _mlp(), "sgdm", client, max_epochs=3, mini_batch_size=9)
    assert len(info["training_loss"]) == 30
    counts = client.run(_counts)
    assert len(counts) == 2
    for c in counts.values():
        assert c == {"traces": 0, "llvm": 0, "unpickled": 2}, counts

    def trace_something():
        return symdl.compile(lambda x: x * 2.0, 1.0)
    # the probes do see tracing on a worker (the assertion above can fail)
    with pytest.raises(AssertionError, match="tracing on a Dask worker"):
        client.submit(trace_something, pure=False).result(timeout=30)


def test_validation_schedule_and_progress_table(client, capsys):
    X, y = _blobs(200)
    Xv, yv = _blobs(60, seed=1)
    opts = dict(max_epochs=4, mini_batch_size=40, initial_learn_rate=0.05, learn_rate_schedule="piecewise",
                learn_rate_drop_period=2, learn_rate_drop_factor=0.5, validation_data=(Xv, yv),
                validation_frequency=3)
    _, info1 = _train(X, y, _mlp(), "sgdm", **opts)
    symdl.seed(0)
    options = nn.training_options("sgdm", execution_environment="parallel", cluster=client, verbose_frequency=5,
                                  **opts)
    capsys.readouterr()
    _, info2 = nn.train_network(X, y, _mlp(), options)
    out = capsys.readouterr().out.splitlines()
    assert info2["base_learn_rate"] == [0.05] * 10 + [0.025] * 10
    np.testing.assert_allclose(info2["validation_loss"], info1["validation_loss"], rtol=1e-5)
    np.testing.assert_array_equal(info2["validation_accuracy"], info1["validation_accuracy"])
    assert np.isfinite(info2["validation_loss"]).sum() == len([1, 3, 6, 9, 12, 15, 18, 20])
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out[4:-1]]
    assert [int(r[1]) for r in rows] == [1, 5, 10, 15, 20]
    for r in rows:
        k = int(r[1]) - 1
        assert float(r[3]) == pytest.approx(info2["training_loss"][k], abs=5e-5)
        assert float(r[-1]) == info2["base_learn_rate"][k]


def test_batchnorm_state_is_the_size_weighted_mean_of_the_shards(client):
    # one step on 25 observations (shards 0..12 and 13..24), fixed initial weights
    X, y = _blobs(25)
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(6, 16)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32)

    def layers():
        return [nn.feature_input_layer(16), nn.fully_connected_layer(6, weights=W, bias=b),
                nn.batch_normalization_layer(), nn.relu_layer(), nn.fully_connected_layer(4),
                nn.softmax_layer(), nn.classification_layer()]
    opts = dict(max_epochs=1, mini_batch_size=25, shuffle="never")
    par, _ = _train(X, y, layers(), "sgdm", client, **opts)
    one, _ = _train(X, y, layers(), "sgdm", **opts)
    Z = W.astype(np.float64) @ X + b
    shards = [Z[:, :13], Z[:, 13:]]
    mean = 0.1 * sum(s.shape[1] / 25 * s.mean(axis=1) for s in shards)
    var = 0.9 + 0.1 * sum(s.shape[1] / 25 * s.var(axis=1) for s in shards)
    state, state1 = par.network.state["batchnorm"], one.network.state["batchnorm"]
    np.testing.assert_allclose(symdl.extractdata(state["trained_mean"]).ravel(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(symdl.extractdata(state["trained_variance"]).ravel(), var, rtol=1e-5)
    # the mean is the whole batch's; the variance lacks the spread between the shards' means
    np.testing.assert_allclose(symdl.extractdata(state1["trained_mean"]).ravel(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(symdl.extractdata(state1["trained_variance"]).ravel(), 0.9 + 0.1 * Z.var(axis=1),
                               rtol=1e-5)


def test_more_workers_than_observations_and_image_input(client):
    # mini-batches of 1: a single shard, so only one worker works
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 4, 1, 6)).astype(np.float32)
    y = np.arange(6) % 2
    layers = [nn.image_input_layer((4, 4, 1)), nn.convolution2d_layer(3, 2), nn.relu_layer(),
              nn.fully_connected_layer(2), nn.softmax_layer(), nn.classification_layer()]
    opts = dict(max_epochs=1, mini_batch_size=1)
    one, _ = _train(X, y, layers, "adam", **opts)
    par, info = _train(X, y, layers, "adam", client, **opts)
    assert len(info["training_loss"]) == 6
    assert _max_difference(one, par) < 1e-5


def _fail(payload, idx, leaves, key):
    raise ZeroDivisionError("shard exploded")


def _hang(payload, idx, leaves, key):
    import time
    time.sleep(3.0)


def _patch_shard(fn):
    import symdl.nn.parallel as parallel
    parallel.__dict__.setdefault("_original_evaluate_shard", parallel._evaluate_shard)
    parallel._evaluate_shard = fn or parallel._original_evaluate_shard


def test_a_failing_worker_is_an_error_naming_it(client):
    X, y = _blobs(40)
    client.run(_patch_shard, _fail)
    try:
        with pytest.raises(RuntimeError, match=r"a Dask worker failed in iteration 1: ZeroDivisionError: shard "
                                               r"exploded"):
            _train(X, y, _mlp(), "sgdm", client, max_epochs=1, mini_batch_size=10)
    finally:
        client.run(_patch_shard, None)


def test_a_hanging_worker_is_a_timeout_not_a_hang(client):
    X, y = _blobs(40)
    client.run(_patch_shard, _hang)
    try:
        with pytest.raises(RuntimeError, match=r"no result for iteration 1 within worker_timeout=0.5 s"):
            _train(X, y, _mlp(), "sgdm", client, max_epochs=1, mini_batch_size=10, worker_timeout=0.5)
    finally:
        client.run(_patch_shard, None)


def test_option_errors(client):
    with pytest.raises(TypeError, match="cluster must be a dask.distributed.Client.*got str"):
        nn.training_options(execution_environment="parallel", cluster="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="cluster is used by execution_environment='parallel' only"):
        nn.training_options(cluster=client)
    with pytest.raises(ValueError, match=r"execution_environment must be 'auto', 'cpu' or 'parallel', got 'gpu'"):
        nn.training_options(execution_environment="gpu")
    with pytest.raises(ValueError, match="worker_timeout must be a positive number of seconds, got 0"):
        nn.training_options(execution_environment="parallel", worker_timeout=0)
    with pytest.raises(TypeError, match="worker_timeout must be a real number"):
        nn.training_options(execution_environment="parallel", worker_timeout="1 minute")
    # the current client is the default
    assert nn.training_options(execution_environment="parallel").cluster is None
    X, y = _blobs(40)
    one, _ = _train(X, y, _mlp(), "sgdm", max_epochs=1, mini_batch_size=10)
    symdl.seed(0)
    par, _ = nn.train_network(X, y, _mlp(), nn.training_options("sgdm", max_epochs=1, mini_batch_size=10,
                                                                 verbose=False, execution_environment="parallel"))
    assert _max_difference(one, par) < 1e-5


def test_without_a_client_the_error_says_how_to_get_one():
    code = ("import numpy as np\nfrom symdl import nn\n"
            "opts = nn.training_options(execution_environment='parallel', verbose=False)\n"
            "layers = [nn.feature_input_layer(2), nn.fully_connected_layer(2), nn.softmax_layer(), "
            "nn.classification_layer()]\n"
            "try:\n    nn.train_network(np.zeros((2, 4)), np.array([0, 1, 0, 1]), layers, opts)\n"
            "except ValueError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "execution_environment='parallel' needs a Dask client" in out.stdout
    assert "cluster=dask.distributed.Client(...)" in out.stdout


def _die(payload, idx, leaves, key):
    import os
    os._exit(1)


def test_lost_workers_are_an_error_not_a_hang():
    # a cluster of its own: its one worker dies on its first shard, and the
    # compiled step and the data (scattered to it alone) die with it
    X, y = _blobs(40)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        c.run(_patch_shard, _die)
        with pytest.raises(RuntimeError, match=r"iteration 1.*(lost|died|failed)"):
            _train(X, y, _mlp(), "sgdm", c, max_epochs=1, mini_batch_size=10, worker_timeout=30)


def _dropout_mlp():
    return [nn.feature_input_layer(16), nn.fully_connected_layer(12), nn.relu_layer(), nn.dropout_layer(0.5),
            nn.fully_connected_layer(4), nn.softmax_layer(), nn.classification_layer()]


def test_dropout_masks_differ_per_shard_and_follow_the_seed(client):
    from symdl.nn.parallel import _evaluate_shard, _make_payload
    from symdl.tree import tree_flatten
    X, y = _blobs(20)
    symdl.seed(0)
    net = nn.dlnetwork(_dropout_mlp()[:-1])
    payload = _make_payload(net, X, np.eye(4, dtype=np.float32)[:, y], y, "CB", [10], True)
    leaves = [symdl.extractdata(v) for v in tree_flatten(net)[0]]
    idx = np.arange(10)

    def grads(key):
        return np.concatenate([g.ravel() for g in _evaluate_shard(payload, idx, leaves, np.array(key))[1]])
    # the same shard with two keys: two masks; the same key: the same mask
    assert np.max(np.abs(grads([5, 0]) - grads([5, 1]))) > 1e-3
    np.testing.assert_array_equal(grads([5, 0]), grads([5, 0]))
    # a whole parallel run repeats under symdl.seed
    opts = dict(max_epochs=2, mini_batch_size=10)
    a, _ = _train(X, y, _dropout_mlp(), "adam", client, **opts)
    b, _ = _train(X, y, _dropout_mlp(), "adam", client, **opts)
    assert _max_difference(a, b) == 0.0
