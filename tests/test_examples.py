"""The examples run as a user runs them (a fresh process from the repository
root) and print what they promise."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def rosenbrock(tmp_path_factory):
    out = tmp_path_factory.mktemp("rosenbrock") / "paths.png"
    return run_example("rosenbrock.py", "--out", str(out)), out


def end_point(stdout: str, label: str) -> tuple[float, float]:
    """The end point printed in the results row of the run ``label``."""
    pattern = re.compile(rf"^{re.escape(label)}\s+\((-?[\d.]+|nan|-?inf), (-?[\d.]+|nan|-?inf)\)", re.M)
    match = pattern.search(stdout)
    assert match, f"no results row for {label!r} in:\n{stdout}"
    return float(match.group(1)), float(match.group(2))


def test_rosenbrock_lr_01_converges_to_the_minimum(rosenbrock):
    stdout, _ = rosenbrock
    x1, x2 = end_point(stdout, "lr = 0.1")
    assert abs(x1 - 1.0) < 0.1 and abs(x2 - 1.0) < 0.1, stdout


def test_rosenbrock_verdicts_follow_the_blog(rosenbrock):
    stdout, _ = rosenbrock
    verdicts = dict(re.findall(r"^(lr = [^:\n]+): (converges|does not converge|diverges)", stdout, re.M))
    assert verdicts == {"lr = 0.1": "converges", "lr = 0.2": "does not converge",
                        "lr = 0.2 / (1 + 0.01 * iteration)": "converges"}, stdout
    x1, x2 = end_point(stdout, "lr = 0.2 / (1 + 0.01 * iteration)")
    assert abs(x1 - 1.0) < 0.1 and abs(x2 - 1.0) < 0.1, stdout


def test_rosenbrock_writes_the_png_or_says_why_not(rosenbrock):
    stdout, out = rosenbrock
    if not HAS_MATPLOTLIB:  # the example must say so, still print its results, and write nothing
        assert "matplotlib is not installed: plot skipped" in stdout, stdout
        assert not out.exists()
        return
    assert out.is_file() and out.stat().st_size > 10_000, stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_higher_order_bound_holds():
    stdout = run_example("higher_order.py")
    bound = re.search(r"^bound \(never above 1\.5x SymPy's CSE ops\): (PASS|FAIL)$", stdout, re.M)
    assert bound and bound.group(1) == "PASS", stdout
    assert re.search(r"^accuracy .*: PASS$", stdout, re.M), stdout
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.e+-]+)$", stdout, re.M)
    assert [int(r[0]) for r in rows] == [1, 2, 4, 6, 8], stdout
    for _, nodes, ops, _, _ in rows:
        assert int(nodes) <= 1.5 * int(ops), stdout


def test_custom_training_loop_learns_the_digits(tmp_path):
    # the CNN of seeds 001/003 on scikit-learn's bundled digits (issue 7's example)
    out = tmp_path / "digits_loss.png"
    stdout = run_example("custom_training_loop.py", "--out", str(out))
    rows = re.findall(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", stdout, re.M)
    assert [int(r[0]) for r in rows] == list(range(1, 13)), stdout
    assert float(rows[0][2]) > 5 * float(rows[-1][2])                 # the loss fell
    accuracy = float(re.search(r"test accuracy ([\d.]+); HitRate ([\d.]+) %", stdout).group(1))
    hit_rate = float(re.search(r"HitRate ([\d.]+) %", stdout).group(1))
    assert accuracy >= 0.97, stdout
    # 12 epochs of 12 mini-batches: the first full and the first partial batch trace
    assert hit_rate == pytest.approx(100 * (144 - 2) / 144, abs=0.1)
    check = re.search(r"compiled vs interpreted: loss ([\d.e+-]+), gradients ([\d.e+-]+)", stdout)
    assert float(check.group(1)) < 1e-5 and float(check.group(2)) < 1e-4   # float32
    if HAS_MATPLOTLIB:
        assert out.exists() and out.stat().st_size > 10_000
    else:
        assert "matplotlib is not installed: no plot written" in stdout and not out.exists()


def test_custom_training_loop_learns_the_spirals(tmp_path):
    out = tmp_path / "spirals.png"
    stdout = run_example("spirals.py", "--out", str(out), "--iterations", "900")
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", stdout, re.M)
    losses = [float(loss) for _, loss, _ in rows]
    assert [int(i) for i, _, _ in rows] == [1, 300, 600, 900]
    assert losses[0] > 1.0 and losses[-1] < 0.05 and losses == sorted(losses, reverse=True)
    accuracy = float(re.search(r"training accuracy ([\d.]+)", stdout).group(1))
    assert accuracy >= 0.95
    check = re.search(r"compiled vs interpreted: loss ([\d.e+-]+), gradients ([\d.e+-]+)", stdout)
    assert float(check.group(1)) < 1e-12 and float(check.group(2)) < 1e-12
    if HAS_MATPLOTLIB:
        assert out.exists() and out.stat().st_size > 10_000
    else:
        assert "matplotlib is not installed: no plot written" in stdout and not out.exists()


def test_elu_layer_example(tmp_path):
    # seed 004: the custom ELU layer's backward against autodiff, then train_network on the digits
    out = tmp_path / "elu.png"
    stdout = run_example("elu_layer.py", "--out", str(out))
    differences = [float(d) for d in re.findall(r"backward vs autodiff, .* max difference ([\d.e+-]+)", stdout)]
    assert len(differences) == 3 and max(differences) < 1e-12, stdout
    assert "Mini-batch" in stdout and "Base Learning" in stdout, stdout          # MATLAB's progress table
    iterations = [int(m) for m in re.findall(r"^\|\s+\d+ \|\s+(\d+) \|", stdout, re.M)]
    assert iterations[0] == 1 and iterations[-1] == 330, stdout                  # 30 epochs of 11 batches
    assert float(re.search(r"test accuracy ([\d.]+)", stdout).group(1)) >= 0.97, stdout
    alphas = re.search(r"learned alphas: \[([^\]]+)\]", stdout).group(1).split()
    assert len(alphas) == 20, stdout                                             # one per channel
    if HAS_MATPLOTLIB:
        assert out.exists() and out.stat().st_size > 10_000
    else:
        assert "matplotlib is not installed: no plot written" in stdout and not out.exists()


def test_accelerate_model_gradients_example():
    # seed 003: MATLAB's display of the AcceleratedFunction before, after one and after many calls
    stdout = run_example("accelerate_model_gradients.py", "--calls", "5")
    hit_rates = [float(v) for v in re.findall(r"HitRate: ([\d.]+)", stdout)]
    occupancies = [float(v) for v in re.findall(r"Occupancy: ([\d.]+)", stdout)]
    assert hit_rates == [0.0, 0.0, pytest.approx(100 * 5 / 6, abs=0.01)], stdout  # 1 trace, then 5 hits
    assert occupancies == [0.0, 2.0, 2.0], stdout                                  # 1 of 50 entries
    assert stdout.count("Function: @model_gradients") == 3 and "CheckTolerance: 1.0000e-04" in stdout
    check = re.search(r"loss ([\d.e+-]+) accelerated, ([\d.e+-]+) plain dlfeval; largest gradient error "
                      r"([\d.e+-]+) accelerated, ([\d.e+-]+) plain", stdout)
    loss_acc, loss_plain, grad_acc, grad_plain = map(float, check.groups())
    # compiled code is as accurate as the interpreter (both float32, against float64)
    assert loss_acc < 1e-5 and loss_plain < 1e-5, stdout
    assert grad_acc < 1e-2 and grad_acc <= 2 * grad_plain + 1e-6, stdout
    assert float(re.search(r"speed-up ([\d.]+)x", stdout).group(1)) > 1.0, stdout
    assert "after clear_cache: HitRate 0, Occupancy 0" in stdout


def test_siamese_example():
    # seed 001: shared weights in a model function, a custom loop with adamupdate
    stdout = run_example("siamese.py", "--iterations", "400")
    shared = float(re.search(r"both branches' gradients: max difference ([\d.e+-]+)", stdout).group(1))
    assert shared < 1e-6, stdout                                                   # float32 sums
    rows = re.findall(r"^\s+(\d+)\s+([\d.]+)\s+([\d.]+)$", stdout, re.M)
    assert [int(r[0]) for r in rows] == [1, 100, 200, 300, 400], stdout
    assert float(rows[-1][1]) < 0.5 * float(rows[0][1]), stdout                    # the loss fell
    assert float(re.search(r"unseen digits: ([\d.]+)", stdout).group(1)) >= 0.9, stdout
    assert re.search(r"HitRate 99.8 %", stdout), stdout


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                    reason="dask.distributed is not installed (pip install 'symdl[dask]')")
def test_train_dask_example():
    # SPEC §9.4: train_network on a local two-worker Dask cluster equals one-process training
    stdout = run_example("train_dask.py", "--epochs", "5")
    assert re.search(r"^Dask cluster: 2 workers", stdout, re.M), stdout
    assert "Mini-batch" in stdout and "Base Learning" in stdout, stdout          # MATLAB's progress table
    iterations = [int(m) for m in re.findall(r"^\|\s+\d+ \|\s+(\d+) \|", stdout, re.M)]
    assert iterations[0] == 1 and iterations[-1] == 55, stdout                   # 5 epochs of 11 batches
    assert float(re.search(r"^test accuracy ([\d.]+)", stdout, re.M).group(1)) >= 0.9, stdout
    difference = float(re.search(r"parallel vs one process: max difference ([\d.e+-]+)", stdout).group(1))
    assert difference < 1e-5, stdout
