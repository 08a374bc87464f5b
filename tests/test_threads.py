"""Both cores (issue 9, item 3): kernels above codegen.parallel.SPLIT_WORK
split their outer loop across threads started by the generated code.

Every expected value comes from the numpy interpreter (symdl.dlfeval runs
the function on real values) or from numpy; results must not depend on the
thread count at all (bitwise), since only independent iterations are split.
The thread count is switched in process with codegen.parallel.set_num_threads
(what SYMDL_NUM_THREADS sets when code is loaded), and through the
environment in subprocesses.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

import symdl
from codegen import parallel
from tests.helpers import run_in_threads

ROOT = Path(__file__).resolve().parent.parent
CC = shutil.which("cc")


@pytest.fixture(autouse=True)
def _own_cache(private_cache):
    return private_cache


@pytest.fixture(autouse=True)
def _restore_thread_count():
    before = parallel.num_threads()
    yield
    parallel.set_num_threads(before)


def _data(x) -> np.ndarray:
    return np.asarray(symdl.extractdata(x) if isinstance(x, symdl.dlarray) else x)


def _flat(result) -> list[np.ndarray]:
    return [_data(r) for r in (result if isinstance(result, tuple) else (result,))]


def _interpreted(fun, *args) -> list[np.ndarray]:
    return _flat(symdl.dlfeval(fun, *(symdl.dlarray(a) for a in args)))


def _per_thread_count(compiled, args, counts=(1, 2, 3)) -> dict[int, list[np.ndarray]]:
    out = {}
    for n in counts:
        parallel.set_num_threads(n)
        out[n] = [r.copy() for r in _flat(compiled(*args))]
    return out


def _check(fun, *args, rtol=1e-12, atol=1e-12, counts=(1, 2, 3), split=True):
    """Compiled results for every thread count are bitwise equal, equal the
    interpreter to rounding, and (``split``) the code does split a kernel."""
    compiled = symdl.compile(fun, *args)
    assert (parallel.RUNTIME_SYMBOL in compiled.llvm_ir) is split
    results = _per_thread_count(compiled, args, counts)
    expected = _interpreted(fun, *args)
    for n, got in results.items():
        assert len(got) == len(expected)
        for k, (g, e) in enumerate(zip(got, expected)):
            assert g.shape == e.shape and g.dtype == e.dtype, (n, k)
            assert np.array_equal(g, results[counts[0]][k]), f"output {k} differs between 1 and {n} threads"
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"output {k}, {n} threads")
    return compiled


# ---------------------------------------------------------------- programs
def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_value_and_grad(x):
    y = rosen(x)
    return y, symdl.dlgradient(y, x)


def test_rosenbrock_gradient_1e6_does_not_depend_on_the_thread_count():
    x = np.random.default_rng(0).uniform(-2.0, 2.0, 10**6)
    _check(rosen_value_and_grad, x, rtol=1e-10)


def test_rosenbrock_gradient_odd_length_and_float32():
    # the split axis is the one with masked reads (x[1:], x[:-1]): ranges cut
    # through the edge parts and the interior, and are not multiples of 2 or 3
    x = np.random.default_rng(1).uniform(-2.0, 2.0, 1_000_003)
    _check(rosen_value_and_grad, x, rtol=1e-10, counts=(1, 2, 3, 5))
    x32 = x.astype(np.float32)
    compiled = symdl.compile(rosen_value_and_grad, x32)
    results = _per_thread_count(compiled, (x32,), (1, 2, 3))
    for n in (2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(results[1], results[n]))
    reference = _interpreted(rosen_value_and_grad, x32)[1]
    assert results[1][1].dtype == np.float32
    np.testing.assert_allclose(results[1][1], reference, rtol=2e-5, atol=2e-3)


def broadcasted(a, b):
    return np.tanh(a * b) + np.exp(-a) * b ** 2


def test_two_dimensional_broadcasted_program():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1001, 1)), rng.normal(size=(1, 997))
    _check(broadcasted, a, b, counts=(1, 2, 3, 4))


def test_reduction_over_one_axis_splits_its_output_axis():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(701, 903))

    def rows_and_columns(x):
        return np.sum(np.sin(x) ** 2, axis=1), np.max(x * np.cos(x), axis=0)
    _check(rows_and_columns, x, rtol=1e-12)


def test_full_reduction_is_never_split():
    # its only axis is the reduction axis: one thread, a program that still works
    x = np.random.default_rng(4).normal(size=10**6)
    _check(lambda x: np.sum(x), x, split=False)


def several_kernels(w, x):
    h = np.tanh(w * x)                                        # (400, 800)
    y = np.sum(np.log1p(h ** 2) * x[::-1, :], axis=0)          # a reduction over axis 0
    s = np.sum(y * y) + np.sum(np.exp(-w * w))
    g = symdl.dlgradient(s, w)
    return s, y, g


def test_program_with_several_kernels():
    rng = np.random.default_rng(5)
    w, x = rng.normal(size=(400, 800)) * 0.5, rng.normal(size=(400, 800))
    _check(several_kernels, w, x, rtol=1e-10, atol=1e-10, counts=(1, 2, 3, 7))


@pytest.mark.parametrize("shape", [(7, 50_001), (2, 200_003), (3, 1, 100_000), (1_000_001,), (1, 400_003),
                                   (1, 1, 300_007)])
def test_ranges_not_divisible_by_the_thread_count(shape):
    # fewer outer iterations than threads (2 rows for 3 threads) included
    x = np.random.default_rng(6).normal(size=shape)
    _check(lambda x: np.sin(x) * x + np.cos(2.0 * x), x, counts=(1, 2, 3, 4, 5))


def shifted_rows(x):
    # masked reads (x[:, 1:], x[:, :-1]) along the last axis, rows along the first
    y = np.sum((x[:, 1:] - x[:, :-1] ** 2) ** 2 + np.cos(x[:, :-1]))
    return y, symdl.dlgradient(y, x)


@pytest.mark.parametrize("shape", [(1, 300_007), (3, 200_001)])
def test_masked_reads_with_the_split_on_either_axis(shape):
    # (1, n): the split axis is the last one, the one with the masked edges
    x = np.random.default_rng(12).uniform(-1.5, 1.5, size=shape)
    _check(shifted_rows, x, rtol=1e-10, atol=1e-10, counts=(1, 2, 3, 4))


def test_reduction_with_a_leading_axis_of_one():
    x = np.random.default_rng(13).normal(size=(1, 600, 700))
    _check(lambda x: np.sum(np.exp(-x * x), axis=1), x)


def test_sizes_straddling_the_threshold():
    # x * 3 + 1 is one n-ary add node ({x: 3} + 1): an add and a store per
    # element, so the loop is split from SPLIT_WORK / 2 elements on
    n0 = parallel.SPLIT_WORK // 2 - 1
    split = {}
    for n in (1000, n0, n0 + 1, 3 * n0 + 2):
        x = np.random.default_rng(n).normal(size=n)
        compiled = symdl.compile(lambda x: x * 3.0 + 1.0, x)
        split[n] = parallel.RUNTIME_SYMBOL in compiled.llvm_ir
        results = _per_thread_count(compiled, (x,), (1, 2, 3))
        assert all(np.array_equal(results[1][0], results[k][0]) for k in (2, 3))
        np.testing.assert_array_equal(results[2][0], x * 3.0 + 1.0)
    assert split == {1000: False, n0: False, n0 + 1: True, 3 * n0 + 2: True}


def test_concurrent_python_threads_each_get_their_own_results():
    parallel.set_num_threads(2)
    compiled = symdl.compile(broadcasted, np.zeros((600, 1)), np.zeros((1, 700)))
    rng = np.random.default_rng(7)
    cases = [(rng.normal(size=(600, 1)), rng.normal(size=(1, 700))) for _ in range(4)]
    expected = [broadcasted(a, b) for a, b in cases]
    errors = []

    def worker(k):
        try:
            for _ in range(15):
                got = _data(compiled(*cases[k]))
                if not np.allclose(got, expected[k], rtol=1e-14, atol=1e-14):
                    errors.append(f"python thread {k}: wrong result")
        except Exception as err:  # reported below
            errors.append(repr(err))
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_no_thread_outlives_its_call():
    parallel.set_num_threads(3)
    x = np.random.default_rng(8).normal(size=10**6)
    compiled = symdl.compile(lambda x: np.sin(x) * 2.0, x)
    compiled(x)

    def threads_of_this_process() -> int:
        return len(os.listdir("/proc/self/task"))
    before = threads_of_this_process()
    for _ in range(5):
        compiled(x)
    assert threads_of_this_process() == before


# ---------------------------------------------------------------- the thread count
def test_set_num_threads_errors():
    with pytest.raises(TypeError, match="n must be an int, got float"):
        parallel.set_num_threads(2.0)
    with pytest.raises(ValueError, match="n must be at least 1, got 0"):
        parallel.set_num_threads(0)
    parallel.set_num_threads(10_000)
    assert parallel.num_threads() == parallel.MAX_THREADS


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_SYMDL_NUM_THREADS_is_a_value_error_naming_it(bad, monkeypatch):
    monkeypatch.setenv("SYMDL_NUM_THREADS", bad)
    with pytest.raises(ValueError, match=f"SYMDL_NUM_THREADS must be a positive integer .*got '{bad}'"):
        parallel.load_from_env()


def test_default_is_every_core_this_process_may_use(monkeypatch):
    monkeypatch.delenv("SYMDL_NUM_THREADS", raising=False)
    assert parallel.load_from_env() == min(len(os.sched_getaffinity(0)), parallel.MAX_THREADS)


_CHILD = """
import hashlib, sys
import numpy as np
import symdl
from codegen import parallel
from symdl.compiler.pipeline import STATS
def f(x):
    return np.sum(np.tanh(x) ** 2, axis=1), np.exp(-x) * x
