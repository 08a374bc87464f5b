"""Compiled code == the numpy reference interpreter, for every primitive.

Every test builds a small graph directly with the IR builders, compiles it with
``codegen.compiler.compile_graph`` and compares what the native entry returns
with ``symdl.ir.interpret.interpret`` on the same inputs (the oracle), in
float64 and float32.  The per-primitive tests are parametrised over the
catalogue ``symdl.ir.ops.PRIMITIVES`` itself, so a new primitive without a case
here is a failing test.  Several checks share one compiled graph (compiling
costs tens of milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symdl
from codegen import plan as P
from codegen.abi import NativeError
from codegen.compiler import compile_graph
from symdl.ir import build as B
from symdl.ir.ops import functions as E
from symdl.ir.interpret import interpret
from symdl.ir.ops import PRIMITIVES
from symdl.ir.rewrite import toposort
from helpers import assert_compiled_matches_interpreter, assert_same

DTYPES = ("float64", "float32")
# NaN and Inf inputs are deliberate: numpy's warnings about them are noise here
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

# Interesting values for elementwise ops: signed zeros, infinities, NaN, points
# on and off the domains of log/asin/acosh/atanh, halves for round, large
# arguments for the trigonometric functions.
GRID = np.array([-np.inf, -50.0, -3.7, -2.5, -1.5, -1.0, -0.99, -0.5, -1e-7, -0.0, 0.0, 1e-7,
                 0.3, 0.5, 0.99, 1.0, 1.5, 2.5, 3.7, 50.0, 1e4, np.inf, np.nan, 0.7])

# User-defined elementwise functions (their primitives register on definition).
softplus = symdl.elementwise(lambda x: sympy.log(1 + sympy.exp(x)), name="cg_softplus")
xgauss = symdl.elementwise(lambda x, y: x * sympy.exp(-y ** 2) + sympy.atan(x * y), name="cg_xgauss")
leaky = symdl.elementwise(lambda x: sympy.Piecewise((x, x > 0), (x / 10, True)), name="cg_leaky")
secant = symdl.elementwise(lambda x: sympy.sec(x), name="cg_sec")
USER_FUNCTIONS = (softplus, xgauss, leaky, secant)


# ---------------------------------------------------------------- helpers

def inp(name: str, shape, dtype: str = "float64"):
    return B.input_node(name, shape, dtype)


def tolerances(dtype: str) -> tuple[float, float]:
    """(rtol, atol relative to the largest magnitude) for one op."""
    return (1e-12, 1e-14) if dtype == "float64" else (4e-6, 1e-6)


def compile_and_compare(inputs, outputs, value_sets, rtol: float, atol: float, what: str = ""):
    return assert_compiled_matches_interpreter(inputs, outputs, value_sets, rtol, atol, what)


def raw_dot(a, b, contract, batch):
    """A dot_general node exactly as given (no construction rules)."""
    from symdl.ir.node import make_node
    from symdl.ir.ops import primitive
    attrs = {"contract": contract, "batch": batch}
    shape, dtype = primitive("dot_general").infer((a, b), attrs)
    return make_node("dot_general", (a, b), B.as_attrs(attrs), shape, dtype)


def test_outer_products_become_elementwise_products():
    # a contraction over size-1 (or no) axes is one product per output: exact as a mul
    a, b = inp("a", (3, 1)), inp("b", (1, 4))
    node = B.dot_general(a, b, ((1,), (0,)))
    assert node.op != "dot_general" and "dot_general" not in ops_in([node])
    values = [np.arange(3.0).reshape(3, 1), np.arange(4.0).reshape(1, 4) - 1.5]
    (got,) = interpret([node], dict(zip((a, b), values)))
    np.testing.assert_array_equal(got, values[0] @ values[1])


def ops_in(outputs) -> set[str]:
    return {n.op for n in toposort(outputs)}


def rng_values(rng, shape, lo=-2.0, hi=2.0, specials=False):
    a = rng.uniform(lo, hi, shape)
    if specials and a.size >= 6:
        flat = a.reshape(-1)
        pos = rng.choice(a.size, size=4, replace=False)
        flat[pos] = [np.nan, np.inf, -np.inf, -0.0]
    return a


# ---------------------------------------------------------------- per-primitive cases
# A case maps (op, dtype) to (inputs, outputs, list of input-value tuples[, rtol, atol]).

Case = Callable[[str, str], tuple]
CASES: dict[str, Case] = {}


def case(*ops: str):
    def register(fn: Case) -> Case:
        for op in ops:
            CASES[op] = fn
        return fn
    return register


BUILTIN_UNARY = ("exp", "log", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                 "asinh", "acosh", "atanh", "abs", "erf", "log1p", "expm1", "sign", "floor", "ceil",
                 "round", "stop_gradient", "sigmoid", "softplus",
                 "log2", "log10", "exp2", "cbrt", "trunc")


def _unary_outputs(f, dtype):
    x = inp("x", (4, 6), dtype)
    s = inp("s", (), dtype)
    e = inp("e", (0, 3), dtype)
    one = inp("one", (1, 6), dtype)
    outs = [
        f(x),
        f(B.transpose(x, (1, 0))),                                    # strided view feeding the loop
        f(B.slice_(x, [slice(None, None, -1), slice(4, None, -2)])),  # negative-step slices
        f(s),                                                         # 0-d
        f(B.broadcast_to(s, (2, 3))),                                 # broadcast scalar
        f(e),                                                         # empty
        f(B.broadcast_to(one, (3, 6))),                               # size-1 axis broadcast
        B.add(f(x), B.scale(f(one), 2.0)),                            # fused with broadcasting
    ]
    rng = np.random.default_rng(1)
    values = [(GRID, 0.5, np.zeros((0, 3)), GRID[6:12]),
              (rng.uniform(-1.2, 1.2, 24), -0.25, np.zeros((0, 3)), rng.uniform(-3, 3, 6))]
    return [x, s, e, one], outs, values


@case(*BUILTIN_UNARY)
def unary_case(op, dtype):
    return _unary_outputs(lambda n: B.emit(op, (n,)), dtype)


@case("order_limit")
def order_limit_case(op, dtype):
    # an identity that only differentiation sees (it counts derivatives taken through it)
    return _unary_outputs(lambda n: B.emit(op, (n,), level=0, limit=4, what="a test mark"), dtype)


@case("powc")
def powc_case(op, dtype):
    x = inp("x", (4, 6), dtype)
    s = inp("s", (), dtype)
    ps = (0.5, -0.5, 1.5, 1.0 / 3.0, -2.5, 0.1)
    outs = [B.powc(x, p) for p in ps] + [B.powc(B.transpose(x, (1, 0)), 0.5), B.powc(s, 2.5),
                                         B.powc(B.slice_(x, [slice(None, None, -1)]), -0.5)]
    return [x, s], outs, [(GRID, 2.0), (np.abs(GRID[::-1]), 0.0), (GRID * 0.1, -1.0)]


def _binary(op, a, b):
    if op == "add":
        return B.linear([(a, 2.0), (b, -3.0)], 1.5)
    if op == "mul":
        return B.emit("mul", (a, b), exps=(1, -1))
    return B.emit(op, (a, b))


BINARY = ("add", "mul", "maximum", "minimum", "pow", "atan2", "gt", "ge", "lt", "le", "eq", "ne",
          "hypot", "logaddexp", "mod", "fmod", "floor_divide")


@case(*BINARY)
def binary_case(op, dtype):
    a = inp("a", (24, 1), dtype)   # every pair of GRID values, NaN and Inf included
    b = inp("b", (1, 24), dtype)
    c = inp("c", (2, 1, 3), dtype)
    d = inp("d", (4, 1), dtype)
    s = inp("s", (), dtype)
    z = inp("z", (0, 1), dtype)
    w = inp("w", (1, 3), dtype)
    outs = [
        _binary(op, a, b), _binary(op, b, a),
        _binary(op, c, d),                                       # (2, 4, 3)
        _binary(op, B.transpose(c, (2, 1, 0)), B.slice_(d, [slice(None, None, -1)])),  # views
        _binary(op, s, w), _binary(op, s, s),                    # 0-d
        _binary(op, z, w),                                       # empty (0, 3)
        _binary(op, B.broadcast_to(w, (2, 3)), c),                # (2, 2, 3)
    ]
    if op == "add":
        outs += [B.add(a, b, B.transpose(a, (1, 0))), B.sub(c, c)]
    if op == "mul":
        outs += [B.mul(a, b), B.emit("mul", (c, d), exps=(3, -2)), B.ipow(a, 5), B.ipow(b, -3), B.ipow(d, 2),
                 B.emit("mul", (a, b, s), exps=(-1, 2, 1))]
    rng = np.random.default_rng(2)
    values = [(GRID, GRID, rng_values(rng, (2, 1, 3), specials=True), rng_values(rng, (4, 1)), 0.5,
               np.zeros((0, 1)), rng_values(rng, (1, 3))),
              (GRID[::-1], rng.uniform(-3, 3, 24), rng_values(rng, (2, 1, 3)), GRID[:4], -1.5,
               np.zeros((0, 1)), [np.nan, 0.0, -np.inf])]
    return [a, b, c, d, s, z, w], outs, values


@case("logical_and", "logical_or", "logical_not")
def logical_case(op, dtype):
    p = inp("p", (4, 1), "bool")
    q = inp("q", (1, 3), "bool")
    x = inp("x", (4, 3), dtype)
    s = inp("s", (), "bool")
    fx = B.compare("gt", x, B.const(0.0, (), dtype))       # NaN > 0 is False
    gx = B.compare("ne", x, x)                               # NaN test
    if op == "logical_not":
        outs = [B.emit(op, (p,)), B.emit(op, (fx,)), B.emit(op, (gx,)), B.emit(op, (s,)),
                B.emit(op, (B.transpose(q, (1, 0)),))]
    else:
        outs = [B.emit(op, (p, q)), B.emit(op, (fx, gx)), B.emit(op, (p, fx)), B.emit(op, (s, q)),
                B.emit(op, (B.slice_(p, [slice(None, None, -1)]), q))]
    outs.append(B.where(outs[1], x, B.const(-7.0, (), dtype)))
    x_vals = np.array([[1.0, -1.0, np.nan], [0.0, np.inf, -np.inf], [2.0, np.nan, -0.0], [0.5, -0.5, 3.0]])
    return [p, q, x, s], outs, [([True, False, True, False], [True, True, False], x_vals, True),
                                ([False, False, True, True], [False, True, False], -x_vals, False)]


@case("where")
def where_case(op, dtype):
    cond = inp("cond", (3, 1, 4), "bool")
    a = inp("a", (5, 1), dtype)
    b = inp("b", (), dtype)
    x = inp("x", (5, 4), dtype)
    z = inp("z", (0, 4), dtype)
    outs = [B.where(cond, a, b), B.where(B.compare("lt", x, a), x, a),
            B.where(B.compare("ge", x, b), B.fn("sin", x), B.fn("cos", x)),
            B.where(B.transpose(B.slice_(cond, [slice(None), slice(None), slice(None, None, -1)]), (2, 1, 0)),
                    B.const(1.0, (), dtype), B.const(np.nan, (), dtype)),
            B.where(B.compare("gt", z, b), z, b)]
    rng = np.random.default_rng(3)
    return [cond, a, b, x, z], outs, [(rng.random((3, 1, 4)) > 0.5, rng_values(rng, (5, 1)), 0.25,
                                       rng_values(rng, (5, 4), specials=True), np.zeros((0, 4))),
                                      (rng.random((3, 1, 4)) > 0.3, GRID[:5], np.nan, GRID[4:], np.zeros((0, 4)))]


@case("convert")
def convert_case(op, dtype):
    other = "float32" if dtype == "float64" else "float64"
    x = inp("x", (4, 6), other)
    m = inp("m", (2, 3), "bool")
    i = inp("i", (5,), "int64")
    outs = [B.convert(x, dtype), B.convert(B.transpose(x, (1, 0)), dtype), B.convert(m, dtype),
            B.convert(i, dtype), B.convert(B.iota((3, 2), 1, "int64"), dtype),
            B.add(B.convert(x, dtype), B.convert(B.compare("gt", x, B.const(0.0, (), other)), dtype))]
    for n in outs[:5]:
        assert n.op == "convert"
    big = np.array([1e300, -1e300, 1e-300, 3.4e38, 2 ** 24 + 1] + [0.1] * 19) if other == "float64" else GRID
    return [x, m, i], outs, [(GRID, [[True, False, True], [False, False, True]], [0, -1, 2 ** 53 + 1, -(2 ** 62), 7]),
                             (big, [[False] * 3, [True] * 3], [3, 4, 5, 6, 2 ** 31])]


@case("iota")
def iota_case(op, dtype):
    x = inp("x", (3, 4), dtype)
    outs = [B.iota((3, 4), 0, dtype), B.iota((3, 4), 1, dtype), B.iota((2, 0, 3), 2, dtype),
            B.iota((5,), 0, "int64"), B.iota((2, 3, 4), 1, "int64"),
            B.add(x, B.iota((3, 4), 1, dtype)), B.eye(4, dtype),
            B.mul(B.iota((3, 1), 0, dtype), B.iota((1, 4), 1, dtype))]
    return [x], outs, [(np.arange(12.0) * 0.5,)]


@case("const")
def const_case(op, dtype):
    x = inp("x", (2, 3), dtype)
    arr = B.const(np.array([[1.5, -2.0, np.nan], [np.inf, 0.0, 7.25]]), dtype=dtype)
    assert arr.op == "const"
    outs = [arr, B.const(3.5, (2, 2), dtype), B.const(np.nan, (), dtype), B.const(0.0, (0, 2), dtype),
            B.add(x, arr), B.mul(x, B.const(np.array([1.0, 2.0, 3.0]), dtype=dtype)),
            B.transpose(arr, (1, 0)), B.reduce_sum(arr, (1,)), B.linear([(x, 1.0)], 4.0)]
    return [x], outs, [(np.arange(6.0),)]


@case("input")
def input_case(op, dtype):
    x = inp("x", (2, 3), dtype)
    y = inp("y", (), dtype)
    z = inp("z", (0, 2), dtype)
    outs = [x, y, x, z, B.fn("exp", y)]
    return [x, y, z], outs, [(GRID[:6], 2.0, np.zeros((0, 2))), (GRID[-6:], np.nan, np.zeros((0, 2)))]


@case("broadcast_to")
def broadcast_case(op, dtype):
    x = inp("x", (3, 1), dtype)
    s = inp("s", (), dtype)
    o = inp("o", (1,), dtype)
    outs = [B.broadcast_to(x, (2, 3, 4)), B.broadcast_to(s, (2, 2)), B.broadcast_to(o, (0, 5)),
            B.fn("sin", B.broadcast_to(x, (3, 5))), B.broadcast_to(B.transpose(x, (1, 0)), (2, 3)),
            B.reduce_sum(B.broadcast_to(x, (3, 6)), (1,)), B.broadcast_to(s, (1, 1, 1))]
    return [x, s, o], outs, [([1.0, np.nan, -2.0], 3.0, [4.0]), ([np.inf, 0.5, -0.0], -1.0, [0.0])]


@case("reshape")
def reshape_case(op, dtype):
    x = inp("x", (3, 4), dtype)
    s = inp("s", (), dtype)
    e = inp("e", (0, 3), dtype)
    outs = [B.reshape(x, (2, 6)), B.reshape(x, (12,)), B.reshape(x, (3, 1, 4, 1)),
            B.reshape(B.transpose(x, (1, 0)), (2, 6)),                       # non-contiguous: copy first
            B.reshape(B.slice_(x, [slice(None, None, -1), slice(None, None, 2)]), (6,)),
            B.reshape(s, (1, 1)), B.reshape(e, (3, 0)),
            B.fn("exp", B.reshape(x, (4, 3))),
            B.reshape(B.broadcast_to(s, (2, 3)), (3, 2)),
            B.reshape(B.fn("sin", x), (6, 2))]
    rng = np.random.default_rng(4)
    return [x, s, e], outs, [(rng_values(rng, (3, 4), specials=True), 1.5, np.zeros((0, 3)))]


@case("transpose")
def transpose_case(op, dtype):
    x = inp("x", (2, 3, 4), dtype)
    m = inp("m", (1, 4), dtype)
    outs = [B.transpose(x, (2, 0, 1)), B.transpose(x, (1, 0, 2)), B.fn("tanh", B.transpose(x, (2, 1, 0))),
            B.transpose(B.slice_(x, [slice(None, None, -1), slice(0, 3, 2)]), (1, 2, 0)),
            B.transpose(m, (1, 0)), B.add(B.transpose(x, (0, 2, 1)), B.transpose(m, (1, 0))),
            B.transpose(B.transpose(x, (1, 2, 0)), (1, 0, 2))]
    rng = np.random.default_rng(5)
    return [x, m], outs, [(rng_values(rng, (2, 3, 4), specials=True), rng_values(rng, (1, 4)))]


@case("slice")
def slice_case(op, dtype):
    x = inp("x", (5, 6), dtype)
    v = inp("v", (7,), dtype)
    outs = [B.slice_(x, [slice(None, None, -1)]),
            B.slice_(x, [slice(1, 4), slice(None, None, -2)]),
            B.slice_(x, [slice(4, 0, -3), slice(5, None, -1)]),
            B.slice_(x, [slice(2, 2)]),                                  # empty
            B.slice_(v, [slice(-2, None, -3)]),
            B.fn("exp", B.slice_(x, [slice(None, None, 2), slice(1, None, 2)])),
            B.slice_(B.slice_(v, [slice(None, None, -1)]), [slice(1, None, 2)]),
            B.slice_(B.transpose(x, (1, 0)), [slice(None, None, -1), slice(1, 4)]),
            B.add(B.slice_(x, [slice(0, 1)]), B.slice_(x, [slice(4, 5)])),
            B.slice_(B.broadcast_to(v, (3, 7)), [slice(None, None, -1), slice(None, None, -2)])]
    rng = np.random.default_rng(6)
    return [x, v], outs, [(rng_values(rng, (5, 6), specials=True), rng_values(rng, (7,)))]


@case("unslice")
def unslice_case(op, dtype):
    a = inp("a", (2, 3), dtype)
    v = inp("v", (3,), dtype)
    outs = [B.unslice(a, (0, 1), (4, 7), (2, 2), (5, 7)),
            B.unslice(v, (4,), (None,), (-2,), (5,)),
            B.unslice(B.fn("sin", a), (1, 0), (3, 3), (1, 1), (4, 3)),
            B.unslice(B.transpose(a, (1, 0)), (0, 3), (3, None), (1, -2), (3, 4)),
            B.fn("exp", B.unslice(v, (1,), (4,), (1,), (6,)))]
    for n in outs[:4]:
        assert n.op == "unslice"
    rng = np.random.default_rng(7)
    return [a, v], outs, [(rng_values(rng, (2, 3), specials=True), rng_values(rng, (3,)))]


@case("concatenate")
def concatenate_case(op, dtype):
    x = inp("x", (2, 3), dtype)
    y = inp("y", (2, 4), dtype)
    e = inp("e", (2, 0), dtype)
    s = inp("s", (), dtype)
    arr = B.const(np.array([[1.0, 2.0], [3.0, np.nan]]), dtype=dtype)
    outs = [B.concatenate([x, e, y, x], 1),
            B.concatenate([B.transpose(x, (1, 0)), B.transpose(B.slice_(y, [slice(None), slice(None, None, -1)]),
                                                               (1, 0))], 0),
            B.concatenate([B.fn("sin", x), B.fill(2.5, x, (2, 1)), arr], 1),
            B.concatenate([B.broadcast_to(s, (1, 3)), x], 0),
            B.fn("exp", B.concatenate([x, x], 0)),
            B.concatenate([e, e], 0)]
    rng = np.random.default_rng(8)
    return [x, y, e, s], outs, [(rng_values(rng, (2, 3), specials=True), rng_values(rng, (2, 4)),
                                 np.zeros((2, 0)), 0.75)]


@case("cumsum")
def cumsum_case(op, dtype):
    x = inp("x", (3, 4, 5), dtype)
    z = inp("z", (2, 0, 3), dtype)
    s = inp("s", (1,), dtype)
    outs = [B.emit(op, (x,), axis=a, reverse=r) for a in (0, 1, 2) for r in (False, True)]
    outs += [B.emit(op, (B.transpose(x, (2, 0, 1)),), axis=1, reverse=False),      # strided operand
             B.emit(op, (B.fn("sin", x),), axis=2, reverse=True),                  # a cone computed inside
             B.emit(op, (z,), axis=1, reverse=False), B.emit(op, (z,), axis=0, reverse=True),  # empty
             B.emit(op, (s,), axis=0, reverse=False),
             B.fn("exp", B.emit(op, (x,), axis=1, reverse=False))]
    rng = np.random.default_rng(12)
    return [x, z, s], outs, [(rng_values(rng, (3, 4, 5), specials=True), np.zeros((2, 0, 3)), [2.5]),
                             (rng_values(rng, (3, 4, 5)), np.zeros((2, 0, 3)), [np.nan])]


@case("reduce_sum", "reduce_max")
def reduce_case(op, dtype):
    x = inp("x", (3, 4, 5), dtype)
    z = inp("z", (2, 0, 3), dtype)
    ax_sets = [(0,), (1,), (2,), (0, 1), (1, 2), (0, 2), (0, 1, 2)]
    outs = [B.emit(op, (x,), axes=a) for a in ax_sets]
    outs += [B.emit(op, (B.transpose(x, (2, 0, 1)), ), axes=(0, 2)),
             B.emit(op, (B.slice_(x, [slice(None, None, -1), slice(None, None, 2)]),), axes=(1,)),
             B.emit(op, (B.fn("sin", x),), axes=(0, 2)),
             B.emit(op, (B.broadcast_to(B.slice_(x, [slice(0, 1)]), (6, 4, 5)),), axes=(0, 1)),
             B.emit(op, (z,), axes=(0, 2)),                               # result is empty
             B.fn("exp", B.emit(op, (x,), axes=(1,)))]
    if op == "reduce_sum":
        outs += [B.emit(op, (z,), axes=(1,)), B.emit(op, (z,), axes=(0, 1, 2))]   # sums over nothing: 0
    for n in outs:
        assert op in ops_in([n])
    rng = np.random.default_rng(9)
    plain = rng_values(rng, (3, 4, 5))
    special = rng_values(rng, (3, 4, 5), specials=True)
    neg_inf = np.full((3, 4, 5), -np.inf)
    neg_inf[0, 0, 0] = np.nan
    return [x, z], outs, [(plain, np.zeros((2, 0, 3))), (special, np.zeros((2, 0, 3))),
                          (neg_inf, np.zeros((2, 0, 3)))]


@case("dot_general")
def dot_case(op, dtype):
    a = inp("a", (3, 4), dtype)
    b = inp("b", (4, 5), dtype)
    p = inp("p", (2, 3, 4), dtype)
    q = inp("q", (2, 4, 5), dtype)
    r = inp("r", (3, 4, 5), dtype)
    t = inp("t", (5, 4, 2), dtype)
    v = inp("v", (4,), dtype)
    e = inp("e", (3, 0), dtype)
    outs = [B.dot_general(a, b, ((1,), (0,))),
            B.dot_general(p, q, ((2,), (1,)), ((0,), (0,))),                       # batched matmul
            B.dot_general(r, t, ((1, 2), (1, 0))),                                 # two contracting dims
            B.dot_general(B.transpose(p, (1, 0, 2)), q, ((2,), (1,)), ((1,), (0,))),  # batch axis not leading
            B.dot_general(v, v, ((0,), (0,))),                                     # 0-d result
            raw_dot(v, a, ((), ()), ((), ())),          # outer product (built raw: the builder makes it a mul)
            B.dot_general(e, B.transpose(e, (1, 0)), ((1,), (0,))),                # empty contraction: zeros
            B.dot_general(B.transpose(b, (1, 0)), B.slice_(a, [slice(None, None, -1)]), ((1,), (1,))),
            B.dot_general(r, t, ((2, 1), (0, 1)), ((), ())),
            B.fn("tanh", B.dot_general(a, v, ((1,), (0,)))),
            B.dot_general(B.fn("sin", a), b, ((1,), (0,)))]
    for n in outs:
        assert "dot_general" in ops_in([n])
    rng = np.random.default_rng(10)
    vals = [rng_values(rng, n.shape) for n in (a, b, p, q, r, t, v, e)]
    special = list(vals)
    special[0] = rng_values(rng, (3, 4), specials=True)     # inf * 0 and NaN through sums
    return [a, b, p, q, r, t, v, e], outs, [vals, special], *((1e-12, 1e-13) if dtype == "float64" else (2e-5, 2e-6))


@case("take")
def take_case(op, dtype):
    x = inp("x", (5, 3), dtype)
    i = inp("i", (3, 2), "int64")
    j = inp("j", (), "int64")
    const_idx = B.const(np.array([4, -1, 0, 4, -5]), dtype="int64")
    outs = [B.take(x, i, 0), B.take(B.transpose(x, (1, 0)), B.slice_(i, [slice(None), slice(0, 1)]), 1),
            B.take(x, const_idx, 0), B.take(B.transpose(x, (1, 0)), i, 1), B.take(x, j, 1),
            B.fn("exp", B.take(x, i, 0)), B.take(x, B.const(np.zeros((0,)), dtype="int64"), 0),
            B.take(B.slice_(x, [slice(None, None, -1)]), const_idx, 0)]
    for n in outs:
        assert "take" in ops_in([n])
    rng = np.random.default_rng(11)
    xv = rng_values(rng, (5, 3), specials=True)
    return [x, i, j], outs, [(xv, [[0, 4], [4, -1], [-5, 2]], 2), (xv, [[1, 1], [1, 1], [-3, -3]], -3)]


@case("take_add")
def take_add_case(op, dtype):
    g = inp("g", (3, 2, 4), dtype)
    i = inp("i", (3, 2), "int64")
    k = inp("k", (4,), "int64")
    const_idx = B.const(np.array([[0, 0], [-1, 4], [2, -5]]), dtype="int64")
    outs = [B.take_add(g, i, 0, 5), B.take_add(g, k, 2, 3), B.take_add(g, const_idx, 0, 5),
            B.take_add(B.transpose(g, (2, 0, 1)), i, 1, 6),
            B.take_add(B.fn("sin", g), i, 0, 5)]
    for n in outs:
        assert "take_add" in ops_in([n])
    rng = np.random.default_rng(12)
    gv = rng_values(rng, (3, 2, 4))
    return [g, i, k], outs, [(gv, [[0, 4], [4, -1], [-5, 2]], [2, 2, -1, 0]),
                             (rng_values(rng, (3, 2, 4), specials=True), [[1, 1], [1, 1], [1, 1]], [-3, -3, 2, 2])]


@case("random")
def random_case(op, dtype):
    key = inp("key", (2,), "int64")
    outs = [B.emit("random", (key,), shape=(3, 4), dtype=dtype, dist="uniform", stream=0),
            B.emit("random", (key,), shape=(7,), dtype=dtype, dist="normal", stream=1),
            B.emit("random", (key,), shape=(), dtype=dtype, dist="uniform", stream=2),
            B.emit("random", (key,), shape=(2, 0), dtype=dtype, dist="normal", stream=3),
            B.emit("random", (key,), shape=(5, 3), dtype=dtype, dist="uniform", stream=1)]
    outs.append(B.add(outs[0], B.fn("exp", outs[0])))
    keys = [([12345, 0],), ([0, 1],), ([2 ** 40 + 3, 2 ** 33 + 1],), ([2 ** 62 + 7, 3],)]
    return [key], outs, keys, 1e-13 if dtype == "float64" else 1e-6, 1e-15


def _dominant(rng, shape):
    """Diagonally dominant matrices: condition numbers of a few units, so
    compiled and interpreted agree to a few ulps times the size."""
    return rng.uniform(-1, 1, shape) + shape[-1] * np.eye(shape[-1])


def _linalg_tolerances(dtype):
    return (1e-10, 1e-12) if dtype == "float64" else (2e-4, 2e-5)


@case("solve")
def solve_case(op, dtype):
    a = inp("a", (2, 4, 4), dtype)
    b = inp("b", (2, 4, 3), dtype)
    s = inp("s", (1, 1), dtype)
    one = inp("one", (1, 1), dtype)
    outs = [B.emit("solve", (a, b)),
            B.emit("solve", (B.transpose(a, (0, 2, 1)), B.slice_(b, [slice(None), slice(None), slice(0, 1)]))),
            B.emit("solve", (s, one)),
            B.fn("exp", B.emit("solve", (a, B.fn("sin", b))))]
    rng = np.random.default_rng(20)
    vals = [(_dominant(rng, (2, 4, 4)), rng_values(rng, (2, 4, 3)), [[0.5]], [[2.0]])]
    singular = _dominant(rng, (2, 4, 4))
    singular[1] = np.outer([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 0.5, 2.0])  # rank one: NaN for this matrix only
    vals.append((singular, rng_values(rng, (2, 4, 3)), [[0.0]], [[1.0]]))
    pivoting = np.array([[[0.0, 1.0, 2.0, 0.5], [3.0, 0.1, 0.2, 1.0], [1.0, 4.0, 0.0, 0.3], [0.5, 0.5, 5.0, 0.0]]] * 2)
    vals.append((pivoting, rng_values(rng, (2, 4, 3)), [[np.inf]], [[1.0]]))  # zero diagonal: rows must swap
    return [a, b, s, one], outs, vals, *_linalg_tolerances(dtype)


@case("det", "logabsdet", "det_sign")
def det_case(op, dtype):
    a = inp("a", (3, 3, 3), dtype)
    e = inp("e", (2, 0, 0), dtype)
    outs = [B.emit(op, (a,)), B.emit(op, (B.transpose(a, (0, 2, 1)),)), B.emit(op, (e,)),
            B.emit(op, (B.slice_(a, [slice(None), slice(0, 1), slice(0, 1)]),))]
    rng = np.random.default_rng(21)
    general = rng.uniform(-1, 1, (3, 3, 3))  # either sign, pivoting on
    special = np.array([general[0], [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]],  # singular: det 0
                        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -2.0]]])          # one swap
    return [a, e], outs, [(general, np.zeros((2, 0, 0))), (special, np.zeros((2, 0, 0)))], *_linalg_tolerances(dtype)


@case("cholesky")
def cholesky_case(op, dtype):
    a = inp("a", (2, 5, 5), dtype)
    outs = [B.emit("cholesky", (a,)), B.emit("cholesky", (B.transpose(a, (0, 2, 1)),)),
            B.emit("cholesky", (B.slice_(a, [slice(None), slice(0, 1), slice(0, 1)]),))]
    rng = np.random.default_rng(22)
    m = rng.uniform(-1, 1, (2, 5, 5))
    pd = m @ np.swapaxes(m, 1, 2) + np.eye(5)
    upper_garbage = pd + np.triu(rng.uniform(-9, 9, (2, 5, 5)), 1)  # only the lower triangle is read
    not_pd = pd.copy()
    not_pd[1] = -not_pd[1]  # NaN for this matrix only
    return [a], outs, [(pd,), (upper_garbage,), (not_pd,)], *_linalg_tolerances(dtype)


@case("eigh")
def eigh_case(op, dtype):
    a = inp("a", (2, 5, 5), dtype)
    d = inp("d", (3, 3), dtype)
    outs = [B.emit("eigh", (a,)), B.emit("eigh", (B.transpose(a, (0, 2, 1)),)), B.emit("eigh", (d,)),
            B.fn("exp", B.emit("eigh", (B.slice_(a, [slice(None), slice(0, 1), slice(0, 1)]),)))]
    rng = np.random.default_rng(23)
    m = rng.uniform(-1, 1, (2, 5, 5))
    diagonal = np.diag([2.0, -1.0, 0.5])  # already diagonal: sorted, unit vectors
    scaled = 1e3 * m + np.triu(rng.uniform(-9, 9, (2, 5, 5)), 1)  # upper triangle not read
    # eigenvectors move by eps * |A| / gap: the gaps of these samples are above 0.05 |A|
    rtol, atol = (1e-9, 1e-10) if dtype == "float64" else (1e-3, 2e-4)
    return [a, d], outs, [(m, diagonal), (scaled, diagonal[::-1, ::-1])], rtol, atol


def user_function_case(op, dtype):
    fn = E.FUNCTIONS[op]
    k = len(fn.params)
    shapes = [(24, 1), (1, 6), (6,)][:k] if k <= 3 else [(2,)] * k
    inputs = [inp(f"u{j}", shapes[j], dtype) for j in range(k)]
    s = [inp(f"s{j}", (), dtype) for j in range(k)]
    outs = [B.emit(op, tuple(inputs)), B.emit(op, tuple(s)),
            B.emit(op, tuple(B.transpose(n, tuple(range(n.ndim))[::-1]) for n in inputs))]
    rng = np.random.default_rng(13)
    vals = [GRID.reshape(shapes[0]) if j == 0 else rng.uniform(-2, 2, shapes[j]) for j in range(k)]
    values = [tuple(vals) + tuple(0.3 + 0.1 * j for j in range(k)),
              tuple(rng.uniform(-3, 3, sh) for sh in shapes) + tuple(-0.7 for _ in range(k))]
    # a user function is lowered to builtin nodes: a few more roundings than numpy's lambdify
    return inputs + s, outs, values, 1e-10 if dtype == "float64" else 5e-5, 1e-12


def is_user_function(op: str) -> bool:
    return op in E.FUNCTIONS and op not in CASES


def test_every_primitive_has_a_codegen_case():
    missing = sorted(op for op in PRIMITIVES if op not in CASES and not is_user_function(op))
    assert not missing, f"no compiled == interpreted case for primitives {missing}"
    for f in USER_FUNCTIONS:
        assert f.op in PRIMITIVES


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(PRIMITIVES))
def test_primitive_compiled_matches_interpreter(op, dtype):
    if op in CASES:
        spec = CASES[op](op, dtype)
    elif is_user_function(op):
        spec = user_function_case(op, dtype)
    else:
        pytest.fail(f"primitive {op!r} has no codegen test case: add one to CASES")
    inputs, outputs, values = spec[:3]
    rtol, atol = spec[3:] if len(spec) > 3 else tolerances(dtype)
    if op not in ("input", "const"):
        assert op in ops_in(outputs), f"the {op} case does not contain {op} (canonicalised away?)"
    if op != "convert":  # the case really runs in this dtype
        assert all(o.dtype == dtype for o in outputs if o.dtype in ("float32", "float64"))
    compile_and_compare(inputs, outputs, values, rtol, atol, what=f"{op}/{dtype}")


# ---------------------------------------------------------------- user functions through symdl

@pytest.mark.parametrize("dtype", DTYPES)
def test_user_functions_and_their_derivatives_compile(dtype):
    """symdl.elementwise functions and their SymPy derivatives, traced and compiled."""
    def f(x, y):
        return symdl.sum(softplus(x) * leaky(y) + xgauss(x, y) + secant(0.5 * x))

    g = symdl.trace(lambda x, y: _grads(f, x, y), np.zeros(5, dtype), np.zeros(5, dtype))
    rng = np.random.default_rng(14)
    vals = [(rng.uniform(-2, 2, 5), rng.uniform(-2, 2, 5)), (GRID[:5], GRID[5:10])]
    rtol = 1e-10 if dtype == "float64" else 5e-5
    compile_and_compare(list(g.inputs), list(g.outputs), vals, rtol, 1e-12, what="user functions")


def _grads(f, x, y):
    out = f(x, y)
    gx, gy = symdl.dlgradient(out, x, y)
    return out, gx, gy


# ---------------------------------------------------------------- slices as numpy reads them

SLICE_BOUNDS = (None, -6, -3, -2, -1, 0, 1, 2, 3, 5)


def test_slice_builder_agrees_with_numpy_basic_indexing():
    """B.slice_ takes Python slices: the node's shape and (interpreted) values
    are those of numpy's ``a[s]``, out-of-range and negative bounds included."""
    bad = []
    for n in range(0, 4):
        x = inp("x", (n,))
        a = np.arange(float(n))
        for start in SLICE_BOUNDS:
            for stop in SLICE_BOUNDS:
                for step in (None, 1, 2, -1, -2, -3):
                    s = slice(start, stop, step)
                    node = B.slice_(x, [s])
                    expected = a[s]
                    if node.shape != expected.shape:
                        bad.append((n, s, node.shape, expected.shape))
                        continue
                    (got,) = interpret([node], {x: a})
                    if not np.array_equal(got, expected):
                        bad.append((n, s, got.tolist(), expected.tolist()))
    assert not bad, f"{len(bad)} slices differ from numpy, e.g. (n, slice, got, numpy): {bad[:4]}"


