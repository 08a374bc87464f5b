"""nthderiv: the k-th derivative (k = 1 ... 16) of exp(sin(x)) / (1 + x^2)
on 1e5 points; compile time, and evaluation time for k = 1, 2, 4, 6, 8.

symdl.derivative(f, order=k) (Taylor-mode propagation,
symdl.autodiff.taylor) and, beside it, nested symbolic forward mode (jvp
applied k times), against JAX (k nested grads, vmap, jit; up to the
order where one JAX build passes ~30 s), SymEngine (diff + Lambdify, LLVM
backend), SymPy (diff + lambdify to numpy, with cse; k <= 10) and CasADi (SX
jacobian k times + cse, the VM mapped over the points; and CasADi's jit
through the system C compiler; k = 1, 2, 4, 6, 8).  At the end, one table of
compile times for k = 1 ... 16 as ratios.

    python benchmarks/bench_nthderiv.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import numpy as np

import common
from common import Report, attempt, first_call, measure, parse_args, peer, symdl_disk_cache_disabled

ORDERS = tuple(range(1, 17))
QUICK_ORDERS = (1, 2, 4, 8, 12, 16)
EVAL_ORDERS = (1, 2, 4, 6, 8)  # evaluation is timed (and CasADi run) at these orders only
SYMPY_MAX = 10  # SymPy's diff of this function takes seconds beyond
JAX_BUDGET = 30.0  # s: JAX runs while its predicted build stays under this
JAX_GROWTH = 2.4  # JAX's build time per order grows about this much (k = 4 -> 8 measured)
N_POINTS = 10**5
X = np.linspace(-3.0, 3.0, N_POINTS)


def f_numpy(x):
    return np.exp(np.sin(x)) / (1 + x**2)


def case(k: int) -> str:
    return f"k = {k}"


REFERENCE = {"name": "SymPy"}  # the reference of the current order (SymEngine beyond SymPy's reach)


def rel_check(rep: Report, what: str, got, ref) -> None:
    """max |got - ref| / max |ref|: the k-th derivative grows fast with k."""
    if ref is not None:
        scale = np.max(np.abs(ref))
        rep.check(f"{what} vs {REFERENCE['name']}, relative to max|ref|",
                  np.asarray(got).reshape(ref.shape) / scale, ref / scale)


def _nested_transform(fun, k: int):
    """``derivative(fun, order=k)`` by nested symbolic forward mode (jvp k times)."""
    from symdl.compiler import transforms as T
    from symdl.autodiff.reverse import jvp
    from symdl.ir import build as B

    def traced(x):
        x = T._traced_array(x, "derivative", 0)
        node = fun(x)._node
        T._check_elementwise(x._node, node)
        for _ in range(k):
            (t,) = jvp([node], [x._node], [B.fill(1.0, x._node)])
            node = B.fill(0.0, x._node) if t is None else t
        return T._wrap(node)
    return T._Transform(traced, "derivative", fun)


def _symdl_variants():
    import symdl
    return {"symdl derivative": lambda k: symdl.derivative(f_numpy, order=k),
            "symdl nested (jvp^k)": lambda k: _nested_transform(f_numpy, k)}


def bench_symdl(rep: Report, k: int, ref: np.ndarray | None, impl: str, make) -> float:
    from symdl.compiler import pipeline as backend
    with symdl_disk_cache_disabled():
        d = make(k)
        llvm_before = backend.STATS["compile_seconds"]
        build, got = first_call(lambda: d(X))
        codegen = backend.STATS["compile_seconds"] - llvm_before
    rel_check(rep, f"{impl} k={k}", got, ref)
    per_call = measure(lambda: d(X)) if k in EVAL_ORDERS else None
    rep.add(case(k), impl, per_call, build, symdl=True, ref=impl == "symdl derivative",
            note=f"of the build, codegen + LLVM: {codegen * 1e3:.0f} ms", codegen_seconds=codegen)
    return build


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
    rep.add(case(k), "SymPy diff + lambdify (numpy, cse)", measure(lambda: fn(X)) if k in EVAL_ORDERS else None, t)
    return val


def bench_symengine(rep: Report, k: int, ref) -> np.ndarray | None:
    se = peer("symengine")
    if se is None:
        rep.missing(case(k), "SymEngine diff + Lambdify (llvm)", "symengine")
        return None

    def build():
        x = se.Symbol("x")
        expr = se.exp(se.sin(x)) / (1 + x**2)
        for _ in range(k):
            expr = expr.diff(x)
        fn = se.Lambdify([x], [expr], backend="llvm", cse=True)
        fn(X)
        return fn

    t, fn = first_call(build)
    got = np.asarray(fn(X)).reshape(X.shape)
    rel_check(rep, f"SymEngine k={k}", got, ref)
    rep.add(case(k), "SymEngine diff + Lambdify (llvm, cse)", measure(lambda: fn(X)) if k in EVAL_ORDERS else None,
            t, note="output (N, 1)")
    return got


def bench_jax(rep: Report, k: int, ref) -> float | None:
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
    per_call = measure(lambda: fn(xj).block_until_ready()) if k in EVAL_ORDERS else None
    rep.add(case(k), "JAX jit(vmap(grad^k))", per_call, t)
    return t


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


COMPILE_COLUMNS = ("symdl derivative", "symdl nested (jvp^k)", "SymEngine", "JAX", "SymPy")


def compile_table(builds: dict[int, dict[str, float]]) -> str:
    """Compile (build + first call) times by order, and symdl's ratios to the peers."""
    def t(k, name):
        v = builds[k].get(name)
        return "—" if v is None else f"{v * 1e3:.0f} ms"

    def r(k, a, b):
        x, y = builds[k].get(a), builds[k].get(b)
        return "—" if not x or not y else f"{x / y:.2f}"
    head = ["k", *COMPILE_COLUMNS, "derivative / SymEngine", "derivative / JAX", "nested / SymEngine",
            "nested / derivative"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in sorted(builds):
        cells = [str(k), *(t(k, c) for c in COMPILE_COLUMNS),
                 r(k, "symdl derivative", "SymEngine"), r(k, "symdl derivative", "JAX"),
                 r(k, "symdl nested (jvp^k)", "SymEngine"), r(k, "symdl nested (jvp^k)", "symdl derivative")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("nthderiv", "nthderiv: k-th derivative of exp(sin(x)) / (1 + x^2) on 1e5 points")
    start = time.perf_counter()
    import symdl  # noqa: F401
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    builds: dict[int, dict[str, float]] = {}
    jax_last, jax_k = 0.0, 0
    for k in (QUICK_ORDERS if common.QUICK else ORDERS):
        print(f"-- k = {k}", flush=True)
        b = builds[k] = {}
        ref = None
        REFERENCE["name"] = "SymPy"
        if k <= SYMPY_MAX:
            ref = attempt(rep, case(k), "SymPy", lambda k=k: bench_sympy(rep, k))
            b["SymPy"] = rep.rows[-1].build
        got = attempt(rep, case(k), "SymEngine", lambda k=k, ref=ref: bench_symengine(rep, k, ref))
        b["SymEngine"] = rep.rows[-1].build
        if ref is None:  # beyond SymPy's reach, SymEngine is the reference
            ref, REFERENCE["name"] = got, "SymEngine"
        for impl, make in _symdl_variants().items():
            b[impl] = attempt(rep, case(k), impl, lambda k=k, ref=ref, impl=impl, make=make:
                              bench_symdl(rep, k, ref, impl, make))
        if jax_last * JAX_GROWTH ** (k - jax_k) <= JAX_BUDGET:
            jax_last = attempt(rep, case(k), "JAX", lambda k=k, ref=ref: bench_jax(rep, k, ref)) or 1e9
            jax_k = k
            b["JAX"] = rep.rows[-1].build
        if k in EVAL_ORDERS:
            attempt(rep, case(k), "CasADi", lambda k=k: bench_casadi(rep, k))
            attempt(rep, case(k), "CasADi jit", lambda k=k, ref=ref: bench_casadi_jit(rep, k, ref))
    rep.finish(args)
    print("\n### Compile time (build + first call, disk cache off) by order\n")
    print(compile_table(builds))


if __name__ == "__main__":
    main()
