"""The generated fast paths of a repeated call (symdl/compiler/fastcall.py):
``dlfeval(accfun, ...)`` / ``accfun(...)`` with containers of dlarrays,
None and numbers, the transforms with container arguments, and
``CompiledFunction.__call__``.

Each test first shows the fast path answering (no full-path call), then
changes one thing the fast path must check (shape, dtype, format, structure,
dict key order, None vs array, a static value, the function, a guard's
branch, threads) and shows that the answer is the reference's (numpy or the
interpreter) and that the full path was taken.  Without the check, the fast
path would have answered from the wrong trace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import symdl
from symdl import dlarray, extractdata
from symdl.compiler.aot import CompiledFunction
from symdl.compiler.dispatch import SignatureCache
from symdl.compiler.fastcall import make_matcher
from symdl.compiler.trace import is_dlarray_leaf
from symdl.tree import register_container, tree_flatten
from tests.helpers import run_in_threads


@pytest.fixture
def full_path(monkeypatch):
    """A list that grows by one on every call that is not answered by a
    generated fast path (SignatureCache.call or CompiledFunction's checked
    call)."""
    calls = []
    call, checked = SignatureCache.call, CompiledFunction._call_checked

    def spy_call(self, *args, **kwargs):
        calls.append("cache")
        return call(self, *args, **kwargs)

    def spy_checked(self, *args, **kwargs):
        calls.append("compiled")
        return checked(self, *args, **kwargs)
    monkeypatch.setattr(SignatureCache, "call", spy_call)
    monkeypatch.setattr(CompiledFunction, "_call_checked", spy_checked)
    return calls


def rng_arrays(*shapes, dtype=np.float64, seed=0):
    r = np.random.default_rng(seed)
    return [r.standard_normal(s).astype(dtype) for s in shapes]


def values(tree):
    leaves, _ = tree_flatten(tree)
    return [extractdata(x) if isinstance(x, dlarray) else x for x in leaves]


def assert_tree_close(got, want):
    g, w = values(got), values(want)
    assert len(g) == len(w)
    for a, b in zip(g, w):
        np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ dlaccelerate, containers

def train_like(params, state, it, x):
    """A train step's shape of call: a dict, None or a dict, a dlarray."""
    loss = symdl.sum(params["w"] * x) + symdl.sum(params["b"])
    grads = symdl.dlgradient(loss, params)
    if state is None:
        state = {k: 0 * g for k, g in grads.items()}
    new_state = {k: 0.9 * state[k] + g for k, g in grads.items()}
    new_params = {k: params[k] - it * new_state[k] for k in params}
    return loss, new_params, new_state


def train_like_ref(params, state, it, x):
    """numpy: the same step with hand-written gradients."""
    loss = np.sum(params["w"] * x) + np.sum(params["b"])
    grads = {"w": np.broadcast_to(x, params["w"].shape).copy(), "b": np.ones_like(params["b"])}
    if state is None:
        state = {k: np.zeros_like(g) for k, g in grads.items()}
    new_state = {k: 0.9 * state[k] + g for k, g in grads.items()}
    return loss, {k: params[k] - it * new_state[k] for k in params}, new_state


def as_dl(tree):
    return tree if tree is None else {k: dlarray(v) for k, v in tree.items()}


def as_np(tree):
    return tree if tree is None else {k: extractdata(v) for k, v in tree.items()}


def test_train_step_loop_matches_numpy_and_takes_the_fast_path(full_path):
    acc = symdl.dlaccelerate(train_like)
    w, b, x = rng_arrays((3, 4), (3,), (3, 4))
    p, s = as_dl({"w": w, "b": b}), None
    pr, sr = {"w": w, "b": b}, None
    for t in range(1, 6):
        loss, p, s = symdl.dlfeval(acc, p, s, dlarray(0.1 * t), dlarray(x))
        lr, pr, sr = train_like_ref(pr, sr, 0.1 * t, x)
        assert_tree_close((loss, p, s), (lr, pr, sr))
    # calls 1 and 2 trace (state None, then a dict), call 3 makes the matcher; 4 and 5 are fast
    assert len(full_path) == 3
    assert acc.n_traces == 2 and acc.hit_rate == pytest.approx(60.0)


def fast_then(acc, first_args, second_args, full_path, *, dlfeval=True):
    """Call ``acc`` with ``first_args`` three times (the third must be fast),
    then with ``second_args``; the second call's result."""
    call = (lambda *a: symdl.dlfeval(acc, *a)) if dlfeval else acc
    for _ in range(3):
        call(*first_args)
    before = len(full_path)
    call(*first_args)
    assert len(full_path) == before, "the repeated signature did not take the fast path"
    result = call(*second_args)
    assert len(full_path) == before + 1, "a changed signature must take the full path"
    return result


