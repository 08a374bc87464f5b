"""Fused epilogues: an elementwise loop over a contraction's result (a
layer's bias and activation) runs inside the generated gemm, block by block
as the blocks of the product become final (codegen/plan.py ``_epilogues``,
codegen/lower/gemm.py, ``Emitter.epilogue_function``).

References: numpy in float64 (rounding bound of any summation order) for
plain values; exact integer-valued sums (``tests/test_sum_overflow.py``'s
``exact_sum``) where the product's sums overflow on the way and the rule of
docs/ieee.md decides the value the epilogue must see; the interpreter.
"""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from codegen.decompose import decompose
from codegen.lower.gemm import blocking
from codegen.plan import LoopKernel, OpKernel, make_plan
from symdl import dlarray, dlfeval
from tests.test_sum_overflow import _big, _exact_matmul


@pytest.fixture
def generated(monkeypatch):
    """The generated kernel for every contraction (no BLAS, no loop nests)."""
    monkeypatch.setenv("SYMDL_BLAS", "0")
    monkeypatch.setenv("SYMDL_GEMM", "always")


def _plan(fun, *args):
    program = symdl.trace(fun, *args)
    return make_plan(list(program.inputs), decompose(list(program.outputs)))


def _fused(fun, *args, ieee: bool = False) -> bool:
    """Whether the compiled code runs an epilogue inside the gemm (the
    unoptimised IR defines an epilogue function; optimisation inlines it)."""
    from codegen.compiler import Build, run_passes
    program = symdl.trace(fun, *args)
    build = Build(list(program.inputs), decompose(list(program.outputs)), "f", ieee=ieee)
    return '_epilogue0"' in run_passes(build, "emit").ir


def _epilogues(plan) -> list[LoopKernel]:
    return [k.epilogue for k in plan.kernels if isinstance(k, OpKernel) and k.epilogue is not None]


def _computed_ops(plan, loop: LoopKernel) -> set[str]:
    """The ops a loop kernel computes: its members and the producer cones
    inlined into them."""
    ops, stack, seen = set(), list(loop.members), set()
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        ops.add(n.op)
        stack.extend(i for i in n.inputs if i in plan.inlined)
    return ops


def _bound(a, b, dtype):
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a.shape[-1] + 2) * np.finfo(dtype).eps * (np.abs(a64) @ np.abs(b64))


def _layer(w, b, x):
    return symdl.tanh(symdl.relu(w @ x + b[:, None]) * 2.0 - 1.0)


def _layer_ref(w, b, x):
    return np.tanh(np.maximum(w.astype(np.float64) @ x + b[:, None], 0) * 2.0 - 1.0)


