"""tracing: the cost of one operation on tiny arrays, traced under dlfeval
(1k, 10k and 100k traced operations, then one dlgradient) and untraced
(``x * g``, ``x - 0.1 * g``), side by side with PyTorch eager and numpy.

The traced loop is ``y = tanh(y * 0.999 + x)`` on 3-element float64 arrays,
three operations a step; its trace and its gradient are timed separately and
reported per traced operation, so a flat column means linear-time tracing.
PyTorch runs the same loop on tensors that require gradients (forward, then
``backward``); numpy runs the forward loop.  The three take turns, run by
run, so that other work on a shared machine slows them alike.

    python benchmarks/bench_tracing.py [--quick] [--json PATH]
"""

from __future__ import annotations

import gc
import statistics
import time

import numpy as np

import common
from common import Report, attempt, measure, parse_args, peer

OPS_PER_STEP = 3
SIZES = [1_000, 10_000, 100_000]
X0 = np.array([-0.5, 0.25, 1.0])


def trace_case(n_ops: int) -> str:
    return f"traced op under dlfeval, {n_ops:,} ops"


def gradient_case(n_ops: int) -> str:
    return f"gradient of {n_ops:,} traced ops, per op"


UNTRACED = {"x * g": lambda x, g: x * g, "x - 0.1 * g": lambda x, g: x - 0.1 * g}


def untraced_case(expr: str) -> str:
    return f"untraced {expr} (3 elements)"


def repeats_for(n_ops: int) -> int:
    """How many times a whole loop of ``n_ops`` is run (the median is kept)."""
    if common.QUICK:
        return 1
    return 5 if n_ops <= 1_000 else 3


