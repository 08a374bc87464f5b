"""The one signature cache behind dlaccelerate and the transforms (SPEC §3,
§9.2, §9.3): LRU order through every fast path, static arguments keyed by
value (floats by bits), guards compared by bits, the function watch of bound
methods, clear_cache reaching every fast path, the fast paths' notion of
inputs, thread safety, container arguments.

Every test counts traces with a side effect of the Python body (it runs only
while a trace is recorded) and checks values against numpy, ``math`` or
closed-form derivatives.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import sys
import threading
import time

import numpy as np
import pytest

import symdl
from symdl import dlarray, extractdata


def counting(fun):
    """``fun`` plus a list that grows by one every time its body runs."""
    runs = []

    def wrapped(*args):
        runs.append(1)
        return fun(*args)
    wrapped.__name__ = getattr(fun, "__name__", "wrapped")
    return wrapped, runs


# ------------------------------------------------------------------ 1. LRU recency

SEQUENCE = "ABACABA"          # with cache_size=2: C evicts B, B evicts C, the last A hits
TRACES_EXPECTED = 4           # A, B, C, B


def test_lru_hit_on_static_values_makes_the_trace_most_recent():
    body, runs = counting(lambda x, n: x * n)
    acc = symdl.dlaccelerate(body, cache_size=2)
    x = dlarray(3.0)
    for letter in SEQUENCE:
        n = {"A": 1.0, "B": 2.0, "C": 4.0}[letter]
        assert float(acc(x, n)) == 3.0 * n
    assert len(runs) == TRACES_EXPECTED


def test_lru_hit_through_the_dlarray_fast_path_makes_the_trace_most_recent():
    body, runs = counting(lambda x: symdl.sum(x * x))
    acc = symdl.dlaccelerate(body, cache_size=2)
    for letter in SEQUENCE:
        value = np.arange({"A": 1, "B": 2, "C": 3}[letter], dtype=float)
        assert float(acc(dlarray(value))) == float(np.sum(value * value))
    assert len(runs) == TRACES_EXPECTED


def test_lru_hit_through_the_transform_fast_paths_makes_the_trace_most_recent():
    # A: floats (native dispatcher once warm), B and C: ndarrays of two shapes
    body, runs = counting(lambda x: np.sum(x ** 3))
    g = symdl.grad(body)
    g.cache_size = 2
    args = {"A": 2.0, "B": np.array([1.0, 2.0]), "C": np.array([1.0, 2.0, 3.0])}
    for letter in "AA" + SEQUENCE:        # AA: the float signature gets its native dispatcher
        got = g(args[letter])
        np.testing.assert_array_equal(got, 3 * np.asarray(args[letter]) ** 2)
    assert len(runs) == TRACES_EXPECTED


def test_eviction_drops_the_fast_paths_of_the_evicted_trace():
    body, runs = counting(lambda x: np.sum(x * 2.0))
    g = symdl.grad(body)
    g.cache_size = 1
    assert g(1.0) == 2.0 and g(1.0) == 2.0 and g(1.0) == 2.0   # native for floats
    np.testing.assert_array_equal(g(np.ones(2)), [2.0, 2.0])    # evicts the float trace
    assert g(1.0) == 2.0                                         # so this one retraces
    assert len(runs) == 3
    assert g.occupancy == 100.0


# ------------------------------------------------------------------ 2. static arguments by value

def test_static_set_is_keyed_by_value_not_by_address():
    body, runs = counting(lambda x, s: x * sum(s))
    acc = symdl.dlaccelerate(body)
    x = dlarray(1.0)
    for values in ({1.0, 2.0}, {5.0}, {1.0, 2.0}, {7.0}, {5.0}):
        assert float(acc(x, set(values))) == sum(values)   # each temporary set is freed after the call
    assert len(runs) == 3


@pytest.mark.parametrize("static", [
    0.0, 1, True, None, "text", b"bytes", (1.0, "a"), [1.0, 2.0], {"k": 1.0}, {1.0, 2.0}, frozenset({3}),
    np.float32(1.5), np.int64(3), np.arange(3.0), np.array([True, False]), complex(1, 2), range(3),
    slice(1, 2), math.sin, np.sin, int, ..., 10 ** 30,
])
def test_every_value_kind_is_keyed_and_reused(static):
    body, runs = counting(lambda x, s: x * 2.0)
    acc = symdl.dlaccelerate(body)
    for _ in range(2):
        assert float(acc(dlarray(1.5), static)) == 3.0
    assert len(runs) == 1
    assert acc.hit_rate == 50.0


def test_equal_looking_values_of_different_kinds_get_their_own_traces():
    body, runs = counting(lambda x, s: x * 2.0)
    acc = symdl.dlaccelerate(body)
    for static in (1, 1.0, True, np.float64(1.0), np.float32(1.0), "1", (1,), [1], 0.0, -0.0, float("nan")):
        acc(dlarray(1.0), static)
    assert len(runs) == 11


def test_signed_zero_as_a_static_argument():
    acc = symdl.dlaccelerate(lambda x, s: x + math.atan2(s, -1.0))
    x = dlarray(0.0)
    assert float(acc(x, 0.0)) == math.pi
    assert float(acc(x, -0.0)) == -math.pi
    assert float(acc(x, 0.0)) == math.pi


def test_nan_static_arguments_are_keyed_by_bits():
    body, runs = counting(lambda x, s: x * 0.0 + (1.0 if s != s else 0.0))
    acc = symdl.dlaccelerate(body)
    nan = float("nan")
    assert float(acc(dlarray(1.0), nan)) == 1.0
    assert float(acc(dlarray(1.0), float("nan"))) == 1.0    # another NaN object, same bits: a hit
    assert len(runs) == 1


def test_static_numpy_array_is_keyed_by_contents():
    body, runs = counting(lambda x, a: x * float(np.sum(a)))
    acc = symdl.dlaccelerate(body)
    mask = np.array([1.0, 2.0])
    assert float(acc(dlarray(1.0), mask)) == 3.0
    mask[0] = 10.0                                          # changed in place
    assert float(acc(dlarray(1.0), mask)) == 12.0
    assert float(acc(dlarray(1.0), np.array([[1.0, 2.0]]))) == 3.0   # same bytes, another shape
    assert len(runs) == 3


class Colour(enum.Enum):
    RED = 1.0
    BLUE = 2.0


def test_enum_members_are_keyed_by_member():
    body, runs = counting(lambda x, c: x * c.value)
    acc = symdl.dlaccelerate(body)
    for colour, want in ((Colour.RED, 1.0), (Colour.BLUE, 2.0), (Colour.RED, 1.0)):
        assert float(acc(dlarray(1.0), colour)) == want
    assert len(runs) == 2


def test_static_functions_are_keyed_by_identity_and_watched():
    body, runs = counting(lambda x, f: f(x))
    acc = symdl.dlaccelerate(body)
    scale = 2.0

    def double(t):
        return scale * t
    assert float(acc(dlarray(1.0), double)) == 2.0
    assert float(acc(dlarray(1.0), np.negative)) == -1.0
    assert float(acc(dlarray(1.0), double)) == 2.0
    assert len(runs) == 2
    scale = 3.0                                              # the static function's closure changed
    assert float(acc(dlarray(1.0), double)) == 3.0


class Opaque:
    """No value semantics: equality is identity."""


@pytest.mark.parametrize("call", ["accelerate", "grad"])
def test_an_argument_that_cannot_be_keyed_is_a_type_error(call):
    if call == "accelerate":
        fun = symdl.dlaccelerate(lambda x, o: x * 2.0)
        args = (dlarray(1.0), Opaque())
    else:
        fun = symdl.grad(lambda x, o: x * 2.0)
        args = (1.0, Opaque())
    with pytest.raises(TypeError, match=r"argument 1 .*Opaque.*value"):
        fun(*args)
    with pytest.raises(TypeError, match=r"argument 1 .*ndarray.*Opaque"):
        fun(args[0], np.array([Opaque()], dtype=object))


def test_a_keyword_argument_that_cannot_be_keyed_names_the_keyword():
    acc = symdl.dlaccelerate(lambda x, opt=None: x * 2.0)
    with pytest.raises(TypeError, match=r"keyword argument 'opt' .*Opaque"):
        acc(dlarray(1.0), opt=Opaque())


def test_static_rules_apply_to_the_transforms():
    body, runs = counting(lambda x, s: x * x * sum(s))
    g = symdl.grad(body)
    for values in ({1.0, 2.0}, {5.0}, {1.0, 2.0}):
        assert g(3.0, set(values)) == 6.0 * sum(values)
    assert len(runs) == 2
    k = symdl.grad(lambda x, s: x * x * s)                   # floats are inputs here, ints static
    assert k(3.0, 0.5) == 3.0 and k(3.0, 0.25) == 1.5
    h = symdl.grad(lambda x, k: x ** k)
    assert h(2.0, 3) == 12.0 and h(2.0, 2) == 4.0


# ------------------------------------------------------------------ 3. guards compare bits

def test_float_guard_tells_signed_zeros_apart():
    acc = symdl.dlaccelerate(lambda x: x + math.atan2(float(x), -1.0))
    assert float(acc(dlarray(0.0))) == math.pi
    assert float(acc(dlarray(-0.0))) == -math.pi
    assert float(acc(dlarray(0.0))) == math.pi


def test_float_guard_in_a_transform_tells_signed_zeros_apart():
    g = symdl.grad(lambda x, y: y * math.atan2(float(x), -1.0), argnums=1)
    for _ in range(2):
        assert g(0.0, 1.0) == math.pi
        assert g(-0.0, 1.0) == -math.pi
    gv = symdl.grad(lambda x, y: np.sum(y) * math.atan2(float(x[0]), -1.0), argnums=1)
    for _ in range(2):                                      # the ndarray fast path checks guards too
        np.testing.assert_array_equal(gv(np.array([0.0]), np.ones(2)), [math.pi, math.pi])
        np.testing.assert_array_equal(gv(np.array([-0.0]), np.ones(2)), [-math.pi, -math.pi])


def test_nan_guard_is_reused():
    body, runs = counting(lambda x: (x * 2.0, 1.0 if math.isnan(float(x)) else 2.0))
    acc = symdl.dlaccelerate(body)
    assert acc(dlarray(float("nan")))[1] == 1.0
    assert acc(dlarray(float("nan")))[1] == 1.0
    assert acc(dlarray(3.0))[1] == 2.0
    assert len(runs) == 2


# ------------------------------------------------------------------ 4. bound methods are watched

class Model:
    def __init__(self):
        self.s = 2.0

    def loss(self, x):
        return self.s * np.sum(x ** 2)


@pytest.mark.parametrize("transform", ["grad", "value_and_grad"])
def test_transform_of_a_bound_method_notices_the_object_changing(transform):
    m = Model()
    g = getattr(symdl, transform)(m.loss)
    pick = (lambda r: r) if transform == "grad" else (lambda r: r[1])
    for _ in range(3):                                       # floats: the native dispatcher after two calls
        assert pick(g(1.0)) == 4.0
    m.s = 5.0
    assert pick(g(1.0)) == 10.0
    np.testing.assert_array_equal(pick(g(np.array([1.0, 2.0]))), [10.0, 20.0])
    np.testing.assert_array_equal(pick(g(np.array([1.0, 2.0]))), [10.0, 20.0])
    m.s = -0.5
    np.testing.assert_array_equal(pick(g(np.array([1.0, 2.0]))), [-1.0, -2.0])


class Signed:
    def __init__(self):
        self.s = 0.0

    def shift(self, x):
        return x + math.copysign(1.0, self.s)

    def scaled(self, x):
        return x * math.copysign(1.0, self.s)


def test_attribute_rebound_to_negative_zero_is_noticed():
    m = Signed()
    acc = symdl.dlaccelerate(m.shift)
    g = symdl.grad(m.scaled)
    assert float(acc(dlarray(0.0))) == 1.0 and g(1.0) == 1.0 and g(1.0) == 1.0
    m.s = -0.0
    assert float(acc(dlarray(0.0))) == -1.0 and g(1.0) == -1.0


# ------------------------------------------------------------------ 5. clear_cache on transforms

def test_transforms_have_the_cache_attributes_and_clear_cache_drops_every_fast_path():
    body, runs = counting(lambda x, y: np.sum(x * x * y))
    g = symdl.grad(body)
    assert g.cache_size == 50 and g.hit_rate == 0.0 and g.occupancy == 0.0
    for _ in range(4):
        assert g(1.0, 2.0) == 4.0                            # calls 3 and 4 are native
    assert (g.hit_rate, g.occupancy) == (75.0, 2.0)
    g.clear_cache()
    assert (g.hit_rate, g.occupancy) == (0.0, 0.0)
    assert g(1.0, 2.0) == 4.0
    assert len(runs) == 2                                    # the dispatcher did not answer
    for _ in range(3):
        np.testing.assert_array_equal(g(np.ones(2), np.ones(2)), [2.0, 2.0])
    g.clear_cache()
    np.testing.assert_array_equal(g(np.ones(2), np.ones(2)), [2.0, 2.0])
    assert len(runs) == 4


def test_accelerated_clear_cache_drops_the_dlarray_fast_path():
    body, runs = counting(lambda x: x * 2.0)
    acc = symdl.dlaccelerate(body)
    for _ in range(3):
        acc(dlarray([1.0]))
    acc.clear_cache()
    acc(dlarray([1.0]))
    assert len(runs) == 2


# ------------------------------------------------------------------ 6. the fast paths' notion of inputs

def test_bool_array_argument_is_static_on_every_call():
    g = symdl.grad(lambda x, m: np.sum(np.where(m, x, 0.0) ** 2))
    x = np.array([1.0, 2.0, 3.0])
    for mask in ([True, False, True], [True, False, True], [True, False, True], [False, True, True],
                 [True, True, True]):
        m = np.array(mask)
        np.testing.assert_array_equal(g(x, m), np.where(m, 2 * x, 0.0))


def test_int_array_inputs_take_the_fast_path_correctly():
    g = symdl.grad(lambda x: np.sum(x ** 2))
    for values in ([1, 2], [3, 4], [5, 6]):
        np.testing.assert_array_equal(g(np.array(values)), 2.0 * np.array(values))


# ------------------------------------------------------------------ 7. threads

def test_native_dispatcher_and_python_path_on_two_threads():
    def f(x, y):
        a = np.linspace(0.5, 1.5, 16 * 16).reshape(16, 16)     # intermediates live in the workspace
        return np.sum(np.tanh(x * a) @ np.tanh(y * a))

    g = symdl.value_and_grad(f, argnums=(0, 1))
    g(1.0, 2.0)
    g(1.0, 2.0)
    wrong, done = [], []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    stop = time.perf_counter() + 1.5

    def work(seed, call):
        rng = np.random.default_rng(seed)
        points = rng.uniform(-1, 1, (200, 2))
        want = [f(x, y) for x, y in points]
        n = 0
        while time.perf_counter() < stop and n < 200_000:
            for (x, y), v in zip(points, want):
                got = call(float(x), float(y))[0]
                if abs(got - v) > 1e-12 * max(1.0, abs(v)):
                    wrong.append((x, y, got, v))
            n += len(points)
        done.append(n)

    # the creating thread runs the Python path (what the dispatcher falls back
    # to), the other one the public call, the native dispatcher once warm
    other = threading.Thread(target=work, args=(1, g))
    try:
        other.start()
        work(2, g._call)
        other.join()
    finally:
        sys.setswitchinterval(old)
    assert len(done) == 2 and not wrong, f"{len(wrong)} wrong results of {sum(done)}"


def test_threads_on_the_ndarray_path_and_accelerate():
    g = symdl.grad(lambda x: np.sum(np.sin(x) * x))
    acc = symdl.dlaccelerate(lambda x: symdl.sum(x * x))
    wrong = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(300):
            x = rng.uniform(-2, 2, 5)
            if np.max(np.abs(g(x) - (np.cos(x) * x + np.sin(x)))) > 1e-12:
                wrong.append("grad")
            if abs(float(acc(dlarray(x))) - float(np.sum(x * x))) > 1e-12:
                wrong.append("acc")
    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


# ------------------------------------------------------------------ 8. containers as differentiated arguments

def loss(params, x):
    return np.sum((params["w"] * x + params["b"]) ** 2)


def test_grad_of_a_dict_argument_has_the_dict_structure():
    params = {"w": np.array([1.0, 2.0]), "b": 0.5}
    x = np.array([3.0, 4.0])
    residual = params["w"] * x + params["b"]
    for _ in range(3):
        g = symdl.grad(loss)(params, x)
        assert set(g) == {"w", "b"}
        assert type(g["w"]) is np.ndarray and type(g["b"]) is float
        np.testing.assert_allclose(g["w"], 2 * residual * x, rtol=1e-15)
        assert g["b"] == pytest.approx(float(np.sum(2 * residual)), rel=1e-15)


@dataclasses.dataclass
class Layer:
    weight: np.ndarray
    bias: float


def test_grad_of_nested_containers_and_dataclasses():
    def f(params, x):
        (first, second), extra = params["layers"], params["extra"]
        h = np.tanh(first.weight * x + first.bias)
        return np.sum(second.weight * h + second.bias) + extra[0] * np.sum(x)

    params = {"layers": [Layer(np.array([0.5, -1.0]), 0.1), Layer(np.array([2.0, 3.0]), -0.2)],
              "extra": (1.5,)}
    x = np.array([1.0, 2.0])
    vg = symdl.value_and_grad(f)
    for _ in range(2):
        value, g = vg(params, x)
        first, second = params["layers"]
        h = np.tanh(first.weight * x + first.bias)
        assert value == pytest.approx(f(params, x), rel=1e-14)
        assert isinstance(g["layers"], list) and isinstance(g["layers"][0], Layer)
        dh = second.weight * (1 - h ** 2)
        np.testing.assert_allclose(g["layers"][0].weight, dh * x, rtol=1e-14)
        assert g["layers"][0].bias == pytest.approx(float(np.sum(dh)), rel=1e-14)
        np.testing.assert_allclose(g["layers"][1].weight, h, rtol=1e-14)
        assert g["layers"][1].bias == 2.0
        assert g["extra"] == (3.0,)


def test_container_gradients_with_argnums_tuple_and_dlarrays():
    f = lambda p, q: p[0] * q["a"] ** 2 + p[1]          # noqa: E731
    g = symdl.grad(f, argnums=(0, 1))
    (gp, gq) = g((2.0, 3.0), {"a": 4.0})
    assert gp == (16.0, 1.0) and gq == {"a": 16.0}
    out = symdl.grad(lambda p: symdl.sum(p["v"] ** 2))({"v": dlarray([1.0, 2.0])})
    assert isinstance(out["v"], dlarray)
    np.testing.assert_array_equal(extractdata(out["v"]), [2.0, 4.0])


def test_a_container_with_a_non_float_leaf_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match=r"grad: argument 0 \(differentiated\).*got str at argument 0\['name'\]"):
        symdl.grad(lambda p: p["w"] * 2.0)({"w": 1.0, "name": "bias"})
    with pytest.raises(TypeError, match=r"argument 0 \(differentiated\).*got str"):
        symdl.grad(lambda s: 2.0)("text")


# ------------------------------------------------------------------ attributes and pickling

@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_transform_cache_size_is_checked_and_names_the_transform(bad):
    g = symdl.hessian(lambda x: np.sum(x ** 3))
    with pytest.raises(ValueError, match=r"hessian: cache_size must be a positive integer"):
        g.cache_size = bad


def test_shrinking_cache_size_evicts_the_least_recently_used():
    body, runs = counting(lambda x, n: x * n)
    acc = symdl.dlaccelerate(body)
    x = dlarray(1.0)
    for n in (1, 2, 3, 1):                                   # 2 is now the least recently used
        acc(x, n)
    acc.cache_size = 2                                       # keeps 3 and 1
    acc(x, 3)
    acc(x, 1)
    assert len(runs) == 3
    acc(x, 2)
    assert len(runs) == 4


def scaled_sum(x, k):
    return symdl.sum(x) * k


def test_pickled_accelerated_function_keeps_its_traces_and_order():
    import pickle
    acc = symdl.dlaccelerate(scaled_sum, cache_size=2)
    x = dlarray([1.0, 2.0])
    for k in (1.0, 2.0, 1.0):
        acc(x, k)
    clone = pickle.loads(pickle.dumps(acc))
    assert clone.occupancy == 100.0 and clone.hit_rate == acc.hit_rate
    assert float(clone(x, 3.0)) == 9.0                       # evicts k=2.0, the least recently used
    assert float(clone(x, 1.0)) == 3.0
    assert clone.hit_rate == 40.0                            # 2 hits of 5 calls (one before pickling)
    assert float(clone(x, 2.0)) == 6.0
    assert clone.hit_rate == pytest.approx(100 * 2 / 6)      # k=2.0 was evicted: a miss
