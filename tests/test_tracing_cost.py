"""The cost of tracing, counted (never timed), and the untraced arithmetic
fast path, compared bit for bit with the general path it short-cuts.

- Eager ``dlfeval`` evaluates each node once and never walks the memoised
  part of the graph: the interpreter's work per traced operation is bounded
  by a constant, whatever the trace length.
- Plain dlarray arithmetic outside ``dlfeval`` takes a direct numpy path;
  its results (values to the bit, dtype, shape, labels) and its errors are
  those of the general path (``functions._elementwise``).

Expected values come from numpy references written here.
"""

from __future__ import annotations

import importlib
import itertools

import numpy as np
import pytest

import symdl
from symdl import dlarray, extractdata
from symdl import functions as F
from symdl.tracing import active_root

# the module (symdl.ir exports a function of the same name)
interpret = importlib.import_module("symdl.ir.interpret")


# ---------------------------------------------------------------- counting the interpreter

class CountingMemo(dict):
    """A trace's value memo that counts every lookup the interpreter makes."""

    lookups = 0

    def __contains__(self, key):
        CountingMemo.lookups += 1
        return super().__contains__(key)

    def get(self, key, default=None):
        CountingMemo.lookups += 1
        return super().get(key, default)


def recurrence(x, steps: int):
    """``y <- tanh(0.999 y + x)``, ``steps`` times (three traced ops a step)."""
    y = x
    for _ in range(steps):
        y = symdl.tanh(y * 0.999 + x)
    return y