def test_changed_shape_inside_a_dict(full_path):
    acc = symdl.dlaccelerate(train_like)
    w, b, x = rng_arrays((3, 4), (3,), (3, 4))
    w2, b2, x2 = rng_arrays((2, 5), (2,), (2, 5), seed=1)
    got = fast_then(acc, (as_dl({"w": w, "b": b}), None, dlarray(0.5), dlarray(x)),
                    (as_dl({"w": w2, "b": b2}), None, dlarray(0.5), dlarray(x2)), full_path)
    assert_tree_close(got, train_like_ref({"w": w2, "b": b2}, None, 0.5, x2))


def test_changed_dtype_inside_a_dict(full_path):
    acc = symdl.dlaccelerate(lambda p: {k: v * 3.0 for k, v in p.items()})
    a64 = np.array([1.0 + 2.0 ** -40, 2.0])
    got = fast_then(acc, ({"a": dlarray(a64)},), ({"a": dlarray(a64.astype(np.float32))},), full_path)
    assert got["a"].dtype == np.float32
    np.testing.assert_array_equal(extractdata(got["a"]), a64.astype(np.float32) * np.float32(3.0))


def test_changed_format(full_path):
    acc = symdl.dlaccelerate(lambda x: x * 2.0)  # the format passes through to the result
    x = rng_arrays((2, 3))[0]
    got = fast_then(acc, (dlarray(x, "CB"),), (dlarray(x, "SS"),), full_path)
    assert symdl.dims(got) == "SS"
    got = acc(dlarray(x))
    assert symdl.dims(got) == ""


def test_dict_key_order_is_part_of_the_signature(full_path):
    def first_minus_second(p):
        a, b = p.values()
        return a - 2 * b
    acc = symdl.dlaccelerate(first_minus_second)
    x, y = rng_arrays((3,), (3,))
    got = fast_then(acc, ({"a": dlarray(x), "b": dlarray(y)},), ({"b": dlarray(y), "a": dlarray(x)},), full_path)
    np.testing.assert_allclose(extractdata(got), y - 2 * x)


def test_dict_keys_renamed_or_added(full_path):
    acc = symdl.dlaccelerate(lambda p: {k: 2 * v for k, v in p.items()})
    x, y = rng_arrays((3,), (3,))
    got = fast_then(acc, ({"a": dlarray(x), "b": dlarray(y)},), ({"a": dlarray(x), "c": dlarray(y)},), full_path)
    assert list(got) == ["a", "c"]
    got = acc({"a": dlarray(x), "b": dlarray(y), "c": dlarray(y)})
    assert list(got) == ["a", "b", "c"]


def test_none_versus_an_array(full_path):
    acc = symdl.dlaccelerate(lambda x, m: x if m is None else x + m)
    x, y = rng_arrays((3,), (3,))
    got = fast_then(acc, (dlarray(x), None), (dlarray(x), dlarray(y)), full_path)
    np.testing.assert_allclose(extractdata(got), x + y)
    got = fast_then(acc, (dlarray(x), dlarray(y)), (dlarray(x), None), full_path)
    np.testing.assert_allclose(extractdata(got), x)


def test_tuple_versus_list_and_length(full_path):
    acc = symdl.dlaccelerate(lambda xs: (type(xs) is list) * 10.0 + sum(symdl.sum(x) for x in xs))
    x, y = rng_arrays((3,), (3,))
    got = fast_then(acc, ((dlarray(x), dlarray(y)),), ([dlarray(x), dlarray(y)],), full_path)
    assert float(got) == pytest.approx(10.0 + x.sum() + y.sum())
    got = acc([dlarray(x), dlarray(y), dlarray(y)])
    assert float(got) == pytest.approx(10.0 + x.sum() + 2 * y.sum())


