"""Optimisers (SPEC §5): each step against an independent numpy
implementation of the published update rule, over nested containers, state
starting as None, several steps; inside compiled code equal to eager; bad
input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl

RNG = np.random.default_rng(5)


def params_and_grads():
    p = {"w": RNG.standard_normal((2, 3)), "layers": [RNG.standard_normal(3), 0.5]}
    g = {"w": RNG.standard_normal((2, 3)), "layers": [RNG.standard_normal(3), -1.5]}
    return p, g


def to_dl(tree):
    return symdl.tree.tree_map(lambda a: symdl.dlarray(np.asarray(a, dtype=float)), tree)


def leaves(tree):
    return [np.asarray(symdl.extractdata(x) if isinstance(x, symdl.dlarray) else x, dtype=float)
            for x in symdl.tree.tree_flatten(tree)[0]]


def test_sgdm_matches_the_rule_over_three_steps():
    p, g = params_and_grads()
    P, V = to_dl(p), None
    ref_p, ref_v = leaves(p), [np.zeros_like(a) for a in leaves(p)]
    for _ in range(3):
        P, V = symdl.sgdmupdate(P, to_dl(g), V, learn_rate=0.1, momentum=0.8)
        ref_v = [0.8 * v - 0.1 * gg for v, gg in zip(ref_v, leaves(g))]
        ref_p = [pp + v for pp, v in zip(ref_p, ref_v)]
    for got, want in zip(leaves(P) + leaves(V), ref_p + ref_v):
        np.testing.assert_allclose(got, want, rtol=1e-14)
    assert isinstance(P, dict) and isinstance(P["layers"], list)


def test_adam_matches_the_rule_over_three_steps():
    p, g = params_and_grads()
    P, M, V = to_dl(p), None, None
    rp, rm, rv = leaves(p), [0 * a for a in leaves(p)], [0 * a for a in leaves(p)]
    for t in range(1, 4):
        grads = [gg * t for gg in leaves(g)]
        P, M, V = symdl.adamupdate(P, symdl.tree.tree_unflatten(symdl.tree.tree_flatten(g)[1],
                                                                 [symdl.dlarray(x) for x in grads]),
                                   M, V, t, learn_rate=0.01)
        rm = [0.9 * m + 0.1 * gg for m, gg in zip(rm, grads)]
        rv = [0.999 * v + 0.001 * gg ** 2 for v, gg in zip(rv, grads)]
        rp = [pp - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
              for pp, m, v in zip(rp, rm, rv)]
    for got, want in zip(leaves(P) + leaves(M) + leaves(V), rp + rm + rv):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_rmsprop_matches_the_rule():
    p, g = params_and_grads()
    P, V = symdl.rmspropupdate(to_dl(p), to_dl(g), None, learn_rate=0.01, sq_grad_decay=0.95)
    P, V = symdl.rmspropupdate(P, to_dl(g), V, learn_rate=0.01, sq_grad_decay=0.95)
    rv = [0.05 * gg ** 2 for gg in leaves(g)]
    rp = [pp - 0.01 * gg / (np.sqrt(v) + 1e-8) for pp, gg, v in zip(leaves(p), leaves(g), rv)]
    rv = [0.95 * v + 0.05 * gg ** 2 for v, gg in zip(rv, leaves(g))]
    rp = [pp - 0.01 * gg / (np.sqrt(v) + 1e-8) for pp, gg, v in zip(rp, leaves(g), rv)]
    for got, want in zip(leaves(P) + leaves(V), rp + rv):
        np.testing.assert_allclose(got, want, rtol=1e-13)


def test_dlupdate_single_and_multiple_outputs():
    p, g = params_and_grads()
    out = symdl.dlupdate(lambda a, b: a - 0.5 * b, to_dl(p), to_dl(g))
    for got, a, b in zip(leaves(out), leaves(p), leaves(g)):
        np.testing.assert_allclose(got, a - 0.5 * b, rtol=1e-15)
    twice, half = symdl.dlupdate(lambda a: (a * 2.0, a * 0.5), to_dl(p))
    np.testing.assert_allclose(leaves(twice)[0], leaves(p)[0] * 2)
    np.testing.assert_allclose(leaves(half)[1], leaves(p)[1] * 0.5)


def test_a_training_step_compiled_equals_eager():
    x = np.linspace(-1, 1, 8)
    y = 3 * x - 0.5

    def step(params, vel):
        def loss(q):
            return symdl.mse(symdl.reshape(q["a"] * x + q["b"], (1, 8)), y.reshape(1, 8),
                             normalization="all-elements")
        value = loss(params)
        grads = symdl.dlgradient(value, params)
        new_p, new_v = symdl.sgdmupdate(params, grads, vel, learn_rate=0.2)
        return value, new_p, new_v

    params = {"a": symdl.dlarray(0.0), "b": symdl.dlarray(0.0)}
    vel = {"a": symdl.dlarray(0.0), "b": symdl.dlarray(0.0)}
    acc = symdl.dlaccelerate(step)
    p1, v1, p2, v2 = params, vel, params, vel
    for _ in range(150):
        _, p1, v1 = symdl.dlfeval(step, p1, v1)
        _, p2, v2 = symdl.dlfeval(acc, p2, v2)
    for k in ("a", "b"):
        np.testing.assert_allclose(float(p2[k]), float(p1[k]), rtol=1e-12)
    assert acc.hit_rate > 90
    assert abs(float(p1["a"]) - 3) < 1e-3 and abs(float(p1["b"]) + 0.5) < 1e-3   # it learns the line


def test_bad_input_is_a_clear_error():
    p, g = params_and_grads()
    with pytest.raises(ValueError, match="sgdmupdate: vel must have the structure of params"):
        symdl.sgdmupdate(to_dl(p), to_dl(g), [1.0])
    g_bad = dict(g, w=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"adamupdate: grad\['w'\] has shape \(3, 2\), expected .* params\['w'\]"):
        symdl.adamupdate(to_dl(p), to_dl(g_bad), None, None, 1)
    with pytest.raises(ValueError, match="iteration .* must be a positive integer"):
        symdl.adamupdate(to_dl(p), to_dl(g), None, None, 0)
    with pytest.raises(ValueError, match=r"rmspropupdate: sq_grad_decay must be a number in \[0, 1\)"):
        symdl.rmspropupdate(to_dl(p), to_dl(g), None, sq_grad_decay=1.5)
    with pytest.raises(TypeError, match="sgdmupdate: learn_rate must be a non-negative finite number"):
        symdl.sgdmupdate(to_dl(p), to_dl(g), None, learn_rate="fast")
    with pytest.raises(TypeError, match="grad must have the structure of params, got None"):
        symdl.sgdmupdate(to_dl(p), None, None)


# ---------------------------------------------------------------- a dlnetwork as the parameters (SPEC §5)

def _small_network():
    from symdl import nn
    symdl.seed(4)
    return nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(4), nn.relu_layer(),
                         nn.fully_connected_layer(2)], dtype="float64")


def _loss_and_gradient(net, X, T):
    from symdl import nn
    loss = symdl.mse(nn.forward(net, X)[0], T)
    return loss, symdl.dlgradient(loss, net)


@pytest.mark.parametrize("update", ["sgdm", "adam", "rmsprop", "dlupdate"])
def test_optimisers_take_and_return_a_dlnetwork(update):
    from symdl import nn
    net = _small_network()
    rng = np.random.default_rng(0)
    X = symdl.dlarray(rng.standard_normal((3, 5)), "CB")
    T = symdl.dlarray(rng.standard_normal((2, 5)), "CB")
    _, grad = symdl.dlfeval(_loss_and_gradient, net, X, T)
    assert isinstance(grad, dict)
    plain = net.learnables     # the same update on the nested dict is the reference
    if update == "sgdm":
        new_net, vel = symdl.sgdmupdate(net, grad, None, learn_rate=0.1)
        ref, ref_vel = symdl.sgdmupdate(plain, grad, None, learn_rate=0.1)
        states = [(vel, ref_vel)]
    elif update == "adam":
        new_net, m, v = symdl.adamupdate(net, grad, None, None, 1, learn_rate=0.1)
        ref, ref_m, ref_v = symdl.adamupdate(plain, grad, None, None, 1, learn_rate=0.1)
        states = [(m, ref_m), (v, ref_v)]
    elif update == "rmsprop":
        new_net, v = symdl.rmspropupdate(net, grad, None, learn_rate=0.1)
        ref, ref_v = symdl.rmspropupdate(plain, grad, None, learn_rate=0.1)
        states = [(v, ref_v)]
    else:
        new_net = symdl.dlupdate(lambda p, g: p - 0.1 * g, net, grad)
        ref, states = symdl.dlupdate(lambda p, g: p - 0.1 * g, plain, grad), []
    assert isinstance(new_net, nn.dlnetwork) and new_net is not net
    got = symdl.tree.tree_flatten(new_net.learnables)[0]
    want = symdl.tree.tree_flatten(ref)[0]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(symdl.extractdata(a), symdl.extractdata(b))
    for state, ref_state in states:   # the state is a dict shaped like net.learnables
        assert set(state) == set(net.learnables)
        for a, b in zip(symdl.tree.tree_flatten(state)[0], symdl.tree.tree_flatten(ref_state)[0]):
            np.testing.assert_array_equal(symdl.extractdata(a), symdl.extractdata(b))
    assert new_net.state.keys() == net.state.keys()
    assert [layer.name for layer in new_net.layers] == [layer.name for layer in net.layers]
    # the network the update started from is unchanged
    for a, b in zip(symdl.tree.tree_flatten(net.learnables)[0], symdl.tree.tree_flatten(plain)[0]):
        np.testing.assert_array_equal(symdl.extractdata(a), symdl.extractdata(b))


def test_a_dlnetwork_training_step_under_dlaccelerate_is_one_trace():
    net = _small_network()
    rng = np.random.default_rng(1)
    X = symdl.dlarray(rng.standard_normal((3, 8)), "CB")
    T = symdl.dlarray(rng.standard_normal((2, 8)), "CB")
    acc = symdl.dlaccelerate(_loss_and_gradient)
    avg = sq = None
    losses = []
    for it in range(1, 6):
        loss, grad = symdl.dlfeval(acc, net, X, T)
        ref_loss, _ = symdl.dlfeval(_loss_and_gradient, net, X, T)
        assert float(loss) == pytest.approx(float(ref_loss), rel=1e-12)
        losses.append(float(loss))
        net, avg, sq = symdl.adamupdate(net, grad, avg, sq, it, learn_rate=0.05)
    assert losses[-1] < losses[0]
    assert acc.hit_rate == pytest.approx(80.0)   # 5 calls, one trace
