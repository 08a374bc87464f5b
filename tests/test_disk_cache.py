"""Acceptance tests of the disk cache of compiled code (SPEC section 3 "Disk
cache"): a new process skips LLVM compilation; corrupt, truncated or foreign
entries are ignored and rebuilt, never loaded; SYMDL_CACHE_DIR=0 disables
it; concurrent processes are safe and leave only complete entries.

Every test points SYMDL_CACHE_DIR (and HOME / XDG_CACHE_HOME where the
default location matters) at a temporary directory.  Expected values come from
the hand-derived gradient of y = sum((x2 - x1^2)^2 + k (1 - x1)^2), the
seed's toy function for k = 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import symdl
from symdl import dlarray, dlgradient, extractdata
from symdl.compiler import pipeline as backend

ROOT = Path(__file__).resolve().parent.parent
POINTS = [(2.0, 2.0), (0.5, -1.25), (-1.5, 3.0)]


def make_loss(k: float):
    """The seed's toy function with weight k on the (1 - x1)^2 term (k = 1: the seed)."""
    def loss(x1, x2):
        y = symdl.sum((x2 - x1 ** 2) ** 2 + k * (1 - x1) ** 2)
        g1, g2 = dlgradient(y, x1, x2)
        return y, g1, g2
    return loss


def reference(k: float, x1: float, x2: float) -> list[float]:
    return [(x2 - x1 ** 2) ** 2 + k * (1 - x1) ** 2, -4 * x1 * (x2 - x1 ** 2) - 2 * k * (1 - x1),
            2 * (x2 - x1 ** 2)]


def values(out) -> list[float]:
    return [float(np.asarray(extractdata(o) if isinstance(o, dlarray) else o)) for o in out]


def check_results(results: dict, ks) -> None:
    """``results[str(k)][i]`` holds the outputs at POINTS[i]."""
    for k in ks:
        for (x1, x2), got in zip(POINTS, results[str(float(k))]):
            np.testing.assert_allclose(got, reference(k, x1, x2), rtol=1e-12, atol=1e-12,
                                       err_msg=f"k = {k} at {(x1, x2)}")


def entries(cache: Path) -> list[Path]:
    """Entry files (and leftover temporary files) under ``cache``; not the key file."""
    return sorted(p for p in cache.rglob("*") if p.is_file() and p.name != "key")


CHILD = """
import json, os, sys, time
from pathlib import Path
import numpy as np
import symdl
from symdl import dlgradient
from symdl.compiler import pipeline as backend

def make_loss(k):
    def loss(x1, x2):
        y = symdl.sum((x2 - x1 ** 2) ** 2 + k * (1 - x1) ** 2)
        g1, g2 = dlgradient(y, x1, x2)
        return y, g1, g2
    return loss

mode, ks = sys.argv[1], [float(k) for k in sys.argv[2].split(",")]
ready, go = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else (None, None)
POINTS = [(2.0, 2.0), (0.5, -1.25), (-1.5, 3.0)]
if ready:  # start compiling together with the other processes
    Path(ready).write_text("ready")
    deadline = time.time() + 60
    while not os.path.exists(go):
        if time.time() > deadline:
            sys.exit("timed out waiting for the go file")
        time.sleep(0.005)
results = {}
for k in ks:
    if mode == "compile":
        f = symdl.compile(make_loss(k), 2.0, 2.0)
        outs = [f(x1, x2) for x1, x2 in POINTS]
    else:
        acc = symdl.dlaccelerate(make_loss(k))
        outs = [symdl.dlfeval(acc, symdl.dlarray(x1), symdl.dlarray(x2)) for x1, x2 in POINTS]
    results[str(k)] = [[float(np.asarray(symdl.extractdata(o))) for o in out] for out in outs]
print(json.dumps({"results": results, "compiled": backend.STATS["compiled"],
                  "disk_hits": backend.STATS["disk_hits"]}))
"""


def child_env(cache: Path | str, tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["SYMDL_CACHE_DIR"] = str(cache)
    env["HOME"] = str(tmp_path / "home")          # in case the variable were ignored
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    return env


def child_command(mode: str, ks, *sync: Path) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(CHILD), mode, ",".join(str(float(k)) for k in ks),
            *(str(s) for s in sync)]


