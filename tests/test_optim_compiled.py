"""Optimisers inside compiled code (SPEC §3, §5): a whole training step
(loss, ``dlgradient``, ``adamupdate``/``sgdmupdate``/``rmspropupdate``/
``dlupdate``, state starting as ``None``) under ``dlaccelerate`` is traced
once per signature and gives, step after step, the values of the same step
run by ``dlfeval`` through the numpy interpreter (the oracle).  Parameters
are nested containers; the update rules themselves are checked against
numpy in ``test_optim.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symdl

RNG = np.random.default_rng(11)
N_IN, N_HIDDEN, N_OUT, N_OBS = 4, 5, 3, 6
X_DATA = RNG.standard_normal((N_IN, N_OBS))
T_DATA = np.eye(N_OUT)[:, RNG.integers(0, N_OUT, N_OBS)]


@dataclasses.dataclass
class Head:
    W: object
    b: object


def init_params(dtype="float64"):
    rng = np.random.default_rng(3)

    def arr(*shape):
        return symdl.dlarray(rng.standard_normal(shape).astype(dtype) * 0.5)
    # a dict holding a list of dicts, a dataclass and a tuple: nesting of every kind
    return {"hidden": [{"W": arr(N_HIDDEN, N_IN), "b": arr(N_HIDDEN)}],
            "head": Head(W=arr(N_OUT, N_HIDDEN), b=arr(N_OUT)),
            "scale": (arr(1),)}


def model_loss(params, X, T):
    h = symdl.relu(symdl.fullyconnect(X, params["hidden"][0]["W"], params["hidden"][0]["b"]))
    z = symdl.fullyconnect(h, params["head"].W, params["head"].b) * params["scale"][0]
    return symdl.crossentropy(symdl.softmax(z), T)


def make_step(optimiser: str, calls: list):
    def step(params, state, iteration, X, T):
        calls.append(1)           # counts the runs of the Python body (traces, or eager calls)
        loss = model_loss(params, X, T)
        grads = symdl.dlgradient(loss, params)
        if optimiser == "adam":
            avg_g, avg_sq_g = state if state is not None else (None, None)
            params, avg_g, avg_sq_g = symdl.adamupdate(params, grads, avg_g, avg_sq_g, iteration, learn_rate=0.05)
            state = (avg_g, avg_sq_g)
        elif optimiser == "sgdm":
            params, state = symdl.sgdmupdate(params, grads, state, learn_rate=0.1, momentum=0.8)
        elif optimiser == "rmsprop":
            params, state = symdl.rmspropupdate(params, grads, state, learn_rate=0.01)
        else:   # plain SGD with dlupdate, no state
            params = symdl.dlupdate(lambda p, g: p - 0.1 * g, params, grads)
        return loss, params, state
    return step


def leaves(tree):
    return [symdl.extractdata(x) for x in symdl.tree.tree_flatten(tree)[0] if isinstance(x, symdl.dlarray)]


def run(step, steps: int, dtype: str, accelerated: bool):
    fun = symdl.dlaccelerate(step) if accelerated else step
    X = symdl.dlarray(X_DATA.astype(dtype), "CB")
    T = symdl.dlarray(T_DATA.astype(dtype), "CB")
    params, state, history = init_params(dtype), None, []
    for k in range(1, steps + 1):
        iteration = symdl.dlarray(float(k))          # a dlarray: one trace for every iteration
        loss, params, state = symdl.dlfeval(fun, params, state, iteration, X, T)
        history.append((float(loss), leaves(params), leaves(state)))
    return history, params, state, fun


@pytest.mark.parametrize("optimiser", ["adam", "sgdm", "rmsprop", "dlupdate"])
def test_a_compiled_training_step_equals_the_interpreted_one_step_by_step(optimiser):
    steps = 6
    eager_calls, compiled_calls = [], []
    eager, _, _, _ = run(make_step(optimiser, eager_calls), steps, "float64", accelerated=False)
    compiled, params, state, acc = run(make_step(optimiser, compiled_calls), steps, "float64", accelerated=True)
    assert len(eager_calls) == steps
    for k, ((loss_e, p_e, s_e), (loss_c, p_c, s_c)) in enumerate(zip(eager, compiled)):
        np.testing.assert_allclose(loss_c, loss_e, rtol=1e-12, err_msg=f"loss at step {k + 1}")
        assert len(p_c) == len(p_e) == 5 and len(s_c) == len(s_e)
        for a, b in zip(p_c + s_c, p_e + s_e):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14, err_msg=f"{optimiser} step {k + 1}")
    # the state starts as None (one signature), then is arrays (a second one):
    # two traces for six steps, the other four calls run native code only
    has_state = optimiser != "dlupdate"
    assert len(compiled_calls) == (2 if has_state else 1)
    assert acc.hit_rate == pytest.approx(100 * (steps - len(compiled_calls)) / steps)
    # the structure of the parameters survives the compiled step
    assert isinstance(params["head"], Head) and isinstance(params["hidden"][0], dict)
    assert isinstance(params["scale"], tuple)
    assert eager[-1][0] < eager[0][0]        # and it trains


def test_float32_training_stays_float32_compiled():
    calls = []
    history, params, state, _ = run(make_step("adam", calls), 3, "float32", accelerated=True)
    eager, _, _, _ = run(make_step("adam", []), 3, "float32", accelerated=False)
    for leaf in symdl.tree.tree_flatten((params, state))[0]:
        assert leaf.dtype == np.float32          # a float64 iteration does not promote the parameters
    for (loss_c, p_c, _), (loss_e, p_e, _) in zip(history, eager):
        np.testing.assert_allclose(loss_c, loss_e, rtol=1e-5)
        for a, b in zip(p_c, p_e):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_adam_with_an_int_iteration_gives_the_same_values_as_a_dlarray_one():
    # an int is a static argument (a new trace per value, as the signature
    # says); the values are the same either way
    X = symdl.dlarray(X_DATA, "CB")
    T = symdl.dlarray(T_DATA, "CB")
    step = make_step("adam", [])
    p_int, s_int, p_dl, s_dl = init_params(), None, init_params(), None
    for k in range(1, 4):
        _, p_int, s_int = symdl.dlfeval(step, p_int, s_int, k, X, T)
        _, p_dl, s_dl = symdl.dlfeval(step, p_dl, s_dl, symdl.dlarray(float(k)), X, T)
    for a, b in zip(leaves(p_int) + leaves(s_int), leaves(p_dl) + leaves(s_dl)):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_bad_state_reaching_a_compiled_step_is_a_clear_error():
    # a state of another shape is another signature: the body runs and its
    # check speaks, no native code sees mismatched buffers
    step = make_step("sgdm", [])
    acc = symdl.dlaccelerate(step)
    X, T = symdl.dlarray(X_DATA, "CB"), symdl.dlarray(T_DATA, "CB")
    _, params, vel = symdl.dlfeval(acc, init_params(), None, 1, X, T)
    vel["hidden"][0]["W"] = symdl.dlarray(np.zeros((N_IN, N_HIDDEN)))
    with pytest.raises(ValueError, match=r"sgdmupdate: vel\['hidden'\]\[0\]\['W'\] has shape \(4, 5\), "
                                         r"expected the shape of params\['hidden'\]\[0\]\['W'\], \(5, 4\)"):
        symdl.dlfeval(acc, params, vel, 1, X, T)
    with pytest.raises(ValueError, match="adamupdate: iteration must be a positive integer"):
        symdl.dlfeval(make_step("adam", []), init_params(), None, symdl.dlarray(0.0), X, T)
    with pytest.raises(ValueError, match="adamupdate: iteration must be a positive integer"):
        symdl.dlfeval(make_step("adam", []), init_params(), None, symdl.dlarray(1.5), X, T)


def test_state_dicts_may_list_their_keys_in_another_order():
    params = {"a": symdl.dlarray([1.0, 2.0]), "b": symdl.dlarray(3.0)}
    grads = {"b": symdl.dlarray(1.0), "a": symdl.dlarray([0.5, -0.5])}
    new, vel = symdl.sgdmupdate(params, grads, None, learn_rate=0.1, momentum=0.9)
    assert list(new) == ["a", "b"] and list(vel) == ["a", "b"]       # the parameters' structure
    np.testing.assert_allclose(symdl.extractdata(new["a"]), [0.95, 2.05], rtol=1e-15)
    np.testing.assert_allclose(float(new["b"]), 2.9, rtol=1e-15)


@pytest.mark.parametrize("update", [
    lambda p, g: symdl.sgdmupdate(p, g, g)[0],
    lambda p, g: symdl.adamupdate(p, g, g, g, 2)[0],
    lambda p, g: symdl.rmspropupdate(p, g, g)[0],
])
def test_float64_gradients_and_state_do_not_promote_float32_parameters(update):
    # the update is computed in the parameters' dtype, as it would be with
    # float32 gradients: equal to the same update with the gradients rounded first
    p = {"w": symdl.dlarray(np.array([1.0, -2.0], dtype=np.float32))}
    g64 = {"w": symdl.dlarray(np.array([0.1, 0.3]))}
    g32 = {"w": symdl.dlarray(np.array([0.1, 0.3], dtype=np.float32))}
    out = update(p, g64)["w"]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(symdl.extractdata(out), symdl.extractdata(update(p, g32)["w"]))


def make_schedule_step(optimiser: str, calls: list):
    def step(params, state, iteration, rate, X, T):
        calls.append(1)
        loss = model_loss(params, X, T)
        grads = symdl.dlgradient(loss, params)
        if optimiser == "adam":
            avg_g, avg_sq_g = state if state is not None else (None, None)
            params, avg_g, avg_sq_g = symdl.adamupdate(params, grads, avg_g, avg_sq_g, iteration, learn_rate=rate)
            return params, (avg_g, avg_sq_g)
        if optimiser == "sgdm":
            return symdl.sgdmupdate(params, grads, state, learn_rate=rate)
        return symdl.rmspropupdate(params, grads, state, learn_rate=rate)
    return step


@pytest.mark.parametrize("optimiser", ["adam", "sgdm", "rmsprop"])
def test_a_learning_rate_schedule_as_a_dlarray_is_one_trace(optimiser):
    # the rate halves every step: as a dlarray it is an input of the compiled
    # step, not a static value; the results equal eager steps with float rates
    calls = []
    acc = symdl.dlaccelerate(make_schedule_step(optimiser, calls))
    eager = make_schedule_step(optimiser, [])
    X, T = symdl.dlarray(X_DATA, "CB"), symdl.dlarray(T_DATA, "CB")
    p_c, s_c, p_e, s_e = init_params(), None, init_params(), None
    for k in range(1, 6):
        rate = 0.1 * 0.5 ** k
        p_c, s_c = symdl.dlfeval(acc, p_c, s_c, symdl.dlarray(float(k)), symdl.dlarray(rate), X, T)
        p_e, s_e = symdl.dlfeval(eager, p_e, s_e, k, rate, X, T)
    for a, b in zip(leaves(p_c) + leaves(s_c), leaves(p_e) + leaves(s_e)):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-14)
    assert len(calls) == 2             # two traces (state None, then arrays) for five steps
    with pytest.raises(ValueError, match="learn_rate must be a non-negative finite number, got -0.5"):
        symdl.dlfeval(eager, p_e, s_e, 1, symdl.dlarray(-0.5), X, T)