def test_compiled_slices_agree_with_numpy():
    x = inp("x", (4, 3))
    a = np.arange(12.0).reshape(4, 3)
    slices = [(slice(None, None, -1), slice(-1, None, -2)), (slice(-5, None, -1), slice(None)),
              (slice(-6, -5, -1), slice(1, None)), (slice(10, -10, -3), slice(None, None, -1)),
              (slice(2, None, -1), slice(-4, None, -1)), (slice(-2, -10, -1), slice(-1, -2, -1))]
    outs = [B.slice_(x, list(s)) for s in slices]
    assert [o.shape for o in outs] == [a[s].shape for s in slices]
    entry = compile_graph([x], outs).entry()
    for got, s in zip(entry(a), slices):
        np.testing.assert_array_equal(got, a[s])


def test_compiled_negative_step_slices_of_empty_axes():
    e = inp("e", (0, 2))
    outs = [B.slice_(e, [slice(None, None, -1), slice(None, None, -1)]), B.slice_(e, [slice(-1, None, -2)])]
    entry = compile_graph([e], outs).entry()
    for got in entry(np.zeros((0, 2))):
        assert got.shape == (0, 2)


def test_unslice_agrees_with_numpy_slice_assignment():
    """unslice(a, s, shape) is ``out = zeros(shape); out[s] = a``, compiled as
    interpreted, full-size reversing slices (a permutation, not an identity) included."""
    a = inp("a", (2, 3))
    av = np.arange(1.0, 7.0).reshape(2, 3)
    specs = [((1, 2), (None, None), (-1, -1), (2, 3)),       # both axes reversed: same shape as a
             ((0, 2), (2, None), (1, -1), (2, 3)),           # one axis reversed
             ((1, 0), (None, 3), (-1, 1), (2, 3)),
             ((0, 5), (2, None), (1, -2), (2, 6)),
             ((3, 0), (None, 3), (-2, 1), (4, 3))]
    outs = [B.unslice(a, *spec) for spec in specs]
    expected = []
    for starts, stops, steps, shape in specs:
        e = np.zeros(shape)
        e[tuple(slice(*t) for t in zip(starts, stops, steps))] = av
        expected.append(e)
    (interpreted_first,) = interpret(outs[:1], {a: av})
    entry = compile_graph([a], outs).entry()
    for k, (got, e) in enumerate(zip(entry(av), expected)):
        np.testing.assert_array_equal(got, e, err_msg=f"unslice {specs[k]}")
    np.testing.assert_array_equal(interpreted_first, expected[0])


