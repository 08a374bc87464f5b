"""Run every symdl benchmark, each in its own process, then print the
environment, every ratio table and the performance targets as met / not met.

    python benchmarks/run_all.py [--quick] [--only rosen2,hessmlp] [--markdown PATH] [--json PATH]

Each script also runs alone (python benchmarks/bench_rosen2.py).  Ratios are
symdl time / peer time: below 1 symdl is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from common import Report, Row, fmt_ratio, fmt_time  # noqa: E402

SCRIPTS = ["rosen2", "rosenN", "nthderiv", "hessmlp", "tracing", "cnn", "mlp", "matmul", "train"]


def run_script(name: str, quick: bool, out_dir: Path) -> dict | None:
    path = out_dir / f"{name}.json"
    cmd = [sys.executable, str(HERE / f"bench_{name}.py"), "--json", str(path)] + (["--quick"] if quick else [])
    print(f"\n=== {' '.join(cmd[1:2])} ({time.strftime('%H:%M:%S')})", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=dict(os.environ))
    print(f"=== {name}: exit {proc.returncode}, {time.perf_counter() - start:.1f} s", flush=True)
    if proc.returncode or not path.exists():
        return None
    return json.loads(path.read_text())


def as_report(data: dict) -> Report:
    rep = Report(data["bench"], data["title"])
    rep.rows = [Row(**r) for r in data["rows"]]
    rep.checks, rep.notes = data["checks"], data["notes"]
    if data["bench"] == "rosen2":
        rep.column["new process: first result after import symdl"] = "first result after import"
    return rep


# ---------------------------------------------------------------- targets
class Results:
    def __init__(self, reports: dict[str, dict]):
        self.rows: dict[tuple[str, str, str], dict] = {}
        self.notes = {bench: data.get("notes", []) for bench, data in reports.items()}
        for bench, data in reports.items():
            for r in data["rows"]:
                self.rows[(bench, r["case"], r["impl"])] = r

    def get(self, bench: str, case: str, impl: str, what: str = "per_call") -> float | None:
        r = self.rows.get((bench, case, impl))
        return None if r is None else r.get(what)

    def peers(self, bench: str, case: str) -> list[dict]:
        return [r for (b, c, _), r in self.rows.items()
                if b == bench and c == case and not r["is_symdl"] and r["per_call"] is not None]


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "NOT met")


def targets(res: Results) -> list[tuple[str, str, str]]:
    """(target, verdict, measured) for every target of the issue."""
    out: list[tuple[str, str, str]] = []

    def add(target: str, ok: bool | None, measured: str) -> None:
        out.append((target, _verdict(ok), measured))

    # rosen2 ----------------------------------------------------------------
    case = "value + gradient at (2, 2), per call"
    c = res.get("rosen2", case, "C -O2 via ctypes")
    jx = res.get("rosen2", case, "JAX jit(value_and_grad)")
    variants = ["symdl value_and_grad", "symdl dlfeval(dlaccelerate)", "symdl compile"]
    rc = {v: _ratio(res.get("rosen2", case, v), c) for v in variants}
    rj = {v: _ratio(res.get("rosen2", case, v), jx) for v in variants}
    main = "symdl value_and_grad"
    add("rosen2 cached call <= 1.5x hand-written C via ctypes", None if rc[main] is None else rc[main] <= 1.5,
        "; ".join(f"{v.removeprefix('symdl ')}: {fmt_ratio(r)}" for v, r in rc.items()))
    add("rosen2 cached call >= 5x faster than JAX jit (ratio <= 0.2)", None if rj[main] is None else rj[main] <= 0.2,
        "; ".join(f"{v.removeprefix('symdl ')}: {fmt_ratio(r)}" for v, r in rj.items()))
    first = res.get("rosen2", case, main, "build")
    add("rosen2 first call (trace + compile, disk cache off) <= 100 ms",
        None if first is None else first <= 0.100,
        "value_and_grad, first symdl call of the process: " + fmt_time(first) + "; dlfeval(dlaccelerate): "
        + fmt_time(res.get("rosen2", case, "symdl dlfeval(dlaccelerate)", "build")) + "; compile: "
        + fmt_time(res.get("rosen2", case, "symdl compile", "build")) + "; new process, cache off: "
        + fmt_time(res.get("rosen2", "new process: first result after import symdl",
                           "symdl value_and_grad, disk cache off")))
    warm = res.get("rosen2", "new process: first result after import symdl", "symdl value_and_grad, warm disk cache")
    warm_d = res.get("rosen2", "new process: first result after import symdl", "symdl dlfeval, warm disk cache")
    imp = res.rows.get(("rosen2", "new process: first result after import symdl",
                        "symdl value_and_grad, warm disk cache"), {}).get("extra", {}).get("import_seconds")
    add("new process, warm disk cache: first result <= 20 ms after import symdl",
        None if warm is None else warm <= 0.020,
        f"value_and_grad {fmt_time(warm)}, dlfeval {fmt_time(warm_d)} (import symdl itself: {fmt_time(imp)})")

    # rosenN ----------------------------------------------------------------
    case = "gradient, N = 1e6"
    s = res.get("rosenN", case, "symdl grad")
    r_new = _ratio(s, res.get("rosenN", case, "C -O2 via ctypes, new output array"))
    r_re = _ratio(s, res.get("rosenN", case, "C -O2 via ctypes, reused output"))
    add("rosenN gradient N=1e6 <= 1.2x C -O2", None if r_new is None else r_new <= 1.2,
        f"{fmt_ratio(r_new)} (C with a new output array per call, like symdl); {fmt_ratio(r_re)} (C reusing its "
        f"output); vs JAX {fmt_ratio(_ratio(s, res.get('rosenN', case, 'JAX jit(grad)')))}")
    for case, impl, label in [("Hessian-vector product, N = 1000", "symdl hvp", "hvp N=1000"),
                              ("dense Hessian, N = 200", "symdl hessian", "dense Hessian N=200")]:
        s = res.get("rosenN", case, impl)
        peers = res.peers("rosenN", case)
        worst = max(peers, key=lambda r: s / r["per_call"]) if peers and s else None
        ratio = None if worst is None else s / worst["per_call"]
        detail = "—" if worst is None else (f"slowest ratio {fmt_ratio(ratio)} vs {worst['impl']}; " + "; ".join(
            f"{r['impl']}: {fmt_ratio(s / r['per_call'])}" for r in peers))
        add(f"rosenN {label} faster per call than every peer", None if ratio is None else ratio < 1.0, detail)
        b = res.get("rosenN", case, impl, "build")
        add(f"rosenN {label} built in <= 100 ms", None if b is None else b <= 0.100, fmt_time(b))

    # nthderiv --------------------------------------------------------------
    case = "k = 8"
    s = res.get("nthderiv", case, "symdl derivative")
    peers = res.peers("nthderiv", case)
    if s and peers:
        worst = max(peers, key=lambda r: s / r["per_call"])
        add("nthderiv k=8 evaluation faster than every peer", s < worst["per_call"],
            f"slowest ratio {fmt_ratio(s / worst['per_call'])} vs {worst['impl']}; "
            + "; ".join(f"{r['impl']}: {fmt_ratio(s / r['per_call'])}" for r in peers))
    else:
        add("nthderiv k=8 evaluation faster than every peer", None, "—")
    sb = res.get("nthderiv", case, "symdl derivative", "build")
    se = _ratio(sb, res.get("nthderiv", case, "SymEngine diff + Lambdify (llvm, cse)", "build"))
    add("nthderiv k=8 compile <= 2x SymEngine's", None if se is None else se <= 2.0,
        f"{fmt_ratio(se)} (symdl {fmt_time(sb)})")
    jb = _ratio(sb, res.get("nthderiv", case, "JAX jit(vmap(grad^k))", "build"))
    add("nthderiv k=8 compile >= 50x faster than JAX's (ratio <= 0.02)", None if jb is None else jb <= 0.02,
        f"{fmt_ratio(jb)} (JAX {fmt_time(res.get('nthderiv', case, 'JAX jit(vmap(grad^k))', 'build'))}, "
        f"{'%.0f' % (1 / jb) if jb else '—'}x faster)")

    # hessmlp ---------------------------------------------------------------
    case = "Hessian 65 x 65 of the MLP loss, 64 samples"
    r = _ratio(res.get("hessmlp", case, "symdl hessian"), res.get("hessmlp", case, "JAX jit(hessian)"))
    add("hessmlp Hessian <= 0.5x JAX jit per call", None if r is None else r <= 0.5, fmt_ratio(r))

    # tracing ---------------------------------------------------------------
    cases = sorted({c for (b, c, _) in res.rows if b == "tracing" and c.startswith("traced op")},
                   key=lambda c: int("".join(ch for ch in c if ch.isdigit())))
    traced = {c: _ratio(res.get("tracing", c, "symdl dlfeval (trace)"),
                        res.get("tracing", c, "PyTorch eager (forward)")) for c in cases}
    known = [r for r in traced.values() if r is not None]
    add("tracing: a traced op under dlfeval <= 10x PyTorch eager, at 1k, 10k and 100k ops",
        None if not known else max(known) <= 10.0,
        "; ".join(f"{c.rsplit(', ', 1)[-1]}: {fmt_ratio(r)} "
                  f"({fmt_time(res.get('tracing', c, 'symdl dlfeval (trace)'))})" for c, r in traced.items()) or "—")
    for expr in ("x * g", "x - 0.1 * g"):
        case = f"untraced {expr} (3 elements)"
        r = _ratio(res.get("tracing", case, "symdl dlarray"), res.get("tracing", case, "PyTorch eager"))
        add(f"tracing: untraced dlarray {expr} <= 2x PyTorch eager", None if r is None else r <= 2.0,
            f"{fmt_ratio(r)} ({fmt_time(res.get('tracing', case, 'symdl dlarray'))})")

    # cnn --------------------------------------------------------------------
    from bench_cnn import CASE as cnn_case
    r = _ratio(res.get("cnn", cnn_case, "symdl: dlaccelerate(model gradients)"),
               res.get("cnn", cnn_case, "PyTorch eager (forward + backward)"))
    add("cnn: loss + gradients <= 2x PyTorch eager (issue 7; 1x is issue 9's)", None if r is None else r <= 2.0,
        fmt_ratio(r))

    # mlp, matmul (issue 9) ---------------------------------------------------
    from bench_mlp import CASE as mlp_case
    s = res.get("mlp", mlp_case, "symdl: dlaccelerate(model gradients)")
    for peer_impl, label in [("numpy (hand-written backprop)", "hand-written numpy"),
                             ("numpy, OpenBLAS on one thread", "hand-written numpy, one BLAS thread (orientation)"),
                             ("PyTorch eager (forward + backward)", "PyTorch eager")]:
        r = _ratio(s, res.get("mlp", mlp_case, peer_impl))
        add(f"mlp 64-128-64-10 loss + gradients, batch 256 <= 1.0x {label}", None if r is None else r <= 1.0,
            f"{fmt_ratio(r)} (symdl {fmt_time(s)})")
    matmul_cases = {c for (b, c, _) in res.rows if b == "matmul"}
    cases = sorted((c for c in matmul_cases if c.split()[1].isdigit()),   # the square sweep
                   key=lambda c: (c.split()[0], int(c.split()[1])))
    worst = []
    for c in cases:
        sm = res.get("matmul", c, "symdl compile")
        r = _ratio(sm, res.get("matmul", c, "numpy"))
        if r is not None:
            worst.append((r, c))
    add("matmul sweep 32..1024: symdl <= 1.0x numpy at every size (orientation; not an issue target)",
        None if not worst else max(worst)[0] <= 1.0,
        "; ".join(f"{c.split(' x ')[0]}: {fmt_ratio(r)}" for r, c in worst) or "—")
    small = []   # the products of an MLP step, native entry against numpy writing into a given array
    for c in sorted(matmul_cases - set(cases)):
        r = _ratio(res.get("matmul", c, "symdl compile, native entry"), res.get("matmul", c, "numpy matmul(out=)"))
        if r is not None:
            small.append((r, c))
    if small:
        add("matmul, the small products of an MLP step (every layout, both dtypes): generated kernel <= 1.1x "
            "numpy on one thread (orientation)", max(small)[0] <= 1.1,
            f"median {fmt_ratio(sorted(small)[len(small) // 2][0])}, worst {fmt_ratio(max(small)[0])} "
            f"({max(small)[1]})")
    train_targets(res, add)
    return out


def _accuracy(a: float | None) -> str:
    return "—" if a is None else f"{a:.4f}"


def train_targets(res: Results, add) -> None:
    """Issue 8's: the 100-step MLP training against JAX's jit (at the same
    accuracy), and the progress output's cost."""
    from bench_train import CASE as train_case
    symdl_row = res.rows.get(("train", train_case, "symdl: dlaccelerate(loss + dlgradient + adamupdate)"), {})
    jax_row = res.rows.get(("train", train_case, "JAX jit(whole step), Adam by hand"), {})
    r = _ratio(symdl_row.get("per_call"), jax_row.get("per_call"))
    acc = (symdl_row.get("extra", {}).get("test_accuracy"), jax_row.get("extra", {}).get("test_accuracy"))
    same = None if None in acc else abs(acc[0] - acc[1]) <= 0.01
    add("train (w4_mlp_train): 100 Adam steps of the digits MLP <= 1.0x JAX's whole-step jit, same accuracy",
        None if r is None or same is None else r <= 1.0 and same,
        f"{fmt_ratio(r)}; test accuracy symdl {_accuracy(acc[0])}, JAX {_accuracy(acc[1])}")
    import re
    from bench_train import VERBOSE_CASE
    off = res.get("train", VERBOSE_CASE, "train_network, verbose=False")
    table = bar = None
    notes = next((d for b, d in res.notes.items() if b == "train"), [])
    for n in notes:
        if n.startswith("progress output measured alone"):
            share = [float(x) for x in re.findall(r"= ([\d.]+) %", n)]
            table, bar = (share + [None, None])[:2]
    add("train: progress output (table; bar on a terminal) < 5 % of train_network's time",
        None if table is None or bar is None else table + bar < 5.0,
        f"table {table} %, bar {bar} % of a verbose=False call ({fmt_time(off)})")


