"""rosenN: the N-dimensional Rosenbrock function
sum(100 (x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2):

* gradient at N = 1e6: symdl.grad against a hand-written C loop (cc -O2,
  ctypes), JAX jit(grad), PyTorch autograd and a hand-written numpy gradient;
* Hessian-vector product at N = 1000: symdl.hvp against JAX jit(jvp of grad),
  PyTorch torch.func, SymEngine (symbolic, LLVM Lambdify) and CasADi jtimes;
* dense Hessian at N = 200: symdl.hessian against JAX jit(hessian), PyTorch
  torch.autograd.functional.hessian, SymEngine (LLVM Lambdify of the symbolic
  Hessian) and CasADi hessian.

Per-call time and build time (trace + compile + first call for symdl with the
disk cache off; the peer's equivalent).

    python benchmarks/bench_rosenN.py [--quick] [--json PATH]
"""

from __future__ import annotations

import ctypes
import time

import numpy as np

import common
from common import Report, attempt, first_call, measure, parse_args, peer, symdl_disk_cache_disabled

N_GRAD, N_HVP, N_HESS = 10**6, 1000, 200
CASE_G = "gradient, N = 1e6"
CASE_HVP = "Hessian-vector product, N = 1000"
CASE_H = "dense Hessian, N = 200"


def rosen(x):
    """As a symdl user writes it: numpy functions on a dlarray."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_method(x):
    """The same with the .sum() method (JAX, PyTorch)."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def grad_numpy(x):
    """Hand-written gradient in numpy (the reference of the checks)."""
    g = np.zeros_like(x)
    r = x[1:] - x[:-1] ** 2
    g[:-1] = -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return g


