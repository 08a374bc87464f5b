"""The compilation examples run as a user runs them (a fresh process from the
repository root) and print what they promise: examples/scipy_optimize.py and
examples/aot_c/build.py.

Expected values: the Rosenbrock minimum (1, ..., 1) and the hand-derived
value and gradient of the seed's toy function y = (x2 - x1^2)^2 + (1 - x1)^2.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
RESULT_LINE = re.compile(r"^y = (\S+) dy/dx1 = (\S+) dy/dx2 = (\S+)$", re.M)


def run_example(path: Path, tmp_path: Path, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["SYMDL_CACHE_DIR"] = str(tmp_path / "symdl-cache")
    proc = subprocess.run([sys.executable, str(path), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"{path.name} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def toy_reference(x1: float, x2: float) -> list[float]:
    return [(x2 - x1 ** 2) ** 2 + (1 - x1) ** 2, -4 * x1 * (x2 - x1 ** 2) - 2 * (1 - x1), 2 * (x2 - x1 ** 2)]


# ================================================================ scipy



def check_scipy_output(stdout: str, n: int) -> None:
    assert re.search(rf"^N-dimensional Rosenbrock, N = {n}\b", stdout, re.M), stdout
    verdicts = re.findall(r"^(.+): (PASS|FAIL)$", stdout, re.M)
    labels = [label for label, _ in verdicts]
    assert any(label.startswith("converged to the minimum") for label in labels), stdout
    assert any("rosen_der at solution" in label for label in labels), stdout
    assert any("rosen_hess at solution" in label for label in labels), stdout
    assert all(v == "PASS" for _, v in verdicts), stdout
    iterations = re.search(r"^iterations: (\d+)$", stdout, re.M)
    assert iterations and int(iterations.group(1)) > 0, stdout
    time_row = re.search(r"^time.*?([\d.]+) s", stdout, re.M)
    assert time_row, stdout
    solution = re.search(r"^solution x\* = \[([^\]]*)\]", stdout, re.M)
    assert solution, stdout
    x = np.array(solution.group(1).split(), dtype=float)
    assert x.shape == (n,)
    np.testing.assert_allclose(x, np.ones(n), atol=1e-3)


def test_scipy_optimize_default(tmp_path):
    check_scipy_output(run_example(EXAMPLES / "scipy_optimize.py", tmp_path), 10)


def test_scipy_optimize_n_option_and_newton_cg(tmp_path):
    stdout = run_example(EXAMPLES / "scipy_optimize.py", tmp_path, "--n", "5", "--method", "Newton-CG")
    check_scipy_output(stdout, 5)
    assert "method Newton-CG" in stdout


# ================================================================ C

@pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on PATH to build examples/aot_c")
def test_aot_c_build(tmp_path):
    build = tmp_path / "build"
    stdout = run_example(EXAMPLES / "aot_c" / "build.py", tmp_path, "--build-dir", str(build),
                         "--at", "0.5", "-1.25")
    assert "y = 5 dy/dx1 = 18 dy/dx2 = -4" in stdout, stdout
    rows = [[float(v) for v in m] for m in RESULT_LINE.findall(stdout)]
    assert len(rows) == 2, stdout
    np.testing.assert_allclose(rows[0], toy_reference(2.0, 2.0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rows[1], toy_reference(0.5, -1.25), rtol=1e-12, atol=1e-12)
    for name in ("libtoy.so", "libtoy.h", "toy_main"):
        assert (build / name).is_file(), name
    header = (build / "libtoy.h").read_text()
    assert re.search(r"int toy_grad\(const double \*in0, const double \*in1, double \*out0, double \*out1, "
                     r"double \*out2\);", header), header
    # the program runs with no Python, from anywhere, even after its directory moves
    moved = tmp_path / "moved" / "elsewhere"
    moved.parent.mkdir()
    shutil.move(str(build), str(moved))
    run = subprocess.run([str(moved / "toy_main"), "3", "-2"], capture_output=True, text=True, cwd=tmp_path,
                         env={"PATH": os.environ.get("PATH", "")}, timeout=30)
    assert run.returncode == 0, run.stderr
    (row,) = RESULT_LINE.findall(run.stdout)
    np.testing.assert_allclose([float(v) for v in row], toy_reference(3.0, -2.0), rtol=1e-12, atol=1e-12)