@pytest.mark.parametrize("first, second, want", [
    (2, 3, 3.0),                       # int by value
    (2.0, 3.0, 3.0),                   # float by value
    (0.0, -0.0, -1.0),                 # float by bits: the sign of zero
    (True, 1, 1.0),                    # bool is not int
    (1, True, 2.0),
    ("x", "y", 5.0),                   # str by value
    (np.float32(2), np.float32(3), 3.0),   # numpy scalars by bytes
    (np.float32(2), np.float64(2), 7.0),   # ... and type
    (None, 0, 1.0),
])
def test_static_values_are_checked_by_value(full_path, first, second, want):
    def scaled(x, s):
        if s is None:
            return x * 9.0
        if type(s) is bool:
            return x * 2.0
        if isinstance(s, str):
            return x * (4.0 if s == "x" else 5.0)
        if type(s) is np.float64:
            return x * 7.0
        if s == 0:
            return x * math.copysign(1.0, s)
        return x * float(s)
    acc = symdl.dlaccelerate(scaled)
    x = np.array([1.0, 2.0])
    got = fast_then(acc, (dlarray(x), first), (dlarray(x), second), full_path)
    np.testing.assert_array_equal(extractdata(got), x * want)


def test_static_keyword_argument_changed(full_path):
    acc = symdl.dlaccelerate(lambda x, *, scale: x * scale)
    x = np.array([1.0, 2.0])
    for _ in range(3):
        acc(dlarray(x), scale=2.0)
    before = len(full_path)
    acc(dlarray(x), scale=2.0)
    assert len(full_path) == before
    got = acc(dlarray(x), scale=3.0)
    assert len(full_path) == before + 1
    np.testing.assert_array_equal(extractdata(got), x * 3.0)


def test_positional_versus_keyword(full_path):
    acc = symdl.dlaccelerate(lambda x, y=None: x if y is None else x - y)
    x, y = rng_arrays((3,), (3,))
    for _ in range(3):
        acc(dlarray(x), dlarray(y))
    got = acc(dlarray(x), y=dlarray(y))
    np.testing.assert_allclose(extractdata(got), x - y)
    got = acc(dlarray(x))
    np.testing.assert_allclose(extractdata(got), x)


def test_an_edited_function_is_traced_again(full_path):
    # the global is read inside a comprehension: its own code object before Python 3.12
    namespace = {"symdl": symdl, "factor": 2.0}
    exec("def f(p):\n    return {k: factor * v for k, v in p.items()}", namespace)  # noqa: S102 (a user module's global)
    acc = symdl.dlaccelerate(namespace["f"])
    x = np.array([1.0, -2.0])
    for _ in range(3):
        got = symdl.dlfeval(acc, {"a": dlarray(x)})
    before = len(full_path)
    np.testing.assert_array_equal(extractdata(got["a"]), 2.0 * x)
    namespace["factor"] = -3.0
    got = symdl.dlfeval(acc, {"a": dlarray(x)})
    assert len(full_path) == before + 1
    np.testing.assert_array_equal(extractdata(got["a"]), -3.0 * x)
    namespace["f"].__code__ = (lambda p: {k: v + 1.0 for k, v in p.items()}).__code__
    got = symdl.dlfeval(acc, {"a": dlarray(x)})
    np.testing.assert_array_equal(extractdata(got["a"]), x + 1.0)


def test_a_guard_on_another_branch_takes_the_full_path(full_path):
    def branchy(p):
        if float(symdl.sum(p["x"])) > 0:
            return {"y": p["x"] * 2.0}
        return {"y": p["x"] * -5.0}
    acc = symdl.dlaccelerate(branchy)
    pos, neg = np.array([1.0, 2.0]), np.array([-1.0, -2.0])
    got = fast_then(acc, ({"x": dlarray(pos)},), ({"x": dlarray(neg)},), full_path)
    np.testing.assert_array_equal(extractdata(got["y"]), neg * -5.0)
    assert acc.n_traces == 2
    np.testing.assert_array_equal(extractdata(symdl.dlfeval(acc, {"x": dlarray(pos)})["y"]), pos * 2.0)


def test_random_numbers_are_fresh_on_the_fast_path(full_path):
    acc = symdl.dlaccelerate(lambda p: {"r": p["x"] + symdl.rand(3)})
    x = np.zeros(3)
    for _ in range(2):
        symdl.dlfeval(acc, {"x": dlarray(x)})
    before = len(full_path)
    draws = [extractdata(symdl.dlfeval(acc, {"x": dlarray(x)})["r"]) for _ in range(4)]
    assert len(full_path) == before
    assert len({d.tobytes() for d in draws}) == 4
    assert all(((d >= 0) & (d < 1)).all() for d in draws)


