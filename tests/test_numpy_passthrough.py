"""numpy functions without a derivative, and the integer/boolean facts that
Python receives from traced values (sort orders, argmax, nonzero, allclose):
values against numpy, no derivative, and compiled traces that are never stale
(another input that changes the fact is traced again)."""

from __future__ import annotations

import numpy as np
import pytest

import symdl

A = np.array([0.3, 1.6, -2.5, 7.0, -0.5, 2.5])
SPECIAL = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1.5, -1.5, 2.5])


def _dl(a):
    return symdl.dlarray(a)


# name: (function, expected dtype kind of the result)
PASSTHROUGH = {
    "zeros_like": lambda x: np.zeros_like(x),
    "ones_like": lambda x: np.ones_like(x),
    "full_like": lambda x: np.full_like(x, 2.5),
    "isnan": lambda x: np.isnan(x),
    "isinf": lambda x: np.isinf(x),
    "isfinite": lambda x: np.isfinite(x),
    "round": lambda x: np.round(x),
    "round_decimals": lambda x: np.round(x * 1.2345, 2),
    "around": lambda x: np.around(x, 1),
    "rint": lambda x: np.rint(x),
    "trunc": lambda x: np.trunc(x),
    "fix": lambda x: np.fix(x),
    "floor": lambda x: np.floor(x),
    "ceil": lambda x: np.ceil(x),
    "floor_divide": lambda x: np.floor_divide(x, 0.7),
    "floordiv_operator": lambda x: x // -1.5,
    "rfloordiv_operator": lambda x: 7.0 // x,
    "all_axis": lambda x: np.all(x.reshape(2, 4) > 0, axis=1),
    "any_axis": lambda x: np.any(x.reshape(2, 4) > 1, axis=0),
    "any_keepdims": lambda x: np.any(x.reshape(2, 4), axis=0, keepdims=True),
    "isclose": lambda x: np.isclose(x, 1.5),
    "isclose_equal_nan": lambda x: np.isclose(x, x[::-1], equal_nan=True),
    "argmax": lambda x: np.argmax(x),
    "argmin_axis": lambda x: np.argmin(x.reshape(2, 4), axis=1),
    "argsort": lambda x: np.argsort(x, kind="stable"),
    "nonzero": lambda x: np.nonzero(x)[0],
    "count_nonzero": lambda x: np.count_nonzero(x),
    "sign": lambda x: np.sign(x),
}


@pytest.mark.parametrize("name", sorted(PASSTHROUGH))
@pytest.mark.parametrize("data", ["plain", "special"])
def test_values_match_numpy_traced_and_untraced(name, data):
    fn = PASSTHROUGH[name]
    a = np.linspace(-3.2, 3.7, 8) if data == "plain" else SPECIAL
    with np.errstate(all="ignore"):
        expected = fn(a)
        untraced = fn(_dl(a))
        traced = symdl.dlfeval(fn, _dl(a))
    for got in (untraced, traced):
        value = symdl.extractdata(got) if isinstance(got, symdl.dlarray) else np.asarray(got)
        assert value.shape == np.shape(expected), name
        if np.asarray(expected).dtype.kind == "f":
            # round(x, decimals) scales back with a multiplication by 10**-d (numpy divides): an ulp apart
            np.testing.assert_allclose(value, expected, rtol=1e-15, atol=0)
        else:
            np.testing.assert_array_equal(value.astype(np.asarray(expected).dtype), expected)


@pytest.mark.parametrize("name", ["zeros_like", "ones_like", "full_like", "round", "rint", "trunc", "fix",
                                  "floor", "ceil", "floor_divide", "floordiv_operator", "sign"])
def test_results_carry_no_derivative(name):
    fn = PASSTHROUGH[name]
    a = np.array([0.3, 1.6, -2.5, 7.2])

    def grad_of_product(x):
        # d/dx sum(x * f(x)) = f(x) when f has no derivative
        return symdl.dlgradient(symdl.sum(x * fn(x)), x)
    g = symdl.dlfeval(grad_of_product, _dl(a))
    np.testing.assert_array_equal(symdl.extractdata(g), fn(a))
    # such a value adds nothing to a gradient
    g1 = symdl.dlfeval(lambda x: symdl.dlgradient(symdl.sum(fn(x) + x), x), _dl(a))
    np.testing.assert_array_equal(symdl.extractdata(g1), np.ones(4))


def test_like_functions_keep_dtype_and_take_dtype():
    x32 = _dl(np.ones(3, np.float32))
    assert np.zeros_like(x32).dtype == np.float32
    assert np.ones_like(x32, dtype=np.float64).dtype == np.float64
    ints = np.zeros_like(x32, dtype=int)  # not a float: plain numpy data
    assert isinstance(ints, np.ndarray) and ints.dtype.kind == "i"
    assert np.full_like(x32, 3.0, shape=(2, 2)).shape == (2, 2)


def test_python_receives_plain_values():
    x = _dl(A)
    assert isinstance(np.argmax(x), np.integer) and np.argmax(x) == np.argmax(A)
    assert np.allclose(x, A) is True and np.allclose(x, A + 1) is False
    assert symdl.array_equal(x, A) is True
    assert np.result_type(_dl(np.float32(1.0)), np.float32) == np.float32
    assert isinstance(np.argsort(x), np.ndarray)