def reference(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Value and d sum(y)/dx of the loop, by forward-mode recurrence in numpy."""
    y, dy = X0.copy(), np.ones_like(X0)
    for _ in range(steps):
        y = np.tanh(y * 0.999 + X0)
        dy = (1 - y * y) * (0.999 * dy + 1)
    return y, dy


def interleaved_runs(runs: dict, n_ops: int) -> dict:
    """(trace seconds, gradient seconds, last result) of each ``runs[name]()``,
    medians over repeats, or the exception it raised.  The implementations
    run in turn (symdl, PyTorch, numpy, symdl, ...): on a shared machine a
    burst of other work then slows them alike, not whichever ran during it,
    and the ratios between them stay meaningful."""
    samples: dict = {name: [] for name in runs}
    failed: dict = {}
    for _ in range(repeats_for(n_ops)):
        for name, run in runs.items():
            if name in failed:
                continue
            gc.collect()
            try:
                samples[name].append(run())
            except Exception as exc:  # reported by the implementation's attempt()
                failed[name] = exc
    out = {}
    for name, got in samples.items():
        if name in failed:
            out[name] = failed[name]
            continue
        out[name] = (statistics.median(t for t, _, _ in got), statistics.median(g for _, g, _ in got), got[-1][2])
    return out


def symdl_loop(steps: int):
    import symdl

    def f(x):
        start = time.perf_counter()
        y = x
        for _ in range(steps):
            y = symdl.tanh(y * 0.999 + x)
        traced = time.perf_counter()
        g = symdl.dlgradient(symdl.sum(y), x)
        return traced - start, time.perf_counter() - traced, (y, g)

    def run():
        t, g, (y, grad) = symdl.dlfeval(f, symdl.dlarray(X0))
        return t, g, (symdl.extractdata(y), symdl.extractdata(grad))
    return run


def torch_loop(torch, steps: int):
    def run():
        x = torch.tensor(X0, requires_grad=True)
        start = time.perf_counter()
        y = x
        for _ in range(steps):
            y = torch.tanh(y * 0.999 + x)
        forward = time.perf_counter()
        y.sum().backward()
        return forward - start, time.perf_counter() - forward, (y.detach().numpy(), x.grad.numpy())
    return run


def numpy_loop(steps: int):
    def run():
        start = time.perf_counter()
        y = X0
        for _ in range(steps):
            y = np.tanh(y * 0.999 + X0)
        return time.perf_counter() - start, 0.0, y
    return run


def bench_traced(rep: Report, n_ops: int) -> None:
    steps = n_ops // OPS_PER_STEP
    n_ops = steps * OPS_PER_STEP
    case, gcase = trace_case(n_ops), gradient_case(n_ops)
    y_ref, g_ref = reference(steps)
    torch = peer("torch")
    runs = {"symdl": symdl_loop(steps)}
    if torch is not None:
        runs["torch"] = torch_loop(torch, steps)
    runs["numpy"] = numpy_loop(steps)
    measured = interleaved_runs(runs, n_ops)

    def median_run(name: str):
        got = measured[name]
        if isinstance(got, Exception):
            raise got
        return got

    def bench_symdl():
        t, g, (y, grad) = median_run("symdl")
        rep.check(f"{n_ops:,} ops: symdl value vs numpy", y, y_ref)
        rep.check(f"{n_ops:,} ops: symdl gradient vs forward-mode recurrence", grad, g_ref)
        rep.add(case, "symdl dlfeval (trace)", t / n_ops, symdl=True, total_seconds=t)
        rep.add(gcase, "symdl dlgradient", g / n_ops, symdl=True, total_seconds=g)
        rep.add(gcase, "symdl trace + dlgradient", (t + g) / n_ops, symdl=True, ref=False)

    def bench_torch():
        if torch is None:
            rep.missing(case, "PyTorch eager (forward)", "torch")
            return rep.missing(gcase, "PyTorch eager (backward)", "torch")
        t, g, (y, grad) = median_run("torch")
        rep.check(f"{n_ops:,} ops: PyTorch gradient vs forward-mode recurrence", grad, g_ref)
        rep.add(case, "PyTorch eager (forward)", t / n_ops, note="tensors require grad")
        rep.add(gcase, "PyTorch eager (backward)", g / n_ops)

    def bench_numpy():
        t, _, _ = median_run("numpy")
        rep.add(case, "numpy (forward only)", t / n_ops)

    attempt(rep, case, "symdl", bench_symdl)
    attempt(rep, case, "PyTorch", bench_torch)
    attempt(rep, case, "numpy", bench_numpy)


def bench_untraced(rep: Report, expr: str) -> None:
    import symdl
    fn = UNTRACED[expr]
    case = untraced_case(expr)
    xs, gs = X0, np.array([0.5, -1.0, 2.0])
    x, g = symdl.dlarray(xs), symdl.dlarray(gs)
    rep.check(f"untraced {expr}: symdl vs numpy", symdl.extractdata(fn(x, g)), fn(xs, gs))
    rep.add(case, "symdl dlarray", measure(lambda: fn(x, g)), symdl=True)
    torch = peer("torch")
    if torch is None:
        rep.missing(case, "PyTorch eager", "torch")
    else:
        xt, gt = torch.tensor(xs), torch.tensor(gs)
        rep.add(case, "PyTorch eager", measure(lambda: fn(xt, gt)))
    rep.add(case, "numpy", measure(lambda: fn(xs, gs)))


def warm_up(rep: Report) -> None:
    """Pay the one-time costs (importing SymPy, deriving tanh's derivative,
    PyTorch's first autograd call) on a short loop, so they are not timed."""
    start = time.perf_counter()
    symdl_loop(10)()
    rep.note(f"symdl one-time warm-up (SymPy import, tanh's derivative): {(time.perf_counter() - start) * 1e3:.0f} ms")
    torch = peer("torch")
    if torch is not None:
        torch_loop(torch, 10)()


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rep = Report("tracing", "tracing: one operation on tiny arrays, traced under dlfeval and untraced")
    for case in [trace_case(n // OPS_PER_STEP * OPS_PER_STEP) for n in SIZES] + \
            [untraced_case(e) for e in UNTRACED]:
        rep.column[case] = "per op"
    for n in SIZES:
        rep.column[gradient_case(n // OPS_PER_STEP * OPS_PER_STEP)] = "per op"
    warm_up(rep)
    for expr in UNTRACED:
        attempt(rep, untraced_case(expr), "symdl", lambda expr=expr: bench_untraced(rep, expr))
    for n in SIZES:
        bench_traced(rep, n)
    rep.note("traced: y = tanh(y * 0.999 + x) on 3 float64 elements, 3 ops a step; per op = loop time / ops; "
             "trace and gradient timed separately inside one dlfeval call (PyTorch: forward, then backward); "
             "symdl, PyTorch and numpy run in turn, medians of 5 runs (1k ops) or 3")
    rep.finish(args)


if __name__ == "__main__":
    main()
