"""mlp: loss and all gradients of an MLP 64-128-64-10 (issue 9's matmul workload).

One mini-batch of 256 observations ('CB', float32) through fullyconnect +
ReLU, fullyconnect + ReLU, fullyconnect, softmax cross-entropy; the loss and
the gradients of the six parameters.  symdl runs it as one native call per
step (``dlaccelerate``); the peers are hand-written numpy backprop, PyTorch
eager (one thread, as in every benchmark here), ``torch.compile`` and JAX
``jit(value_and_grad)``, all from the same parameters; losses and gradients
are checked against the numpy reference.

    python benchmarks/bench_mlp.py [--quick] [--json PATH]
"""

from __future__ import annotations

import os
import time

import numpy as np

import common
from common import (Report, attempt, first_call, measure, parse_args, peer, symdl_model_gradients)

CASE = "MLP 64-128-64-10 loss + gradients, batch 256, float32"
B, SIZES = 256, (64, 128, 64, 10)


def data():
    rng = np.random.default_rng(0)
    params = {}
    for k, (i, o) in enumerate(zip(SIZES, SIZES[1:])):
        params[f"W{k}"] = (rng.standard_normal((o, i)) * np.sqrt(2 / i)).astype(np.float32)
        params[f"b{k}"] = (rng.standard_normal(o) * 0.1).astype(np.float32)
    X = rng.standard_normal((SIZES[0], B)).astype(np.float32)
    labels = rng.integers(0, SIZES[-1], B)
    T = np.eye(SIZES[-1], dtype=np.float32)[:, labels]
    return params, X, T, labels