def targets_table(rows: list[tuple[str, str, str]]) -> str:
    lines = ["| target | verdict | measured (symdl / peer) |", "|---|---|---|"]
    lines += [f"| {t} | {v} | {m} |" for t, v, m in rows]
    return "\n".join(lines)


def environment_table(env: dict) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in env.items()]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer and shorter repeats (smoke run)")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(SCRIPTS))
    p.add_argument("--markdown", metavar="PATH", help="also write the summary (tables, targets) as Markdown")
    p.add_argument("--json", metavar="PATH", help="also write every result row as JSON")
    args = p.parse_args()
    names = args.only.split(",") if args.only else SCRIPTS
    start = time.perf_counter()
    env = common.environment()
    reports: dict[str, dict] = {}
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="symdl-bench-json-") as tmp:
        for name in names:
            data = run_script(name, args.quick, Path(tmp))
            if data is None:
                failed.append(name)
            else:
                reports[name] = data
    total = time.perf_counter() - start

    parts = ["# symdl benchmarks: summary", "",
             f"Command: `python benchmarks/run_all.py{' --quick' if args.quick else ''}"
             f"{' --only ' + args.only if args.only else ''}`; total {total:.0f} s.", "",
             "## Environment", "", environment_table(env), ""]
    for name in names:
        if name in reports:
            rep = as_report(reports[name])
            parts += [f"## {rep.title}", ""]
            for case in rep.cases():
                parts += [f"### {case}", "", rep.table(case), ""]
            parts += ["Checks (max |symdl - reference|):", ""]
            parts += [f"- {c['what']}: {c['max_abs_diff']:.3g}" for c in rep.checks]
            parts += [f"- note: {n}" for n in rep.notes] + [""]
        else:
            parts += [f"## {name}", "", "**the script failed** (see its output above)", ""]
    parts += ["## Targets", "", targets_table(targets(Results(reports))), ""]
    text = "\n".join(parts)
    print("\n" + text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": env, "reports": reports, "seconds": total},
                                              indent=1, default=str))
    if failed:
        print(f"failed scripts: {', '.join(failed)}")


if __name__ == "__main__":
    main()