def test_held_outputs_are_not_overwritten_by_later_calls(full_path):
    acc = symdl.dlaccelerate(lambda p: {"y": p["x"] * 2.0, "z": p["x"] + 1.0})
    xs = rng_arrays((100, 100), (100, 100), (100, 100), seed=3)   # large outputs: the entry reuses free ones
    for _ in range(3):
        symdl.dlfeval(acc, {"x": dlarray(xs[0])})
    before = len(full_path)
    held = [symdl.dlfeval(acc, {"x": dlarray(x)}) for x in xs]
    assert len(full_path) == before
    for x, out in zip(xs, held):
        np.testing.assert_array_equal(extractdata(out["y"]), x * 2.0)
        np.testing.assert_array_equal(extractdata(out["z"]), x + 1.0)
    assert not np.shares_memory(extractdata(held[0]["y"]), extractdata(held[1]["y"]))


def test_tolerance_check_mode_skips_the_fast_path(full_path):
    acc = symdl.dlaccelerate(lambda p: {"y": p["x"] * 2.0})
    acc.check_mode = "tolerance"
    x = np.array([1.0, 2.0])
    for _ in range(3):
        symdl.dlfeval(acc, {"x": dlarray(x)})
    before = len(full_path)
    symdl.dlfeval(acc, {"x": dlarray(x)})
    assert len(full_path) == before + 1


def test_threads_with_their_own_values_and_signatures():
    acc = symdl.dlaccelerate(lambda p, s: {"y": p["x"] * s, "n": symdl.sum(p["x"])})

    def worker(seed):
        r = np.random.default_rng(seed)
        shape = (3,) if seed % 2 else (2, 2)
        for _ in range(200):
            x = r.standard_normal(shape)
            s = float(seed % 3 + 1)
            out = symdl.dlfeval(acc, {"x": dlarray(x)}, s)
            np.testing.assert_allclose(extractdata(out["y"]), x * s, rtol=1e-15)
            np.testing.assert_allclose(float(out["n"]), x.sum(), rtol=1e-12)
    run_in_threads(worker, range(4))


def test_accelerated_call_outside_dlfeval(full_path):
    acc = symdl.dlaccelerate(lambda p, n: {"y": p["x"] ** n})
    x = np.array([1.5, -2.0])
    got = fast_then(acc, ({"x": dlarray(x)}, 2), ({"x": dlarray(x)}, 3), full_path, dlfeval=False)
    np.testing.assert_allclose(extractdata(got["y"]), x ** 3)


def test_traced_flag_is_part_of_the_fast_signature(full_path):
    def f(p):
        y = symdl.sum(p["x"] ** 2)
        return y
    acc = symdl.dlaccelerate(f)
    x = np.array([1.0, 2.0])
    for _ in range(3):
        acc({"x": dlarray(x)})
    before = len(full_path)
    symdl.dlfeval(acc, {"x": dlarray(x)})    # traced: another trace
    assert len(full_path) == before + 1
    assert acc.n_traces == 2


# ------------------------------------------------------------------ the matcher itself

class Box:
    def __init__(self, v):
        self.v = v


def test_a_container_registered_later_invalidates_matchers():
    x = dlarray(np.ones(2))
    args = ({"a": x},)
    leaves, _ = tree_flatten((args, {}))
    match = make_matcher(args, {}, leaves, is_dlarray_leaf)
    assert match is not None and match(args, {})[0] is x._value
    register_container(Box, lambda b: ([b.v], None), lambda aux, ch: Box(ch[0]))
    assert match(args, {}) is None


def test_matcher_refuses_what_it_cannot_check_exactly():
    nan_static = (dlarray(np.ones(2)), float("nan"))
    box = (Box(dlarray(np.ones(2))),)
    for args in (nan_static, box):
        leaves, _ = tree_flatten((args, {}))
        assert make_matcher(args, {}, leaves, is_dlarray_leaf) is None


def test_a_box_argument_still_works_on_the_full_path(full_path):
    register_container(Box, lambda b: ([b.v], None), lambda aux, ch: Box(ch[0]))
    acc = symdl.dlaccelerate(lambda b: b.v * 2.0)
    x = np.array([1.0, 3.0])
    for scale in (1.0, 2.0, 3.0):
        np.testing.assert_array_equal(extractdata(acc(Box(dlarray(x * scale)))), x * scale * 2.0)


# ------------------------------------------------------------------ transforms with containers

def test_grad_of_a_dict_takes_the_fast_path_and_checks_shapes(full_path):
    g = symdl.grad(lambda p: np.sum(p["w"] ** 2) + p["b"] ** 3)
    w = np.array([1.0, -2.0])
    for _ in range(3):
        g({"w": w, "b": 0.5})
    before = len(full_path)
    got = g({"w": w, "b": 0.5})
    assert len(full_path) == before
    np.testing.assert_allclose(got["w"], 2 * w)
    assert type(got["b"]) is float and got["b"] == pytest.approx(0.75)
    got = g({"w": np.array([1.0, 2.0, 3.0]), "b": 2.0})
    assert len(full_path) == before + 1
    np.testing.assert_allclose(got["w"], [2.0, 4.0, 6.0])
    got = g({"w": w.astype(np.float32), "b": 2.0})
    assert got["w"].dtype == np.float32