def run_child(mode: str, ks, env: dict) -> dict:
    proc = subprocess.run(child_command(mode, ks), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "symdl-cache"
    monkeypatch.setenv("SYMDL_CACHE_DIR", str(d))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return d


def compile_and_count(k: float):
    """Compile make_loss(k) in this process; the outputs at POINTS and the STATS deltas."""
    before = dict(backend.STATS)
    f = symdl.compile(make_loss(k), 2.0, 2.0)
    compiled = backend.STATS["compiled"] - before["compiled"]
    hits = backend.STATS["disk_hits"] - before["disk_hits"]
    return [values(f(x1, x2)) for x1, x2 in POINTS], compiled, hits


# ================================================================ another process

class TestSecondProcess:
    @pytest.mark.parametrize("mode", ["compile", "accelerate"])
    def test_second_process_gets_a_disk_hit(self, tmp_path, mode):
        cache = tmp_path / "symdl-cache"
        env = child_env(cache, tmp_path)
        first = run_child(mode, [1], env)
        assert first["compiled"] == 1 and first["disk_hits"] == 0, first
        check_results(first["results"], [1])
        assert entries(cache), "nothing was written to SYMDL_CACHE_DIR"
        second = run_child(mode, [1], env)
        assert second["disk_hits"] == 1, second
        assert second["compiled"] == 0, second
        check_results(second["results"], [1])
        assert second["results"]["1.0"][0] == [5.0, 18.0, -4.0]
        if mode == "accelerate":
            # a corrupt entry met by a new process is rebuilt, never loaded
            (target,) = entries(cache)
            _flip_middle(target, target)
            third = run_child(mode, [1], env)
            assert third["compiled"] == 1 and third["disk_hits"] == 0, third
            check_results(third["results"], [1])

    def test_other_function_is_not_a_hit(self, cache):
        compile_and_count(1.0)
        out, compiled, hits = compile_and_count(2.0)
        assert (compiled, hits) == (1, 0)
        check_results({"2.0": out}, [2.0])

    def test_in_process_writer_and_reader(self, cache):
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0)
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (0, 1)
        check_results({"1.0": out}, [1.0])


# ================================================================ bad entries

def _truncate_half(p: Path, other: Path) -> None:
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])


def _truncate_to_10(p: Path, other: Path) -> None:
    p.write_bytes(p.read_bytes()[:10])


def _empty(p: Path, other: Path) -> None:
    p.write_bytes(b"")


def _flip_middle(p: Path, other: Path) -> None:
    blob = bytearray(p.read_bytes())
    mid = len(blob) // 2
    for i in range(mid, mid + 8):
        blob[i] ^= 0xFF
    p.write_bytes(bytes(blob))


def _flip_last(p: Path, other: Path) -> None:
    blob = bytearray(p.read_bytes())
    blob[-1] ^= 0x01
    p.write_bytes(bytes(blob))


def _flip_first(p: Path, other: Path) -> None:
    blob = bytearray(p.read_bytes())
    blob[0] ^= 0x20
    p.write_bytes(bytes(blob))


def _garbage(p: Path, other: Path) -> None:
    p.write_bytes(np.random.default_rng(0).integers(0, 256, p.stat().st_size, dtype=np.uint8).tobytes())


def _foreign(p: Path, other: Path) -> None:
    p.write_bytes(other.read_bytes())


def _appended(p: Path, other: Path) -> None:
    p.write_bytes(p.read_bytes() + b"\x00" * 16)


CORRUPTIONS = {"truncated to half": _truncate_half, "truncated to 10 bytes": _truncate_to_10, "empty": _empty,
               "bytes flipped in the middle": _flip_middle, "last byte flipped": _flip_last,
               "first byte flipped": _flip_first, "random garbage": _garbage,
               "another key's entry": _foreign, "bytes appended": _appended}


class TestBadEntries:
    @pytest.mark.parametrize("how", list(CORRUPTIONS))
    def test_bad_entry_is_a_miss_and_is_rebuilt(self, cache, how):
        _, compiled, _ = compile_and_count(1.0)
        assert compiled == 1
        (target,) = entries(cache)
        _, compiled, _ = compile_and_count(2.0)      # another key, for the foreign entry
        assert compiled == 1
        (other,) = [p for p in entries(cache) if p != target]
        CORRUPTIONS[how](target, other)
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0), f"{how}: the bad entry was used"
        check_results({"1.0": out}, [1.0])
        # rebuilt: the next compile is a valid hit
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (0, 1), f"{how}: the entry was not rebuilt"
        check_results({"1.0": out}, [1.0])
        assert [p for p in entries(cache) if "tmp" in p.name] == []

    def test_entry_path_is_a_directory(self, cache):
        compile_and_count(1.0)
        (target,) = entries(cache)
        target.unlink()
        target.mkdir()
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0)
        check_results({"1.0": out}, [1.0])

    def test_unwritable_cache_still_computes(self, tmp_path, monkeypatch):
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        monkeypatch.setenv("SYMDL_CACHE_DIR", str(blocker / "cache"))
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0)
        check_results({"1.0": out}, [1.0])