def numpy_step(p, X, T):
    """Hand-written backprop (the reference of the checks)."""
    hs, zs, h = [X], [], X
    for k in range(3):
        z = p[f"W{k}"] @ h + p[f"b{k}"][:, None]
        zs.append(z)
        h = np.maximum(z, 0) if k < 2 else z
        hs.append(h)
    e = np.exp(h - h.max(0))
    s = e / e.sum(0)
    loss = -np.sum(T * np.log(s)) / B
    g = (s - T) / B
    grads = {}
    for k in (2, 1, 0):
        grads[f"W{k}"] = g @ hs[k].T
        grads[f"b{k}"] = g.sum(1)
        if k:
            g = (p[f"W{k}"].T @ g) * (zs[k - 1] > 0)
    return loss, grads


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("mlp", "mlp: MLP 64-128-64-10 loss and all gradients, batch 256")
    start = time.perf_counter()
    import symdl
    rep.note(f"import symdl: {(time.perf_counter() - start) * 1e3:.0f} ms (not in any build time)")
    common.warm_up(rep)
    p0, X, T, labels = data()
    results = {}
    ref_loss, ref_grads = numpy_step(p0, X, T)

    def bench_symdl():
        def model_gradients(params, X, T):
            h = X
            for k in range(3):
                h = symdl.fullyconnect(h, params[f"W{k}"], params[f"b{k}"])
                if k < 2:
                    h = symdl.relu(h)
            loss = symdl.crossentropy(symdl.softmax(h), T)
            return loss, symdl.dlgradient(loss, params)

        results["symdl"] = symdl_model_gradients(rep, CASE, model_gradients, p0, symdl.dlarray(X, "CB"),
                                                 symdl.dlarray(T, "CB"))

    def bench_numpy():
        first, out = first_call(lambda: numpy_step(p0, X, T))
        rep.add(CASE, "numpy (hand-written backprop)", measure(lambda: numpy_step(p0, X, T)), first,
                note="numpy's OpenBLAS, its default threads")
        # the same with OpenBLAS on one thread (symdl's kernels run on one):
        # numpy and codegen.blas share the library, so its setter serves both
        from codegen import blas
        if blas.set_num_threads(1):
            try:
                rep.add(CASE, "numpy, OpenBLAS on one thread", measure(lambda: numpy_step(p0, X, T)))
            finally:
                blas.set_num_threads(int(os.environ.get("SYMDL_NUM_THREADS") or os.cpu_count() or 1))

    def torch_step(torch):
        F_ = torch.nn.functional
        prm = {k: torch.tensor(a, requires_grad=True) for k, a in p0.items()}
        xt = torch.from_numpy(np.ascontiguousarray(X.T))     # observations x features
        yt = torch.from_numpy(labels)

        def call():
            for q in prm.values():
                q.grad = None
            h = xt
            for k in range(3):
                h = F_.linear(h, prm[f"W{k}"], prm[f"b{k}"])
                if k < 2:
                    h = F_.relu(h)
            loss = F_.cross_entropy(h, yt)
            loss.backward()
            return loss
        return prm, call

    def bench_torch():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE, "PyTorch eager", "torch")
        prm, call = torch_step(torch)
        first, loss = first_call(call)
        results["PyTorch"] = (float(loss), {k: q.grad.numpy().copy() for k, q in prm.items()})
        rep.add(CASE, "PyTorch eager (forward + backward)", measure(call), first, note="float32, one thread")

    def bench_torch_compile():
        torch = peer("torch")
        if torch is None:
            return rep.missing(CASE, "torch.compile", "torch")
        F_ = torch.nn.functional
        prm = {k: torch.tensor(a) for k, a in p0.items()}
        xt = torch.from_numpy(np.ascontiguousarray(X.T))
        yt = torch.from_numpy(labels)

        def loss_fn(prm, xt, yt):
            h = xt
            for k in range(3):
                h = F_.linear(h, prm[f"W{k}"], prm[f"b{k}"])
                if k < 2:
                    h = F_.relu(h)
            return F_.cross_entropy(h, yt)
        try:
            from torch.func import grad_and_value
            fn = torch.compile(grad_and_value(loss_fn))
            first, out = first_call(lambda: fn(prm, xt, yt))
        except Exception as exc:  # no C compiler for inductor, unsupported platform...
            rep.add(CASE, "torch.compile", None, None,
                    note=f"skipped: {type(exc).__name__}: {' '.join(str(exc).split())[:100]}")
            return
        g, loss = out
        results["torch.compile"] = (float(loss), {k: v.numpy().copy() for k, v in g.items()})
        rep.add(CASE, "torch.compile(grad_and_value)", measure(lambda: fn(prm, xt, yt)), first,
                note="float32, one thread")

    def bench_jax():
        jax = peer("jax")
        if jax is None:
            return rep.missing(CASE, "JAX jit(value_and_grad)", "jax")
        jnp = jax.numpy

        def loss_fn(prm, X, T):
            h = X
            for k in range(3):
                h = prm[f"W{k}"] @ h + prm[f"b{k}"][:, None]
                if k < 2:
                    h = jnp.maximum(h, 0)
            return -jnp.sum(T * jax.nn.log_softmax(h, axis=0)) / B
        fn = jax.jit(jax.value_and_grad(loss_fn))
        pj = {k: jax.device_put(a) for k, a in p0.items()}
        Xj, Tj = jax.device_put(X), jax.device_put(T)

        def call():
            return jax.block_until_ready(fn(pj, Xj, Tj))
        first, (loss, g) = first_call(call)
        results["JAX"] = (float(loss), {k: np.asarray(v) for k, v in g.items()})
        rep.add(CASE, "JAX jit(value_and_grad)", measure(call), first, note="float32, XLA's threads")

    attempt(rep, CASE, "symdl", bench_symdl)
    attempt(rep, CASE, "numpy", bench_numpy)
    attempt(rep, CASE, "PyTorch", bench_torch)
    attempt(rep, CASE, "torch.compile", bench_torch_compile)
    attempt(rep, CASE, "JAX", bench_jax)
    for name, (loss, grads) in results.items():
        rep.check(f"loss: {name} vs numpy", np.array([loss]), np.array([ref_loss]), tol=1e-4)
        for k in sorted(grads):
            rep.check(f"gradient {k}: {name} vs numpy", grads[k].ravel(), ref_grads[k].ravel(), tol=1e-3)
    from codegen import blas
    lib = blas.library()
    rep.note(f"contractions: generated kernel below {blas.BLAS_MIN_WORK} multiply-adds, "
             + (f"BLAS ({lib.ident}) above" if lib and blas.blas_mode() != "never" else "no BLAS")
             + "; numpy and symdl share OpenBLAS's thread count (SYMDL_NUM_THREADS, default all cores)")
    rep.finish(args)


if __name__ == "__main__":
    main()