def hvp_numpy(x, v):
    """Hand-written Hessian-vector product (tridiagonal Hessian)."""
    d = np.zeros_like(x)
    d[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    d[1:] += 200.0
    off = -400.0 * x[:-1]
    hv = d * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


def hessian_numpy(x):
    n = x.size
    return np.stack([hvp_numpy(x, e) for e in np.eye(n)])


def point(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2.0, 2.0, n)


# ---------------------------------------------------------------- gradient 1e6
def gradient_1e6(rep: Report) -> None:
    import symdl
    x = point(N_GRAD, 0)
    ref = grad_numpy(x)
    with symdl_disk_cache_disabled():
        g = symdl.grad(rosen)
        build, got = first_call(lambda: g(x))
    rep.check("symdl grad N=1e6 vs hand-written numpy", got, ref)
    rep.add(CASE_G, "symdl grad", measure(lambda: g(x)), build, symdl=True)
    attempt(rep, CASE_G, "C", lambda: _grad_c(rep, x, ref))
    attempt(rep, CASE_G, "JAX", lambda: _grad_jax(rep, x))
    attempt(rep, CASE_G, "PyTorch", lambda: _grad_torch(rep, x))
    rep.add(CASE_G, "numpy hand-written gradient", measure(lambda: grad_numpy(x)), None)


def _grad_c(rep: Report, x: np.ndarray, ref: np.ndarray) -> None:
    for flags in (("-O2",), ("-O3", "-march=native")):
        _grad_c_flags(rep, x, ref, flags)


def _grad_c_flags(rep: Report, x: np.ndarray, ref: np.ndarray, flags: tuple[str, ...]) -> None:
    lib, build = common.c_library(flags)
    label = f"C {' '.join(flags)} via ctypes"
    if lib is None:
        rep.add(CASE_G, label, None, note=build)
        return
    fn, px, n = lib.rosenN_grad, x.ctypes.data, ctypes.c_size_t(x.size)

    def fresh():  # a new output array per call, like symdl
        out = np.empty_like(x)
        fn(px, out.ctypes.data, n)
        return out

    reused = np.empty_like(x)
    pout = reused.ctypes.data
    rep.check(f"{label} peer vs numpy", fresh(), ref)
    rep.add(CASE_G, f"{label}, new output array", measure(fresh), build, note="build = cc")
    rep.add(CASE_G, f"{label}, reused output", measure(lambda: fn(px, pout, n)), build, note="the loop alone")


def _grad_jax(rep: Report, x: np.ndarray) -> None:
    jax = peer("jax")
    if jax is None:
        return rep.missing(CASE_G, "JAX jit(grad)", "jax")
    g = jax.jit(jax.grad(rosen_method))
    xj = jax.device_put(x)
    build, _ = first_call(lambda: g(xj).block_until_ready())
    rep.check("JAX grad peer vs numpy", np.asarray(g(xj)), grad_numpy(x))
    rep.add(CASE_G, "JAX jit(grad)", measure(lambda: g(xj).block_until_ready()), build,
            note="input already on device")


def _grad_torch(rep: Report, x: np.ndarray) -> None:
    torch = peer("torch")
    if torch is None:
        return rep.missing(CASE_G, "PyTorch autograd", "torch")
    xt = torch.from_numpy(x)

    def call():
        xr = xt.detach().requires_grad_()
        (gr,) = torch.autograd.grad(rosen_method(xr), xr)
        return gr

    build, _ = first_call(call)
    rep.add(CASE_G, "PyTorch autograd", measure(call), build, note="eager; build = first call")


# ---------------------------------------------------------------- hvp 1000
def hvp_1000(rep: Report) -> None:
    import symdl
    x, v = point(N_HVP, 1), point(N_HVP, 2)
    ref = hvp_numpy(x, v)
    with symdl_disk_cache_disabled():
        h = symdl.hvp(rosen)
        build, got = first_call(lambda: h(x, v))
    rep.check("symdl hvp N=1000 vs hand-written numpy", got, ref)
    rep.add(CASE_HVP, "symdl hvp", measure(lambda: h(x, v)), build, symdl=True)

    def jax_hvp():
        jax = peer("jax")
        if jax is None:
            return rep.missing(CASE_HVP, "JAX jit(jvp of grad)", "jax")
        f = jax.jit(lambda x, v: jax.jvp(jax.grad(rosen_method), (x,), (v,))[1])
        xj, vj = jax.device_put(x), jax.device_put(v)
        build, _ = first_call(lambda: f(xj, vj).block_until_ready())
        rep.check("JAX hvp peer vs numpy", np.asarray(f(xj, vj)), ref)
        rep.add(CASE_HVP, "JAX jit(jvp of grad)", measure(lambda: f(xj, vj).block_until_ready()), build)

    def torch_hvp():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE_HVP, "PyTorch torch.func jvp of grad", "torch")
        from torch.func import grad, jvp
        xt, vt = torch.from_numpy(x), torch.from_numpy(v)
        call = lambda: jvp(grad(rosen_method), (xt,), (vt,))[1]  # noqa: E731
        build, _ = first_call(call)
        rep.add(CASE_HVP, "PyTorch torch.func jvp of grad", measure(call), build, note="eager")

    def symengine_hvp():
        se = peer("symengine")
        if se is None:
            return rep.missing(CASE_HVP, "SymEngine Lambdify (llvm)", "symengine")

        def build():
            xs, vs = se.symbols(f"x0:{N_HVP}"), se.symbols(f"v0:{N_HVP}")
            f = se.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(N_HVP - 1)])
            g = [f.diff(a) for a in xs]
            # H v row by row; row i of the Hessian has entries only at i-1, i, i+1.
            hv = [se.Add(*[gi.diff(xs[j]) * vs[j] for j in range(max(0, i - 1), min(N_HVP, i + 2))])
                  for i, gi in enumerate(g)]
            lam = se.Lambdify(list(xs) + list(vs), hv, backend="llvm", cse=True)
            xv = np.concatenate([x, v])
            lam(xv)
            return lam, xv

        t, (lam, xv) = first_call(build)
        rep.check("SymEngine hvp peer vs numpy", lam(xv), ref)
        rep.add(CASE_HVP, "SymEngine diff + Lambdify (llvm)", measure(lambda: lam(xv)), t,
                note="gradient by f.diff(x_i); H v from the 3-band rows")

    def casadi_hvp():
        ca = peer("casadi")
        if ca is None:
            return rep.missing(CASE_HVP, "CasADi jtimes", "casadi")

        def build():
            xs, vs = ca.SX.sym("x", N_HVP), ca.SX.sym("v", N_HVP)
            f = ca.sum1(100 * (xs[1:] - xs[:-1] ** 2) ** 2 + (1 - xs[:-1]) ** 2)
            fn = ca.Function("rosen_hvp", [xs, vs], [ca.jtimes(ca.gradient(f, xs), xs, vs)])
            fn(x, v)
            return fn

        t, fn = first_call(build)
        call = lambda: fn(x, v).full()  # noqa: E731
        rep.check("CasADi hvp peer vs numpy", call().ravel(), ref)
        rep.add(CASE_HVP, "CasADi jtimes(gradient) (SX, VM)", measure(call), t)

    for name, fn in [("JAX", jax_hvp), ("PyTorch", torch_hvp), ("SymEngine", symengine_hvp),
                     ("CasADi", casadi_hvp)]:
        attempt(rep, CASE_HVP, name, fn)