def test_where_with_only_a_condition_is_nonzero():
    x = _dl(np.array([0.0, 2.0, 0.0, -1.0]))
    (idx,) = np.where(x)
    np.testing.assert_array_equal(idx, [1, 3])


# ---------------------------------------------------------------- compiled traces are never stale

def _expected_sort_grad(a, w):
    g = np.zeros_like(a)
    g[np.argsort(a, kind="stable")] = w
    return g


ORDERS = [[3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [2.0, 2.0, 1.0], [2.0, 1.0, 2.0],
          [np.nan, 1.0, 0.0], [1.0, np.nan, np.nan], [-np.inf, np.inf, 0.0], [5.0, 4.0, 6.0]]


def test_compiled_sort_follows_every_new_order():
    w = np.array([1.0, 10.0, 100.0])
    g = symdl.grad(lambda x: np.sum(np.sort(x) * w))
    with np.errstate(invalid="ignore"):
        _check_orders(g, w)


def _check_orders(g, w):
    for a in ORDERS:
        a = np.array(a)
        np.testing.assert_array_equal(g(a), _expected_sort_grad(a, w), err_msg=f"input {a}")


def test_compiled_sort_reuses_a_trace_for_the_same_order():
    calls = []

    def f(x):
        calls.append(1)
        return np.sort(x, axis=1) * 2.0
    acc = symdl.dlaccelerate(f)
    for a in ([[3.0, 1.0], [0.0, 2.0]], [[5.0, 1.0], [-1.0, 2.0]], [[1.0, 3.0], [0.0, 2.0]]):
        out = symdl.dlfeval(acc, _dl(np.array(a)))
        np.testing.assert_array_equal(symdl.extractdata(out), np.sort(a, axis=1) * 2)
    assert len(calls) == 2  # the second input orders like the first; the third does not


def test_compiled_argmax_and_argsort_are_guarded():
    acc = symdl.dlaccelerate(lambda x: (x * 0.0 + float(np.argmax(x)), x * 0.0 + float(np.argsort(x)[0])))
    for a in ([1.0, 3.0, 2.0], [5.0, 3.0, 2.0], [1.0, 3.0, 3.0], [3.0, 3.0, 1.0], [1.0, np.nan, 5.0],
              [1.0, 4.0, 2.0]):
        a = np.array(a)
        got_max, got_sort = symdl.dlfeval(acc, _dl(a))
        assert symdl.extractdata(got_max)[0] == np.argmax(a), a
        assert symdl.extractdata(got_sort)[0] == np.argsort(a, kind="stable")[0], a
    assert acc.hit_rate > 0  # [1, 4, 2] reuses the trace of [1, 3, 2]


def test_compiled_nonzero_allclose_and_any_are_guarded():
    nz = symdl.dlaccelerate(lambda x: x[np.nonzero(x)] * 2.0)
    for a in ([1.0, 0.0], [0.0, 2.0], [3.0, 0.0]):
        np.testing.assert_array_equal(symdl.extractdata(symdl.dlfeval(nz, _dl(np.array(a)))),
                                      np.array(a)[np.nonzero(a)] * 2)
    close = symdl.dlaccelerate(lambda x: x * (2.0 if np.allclose(x, 1.0) else 3.0))
    branch = symdl.dlaccelerate(lambda x: x * (2.0 if np.any(x > 1.0) else 3.0))
    for a in ([1.0, 1.0], [1.0, 2.0], [1.0, 1.0 + 1e-9], [0.5, 0.5]):
        a = np.array(a)
        np.testing.assert_array_equal(symdl.extractdata(symdl.dlfeval(close, _dl(a))),
                                      a * (2.0 if np.allclose(a, 1.0) else 3.0))
        np.testing.assert_array_equal(symdl.extractdata(symdl.dlfeval(branch, _dl(a))),
                                      a * (2.0 if np.any(a > 1.0) else 3.0))


def test_full_like_with_a_traced_fill_value_is_differentiable():
    import symdl.numpy as snp
    w = np.array([1.0, 2.0, 3.0])
    for full_like in (symdl.full_like, snp.full_like):
        g = symdl.grad(lambda v, full_like=full_like: np.sum(full_like(np.ones(3), v) * w))
        assert float(g(2.0)) == 6.0
    # numpy's own full_like dispatches when its first argument is a dlarray
    g = symdl.grad(lambda v: np.sum(np.full_like(v * np.ones(3), v) * w))
    assert float(g(2.0)) == 6.0


def test_any_all_methods_guard_only_the_answer():
    calls = []

    def f(x):
        calls.append(1)
        return x * (2.0 if (x > 1.0).any() else 3.0) + float(np.count_nonzero(x))
    acc = symdl.dlaccelerate(f)
    for a in ([0.5, 2.0], [0.25, 3.0], [0.5, 0.5], [0.0, 0.7]):
        a = np.array(a)
        expected = a * (2.0 if (a > 1.0).any() else 3.0) + np.count_nonzero(a)
        np.testing.assert_array_equal(symdl.extractdata(symdl.dlfeval(acc, _dl(a))), expected)
    assert len(calls) == 3   # [0.25, 3] answers as [0.5, 2]; the others differ
