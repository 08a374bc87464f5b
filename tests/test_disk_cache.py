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
import stat
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


# ================================================================ trust (SPEC §9.3)

def _user_dir(cache: Path) -> Path:
    return cache / f"u{os.geteuid()}"


def _split(blob: bytes) -> tuple[bytes, dict, bytes]:
    """(magic line, header, object code) of an entry (the format of symdl.cache)."""
    magic_end = blob.index(b"\n") + 1
    n = int(blob[magic_end:magic_end + 16])
    header = json.loads(blob[magic_end + 16:magic_end + 16 + n])
    return blob[:magic_end], header, blob[magic_end + 16 + n:-64]


def _assemble(magic: bytes, header: dict, code: bytes, mac_key: bytes | None) -> bytes:
    """An entry with ``header`` and ``code``: authenticated with ``mac_key``,
    or, with None, with the SHA-256 checksum the old format used (what an
    attacker without the key can compute)."""
    import hashlib
    import hmac
    head = json.dumps(header, sort_keys=True).encode()
    body = b"%016d" % len(head) + head + code
    if mac_key is None:
        return magic + body + hashlib.sha256(body).hexdigest().encode()
    return magic + body + hmac.new(mac_key, magic + body, hashlib.sha256).hexdigest().encode()


def _secret_key(cache: Path) -> bytes:
    return bytes.fromhex((_user_dir(cache) / "key").read_text())


def _entry_of(cache: Path, before: list[Path]) -> Path:
    (new,) = [p for p in entries(cache) if p not in before]
    return new


def _two_entries(cache: Path) -> tuple[Path, Path]:
    """The entries of make_loss(1) (the victim) and make_loss(2)."""
    compile_and_count(1.0)
    (victim,) = entries(cache)
    compile_and_count(2.0)
    return victim, _entry_of(cache, [victim])


def _assert_miss_then_hit(how: str) -> None:
    out, compiled, hits = compile_and_count(1.0)
    assert (compiled, hits) == (1, 0), f"{how}: the bad entry was used"
    check_results({"1.0": out}, [1.0])
    out, compiled, hits = compile_and_count(1.0)
    assert (compiled, hits) == (0, 1), f"{how}: the entry was not rebuilt"
    check_results({"1.0": out}, [1.0])


