"""The graph IR: interning, inference errors, verifier, printer, canonical
forms, rewrite rules, and simplify == identity under the interpreter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import symdl
from symdl.ir import build as B
from symdl.ir.graph import Graph, verify
from symdl.ir.interpret import interpret
from symdl.ir.node import make_node
from symdl.ir.ops import primitive
from symdl.ir.shapes import ShapeError
from symdl.simplify import simplify


def x_(name="x", shape=(), dtype="float64"):
    return B.input_node(name, shape, dtype)


def raw(op, inputs, **attrs):
    """A node exactly as given: no canonicalisation, no rules."""
    shape, dtype = primitive(op).infer(tuple(inputs), attrs)
    return make_node(op, tuple(inputs), B.as_attrs(attrs), tuple(shape), dtype)


# ---------------------------------------------------------------- interning

def test_equal_nodes_are_the_same_object():
    x = x_()
    assert B.fn("sin", x) is B.fn("sin", x)
    assert B.add(x, B.fn("sin", x)) is B.add(B.fn("sin", x), x)  # canonical operand order
    assert B.mul(x, x) is B.ipow(x, 2)


def test_nodes_are_immutable():
    node = B.fn("exp", x_())
    with pytest.raises(AttributeError):
        node.op = "log"


def test_digest_is_structural_and_deterministic():
    a = B.fn("sin", x_("a"))
    b = B.fn("sin", x_("b"))
    assert a.digest != b.digest
    assert a.digest == raw("sin", [x_("a")]).digest


# ---------------------------------------------------------------- canonical forms

def test_like_terms_collect():
    x, y = x_("x"), x_("y")
    s = B.add(B.scale(x, 2.0), y, B.scale(x, 3.0))
    assert s.op == "add" and dict(zip(s.inputs, s.attr("coeffs"))) == {x: 5.0, y: 1.0}


def test_like_factors_collect_with_the_same_sign_only():
    x = x_()
    assert B.mul(B.ipow(x, 2), B.ipow(x, 3)) is B.ipow(x, 5)
    # x^2 / x keeps both factors: cancelling is wrong at x = 0 (fast-math only)
    q = B.div(B.ipow(x, 2), x)
    assert q.op == "mul" and sorted(q.attr("exps")) == [-1, 2]
    (fast,) = simplify([q], fast_math=True)
    assert fast is x


def test_zero_coefficient_is_kept_unless_fast_math():
    x, y = x_("x"), x_("y")
    s = B.add(B.sub(x, x), y)  # 0*x + y: NaN when x is inf
    value = interpret([s], {x: np.inf, y: 1.0})[0]
    assert np.isnan(value)
    (fast,) = simplify([s], fast_math=True)
    assert fast is y


def test_identities():
    x = x_("x", (2, 3))
    assert B.reshape(x, (2, 3)) is x
    assert B.transpose(B.transpose(x, (1, 0)), (1, 0)) is x
    assert B.reduce_sum(x, ()) is x
    assert B.convert(x, "float64") is x
    assert B.scale(x, 1.0) is x
    assert B.powc(x, 1.0) is x
    cond = B.compare("gt", x, B.fill(0.0, x))
    assert B.where(cond, x, x) is x


def test_constant_folding():
    two = B.const(2.0)
    assert B.fn("exp", B.fn("log", two)).const_scalar() == pytest.approx(2.0)
    arr = B.const(np.array([1.0, 2.0, 3.0]))
    folded = B.reduce_sum(arr, (0,))
    assert folded.op == "const" and folded.const_scalar() == 6.0


def test_algebra_pass():
    x = x_()
    assert simplify([raw("log", [raw("exp", [x])])])[0] is x
    neg = B.neg(x)
    assert simplify([raw("cos", [neg])])[0] is B.fn("cos", x)
    s = simplify([raw("sin", [neg])])[0]
    assert s is B.neg(B.fn("sin", x))


# ---------------------------------------------------------------- inference errors and verifier

def test_broadcast_error_names_op_and_shapes():
    with pytest.raises(ShapeError, match=r"add.*\(2,\).*\(3,\)"):
        B.add(x_("a", (2,)), x_("b", (3,)))


def test_dot_general_mismatch():
    with pytest.raises(ShapeError, match="dot_general"):
        B.dot_general(x_("a", (2, 3)), x_("b", (4, 5)), ((1,), (0,)))


def test_reshape_error():
    with pytest.raises(ShapeError, match=r"reshape.*\(2, 3\).*\(4,\)"):
        B.reshape(x_("a", (2, 3)), (4,))


def test_dtype_mismatch_is_an_error():
    with pytest.raises(ShapeError, match="float32"):
        B.add(x_("a", (), "float32"), x_("b", (), "float64"))


def test_verify_catches_wrong_shape():
    x = x_("x", (3,))
    bad = make_node("exp", (x,), (), (4,), "float64")
    with pytest.raises(ValueError, match="inference"):
        verify([x, bad])
    with pytest.raises(ValueError, match="before"):
        verify([B.fn("exp", x), x])


def test_printer_is_deterministic():
    def f(x):
        return symdl.sum(symdl.tanh(x) * x)
    a = str(symdl.trace(f, np.ones(3)))
    b = str(symdl.trace(f, np.ones(3)))
    assert a == b
    assert "tanh" in a and a.strip().endswith(a.strip().splitlines()[-1])


def test_graph_dot_and_call():
    g = symdl.trace(lambda x: symdl.exp(x) * 2.0, np.array([0.0, 1.0]))
    assert g.dot().startswith("digraph")
    (out,) = g(np.array([0.0, 1.0]))
    np.testing.assert_allclose(out, 2.0 * np.exp([0.0, 1.0]))
    g.verify()


# ---------------------------------------------------------------- simplify preserves values (hypothesis)

SHAPES = [(), (3,), (2, 3)]
UNARY = ["sin", "cos", "tanh", "atan"]


@st.composite
def random_graph(draw):
    """A raw (non-canonical) graph of elementwise arithmetic, functions,
    movement and reductions over three inputs."""
    inputs = [x_(f"in{k}", SHAPES[k]) for k in range(3)]
    pool = list(inputs)
    for _ in range(draw(st.integers(3, 14))):
        kind = draw(st.sampled_from(["add", "mul", "unary", "pos", "where", "sum", "bcast", "const"]))
        a = draw(st.sampled_from(pool))
        b = draw(st.sampled_from(pool))
        try:
            if kind == "add":
                coeffs = tuple(draw(st.sampled_from([-2.0, -1.0, 0.5, 1.0, 3.0])) for _ in range(2))
                node = raw("add", [a, b], coeffs=coeffs, const=draw(st.sampled_from([0.0, 1.0, -0.5])))
            elif kind == "mul":
                node = raw("mul", [a, b], exps=(draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([1, 2]))))
            elif kind == "pos":  # (2 + tanh a)^-k: a safe divisor
                base = raw("add", [raw("tanh", [a])], coeffs=(1.0,), const=2.0)
                node = raw("mul", [b, base], exps=(1, -draw(st.integers(1, 3))))
            elif kind == "unary":
                node = raw(draw(st.sampled_from(UNARY)), [a])
            elif kind == "where":
                node = raw("where", [raw("gt", [a, b]), a, b])
            elif kind == "sum":
                if a.ndim == 0:
                    continue
                node = raw("reduce_sum", [a], axes=(draw(st.integers(0, a.ndim - 1)),))
            elif kind == "bcast":
                node = raw("broadcast_to", [a], shape=(2, 3)) if a.shape in [(), (3,)] else a
            else:
                node = raw("mul", [a, B.const(draw(st.sampled_from([0.0, 1.0, 2.0])))], exps=(1, 1))
        except ShapeError:
            continue
        pool.append(node)
    return inputs, pool[-1]


@settings(max_examples=150, deadline=None)
@given(random_graph(), st.integers(0, 2**31 - 1))
def test_simplify_preserves_values(graph, seed):
    inputs, out = graph
    rng = np.random.default_rng(seed)
    bindings = {i: rng.uniform(-2, 2, i.shape) for i in inputs}
    (expected,) = interpret([out], bindings)
    (simplified,) = simplify([out])
    (actual,) = interpret([simplified], bindings)
    assert simplified.shape == out.shape and simplified.dtype == out.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)
    verify(Graph(inputs, [simplified]).nodes)


@settings(max_examples=60, deadline=None)
@given(random_graph(), st.integers(0, 2**31 - 1))
def test_canonical_form_is_idempotent(graph, seed):
    _, out = graph
    once = simplify([out])
    assert simplify(once) == once


def _construct(out):
    """``out`` rebuilt node by node through the builders (the constructors of
    sums and products canonicalise before anything is interned)."""
    from symdl.ir.rewrite import toposort
    new = {}
    for node in toposort([out]):
        new[node] = node if not node.inputs else B.emit(node.op, [new[i] for i in node.inputs], **dict(node.attrs))
    return new[out]


@settings(max_examples=150, deadline=None)
@given(random_graph(), st.integers(0, 2**31 - 1))
def test_construction_preserves_values_and_is_idempotent(graph, seed):
    inputs, out = graph
    rng = np.random.default_rng(seed)
    bindings = {i: rng.uniform(-2, 2, i.shape) for i in inputs}
    (expected,) = interpret([out], bindings)
    built = _construct(out)
    (actual,) = interpret([built], bindings)
    assert built.shape == out.shape and built.dtype == out.dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)
    assert _construct(built) is built
