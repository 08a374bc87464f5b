"""Acceptance tests of ahead-of-time compilation (SPEC section 3 "Ahead of
time", section 8 on compile/export): symdl.compile, CompiledFunction
(.llvm_ir, .asm, .save, pickling), symdl.load in another process, and
symdl.export to a C-callable shared library with a header.

Expected values come from the hand-derived gradient of the seed's toy
function y = (x2 - x1^2)^2 + (1 - x1)^2, or from numpy.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import pickle
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symdl
from helpers import toy_reference
from symdl import dlarray, dlgradient, extractdata
from symdl.compiler import pipeline as backend

ROOT = Path(__file__).resolve().parent.parent
MAIN_C = ROOT / "examples" / "aot_c" / "main.c"
CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler ('cc') on PATH to link or build C programs")


@pytest.fixture(autouse=True)
def _own_cache(private_cache):
    """Every test gets its own disk cache (the fixture is in conftest.py)."""
    return private_cache


# ---------------------------------------------------------------- references



def data(x) -> np.ndarray:
    return np.asarray(extractdata(x) if isinstance(x, dlarray) else x, dtype=np.float64)


def close(actual, expected, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(data(actual), np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)


def toy_grad(x1, x2):
    """The seed's toy loss and its two gradient components (module level: picklable)."""
    y = symdl.sum((x2 - x1 ** 2) ** 2 + (1 - x1) ** 2)
    g1, g2 = dlgradient(y, x1, x2)
    return y, g1, g2


def scaled_power(x, w, p):
    """x, w arrays; p static."""
    y = symdl.sum(w * x ** p)
    return y, dlgradient(y, x)


def branchy(x):
    if symdl.sum(x) > 0:
        return x * 2.0
    return x * -3.0


def _compiled_worker(cf, args):
    """Runs in a fresh 'spawn' process."""
    out = cf(*args)
    return {"out": [data(o) for o in out], "compiled": backend.STATS["compiled"],
            "disk_hits": backend.STATS["disk_hits"], "cache_dir": os.environ.get("SYMDL_CACHE_DIR")}


