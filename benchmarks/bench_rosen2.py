"""rosen2: value and gradient of y = (x2 - x1^2)^2 + (1 - x1)^2 at (2, 2), per call.

symdl three ways (value_and_grad, a dlaccelerate'd model called through
dlfeval as in MATLAB, and symdl.compile) against hand-written C through
ctypes, numba, JAX, PyTorch, SymPy, SymEngine and CasADi; plus first-call
times (trace + compile, disk cache off) and the first result of a new process
with a warm disk cache.

    python benchmarks/bench_rosen2.py [--quick] [--json PATH]
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import common
from common import Report, attempt, first_call, measure, parse_args, peer, symdl_disk_cache_disabled

CASE = "value + gradient at (2, 2), per call"
CASE_NEW = "new process: first result after import symdl"
X1, X2 = 2.0, 2.0
WANT = (5.0, 18.0, -4.0)


def rosen2(x1, x2):
    return (x2 - x1**2) ** 2 + (1 - x1) ** 2


# The script a new process runs: time `import symdl`, then the first result.
_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import symdl
t1 = time.perf_counter()
def rosen2(x1, x2):
    return (x2 - x1**2) ** 2 + (1 - x1) ** 2
if sys.argv[1] == "value_and_grad":
    f = symdl.value_and_grad(rosen2, argnums=(0, 1))
    r = f(2.0, 2.0)
    out = [float(r[0]), float(r[1][0]), float(r[1][1])]
else:
    def model(x1, x2):
        y = rosen2(x1, x2)
        g1, g2 = symdl.dlgradient(y, x1, x2)
        return y, g1, g2
    acc = symdl.dlaccelerate(model)
    r = symdl.dlfeval(acc, symdl.dlarray(2.0), symdl.dlarray(2.0))
    out = [float(v) for v in r]
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "result": out}))
"""


def new_process(variant: str, cache_dir: str, runs: int) -> list[dict]:
    env = dict(os.environ, SYMDL_CACHE_DIR=cache_dir, PYTHONPATH=str(common.REPO) + os.pathsep
               + os.environ.get("PYTHONPATH", ""))
    results = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _CHILD, variant], capture_output=True, text=True, env=env,
                              cwd=tempfile.gettempdir())
        if proc.returncode:
            raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "child failed")
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


def bench_symdl(rep: Report) -> None:
    start = time.perf_counter()
    import numpy as np
    import symdl
    rep.note(f"import symdl (numpy already imported): {(time.perf_counter() - start) * 1e3:.0f} ms in this process")

    with symdl_disk_cache_disabled():
        # The very first symdl call of the process: includes LLVM's one-time set-up.
        vag = symdl.value_and_grad(rosen2, argnums=(0, 1))
        t_vag, r = first_call(lambda: vag(X1, X2))
        rep.check("symdl value_and_grad vs exact (5, 18, -4)", [r[0], *r[1]], WANT)

        def model(x1, x2):
            y = rosen2(x1, x2)
            g1, g2 = symdl.dlgradient(y, x1, x2)
            return y, g1, g2

        acc = symdl.dlaccelerate(model)
        d1, d2 = symdl.dlarray(X1), symdl.dlarray(X2)
        t_acc, r = first_call(lambda: symdl.dlfeval(acc, d1, d2))
        rep.check("symdl dlaccelerate+dlfeval vs exact", [float(v) for v in r], WANT)

        def model_c(x1, x2):  # a separate function, so nothing is shared with `model`'s trace
            y = rosen2(x1, x2)
            g1, g2 = symdl.dlgradient(y, x1, x2)
            return y, g1, g2

        t_cmp, cf = first_call(lambda: symdl.compile(model_c, X1, X2))
        r = cf(X1, X2)
        rep.check("symdl compile vs exact", [float(v) for v in r], WANT)

    rep.add(CASE, "symdl value_and_grad", measure(lambda: vag(X1, X2)), t_vag, symdl=True,
            note="first symdl call of the process")
    rep.add(CASE, "symdl dlfeval(dlaccelerate)", measure(lambda: symdl.dlfeval(acc, d1, d2)), t_acc,
            symdl=True)
    rep.add(CASE, "symdl compile", measure(lambda: cf(X1, X2)), t_cmp, symdl=True)
    rep.note(f"dlaccelerate hit_rate after timing: {acc.hit_rate:.2f} %")

    # Where does a cached call's time go?  The bare native entry, called
    # with prepared arrays (what ctypes costs symdl at the bottom).
    entry = cf._entry
    a1, a2 = np.array(X1), np.array(X2)
    rep.add(CASE, "symdl native entry alone (diagnostic)", measure(lambda: entry(a1, a2)), None,
            symdl=True, ref=False, note="cf._entry(a1, a2): the ctypes call, no argument checks or output assembly")


def bench_new_process(rep: Report) -> None:
    for variant in ("value_and_grad", "dlfeval"):
        with tempfile.TemporaryDirectory(prefix="symdl-cache-") as cache:
            cold = new_process(variant, cache, 1)[0]          # populates the disk cache
            warm = new_process(variant, cache, 3 if common.QUICK else 5)
        nocache = new_process(variant, "0", 1 if common.QUICK else 3)
        first_warm = statistics.median(w["first"] for w in warm)
        imp = statistics.median(w["import"] for w in warm)
        rep.check(f"new process {variant} vs exact", warm[0]["result"], WANT)
        rep.add(CASE_NEW, f"symdl {variant}, warm disk cache", first_warm, None, symdl=True, ref=False,
                note=f"median of {len(warm)} processes; import symdl took {imp * 1e3:.0f} ms before it",
                import_seconds=imp)
        rep.add(CASE_NEW, f"symdl {variant}, disk cache off", statistics.median(n["first"] for n in nocache),
                None, symdl=True, ref=False,
                note=f"median of {len(nocache)}; the run that filled the cache: {cold['first'] * 1e3:.0f} ms")