class TestAuthenticatedEntries:
    def test_key_file_is_private(self, cache):
        compile_and_count(1.0)
        key = _user_dir(cache) / "key"
        st = key.lstat()
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
        assert stat.S_IMODE(_user_dir(cache).stat().st_mode) == 0o700

    def test_planted_code_with_recomputed_sha256_is_a_miss(self, cache):
        # issue 10: another function's object code under the victim's key,
        # checksum recomputed, ran and gave the other function's results
        victim, other = _two_entries(cache)
        magic, header, _ = _split(victim.read_bytes())
        _, other_header, other_code = _split(other.read_bytes())
        planted = dict(other_header, key=header["key"], name=header["name"])
        victim.write_bytes(_assemble(magic, planted, other_code, None))
        _assert_miss_then_hit("planted with SHA-256")

    def test_entry_copied_from_another_users_cache_is_a_miss(self, cache, tmp_path, monkeypatch):
        elsewhere = tmp_path / "elsewhere"
        monkeypatch.setenv("SYMDL_CACHE_DIR", str(elsewhere))
        compile_and_count(1.0)
        (theirs,) = entries(elsewhere)
        monkeypatch.setenv("SYMDL_CACHE_DIR", str(cache))
        compile_and_count(3.0)                      # makes this cache's (different) key
        assert _secret_key(cache) != _secret_key(elsewhere)
        target = _user_dir(cache) / theirs.relative_to(_user_dir(elsewhere))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(theirs.read_bytes())
        _assert_miss_then_hit("copied from a cache with another key")

    @pytest.mark.parametrize("field, value", [("workspace_bytes", -1), ("workspace_bytes", 1 << 50),
                                              ("workspace_bytes", 1 << 20),
                                              ("workspace_bytes", "64"), ("out_specs", [[[2], "float64"]] * 3),
                                              ("in_specs", [[[], "float32"], [[], "float64"]]),
                                              ("name", "symdl_other"), ("target_key", "x86|other")])
    def test_header_that_does_not_match_the_graph_is_a_miss(self, cache, field, value):
        # even under a valid MAC (a bug, or another symdl version's writer),
        # a header that does not fit what is being compiled is never used
        victim, _ = _two_entries(cache)
        magic, header, code = _split(victim.read_bytes())
        victim.write_bytes(_assemble(magic, dict(header, **{field: value}), code, _secret_key(cache)))
        _assert_miss_then_hit(f"{field} = {value!r}")

    def test_undersized_workspace_under_a_valid_mac_is_a_miss(self, cache):
        # issue 10: workspace_bytes=0 in a header crashed the process (SIGSEGV)
        def net(w, x):
            y = symdl.sum(symdl.tanh(x @ w) ** 2)
            return y, dlgradient(y, w)
        w, x = np.linspace(-1, 1, 12).reshape(3, 4), np.linspace(0, 1, 6).reshape(2, 3)
        want = symdl.dlfeval(net, dlarray(w), dlarray(x))    # the interpreter
        symdl.compile(net, w, x)
        (entry,) = entries(cache)
        magic, header, code = _split(entry.read_bytes())
        assert header["workspace_bytes"] > 0
        entry.write_bytes(_assemble(magic, dict(header, workspace_bytes=0), code, _secret_key(cache)))
        before = dict(backend.STATS)
        got = symdl.compile(net, w, x)(w, x)
        assert backend.STATS["compiled"] - before["compiled"] == 1, "the undersized header was used"
        for g, e in zip(got, want):
            np.testing.assert_allclose(g, extractdata(e), rtol=1e-12, atol=1e-12)

    def test_other_functions_code_under_a_valid_mac_with_other_specs_is_a_miss(self, cache):
        victim = None
        compile_and_count(1.0)
        (victim,) = entries(cache)
        f = symdl.compile(lambda x: x * 2.0, np.zeros(3))   # other output shapes
        np.testing.assert_array_equal(f(np.ones(3)), 2.0 * np.ones(3))
        other = _entry_of(cache, [victim])
        magic, header, _ = _split(victim.read_bytes())
        _, other_header, other_code = _split(other.read_bytes())
        forged = dict(other_header, key=header["key"], name=header["name"])
        victim.write_bytes(_assemble(magic, forged, other_code, _secret_key(cache)))
        _assert_miss_then_hit("other specs under a valid MAC")

    @pytest.mark.skipif(os.geteuid() != 0, reason="making a file owned by another user needs root")
    def test_entry_owned_by_another_user_is_ignored(self, cache):
        compile_and_count(1.0)
        (victim,) = entries(cache)
        os.chown(victim, 12345, 12345)  # a valid entry, but not this user's
        _assert_miss_then_hit("owned by another user")
        assert victim.stat().st_uid == os.geteuid()


class TestNonRegularEntries:
    def test_symlink_to_dev_zero_is_a_miss(self, cache):
        compile_and_count(1.0)
        (victim,) = entries(cache)
        victim.unlink()
        victim.symlink_to("/dev/zero")
        _assert_miss_then_hit("symlink to /dev/zero")
        assert not victim.is_symlink()

    def test_symlink_to_a_valid_copy_is_a_miss(self, cache, tmp_path):
        # even a symlink to this user's own valid bytes: never followed
        compile_and_count(1.0)
        (victim,) = entries(cache)
        copy = tmp_path / "copy.o"
        copy.write_bytes(victim.read_bytes())
        victim.unlink()
        victim.symlink_to(copy)
        _assert_miss_then_hit("symlink to a copy")

    def test_fifo_entry_is_a_miss_not_a_hang(self, tmp_path):
        cache = tmp_path / "symdl-cache"
        env = child_env(cache, tmp_path)
        first = run_child("compile", [1], env)
        (victim,) = entries(cache)
        victim.unlink()
        os.mkfifo(victim)
        res = run_child("compile", [1], env)         # run_child's timeout fails a hang
        assert (res["compiled"], res["disk_hits"]) == (1, 0), res
        check_results(res["results"], [1])
        assert victim.is_file() and first["compiled"] == 1
        assert run_child("compile", [1], env)["disk_hits"] == 1

    def test_oversized_entry_is_not_read(self, cache, monkeypatch):
        from symdl import cache as disk
        compile_and_count(1.0)
        (victim,) = entries(cache)
        monkeypatch.setattr(disk, "MAX_ENTRY_BYTES", victim.stat().st_size - 1)
        out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0)
        check_results({"1.0": out}, [1.0])

    def test_shard_directory_replaced_by_a_symlink(self, cache, tmp_path):
        compile_and_count(1.0)
        (victim,) = entries(cache)
        shard = victim.parent
        elsewhere = tmp_path / "elsewhere"
        shard.rename(elsewhere)
        shard.symlink_to(elsewhere)
        out, compiled, hits = compile_and_count(1.0)
        check_results({"1.0": out}, [1.0])
        assert compiled + hits == 1
        _, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (0, 1)
        assert not shard.is_symlink() and shard.is_dir()


