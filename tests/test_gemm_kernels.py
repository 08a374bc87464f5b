"""Contractions in native code: the generated packed GEMM, the BLAS call,
their classification from strided views, and the rules that keep BLAS out
of exported libraries and out of processes that lack it.

References: numpy ``einsum`` in float64 (errors bounded by
``gamma_K * (|A| @ |B|)``, the rounding bound of any summation order), the
interpreter (eager symdl), central differences for gradients.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symdl
from codegen import blas
from codegen.lower.contract import MatmulShape, classify
from codegen.lower.gemm import blocking
from codegen.views import View, c_strides
from tests.helpers import check_grads

ROOT = Path(__file__).resolve().parent.parent
SIZES = (1, 2, 7, 17, 33, 64, 129, 257)
HAVE_BLAS = blas.library() is not None
needs_blas = pytest.mark.skipif(not HAVE_BLAS, reason="no BLAS library found beside numpy")


def _eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def assert_product(got, a, b, subscripts: str, dtype, what: str = "") -> None:
    """``got`` equals ``einsum(subscripts, a, b)`` within the rounding bound
    (K + 2) * eps * (|a| @ |b|) of any summation order."""
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ref = np.einsum(subscripts, a64, b64)
    bound = np.einsum(subscripts, np.abs(a64), np.abs(b64))
    ins, out = subscripts.split("->")
    sizes = dict(zip(ins.replace(",", ""), a64.shape + b64.shape))
    k = int(np.prod([sizes[c] for c in set(ins) - set(out) - {","}]))  # terms per output element
    tol = (k + 2) * _eps(dtype) * bound + np.finfo(dtype).tiny
    got = np.asarray(got)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert got.dtype == np.dtype(dtype), f"{what}: dtype {got.dtype} != {dtype}"
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= tol), f"{what}: max error {err.max():.3g} above the rounding bound {tol.max():.3g}"


def lowered_with(compiled) -> set[str]:
    """Which contraction lowerings the code uses: 'gemm', 'blas'."""
    text = compiled.llvm_ir
    return {name for name, mark in (("gemm", "symdl_gemm_f"), ("blas", blas.symbol_prefix)) if mark in text}


@pytest.fixture
def generated(monkeypatch):
    """The generated kernel for every contraction (no BLAS, no loop nests)."""
    monkeypatch.setenv("SYMDL_BLAS", "0")
    monkeypatch.setenv("SYMDL_GEMM", "always")


@pytest.fixture
def forced_blas(monkeypatch):
    if not HAVE_BLAS:
        pytest.skip("no BLAS library found beside numpy")
    monkeypatch.setenv("SYMDL_BLAS", "always")
    monkeypatch.setenv("SYMDL_GEMM", "always")


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# The four operand layouts of a 2-D product, as the derivative rules make them.
LAYOUTS = {
    "A@B": (lambda a, b: a @ b, False, False),
    "A.T@B": (lambda a, b: a.T @ b, True, False),
    "A@B.T": (lambda a, b: a @ b.T, False, True),
    "A.T@B.T": (lambda a, b: a.T @ b.T, True, True),
}


def _operands(rng, m, k, n, dtype, ta, tb):
    a = _rand(rng, (k, m) if ta else (m, k), dtype)
    b = _rand(rng, (n, k) if tb else (k, n), dtype)
    return a, b


def _check_sizes(dtype, fixed):
    """One compiled function with a product per size in each of M, N, K
    (the others ``fixed``), cycling through the four layouts."""
    rng = np.random.default_rng(1)
    cases = []
    for axis in range(3):
        for s in SIZES:
            mkn = [fixed, fixed, fixed]
            mkn[axis] = s
            cases.append(tuple(mkn))
    names = list(LAYOUTS)
    ops, args = [], []
    for i, (m, k, n) in enumerate(cases):
        fn, ta, tb = LAYOUTS[names[i % 4]]
        ops.append(fn)
        args += _operands(rng, m, k, n, dtype, ta, tb)

    def products(*xs):
        return [op(xs[2 * i], xs[2 * i + 1]) for i, op in enumerate(ops)]
    compiled = symdl.compile(products, *args)
    got = compiled(*args)
    for i, (g, (m, k, n)) in enumerate(zip(got, cases)):
        a, b = args[2 * i], args[2 * i + 1]
        _, ta, tb = LAYOUTS[names[i % 4]]
        sub = ("km" if ta else "mk") + "," + ("nk" if tb else "kn") + "->mn"
        assert_product(g, a, b, sub, dtype, f"{names[i % 4]} M={m} K={k} N={n}")
    return compiled


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generated_kernel_sizes_around_a_larger_product(generated, dtype):
    # every size against 33 in the other two: several tiles and edge tiles in each
    _check_sizes(dtype, 33)


@needs_blas
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_every_size_and_layout(forced_blas, dtype):
    compiled = _check_sizes(dtype, 17)
    assert "blas" in lowered_with(compiled)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("policy", ["generated", "forced_blas"])
def test_output_transposed_and_batched(request, policy, dtype):
    request.getfixturevalue(policy)
    rng = np.random.default_rng(2)
    a = _rand(rng, (3, 33, 19), dtype)
    b = _rand(rng, (3, 19, 41), dtype)
    c = _rand(rng, (19, 3, 41), dtype)   # batch axis in the middle

    def fun(a, b, c):
        return ((a[0] @ b[0]).T, a @ b, np.einsum("bmk,kbn->bnm", a, c),
                np.einsum("bmk,bnk->bmn", a, b.transpose(0, 2, 1)))
    compiled = symdl.compile(fun, a, b, c)
    got = compiled(a, b, c)
    assert_product(got[0], a[0], b[0], "mk,kn->nm", dtype, "(A@B).T")
    assert_product(got[1], a, b, "bmk,bkn->bmn", dtype, "batched")
    assert_product(got[2], a, c, "bmk,kbn->bnm", dtype, "batch axis inside, output transposed")
    assert_product(got[3], a, b, "bmk,bkn->bmn", dtype, "batched, B transposed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_views_and_axes_that_do_not_collapse(generated, dtype):
    rng = np.random.default_rng(3)
    x = _rand(rng, (40, 70), dtype)
    y = _rand(rng, (70, 50), dtype)
    t = _rand(rng, (5, 4, 6), dtype)
    w = _rand(rng, (6, 7, 3), dtype)

    def fun(x, y, t, w):
        return (x[::3, 1::2] @ y[1::2, :],
                x.T[5:25] @ y[:40, :9],
                np.einsum("ijk,klm->ijlm", t, w),        # free axes collapse into M and N
                # transposed operands: their free axes do not collapse (loops outside the multiply)
                np.einsum("ijk,klm->ijlm", t.transpose(1, 0, 2), w.transpose(0, 2, 1)),
                # contracted axes whose strides do not collapse in B (accumulated)
                np.einsum("ijk,kjl->il", t, w[:, :4, :]))
    compiled = symdl.compile(fun, x, y, t, w)
    got = compiled(x, y, t, w)
    assert_product(got[0], x[::3, 1::2], y[1::2, :], "mk,kn->mn", dtype, "strided slices")
    assert_product(got[1], x.T[5:25], y[:40, :9], "mk,kn->mn", dtype, "transposed slice")
    assert_product(got[2], t, w, "ijk,klm->ijlm", dtype, "collapsed free axes")
    assert_product(got[3], t.transpose(1, 0, 2), w.transpose(0, 2, 1), "ijk,klm->ijlm", dtype,
                   "non-collapsing free axes")
    assert_product(got[4], t, w[:, :4, :], "ijk,kjl->il", dtype, "two contracted axes")
    assert lowered_with(compiled) == {"gemm"}


# How the generated kernel reaches its operands (codegen/lower/gemm.py): each
# operand packed (contiguous, transposing or element-by-element copies, by its
# strides), or read in place (A: unit stride either way; B: contiguous rows).
# The size thresholds are patched so that every product takes the path named.
GEMM_PATHS = {
    "packed": {"DIRECT_A_MAX_WORK": -1, "DIRECT_B_MAX_WORK": -1},
    "in_place": {"DIRECT_A_MAX_WORK": 2 ** 62, "DIRECT_B_MAX_WORK": 2 ** 62},
    "b_in_place": {"DIRECT_A_MAX_WORK": -1, "DIRECT_B_MAX_WORK": 2 ** 62},
}


@pytest.fixture(params=list(GEMM_PATHS))
def gemm_path(request, generated, private_cache, monkeypatch):
    import codegen.lower.gemm as gemm
    for name, value in GEMM_PATHS[request.param].items():
        monkeypatch.setattr(gemm, name, value)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_operand_path_every_size_and_layout(gemm_path, dtype):
    # sizes 1 ... 257 in each of M, N, K against 17: edge tiles in M (MR = 12),
    # N (NR = 2 VL) and K (the transposing copy's VL x VL blocks), K = 1
    # (the default thresholds read these products in place: the 'in_place' case)
    compiled = _check_sizes(dtype, 17)
    assert lowered_with(compiled) == {"gemm"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_operand_path_strides_broadcasts_batches(gemm_path, dtype):
    rng = np.random.default_rng(9)
    x = _rand(rng, (40, 70), dtype)
    y = _rand(rng, (70, 50), dtype)
    v = _rand(rng, (70,), dtype)
    w = _rand(rng, (50,), dtype)
    t = _rand(rng, (3, 26, 19), dtype)
    u = _rand(rng, (3, 19, 37), dtype)

    def fun(x, y, v, w, t, u):
        return (x[::3, 1::2] @ y[1::2, :],                       # element-by-element copies
                x @ np.broadcast_to(w, (70, 50)),                 # zero row stride in B
                np.broadcast_to(v, (13, 70)) @ y,                 # zero row stride in A
                x @ np.broadcast_to(w[::2, None], (25, 70)).T,    # zero and non-unit strides
                np.broadcast_to(v[::2], (9, 35)) @ y[:35].T.T,
                t @ u,                                            # batch axes
                (t @ u).transpose(0, 2, 1),                       # transposed result
                np.einsum("bmk,bnk->bnm", t, u.transpose(0, 2, 1)),
                np.einsum("bmk,bkn->mn", t, u),                   # contracted axes accumulated
                np.einsum("bmk,bkn->mn", t, u[:, :, :5]))         # ... into a transposed tile (N < M swapped)
    args = (x, y, v, w, t, u)
    got = symdl.compile(fun, *args)(*args)
    expect = [
        (x[::3, 1::2], y[1::2, :], "mk,kn->mn"),
        (x, np.broadcast_to(w, (70, 50)), "mk,kn->mn"),
        (np.broadcast_to(v, (13, 70)), y, "mk,kn->mn"),
        (x, np.broadcast_to(w[::2, None], (25, 70)).T, "mk,kn->mn"),
        (np.broadcast_to(v[::2], (9, 35)), y[:35], "mk,kn->mn"),
        (t, u, "bmk,bkn->bmn"),
        (t, u, "bmk,bkn->bnm"),
        (t, u, "bmk,bkn->bnm"),
        (t, u, "bmk,bkn->mn"),
        (t, u[:, :, :5], "bmk,bkn->mn"),
    ]
    for i, (g, (a, b, sub)) in enumerate(zip(got, expect)):
        assert_product(g, a, b, sub, dtype, f"{gemm_path} product {i}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_tiles_write_nothing_past_the_result(gemm_path, dtype):
    # products stored into a part of a wider buffer (rows of C not contiguous
    # with each other): the masked edge stores must leave the neighbours alone
    rng = np.random.default_rng(10)
    a, b, c = _rand(rng, (29, 45), dtype), _rand(rng, (45, 35), dtype), _rand(rng, (29, 7), dtype)

    def fun(a, b, c):
        return np.concatenate([c, a @ b, c], axis=1), np.concatenate([(a @ b).T, c.T], axis=0)
    got = symdl.compile(fun, a, b, c)(a, b, c)
    wide, tall = np.asarray(got[0]), np.asarray(got[1])
    assert np.array_equal(wide[:, :7], c) and np.array_equal(wide[:, 42:], c)
    assert np.array_equal(tall[35:], c.T)
    assert_product(wide[:, 7:42], a, b, "mk,kn->mn", dtype, "into a wider buffer")
    assert_product(tall[:35], a, b, "mk,kn->nm", dtype, "transposed into a taller buffer")


def _before_a_guard_page(x: np.ndarray, keep: list) -> np.ndarray:
    """A copy of ``x`` whose last byte ends a readable page followed by an
    unreadable one: a read past its end is a crash, not a silent wrong answer."""
    import ctypes
    import mmap
    page = mmap.PAGESIZE
    pages = -(-x.nbytes // page) + 1
    buf = mmap.mmap(-1, (pages + 1) * page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(base + pages * page, page, 0) == 0  # PROT_NONE
    keep.append(buf)
    start = pages * page - x.nbytes
    out = np.frombuffer(buf, dtype=x.dtype, count=x.size, offset=start).reshape(x.shape)
    out[...] = x
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mprotect through ctypes")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_read_past_the_operands(gemm_path, dtype):
    # edge panels and tiles (M, N, K not multiples of MR, NR, VL), every layout,
    # operands ending where an unreadable page begins
    rng = np.random.default_rng(11)
    keep: list = []
    for (m, k, n) in [(29, 21, 35), (13, 5, 7), (26, 33, 66)]:
        for name, (fn, ta, tb) in LAYOUTS.items():
            a, b = _operands(rng, m, k, n, dtype, ta, tb)
            compiled = symdl.compile(fn, a, b)
            ga, gb = _before_a_guard_page(a, keep), _before_a_guard_page(b, keep)
            sub = ("km" if ta else "mk") + "," + ("nk" if tb else "kn") + "->mn"
            assert_product(compiled(ga, gb), a, b, sub, dtype, f"{name} M={m} K={k} N={n}")


def test_classify_collapses_only_where_strides_allow():
    node = symdl.trace(lambda a, b: np.einsum("ijk,klm->ijlm", a, b), np.ones((2, 3, 4)),
                       np.ones((4, 5, 6))).outputs[0]
    while node.op != "dot_general":
        node = node.inputs[0]
    a, b = node.inputs
    av = View(0, 0, a.shape, c_strides(a.shape))
    bv = View(1, 0, b.shape, c_strides(b.shape))
    out = View(2, 0, node.shape, c_strides(node.shape))
    s = classify(node, av, bv, out)
    assert (s.M, s.N, s.K, s.outer, s.k_outer) == (6, 30, 4, (), ())
    # a transposed A (strides of a (3, 2, 4) array read as (2, 3, 4)): M does not collapse
    at = View(0, 0, a.shape, (4, 8, 1))
    s = classify(node, at, bv, out)
    assert (s.M, s.N, s.K) == (3, 30, 4) and s.outer == ((2, 4, 0, 90),)
    assert isinstance(s.transposed(), MatmulShape) and s.transposed().transposed() == s


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_equals_interpreter(gemm_path, dtype):
    rng = np.random.default_rng(4)
    a, b = _rand(rng, (65, 130), dtype), _rand(rng, (130, 34), dtype)

    def fun(a, b):
        return np.tanh(a @ b) @ b.T
    compiled = np.asarray(symdl.compile(fun, a, b)(a, b))
    eager = np.asarray(symdl.extractdata(fun(symdl.dlarray(a), symdl.dlarray(b))))
    assert compiled.dtype == eager.dtype == np.dtype(dtype)
    # the interpreter and the kernel sum in different orders: both within the rounding bound
    a64, b64 = np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64))
    scale = np.abs(np.tanh(a64 @ b64)) @ b64.T
    assert np.all(np.abs(compiled.astype(np.float64) - eager) <= 300 * _eps(dtype) * (scale + np.abs(b).sum()))


def test_above_the_blas_threshold_through_the_generated_kernel(monkeypatch):
    monkeypatch.setenv("SYMDL_BLAS", "0")
    rng = np.random.default_rng(5)
    a, b = _rand(rng, (513, 513), np.float32), _rand(rng, (513, 513), np.float32)
    assert 513 ** 3 >= blas.BLAS_MIN_WORK and 513 >= blas.BLAS_MIN_SIDE
    compiled = symdl.compile(lambda a, b: a.T.T @ b.T, a, b)
    assert_product(compiled(a, b), a, b, "mk,nk->mn", np.float32, "large, generated")
    assert lowered_with(compiled) == {"gemm"}


@needs_blas
def test_auto_policy_calls_blas_above_the_threshold(monkeypatch):
    monkeypatch.delenv("SYMDL_BLAS", raising=False)
    monkeypatch.delenv("SYMDL_GEMM", raising=False)
    rng = np.random.default_rng(6)
    big = _rand(rng, (512, 512), np.float64)
    small = _rand(rng, (16, 16), np.float64)
    compiled = symdl.compile(lambda x: x @ x, big)
    assert lowered_with(compiled) == {"blas"}
    assert_product(compiled(big), big, big, "mk,kn->mn", np.float64, "auto, large")
    assert "blas" not in lowered_with(symdl.compile(lambda x: x @ x, small))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_of_a_matmul_loss(generated, dtype):
    rng = np.random.default_rng(7)
    w1, w2 = _rand(rng, (9, 6), dtype) * 0.5, _rand(rng, (6, 5), dtype) * 0.5
    x = _rand(rng, (7, 9), dtype)

    def loss(w1, w2, x):
        return np.sum(np.tanh(x @ w1) @ w2 * np.tanh(x @ w1)[:, :5])
    check_grads(loss, [w1, w2, x], order=2 if dtype == np.float64 else 1)


def test_ieee_keeps_the_loop_nest(generated):
    a = np.linspace(-1, 1, 64 * 64).reshape(64, 64)
    compiled = symdl.compile(lambda a: a @ a, a, ieee=True)
    assert lowered_with(compiled) == set()
    # left to right, as the loop nest sums: equal to a sequential float64 sum
    got = np.asarray(compiled(a))
    i, j = 3, 11
    acc = 0.0
    for k in range(64):
        acc += a[i, k] * a[k, j]
    assert got[i, j] == acc


def _undefined_symbols(path: Path) -> str:
    try:
        return subprocess.run(["nm", "-u", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return path.read_bytes().decode("latin-1")


@needs_blas
def test_export_never_calls_blas(forced_blas, tmp_path):
    import ctypes
    rng = np.random.default_rng(8)
    a, b = _rand(rng, (150, 140), np.float32), _rand(rng, (140, 130), np.float32)
    lib_path = symdl.export(lambda a, b: a @ b, a, b, path=tmp_path / "libmm.so", name="mm")
    assert blas.symbol_prefix not in _undefined_symbols(Path(lib_path))
    assert b"cblas" not in Path(lib_path).read_bytes()
    lib = ctypes.CDLL(str(lib_path))
    fp = ctypes.POINTER(ctypes.c_float)
    lib.mm.argtypes = [fp] * 3
    lib.mm.restype = ctypes.c_int
    out = np.full((150, 130), np.nan, np.float32)
    assert lib.mm(*(x.ctypes.data_as(fp) for x in (a, b, out))) == 0
    assert_product(out, a, b, "mk,kn->mn", np.float32, "exported")


_CHILD = textwrap.dedent("""
    import sys, numpy as np, symdl
    from symdl.compiler.pipeline import STATS
    a = np.arange(160 * 150, dtype=np.float64).reshape(160, 150) % 7 - 3
    c = symdl.compile(lambda x: x @ x.T, a)
    err = float(np.max(np.abs(np.asarray(c(a)) - a @ a.T)))
    print(STATS["compiled"], STATS["disk_hits"], err, "symdl_cblas" in c.llvm_ir)
