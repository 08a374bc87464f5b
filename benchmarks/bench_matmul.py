"""matmul: square products n = 32 ... 1024, and the small, skinny products of training.

symdl ``compile(lambda a, b: a @ b)`` with its default policy (the generated
packed kernel below ``codegen.blas.BLAS_MIN_WORK`` multiply-adds, OpenBLAS
above), and as diagnostic rows the generated kernel alone (``SYMDL_BLAS=0``)
and the plain loop nest (``SYMDL_GEMM=never``, small sizes only); against
numpy (OpenBLAS, its default threads), PyTorch (one thread, as everywhere
here) and JAX ``jit``.  Then the small and skinny products of an MLP's
training step (a side or K of 10 classes, every operand transposition,
float32 and float64): the native entry (``f._entry``, no argument checks)
against numpy's OpenBLAS on one thread writing into a preallocated result,
as each call of the step would.  Results are checked against numpy in
float64.

    python benchmarks/bench_matmul.py [--quick] [--json PATH]
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

import common
from common import Report, attempt, measure, parse_args, peer

SIZES = (32, 64, 128, 256, 512, 1024)
#: (M, K, N): the products of an MLP 64-64-10 with batch 300 (forward,
#: cotangents, weight gradients) and two square-ish ones.
SKINNY = ((64, 64, 300), (10, 64, 300), (64, 10, 300), (10, 300, 64), (64, 300, 64), (128, 64, 256), (96, 96, 96))
LAYOUTS = {"A @ B": (False, False), "A.T @ B": (True, False), "A @ B.T": (False, True), "A.T @ B.T": (True, True)}


def case(n: int, dtype: str) -> str:
    return f"{dtype} {n} x {n} @ {n} x {n}"


@contextlib.contextmanager
def env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("matmul", "matmul: square matrix products, n = 32 ... 1024")
    import symdl
    from codegen import blas
    common.warm_up(rep)
    sizes = SIZES[::2] + (SIZES[-1],) if common.QUICK else SIZES
    torch = peer("torch")
    jax = peer("jax")
    for dtype in ("float32", "float64"):
        for n in sizes:
            c = case(n, dtype)
            rng = np.random.default_rng(n)
            a = rng.standard_normal((n, n)).astype(dtype)
            b = rng.standard_normal((n, n)).astype(dtype)
            ref = a.astype(np.float64) @ b.astype(np.float64)
            tol = 1e-4 if dtype == "float32" else 1e-10

            def bench_symdl(a=a, b=b, c=c, n=n, ref=ref, tol=tol):
                f = symdl.compile(lambda x, y: x @ y, a, b)
                path = "BLAS" if blas.symbol_prefix in f.llvm_ir else "generated kernel"
                rep.add(c, "symdl compile", measure(lambda: f(a, b)), symdl=True, note=path)
                rep.check(f"{c}: symdl", np.asarray(f(a, b)), ref, tol=tol * n)
                with env(SYMDL_BLAS="0"):
                    g = symdl.compile(lambda x, y: x @ y, a, b)
                rep.add(c, "symdl, generated kernel only (SYMDL_BLAS=0)", measure(lambda: g(a, b)), symdl=True,
                        ref=False)
                rep.check(f"{c}: symdl generated", np.asarray(g(a, b)), ref, tol=tol * n)
                if n <= 128:
                    with env(SYMDL_BLAS="0", SYMDL_GEMM="never"):
                        h = symdl.compile(lambda x, y: x @ y, a, b)
                    rep.add(c, "symdl, loop nest (SYMDL_GEMM=never)", measure(lambda: h(a, b)), symdl=True,
                            ref=False)

            attempt(rep, c, "symdl", bench_symdl)
            rep.add(c, "numpy", measure(lambda a=a, b=b: a @ b), note="OpenBLAS, default threads")
            if blas.set_num_threads(1):  # numpy shares codegen.blas's OpenBLAS
                try:
                    rep.add(c, "numpy, OpenBLAS on one thread", measure(lambda a=a, b=b: a @ b))
                finally:
                    blas.set_num_threads(int(os.environ.get("SYMDL_NUM_THREADS") or os.cpu_count() or 1))
            if torch is None:
                rep.missing(c, "PyTorch", "torch")
            else:
                ta, tb = torch.from_numpy(a), torch.from_numpy(b)
                rep.add(c, "PyTorch", measure(lambda ta=ta, tb=tb: ta @ tb), note="one thread")
            if jax is None:
                rep.missing(c, "JAX jit", "jax")
            else:
                mm = jax.jit(lambda x, y: x @ y)
                ja, jb = jax.device_put(a), jax.device_put(b)
                mm(ja, jb).block_until_ready()
                rep.add(c, "JAX jit", measure(lambda ja=ja, jb=jb, mm=mm: mm(ja, jb).block_until_ready()),
                        note="XLA's threads")
    skinny(rep)
    lib = blas.library()
    rep.note(f"BLAS: {lib.ident if lib else 'none found'}; threshold {blas.BLAS_MIN_WORK} multiply-adds; "
             f"SYMDL_NUM_THREADS={os.environ.get('SYMDL_NUM_THREADS', 'unset (all cores)')}")
    rep.finish(args)


def skinny(rep) -> None:
    import symdl
    from codegen import blas
    one_thread = blas.set_num_threads(1)
    try:
        for dtype in ("float32", "float64"):
            for (m, k, n) in SKINNY[:3] if common.QUICK else SKINNY:
                for name, (ta, tb) in LAYOUTS.items():
                    if common.QUICK and name != "A @ B.T" and (m, k, n) != SKINNY[1]:
                        continue
                    c = f"{dtype} {name}, (M, K, N) = {(m, k, n)}"
                    rng = np.random.default_rng(m * k * n)
                    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                    op_a = (lambda x: x.T) if ta else (lambda x: x)
                    op_b = (lambda x: x.T) if tb else (lambda x: x)
                    ref = op_a(a).astype(np.float64) @ op_b(b).astype(np.float64)

                    tol = (1e-5 if dtype == "float32" else 1e-12) * k

                    def bench_symdl(a=a, b=b, c=c, ref=ref, op_a=op_a, op_b=op_b, tol=tol):
                        f = symdl.compile(lambda x, y: op_a(x) @ op_b(y), a, b)
                        rep.add(c, "symdl compile, native entry", measure(lambda: f._entry(a, b)), symdl=True)
                        rep.check(f"{c}: symdl", np.asarray(f(a, b)), ref, tol=tol)

                    attempt(rep, c, "symdl", bench_symdl)
                    out = np.empty((m, n), dtype)
                    rep.add(c, "numpy matmul(out=)", measure(lambda a=a, b=b, out=out, op_a=op_a, op_b=op_b:
                                                             np.matmul(op_a(a), op_b(b), out=out)),
                            note="OpenBLAS on one thread" if one_thread else "OpenBLAS, default threads")
    finally:
        if one_thread:
            blas.set_num_threads(int(os.environ.get("SYMDL_NUM_THREADS") or os.cpu_count() or 1))


if __name__ == "__main__":
    main()