def bench_c(rep: Report) -> None:
    lib, build = common.c_library(("-O2",))
    if lib is None:
        rep.add(CASE, "C -O2 via ctypes", None, note=build)
        return
    fn = lib.rosen2_value_and_grad
    g1, g2 = ctypes.c_double(), ctypes.c_double()
    p1, p2 = ctypes.pointer(g1), ctypes.pointer(g2)

    def call():
        return fn(X1, X2, p1, p2), g1.value, g2.value

    rep.check("C peer vs exact", call(), WANT)
    rep.add(CASE, "C -O2 via ctypes", measure(call), build, note="build = cc")


def bench_numba(rep: Report) -> None:
    numba = peer("numba")
    if numba is None:
        return rep.missing(CASE, "numba @njit (hand-written gradient)", "numba")

    @numba.njit(cache=False)
    def vg(x1, x2):
        r = x2 - x1 * x1
        s = 1.0 - x1
        return r * r + s * s, -4.0 * x1 * r - 2.0 * s, 2.0 * r

    build, _ = first_call(lambda: vg(X1, X2))
    rep.add(CASE, "numba @njit (hand-written gradient)", measure(lambda: vg(X1, X2)), build)


def bench_jax(rep: Report) -> None:
    jax = peer("jax")
    if jax is None:
        return rep.missing(CASE, "JAX jit(value_and_grad)", "jax")
    f = jax.jit(jax.value_and_grad(rosen2, argnums=(0, 1)))
    build, _ = first_call(lambda: jax.block_until_ready(f(X1, X2)))
    y, (a, b) = f(X1, X2)
    rep.check("JAX peer vs exact", [float(y), float(a), float(b)], WANT)
    rep.add(CASE, "JAX jit(value_and_grad)", measure(lambda: jax.block_until_ready(f(X1, X2))), build)


def bench_torch(rep: Report) -> None:
    torch = peer("torch")
    if torch is None:
        return rep.missing(CASE, "PyTorch autograd", "torch")

    def call():
        x1 = torch.tensor(X1, dtype=torch.float64, requires_grad=True)
        x2 = torch.tensor(X2, dtype=torch.float64, requires_grad=True)
        y = rosen2(x1, x2)
        g1, g2 = torch.autograd.grad(y, (x1, x2))
        return y, g1, g2

    build, r = first_call(call)
    rep.check("PyTorch peer vs exact", [float(v) for v in r], WANT)
    rep.add(CASE, "PyTorch autograd", measure(call), build, note="eager; build = first call")


def bench_sympy(rep: Report) -> None:
    sp = peer("sympy")
    if sp is None:
        return rep.missing(CASE, "SymPy lambdify (math)", "sympy")

    def build():
        x1, x2 = sp.symbols("x1 x2")
        y = rosen2(x1, x2)
        return sp.lambdify((x1, x2), [y, sp.diff(y, x1), sp.diff(y, x2)], modules="math")

    t, f = first_call(lambda: (lambda g: (g, g(X1, X2)))(build()))
    f = f[0]
    rep.add(CASE, "SymPy diff + lambdify (math)", measure(lambda: f(X1, X2)), t)


def bench_symengine(rep: Report) -> None:
    se = peer("symengine")
    if se is None:
        return rep.missing(CASE, "SymEngine Lambdify", "symengine")
    x1, x2 = se.symbols("x1 x2")
    y = rosen2(x1, x2)
    exprs = [y, y.diff(x1), y.diff(x2)]
    for backend in ("llvm", "lambda"):
        def build(backend=backend):
            f = se.Lambdify([x1, x2], exprs, backend=backend)
            f(X1, X2)
            return f
        try:
            t, f = first_call(build)
        except Exception as exc:  # no LLVM in this SymEngine build
            rep.add(CASE, f"SymEngine Lambdify ({backend})", None, note=f"unavailable: {exc}")
            continue
        rep.add(CASE, f"SymEngine Lambdify ({backend})", measure(lambda f=f: f(X1, X2)), t)


def bench_casadi(rep: Report) -> None:
    ca = peer("casadi")
    if ca is None:
        return rep.missing(CASE, "CasADi Function", "casadi")

    def build():
        x1, x2 = ca.SX.sym("x1"), ca.SX.sym("x2")
        y = rosen2(x1, x2)
        f = ca.Function("vg", [x1, x2], [y, ca.gradient(y, x1), ca.gradient(y, x2)])
        f(X1, X2)
        return f

    t, f = first_call(build)
    rep.check("CasADi peer vs exact", [float(v) for v in f(X1, X2)], WANT)
    rep.add(CASE, "CasADi Function (SX, VM)", measure(lambda: f(X1, X2)), t)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("rosen2", "rosen2: value and gradient of (x2 - x1^2)^2 + (1 - x1)^2 at (2, 2)")
    rep.column[CASE_NEW] = "first result after import"
    attempt(rep, CASE, "symdl", lambda: bench_symdl(rep))
    for name, fn in [("C", bench_c), ("numba", bench_numba), ("JAX", bench_jax), ("PyTorch", bench_torch),
                     ("SymPy", bench_sympy), ("SymEngine", bench_symengine), ("CasADi", bench_casadi)]:
        attempt(rep, CASE, name, lambda fn=fn: fn(rep))
    attempt(rep, CASE_NEW, "symdl new process", lambda: bench_new_process(rep))
    rep.finish(args)


if __name__ == "__main__":
    main()
