"""Shared helpers of the symdl benchmarks: timing, peer detection, the
hand-written C peer, result tables with symdl/peer ratios, JSON output.

Every benchmark script builds a :class:`Report`, adds one row per
implementation and case (symdl rows and peer rows side by side), prints the
tables and, with ``--json PATH``, writes the rows for ``run_all.py``.

Ratios are always ``symdl time / peer time``: below 1 symdl is faster, above
1 it is slower.  Times are medians of several repeats of many calls
(timeit-style, but with the garbage collector on, as in a user's loop), after
warm-up calls.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import importlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEERS_DIR = HERE / "peers"

# Let a script run from a checkout without installing symdl.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The benchmarks never touch the user's own symdl disk cache: unless told
# otherwise they use a fresh one (and build times turn it off altogether).
_TMP = tempfile.TemporaryDirectory(prefix="symdl-bench-")
os.environ.setdefault("SYMDL_CACHE_DIR", str(Path(_TMP.name) / "symdl-cache"))

# ----------------------------------------------------------------- options
QUICK = os.environ.get("SYMDL_BENCH_QUICK", "") not in ("", "0")


def parse_args(description: str) -> argparse.Namespace:
    """The command line every benchmark script shares."""
    global QUICK
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="fewer and shorter repeats (a smoke run, noisy numbers)")
    p.add_argument("--json", metavar="PATH", help="also write the result rows as JSON to PATH")
    args = p.parse_args()
    QUICK = QUICK or args.quick
    return args


# ----------------------------------------------------------------- timing
@dataclass
class Timing:
    """Seconds per call: the median over ``repeats`` repeats of ``number`` calls each."""

    median: float
    best: float
    number: int
    repeats: int


def _run(fn: Callable[[], Any], number: int) -> float:
    # Unlike timeit, the cyclic garbage collector stays on, as in a user's
    # loop: with it off, results that only a reference cycle keeps alive pile
    # up, and fresh memory's page faults would be timed instead of the call.
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - start


def measure(fn: Callable[[], Any], *, repeat_seconds: float | None = None, repeats: int | None = None,
            warmup: int = 3) -> Timing:
    """Time ``fn()`` like timeit: warm up, pick a number of calls that makes
    one repeat last about ``repeat_seconds``, and take the median of the
    per-call times of ``repeats`` repeats.  A call slower than a whole repeat
    is timed once per repeat (three repeats at least)."""
    repeat_seconds = repeat_seconds if repeat_seconds is not None else (0.02 if QUICK else 0.1)
    repeats = repeats if repeats is not None else (3 if QUICK else 7)
    single = _run(fn, 1)  # first warm-up call, also a first estimate
    if single > 1.0:  # slow call: a few single calls are enough
        times = [single] + [_run(fn, 1) for _ in range(max(2, repeats // 2) - 1)]
        return Timing(statistics.median(times), min(times), 1, len(times))
    for _ in range(warmup - 1):
        _run(fn, 1)
    number = 1
    while True:
        elapsed = _run(fn, number)
        if elapsed >= repeat_seconds * 0.5 or number >= 10**7:
            break
        number = max(number * 2, int(number * repeat_seconds / max(elapsed, 1e-9)))
    times = []
    for _ in range(repeats):
        gc.collect()
        times.append(_run(fn, number) / number)
    return Timing(statistics.median(times), min(times), number, repeats)


def first_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, e.g. a build plus the first evaluation."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


@contextlib.contextmanager
def symdl_disk_cache_disabled() -> Iterator[None]:
    """Run with ``SYMDL_CACHE_DIR=0`` so a first call really traces and compiles."""
    old = os.environ.get("SYMDL_CACHE_DIR")
    os.environ["SYMDL_CACHE_DIR"] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["SYMDL_CACHE_DIR"]
        else:
            os.environ["SYMDL_CACHE_DIR"] = old


def fmt_time(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "—"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3g} µs"
    return f"{seconds * 1e9:.3g} ns"


def fmt_ratio(r: float | None) -> str:
    if r is None or math.isnan(r):
        return "—"
    return f"{r:.3g}x"


# ----------------------------------------------------------------- peers
# name shown in tables -> (module to import, distribution name for the version)
PEERS = {
    "numpy": ("numpy", "numpy"),
    "scipy": ("scipy", "scipy"),
    "sympy": ("sympy", "sympy"),
    "symengine": ("symengine", "symengine"),
    "casadi": ("casadi", "casadi"),
    "numba": ("numba", "numba"),
    "jax": ("jax", "jax"),
    "torch": ("torch", "torch"),
    "llvmlite": ("llvmlite", "llvmlite"),
}

_MISSING: dict[str, str] = {}


def peer(name: str):
    """The peer's module, or None when it is not installed (the reason is kept
    for the table).  JAX is switched to float64, like every other peer.
    PyTorch runs on one thread (``SYMDL_BENCH_TORCH_THREADS`` to change it):
    with its default two threads on the 2-vCPU machine of the reference run
    its times were erratic (one Hessian between 15 ms and 1 s per call), and
    one thread was its best setting at these sizes."""
    module_name = PEERS[name][0]
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or a broken install
        _MISSING[name] = f"{type(exc).__name__}: {exc}"
        return None
    if name == "jax":
        module.config.update("jax_enable_x64", True)
    if name == "torch":
        module.set_num_threads(int(os.environ.get("SYMDL_BENCH_TORCH_THREADS", "1")))
    return module


def version(name: str) -> str | None:
    try:
        return importlib.metadata.version(PEERS.get(name, (name, name))[1])
    except importlib.metadata.PackageNotFoundError:
        mod = sys.modules.get(PEERS.get(name, (name, name))[0])
        return getattr(mod, "__version__", None)


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    """Machine and library versions, for the report header."""
    import llvmlite.binding as llvm
    info = {
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "llvm": ".".join(map(str, llvm.llvm_version_info)),
        "cc": c_compiler_version(),
    }
    for name in ["symdl", *PEERS]:
        info[name] = version(name) or "not installed"
    import symdl
    src = Path(symdl.__file__).resolve().parent.parent
    info["symdl source"] = str(src)
    info["symdl commit"] = git_commit(src)
    info["load average at start (1, 5 min)"] = ", ".join(f"{v:.2f}" for v in os.getloadavg()[:2])
    return info


def git_commit(path: Path) -> str:
    """The checkout's commit, with '+changes' when tracked files differ from it."""
    try:
        rev = subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode:
            return "not a git checkout"
        dirty = subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + (" +changes" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------- the C peer
def c_compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def c_compiler_version() -> str:
    cc = c_compiler()
    if cc is None:
        return "not installed"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0].strip() if out else cc
    except (OSError, subprocess.SubprocessError):
        return cc