# ================================================================ disabled / default

class TestLocation:
    def test_zero_disables_the_cache(self, tmp_path, monkeypatch):
        home, xdg, work = tmp_path / "home", tmp_path / "xdg", tmp_path / "work"
        for d in (home, xdg, work):
            d.mkdir()
        monkeypatch.setenv("SYMDL_CACHE_DIR", "0")
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
        monkeypatch.chdir(work)
        for _ in range(2):
            out, compiled, hits = compile_and_count(1.0)
            assert (compiled, hits) == (1, 0)
            check_results({"1.0": out}, [1.0])
        acc = symdl.dlaccelerate(make_loss(3.0))
        symdl.dlfeval(acc, dlarray(1.0), dlarray(1.0))
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert written == [], written

    def test_zero_disables_the_cache_in_a_child(self, tmp_path):
        env = child_env("0", tmp_path)
        res = run_child("compile", [1, 1], env)
        assert res["compiled"] == 2 and res["disk_hits"] == 0, res
        check_results(res["results"], [1])
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert written == [], written

    def test_default_is_the_user_cache_directory(self, tmp_path, monkeypatch):
        monkeypatch.delenv("SYMDL_CACHE_DIR", raising=False)
        home, xdg = tmp_path / "home", tmp_path / "xdg"
        monkeypatch.setenv("HOME", str(home))
        monkeypatch.setenv("XDG_CACHE_HOME", str(xdg))
        _, compiled, _ = compile_and_count(5.0)
        assert compiled == 1
        written = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert written, "nothing was written to the default cache directory"
        for p in written:
            assert "symdl" in p.relative_to(tmp_path).parts, p
        _, compiled, hits = compile_and_count(5.0)
        assert (compiled, hits) == (0, 1)


# ================================================================ concurrency

class TestConcurrentProcesses:
    def test_four_processes_at_once(self, tmp_path):
        cache = tmp_path / "symdl-cache"
        env = child_env(cache, tmp_path)
        plans = [[1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [1, 2, 3, 4, 5], [6, 7, 1, 8, 2]]
        go = tmp_path / "go"
        procs = []
        for i, ks in enumerate(plans):
            ready = tmp_path / f"ready{i}"
            procs.append((ready, ks, subprocess.Popen(child_command("compile", ks, ready, go), env=env, cwd=ROOT,
                                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        deadline = time.time() + 90
        while not all(r.exists() for r, _, _ in procs):
            assert time.time() < deadline, "children did not start"
            assert all(p.poll() is None for _, _, p in procs), "a child exited early"
            time.sleep(0.01)
        go.write_text("go")
        total_compiled = 0
        for _, ks, p in procs:
            stdout, stderr = p.communicate(timeout=120)
            assert p.returncode == 0, f"child failed ({p.returncode}):\n{stdout}\n{stderr}"
            res = json.loads(stdout.strip().splitlines()[-1])
            assert res["compiled"] + res["disk_hits"] == len(ks), res
            check_results(res["results"], [float(k) for k in ks])
            total_compiled += res["compiled"]
        distinct = sorted({float(k) for ks in plans for k in ks})
        assert total_compiled >= len(distinct)
        files = entries(cache)
        assert [p for p in files if "tmp" in p.name.lower()] == [], files
        assert len(files) == len(distinct), files
        # every entry left behind is complete and valid: a new process loads them all
        after = run_child("compile", distinct, env)
        assert after["compiled"] == 0 and after["disk_hits"] == len(distinct), after
        check_results(after["results"], distinct)


# ---------------------------------------------------------------- the graph stored with the code

def test_entry_stores_the_graph_it_computes(tmp_path, monkeypatch):
    from symdl.cache import stored_graph
    from symdl.ir.graph import Graph
    from symdl.ir.serialize import graph_digest

    cache = tmp_path / "cache"
    monkeypatch.setenv("SYMDL_CACHE_DIR", str(cache))
    weights = np.array([1.0, -2.0, np.inf])
    f = symdl.compile(lambda x: np.sum(np.sin(x) * weights), np.zeros(3))
    (entry,) = entries(cache)
    ins, outs = stored_graph(entry.name[:-len(entry.suffix)])
    # the same graph: same content hash, and it evaluates like the compiled code
    assert graph_digest(ins, outs) == graph_digest(f._program.inputs, f._program.array_outputs)
    x = np.array([0.3, -1.0, 0.0])
    with np.errstate(invalid="ignore"):  # sin(0) * inf is NaN on both sides
        (value,) = Graph(ins, outs)(x)
        np.testing.assert_allclose(value, np.sum(np.sin(x) * weights))
    assert stored_graph("0" * 64) is None