x = np.random.default_rng(9).normal(size=(900, 700))
outs = symdl.compile(f, x)(x)
print(parallel.num_threads(), STATS["disk_hits"], hashlib.sha256(b"".join(o.tobytes() for o in outs)).hexdigest())
"""


def test_SYMDL_NUM_THREADS_is_read_at_load_not_baked_into_cached_code(tmp_path):
    env = dict(os.environ, SYMDL_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    seen = []
    for n in ("1", "2", "3", "1"):
        out = subprocess.run([sys.executable, "-c", _CHILD], env=dict(env, SYMDL_NUM_THREADS=n),
                             capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        seen.append(out.stdout.split())
    assert [s[0] for s in seen] == ["1", "2", "3", "1"]
    assert [int(s[1]) for s in seen] == [0, 1, 1, 1]      # later processes load the cached code
    assert len({s[2] for s in seen}) == 1                 # and get the same bits


_LIMITED = """
import resource, threading
import numpy as np
import symdl
from codegen import parallel
x = np.random.default_rng(10).normal(size=10**6)
f = symdl.compile(lambda x: np.sin(x) * x + 1.0, x)
expected = np.sin(x) * x + 1.0
parallel.set_num_threads(4)
f(x)
# leave room for ordinary allocations but not for one more thread stack
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + (96 << 20), resource.RLIM_INFINITY))
try:
    threading.Thread(target=lambda: None).start()
    print("threads still start")
