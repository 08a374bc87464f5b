"""Band structure rules (symdl/simplify/structure.py): products with identity
patterns become diagonal segments scattered by ``take_add``.

References never go through the rules: numpy on the same formula, graphs
built under ``ieee_semantics`` (where the rules do not run) evaluated by the
interpreter, SymPy's Hessians, hand-derived Hessians; the compiled code is
compared with the interpreter, and the plan's loop sizes show O(N) work.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy

import symdl
from codegen import plan as P
from symdl.ir import build as B
from symdl.ir.interpret import interpret
from symdl.ir.ops.index import _take_add_impl  # noqa: F401  (the interpreter's scatter)
from symdl.ir.rewrite import ieee_semantics, toposort
from symdl.ir.shapes import ShapeError
from symdl.simplify.structure import band_of

from helpers import assert_compiled_matches_interpreter

RNG = np.random.default_rng(20261130)


def ops_of(node) -> set[str]:
    return {n.op for n in toposort([node])}


def build_both(make, *shapes, dtype="float64"):
    """``make(*inputs)`` built twice: with the rules (default) and raw, under
    ``ieee_semantics`` where only exact identities run (the reference)."""
    xs = [B.input_node(f"x{k}", s, dtype) for k, s in enumerate(shapes)]
    with ieee_semantics(True):
        raw = make(*xs)
    return xs, make(*xs), raw


def run(node, xs, values):
    return interpret([node], dict(zip(xs, values)))[0]


def band_mask(shape, offsets):
    i, j = np.indices(shape)
    return np.isin(j - i, offsets)


# ---------------------------------------------------------------- each rule on small graphs

def first(x, n):
    return B.slice_(x, [slice(0, n)])


def eye(n, m=None):
    e = B.eye(max(n, m or n))
    return e if m is None or m == n else B.slice_(e, [slice(0, n), slice(0, m)])


CASES = {
    # name: (make, input shapes, diagonals that may be non-zero)
    "vector times identity": (lambda x: B.mul(x, B.eye(6)), [(6,)], [0]),
    "column vector times identity": (lambda x: B.mul(B.reshape(x, (6, 1)), B.eye(6)), [(6,)], [0]),
    "shifted identity (slice)": (lambda x: B.mul(first(x, 5), B.slice_(B.eye(6), [slice(None), slice(1, 6)])),
                                 [(6,)], [-1]),
    "unslice of a band": (lambda x: B.unslice(B.mul(first(x, 5), eye(5)), (0, 1), (5, 6), (1, 1), (6, 6)),
                          [(6,)], [1]),
    "transpose of a band": (lambda x: B.transpose(B.mul(B.slice_(x, [slice(1, 6)]),
                                                        B.slice_(B.eye(6), [slice(None), slice(1, 6)])), (1, 0)),
                            [(6,)], [1]),
    "sum of shifted bands": (lambda x: B.add(
        B.scale(B.mul(x, B.eye(7)), 3.0),
        B.unslice(B.mul(B.slice_(x, [slice(0, 6)]), eye(6)), (0, 1), (6, 7), (1, 1), (7, 7)),
        B.unslice(B.mul(B.slice_(x, [slice(1, 7)]), eye(6)), (1, 0), (7, 6), (1, 1), (7, 7))), [(7,)], [-1, 0, 1]),
    "band times a dense expression of vectors": (lambda x, y: B.mul(B.mul(x, B.eye(5)),
                                                                    B.fn("sin", B.add(B.reshape(x, (5, 1)), y))),
                                                 [(5,), (5,)], [0]),
    "band times a contraction (gather)": (lambda x, y: B.mul(B.mul(x, B.eye(5)),
                                                             B.dot_general(B.reshape(x, (5, 1)), B.reshape(y, (1, 5)),
                                                                           ((1,), (0,)))),
                                          [(5,), (5,)], [0]),
    "band squared times band": (lambda x: B.mul(B.ipow(B.mul(x, B.eye(6)), 2), B.add(B.eye(6), B.fill(1.0, B.eye(6)))),
                                [(6,)], [0]),
    "non-square band": (lambda x: B.mul(x, eye(4, 7)), [(7,)], [0]),
    "band of a 1-row slice": (lambda x: B.slice_(B.mul(x, B.eye(6)), [slice(2, 3), slice(0, 6)]), [(6,)], [2]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_equals_the_raw_graph_on_random_inputs(name):
    make, shapes, offsets = CASES[name]
    xs, simplified, raw = build_both(make, *shapes)
    assert "take_add" not in ops_of(raw)
    for _ in range(3):
        values = [RNG.uniform(-2.0, 2.0, s) for s in shapes]
        got, want = run(simplified, xs, values), run(raw, xs, values)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)
        assert not np.any(got[~band_mask(got.shape, offsets)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_compiles_as_interpreted(name):
    make, shapes, _ = CASES[name]
    xs, simplified, _raw = build_both(make, *shapes)
    values = [[RNG.uniform(-2.0, 2.0, s) for s in shapes] for _ in range(2)]
    assert_compiled_matches_interpreter(xs, [simplified], values, what=name)


def test_sparse_products_become_a_scatter():
    x = B.input_node("x", (8,), "float64")
    h = B.mul(x, B.eye(8))
    assert h.op == "take_add" and h.attr("size") == (8, 8)
    band = band_of(h)
    assert [(s.offset, s.row, s.length) for s in band.segments] == [(0, 0, 8)]
    # the identity itself stays index arithmetic (cheaper than memory)
    assert B.eye(8).op == "convert"
    assert B.slice_(B.eye(8), [slice(None), slice(1, 8)]).op == "slice"


def test_inf_and_nan_on_the_band_propagate_and_off_band_is_exact_zero():
    """The documented real-algebra departure (docs/ieee.md): IEEE evaluation of
    ``x[j] * eye[i, j]`` is NaN wherever x[j] is inf or NaN, zeros of the
    identity included; the band holds the symbolic matrix, with exact zeros
    off its diagonals (numpy's np.diag builds the same matrix)."""
    make, shapes, offsets = CASES["sum of shifted bands"]
    xs, simplified, raw = build_both(make, *shapes)
    x = np.array([1.0, np.inf, -2.0, np.nan, 0.5, -np.inf, 3.0])
    with np.errstate(all="ignore"):
        got, ieee = run(simplified, xs, [x]), run(raw, xs, [x])
        want = 3.0 * np.diag(x) + np.diag(x[:-1], 1) + np.diag(x[1:], -1)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(ieee[~band_mask(got.shape, offsets)]).any()   # IEEE: NaN * 0 off the band


def test_ieee_true_keeps_the_dense_graph():
    def f(x):
        return np.sum(x[:-1] ** 2 * x[1:])
    x = np.array([1.0, np.inf, 2.0, 3.0])
    with np.errstate(all="ignore"):
        dense = symdl.hessian(f, ieee=True)(x)
        band = symdl.hessian(f)(x)
    assert np.isnan(dense[3, 0])          # inf * 0 from the one-hot basis
    assert band[3, 0] == 0.0
    finite = np.isfinite(dense)
    np.testing.assert_array_equal(band[finite], dense[finite])


def test_negative_powers_of_an_identity_are_not_bands():
    x = B.input_node("x", (4,), "float64")
    node = B.div(x, B.add(B.eye(4), B.fill(0.0, B.eye(4))))   # x / eye: inf off the diagonal
    assert band_of(node) is None and "take_add" not in ops_of(node)
    with np.errstate(all="ignore"):
        got = run(node, [x], [np.array([1.0, -2.0, 3.0, 4.0])])
    assert np.isinf(got[0, 1]) and got[1, 1] == -2.0


def test_dense_results_are_not_rewritten():
    x = B.input_node("x", (2,), "float64")
    corner = B.unslice(B.mul(B.slice_(x, [slice(0, 1)]), B.eye(1)), (0, 1), (1, 2), (1, 1), (2, 2))
    # two diagonals of a 2 x 2 matrix hold 3 of its 4 elements: not sparse enough
    node = B.add(B.mul(x, B.eye(2)), corner, B.transpose(B.mul(B.reshape(x, (2, 1)), B.eye(2)), (1, 0)))
    assert node.op == "add" and band_of(node) is not None
    got = run(node, [x], [np.array([2.0, 3.0])])
    np.testing.assert_array_equal(got, np.array([[4.0, 2.0], [0.0, 6.0]]))


# ---------------------------------------------------------------- take_add with a block size

def test_take_add_into_a_block_matches_numpy():
    g = B.input_node("g", (4,), "float64")
    idx = B.const(np.array([0, 5, 10, 5]), (4,), "int64")
    node = B.emit("take_add", (g, idx), axis=0, size=(3, 4))
    want = np.zeros(12)
    np.add.at(want, [0, 5, 10, 5], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(run(node, [g], [np.array([1.0, 2.0, 3.0, 4.0])]), want.reshape(3, 4))
    assert_compiled_matches_interpreter([g], [node], [[RNG.normal(size=4)]])


def test_take_add_block_errors_name_the_problem():
    g = B.input_node("g", (2,), "float64")
    idx = B.const(np.array([0, 1]), (2,), "int64")
    with pytest.raises(ShapeError, match="take_add: size must be a length or a tuple of lengths, got"):
        B.emit("take_add", (g, idx), axis=0, size=(3, -1))
    bad = B.emit("take_add", (g, B.const(np.array([0, 12]), (2,), "int64")), axis=0, size=(3, 4))
    with pytest.raises(IndexError, match="take_add: index out of range for a block of 12 elements"):
        run(bad, [g], [np.ones(2)])


def test_take_add_block_derivatives():
    """VJP (a gather of the flattened cotangent) and JVP of the block form,
    through a Hessian: d/dx sum(W * H(x)) against central differences."""
    w = RNG.normal(size=(5, 5))

    def loss(x):
        h = symdl.hessian(rosen)(x)
        return np.sum(h * w)

    x = RNG.uniform(-1.0, 1.0, 5)
    got = symdl.grad(loss)(x)
    want = np.array([(np.sum(rosen_hessian(x + e) * w) - np.sum(rosen_hessian(x - e) * w)) / 2e-6
                     for e in np.eye(5) * 1e-6])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- Hessians

def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_hessian(x):
    """Hand-derived tridiagonal Hessian."""
    n = x.size
    h = np.zeros((n, n))
    i = np.arange(n - 1)
    h[i, i] += 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    h[i + 1, i + 1] += 200.0
    h[i, i + 1] = h[i + 1, i] = -400.0 * x[:-1]
    return h


def chain(x):          # pentadiagonal: products of neighbours two apart
    return np.sum(x[:-2] * x[1:-1] * x[2:]) + np.sum(np.sin(x[2:] - x[:-2]))


def separable(x):      # diagonal
    return np.sum(np.exp(x) * x ** 2)


def quartic(x):        # tridiagonal with a symmetric difference
    return np.sum((x[1:] - x[:-1]) ** 4) + 0.5 * np.sum(x ** 2)


def strided(x):       # steps of 2: slices the rules leave dense (still exact)
    return np.sum(x[::2] ** 2 * np.cos(x[::2])) + np.sum(x[1::2] * x[:-1:2] ** 3 if x.size > 1 else x)


FUNCTIONS = {"rosen": rosen, "chain": chain, "separable": separable, "quartic": quartic}
ALL_FUNCTIONS = {**FUNCTIONS, "strided": strided}


def sympy_hessian(fun, x):
    n = x.size
    s = sympy.symbols(f"x0:{n}")
    y = np.array(s, dtype=object)
    expr = fun_sympy(fun, y)
    h = sympy.hessian(expr, s)
    return np.array(sympy.lambdify(s, h, "numpy")(*x), dtype=np.float64).reshape(n, n)


def fun_sympy(fun, y):
    zero = sympy.S.Zero  # the sum of no terms (N = 1) is still a SymPy expression
    if fun is rosen:
        return sum(100 * (y[1:] - y[:-1] ** 2) ** 2 + (1 - y[:-1]) ** 2) + zero
    if fun is chain:
        return sum(y[:-2] * y[1:-1] * y[2:]) + sum((sympy.sin(a) for a in (y[2:] - y[:-2])), zero)
    if fun is separable:
        return sum((sympy.exp(a) * a ** 2 for a in y), zero)
    if fun is strided:
        tail = sum(y[1::2] * y[:-1:2] ** 3) if y.size > 1 else sum(y)
        return sum((a ** 2 * sympy.cos(a) for a in y[::2]), zero) + tail
    return sum((y[1:] - y[:-1]) ** 4) + sympy.Rational(1, 2) * sum(y ** 2) + zero


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11])
@pytest.mark.parametrize("name", sorted(ALL_FUNCTIONS))
def test_hessian_matches_sympy(name, n):
    fun = ALL_FUNCTIONS[name]
    x = RNG.uniform(-1.5, 1.5, n)
    got = symdl.hessian(fun)(x)
    np.testing.assert_allclose(got, sympy_hessian(fun, x), rtol=1e-12, atol=1e-10)


