"""memory: native memory growth of a process that keeps compiling.

Two loops, each in a fresh process with the disk cache off
(``SYMDL_CACHE_DIR=0``, so every build runs LLVM):

* **compile and drop**: ``symdl.compile`` of 2,000 small distinct functions
  (``sum(x * c + 1)`` for 2,000 constants ``c``), each called once and
  dropped;
* **evictions**: one ``dlaccelerate``\\ d function with ``cache_size=2``
  called on inputs of three shapes in turn, so each of the 10,000 calls
  evicts a trace and builds it again.

Each loop runs a short warm-up first (the first builds load LLVM's code and
fill its one-time tables), then reports the resident set size (from
``/proc/self/statm``) before and after, and the growth per build.  SPEC
§9.3: under 10 MB for either loop.

    python benchmarks/bench_memory.py [--quick] [--json PATH]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

LIMIT_MB = 10.0
WARMUP = 20


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def compile_and_drop(n: int) -> dict:
    import numpy as np
    import symdl

    def build(i: int) -> None:
        f = symdl.compile(lambda x, c=float(i): symdl.sum(x * c + 1.0), np.ones(3))
        f(np.ones(3))

    for i in range(WARMUP):
        build(-1 - i)
    before = rss_mb()
    start = time.perf_counter()
    for i in range(n):
        build(i)
    return {"case": "compile and drop", "builds": n, "before_mb": before, "after_mb": rss_mb(),
            "seconds": time.perf_counter() - start}


def evictions(n: int) -> dict:
    import numpy as np
    import symdl

    f = symdl.dlaccelerate(lambda x: symdl.sum(symdl.tanh(x) * 2.0), cache_size=2)
    inputs = [symdl.dlarray(np.ones(k)) for k in (1, 2, 3)]
    for i in range(WARMUP):
        f(inputs[i % 3])
    before = rss_mb()
    start = time.perf_counter()
    for i in range(n):
        f(inputs[i % 3])
    return {"case": "cache evictions", "builds": n, "before_mb": before, "after_mb": rss_mb(),
            "seconds": time.perf_counter() - start}


CASES = {"compile": compile_and_drop, "evict": evictions}


def _child(case: str, n: int) -> None:
    print(json.dumps(CASES[case](n)))


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--child":
        _child(args[1], int(args[2]))
        return
    quick = "--quick" in args or os.environ.get("SYMDL_BENCH_QUICK") == "1"
    json_path = args[args.index("--json") + 1] if "--json" in args else None
    counts = {"compile": 200 if quick else 2000, "evict": 1000 if quick else 10000}
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, SYMDL_CACHE_DIR="0")
    env["PYTHONPATH"] = str(root) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    results = []
    print(f"{'case':<18}{'builds':>8}{'RSS before':>12}{'RSS after':>11}{'growth':>10}{'per build':>11}"
          f"{'seconds':>9}")
    for case, n in counts.items():
        out = subprocess.run([sys.executable, __file__, "--child", case, str(n)], env=env, check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        growth = r["after_mb"] - r["before_mb"]
        r["growth_mb"] = growth
        results.append(r)
        print(f"{r['case']:<18}{n:>8}{r['before_mb']:>10.1f}MB{r['after_mb']:>9.1f}MB{growth:>8.1f}MB"
              f"{growth * 1024 / n:>8.1f} KB{r['seconds']:>9.1f}")
    if not quick:
        worst = max(r["growth_mb"] for r in results)
        print(f"target (SPEC 9.3): under {LIMIT_MB:.0f} MB growth: {'met' if worst < LIMIT_MB else 'NOT met'}")
    if json_path:
        Path(json_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
