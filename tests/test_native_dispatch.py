"""The native dispatcher of all-float transforms (codegen/pyentry.py): same
answers as the Python path, every change of the function noticed, anything
unusual handed to the Python path, no leaked references."""

from __future__ import annotations

import gc
import sys
import threading

import numpy as np
import pytest

import symdl
from codegen import pyentry
from helpers import toy_reference

pytestmark = pytest.mark.skipif(not pyentry.available(),
                                reason="this interpreter's object layout is not one the dispatcher knows")


def toy(x1, x2):
    return (x2 - x1 ** 2) ** 2 + (1 - x1) ** 2


def is_native(transform) -> bool:
    """Whether the transform's calls now go to a native dispatcher."""
    return transform._cache._native is not None and transform._cache.entry is not transform._cache._python_entry


def expected(x1, x2):
    y, g1, g2 = toy_reference(x1, x2)
    return float(y), (float(g1), float(g2))


def test_floats_go_native_with_the_same_answers():
    vg = symdl.value_and_grad(toy, argnums=(0, 1))
    assert vg(2.0, 2.0) == expected(2.0, 2.0)
    assert not is_native(vg)            # built on the second call of the signature
    assert vg(2.0, 2.0) == expected(2.0, 2.0)
    assert is_native(vg)
    rng = np.random.default_rng(0)
    for x1, x2 in rng.uniform(-3, 3, (200, 2)):
        got = vg(float(x1), float(x2))
        want = expected(x1, x2)
        assert got[0] == pytest.approx(want[0], rel=1e-14, abs=1e-14)
        assert got[1] == pytest.approx(want[1], rel=1e-14, abs=1e-14)


def test_special_values_and_result_types():
    g = symdl.grad(lambda x: x ** 3)
    g(1.0)
    g(1.0)
    assert is_native(g)
    out = g(float("inf"))
    assert out == float("inf") and type(out) is float
    assert np.isnan(g(float("nan")))


def test_other_argument_kinds_take_the_python_path():
    vg = symdl.value_and_grad(toy, argnums=(0, 1))
    vg(2.0, 2.0)
    y, (g1, g2) = vg(np.float64(2.0), 2.0)            # a float subclass: numpy results
    assert isinstance(y, np.ndarray) and float(g1) == 18.0
    y, (g1, g2) = vg(np.array(1.0), np.array(1.0))     # 0-d arrays: numpy results
    assert isinstance(g1, np.ndarray) and float(g1) == 0.0
    with pytest.raises(TypeError, match="argument 0"):
        vg("a", 2.0)
    with pytest.raises(ValueError, match="argnums 1"):
        vg(2.0)                                        # wrong count: the Python path says why
    assert vg(2.0, 2.0) == expected(2.0, 2.0)          # and the native path still works


def test_edits_of_code_and_closures_are_noticed():
    scale = 2.0

    def f(x):
        return scale * x ** 2

    g = symdl.grad(f)
    assert g(1.0) == 4.0 and g(1.0) == 4.0
    assert is_native(g)
    scale = 5.0                         # the closure cell now holds another value
    assert g(1.0) == 10.0

    def other(x):
        return scale * x ** 4
    f.__code__ = other.__code__         # a code edit (same free variable)
    assert g(1.0) == 20.0 and g(2.0) == 160.0


def test_state_the_dispatcher_cannot_check_keeps_the_python_path():
    scale = [2.0]                       # list contents are watched by the Python path only

    def f(x):
        return scale[0] * x ** 2

    g = symdl.grad(f)
    assert g(1.0) == 4.0 and g(1.0) == 4.0
    assert not is_native(g)
    scale[0] = 5.0
    assert g(1.0) == 10.0


def test_global_rebinding_is_noticed():
    namespace = {"k": 3.0}
    exec("def f(x):\n    return k * x ** 2\n", namespace)
    g = symdl.grad(namespace["f"])
    assert g(1.0) == 6.0 and g(1.0) == 6.0
    namespace["k"] = 7.0
    assert g(1.0) == 14.0


def test_exceptions_raised_by_the_python_path_propagate():
    g = symdl.grad(lambda x: x ** 2)
    g(1.0)
    with pytest.raises(TypeError):
        g(1.0, 2.0)


def test_results_are_fresh_objects_and_nothing_leaks():
    vg = symdl.value_and_grad(toy, argnums=(0, 1))
    vg(2.0, 2.0)
    result = vg(2.0, 2.0)
    inner, first = result[1], result[0]
    # each is referenced by its container, the local name and getrefcount's argument
    counts = (sys.getrefcount(result), sys.getrefcount(inner), sys.getrefcount(first))
    assert counts == (2, 3, 3)
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(20000):
        vg(1.5, 0.5)
    gc.collect()
    assert len(gc.get_objects()) - before < 100


def test_threads_share_the_dispatcher_safely():
    vg = symdl.value_and_grad(toy, argnums=(0, 1))
    vg(2.0, 2.0)
    bad = []

    def work(seed):
        rng = np.random.default_rng(seed)
        for x1, x2 in rng.uniform(-2, 2, (2000, 2)):
            got = vg(float(x1), float(x2))
            want = expected(x1, x2)
            if abs(got[0] - want[0]) > 1e-12 * max(1.0, abs(want[0])):
                bad.append((x1, x2))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