except RuntimeError:
    print("no threads")
got = f(x)
print("equal" if np.array_equal(got, expected) or np.allclose(got, expected, rtol=1e-15, atol=0) else "WRONG")
"""


def test_a_failing_pthread_create_runs_the_range_on_the_calling_thread(tmp_path):
    import resource

    def big_thread_stacks():  # in the child only: glibc sizes thread stacks from RLIMIT_STACK
        resource.setrlimit(resource.RLIMIT_STACK, (256 << 20, resource.RLIM_INFINITY))
    env = dict(os.environ, SYMDL_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _LIMITED], env=env, capture_output=True, text=True, timeout=300,
                         cwd=ROOT, preexec_fn=big_thread_stacks)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["no", "threads", "equal"]


# ---------------------------------------------------------------- export
def big_elementwise(x):
    return np.exp(np.sin(x)) * x - np.cos(x) ** 2


def test_exported_library_is_single_threaded_unless_asked_and_equal_either_way(tmp_path):
    if CC is None:
        pytest.skip("no C compiler ('cc') to link a shared library")
    x = np.random.default_rng(11).normal(size=10**6)
    lib_path = symdl.export(big_elementwise, x, path=tmp_path / "libbig.so", name="big_fn")
    header = lib_path.with_suffix(".h").read_text()
    assert "void big_fn_set_num_threads(int n);" in header
    lib = ctypes.CDLL(str(lib_path))
    lib.big_fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.big_fn.restype = ctypes.c_int
    lib.big_fn_set_num_threads.argtypes = [ctypes.c_int]
    expected = _interpreted(big_elementwise, x)[0]
    outs = []
    for n in (None, 2, 3, 0):  # default, two, three, and a bad count (clamped to 1)
        if n is not None:
            lib.big_fn_set_num_threads(n)
        out = np.empty_like(x)
        assert lib.big_fn(x.ctypes.data, out.ctypes.data) == 0
        outs.append(out)
        np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-14)
    assert all(np.array_equal(outs[0], o) for o in outs)


def test_exported_library_links_into_a_c_program_with_threads(tmp_path):
    if CC is None:
        pytest.skip("no C compiler ('cc')")
    x = -3.0 + 6.0 * np.arange(400_000.0) / (400_000 - 1)   # as main.c computes it
    symdl.export(big_elementwise, x, path=tmp_path / "libbig.so", name="big_fn")
    (tmp_path / "main.c").write_text(textwrap.dedent("""
        #include <stdio.h>
        #include <stdlib.h>
        #include "libbig.h"
        int main(void) {
            double *x = malloc(sizeof(double) * BIG_FN_IN0_SIZE), *y = malloc(sizeof(double) * BIG_FN_OUT0_SIZE);
            for (int64_t i = 0; i < BIG_FN_IN0_SIZE; i++) x[i] = -3.0 + 6.0 * (double)i / (BIG_FN_IN0_SIZE - 1);
            big_fn_set_num_threads(2);
            int rc = big_fn(x, y);
            printf("%d %.17g %.17g %.17g\\n", rc, y[0], y[BIG_FN_OUT0_SIZE / 3], y[BIG_FN_OUT0_SIZE - 1]);
            return 0;
        }
    """))
    build = subprocess.run([CC, "-O2", "-o", str(tmp_path / "main"), str(tmp_path / "main.c"), f"-I{tmp_path}",
                            f"-L{tmp_path}", "-lbig", "-Wl,-rpath,$ORIGIN", "-lm"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(tmp_path / "main")], capture_output=True, text=True, timeout=60)
    rc, *values = run.stdout.split()
    expected = _interpreted(big_elementwise, x)[0]
    assert rc == "0"
    np.testing.assert_allclose([float(v) for v in values], expected[[0, x.size // 3, -1]], rtol=1e-14, atol=1e-14)


def test_pickled_code_with_split_kernels_runs_elsewhere_without_llvm(tmp_path):
    # A Dask worker receives compiled code by pickle: code that calls the
    # process's thread helper takes the helper's object code along, so the
    # receiving process runs no LLVM optimisation or code generation at all
    import pickle
    x = np.linspace(-3.0, 3.0, 1 << 20)
    compiled = symdl.compile(lambda v: symdl.exp(symdl.sin(v)) * v, x)
    assert parallel.RUNTIME_SYMBOL in compiled.llvm_ir
    (tmp_path / "f.pkl").write_bytes(pickle.dumps(compiled))
    child = textwrap.dedent(f"""
        import pickle, sys
        import numpy as np
        import codegen.llvm as llvm
        def refuse(*args, **kwargs):
            raise AssertionError("LLVM ran in the receiving process")
        llvm.optimize = llvm.compile_object = refuse
        f = pickle.loads(open({str(tmp_path / "f.pkl")!r}, "rb").read())
        x = np.linspace(-3.0, 3.0, 1 << 20)
        got = np.asarray(f(x))
        assert np.allclose(got, np.exp(np.sin(x)) * x, rtol=1e-13, atol=1e-13), "wrong values"
        print("ok")
    """)
    env = {**os.environ, "SYMDL_NUM_THREADS": "2", "SYMDL_CACHE_DIR": "0", "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_pickled_thread_helper_is_checked():
    # the helper's bytes are part of the checksum: damaged on the way, the
    # code is refused before anything is mapped
    import pickle
    x = np.linspace(-3.0, 3.0, 1 << 20)
    compiled = symdl.compile(lambda v: symdl.exp(symdl.sin(v)) * v, x)
    artifact = compiled._artifact
    state = artifact.__getstate__()
    assert state["_runtime"]
    damaged = dict(state, _runtime=state["_runtime"][:-1] + bytes([state["_runtime"][-1] ^ 1]))
    with pytest.raises(ValueError, match="damaged"):
        type(artifact).__new__(type(artifact)).__setstate__(damaged)
    pickle.loads(pickle.dumps(artifact))   # intact: accepted


# ---------------------------------------------------------------- products split into row slices
# A product through the generated gemm with at least GEMM_SPLIT_WORK
# multiply-adds is cut into row slices at compile time, each with scratch
# panels of its own; threads share the slices (codegen/lower/contract.py).

@pytest.fixture
def generated_gemm(monkeypatch):
    monkeypatch.setenv("SYMDL_BLAS", "0")


def _matmul_bound(a, b, dtype):
    return (a.shape[-1] + 2) * np.finfo(dtype).eps * (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mkn", [(256, 256, 256), (301, 70, 250), (1000, 64, 96)])
def test_large_products_split_into_row_slices_give_the_same_bits(generated_gemm, dtype, mkn):
    from codegen.lower.contract import GEMM_SPLIT_WORK
    m, k, n = mkn
    assert m * k * n >= GEMM_SPLIT_WORK
    rng = np.random.default_rng(m)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    c = rng.standard_normal(m).astype(dtype)
    for fun, args, ref, bound in (
            (lambda a, b: a @ b, (a, b), a.astype(np.float64) @ b, _matmul_bound(a, b, dtype)),
            # with a fused epilogue: each slice's panels run it
            (lambda a, b, c: symdl.tanh(a @ b + c[:, None]), (a, b, c),
             np.tanh(a.astype(np.float64) @ b + c[:, None]), _matmul_bound(a, b, dtype) + 4 * np.finfo(dtype).eps)):
        compiled = symdl.compile(fun, *args)
        assert parallel.RUNTIME_SYMBOL in compiled.llvm_ir          # the product itself is split
        results = _per_thread_count(compiled, args)
        for t, (got,) in results.items():
            assert got.dtype == np.dtype(dtype)
            assert np.array_equal(got, results[1][0]), f"{t} threads differ from one"
            assert np.all(np.abs(got - ref) <= bound)


def test_overflow_rule_in_each_row_slice(generated_gemm):
    # partial sums overflow in rows of different slices (first, middle,
    # last); each slice applies the rule to its own rows and reruns its part
    # of the epilogue
    from tests.test_sum_overflow import _big, _exact_matmul
    m, k, n = 301, 70, 250
    rng = np.random.default_rng(7)
    big = _big("float64")
    a = rng.integers(-2, 3, (m, k)) * big
    b = rng.integers(1, 3, (k, n)) * 1.0
    b[:8] = 2
    for r in (0, 150, m - 1):
        a[r] = 0.0
        a[r, :4] = 48 * big          # partial sums overflow
        a[r, 4:6] = -48 * big        # the exact sum is finite
    a[77, :2] = [np.inf, -np.inf]    # NaN by the rule
    want = _exact_matmul(a, b, "float64")
    compiled = symdl.compile(lambda x, y: symdl.relu(x @ y) * 0.5, a, b)
    assert parallel.RUNTIME_SYMBOL in compiled.llvm_ir
    for t, (got,) in _per_thread_count(compiled, (a, b)).items():
        np.testing.assert_array_equal(got, np.maximum(want, 0) * 0.5, err_msg=f"{t} threads")


def test_products_below_the_threshold_or_through_blas_are_not_split(monkeypatch):
    from codegen import blas
    from codegen.lower.contract import GEMM_SPLIT_WORK
    monkeypatch.setenv("SYMDL_BLAS", "0")
    a = np.ones((64, 64))
    assert 64 ** 3 < GEMM_SPLIT_WORK
    assert parallel.RUNTIME_SYMBOL not in symdl.compile(lambda x: x @ x, a).llvm_ir
    if blas.library() is not None:        # BLAS has threads of its own
        monkeypatch.setenv("SYMDL_BLAS", "always")
        big = np.ones((256, 256))
        assert parallel.RUNTIME_SYMBOL not in symdl.compile(lambda x: x @ x, big).llvm_ir


def test_exported_library_with_a_split_product(tmp_path):
    if CC is None:
        pytest.skip("no C compiler ('cc') to link a shared library")
    rng = np.random.default_rng(12)
    a, b = rng.standard_normal((300, 128)), rng.standard_normal((128, 200))
    lib_path = symdl.export(lambda a, b: symdl.sigmoid(a @ b), a, b, path=tmp_path / "libmm.so", name="mm_fn")
    lib = ctypes.CDLL(str(lib_path))
    lib.mm_fn.argtypes = [ctypes.c_void_p] * 3
    lib.mm_fn.restype = ctypes.c_int
    lib.mm_fn_set_num_threads.argtypes = [ctypes.c_int]
    outs = []
    for n in (None, 2, 3):
        if n is not None:
            lib.mm_fn_set_num_threads(n)
        out = np.empty((300, 200))
        assert lib.mm_fn(a.ctypes.data, b.ctypes.data, out.ctypes.data) == 0
        outs.append(out)
    ref = 1 / (1 + np.exp(-(a @ b)))
    np.testing.assert_allclose(outs[0], ref, rtol=1e-12, atol=1e-13)
    assert all(np.array_equal(outs[0], o) for o in outs)


def test_concurrent_python_threads_calling_a_split_product(generated_gemm):
    # each call has a workspace of its own, so the slices' scratch panels of
    # two calls never meet
    parallel.set_num_threads(2)
    rng = np.random.default_rng(13)
    a, b = rng.standard_normal((300, 200)), rng.standard_normal((200, 250))
    f = symdl.compile(lambda x, y: symdl.relu(x @ y) + 1.0, a, b)
    assert parallel.RUNTIME_SYMBOL in f.llvm_ir
    inputs = [(rng.standard_normal((300, 200)), rng.standard_normal((200, 250))) for _ in range(4)]

    def work(k):
        x, y = inputs[k]
        want = np.maximum(x @ y, 0) + 1.0
        for _ in range(10):
            np.testing.assert_allclose(np.asarray(f(x, y)), want, rtol=1e-12, atol=1e-12, err_msg=f"thread {k}")
    run_in_threads(work, range(4))