""")


def _child(env: dict, code: str = _CHILD) -> list[str]:
    full = dict(os.environ, PYTHONPATH=str(ROOT), **env)
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@needs_blas
def test_disk_cache_entry_with_blas_is_rebuilt_without_blas(tmp_path):
    cache = {"SYMDL_CACHE_DIR": str(tmp_path / "cache"), "SYMDL_GEMM": "auto"}
    compiled, hits, err, uses = _child({**cache, "SYMDL_BLAS": "always"})
    assert (compiled, hits, float(err), uses) == ("1", "0", 0.0, "True")
    compiled, hits, err, uses = _child({**cache, "SYMDL_BLAS": "always"})
    assert (compiled, hits) == ("0", "1")           # the entry is used where BLAS is
    for env in ({"SYMDL_BLAS": "0"}, {"SYMDL_BLAS": "always", "SYMDL_BLAS_LIB": str(tmp_path / "no-such-lib.so")}):
        compiled, hits, err, uses = _child({**cache, **env})
        assert (compiled, hits, float(err), uses) == ("1", "0", 0.0, "False")


@needs_blas
def test_blas_code_is_never_loaded_where_blas_is_missing(monkeypatch, forced_blas):
    from codegen.compiler import Artifact
    a = np.ones((64, 64))
    art = symdl.compile(lambda x: x @ x, a)._artifact
    assert blas.references_blas(art.object_code)
    monkeypatch.setenv("SYMDL_BLAS_LIB", "/nonexistent/libopenblas.so")
    assert blas.library() is None and not blas.prepare_object(art.object_code)
    fresh = Artifact(art.name, art.object_code, art.in_specs, art.out_specs, art.workspace_bytes, art.target_key)
    with pytest.raises(ValueError, match="BLAS"):
        fresh.entry()


@needs_blas
def test_pickled_blas_code_registers_blas_in_a_new_process(forced_blas, tmp_path):
    a = np.arange(140 * 130, dtype=np.float32).reshape(140, 130) % 5 - 2
    compiled = symdl.compile(lambda x: x.T @ x, a)
    assert "blas" in lowered_with(compiled)
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(compiled))
    code = textwrap.dedent(f"""
        import pickle, numpy as np
        f = pickle.loads(open({str(tmp_path / 'f.pkl')!r}, 'rb').read())
        a = np.arange(140 * 130, dtype=np.float32).reshape(140, 130) % 5 - 2
        print(float(np.max(np.abs(np.asarray(f(a)) - a.T @ a))))
    """)
    (err,) = _child({"SYMDL_CACHE_DIR": str(tmp_path / "cache")}, code)
    assert float(err) == 0.0


def test_switches_are_checked(monkeypatch):
    monkeypatch.setenv("SYMDL_BLAS", "sometimes")
    with pytest.raises(ValueError, match="SYMDL_BLAS.*sometimes"):
        blas.blas_mode()
    monkeypatch.setenv("SYMDL_GEMM", "fast")
    with pytest.raises(ValueError, match="SYMDL_GEMM.*fast"):
        blas.gemm_mode()
    with pytest.raises(ValueError, match="SYMDL_NUM_THREADS.*zero"):
        blas._thread_count("zero")
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        blas.set_num_threads(0)


def test_policy_is_part_of_the_cache_key(monkeypatch):
    from symdl.cache import cache_key
    monkeypatch.setenv("SYMDL_BLAS", "0")
    off = cache_key("g", "t", "v")
    monkeypatch.setenv("SYMDL_BLAS", "always")
    assert cache_key("g", "t", "v") != off


def test_blocking_follows_the_vector_width():
    assert blocking("float32", "+avx512f,+avx2").VL == 16
    assert blocking("float64", "+avx2,-avx512f").VL == 4
    assert blocking("float32", "+sse2").NR == 8
    bl = blocking("float64")
    assert bl.MC % bl.MR == 0 and bl.NR == bl.NV * bl.VL


@pytest.mark.parametrize("features", ["+sse2", "+avx,+avx2,+fma"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_narrower_vector_blockings(generated, private_cache, monkeypatch, features, dtype):
    # the AVX2 and SSE tilings (run here: their vectors are legal on this host too)
    import codegen.lower.contract as contract
    import codegen.lower.gemm as gemm

    def narrow(dt, feats=None):
        return blocking(dt, features)
    monkeypatch.setattr(gemm, "blocking", narrow)
    monkeypatch.setattr(contract, "blocking", narrow)
    compiled = _check_sizes(dtype, 17)
    assert lowered_with(compiled) == {"gemm"}
    vl = blocking(np.dtype(dtype).name, features).VL
    assert f"llvm.fmuladd.v{vl}f{np.dtype(dtype).itemsize * 8}" in compiled.llvm_ir