# (M, K, N): one block; K over KC (the epilogue only after the last block of
# K); M over MC (several row blocks); N below NR with M above it (the gemm
# computes C.T: rows of its C are the result's columns); N over NC for
# float32 (several column blocks); fewer rows than a register tile (the
# gemm's writes and the epilogue's reads of C must stay ordered: C is not
# noalias); vectors; edge tiles everywhere
SHAPES = [(32, 16, 48), (13, 300, 37), (200, 24, 40), (130, 20, 5), (9, 40, 2100), (3, 20, 12), (2, 9, 1),
          (1, 5, 33)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_a_layer_runs_as_one_product_with_its_activation(generated, dtype, shape):
    m, k, n = shape
    rng = np.random.default_rng(m + k + n)
    w, x = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    plan = _plan(_layer, w, b, x)
    (epi,) = _epilogues(plan)
    assert not any(isinstance(kk, LoopKernel) for kk in plan.kernels), plan.describe()
    assert {"tanh", "maximum", "add"} <= _computed_ops(plan, epi)
    assert _fused(_layer, w, b, x)          # the gemm calls it, it does not run after the product
    got = np.asarray(symdl.compile(_layer, w, b, x)(w, b, x))
    assert got.dtype == np.dtype(dtype)
    # tanh is 1-Lipschitz and relu too: the product's rounding bound, doubled, plus tanh's own rounding
    tol = 2 * _bound(w, x, dtype) + 4 * np.finfo(dtype).eps
    assert np.all(np.abs(got - _layer_ref(w, b, x)) <= tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_free_axes_that_collapse_and_a_flat_epilogue(generated, dtype):
    # A's free axes (2, 3) collapse into M = 6 and B's (4, 5) into N = 20:
    # the epilogue unflattens the gemm's rows and columns into four axes (a
    # loop with a broadcast read), or walks flat memory (plain elementwise)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((2, 3, 7)).astype(dtype)
    bb = rng.standard_normal((7, 4, 5)).astype(dtype)
    c = rng.standard_normal((3, 1, 5)).astype(dtype)
    import symdl.numpy as snp

    def broadcast(a, bb, c):
        return symdl.sigmoid(snp.tensordot(a, bb, 1) + c)

    def flat(a, bb):
        return snp.tensordot(a, bb, 1) * 3.0 + 1.0
    p = np.einsum("ijk,klm->ijlm", a.astype(np.float64), bb.astype(np.float64))
    bound = 9 * np.finfo(dtype).eps * np.einsum("ijk,klm->ijlm", np.abs(a), np.abs(bb)).astype(np.float64)
    for fun, args, ref, tol in ((broadcast, (a, bb, c), 1 / (1 + np.exp(-(p + c))), bound + 4 * np.finfo(dtype).eps),
                                (flat, (a, bb), p * 3 + 1, 3 * bound + 4 * np.finfo(dtype).eps)):
        assert len(_epilogues(_plan(fun, *args))) == 1
        assert _fused(fun, *args)
        got = np.asarray(symdl.compile(fun, *args)(*args))
        assert got.shape == (2, 3, 4, 5) and got.dtype == np.dtype(dtype)
        assert np.all(np.abs(got - ref) <= tol), fun.__name__


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(40, 70, 33), (40, 70, 3), (12, 300, 20)])
def test_the_epilogue_sees_the_overflow_safe_sums(generated, dtype, shape):
    # partial sums overflow while the exact sum is finite: the rule of
    # docs/ieee.md gives the finite sum; a fused epilogue first saw the
    # unfixed value (inf or NaN) and must run again on the fixed one
    m, k, n = shape
    rng = np.random.default_rng(m + k)
    big = _big(dtype)
    a = (rng.integers(-2, 3, (m, k)) * big).astype(dtype)
    b = rng.integers(1, 3, (k, n)).astype(dtype)
    b[:8] = 2
    a[0] = 0.0
    a[0, :4] = 48 * big                     # partial sums overflow
    a[0, 4:6] = -48 * big                   # the exact sum is finite
    a[m - 1, :2] = [np.inf, -np.inf]        # NaN by the rule
    a[1] = 0.0
    a[1, :5] = 64 * big                     # overflows truly
    scale = np.asarray(0.5, dtype)

    def f(x, y):
        return symdl.relu(x @ y) * 0.5
    with np.errstate(all="ignore"):
        want = np.maximum(_exact_matmul(a, b, dtype).astype(dtype), 0) * scale
    assert len(_epilogues(_plan(f, a, b))) == 1
    compiled = symdl.compile(f, a, b)
    assert _fused(f, a, b)
    interpreted = symdl.extractdata(dlfeval(f, dlarray(a), dlarray(b)))
    for got in (np.asarray(compiled(a, b)), interpreted):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
    # and a call with finite sums after one that needed the fix
    a2, b2 = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    got = np.asarray(compiled(a2, b2))
    ref = np.maximum(a2.astype(np.float64) @ b2, 0) * 0.5
    assert np.all(np.abs(got - ref) <= _bound(a2, b2, dtype))


def test_reads_through_a_view_of_the_product_are_not_fused(generated):
    # D + D.T reads the product at mirrored indices: elements of blocks that
    # are not final yet, so that loop must run after the whole product
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 30)), rng.standard_normal((30, 40))

    def f(x, y):
        d = x @ y
        return symdl.tanh(d) + d.T
    assert _epilogues(_plan(f, x, y)) == []
    d = x @ y
    np.testing.assert_allclose(np.asarray(symdl.compile(f, x, y)(x, y)), np.tanh(d) + d.T, rtol=1e-12, atol=1e-12)


def test_a_loop_that_needs_a_later_kernel_is_not_fused(generated):
    # h * sum(h): the loop reads a reduction of the whole product, which
    # exists only after the product is complete
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((24, 16)), rng.standard_normal((16, 32))

    def f(x, y):
        h = x @ y
        return h * symdl.sum(h * h)
    plan = _plan(f, x, y)
    assert all("mul" not in _computed_ops(plan, e) for e in _epilogues(plan))
    h = x @ y
    np.testing.assert_allclose(np.asarray(symdl.compile(f, x, y)(x, y)), h * np.sum(h * h), rtol=1e-12)