# ---------------------------------------------------------------- sizes that vectorised loops meet

@pytest.mark.parametrize("dtype", DTYPES)
def test_odd_sizes_misaligned_and_duplicate_outputs(dtype):
    """Odd sizes (vector loops plus remainders), inputs that are not 16-byte
    aligned, one node returned twice, and a constant-filled operand of a kernel."""
    x = inp("x", (37, 29), dtype)
    v = inp("v", (29,), dtype)
    i = inp("i", (40,), "int64")
    sx = B.fn("sin", x)
    outs = [sx, B.add(sx, v), sx, B.reduce_sum(x, (0,)), B.reduce_max(x, (1,)),
            B.dot_general(x, v, ((1,), (0,))), B.dot_general(x, x, ((0,), (0,))),
            B.take(x, i, 0), B.take(B.const(2.5, (37, 29), dtype), i, 0),
            B.dot_general(B.const(1.0, (29, 3), dtype), B.transpose(B.slice_(x, [slice(0, 3)]), (1, 0)),
                          ((0,), (0,))),
            B.fn("exp", B.transpose(x, (1, 0))), B.iota((37, 29), 1, dtype)]
    rng = np.random.default_rng(15)
    item = np.dtype(dtype).itemsize

    def misaligned(a):
        buf = np.empty(a.size * a.itemsize + item, dtype=np.uint8)
        out = np.frombuffer(buf[item:item + a.nbytes].data, dtype=a.dtype).reshape(a.shape)
        out[...] = a
        assert out.ctypes.data % 16 != 0 and out.flags.c_contiguous
        return out

    xv = rng_values(rng, (37, 29), specials=True).astype(dtype)
    vv = rng.uniform(-1, 1, 29).astype(dtype)
    iv = rng.integers(-37, 37, 40)
    rtol, atol = (1e-12, 1e-13) if dtype == "float64" else (2e-5, 2e-6)
    entry = compile_graph([x, v, i], outs).entry()
    expected = interpret(outs, {x: xv, v: vv, i: iv})
    for args in ((xv, vv, iv), (misaligned(xv), misaligned(vv), iv)):
        got = entry(*args)
        for k, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, rtol, atol, f"output {k}")
    assert got[0] is not got[2]