# ---------------------------------------------------------------- Hessian 200
def hessian_200(rep: Report) -> None:
    import symdl
    x = point(N_HESS, 3)
    ref = hessian_numpy(x)
    with symdl_disk_cache_disabled():
        h = symdl.hessian(rosen)
        build, got = first_call(lambda: h(x))
    rep.check("symdl hessian N=200 vs hand-written numpy", got, ref)
    rep.add(CASE_H, "symdl hessian", measure(lambda: h(x)), build, symdl=True)

    def jax_hess():
        jax = peer("jax")
        if jax is None:
            return rep.missing(CASE_H, "JAX jit(hessian)", "jax")
        f = jax.jit(jax.hessian(rosen_method))
        xj = jax.device_put(x)
        build, _ = first_call(lambda: f(xj).block_until_ready())
        rep.check("JAX Hessian peer vs numpy", np.asarray(f(xj)), ref)
        rep.add(CASE_H, "JAX jit(hessian)", measure(lambda: f(xj).block_until_ready()), build)

    def torch_hess():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE_H, "PyTorch autograd.functional.hessian", "torch")
        xt = torch.from_numpy(x)
        call = lambda: torch.autograd.functional.hessian(rosen_method, xt)  # noqa: E731
        build, _ = first_call(call)
        rep.add(CASE_H, "PyTorch autograd.functional.hessian", measure(call), build, note="eager")

    def torch_hess_vec():
        torch = peer("torch")
        if torch is None:
            return
        xt = torch.from_numpy(x)
        call = lambda: torch.autograd.functional.hessian(rosen_method, xt, vectorize=True)  # noqa: E731
        build, _ = first_call(call)
        rep.add(CASE_H, "PyTorch autograd.functional.hessian(vectorize=True)", measure(call), build,
                note="eager, vmap over rows")

    def symengine_hess():
        se = peer("symengine")
        if se is None:
            return rep.missing(CASE_H, "SymEngine Lambdify (llvm)", "symengine")

        def build():
            xs = se.symbols(f"x0:{N_HESS}")
            f = se.Add(*[100 * (xs[i + 1] - xs[i] ** 2) ** 2 + (1 - xs[i]) ** 2 for i in range(N_HESS - 1)])
            g = [f.diff(a) for a in xs]
            hess = [[gi.diff(b) for b in xs] for gi in g]
            lam = se.Lambdify(xs, hess, backend="llvm", cse=True)
            lam(x)
            return lam

        t, lam = first_call(build)
        rep.check("SymEngine Hessian peer vs numpy", lam(x), ref)
        rep.add(CASE_H, "SymEngine diff + Lambdify (llvm)", measure(lambda: lam(x)), t)

    def casadi_hess():
        ca = peer("casadi")
        if ca is None:
            return rep.missing(CASE_H, "CasADi hessian", "casadi")

        def build():
            xs = ca.SX.sym("x", N_HESS)
            f = ca.sum1(100 * (xs[1:] - xs[:-1] ** 2) ** 2 + (1 - xs[:-1]) ** 2)
            hess, _ = ca.hessian(f, xs)
            fn = ca.Function("rosen_hessian", [xs], [hess])
            fn(x)
            return fn

        t, fn = first_call(build)
        call = lambda: fn(x).full()  # noqa: E731  (dense, like every other row)
        rep.check("CasADi Hessian peer vs numpy", call(), ref)
        rep.add(CASE_H, "CasADi hessian (SX, VM, sparse -> dense)", measure(call), t)

    for name, fn in [("JAX", jax_hess), ("PyTorch", torch_hess), ("PyTorch vectorize", torch_hess_vec),
                     ("SymEngine", symengine_hess), ("CasADi", casadi_hess)]:
        attempt(rep, CASE_H, name, fn)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("rosenN", "rosenN: N-dimensional Rosenbrock")
    start = time.perf_counter()
    import symdl  # noqa: F401
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    attempt(rep, CASE_G, "symdl grad", lambda: gradient_1e6(rep))
    attempt(rep, CASE_HVP, "symdl hvp", lambda: hvp_1000(rep))
    attempt(rep, CASE_H, "symdl hessian", lambda: hessian_200(rep))
    rep.finish(args)


if __name__ == "__main__":
    main()
