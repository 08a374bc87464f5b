"""threads: split kernels on 1 and 2 threads (issue 9, item 3).

The cost of starting and joining a thread, and the speed-up of the
kernels that split: calls of each compiled function with 1 and 2 threads
in interleaved rounds, in one process (codegen.parallel.set_num_threads
switches the count between rounds), best, percentiles.  Not part of
run_all.py: on a shared machine its figures say as much about the other
jobs as about symdl, so report the load average with them.

    python benchmarks/bench_threads.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import common  # noqa: F401  (puts this repository first on sys.path)
import symdl  # noqa: E402
from codegen import parallel  # noqa: E402


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def cases():
    rng = np.random.default_rng(0)
    saved = parallel.SPLIT_WORK
    parallel.SPLIT_WORK = 1  # force a split of 2 elements: the cost of a thread
    tiny = symdl.compile(lambda x: x * 2.0 + 1.0, np.zeros(2))
    parallel.SPLIT_WORK = saved
    x = rng.normal(size=10**6)
    return [
        ("split of 2 elements (thread start + join)", tiny, (np.ones(2),)),
        ("rosenN gradient, N = 1e6", symdl.grad(rosen), (rng.uniform(-2.0, 2.0, 10**6),)),
        ("exp(sin(x)) * x, 1e6", symdl.compile(lambda x: np.exp(np.sin(x)) * x, x), (x,)),
        ("sum(sin(X)**2, axis=1), 1000 x 1000",
         symdl.compile(lambda x: np.sum(np.sin(x) ** 2, axis=1), x.reshape(1000, 1000)), (x.reshape(1000, 1000),)),
    ]


def timed(f, args, rounds: int, calls: int) -> dict[int, np.ndarray]:
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(rounds):
        for n in times:
            parallel.set_num_threads(n)
            for _ in range(calls):
                start = time.perf_counter()
                f(*args)
                times[n].append(time.perf_counter() - start)
    return {n: np.array(v) for n, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds of calls per thread count")
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}, cores: {len(os.sched_getaffinity(0))}")
    print("| kernel | threads | best | p25 | median | p75 | best 1 / best 2 |")
    print("|---|---|---|---|---|---|---|")
    for name, f, fargs in cases():
        f(*fargs)
        calls = 20 if name.startswith(("split", "rosen")) else 4
        t = timed(f, fargs, args.rounds, calls)
        for n in (1, 2):
            q = np.percentile(t[n], [25, 50, 75]) * 1e6
            ratio = f"{t[1].min() / t[2].min():.2f}x" if n == 2 else ""
            print(f"| {name} | {n} | {t[n].min() * 1e6:.1f} µs | {q[0]:.1f} µs | {q[1]:.1f} µs | {q[2]:.1f} µs "
                  f"| {ratio} |")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
