"""nthderiv: the k-th derivative (k = 1, 2, 4, 6, 8) of exp(sin(x)) / (1 + x^2)
on 1e5 points; compile time and evaluation time.

symdl.derivative(f, order=k) against JAX (k nested grads, vmap, jit),
SymEngine (diff + Lambdify, LLVM backend), SymPy (diff + lambdify to numpy,
with cse) and CasADi (SX jacobian k times + cse, the VM mapped over the
points; and CasADi's jit through the system C compiler).

    python benchmarks/bench_nthderiv.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import numpy as np

import common
from common import Report, attempt, first_call, measure, parse_args, peer, symdl_disk_cache_disabled

ORDERS = (1, 2, 4, 6, 8)
N_POINTS = 10**5
X = np.linspace(-3.0, 3.0, N_POINTS)


def f_numpy(x):
    return np.exp(np.sin(x)) / (1 + x**2)


def case(k: int) -> str:
    return f"k = {k}"


def rel_check(rep: Report, what: str, got, ref) -> None:
    """max |got - ref| / max |ref|: the k-th derivative grows fast with k."""
    if ref is not None:
        scale = np.max(np.abs(ref))
        rep.check(f"{what} vs SymPy, relative to max|ref|", np.asarray(got).reshape(ref.shape) / scale, ref / scale)


def bench_symdl(rep: Report, k: int, ref: np.ndarray | None) -> np.ndarray:
    import symdl
    from symdl.compiler import pipeline as backend
    with symdl_disk_cache_disabled():
        d = symdl.derivative(f_numpy, order=k)
        llvm_before = backend.STATS["compile_seconds"]
        build, got = first_call(lambda: d(X))
        codegen = backend.STATS["compile_seconds"] - llvm_before
    rel_check(rep, f"symdl k={k}", got, ref)
    rep.add(case(k), "symdl derivative", measure(lambda: d(X)), build, symdl=True,
            note=f"of the build, codegen + LLVM: {codegen * 1e3:.0f} ms", codegen_seconds=codegen)
    return got


def bench_sympy(rep: Report, k: int) -> np.ndarray | None:
    sp = peer("sympy")
    if sp is None:
        rep.missing(case(k), "SymPy diff + lambdify (numpy, cse)", "sympy")
        return None

    def build():
        x = sp.Symbol("x")
        expr = sp.diff(sp.exp(sp.sin(x)) / (1 + x**2), x, k)
        fn = sp.lambdify(x, expr, modules="numpy", cse=True)
        return fn, fn(X)

    t, (fn, val) = first_call(build)
    rep.add(case(k), "SymPy diff + lambdify (numpy, cse)", measure(lambda: fn(X)), t)
    return val


def bench_symengine(rep: Report, k: int, ref) -> None:
    se = peer("symengine")
    if se is None:
        return rep.missing(case(k), "SymEngine diff + Lambdify (llvm)", "symengine")

    def build():
        x = se.Symbol("x")
        expr = se.exp(se.sin(x)) / (1 + x**2)
        for _ in range(k):
            expr = expr.diff(x)
        fn = se.Lambdify([x], [expr], backend="llvm", cse=True)
        fn(X)
        return fn

    t, fn = first_call(build)
    rel_check(rep, f"SymEngine k={k}", fn(X), ref)
    rep.add(case(k), "SymEngine diff + Lambdify (llvm, cse)", measure(lambda: fn(X)), t,
            note="output (N, 1)")


def bench_jax(rep: Report, k: int, ref) -> None:
    jax = peer("jax")
    if jax is None:
        return rep.missing(case(k), "JAX jit(vmap(grad^k))", "jax")
    jnp = jax.numpy
    g = lambda x: jnp.exp(jnp.sin(x)) / (1 + x**2)  # noqa: E731
    for _ in range(k):
        g = jax.grad(g)
    fn = jax.jit(jax.vmap(g))
    xj = jax.device_put(X)
    t, _ = first_call(lambda: fn(xj).block_until_ready())
    rel_check(rep, f"JAX k={k}", np.asarray(fn(xj)), ref)
    rep.add(case(k), "JAX jit(vmap(grad^k))", measure(lambda: fn(xj).block_until_ready()), t)


def _casadi_expr(ca, k: int):
    x = ca.SX.sym("x")
    expr = ca.exp(ca.sin(x)) / (1 + x**2)
    for _ in range(k):
        expr = ca.jacobian(expr, x)
    return x, ca.cse(expr)


def bench_casadi(rep: Report, k: int) -> None:
    ca = peer("casadi")
    if ca is None:
        return rep.missing(case(k), "CasADi (SX, cse, map)", "casadi")
    row = X.reshape(1, -1)

    def build():
        x, expr = _casadi_expr(ca, k)
        fn = ca.Function(f"d{k}", [x], [expr]).map(N_POINTS)
        fn(row)
        return fn

    t, fn = first_call(build)
    rep.add(case(k), "CasADi (SX, cse, VM, map)", measure(lambda: fn(row).full()), t)


def bench_casadi_jit(rep: Report, k: int, ref) -> None:
    ca = peer("casadi")
    if ca is None or common.c_compiler() is None:
        return
    row = X.reshape(1, -1)
    opts = {"jit": True, "compiler": "shell",
            "jit_options": {"compiler": common.c_compiler(), "flags": ["-O2"], "verbose": False}}

    def build():
        x, expr = _casadi_expr(ca, k)
        fn = ca.Function(f"d{k}j", [x], [expr], opts).map(N_POINTS)
        fn(row)
        return fn

    t, fn = first_call(build)
    rel_check(rep, f"CasADi jit k={k}", fn(row).full(), ref)
    rep.add(case(k), "CasADi jit (generated C, cc -O2, map)", measure(lambda: fn(row).full()), t)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("nthderiv", "nthderiv: k-th derivative of exp(sin(x)) / (1 + x^2) on 1e5 points")
    start = time.perf_counter()
    import symdl  # noqa: F401
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    for k in ORDERS:
        print(f"-- k = {k}", flush=True)
        ref = attempt(rep, case(k), "SymPy", lambda k=k: bench_sympy(rep, k))
        attempt(rep, case(k), "symdl derivative", lambda k=k, ref=ref: bench_symdl(rep, k, ref))
        attempt(rep, case(k), "SymEngine", lambda k=k, ref=ref: bench_symengine(rep, k, ref))
        attempt(rep, case(k), "JAX", lambda k=k, ref=ref: bench_jax(rep, k, ref))
        attempt(rep, case(k), "CasADi", lambda k=k: bench_casadi(rep, k))
        attempt(rep, case(k), "CasADi jit", lambda k=k, ref=ref: bench_casadi_jit(rep, k, ref))
    rep.finish(args)


if __name__ == "__main__":
    main()