def child_env(cache_dir: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["SYMDL_CACHE_DIR"] = str(cache_dir)
    return env


def run_python(code: str, env: dict, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ================================================================ compile

class TestCompile:
    def test_toy_function_value_and_gradient(self):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        assert isinstance(f, symdl.CompiledFunction)
        y, g1, g2 = f(2.0, 2.0)
        assert (float(y), float(g1), float(g2)) == (5.0, 18.0, -4.0)
        for x1, x2 in ((1.0, 1.0), (-0.5, 3.0), (0.3, 0.09), (1e3, -2.5)):
            for got, want in zip(f(x1, x2), toy_reference(x1, x2)):
                close(got, want)

    def test_vector_signature(self):
        rng = np.random.default_rng(0)
        f = symdl.compile(toy_grad, np.zeros(5), np.zeros(5))
        for _ in range(3):
            x1, x2 = rng.standard_normal(5), rng.standard_normal(5)
            y, g1, g2 = f(x1, x2)
            ref = toy_reference(x1, x2)
            close(y, ref[0])
            close(g1, ref[1])
            close(g2, ref[2])
            assert np.shape(data(g1)) == (5,)

    def test_accepts_dlarrays_and_zero_d_arrays_of_the_compiled_signature(self):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        for got, want in zip(f(dlarray(0.5), np.array(-1.25)), toy_reference(0.5, -1.25)):
            close(got, want)

    def test_float32(self):
        f = symdl.compile(toy_grad, np.zeros(3, np.float32), np.zeros(3, np.float32))
        x1 = np.array([2.0, 0.5, -1.0], np.float32)
        x2 = np.array([2.0, -1.25, 0.5], np.float32)
        out = f(x1, x2)
        for got, want in zip(out, toy_reference(x1, x2)):
            assert np.asarray(got).dtype == np.float32
            close(got, want, rtol=1e-6, atol=1e-6)

    def test_static_argument(self):
        f = symdl.compile(scaled_power, np.zeros(3), np.ones(3), 3)
        x, w = np.array([1.0, -2.0, 0.5]), np.array([0.5, 1.0, 2.0])
        y, g = f(x, w, 3)
        close(y, np.sum(w * x ** 3))
        close(g, 3 * w * x ** 2)

    def test_does_not_retrace_or_recompile_per_call(self):
        calls = []

        def f(x):
            calls.append(1)
            return symdl.sum(symdl.exp(x))

        cf = symdl.compile(f, np.zeros(4))
        before = dict(backend.STATS)
        for k in range(3):
            v = np.linspace(-1, 1, 4) * k
            close(cf(v), np.sum(np.exp(v)), rtol=1e-14)
        assert len(calls) == 1
        assert backend.STATS["compiled"] == before["compiled"]

    def test_llvm_ir_and_asm(self):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        assert isinstance(f.llvm_ir, str) and "define" in f.llvm_ir
        assert isinstance(f.asm, str) and f.asm.strip()
        assert "ret" in f.asm

    def test_non_callable(self):
        with pytest.raises(TypeError, match="fun"):
            symdl.compile(3.0, 2.0)


class TestCallChecks:
    @pytest.fixture
    def compiled(self):
        return symdl.compile(scaled_power, np.zeros(3), np.ones(3), 3)

    def test_wrong_shape_names_the_argument(self, compiled):
        with pytest.raises(ValueError, match=r"argument 0\b") as err:
            compiled(np.zeros(4), np.ones(3), 3)
        assert "(4,)" in str(err.value) and "(3,)" in str(err.value)
        with pytest.raises(ValueError, match=r"argument 1\b"):
            compiled(np.zeros(3), np.ones((3, 1)), 3)

    def test_wrong_dtype_names_the_argument(self, compiled):
        with pytest.raises(ValueError, match=r"argument 1\b"):
            compiled(np.zeros(3), np.ones(3, np.float32), 3)

    def test_wrong_static_value_names_the_argument(self, compiled):
        with pytest.raises(ValueError, match=r"argument 2\b"):
            compiled(np.zeros(3), np.ones(3), 2)

    def test_array_for_static_is_an_error(self, compiled):
        with pytest.raises((TypeError, ValueError), match=r"argument 2\b"):
            compiled(np.zeros(3), np.ones(3), np.ones(3))

    def test_wrong_number_of_arguments(self, compiled):
        with pytest.raises((TypeError, ValueError), match="argument"):
            compiled(np.zeros(3), np.ones(3))

    def test_scalar_signature_rejects_arrays(self):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        with pytest.raises(ValueError, match=r"argument 1\b"):
            f(2.0, np.array([2.0, 3.0]))

    def test_other_branch_is_an_error_not_a_wrong_answer(self):
        f = symdl.compile(branchy, np.array([1.0, 2.0]))
        close(f(np.array([3.0, 1.0])), [6.0, 2.0])
        with pytest.raises(ValueError):
            f(np.array([-3.0, 1.0]))


# ================================================================ save / load

LOAD_CHILD = """
import json, sys
import numpy as np
import symdl
from symdl.compiler import pipeline as backend
f = symdl.load(sys.argv[1])
out = {}
for x1, x2 in ((2.0, 2.0), (0.5, -1.25)):
    out[f"{x1},{x2}"] = [float(np.asarray(symdl.extractdata(o) if isinstance(o, symdl.dlarray) else o))
                         for o in f(x1, x2)]
try:
    f(np.zeros(2), 2.0)
    checked = "no error"
except ValueError as e:
    checked = str(e)
print(json.dumps({"out": out, "compiled": backend.STATS["compiled"], "disk_hits": backend.STATS["disk_hits"],
                  "checked": checked}))
"""


class TestSaveLoad:
    def test_save_then_load_in_another_process(self, tmp_path):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        path = tmp_path / "toy.symdl"
        f.save(path)
        assert path.is_file() and path.stat().st_size > 0
        res = run_python(LOAD_CHILD, child_env(tmp_path / "child-cache"), str(path))
        assert res["compiled"] == 0
        assert res["disk_hits"] == 0
        for key, (x1, x2) in (("2.0,2.0", (2.0, 2.0)), ("0.5,-1.25", (0.5, -1.25))):
            close(res["out"][key], [float(v) for v in toy_reference(x1, x2)])
        assert res["out"]["2.0,2.0"] == [5.0, 18.0, -4.0]
        assert "argument 0" in res["checked"]

    def test_load_in_process(self, tmp_path):
        f = symdl.compile(scaled_power, np.zeros(3), np.ones(3), 2)
        path = tmp_path / "sp.bin"
        f.save(str(path))
        g = symdl.load(str(path))
        assert isinstance(g, symdl.CompiledFunction)
        x, w = np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])
        y, grad = g(x, w, 2)
        close(y, np.sum(w * x ** 2))
        close(grad, 2 * w * x)
        with pytest.raises(ValueError, match=r"argument 2\b"):
            g(x, w, 3)

    def test_load_of_a_non_symdl_file(self, tmp_path):
        path = tmp_path / "notes.txt"
        path.write_text("hello, this is not a compiled function\n")
        with pytest.raises(ValueError):
            symdl.load(path)
        other = tmp_path / "other.pkl"
        other.write_bytes(pickle.dumps({"a": 1}))
        with pytest.raises(ValueError):
            symdl.load(other)
        empty = tmp_path / "empty"
        empty.write_bytes(b"")
        with pytest.raises(ValueError):
            symdl.load(empty)

    def test_load_of_a_truncated_file(self, tmp_path):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        path = tmp_path / "toy.symdl"
        f.save(path)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
        with pytest.raises(ValueError):
            symdl.load(path)