class TestKeyFile:
    @pytest.mark.parametrize("how", ["world readable", "a directory", "a symlink", "not hex", "short"])
    def test_untrusted_key_file_disables_the_cache(self, cache, tmp_path, how):
        compile_and_count(1.0)
        key = _user_dir(cache) / "key"
        good = key.read_bytes()
        from symdl import cache as disk
        disk._secret_cache.clear()
        disk._warned.clear()
        key.unlink()
        if how == "world readable":
            key.write_bytes(good)
            key.chmod(0o644)
        elif how == "a directory":
            key.mkdir()
        elif how == "a symlink":
            real = tmp_path / "real-key"
            real.write_bytes(good)
            real.chmod(0o600)
            key.symlink_to(real)
        else:
            key.write_bytes(b"z" * 64 if how == "not hex" else good[:32])
            key.chmod(0o600)
        with pytest.warns(RuntimeWarning, match="key file"):
            out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0), how
        check_results({"1.0": out}, [1.0])
        disk._secret_cache.clear()

    @pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs root")
    def test_user_directory_owned_by_another_user_disables_the_cache(self, cache):
        from symdl import cache as disk
        disk._warned.clear()
        user = _user_dir(cache)
        user.mkdir(parents=True)
        os.chown(user, 12345, 12345)
        with pytest.warns(RuntimeWarning, match="not a directory owned by this user"):
            out, compiled, hits = compile_and_count(1.0)
        assert (compiled, hits) == (1, 0)
        check_results({"1.0": out}, [1.0])
        assert list(user.iterdir()) == []

    def test_racing_processes_agree_on_one_key(self, tmp_path):
        cache = tmp_path / "symdl-cache"
        env = child_env(cache, tmp_path)
        procs = [subprocess.Popen(child_command("compile", [k]), env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for k in (1, 2, 3)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        # every entry is valid under the one key that survived
        res = run_child("compile", [1, 2, 3], env)
        assert res["disk_hits"] == 3, res


class TestCleanUpAndLimit:
    def test_stale_temporary_files_are_removed(self, cache):
        compile_and_count(1.0)
        (victim,) = entries(cache)
        stale, fresh = victim.parent / ".tmp-killed.o", victim.parent / ".tmp-writing.o"
        stale.write_bytes(b"partial")
        fresh.write_bytes(b"partial")
        old = time.time() - 3600
        os.utime(stale, (old, old))
        from symdl import cache as disk
        disk._stores_since_scan["user"] = None        # as a new process: the next store scans
        compile_and_count(2.0)
        assert not stale.exists() and fresh.exists()

    def test_size_limit_prunes_least_recently_used(self, cache, monkeypatch):
        compile_and_count(1.0)
        (first,) = entries(cache)
        size = first.stat().st_size
        limit_mb = 3.5 * size / (1 << 20)             # room for three entries
        monkeypatch.setenv("SYMDL_CACHE_MAX_MB", repr(limit_mb))
        for k in (2.0, 3.0):
            compile_and_count(k)
        old = time.time() - 100
        for p in entries(cache):
            os.utime(p, (old, old))
        second_and_third = [p for p in entries(cache) if p != first]
        assert compile_and_count(1.0)[2] == 1         # a hit touches the first entry: now most recent
        compile_and_count(4.0)                        # four entries: over the limit, pruned to 80% of it
        total = sum(p.stat().st_size for p in entries(cache))
        assert total <= 0.8 * limit_mb * (1 << 20), (total, limit_mb)
        assert first.exists(), "the recently used entry was pruned"
        assert [p for p in second_and_third if p.exists()] == [], "least recently used entries were kept"
        assert len(entries(cache)) == 2
        assert compile_and_count(1.0)[2] == 1

    @pytest.mark.parametrize("value", ["lots", "-1", "0", "nan"])
    def test_bad_limit_is_a_value_error(self, cache, monkeypatch, value):
        monkeypatch.setenv("SYMDL_CACHE_MAX_MB", value)
        with pytest.raises(ValueError, match="SYMDL_CACHE_MAX_MB"):
            compile_and_count(1.0)


class TestCommandLine:
    def _run(self, env, *args) -> str:
        proc = subprocess.run([sys.executable, "-m", "symdl", *args], env=env, cwd=ROOT, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def test_info_and_clear(self, tmp_path):
        cache = tmp_path / "symdl-cache"
        env = dict(child_env(cache, tmp_path), SYMDL_CACHE_MAX_MB="12")
        run_child("compile", [1, 2], env)
        files = entries(cache)
        info = self._run(env, "cache", "info")
        assert f"directory: {_user_dir(cache)}" in info
        assert "entries:   2" in info and "limit:     12.0 MB" in info
        size = sum(p.stat().st_size for p in files) / 1024
        assert f"size:      {size:.1f} KB" in info
        assert "removed 2 entries" in self._run(env, "cache", "clear")
        assert entries(cache) == []
        assert "entries:   0" in self._run(env, "cache", "info")

    def test_bad_action_is_a_usage_error(self, tmp_path):
        proc = subprocess.run([sys.executable, "-m", "symdl", "cache", "nuke"], env=child_env(tmp_path, tmp_path),
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "invalid choice" in proc.stderr


NO_HOME = """
import pwd, sys
def no_entry(uid):
    raise KeyError(uid)
pwd.getpwuid = no_entry          # no passwd entry for this uid, and HOME is unset
import symdl
from symdl.compiler import pipeline as backend
from symdl.cache import cache_dir
f = symdl.compile(lambda x: x ** 3, 2.0)
print(cache_dir(), float(f(3.0)), backend.STATS["disk_hits"])
"""


def test_no_home_directory_falls_back_to_a_private_temporary_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "SYMDL_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    outs = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", NO_HOME], env=env, cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        outs.append(proc.stdout.split())
    base = tmp_path / f"symdl-cache-{os.geteuid()}"
    assert outs[0][0] == str(base / f"u{os.geteuid()}" / "v2")
    assert float(outs[0][1]) == 27.0 and float(outs[1][1]) == 27.0
    assert (outs[0][2], outs[1][2]) == ("0", "1")
    assert stat.S_IMODE(base.stat().st_mode) == 0o700 and base.stat().st_uid == os.geteuid()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs root")
def test_fallback_directory_planted_by_another_user_is_not_used(tmp_path, monkeypatch):
    import tempfile
    from symdl import cache as disk
    for name in ("SYMDL_CACHE_DIR", "XDG_CACHE_HOME", "HOME"):
        monkeypatch.delenv(name, raising=False)

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    planted = tmp_path / f"symdl-cache-{os.geteuid()}"
    planted.mkdir(mode=0o777)
    os.chown(planted, 12345, 12345)        # made first by another user of a shared /tmp
    disk._warned.clear()
    with pytest.warns(RuntimeWarning, match="not a directory owned by this user"):
        out, compiled, hits = compile_and_count(1.0)
    assert (compiled, hits) == (1, 0)
    check_results({"1.0": out}, [1.0])
    assert list(planted.iterdir()) == []


def test_disabled_cache_info(tmp_path):
    env = dict(child_env("0", tmp_path))
    proc = subprocess.run([sys.executable, "-m", "symdl", "cache", "info"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "disabled" in proc.stdout
