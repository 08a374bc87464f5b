"""hessmlp: the full Hessian of the mean-squared-error loss of a 2-16-1 tanh
MLP on 64 samples with respect to its 65 parameters (one flat vector).

The model is written once with numpy-style operations (slicing, reshape, @,
tanh, mean) and runs unchanged on symdl dlarrays, JAX arrays and PyTorch
tensors.  symdl.hessian against JAX jit(hessian) and PyTorch
torch.autograd.functional.hessian (plain and vectorize=True).

    python benchmarks/bench_hessmlp.py [--quick] [--json PATH]
"""

from __future__ import annotations

import time

import numpy as np

import common
from common import Report, attempt, first_call, measure, parse_args, peer, symdl_disk_cache_disabled

CASE = "Hessian 65 x 65 of the MLP loss, 64 samples"
N_IN, N_HIDDEN, N_SAMPLES = 2, 16, 64
N_PARAMS = N_IN * N_HIDDEN + N_HIDDEN + N_HIDDEN + 1   # 65


def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N_SAMPLES, N_IN))
    Y = np.sin(X[:, 0]) * X[:, 1]
    p = 0.5 * rng.standard_normal(N_PARAMS)
    return p, X, Y


def make_loss(tanh, mean):
    """The loss for one array library (``tanh``, ``mean`` from it)."""
    def loss(p, X, Y):
        a = N_IN * N_HIDDEN
        W1 = p[0:a].reshape(N_IN, N_HIDDEN)
        b1 = p[a:a + N_HIDDEN]
        W2 = p[a + N_HIDDEN:a + 2 * N_HIDDEN].reshape(N_HIDDEN, 1)
        b2 = p[a + 2 * N_HIDDEN]
        h = tanh(X @ W1 + b1)
        out = (h @ W2).reshape(N_SAMPLES) + b2
        return mean((out - Y) ** 2)
    return loss


loss_np = make_loss(np.tanh, np.mean)


def hessian_fd(p, X, Y):
    """Central differences of the symdl gradient: an independent check when JAX is missing."""
    import symdl
    g = symdl.grad(loss_np)
    eps = 1e-5
    return np.array([(g(p + eps * e, X, Y) - g(p - eps * e, X, Y)) / (2 * eps) for e in np.eye(p.size)])


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("hessmlp", "hessmlp: Hessian of a 2-16-1 tanh MLP's MSE loss w.r.t. its 65 parameters")
    start = time.perf_counter()
    import symdl
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    p, X, Y = data()
    reference = {}

    def bench_jax():
        jax = peer("jax")
        if jax is None:
            return rep.missing(CASE, "JAX jit(hessian)", "jax")
        loss = make_loss(jax.numpy.tanh, jax.numpy.mean)
        h = jax.jit(jax.hessian(loss))
        pj, Xj, Yj = (jax.device_put(a) for a in (p, X, Y))
        build, H = first_call(lambda: h(pj, Xj, Yj).block_until_ready())
        reference["JAX"] = np.asarray(H)
        rep.add(CASE, "JAX jit(hessian)", measure(lambda: h(pj, Xj, Yj).block_until_ready()), build)

    def bench_torch():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE, "PyTorch autograd.functional.hessian", "torch")
        loss = make_loss(torch.tanh, torch.mean)
        pt, Xt, Yt = (torch.from_numpy(a) for a in (p, X, Y))
        for vec in (False, True):
            call = lambda vec=vec: torch.autograd.functional.hessian(  # noqa: E731
                lambda q: loss(q, Xt, Yt), pt, vectorize=vec)
            build, H = first_call(call)
            reference.setdefault("PyTorch", H.numpy())
            rep.add(CASE, f"PyTorch autograd.functional.hessian{'(vectorize=True)' if vec else ''}",
                    measure(call), build, note="eager")

    def bench_symdl():
        from symdl.compiler import pipeline as backend
        with symdl_disk_cache_disabled():
            h = symdl.hessian(loss_np)
            before = backend.STATS["compile_seconds"]
            build, H = first_call(lambda: h(p, X, Y))
            codegen = backend.STATS["compile_seconds"] - before
        rep.check("loss value: symdl graph vs numpy", float(symdl.compile(loss_np, p, X, Y)(p, X, Y)),
                  loss_np(p, X, Y))
        if reference:
            for name, ref in reference.items():
                rep.check(f"symdl Hessian vs {name}", H, ref)
        else:
            rep.check("symdl Hessian vs central differences of symdl.grad", H, hessian_fd(p, X, Y))
        rep.check("symdl Hessian symmetry (H - H.T)", H, H.T)
        rep.add(CASE, "symdl hessian", measure(lambda: h(p, X, Y)), build, symdl=True,
                note=f"of the build, codegen + LLVM: {codegen * 1e3:.0f} ms", codegen_seconds=codegen)

    attempt(rep, CASE, "JAX", bench_jax)
    attempt(rep, CASE, "PyTorch", bench_torch)
    attempt(rep, CASE, "symdl hessian", bench_symdl)
    rep.finish(args)


if __name__ == "__main__":
    main()