# ------------------------------------------------------------------ compile

def test_compile_fast_path_answers_and_checks(full_path):
    f = symdl.compile(lambda a, b: a @ b, *rng_arrays((4, 3), (3, 2)))
    a, b = rng_arrays((4, 3), (3, 2), seed=5)
    f(a, b)
    before = len(full_path)
    np.testing.assert_allclose(f(a, b), a @ b)
    assert len(full_path) == before
    with pytest.raises(ValueError, match="argument 0 has shape"):
        f(a[:3], b)
    with pytest.raises(ValueError, match="dtype"):
        f(a.astype(np.float32), b)
    assert len(full_path) == before + 2
    got = f(dlarray(a), dlarray(b))          # dlarrays in: a dlarray out
    assert isinstance(got, dlarray)
    np.testing.assert_allclose(extractdata(got), a @ b)
    got = f(a, b)                            # numpy in again: a numpy array out
    assert type(got) is np.ndarray


def test_compile_static_and_nested_arguments(full_path):
    def fun(p, n, flag):
        y = p["x"] ** n
        return {"y": y, "flag": flag, "z": (p["x"], y * 2.0)}
    x = np.array([1.5, 2.0])
    f = symdl.compile(fun, {"x": x}, 2, "on")
    for _ in range(3):
        got = f({"x": x}, 2, "on")
    before = len(full_path)
    got = f({"x": x * 2}, 2, "on")
    assert len(full_path) == before
    np.testing.assert_allclose(got["y"], (x * 2) ** 2)
    assert got["flag"] == "on"
    np.testing.assert_allclose(got["z"][1], 2 * (x * 2) ** 2)
    with pytest.raises(ValueError, match="static"):
        f({"x": x}, 3, "on")
    with pytest.raises(ValueError, match="static"):
        f({"x": x}, 2, "off")
    with pytest.raises(TypeError, match="structure"):
        f({"y": x}, 2, "on")


def test_compile_float_and_numpy_scalar_inputs(full_path):
    f = symdl.compile(lambda x, y: x * y + 1.0, 2.0, 3.0)
    assert float(f(2.0, 3.0)) == 7.0
    assert float(f(2.0, 3.0)) == 7.0
    assert float(f(np.float64(4.0), 3.0)) == 13.0
    assert float(f(4.0, 0.5)) == 3.0


def test_compile_guard_on_the_fast_path_still_raises(full_path):
    def fun(x):
        return x * 2.0 if float(np.sum(x)) > 0 else x * -1.0
    example = np.array([1.0, 2.0])
    f = symdl.compile(fun, example)
    for _ in range(3):
        np.testing.assert_array_equal(f(example), example * 2.0)
    before = len(full_path)
    f(example)
    assert len(full_path) == before
    with pytest.raises(ValueError, match="different branch"):  # the guard read another value
        f(np.array([-3.0, -4.0]))
    assert len(full_path) == before + 1


def test_compile_held_outputs_are_kept():
    f = symdl.compile(lambda x: x * 2.0, np.zeros((100, 100)))
    xs = rng_arrays((100, 100), (100, 100), seed=7)
    outs = [f(x) for x in xs]
    for x, out in zip(xs, outs):
        np.testing.assert_array_equal(out, x * 2.0)


def test_compile_alternating_numpy_and_dlarray_calls(monkeypatch, full_path):
    import symdl.compiler.aot as aot
    made = []
    real = aot.make_matcher
    monkeypatch.setattr(aot, "make_matcher", lambda *a: made.append(1) or real(*a))
    a, b = rng_arrays((3, 3), (3, 3), seed=11)
    f = symdl.compile(lambda x, y: x @ y + 1.0, a, b)
    for _ in range(3):
        got_np = f(a, b)
        got_dl = f(dlarray(a), dlarray(b))
        assert type(got_np) is np.ndarray and isinstance(got_dl, dlarray)
        np.testing.assert_allclose(got_np, a @ b + 1.0)
        np.testing.assert_allclose(extractdata(got_dl), a @ b + 1.0)
    assert len(made) == 2   # one matcher per kind of call, kept
    before = len(full_path)
    np.testing.assert_allclose(extractdata(f(dlarray(b), dlarray(a))), b @ a + 1.0)
    assert len(full_path) == before