class _Evil:
    """Unpickling this runs a command: what a crafted format-1 (pickle) file did."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rewrite_header(blob: bytes, change) -> bytes:
    """``blob`` (a saved file) with its JSON header changed by ``change`` and
    lengths and SHA-256 recomputed: a well-formed file with a bad field."""
    import hashlib
    import struct
    magic = b"\x89SYMDL-COMPILED\r\n\x1a\n"
    version, head_len, code_len = struct.unpack_from("<IQQ", blob, len(magic))
    start = len(magic) + 20
    header = json.loads(blob[start:start + head_len])
    change(header)
    head = json.dumps(header).encode()
    body = magic + struct.pack("<IQQ", version, len(head), code_len) + head + blob[start + head_len:-32]
    return body + hashlib.sha256(body).digest()


def outputs_and_statics(x, scale, label):
    """A dict output with a static string and a tuple, and static arguments."""
    y = symdl.sum(x ** 2) * scale[0]
    return {"loss": y, "grad": dlgradient(y, x), "label": label, "meta": (1, -0.0, None)}


class TestSaveFormat:
    def test_file_format_has_no_pickle(self, tmp_path):
        path = tmp_path / "f.symdl"
        symdl.compile(toy_grad, 2.0, 2.0).save(path)
        blob = path.read_bytes()
        assert blob.startswith(b"\x89SYMDL-COMPILED\r\n\x1a\n")
        assert b"\x80\x04" not in blob[:64]        # no pickle stream (protocol 4 header)

    def test_old_pickle_file_never_runs(self, tmp_path):
        # issue 10: a crafted file ran os.system before the ValueError
        marker = tmp_path / "pwned"
        path = tmp_path / "evil.symdl"
        path.write_bytes(b"SYMDL-COMPILED-FUNCTION 1\n" + pickle.dumps(_Evil(marker), protocol=4))
        with pytest.raises(ValueError, match="no longer loaded"):
            symdl.load(path)
        assert not marker.exists()

    def test_structures_statics_and_floats_round_trip(self, tmp_path):
        f = symdl.compile(outputs_and_statics, np.zeros(3), (2, "k"), "run-1")
        path = tmp_path / "f.symdl"
        f.save(path)
        g = symdl.load(path)
        x = np.array([1.0, -2.0, 0.5])
        out = g(x, (2, "k"), "run-1")
        assert set(out) == {"loss", "grad", "label", "meta"}
        close(out["loss"], 2 * np.sum(x ** 2))
        close(out["grad"], 2 * 2 * x)
        assert out["label"] == "run-1"
        assert out["meta"] == (1, -0.0, None) and np.signbit(out["meta"][1])
        with pytest.raises(ValueError, match=r"argument 2\b.*'run-1'.*'run-2'"):
            g(x, (2, "k"), "run-2")
        with pytest.raises(ValueError, match=r"argument 1\b"):
            g(x, (3, "k"), "run-1")

    def test_guards_survive_the_file(self, tmp_path):
        f = symdl.compile(branchy, np.ones(2))
        path = tmp_path / "g.symdl"
        f.save(path)
        g = symdl.load(path)
        close(g(np.array([1.0, 2.0])), [2.0, 4.0])
        with pytest.raises(ValueError, match="different branch"):
            g(np.array([-1.0, -2.0]))

    def test_float32_and_graph_of_a_loaded_function(self, tmp_path):
        x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
        f = symdl.compile(lambda v: symdl.sum(symdl.tanh(v)), x)
        path = tmp_path / "t.symdl"
        f.save(path)
        g = symdl.load(path)
        np.testing.assert_allclose(g(x), np.sum(np.tanh(x)), rtol=1e-6)
        assert g(x).dtype == np.float32
        (value,) = g.graph(x)
        np.testing.assert_allclose(value, np.sum(np.tanh(x)), rtol=1e-6)

    def test_identity_keyed_static_cannot_be_saved_but_pickles(self, tmp_path):
        f = symdl.compile(lambda x, fn: symdl.sum(fn(x)), np.zeros(2), np.sin)
        with pytest.raises(ValueError, match="save: .*ufunc"):
            f.save(tmp_path / "f.symdl")
        assert not (tmp_path / "f.symdl").exists()
        g = pickle.loads(pickle.dumps(f))
        close(g(np.array([0.5, 1.0]), np.sin), np.sum(np.sin([0.5, 1.0])))

    @pytest.mark.parametrize("field, value", [
        ("workspace_bytes", -1), ("workspace_bytes", 1 << 50), ("workspace_bytes", 1.5),
        ("workspace_bytes", 1 << 20),
        ("out_specs", [[[7], "float64"]] * 3), ("in_specs", []), ("counts", [1, 0]), ("name", "not valid!"),
        ("graph", {"format": 1, "nodes": [["no_such_op", [], [], [], "float64"]], "inputs": [], "outputs": [0]}),
        ("guard_values", [1]), ("python", {}), ("format", "pickle")])
    def test_bad_header_field_under_a_good_checksum(self, tmp_path, field, value):
        path = tmp_path / "f.symdl"
        symdl.compile(toy_grad, 2.0, 2.0).save(path)
        path.write_bytes(_rewrite_header(path.read_bytes(), lambda h: h.__setitem__(field, value)))
        with pytest.raises(ValueError, match=re.escape(str(path))):
            symdl.load(path)

    def test_other_code_generator_version_is_a_value_error(self, tmp_path):
        # object code of another code generator may use another calling convention: never mapped
        path = tmp_path / "f.symdl"
        symdl.compile(toy_grad, 2.0, 2.0).save(path)
        path.write_bytes(_rewrite_header(path.read_bytes(),
                                         lambda h: h.__setitem__("versions", h["versions"].replace("codegen", "cg"))))
        with pytest.raises(ValueError, match="another version of symdl"):
            symdl.load(path)

    def test_undersized_workspace_is_a_value_error(self, tmp_path):
        def net(w, x):
            y = symdl.sum(symdl.tanh(x @ w) ** 2)
            return y, dlgradient(y, w)
        path = tmp_path / "net.symdl"
        symdl.compile(net, np.ones((3, 4)), np.ones((2, 3))).save(path)
        works = []
        path.write_bytes(_rewrite_header(path.read_bytes(), lambda h: (works.append(h["workspace_bytes"]),
                                                                       h.__setitem__("workspace_bytes", 0))))
        assert works[0] > 0
        with pytest.raises(ValueError, match="workspace size"):
            symdl.load(path)

    def test_other_cpu_is_a_value_error(self, tmp_path):
        path = tmp_path / "f.symdl"
        symdl.compile(toy_grad, 2.0, 2.0).save(path)
        path.write_bytes(_rewrite_header(path.read_bytes(), lambda h: h.__setitem__("target_key", "riscv|x|y|O3")))
        with pytest.raises(ValueError, match="another CPU"):
            symdl.load(path)

    def test_bad_paths(self, tmp_path):
        with pytest.raises(ValueError, match="directory"):
            symdl.load(tmp_path)
        with pytest.raises(ValueError, match="does not exist"):
            symdl.load(tmp_path / "missing.symdl")
        with pytest.raises(TypeError, match="path must be a str"):
            symdl.load(3)
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="not a regular file"):
            symdl.load(fifo)       # O_NONBLOCK: never waits for a writer
        with pytest.raises(ValueError, match="not a regular file"):
            symdl.load("/dev/zero")
        f = symdl.compile(toy_grad, 2.0, 2.0)
        with pytest.raises(ValueError, match="directory"):
            f.save(tmp_path)
        with pytest.raises(ValueError, match="does not exist"):
            f.save(tmp_path / "no" / "such" / "dir.symdl")
        with pytest.raises(TypeError, match="path must be a str"):
            f.save(None)

    def test_save_refuses_special_files_and_writes_through_symlinks(self, tmp_path):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        fifo = tmp_path / "fifo.symdl"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="not a regular file"):
            f.save(fifo)                  # neither blocks nor replaces the FIFO
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
        real, link = tmp_path / "real.symdl", tmp_path / "link.symdl"
        real.write_bytes(b"old")
        link.symlink_to(real)
        f.save(link)
        assert link.is_symlink() and symdl.load(real)(2.0, 2.0)[0] == 5.0

    @pytest.mark.parametrize("cut", [0, 1, 10, 30, -33, -1])
    def test_truncations(self, tmp_path, cut):
        path = tmp_path / "f.symdl"
        symdl.compile(toy_grad, 2.0, 2.0).save(path)
        blob = path.read_bytes()
        path.write_bytes(blob[:cut] if cut else b"")
        with pytest.raises(ValueError, match=re.escape(str(path))):
            symdl.load(path)


# ================================================================ pickling

class TestPickle:
    def test_pickle_round_trip_in_process(self):
        f = symdl.compile(toy_grad, np.zeros(2), np.zeros(2))
        g = pickle.loads(pickle.dumps(f))
        before = dict(backend.STATS)
        x1, x2 = np.array([2.0, -1.0]), np.array([2.0, 0.5])
        for got, want in zip(g(x1, x2), toy_reference(x1, x2)):
            close(got, want)
        assert backend.STATS["compiled"] == before["compiled"]
        assert backend.STATS["disk_hits"] == before["disk_hits"]
        with pytest.raises(ValueError, match=r"argument 0\b"):
            g(np.zeros(3), np.zeros(2))

    def test_tampered_pickle_state_is_a_value_error(self):
        f = symdl.compile(toy_grad, 2.0, 2.0)
        state = f.__getstate__()
        blob = bytearray(state["symdl-compiled-function"])
        blob[len(blob) // 2] ^= 0x10
        g = object.__new__(symdl.CompiledFunction)
        with pytest.raises(ValueError, match="unpickling a CompiledFunction is damaged"):
            g.__setstate__(dict(state, **{"symdl-compiled-function": bytes(blob)}))
        with pytest.raises(ValueError, match="unpickling"):
            g.__setstate__({"program": None})

    def test_spawn_worker(self, tmp_path, monkeypatch):
        f = symdl.compile(toy_grad, np.zeros(2), np.zeros(2))
        worker_cache = tmp_path / "worker-cache"
        monkeypatch.setenv("SYMDL_CACHE_DIR", str(worker_cache))
        x1, x2 = np.array([2.0, 0.5]), np.array([2.0, -1.25])
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            res = pool.apply(_compiled_worker, (f, (x1, x2)))
        assert res["cache_dir"] == str(worker_cache)
        assert res["compiled"] == 0 and res["disk_hits"] == 0
        for got, want in zip(res["out"], toy_reference(x1, x2)):
            close(got, want)


# ================================================================ export

HEADER_DECL = re.compile(r"^int (\w+)\(([^)]*)\);\s*$", re.M)


def declared_params(header: str, name: str) -> list[str]:
    decls = {m.group(1): m.group(2) for m in HEADER_DECL.finditer(header)}
    assert name in decls, f"no declaration of int {name}(...) in:\n{header}"
    return [re.sub(r"\s+", " ", p.strip()) for p in decls[name].split(",")]


class TestExport:
    @needs_cc
    def test_shared_library_and_header(self, tmp_path):
        lib = symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libtoy.so", name="toy_grad")
        lib = Path(lib)
        assert lib == tmp_path / "libtoy.so" and lib.is_file() and lib.stat().st_size > 0
        header = (tmp_path / "libtoy.h").read_text()
        assert "int toy_grad(" in header
        assert declared_params(header, "toy_grad") == [
            "const double *in0", "const double *in1", "double *out0", "double *out1", "double *out2"]
        assert not list(tmp_path.glob("*.o")), "the intermediate object file is left behind"

    @needs_cc
    def test_shared_library_through_ctypes(self, tmp_path):
        lib_path = symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libtoy.so", name="toy_grad")
        lib = ctypes.CDLL(str(lib_path))
        fn = lib.toy_grad
        dp = ctypes.POINTER(ctypes.c_double)
        fn.argtypes = [dp] * 5
        fn.restype = ctypes.c_int
        for x1, x2 in ((2.0, 2.0), (0.5, -1.25), (-3.0, 7.0)):
            a, b = ctypes.c_double(x1), ctypes.c_double(x2)
            y, g1, g2 = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
            rc = fn(ctypes.byref(a), ctypes.byref(b), ctypes.byref(y), ctypes.byref(g1), ctypes.byref(g2))
            assert rc == 0
            close([y.value, g1.value, g2.value], [float(v) for v in toy_reference(x1, x2)])
            assert (a.value, b.value) == (x1, x2)

    @needs_cc
    def test_float32_arrays_header_and_call(self, tmp_path):
        def fun(x, w):
            y = symdl.sum(w * x ** 2)
            return y, dlgradient(y, x)

        lib_path = symdl.export(fun, np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32),
                                path=tmp_path / "libquad.so", name="quad")
        header = (tmp_path / "libquad.h").read_text()
        assert declared_params(header, "quad") == ["const float *in0", "const float *in1", "float *out0",
                                                   "float *out1"]
        assert re.search(r"\b2\s*,\s*3\b", header), header  # the (2, 3) shape is declared
        assert re.search(r"\b6\b", header), header          # and its size
        lib = ctypes.CDLL(str(lib_path))
        fp = ctypes.POINTER(ctypes.c_float)
        lib.quad.argtypes = [fp] * 4
        lib.quad.restype = ctypes.c_int
        x = np.arange(6, dtype=np.float32).reshape(2, 3) - 2
        w = np.linspace(0.5, 3.0, 6, dtype=np.float32).reshape(2, 3)
        y = np.zeros((), np.float32)
        g = np.full((2, 3), np.nan, np.float32)
        rc = lib.quad(*(a.ctypes.data_as(fp) for a in (x, w, y, g)))
        assert rc == 0
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        close(y, np.sum(w64 * x64 ** 2), rtol=1e-6, atol=1e-6)
        close(g, 2 * w64 * x64, rtol=1e-6, atol=1e-6)

    def test_object_file_needs_no_linker(self, tmp_path):
        out = symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "toy.o", name="toy_grad")
        assert Path(out) == tmp_path / "toy.o"
        blob = (tmp_path / "toy.o").read_bytes()
        assert len(blob) > 0
        if sys.platform.startswith("linux"):
            assert blob[:4] == b"\x7fELF"
        header = (tmp_path / "toy.h").read_text()
        assert "int toy_grad(" in header

    @needs_cc
    def test_main_c_against_the_exported_library(self, tmp_path):
        build = tmp_path / "build"
        symdl.export(toy_grad, 2.0, 2.0, path=build / "libtoy.so", name="toy_grad")
        exe = build / "toy_main"
        proc = subprocess.run([CC, "-O2", "-Wall", "-o", str(exe), str(MAIN_C), f"-I{build}", f"-L{build}",
                               "-ltoy", f"-Wl,-rpath,{build}", "-lm"], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        for args, (x1, x2) in (((), (2.0, 2.0)), (("0.5", "-1.25"), (0.5, -1.25)), (("3", "-2"), (3.0, -2.0))):
            run = subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=elsewhere, timeout=30)
            assert run.returncode == 0, run.stderr
            m = re.search(r"y = (\S+) dy/dx1 = (\S+) dy/dx2 = (\S+)", run.stdout)
            assert m, run.stdout
            close([float(v) for v in m.groups()], [float(v) for v in toy_reference(x1, x2)])
        assert "y = 5 dy/dx1 = 18 dy/dx2 = -4" in subprocess.run(
            [str(exe)], capture_output=True, text=True, cwd=elsewhere).stdout

    def test_refuses_value_dependent_control_flow(self, tmp_path):
        with pytest.raises(ValueError):
            symdl.export(branchy, np.array([1.0, 2.0]), path=tmp_path / "libbr.so", name="br")
        assert not (tmp_path / "libbr.so").exists()

    @pytest.mark.parametrize("name", ["1abc", "my-fn", "", "a b", "toy;rm"])
    def test_refuses_a_bad_name(self, tmp_path, name):
        with pytest.raises(ValueError, match="name"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libbad.so", name=name)
        assert not (tmp_path / "libbad.so").exists()

    @pytest.mark.parametrize("name", ["exp", "sqrt", "memcpy", "strlen", "printf", "malloc", "free", "tanh",
                                      "main", "int", "return", "double", "class", "expf", "tanhl", "open",
                                      "write", "pthread_create", "__x", "_X", "__symdl", "_private", "_",
                                      "const0", "cube__entry"])
    def test_refuses_library_keyword_and_reserved_names(self, tmp_path, name):
        with pytest.raises(ValueError, match=rf"export: name '{name}' is"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libbad.so", name=name)
        assert list(tmp_path.iterdir()) == []

    @pytest.mark.parametrize("name", [None, 3, b"cube"])
    def test_name_of_another_type_is_a_type_error(self, tmp_path, name):
        with pytest.raises(TypeError, match="name must be a str"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libbad.o", name=name)

    def test_accepts_ordinary_names(self, tmp_path):
        # names near the refused ones: a prefix, a suffix, an inner underscore
        # (a leading one is reserved at file scope, C11 7.1.3)
        for name in ("exp_grad", "my_sqrt", "x", "main2", "Free", "a_"):
            out = symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / f"{name}.o", name=name)
            assert out.is_file() and f"int {name}(" in out.with_suffix(".h").read_text()

    @needs_cc
    def test_path_without_suffix_gets_so(self, tmp_path):
        out = symdl.export(lambda x: x ** 3, 2.0, path=tmp_path / "libcube", name="cube")
        assert out == tmp_path / "libcube.so" and out.is_file()
        assert (tmp_path / "libcube.h").is_file()
        lib = ctypes.CDLL(str(out))
        x, y = ctypes.c_double(2.0), ctypes.c_double()
        assert lib.cube(ctypes.byref(x), ctypes.byref(y)) == 0 and y.value == 8.0

    @needs_cc
    def test_user_object_file_beside_the_library_is_kept(self, tmp_path):
        mine = tmp_path / "libcube.o"
        mine.write_bytes(b"my own object file")
        symdl.export(lambda x: x ** 3, 2.0, path=tmp_path / "libcube.so", name="cube")
        assert mine.read_bytes() == b"my own object file"

    def test_bad_paths_are_clear_errors(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(ValueError, match="(?i)not a directory"):
            symdl.export(toy_grad, 2.0, 2.0, path=blocker / "lib.so", name="toy")
        with pytest.raises(ValueError, match="is a directory"):
            (tmp_path / "d.so").mkdir()
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "d.so", name="toy")
        with pytest.raises(ValueError, match=r"must end in \.so"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "lib.h", name="toy")
        with pytest.raises(TypeError, match="path must be a str"):
            symdl.export(toy_grad, 2.0, 2.0, path=3, name="toy")
        with pytest.raises(TypeError, match="fun must be callable"):
            symdl.export(3, 2.0, path=tmp_path / "x.o", name="toy")

    def test_refuses_special_files_as_library_or_header(self, tmp_path):
        for fifo in (tmp_path / "libf.so", tmp_path / "libg.h"):
            os.mkfifo(fifo)
            with pytest.raises(ValueError, match="not a regular file"):
                symdl.export(toy_grad, 2.0, 2.0, path=fifo.with_suffix(".so"), name="toy")
            assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    def test_name_clash_in_the_generated_module_is_a_value_error(self, tmp_path, monkeypatch):
        # the net under check_c_name's table: a name the module already declares
        from symdl.compiler import aot
        monkeypatch.setattr(aot, "check_c_name", lambda name: name)
        with pytest.raises(ValueError, match="clashes with a symbol of the generated code"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "clash.o", name="malloc")

    def test_linker_failure_is_a_runtime_error(self, tmp_path, monkeypatch):
        from codegen import export as exp
        fake = tmp_path / "bin"
        fake.mkdir()
        cc = fake / "cc"
        cc.write_text("#!/bin/sh\necho 'ld: cannot link' >&2\nexit 1\n")
        cc.chmod(0o755)
        monkeypatch.setattr(exp.shutil, "which", lambda prog: str(cc) if prog == "cc" else None)
        with pytest.raises(RuntimeError, match="(?s)linking .*failed.*cannot link"):
            symdl.export(toy_grad, 2.0, 2.0, path=tmp_path / "libtoy.so", name="toy")

    def test_refuses_non_array_outputs(self, tmp_path):
        def fun(x):
            return symdl.sum(x), "label"

        with pytest.raises(ValueError):
            symdl.export(fun, np.zeros(2), path=tmp_path / "libna.so", name="na")


# ================================================================ the compile pipeline

def test_debug_level_two_dumps_every_named_pass_and_verify_checks(capsys, monkeypatch):
    monkeypatch.setenv("SYMDL_DEBUG", "2")
    monkeypatch.setenv("SYMDL_VERIFY", "1")
    f = symdl.compile(lambda x: symdl.exp(x) * x, 1.0)
    out = capsys.readouterr().out
    for line in ("pass canonical:", "after pass simplify:", "after pass decompose",
                 "kernel plan of", "after pass emit", "after pass optimise", "compiled symdl_"):
        assert line in out, line
    assert out.index("after pass emit") < out.index("after pass optimise")
    assert float(f(2.0)) == pytest.approx(2.0 * np.exp(2.0), rel=1e-15)


def test_llvm_ir_and_export_run_the_same_passes():
    f = symdl.compile(lambda x: symdl.exp(x) * x + 1.0, 1.0)
    assert f"@{f._artifact.name}(" in f.llvm_ir          # the entry the artifact was compiled with
    from codegen.compiler import BACKEND_PASSES
    assert [name for name, _ in BACKEND_PASSES] == ["decompose", "plan", "check_plan", "emit",
                                                     "optimise", "object_code"]