def recurrence_reference(x: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The value and d sum(y) / dx of :func:`recurrence`, by forward-mode
    recurrence in numpy: dy_k = (1 - y_k^2) (0.999 dy_{k-1} + 1)."""
    y, dy = x.copy(), np.ones_like(x)
    for _ in range(steps):
        y = np.tanh(y * 0.999 + x)
        dy = (1 - y * y) * (0.999 * dy + 1)
    return y, dy


def traced_work(steps: int, monkeypatch) -> tuple[list, int]:
    """The nodes the interpreter evaluated and the memo lookups it made
    while tracing :func:`recurrence` (the gradient is not included)."""
    evaluated = []
    real_eval = interpret.eval_node

    def counting_eval(node, values):
        evaluated.append(node)
        return real_eval(node, values)

    monkeypatch.setattr(interpret, "eval_node", counting_eval)

    def f(x):
        root = active_root()
        values = root.memo  # (a NodeValues: its dict is keyed by the nodes' intern references)
        values.untrack()
        values.data = CountingMemo(values.data)
        values.track()
        CountingMemo.lookups = 0
        recurrence(x, steps)
        return CountingMemo.lookups

    lookups = symdl.dlfeval(f, dlarray(np.linspace(-1.0, 1.0, 3)))
    return evaluated, lookups


def test_each_node_is_evaluated_once(monkeypatch):
    evaluated, _ = traced_work(400, monkeypatch)
    assert len(evaluated) == len(set(evaluated)), "a node was evaluated twice"
    # one new node per traced operation (three a step), plus a few constants
    assert 3 * 400 <= len(evaluated) <= 3 * 400 + 10


def test_interpreter_work_per_op_does_not_grow_with_the_trace(monkeypatch):
    # Walking the memoised graph on every op (the old behaviour) made the
    # lookups grow with the square of the trace length.
    _, short = traced_work(200, monkeypatch)
    _, long = traced_work(800, monkeypatch)
    per_op_short, per_op_long = short / (3 * 200), long / (3 * 800)
    assert per_op_long <= 10, f"{per_op_long:.1f} memo lookups per traced op"
    assert per_op_long <= 1.1 * per_op_short


def test_long_trace_values_and_gradient_match_the_reference():
    x0 = np.linspace(-1.5, 1.5, 5)
    steps = 2000

    def f(x):
        y = recurrence(x, steps)
        return y, symdl.dlgradient(symdl.sum(y), x)

    y, g = symdl.dlfeval(f, dlarray(x0))
    y_ref, g_ref = recurrence_reference(x0, steps)
    np.testing.assert_allclose(extractdata(y), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(extractdata(g), g_ref, rtol=1e-10, atol=1e-12)


def test_evaluate_visits_only_missing_nodes():
    from symdl.ir import build as B
    x = B.input_node("x", (2,), "float64")
    chain = x
    for _ in range(50):
        chain = B.fn("sin", chain)
    memo = {x: np.array([0.1, 0.2])}
    interpret.evaluate([chain], memo)
    counting = CountingMemo(memo)
    CountingMemo.lookups = 0
    top = B.fn("exp", chain)
    (value,) = interpret.evaluate([top], counting)
    assert CountingMemo.lookups <= 4
    np.testing.assert_array_equal(value, np.exp(memo[chain]))


def test_evaluate_names_an_unbound_input():
    from symdl.ir import build as B
    x = B.input_node("lonely", (), "float64")
    with pytest.raises(ValueError, match="lonely"):
        interpret.evaluate([B.fn("sin", x)], {})


# ---------------------------------------------------------------- untraced fast path

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.1, -2.5, 3.0, 1e-310, -1e-310, 1e308, -1e308, 3.4e38, 1e-45,
           np.inf, -np.inf, np.nan]

GENERAL = {  # the general path of each operator, as the public functions call it
    "add": lambda a, b: F._elementwise("add", [a, b], coeffs=(1.0, 1.0), const=0.0),
    "subtract": lambda a, b: F._elementwise("add", [a, b], coeffs=(1.0, -1.0), const=0.0),
    "multiply": lambda a, b: F._elementwise("mul", [a, b], exps=(1, 1)),
    "divide": lambda a, b: F._elementwise("mul", [a, b], exps=(1, -1)),
}
OPERATORS = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
             "multiply": lambda a, b: a * b, "divide": lambda a, b: a / b}


def bits(v: np.ndarray) -> np.ndarray:
    """The bit patterns of ``v``, every NaN counted as one value."""
    v = np.array(v, copy=True)
    nan = np.isnan(v)
    v[nan] = np.nan
    return v.view(np.uint32 if v.dtype == np.float32 else np.uint64)


def assert_same(fast, general) -> None:
    assert type(fast) is dlarray and type(general) is dlarray
    assert fast.dtype == general.dtype
    assert fast.shape == general.shape
    assert fast.fmt == general.fmt
    assert fast._node is None and fast._trace is None
    np.testing.assert_array_equal(bits(extractdata(fast)), bits(extractdata(general)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_fast_arithmetic_equals_general_path_bit_for_bit(name, dtype):
    pairs = np.array(list(itertools.product(SPECIAL, SPECIAL)))
    with np.errstate(all="ignore"):
        a = dlarray(pairs[:, 0].astype(dtype))
        b = dlarray(pairs[:, 1].astype(dtype))
    assert_same(OPERATORS[name](a, b), GENERAL[name](a, b))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(OPERATORS))
@pytest.mark.parametrize("number", [0.1, -0.0, 2, -3, 1e300, float("nan")])
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e300 as float32, on both paths
def test_fast_arithmetic_with_python_numbers(name, dtype, number):
    with np.errstate(all="ignore"):
        x = dlarray(np.array(SPECIAL).astype(dtype))
    op, general = OPERATORS[name], GENERAL[name]
    assert_same(op(x, number), general(x, number))
    assert_same(op(number, x), general(number, x))
    assert op(x, number).dtype == np.dtype(dtype)  # Python numbers are weak


def test_fast_negative_equals_general_path():
    for dtype in ("float32", "float64"):
        with np.errstate(all="ignore"):
            x = dlarray(np.array(SPECIAL).astype(dtype), "C")
        assert_same(-x, F._elementwise("add", [x], coeffs=(-1.0,), const=0.0))
    np.testing.assert_array_equal(extractdata(-dlarray([1.0, -2.0])), [-1.0, 2.0])


@pytest.mark.parametrize("shapes", [((3, 1), (4,)), ((), (2, 3)), ((2, 3), ()), ((), ()), ((1, 3), (2, 1))])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_fast_arithmetic_broadcasts_like_the_general_path(name, shapes):
    rng = np.random.default_rng(7)
    a = dlarray(rng.normal(size=shapes[0]))
    b = dlarray(rng.normal(size=shapes[1]))
    fast = OPERATORS[name](a, b)
    assert_same(fast, GENERAL[name](a, b))
    assert type(extractdata(fast)) is np.ndarray
    with np.errstate(all="ignore"):
        reference = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
                     "divide": np.divide}[name](extractdata(a), extractdata(b))
    np.testing.assert_allclose(extractdata(fast), reference, rtol=1e-15)


def test_fast_arithmetic_keeps_labels():
    x = dlarray(np.ones((3, 4)), "CB")
    assert (x * 2.0).fmt == "CB"
    assert (2.0 - x).fmt == "CB"
    assert (x / dlarray(np.ones((3, 4)))).fmt == "CB"
    c = dlarray(np.ones(4), "B")
    assert (c + dlarray(np.ones((3, 4)))).fmt == ""       # no operand of the result's rank is labelled
    assert (dlarray(np.ones((3, 4))) + x).fmt == "CB"      # the labelled operand of the right rank
    assert_same(c + x, GENERAL["add"](c, x))


@pytest.mark.parametrize("name", list(OPERATORS))
def test_fast_arithmetic_shape_errors_are_the_general_paths(name):
    a, b = dlarray(np.ones((2, 3))), dlarray(np.ones((4,)))
    with pytest.raises(ValueError) as fast:
        OPERATORS[name](a, b)
    with pytest.raises(ValueError) as general:
        GENERAL[name](a, b)
    assert type(fast.value) is type(general.value)
    assert str(fast.value) == str(general.value)
    op = "add" if name in ("add", "subtract") else "mul"
    assert str(fast.value) == f"{op}: shapes (2, 3), (4,) cannot be broadcast together"


def test_operands_outside_the_fast_path_still_follow_the_rules():
    x32, x64 = dlarray(np.ones(2, np.float32)), dlarray(np.ones(2))
    assert (x32 * x64).dtype == np.float64                  # promotion
    assert (x32 * np.float64(2.0)).dtype == np.float64      # a numpy scalar is strong
    assert (x32 * np.ones(2)).dtype == np.float64
    assert (x32 * True).dtype == np.float32
    assert (x32 * 2**60).dtype == np.float32                # large ints: general path
    np.testing.assert_array_equal(extractdata(x64 * 2**60), [2.0**60, 2.0**60])
    mask = x64 > 0.5
    np.testing.assert_array_equal(extractdata(mask * 2.0), [2.0, 2.0])
    with pytest.raises(TypeError, match="complex"):
        x64 * 1j
    with pytest.raises(TypeError):
        x64 * "a"


def test_traced_arithmetic_does_not_take_the_fast_path():
    def f(x):
        y = x * 3.0 - 1.0 / x
        assert y._node is not None
        return symdl.dlgradient(symdl.sum(y), x)

    g = symdl.dlfeval(f, dlarray([1.0, 2.0]))
    np.testing.assert_allclose(extractdata(g), 3.0 + 1.0 / np.array([1.0, 2.0]) ** 2)


def test_untraced_value_inside_dlfeval_is_correct():
    c = dlarray([1.0, 2.0])

    def f(x):
        return symdl.sum(x * (c * 2.0 - 0.5))

    out = symdl.dlfeval(f, dlarray([1.0, 1.0]))
    assert float(out) == pytest.approx(1.5 + 3.5)


# ---------------------------------------------------------------- memory of a trace

def test_a_discarded_intermediate_releases_its_value():
    import gc
    import weakref

    def f(x):
        kept = symdl.exp(x)
        dropped = symdl.sin(x) * 3.0
        value = weakref.ref(dropped._value)
        assert value() is not None
        del dropped
        # the interner holds the most recently made nodes for a while (bounded:
        # RECENT_NODES of them); once newer nodes have pushed it out, it is free
        from symdl.ir import build as B
        from symdl.ir.node import RECENT_NODES
        for k in range(RECENT_NODES + 1):
            B.const(float(k) + 0.5, (), "float64")
        gc.collect()
        assert value() is None, "the trace's memo kept the value of a discarded intermediate"
        root = active_root()
        assert kept._node in root.memo and x._node in root.memo  # live values stay
        g = symdl.dlgradient(symdl.sum(kept), x)
        return g

    g = symdl.dlfeval(f, dlarray(np.linspace(0.0, 1.0, 1000)))
    np.testing.assert_allclose(extractdata(g), np.exp(np.linspace(0.0, 1.0, 1000)), rtol=1e-15)


def test_full_collections_wait_for_the_outermost_dlfeval_and_thresholds_come_back():
    import gc
    before = gc.get_threshold()
    seen = []

    def inner(x):
        seen.append(gc.get_threshold()[2])
        return symdl.sum(x * x)

    def outer(x):
        seen.append(gc.get_threshold()[2])
        return symdl.dlfeval(inner, x)

    symdl.dlfeval(outer, dlarray(np.ones(3)))
    assert seen[0] > 10**6 and seen[1] > 10**6          # deferred inside, nested too
    assert gc.get_threshold() == before                 # restored after

    def fails(x):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        symdl.dlfeval(fails, dlarray(1.0))
    assert gc.get_threshold() == before                 # restored after an error

    def user_sets_thresholds(x):
        gc.set_threshold(500, 5, 5)
        return x
    try:
        symdl.dlfeval(user_sets_thresholds, dlarray(1.0))
        assert gc.get_threshold() == (500, 5, 5)        # the user's own choice stands
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_traced_values_with_python_numbers_match_the_general_path(dtype):
    from symdl import functions as F
    from symdl.core import apply, to_operands

    cases = [("add", (1.0, 1.0), 0.0, 2.5), ("add", (1.0, -1.0), 0.0, 3), ("mul", (1, 1), None, 0.999),
             ("mul", (1, -1), None, 3.0), ("maximum", None, None, 0.0), ("pow", None, None, 1.5)]

    def f(x):
        for op, first, second, number in cases:
            attrs = {} if first is None else ({"coeffs": first, "const": second} if op == "add" else {"exps": first})
            for operands in ((x, number), (number, x)):
                fast = F._elementwise(op, list(operands), **attrs)
                general = apply(op, to_operands(list(operands)), **attrs)
                assert fast._node is general._node, (op, operands)
                assert fast.dtype == general.dtype == dtype
                assert fast._value.tobytes() == general._value.tobytes()
                assert fast.fmt == "CB"
        y = x * 0.5 - 2
        return symdl.dlgradient(symdl.sum(y * y), y)   # through the recorded operations

    x = dlarray(np.array([[1.5, -2.0], [0.25, 4.0]], dtype=dtype), "CB")
    g = symdl.dlfeval(f, x)
    np.testing.assert_allclose(extractdata(g), 2 * (extractdata(x) * 0.5 - 2), rtol=1e-6)


def test_numbers_that_are_not_plain_python_floats_take_the_general_path(monkeypatch):
    calls = []
    real = F._traced

    def spy(op, operands, attrs):
        out = real(op, operands, attrs)
        calls.append(out is not None)
        return out

    def f(x):
        return [x * True, x * 2 ** 60, x * np.float64(2.0), x * np.array(2.0), x * 2.0]

    monkeypatch.setattr(F, "_traced", spy)
    out = symdl.dlfeval(f, dlarray(np.array([1.0, 3.0], dtype=np.float32)))
    assert calls == [False, False, False, False, True]   # only the plain float took the fast path
    assert [o.dtype for o in out] == [np.float32, np.float32, np.float64, np.float32, np.float32]
    np.testing.assert_allclose(extractdata(out[1]), np.array([1.0, 3.0]) * 2.0 ** 60, rtol=1e-6)


# ---------------------------------------------------------------- traced fast path

# (public name, op, attrs) as the public functions call _elementwise
BINARY = [("add", "add", {"coeffs": (1.0, 1.0), "const": 0.0}),
          ("subtract", "add", {"coeffs": (1.0, -1.0), "const": 0.0}),
          ("multiply", "mul", {"exps": (1, 1)}), ("divide", "mul", {"exps": (1, -1)}), ("maximum", "maximum", {}),
          ("minimum", "minimum", {}), ("power", "pow", {}), ("arctan2", "atan2", {}), ("greater", "gt", {}),
          ("equal", "eq", {})]
UNARY = [("tanh", "tanh", {}), ("exp", "exp", {}), ("sin", "sin", {}), ("abs", "abs", {}), ("sign", "sign", {}),
         ("negative", "add", {"coeffs": (-1.0,), "const": 0.0}), ("sigmoid", "sigmoid", {})]
NUMBERS = [0.999, 2, -3, 0.0, -0.0, 1e-310, float("inf"), float("nan"), True, 2 ** 60, 1e300]


def _general(op, operands, attrs):
    """The general path of ``_elementwise`` (what the fast path short-cuts)."""
    from symdl.core import apply, to_operands
    out = apply(op, to_operands(list(operands)), **attrs)
    out._fmt = F._fmt_for(operands, out.ndim)
    return out


def _same_traced(fast, general, what) -> None:
    assert type(fast) is dlarray and fast._trace is general._trace is active_root(), what
    if fast._node is not general._node:  # NaN attributes never compare equal: then the same content
        assert fast._node.digest == general._node.digest, what
    assert fast.dtype == general.dtype and fast.shape == general.shape and fast.fmt == general.fmt, what
    assert _bits(fast._value).tobytes() == _bits(general._value).tobytes(), what


def _bits(v):
    return bits(v) if v.dtype.kind == "f" else v


def _operand_kinds(x64, x32, v):
    """Traced and untraced operands of several shapes, dtypes and labels."""
    return {
        "traced f64 CB": x64, "traced f64 row": x64[0, :], "traced f64 scalar": symdl.sum(x64),
        "traced f64 C": v, "traced bool": x64 > 0.0,
        "traced f64 column": x64[:, :1], "traced f32 CB": x32, "traced f64 other": symdl.sin(x64),
        "untraced f64": dlarray(np.array([[0.5, -0.0, 2.0], [np.nan, 1.0, -4.0]]), "CB"),
        "numpy f64": np.array([1.0, -2.0, 0.5]), "numpy scalar": np.float32(1.5),
    }


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")  # 1e300 as float32, on both paths
def test_traced_fast_path_equals_the_general_path():
    tried = {"fast": 0}
    real = F._traced

    def counting(op, operands, attrs):
        out = real(op, operands, attrs)
        tried["fast"] += out is not None
        return out

    def f(x64, x32, v):
        F._traced = counting
        try:
            kinds = _operand_kinds(x64, x32, v)
            operands = list(kinds.items()) + [(repr(n), n) for n in NUMBERS]
            for public, op, attrs in BINARY:
                for (na, a), (nb, b) in itertools.product(operands, repeat=2):
                    if not any(isinstance(v, dlarray) and v._node is not None for v in (a, b)):
                        continue
                    what = (public, na, nb)
                    try:
                        general = _general(op, (a, b), attrs)
                    except (ValueError, TypeError) as err:
                        with pytest.raises(type(err)) as fast_err:
                            F._elementwise(op, [a, b], **attrs)
                        assert str(fast_err.value) == str(err), what
                        continue
                    _same_traced(F._elementwise(op, [a, b], **attrs), general, what)
            for public, op, attrs in UNARY:
                for na, a in kinds.items():
                    if a._node is not None if isinstance(a, dlarray) else False:
                        _same_traced(F._elementwise(op, [a], **attrs), _general(op, (a,), attrs), (public, na))
        finally:
            F._traced = real
        return x64

    x64 = dlarray(np.array([[0.5, -0.0, 3.0], [-2.0, 1e-300, np.inf]]), "CB")
    x32 = dlarray(np.array([[1.5, -0.5, 0.0], [2.0, -3.0, 0.25]], dtype=np.float32), "CB")
    symdl.dlfeval(f, x64, x32, dlarray(np.array([1.0, -2.0, 0.5]), "C"))
    assert tried["fast"] > 300  # the comparison above really went through the fast path


def test_traced_fast_path_keeps_the_operators_results():
    """The operators as users write them: values against numpy, labels,
    dtypes (Python numbers are weak, traced float32 stays float32), and the
    gradient through values made on the fast path (their recorded origins)."""
    x0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -3.0]])

    def f(x, x32):
        y = symdl.tanh(x * 0.999 + x) - 2 / (1.0 + x * x)
        z = x32 * 3 - x32 / 7.0
        assert y.fmt == "CB" and y.dtype == np.float64
        assert z.fmt == "CB" and z.dtype == np.float32
        assert (x[0, :] + x).fmt == "CB" and (x + x[0, :]).fmt == "CB"
        grads = symdl.dlgradient(symdl.sum(y * y), x, y)
        return y, z, grads

    y, z, (gx, gy) = symdl.dlfeval(f, dlarray(x0, "CB"), dlarray(x0.astype(np.float32), "CB"))
    ref = np.tanh(x0 * 0.999 + x0) - 2 / (1.0 + x0 * x0)
    np.testing.assert_allclose(extractdata(y), ref, rtol=1e-15)
    x32 = x0.astype(np.float32)
    assert extractdata(z).tobytes() == (x32 * np.float32(3) - x32 / np.float32(7.0)).tobytes()
    np.testing.assert_allclose(extractdata(gy), 2 * ref, rtol=1e-15)
    t = np.tanh(x0 * 0.999 + x0)
    dref = 2 * ref * ((1 - t * t) * 1.999 + 4 * x0 / (1.0 + x0 * x0) ** 2)
    np.testing.assert_allclose(extractdata(gx), dref, rtol=1e-13)


def test_traced_and_plain_arithmetic_warn_about_nothing():
    """NaN and Inf are values, not errors: no numpy warning from the traced
    fast path, the interpreter's sums and products, or the operators."""
    import warnings
    big = np.array([1e308, -1e308, 0.0, np.inf])

    def f(x):
        y = x * 2.0 + x * 1e300 - x / 0.0 + (x - x) * np.inf
        z = symdl.exp(x) * symdl.log(-x) + symdl.sqrt(-x) + x ** 3
        return y, z, symdl.dlgradient(symdl.sum(y), x)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, z, g = symdl.dlfeval(f, dlarray(big))
        plain = dlarray(big) * 2.0 - dlarray(big) / dlarray(np.zeros(4)) + 1e308 * dlarray(big)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(extractdata(plain), big * 2.0 - big / np.zeros(4) + 1e308 * big)
    assert y.shape == z.shape == g.shape == (4,)  # (values: real-number algebra, see docs/ieee.md)