def test_rosenbrock_hessian_n200_matches_the_hand_derived_one():
    x = RNG.uniform(-2.0, 2.0, 200)
    np.testing.assert_allclose(symdl.hessian(rosen)(x), rosen_hessian(x), rtol=1e-13, atol=1e-10)
    x32 = x.astype(np.float32)
    got32 = symdl.hessian(rosen)(x32)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, rosen_hessian(x32.astype(np.float64)), rtol=1e-4, atol=1e-2)


def test_separable_hessian_n200_is_diagonal_exp_formula():
    x = RNG.uniform(-1.0, 1.0, 200)
    want = np.diag(np.exp(x) * (x ** 2 + 4 * x + 2))
    np.testing.assert_allclose(symdl.hessian(separable)(x), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_hessian_compiled_equals_interpreted(name):
    x = RNG.uniform(-1.0, 1.0, 12)
    g = symdl.trace(symdl.hessian(FUNCTIONS[name]), x)
    assert "take_add" in {n.op for n in g}
    assert_compiled_matches_interpreter(g.inputs, g.outputs, [[x], [RNG.uniform(-3.0, 3.0, 12)]], what=name)


# ---------------------------------------------------------------- O(N) work, from the kernel plan

def plan_work(fun, n):
    """(elements computed by loops and scatter operands, elements zero-filled)."""
    g = symdl.trace(symdl.hessian(fun), np.ones(n))
    plan = P.make_plan(list(g.inputs), list(g.outputs))
    work = fill = 0
    for k in plan.kernels:
        if isinstance(k, P.LoopKernel):
            work += int(np.prod(k.shape))
        else:
            assert k.node.op == "take_add", k.node.op
            work += k.node.inputs[0].size
            fill += k.node.size
    return work, fill


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_hessian_loop_work_is_linear_in_n(name):
    fun = FUNCTIONS[name]
    small, big = plan_work(fun, 100), plan_work(fun, 400)
    assert big[1] == 400 * 400                       # the zero fill of the dense result, once
    assert big[0] <= 20 * 400                        # everything else: O(N) (about 5N here)
    assert big[0] <= 4.2 * small[0]                  # N x 4 -> work x 4, not x 16


def test_band_hessian_saves_and_loads(tmp_path):
    """The block form of take_add (size a tuple) survives the graph's JSON."""
    x = RNG.uniform(-2.0, 2.0, 30)
    compiled = symdl.compile(symdl.hessian(rosen), x)
    compiled.save(tmp_path / "hessian.symdl")
    loaded = symdl.load(tmp_path / "hessian.symdl")
    np.testing.assert_allclose(np.asarray(loaded(x)), rosen_hessian(x), rtol=1e-13, atol=1e-10)


def test_band_hessian_forward_mode_and_vmap():
    """JVP (take_add of the tangent, same block) and batching (the block
    moves one axis in) of the band form."""
    x, v = RNG.uniform(-1.0, 1.0, 7), RNG.normal(size=7)
    value, tangent = symdl.jvp(symdl.hessian(rosen), (x,), (v,))
    eps = 1e-6
    want = (rosen_hessian(x + eps * v) - rosen_hessian(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(value), rosen_hessian(x), rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(np.asarray(tangent), want, rtol=1e-6, atol=1e-6)
    xs = RNG.uniform(-1.0, 1.0, (3, 7))
    got = np.asarray(symdl.vmap(symdl.hessian(rosen))(xs))
    np.testing.assert_allclose(got, np.stack([rosen_hessian(r) for r in xs]), rtol=1e-13, atol=1e-10)


def test_constant_matrices_with_few_diagonals_are_bands():
    x = B.input_node("x", (6,), "float64")
    tri = np.diag(np.arange(1.0, 7.0)) + np.diag(np.full(5, -2.0), 1)
    node = B.mul(x, B.const(tri))
    assert node.op == "take_add"
    values = RNG.uniform(-2.0, 2.0, 6)
    np.testing.assert_array_equal(run(node, [x], [values]), values * tri)
    dense = RNG.normal(size=(6, 6))
    assert band_of(B.const(dense)) is None
    assert B.mul(x, B.const(dense)).op == "mul"