@pytest.mark.parametrize("setting", ["blas", "ieee", "loop-nest", "batched"])
def test_where_the_product_cannot_fuse_the_loop_runs_after_it(monkeypatch, setting):
    # the planner attaches the loop to the product; BLAS, the ieee=True loop
    # nest, small products and batched products (several gemm calls) run it
    # after the product instead, with the same result
    from codegen import blas
    rng = np.random.default_rng(6)
    m, k, n = (130, 140, 150) if setting == "blas" else (20, 30, 40)
    w, x, b = rng.standard_normal((m, k)), rng.standard_normal((k, n)), rng.standard_normal(m)
    kwargs = {}
    if setting == "blas":
        if blas.library() is None:
            pytest.skip("no BLAS library found beside numpy")
        monkeypatch.setenv("SYMDL_BLAS", "always")
    elif setting == "ieee":
        kwargs["ieee"] = True
    elif setting == "loop-nest":
        monkeypatch.setenv("SYMDL_GEMM", "never")
    fun, args, ref = _layer, (w, b, x), _layer_ref(w, b, x)
    if setting == "batched":
        monkeypatch.setenv("SYMDL_BLAS", "0")
        monkeypatch.setenv("SYMDL_GEMM", "always")
        wb = rng.standard_normal((3, m, k))
        xb = rng.standard_normal((3, k, n))
        fun, args = (lambda w, x: symdl.relu(w @ x) + 1.0), (wb, xb)
        ref = np.maximum(np.einsum("pmk,pkn->pmn", wb, xb), 0) + 1.0
    assert len(_epilogues(_plan(fun, *args))) == 1
    compiled = symdl.compile(fun, *args, **kwargs)
    assert not _fused(fun, *args, **kwargs)
    np.testing.assert_allclose(np.asarray(compiled(*args)), ref, rtol=1e-10, atol=1e-12)


def test_many_kernels_emit_epilogues_inside_kernel_functions(generated):
    # above SPLIT_ABOVE kernels every kernel is an LLVM function of its own;
    # epilogue functions are made from inside those
    from codegen.emit import SPLIT_ABOVE
    rng = np.random.default_rng(8)
    depth = SPLIT_ABOVE + 2
    ws = [rng.standard_normal((16, 16)) * 0.3 for _ in range(depth)]
    x = rng.standard_normal((16, 24))

    def net(x, *ws):
        h = x
        for w in ws:
            h = symdl.tanh(w @ h) + h           # the residual read is at the same index: fused
        return h
    plan = _plan(net, x, *ws)
    assert len(_epilogues(plan)) == depth
    compiled = symdl.compile(net, x, *ws)
    assert _fused(net, x, *ws)
    h = x
    for w in ws:
        h = np.tanh(w @ h) + h
    np.testing.assert_allclose(np.asarray(compiled(x, *ws)), h, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradients_of_a_network_with_fused_layers(generated, dtype):
    # forward products carry bias and activation; the backward pass's
    # products carry the activation's derivative where it reads them
    from tests.helpers import check_grads
    rng = np.random.default_rng(9)
    w1, w2 = rng.standard_normal((12, 6)), rng.standard_normal((3, 12))
    b1 = rng.standard_normal(12)
    x = rng.standard_normal((6, 20))

    def loss(w1, b1, w2):
        h = symdl.tanh(w1 @ x + b1[:, None])
        return symdl.sum(symdl.sigmoid(w2 @ h) ** 2)
    check_grads(loss, [w1, b1, w2], order=2)
    args = [a.astype(dtype) for a in (w1, b1, w2)]
    compiled = symdl.grad(loss, argnums=(0, 1, 2))
    eager = dlfeval(lambda *p: symdl.dlgradient(loss(*p), *p), *[dlarray(a) for a in args])
    for got, want in zip(compiled(*args), eager):
        want = symdl.extractdata(want)
        assert np.asarray(got).dtype == np.dtype(dtype)
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4 if dtype == "float32" else 1e-10,
                                   atol=2e-4 if dtype == "float32" else 1e-10)


def test_blocking_the_shapes_above_rely_on():
    # SHAPES cross KC (K = 300), MC (M = 200) and, for float32, NC (N = 2100);
    # if the blocking changes, the cases should still cross the block edges
    f32, f64 = blocking("float32"), blocking("float64")
    assert 300 > f32.KC and 300 > f64.KC
    assert 200 > f32.MC and 200 > f64.MC
    assert 2100 > f32.NC
    assert 5 < f64.NR and 130 > 5
