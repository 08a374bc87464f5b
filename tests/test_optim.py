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