def c_library(flags: tuple[str, ...] = ("-O2",), source: Path = PEERS_DIR / "rosen2.c"):
    """(ctypes library, build seconds) of the hand-written C peers compiled
    with the system compiler into a temporary directory; (None, reason) when
    no compiler works."""
    cc = c_compiler()
    if cc is None:
        return None, "no C compiler (cc) found"
    tag = "".join(ch for ch in "_".join(flags) if ch.isalnum() or ch == "_")
    out = Path(_TMP.name) / f"lib{source.stem}_{tag}.so"
    start = time.perf_counter()
    proc = subprocess.run([cc, *flags, "-shared", "-fPIC", "-o", str(out), str(source)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        return None, f"{cc} failed: {proc.stderr.strip()[:200]}"
    lib = ctypes.CDLL(str(out))
    lib.rosen2_value_and_grad.restype = ctypes.c_double
    lib.rosen2_value_and_grad.argtypes = [ctypes.c_double, ctypes.c_double,
                                          ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]
    lib.rosenN_grad.restype = None
    lib.rosenN_grad.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    return lib, seconds


# ----------------------------------------------------------------- results
@dataclass
class Row:
    case: str                  # e.g. "gradient N=1e6"
    impl: str                  # e.g. "JAX jit(grad)"
    per_call: float | None     # seconds (median)
    build: float | None = None  # seconds: trace + compile + first call, or the peer's equivalent
    is_symdl: bool = False
    note: str = ""
    extra: dict = field(default_factory=dict)


class Report:
    """Rows of one benchmark script, printed as Markdown tables with ratios."""

    def __init__(self, bench: str, title: str):
        self.bench = bench
        self.title = title
        self.rows: list[Row] = []
        self.checks: list[dict] = []
        self.notes: list[str] = []
        self.column: dict[str, str] = {}   # case -> heading of the time column (default "per call")
        self.started = time.perf_counter()

    # -- collecting
    def add(self, case: str, impl: str, per_call: float | Timing | None, build: float | None = None, *,
            symdl: bool = False, note: str = "", ref: bool = True, **extra) -> Row:
        """One measured implementation.  ``symdl=True`` marks symdl's rows;
        those with ``ref=True`` get a ratio column against every peer.  A
        :class:`Timing` whose median is far above its best repeat (another
        process took the CPU) is flagged in the table."""
        if isinstance(per_call, Timing):
            extra.update(best=per_call.best, number=per_call.number, repeats=per_call.repeats)
            per_call = per_call.median
        row = Row(case, impl, per_call, build, symdl, note, dict(extra, ref=ref))
        self.rows.append(row)
        tail = f"  build {fmt_time(build)}" if build is not None else ""
        print(f"  [{case}] {impl}: {fmt_time(per_call)} per call{tail}{'  (' + note + ')' if note else ''}",
              flush=True)
        return row

    def missing(self, case: str, impl: str, peer_name: str) -> None:
        why = _MISSING.get(peer_name, "")
        self.add(case, impl, None, None, note="not installed", reason=why)

    def failed(self, case: str, impl: str, exc: BaseException) -> None:
        msg = " ".join(str(exc).split())[:160].replace("|", "/")
        self.add(case, impl, None, None, note=f"failed: {type(exc).__name__}: {msg}")

    def check(self, what: str, got, want, tol: float | None = None) -> float:
        """Record (and print) max |symdl - reference| so a fast wrong answer shows."""
        import numpy as np
        got = np.asarray(got, dtype=float)
        want = np.asarray(want, dtype=float)
        if got.shape != want.shape:
            diff = float("inf")
            print(f"  CHECK {what}: SHAPE MISMATCH {got.shape} vs {want.shape}")
        else:
            diff = float(np.max(np.abs(got - want))) if got.size else 0.0
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        ok = None if tol is None else diff <= tol * max(1.0, scale)
        flag = "" if ok is None else ("  ok" if ok else "  MISMATCH")
        print(f"  check {what}: max|diff| = {diff:.3g} (max|ref| = {scale:.3g}){flag}", flush=True)
        self.checks.append({"what": what, "max_abs_diff": diff, "max_abs_ref": scale, "ok": ok})
        return diff

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    # -- printing
    def cases(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r.case not in seen:
                seen.append(r.case)
        return seen

    def table(self, case: str) -> str:
        """A Markdown table of one case: every implementation, its build and
        per-call times, and symdl/peer ratios (one column per symdl variant
        that is a reference; diagnostic symdl rows get no column)."""
        rows = sorted((r for r in self.rows if r.case == case), key=lambda r: not r.is_symdl)
        ref = [r for r in rows if r.is_symdl and r.extra.get("ref", True) and r.per_call is not None]
        head = ["implementation", "build / first call", self.column.get(case, "per call")]
        if len(ref) == 1:
            head += ["symdl / peer (per call)", "symdl / peer (build)"]
        elif ref:
            head += [f"{r.impl} / peer" for r in ref] + [f"build: {ref[0].impl} / peer"]
        with_notes = any(r.note for r in rows)
        head += ["notes"] if with_notes else []
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [f"**{r.impl}**" if r.is_symdl else r.impl,
                     fmt_time(r.build),
                     fmt_time(r.per_call) + self._noisy(r) if r.per_call is not None else "—"]
            for s in ref:
                cells.append("—" if r.is_symdl or r.per_call is None else fmt_ratio(s.per_call / r.per_call))
            if ref:
                s = ref[0]
                cells.append("—" if r.is_symdl or not (r.build and s.build) else fmt_ratio(s.build / r.build))
            if with_notes:
                cells.append(r.note)
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    @staticmethod
    def _noisy(r: Row) -> str:
        best = r.extra.get("best")
        return f" (noisy: best {fmt_time(best)})" if best and r.per_call > 1.3 * best else ""

    def print_tables(self) -> None:
        print(f"\n## {self.title}\n")
        for case in self.cases():
            print(f"### {case}\n")
            print(self.table(case))
            print()
        if self.checks:
            print("Checks (symdl against a reference):")
            for c in self.checks:
                print(f"- {c['what']}: max |diff| = {c['max_abs_diff']:.3g}")
        for n in self.notes:
            print(f"- note: {n}")
        print(f"\n({self.bench}: {time.perf_counter() - self.started:.1f} s wall time)")

    def to_json(self) -> dict:
        return {"bench": self.bench, "title": self.title, "rows": [asdict(r) for r in self.rows],
                "checks": self.checks, "notes": self.notes,
                "seconds": time.perf_counter() - self.started}

    def finish(self, args: argparse.Namespace) -> None:
        self.print_tables()
        if args.json:
            Path(args.json).write_text(json.dumps(self.to_json(), indent=1, default=str))


def attempt(report: Report, case: str, impl: str, fn: Callable[[], Any]) -> Any:
    """Run one implementation's benchmark; one that fails becomes a 'failed'
    row (with its traceback printed), not the end of the suite."""
    try:
        return fn()
    except Exception as exc:  # a peer's limitation (or a symdl bug) must not stop the suite
        import traceback
        traceback.print_exc()
        report.failed(case, impl, exc)
        return None


def warm_up(report: Report) -> None:
    """Pay the one-time costs of symdl (LLVM set-up) and JAX (backend set-up)
    on a trivial function first, so that build times are of the benchmark's
    own function; the one-time costs are noted."""
    import numpy as np
    with symdl_disk_cache_disabled():
        import symdl
        t, _ = first_call(lambda: symdl.grad(lambda x: np.sum(x * x))(np.ones(3)))
    report.note(f"symdl one-time warm-up (first compile of the process, trivial function): {t * 1e3:.0f} ms")
    jax = peer("jax")
    if jax is not None:
        t, _ = first_call(lambda: jax.jit(jax.grad(lambda x: (x * x).sum()))(np.ones(3)).block_until_ready())
        report.note(f"JAX one-time warm-up (first jit of the process, trivial function): {t * 1e3:.0f} ms")


def symdl_model_gradients(rep: Report, case: str, model_gradients: Callable, params: dict, *inputs) -> tuple:
    """Time ``model_gradients(params, *inputs) -> (loss, gradients)`` as a
    deep-learning step runs in symdl: under ``dlaccelerate``, called through
    ``dlfeval`` with dlarray parameters (``params``: name -> numpy array) and
    the formatted ``inputs``; the first call (trace and compile, disk cache
    off) is the build time.  Returns (loss as a float, gradients as numpy
    arrays by name) for the checks."""
    import symdl
    dl_params = {k: symdl.dlarray(a) for k, a in params.items()}
    with symdl_disk_cache_disabled():
        step = symdl.dlaccelerate(model_gradients)

        def call():
            return symdl.dlfeval(step, dl_params, *inputs)
        first, out = first_call(call)
    loss, grads = out
    rep.add(case, "symdl: dlaccelerate(model gradients)", measure(call), first, symdl=True,
            note="one native call per step after the first (trace + compile)")
    return float(loss), {k: symdl.extractdata(g) for k, g in grads.items()}


def jax_adam_step(jax, loss: Callable, lr: float, b1: float, b2: float, eps: float) -> Callable:
    """``jit`` of a whole Adam step ``(p, m, v, t, X, T) -> (p, m, v)`` on
    the gradient of ``loss(p, X, T)``, Adam written by hand with MATLAB's
    rule (the rule of ``symdl.adamupdate``)."""
    jnp = jax.numpy

    @jax.jit
    def step(p, m, v, t, X, T):
        g = jax.grad(loss)(p, X, T)
        m = jax.tree_util.tree_map(lambda a, b: b1 * a + (1 - b1) * b, m, g)
        v = jax.tree_util.tree_map(lambda a, b: b2 * a + (1 - b2) * b * b, v, g)
        p = jax.tree_util.tree_map(
            lambda q, a, b: q - lr * (a / (1 - b1 ** t)) / (jnp.sqrt(b / (1 - b2 ** t)) + eps), p, m, v)
        return p, m, v
    return step
