"""The ``contract`` pass (symdl/simplify/contract.py): sums of products in
tangent-batched graphs summed as contractions, contractions with slices of
``eye`` as movement, products with zero padding over their box.

References never go through the pass: the interpreter on the graph before
it, numpy on the same formula, central differences of ``symdl.grad`` (whose
graph has no identity pattern) and ``ieee=True`` Hessians (where the pass
does not run); compiled code is compared with the interpreter.  Each rule is
also shown not to fire on near-miss patterns.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import symdl
from codegen import plan as P
from symdl.ir import build as B
from symdl.ir.interpret import interpret
from symdl.ir.rewrite import toposort
from symdl.simplify import contract as C

from helpers import assert_compiled_matches_interpreter

RNG = np.random.default_rng(20261201)


def inputs(*shapes):
    return [B.input_node(f"x{k}", s, "float64") for k, s in enumerate(shapes)]


def values_for(xs):
    return [RNG.standard_normal(x.shape) for x in xs]


def same_values(a, b, xs, rtol=1e-12, atol=1e-13):
    vals = values_for(xs)
    got, want = (interpret([n], dict(zip(xs, vals)))[0] for n in (a, b))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def eye_cols(n, lo, hi):
    """``eye(n)[:, lo:hi]``: the tangent of a slice of the parameters."""
    return B.slice_(B.eye(n), [slice(None), slice(lo, hi)])


def ops_of(*nodes) -> set[str]:
    return {n.op for n in toposort(list(nodes))}


# ---------------------------------------------------------------- touches_basis (the gate)

def test_only_graphs_computed_from_eye_are_touched():
    (x,) = inputs((4, 5))
    assert not C.touches_basis(B.fn("sin", x))
    assert C.touches_basis(B.mul(B.fn("sin", x), B.slice_(B.eye(5), [slice(0, 4)])))
    # a dense product summed over an axis: left alone without eye
    y = B.reduce_sum(B.mul(B.reshape(x, (4, 5, 1)), B.reshape(B.fn("cos", x), (4, 1, 5))), [0])
    assert C.sum_of_products(y) is None


# ---------------------------------------------------------------- sum_of_products

def test_factor_independent_of_the_summed_axis_is_pulled_out():
    m, = inputs((6, 4))                               # m[n, j]
    e = eye_cols(9, 2, 6)                             # e[k, j]
    node = B.reduce_sum(B.mul(B.reshape(e, (9, 1, 4)), B.reshape(m, (1, 6, 4))), [1])   # sum_n e[k,j] m[n,j]
    new = C.sum_of_products(node)
    assert new is not None and new.shape == node.shape
    assert not any(n.ndim == 3 for n in toposort([new]))      # no (9, 6, 4) product
    same_values(new, node, [m])


def test_sum_inside_a_sum_of_products_is_distributed_and_contracted():
    g, w, r = inputs((6, 4), (4,), (9, 6))            # g[n,j], w[j], r[k,n]
    e = eye_cols(9, 0, 4)
    inner = B.add(B.reshape(e, (9, 1, 4)), B.mul(B.reshape(r, (9, 6, 1)), w))      # (9, 6, 4)
    node = B.reduce_sum(B.mul(g, inner), [1])                                      # sum over n
    new = C.sum_of_products(node)
    assert new is not None
    assert "dot_general" in ops_of(new)                 # sum_n r[k,n] g[n,j] is a contraction
    assert not any(n.ndim == 3 for n in toposort([new]))
    same_values(new, node, [g, w, r])


def test_dense_sum_is_not_distributed():
    """Terms of a sum that are as large as the sum stay one sum."""
    a, b, g = inputs((9, 6, 4), (9, 6, 4), (6, 4))
    e = B.reshape(eye_cols(9, 0, 4), (9, 1, 4))
    node = B.reduce_sum(B.mul(g, B.add(B.mul(a, e), b)), [1])
    new = C.sum_of_products(node)
    if new is not None:
        same_values(new, node, [a, b, g])
        # no product was split into one reduction per dense term
        assert sum(n.op == "reduce_sum" for n in toposort([new])) <= 1


def test_plain_reduction_of_one_factor_is_left_alone():
    (x,) = inputs((9, 4))
    node = B.reduce_sum(B.mul(B.fn("sin", x), eye_cols(9, 0, 4)), [0])
    assert C.sum_of_products(B.reduce_sum(B.fn("sin", B.add(x, eye_cols(9, 0, 4))), [0])) is None
    got = C.sum_of_products(node)
    if got is not None:
        same_values(got, node, [x])


def test_contraction_of_a_sum_of_products():
    x, g, w = inputs((6, 2), (6, 4), (4,))            # dot_general(X, g * (E + w)) over n
    e = B.reshape(eye_cols(9, 4, 8), (9, 1, 4))
    t = B.mul(g, B.add(e, B.mul(B.broadcast_to(w, (9, 6, 4)), B.const(2.0))))
    node = B.dot_general(x, t, ((0,), (1,)))
    new = C.contraction_of_products(node)
    assert new is not None and new.shape == node.shape == (2, 9, 4)
    same_values(new, node, [x, g, w])


def test_plain_contraction_is_left_alone():
    a, b = inputs((5, 3), (3, 4))
    e = eye_cols(3, 0, 3)
    node = B.dot_general(B.add(a, B.const(0.5)), B.mul(b, B.fn("exp", b)), ((1,), (0,)))
    assert C.contraction_of_products(node) is None       # no eye
    node = B.dot_general(a, B.fn("sin", B.add(e, B.slice_(b, [slice(None), slice(0, 3)]))),
                         ((1,), (0,)))
    assert C.contraction_of_products(node) is None       # eye only inside a function


# ---------------------------------------------------------------- contraction_with_identity

@pytest.mark.parametrize("e_first", [True, False])
@pytest.mark.parametrize("e_axis", [0, 1])
@pytest.mark.parametrize("cols", [(0, 16), (5, 9), (12, 16)])
def test_contraction_with_a_slice_of_eye_is_movement(e_first, e_axis, cols):
    lo, hi = cols
    e = eye_cols(16, lo, hi)                          # (16, hi - lo): ones at (lo + t, t)
    (m,) = inputs((e.shape[e_axis], 3))
    node = B.dot_general(e, m, ((e_axis,), (0,))) if e_first else B.dot_general(m, e, ((0,), (e_axis,)))
    new = C.contraction_with_identity(node)
    assert new is not None and "dot_general" not in ops_of(new)
    same_values(new, node, [m], rtol=0, atol=0)
    et = B.transpose(e, (1, 0))                       # the transposed pattern too
    node = B.dot_general(et, m, ((1 - e_axis,), (0,)))
    new = C.contraction_with_identity(node)
    assert new is not None and "dot_general" not in ops_of(new)
    same_values(new, node, [m], rtol=0, atol=0)


def test_contraction_with_scaled_or_two_diagonal_pattern_is_not_movement():
    (m,) = inputs((6, 3))
    twice = B.scale(B.eye(6), 2.0)
    assert C.contraction_with_identity(B.dot_general(twice, m, ((1,), (0,)))) is None
    two = B.add(B.eye(6), B.unslice(B.eye(5), (0, 1), (5, 6), (1, 1), (6, 6)))
    assert C.contraction_with_identity(B.dot_general(two, m, ((1,), (0,)))) is None
    (x,) = inputs((6, 6))
    assert C.contraction_with_identity(B.dot_general(x, m, ((1,), (0,)))) is None


# ---------------------------------------------------------------- small_contraction and slice_of_split

def test_two_element_contraction_against_eye_is_two_products():
    (x,) = inputs((7, 2))
    t = B.reshape(eye_cols(40, 0, 32), (40, 2, 16))
    node = B.dot_general(x, t, ((1,), (1,)))          # (7, 40, 16)
    new = C.small_contraction(node)
    assert new is not None and "dot_general" not in ops_of(new)
    same_values(new, node, [x], rtol=0, atol=0)


def test_larger_or_eye_free_contractions_are_not_unrolled():
    x, y = inputs((7, 5), (5, 3))
    t = B.reshape(eye_cols(40, 0, 40), (40, 5, 8))
    assert C.small_contraction(B.dot_general(x, t, ((1,), (1,)))) is None      # 5 > 4 elements
    assert C.small_contraction(B.dot_general(x, y, ((1,), (0,)))) is None      # no eye
    a, b = inputs((7, 2), (2, 3))
    assert C.small_contraction(B.dot_general(a, b, ((1,), (0,)))) is None


def test_slice_of_a_split_axis_is_a_slice_of_the_axis():
    t = B.reshape(eye_cols(12, 0, 12), (12, 3, 4))
    node = B.slice_(t, [slice(None), slice(1, 2), slice(None)])
    new = C.slice_of_split(node)
    assert new is not None and new.op == "reshape" and new.inputs[0].op == "slice"
    same_values(new, node, [], rtol=0, atol=0)
    # near misses: the inner axis not whole, a step
    assert C.slice_of_split(B.slice_(t, [slice(None), slice(1, 2), slice(0, 3)])) is None
    assert C.slice_of_split(B.slice_(t, [slice(None), slice(0, 3, 2), slice(None)])) is None


# ---------------------------------------------------------------- zero padding

def test_product_with_an_unslice_is_computed_on_its_box():
    a, b = inputs((3, 4), (7, 6))
    dense = B.add(a, B.slice_(B.eye(4), [slice(0, 3)]))      # from eye, not a band
    u = B.unslice(dense, (2, 1), (5, 5), (1, 1), (7, 6))
    node = B.mul(u, B.fn("sin", b))
    assert node.op == "mul"
    new = C.product_with_zero_padding(node)
    assert new is not None and new.op == "unslice"
    same_values(new, node, [a, b])
    # near misses: a negative power of the unslice, a strided unslice
    assert C.product_with_zero_padding(B.emit("mul", (u, b), exps=(-1, 1))) is None
    strided = B.unslice(dense, (0, 0), (6, 8), (2, 2), (7, 8))
    assert C.product_with_zero_padding(B.mul(strided, B.fn("sin", inputs((7, 8))[0]))) is None


@pytest.mark.parametrize("where", ["free", "contracted", "batch"])
@pytest.mark.parametrize("first", [True, False])
def test_contraction_with_an_unslice_is_computed_on_its_box(where, first):
    e = B.slice_(B.eye(4), [slice(0, 3)])
    (a,) = inputs((3, 4))
    inner = B.add(a, e)                                # (3, 4), from eye (dense)
    if where == "free":
        u = B.unslice(inner, (2, 0), (5, 4), (1, 1), (8, 4))        # rows 2..4 of 8 (free)
        (m,) = inputs((4, 5))
        cu, cm, bu, bm = (1,), (0,), (), ()
    elif where == "contracted":
        u = B.unslice(inner, (0, 3), (3, 7), (1, 1), (3, 9))         # columns 3..6 of 9 (contracted)
        (m,) = inputs((9, 5))
        cu, cm, bu, bm = (1,), (0,), (), ()
    else:
        u = B.unslice(inner, (1, 0), (4, 4), (1, 1), (6, 4))         # batch axis 0: 1..3 of 6
        (m,) = inputs((6, 4, 5))
        cu, cm, bu, bm = (1,), (1,), (0,), (0,)
    node = B.dot_general(u, m, (cu, cm), (bu, bm)) if first else B.dot_general(m, u, (cm, cu), (bm, bu))
    new = C.contraction_with_zero_padding(node)
    assert new is not None and new.shape == node.shape
    same_values(new, node, [a, m])


def test_sum_of_bands_is_one_scatter():
    x, y, d = inputs((4,), (4,), (9, 4))
    b1 = B.mul(eye_cols(9, 0, 4), x)
    b2 = B.mul(eye_cols(9, 4, 8), B.fn("exp", y))
    assert b1.op == "take_add" and b2.op == "take_add"
    node = B.add(b1, b2, d)
    new = C.sum_of_bands(node)
    assert new is not None
    assert sum(n.op == "take_add" for n in toposort([new])) == 1
    same_values(new, node, [x, y, d])
    assert C.sum_of_bands(B.add(b1, d)) is None          # one band: nothing to merge


# ---------------------------------------------------------------- the pass on whole Hessians

def make_mlp(n_in, n_hidden, act):
    a = n_in * n_hidden

    def loss(p, X, Y):
        W1 = p[0:a].reshape(n_in, n_hidden)
        b1 = p[a:a + n_hidden]
        W2 = p[a + n_hidden:a + 2 * n_hidden].reshape(n_hidden, 1)
        b2 = p[a + 2 * n_hidden]
        h = act(X @ W1 + b1)
        out = (h @ W2).reshape(X.shape[0]) + b2
        return np.mean((out - Y) ** 2)
    return loss, a + 2 * n_hidden + 1


MLPS = {
    "2-16-1 tanh, 64 samples": (2, 16, 64, np.tanh),
    "3-5-1 tanh, 7 samples": (3, 5, 7, np.tanh),
    "1-4-1 sin, 3 samples": (1, 4, 3, np.sin),
    "4-3-1 exp, 5 samples": (4, 3, 5, np.exp),
}


def traced_hessian(loss, args, monkeypatch, contract=True, always=False):
    """The Hessian's graph as compiled, with or without the contract pass
    (``always``: kept even where it would not be, to test its rules)."""
    S = importlib.import_module("symdl.simplify")   # (symdl.simplify the name is the function)
    if not contract:
        monkeypatch.setattr(S, "DEFAULT_PASSES", tuple(s for s in S.DEFAULT_PASSES if s != "contract"))
    if always:
        monkeypatch.setattr(S, "CONTRACT_GAIN", float("inf"))
    g = symdl.trace(symdl.hessian(loss), *args)
    return list(g.inputs), list(g.outputs)


def mlp_case(name):
    n_in, n_hidden, n, act = MLPS[name]
    loss, n_params = make_mlp(n_in, n_hidden, act)
    X = RNG.standard_normal((n, n_in))
    Y = np.sin(X[:, 0])
    p = 0.5 * RNG.standard_normal(n_params)
    return loss, p, X, Y


def fd_hessian(loss, p, X, Y, eps=1e-5):
    g = symdl.grad(loss)
    return np.array([(g(p + eps * e, X, Y) - g(p - eps * e, X, Y)) / (2 * eps) for e in np.eye(p.size)])


@pytest.mark.parametrize("name", sorted(MLPS))
def test_mlp_hessian_against_ieee_and_central_differences(name):
    loss, p, X, Y = mlp_case(name)
    H = symdl.hessian(loss)(p, X, Y)
    ref = symdl.hessian(loss, ieee=True)(p, X, Y)            # the pass does not run under ieee=True
    np.testing.assert_allclose(H, ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(H, fd_hessian(loss, p, X, Y), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(H, H.T, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(MLPS))
def test_mlp_hessian_pass_keeps_values_and_compiles_as_interpreted(name, monkeypatch):
    loss, p, X, Y = mlp_case(name)
    values = [p, X, Y]
    ins, after = traced_hessian(loss, values, monkeypatch, always=True)
    raw_ins, before = traced_hessian(loss, values, monkeypatch, contract=False)
    assert [o.op for o in after] != [o.op for o in before]       # the pass changed the graph
    want = interpret(before, dict(zip(raw_ins, values)))
    got = interpret(after, dict(zip(ins, values)))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12)
    other = [0.5 * RNG.standard_normal(p.size), RNG.standard_normal(X.shape), RNG.standard_normal(Y.shape)]
    assert_compiled_matches_interpreter(ins, after, [values, other], rtol=1e-11, atol=1e-12, what=name)


def test_mlp_hessian_builds_no_tangent_sized_arrays(monkeypatch):
    """The plan of the 2-16-1 Hessian: no loop over K x samples x hidden
    (65 x 64 x 16) elements, the work the pass removes."""
    loss, p, X, Y = mlp_case("2-16-1 tanh, 64 samples")
    plan = P.make_plan(*traced_hessian(loss, (p, X, Y), monkeypatch))
    biggest = max(int(np.prod(k.shape)) if isinstance(k, P.LoopKernel) else k.node.size for k in plan.kernels)
    assert biggest < 65 * 64 * 2, biggest
    raw = P.make_plan(*traced_hessian(loss, (p, X, Y), monkeypatch, contract=False))
    assert max(int(np.prod(k.shape)) for k in raw.kernels if isinstance(k, P.LoopKernel)) >= 65 * 64 * 16


def test_jacobian_of_a_layer_against_numpy():
    """Jacobians batch over eye too: d(tanh(W x))/dW, blocks of eye."""
    W = RNG.standard_normal((3, 4))
    x = RNG.standard_normal(4)
    J = symdl.jacobian(lambda W: np.tanh(W @ x))(W)
    d = 1 - np.tanh(W @ x) ** 2
    want = np.einsum("i,ij,k->ijk", d, np.eye(3), x)
    np.testing.assert_allclose(J, want, rtol=1e-13, atol=1e-14)


def test_nan_in_the_data_reaches_every_entry_that_depends_on_it():
    """Real algebra drops products with exact zeros of eye (as a symbolic
    Hessian has them), never a value the Hessian depends on: with a NaN
    target, every entry that changes with that target is NaN, and the
    finite entries are the Hessian's (some entries that do not depend on
    the target may still meet ``0 * NaN``, as all do under ``ieee=True``)."""
    loss, p, X, Y = mlp_case("3-5-1 tanh, 7 samples")
    h = symdl.hessian(loss)
    Ys = [Y.copy() for _ in range(3)]
    Ys[0][2], Ys[1][2], Ys[2][2] = np.nan, 0.0, 5.0
    H, H0, H5 = (h(p, X, y) for y in Ys)
    depends = H0 != H5
    assert depends.any() and (~depends).any()
    assert np.isnan(H[depends]).all()
    finite = ~np.isnan(H)
    assert finite.any()
    np.testing.assert_allclose(H[finite], H0[finite], rtol=1e-13, atol=1e-14)
    ref = symdl.hessian(loss, ieee=True)(p, X, Ys[0])
    assert np.isnan(ref[depends]).all()


def test_sum_of_blocks_tiling_one_axis_is_a_concatenation():
    a, b = inputs((5, 3), (5, 2))
    e = B.slice_(B.eye(5), [slice(None), slice(0, 3)])
    ua = B.unslice(B.add(a, e), (0, 0), (5, 3), (1, 1), (5, 8))          # columns 0..2
    ub = B.unslice(B.fn("sin", b), (0, 5), (5, 7), (1, 1), (5, 8))       # columns 5..6; 3, 4, 7 are zero
    node = B.add(ua, ub)
    new = C.sum_of_blocks(node)
    assert new is not None and new.op == "concatenate"
    same_values(new, node, [a, b], rtol=0, atol=0)
    # near misses: overlapping blocks add, a coefficient, blocks along two axes
    uc = B.unslice(B.fn("sin", b), (0, 2), (5, 4), (1, 1), (5, 8))
    assert C.sum_of_blocks(B.add(ua, uc)) is None
    assert C.sum_of_blocks(B.linear([(ua, 1.0), (ub, 2.0)])) is None
    ud = B.unslice(B.slice_(B.fn("sin", b), [slice(0, 3)]), (2, 5), (5, 7), (1, 1), (5, 8))
    assert C.sum_of_blocks(B.add(ua, ud)) is None


def test_contract_pass_is_kept_only_where_it_saves_work(monkeypatch):
    """Small tangents (a 3-5-1 MLP on 7 samples) or a deep net: the pass
    would add kernels for little work saved, so the graph stays dense (the
    same graph as without the pass); the 2-16-1 on 64 samples keeps it."""
    S = importlib.import_module("symdl.simplify")
    passes = S.DEFAULT_PASSES
    for name, kept in (("3-5-1 tanh, 7 samples", False), ("2-16-1 tanh, 64 samples", True)):
        loss, p, X, Y = mlp_case(name)
        _, with_pass = traced_hessian(loss, (p, X, Y), monkeypatch)
        _, without = traced_hessian(loss, (p, X, Y), monkeypatch, contract=False)
        monkeypatch.setattr(S, "DEFAULT_PASSES", passes)
        assert (with_pass != without) == kept, name
        assert (S._cost(with_pass) <= S.CONTRACT_GAIN * S._cost(without)) == kept