# ---------------------------------------------------------------- traced programs

def _softmax_loss(x, w, b):
    z = x @ w + b
    z = z - np.max(z, axis=1, keepdims=True)
    p = np.exp(z) / np.sum(np.exp(z), axis=1, keepdims=True)
    return -np.mean(np.log(p[:, 0] + 1e-12)) + 0.1 * np.sum(np.abs(w)) + np.sum(np.maximum(x, 0.2)[1:, ::2])


def _indexing(x, w, b):
    picked = x[[0, 2, 2, -1]] * np.tanh(b[[1, 1, 0, 2]])[:, None]
    return np.sum(picked @ w) + np.prod(1.0 + 0.1 * b) + np.sum(np.concatenate([x[:, :1], x[::-1, 2:]], axis=1) ** 2)


def _second_order(x, w, b):
    y = np.sum(np.sin(x @ w) * b) + np.sum(np.sqrt(1.0 + x ** 2))
    gw = symdl.dlgradient(y, w, enable_higher_derivatives=True)
    return np.sum(gw * gw) + np.sum(np.clip(x, -0.5, 0.5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fun", [_softmax_loss, _indexing, _second_order], ids=lambda f: f.__name__.strip("_"))
def test_traced_programs_with_gradients_compile_as_interpreted(fun, dtype):
    """Graphs as the front end and the derivative rules make them (unbroadcast,
    take_add, where, stop_gradient, second-order terms), compiled == Graph(...)()."""
    def body(x, w, b):
        y = fun(x, w, b)
        return (y, *symdl.dlgradient(y, x, w, b))

    rng = np.random.default_rng(16)
    args = [rng.standard_normal(s).astype(dtype) for s in ((5, 4), (4, 3), (3,))]
    graph = symdl.trace(body, *args)
    assert len(graph.outputs) == 4
    entry = compile_graph(list(graph.inputs), list(graph.outputs)).entry()
    rtol, atol = (1e-11, 1e-12) if dtype == "float64" else (1e-4, 1e-5)
    for scale in (1.0, 3.0):
        vals = [a * np.asarray(scale, dtype=dtype) for a in args]
        for k, (got, expected) in enumerate(zip(entry(*vals), graph(*vals))):
            assert_same(got, expected, rtol, atol, f"{fun.__name__} output {k}")


# ---------------------------------------------------------------- runtime index errors

@pytest.mark.parametrize("which", ["take", "take_add"])
def test_out_of_range_runtime_index_raises_native_error(which):
    x = inp("x", (4, 3))
    i = inp("i", (2, 2), "int64")
    if which == "take":
        outs = [B.take(x, i, 0), B.fn("exp", B.take(x, i, 1))]
    else:
        g = inp("g", (4, 2, 2))
        outs = [B.take_add(g, i, 1, 3)]
        x = g
    entry = compile_graph([x, i], outs).entry()
    xv = np.arange(float(np.prod(x.shape))).reshape(x.shape)
    good = np.array([[0, -1], [2, 1]])
    before = entry(xv, good)
    for bad in ([[0, 3], [1, 1]], [[0, 1], [-4, 1]], [[2 ** 40, 0], [0, 0]], [[-(2 ** 62), 0], [0, 0]]):
        with pytest.raises(NativeError, match="out of range"):
            entry(xv, np.array(bad))
    after = entry(xv, good)   # the entry is still usable, results unchanged
    for a, b, e in zip(before, after, interpret(outs, {x: xv, i: good})):
        np.testing.assert_array_equal(a, e)
        np.testing.assert_array_equal(b, e)


def test_entry_checks_shapes_and_argument_count():
    x = inp("x", (2, 3))
    entry = compile_graph([x], [B.fn("sin", x)]).entry()
    with pytest.raises(ValueError, match="shape"):
        entry(np.zeros((3, 2)))
    with pytest.raises(TypeError):
        entry(np.zeros((2, 3)), np.zeros((2, 3)))
    # non-contiguous and other-dtype arguments are converted, not misread
    src = np.asfortranarray(np.arange(6.0).reshape(2, 3))
    (got,) = entry(src)
    np.testing.assert_allclose(got, np.sin(np.arange(6.0).reshape(2, 3)), rtol=1e-15)
    (got,) = entry(np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_allclose(got, np.sin(np.arange(6.0).reshape(2, 3)), rtol=1e-15)


def test_results_are_fresh_arrays_and_entry_is_reentrant():
    x = inp("x", (3,))
    entry = compile_graph([x], [B.fn("exp", x), B.reduce_sum(x, (0,))]).entry()
    a = entry(np.zeros(3))
    b = entry(np.ones(3))
    np.testing.assert_array_equal(a[0], np.ones(3))
    np.testing.assert_array_equal(a[1], 0.0)
    np.testing.assert_allclose(b[0], np.full(3, math.e), rtol=1e-15)
    np.testing.assert_allclose(b[1], 3.0)


# ---------------------------------------------------------------- the plan checker

def test_check_plan_rejects_a_view_that_leaves_its_buffer():
    x = inp("x", (4, 5))
    y = B.fn("sin", B.slice_(x, [slice(None, None, -1), slice(1, None, 2)]))
    plan = P.make_plan([x], [y])
    P.check_plan(plan)  # the real plan is fine
    sl = next(n for n in plan.location if n.op == "slice")
    good = plan.location[sl]
    size = next(b.size for b in plan.buffers if b.id == good.buffer)
    lo, hi = P.view_extent(good)
    assert 0 <= lo <= hi < size
    bad_views = [
        P.View(good.buffer, good.offset + size - hi, good.shape, good.strides),  # one past the end
        P.View(good.buffer, good.offset - lo - 1, good.shape, good.strides),     # one before the start
        P.View(good.buffer, 0, good.shape, good.strides),                         # negative stride below 0
        P.View(good.buffer, 0, (size + 1,), (1,)),                                # too long
        P.View(good.buffer, size, (1,), (1,)),                                    # starts at the end
        P.View(good.buffer, -1, (1,), (1,)),
    ]
    for bad in bad_views:
        plan.location[sl] = bad
        with pytest.raises(AssertionError, match="leaves its buffer"):
            P.check_plan(plan)
    # an empty view touches nothing, wherever it points; a broadcast (stride 0) view is fine
    plan.location[sl] = P.View(good.buffer, 10 ** 6, (0, 3), (1, 1))
    P.check_plan(plan)
    plan.location[sl] = P.View(good.buffer, size - 1, (7, 9), (0, 0))
    P.check_plan(plan)
    # a kernel's store target is checked too
    plan.location[sl] = good
    loop = next(k for k in plan.kernels if isinstance(k, P.LoopKernel) and k.stores)
    node, view = loop.stores[0]
    loop.stores[0] = (node, P.View(view.buffer, view.offset + 1, view.shape, view.strides))
    with pytest.raises(AssertionError, match="leaves its buffer"):
        P.check_plan(plan)


# ---------------------------------------------------------------- random graphs (hypothesis)

SMOOTH = ("sin", "cos", "tanh", "atan", "erf", "asinh", "abs")
ROUGH = ("sign", "floor", "ceil", "round")          # discontinuous: only on exact (input) values


@st.composite
def random_graph(draw, dtype: str):
    """A random program: a few inputs of mutually broadcastable shapes and up to
    10 nodes of elementwise arithmetic, functions, movement ops and reductions.
    Values stay well conditioned, so compiled and interpreted may differ only by
    a few roundings per op."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=draw(st.integers(1, 3)), min_dims=0,
                                                    max_dims=3, min_side=0, max_side=4))
    inputs = [inp(f"h{k}", s, dtype) for k, s in enumerate(shapes.input_shapes)]
    pool = list(inputs)
    leaves = set(inputs)
    for _ in range(draw(st.integers(1, 10))):
        a = draw(st.sampled_from(pool))
        partners = [p for p in pool if _broadcastable(a.shape, p.shape)]
        b = draw(st.sampled_from(partners))
        kind = draw(st.sampled_from(["linear", "mul", "div", "fn", "rough", "minmax", "where", "transpose",
                                     "slice", "reshape", "broadcast", "reduce", "concat", "dot", "sqrt"]))
        node = None
        if kind == "linear":
            c1, c2 = draw(st.sampled_from([1.0, -1.0, 0.5, 2.0])), draw(st.sampled_from([1.0, -0.25, 3.0]))
            node = B.linear([(a, c1), (b, c2)], draw(st.sampled_from([0.0, 1.0, -2.0])))
        elif kind == "mul":
            node = B.emit("mul", (a, b), exps=(draw(st.integers(1, 3)), 1))
        elif kind == "div":  # a / (1 + b^2): no poles
            node = B.div(a, B.linear([(B.mul(b, b), 1.0)], 1.0))
        elif kind == "sqrt":
            node = B.powc(B.linear([(B.mul(a, a), 1.0)], 0.5), draw(st.sampled_from([0.5, -0.5, 1.5])))
        elif kind == "fn":
            node = B.fn(draw(st.sampled_from(SMOOTH)), a)
        elif kind == "rough" and a in leaves:
            node = B.fn(draw(st.sampled_from(ROUGH)), a)
        elif kind == "minmax":
            node = B.fn(draw(st.sampled_from(["maximum", "minimum"])), a, b)
        elif kind == "where":
            if a in leaves and b in leaves:
                node = B.where(B.compare(draw(st.sampled_from(["gt", "le", "ne"])), a, b), B.fn("sin", a), b)
            else:
                node = B.where(B.compare("gt", a, b), a, b)   # continuous: max(a, b)
        elif kind == "transpose" and a.ndim >= 2:
            node = B.transpose(a, draw(st.permutations(range(a.ndim))))
        elif kind == "slice" and a.ndim >= 1:
            slices = []
            for d in a.shape:
                # starts before the beginning are test_slice_builder_agrees_with_numpy's business
                start = draw(st.one_of(st.none(), st.integers(-d, d)))
                stop = draw(st.one_of(st.none(), st.integers(-d - 1, d)))
                step = draw(st.sampled_from([1, 2, -1, -2, 3]))
                slices.append(slice(start, stop, step))
            node = B.slice_(a, slices)
        elif kind == "reshape":
            options = [(a.size,), a.shape + (1,), (1,) + a.shape]
            if a.ndim >= 2:
                options.append((a.shape[0] * a.shape[1],) + a.shape[2:])
            node = B.reshape(a, draw(st.sampled_from(options)))
        elif kind == "broadcast" and a.ndim <= 3:
            target = tuple(draw(st.integers(0, 3)) if d == 1 else d for d in a.shape)
            node = B.broadcast_to(a, (draw(st.integers(1, 2)),) + target)
        elif kind == "reduce" and a.ndim >= 1:
            axes = sorted(draw(st.sets(st.integers(0, a.ndim - 1), min_size=1)))
            if draw(st.booleans()) or any(a.shape[x] == 0 for x in axes):
                node = B.reduce_sum(a, axes)
            else:
                node = B.reduce_max(a, axes)
        elif kind == "concat" and a.ndim >= 1:
            axis = draw(st.integers(0, a.ndim - 1))
            others = [p for p in pool if p.ndim == a.ndim
                      and all(p.shape[i] == a.shape[i] for i in range(a.ndim) if i != axis)]
            node = B.concatenate([a, draw(st.sampled_from(others))], axis)
        elif kind == "dot" and a.ndim >= 1:
            node = B.dot_general(a, a, ((a.ndim - 1,), (a.ndim - 1,)))
        if node is not None and node.size <= 4096:
            pool.append(node)
    n_out = draw(st.integers(1, 3))
    outputs = [pool[-1]] + [draw(st.sampled_from(pool)) for _ in range(n_out - 1)]
    return inputs, outputs


def _broadcastable(s: tuple, t: tuple) -> bool:
    return all(x == y or x == 1 or y == 1 for x, y in zip(s[::-1], t[::-1]))


def _check_random_graph(graph, seed: int, dtype: str, rtol: float, atol: float) -> None:
    inputs, outputs = graph
    rng = np.random.default_rng(seed)
    vals = [rng.uniform(-2, 2, n.shape) for n in inputs]
    special = [rng_values(rng, n.shape, specials=True) for n in inputs]
    compile_and_compare(inputs, outputs, [vals, special], rtol, atol, what=f"random graph ({dtype})")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_graph("float64"), st.integers(0, 2 ** 31 - 1))
def test_random_graphs_float64(graph, seed):
    _check_random_graph(graph, seed, "float64", 1e-12, 1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(random_graph("float32"), st.integers(0, 2 ** 31 - 1))
def test_random_graphs_float32(graph, seed):
    _check_random_graph(graph, seed, "float32", 1e-4, 1e-5)


def test_shifted_sums_split_loops_match_the_interpreter():
    # Sums of unslices along the last axis run in three parts (masked edges, an
    # unmasked interior); nested unslices keep the masked form everywhere.
    x = inp("x", (3, 40))
    a = B.unslice(B.fn("sin", B.slice_(x, [slice(None), slice(2, None)])), (0, 0), (3, 38), (1, 1), (3, 40))
    b = B.unslice(B.fn("cos", B.slice_(x, [slice(None), slice(None, 35)])), (0, 5), (3, 40), (1, 1), (3, 40))
    c = B.unslice(B.slice_(x, [slice(None), slice(1, 37)]), (0, 3), (3, 39), (1, 1), (3, 40))
    nested = B.unslice(B.unslice(B.slice_(x, [slice(None), slice(0, 30)]), (0, 2), (3, 32), (1, 1), (3, 32)),
                       (0, 4), (3, 36), (1, 1), (3, 40))
    outs = [B.add(a, b, c), B.add(a, nested), B.add(B.mul(a, b), c)]
    values = np.random.default_rng(5).uniform(-2, 2, (3, 40))
    expected = interpret(outs, {x: values})
    got = compile_graph([x], outs).entry()(values)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-13)


def test_sums_and_products_are_bitwise_the_interpreters():
    # the interpreter computes sums and integer powers with the compiled
    # code's operations in the compiled code's order: equal to the bit,
    # signed zeros and odd powers included
    a, b = inp("a", (24, 1)), inp("b", (1, 24))
    outs = [B.add(a, b), B.sub(a, b), B.neg(a), B.linear([(a, 2.0), (b, -1.0)], 0.0),
            B.ipow(a, 3), B.ipow(a, 5), B.ipow(a, -3), B.emit("mul", (a, b), exps=(3, -2)), B.div(a, b)]
    vals = np.array([-0.0, 0.0, 1.1, -2.3, 3.7e-5, 7.9e3, np.inf, -np.inf, np.nan, 0.3, -0.7, 1e-300,
                     -1e300, 2.0, 0.1, -0.1, 5.5, -5.5, 1 / 3, 2 / 3, 1e10, -1e-10, 0.5, 123.456])
    entry = compile_graph([a, b], outs).entry()
    got = entry(vals.reshape(24, 1), vals[::-1].reshape(1, 24))
    want = interpret(outs, {a: vals.reshape(24, 1), b: vals[::-1].reshape(1, 24)})
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.tobytes() == w.tobytes() or np.array_equal(np.isnan(g), np.isnan(w)) and \
            np.array_equal(g[~np.isnan(g)].view(np.int64), w[~np.isnan(w)].view(np.int64)), f"output {k}"


def test_codegen_modules_import_before_symdl():
    # codegen reads symdl.ir, whose package imports codegen back: any order works
    import subprocess
    import sys
    for module in ("codegen.compiler", "codegen.lower", "codegen.plan", "codegen.emit"):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert done.returncode == 0, f"import {module} first: {done.stderr[-500:]}"


# ---------------------------------------------------------------- plans split into kernel functions

def test_a_plan_with_many_kernels_runs_as_kernel_functions_and_matches_the_interpreter():
    """Above SPLIT_ABOVE kernels each kernel is its own LLVM function (an
    unrolled recurrence's gradient compiles in linear time); the results are
    the interpreter's, and a run-time index error in a late kernel still
    reaches Python as NativeError with the entry usable afterwards."""
    from codegen.emit import SPLIT_ABOVE
    from codegen.plan import make_plan

    x = inp("x", (3, 3))
    w = inp("w", (3, 3))
    i = inp("i", (2,), "int64")
    h = x
    for _ in range(SPLIT_ABOVE):  # a matrix product and a nonlinearity per step: several kernels each
        h = B.fn("tanh", B.add(B.dot_general(w, h, ((1,), (0,))), x))
    outs = [h, B.fn("exp", B.take(h, i, 0)), B.reduce_sum(B.mul(h, h), (0, 1))]
    assert len(make_plan([x, w, i], outs).kernels) > SPLIT_ABOVE
    rng = np.random.default_rng(3)
    entry = assert_compiled_matches_interpreter(
        [x, w, i], outs, [(rng.standard_normal((3, 3)), rng.standard_normal((3, 3)) * 0.5, [0, 2]),
                          (rng.standard_normal((3, 3)), rng.standard_normal((3, 3)), [-1, 1])], rtol=1e-12)
    ir_text = compile_graph([x, w, i], outs, keep_ir=True).llvm_ir
    assert f"_k{SPLIT_ABOVE}" in ir_text   # really split
    with pytest.raises(NativeError, match="out of range"):
        entry(np.ones((3, 3)), np.eye(3), np.array([0, 3]))
    xv, wv, iv = np.ones((3, 3)), np.eye(3) * 0.5, np.array([1, 0])
    for got, expected in zip(entry(xv, wv, iv), interpret(outs, {x: xv, w: wv, i: iv})):
        assert_same(got, expected, 1e-12, 1e-14, "after an index error")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_float_to_int64_conversion_matches_numpy(dtype):
    """numpy's astype(int64): truncation toward zero, INT64_MIN for NaN and
    out-of-range values (the interpreter is numpy)."""
    x = inp("x", (10,), dtype)
    b = inp("b", (2,), "bool")
    outs = [B.convert(x, "int64"), B.convert(b, "int64")]
    values = np.array([1.7, -1.7, 0.0, -0.0, np.nan, np.inf, -np.inf, 1e19, -9.3e18, 2.0 ** 62], dtype=dtype)
    with np.errstate(invalid="ignore"):
        assert_compiled_matches_interpreter([x, b], outs, [(values, [True, False])], rtol=0, atol=0)


def test_stop_gradient_is_dropped_before_planning():
    # stop_gradient only speaks to differentiation: compiled code writes the
    # value it wraps straight into the output buffer (no copy loop), and the
    # result is the interpreter's
    from codegen.decompose import decompose
    a = B.input_node("a", (3, 4), "float64")
    b = B.input_node("b", (4, 5), "float64")
    prod = B.dot_general(a, b, ((1,), (0,)))
    out = B.emit("stop_gradient", (prod,))
    assert decompose([out]) == [prod]
    plan = P.make_plan([a, b], decompose([out, B.emit("stop_gradient", (a,))]))
    assert [type(k).__name__ for k in plan.kernels] == ["OpKernel", "LoopKernel"]   # the product; a's copy
    assert plan.kernels[0].out.buffer == next(buf.id for buf in plan.buffers if buf.kind == "output" and buf.index == 0)
    rng = np.random.default_rng(3)
    assert_compiled_matches_interpreter([a, b], [out, B.emit("stop_gradient", (a,))],
                                        [(rng.standard_normal((3, 4)), rng.standard_normal((4, 5)))])


def test_float32_exp_is_correctly_rounded_over_its_whole_range():
    # compiled float32 exp is computed inline in float64 (vectorised) and
    # rounded once: it must equal exp in float64 rounded to float32, through
    # overflow, subnormal results, underflow to zero, infinities and NaN
    rng = np.random.default_rng(11)
    edges = np.float32([np.nan, np.inf, -np.inf, 0.0, -0.0, 88.72283, 88.72284, -87.33655, -103.278, -103.279,
                        -103.972, -104.0, 1e-30, -1e-30, 1e-45, 200.0, -200.0, 201.0, -201.0, 3e38, -3e38])
    xs = np.concatenate([rng.uniform(-110.0, 95.0, 200_000).astype(np.float32),
                         rng.uniform(-1.0, 1.0, 50_000).astype(np.float32), edges])
    x = B.input_node("x", xs.shape, "float32")
    entry = compile_graph([x], [B.fn("exp", x)]).entry()
    (got,) = entry(xs)
    with np.errstate(over="ignore"):
        want = np.exp(xs.astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert np.signbit(got[np.isfinite(got)]).sum() == 0


def test_sign_of_negative_zero_is_positive_zero_as_numpy():
    # numpy: sign(-0.0) == +0.0 (no sign bit); the interpreter and compiled
    # code (ieee=True or not) agree with it; NaN stays NaN
    x = np.array([-0.0, 0.0, -2.5, 3.0, np.nan])
    want = np.sign(x)
    for ieee in (False, True):
        got = np.asarray(symdl.compile(np.sign, x, ieee=ieee)(x))
        np.testing.assert_array_equal(got, want)
        assert not np.signbit(got[:2]).any()
