"""Native memory stays flat while a process keeps compiling (SPEC 9.3), and
the LLVM helper process that makes it so gives the same code as LLVM run in
this process.

llvmlite's pass builder leaks ~60 KB per optimisation; after the first
``IN_PROCESS_RUNS`` optimisations they run in a helper process that is
replaced every ``WORKER_RUNS`` runs.  The growth check runs in a fresh
subprocess (its resident set is not disturbed by other tests) with a
generous limit: before the fix 300 builds grew a process by ~19 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import symdl
from codegen import llvm
from codegen.compiler import Build, run_passes

ROOT = Path(__file__).resolve().parent.parent


def _ir(c: float, name: str) -> str:
    g = symdl.trace(lambda x: symdl.sum(symdl.tanh(x * c) + 1.0), np.ones(5))
    return run_passes(Build(list(g.inputs), list(g.outputs), name), "emit").ir


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc/self/statm")
def test_rss_stays_flat_over_many_compiles():
    script = textwrap.dedent("""
        import json, os, numpy as np, symdl
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        def build(i):
            f = symdl.compile(lambda x, c=float(i): symdl.sum(x * c + 1.0), np.ones(3))
            assert float(f(np.ones(3))) == 3.0 * (i + 1.0)
        for i in range(100):          # past the in-process optimisations
            build(-1000 - i)
        before = rss()
        for i in range(300):
            build(i)
        print(json.dumps({"growth": rss() - before}))
    """)
    env = dict(os.environ, SYMDL_CACHE_DIR="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         check=True, cwd=str(ROOT)).stdout
    growth = json.loads(out.strip().splitlines()[-1])["growth"]
    assert growth < 8 * 2**20, f"300 compiles grew the process by {growth / 2**20:.1f} MB"


def test_helper_process_gives_the_same_code_as_in_process():
    target = llvm.host_target()
    for unroll in (True, False):
        text = _ir(0.37, "mem_same_code")
        here = llvm._optimize_here(text, target, unroll)
        worker = llvm._OptimiserProcess()
        try:
            there = worker.optimize(text, target, unroll)
        finally:
            worker.close()
        assert there == here
        assert llvm.compile_object(there, target) == llvm.compile_object(here, target)


def test_helper_process_reports_llvm_errors():
    worker = llvm._OptimiserProcess()
    try:
        with pytest.raises(RuntimeError, match="LLVM optimisation failed"):
            worker.optimize("this is not LLVM IR", llvm.host_target(), True)
        # and it keeps serving after an error
        assert "define" in worker.optimize(_ir(1.5, "mem_after_error"), llvm.host_target(), True)
    finally:
        worker.close()


def test_a_dead_helper_is_replaced(monkeypatch):
    """A helper that died (killed, out of memory) is replaced by a new one."""
    monkeypatch.setattr(llvm, "_IN_PROCESS_DONE", llvm.IN_PROCESS_RUNS)
    first = llvm._worker()
    first.proc.kill()
    first.proc.wait()
    monkeypatch.setenv("SYMDL_CACHE_DIR", "0")  # LLVM must run
    f = symdl.compile(lambda x: symdl.sum(symdl.sin(x) * 1.25), np.ones(4))
    np.testing.assert_allclose(f(np.full(4, 0.5)), 4 * np.sin(0.5) * 1.25, rtol=1e-13)
    assert llvm._WORKER is not first and llvm._WORKER.runs >= 1


def test_without_a_helper_process_llvm_runs_here(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("no processes here")
    monkeypatch.setattr(llvm, "_IN_PROCESS_DONE", llvm.IN_PROCESS_RUNS)
    monkeypatch.setattr(llvm, "_WORKER", None)
    monkeypatch.setattr(llvm, "_WORKER_BROKEN", False)
    monkeypatch.setattr(llvm.subprocess, "Popen", refuse)
    text = _ir(2.5, "mem_no_helper")
    target = llvm.host_target()
    assert llvm.optimize(text, target) == llvm._optimize_here(text, target, True)
    assert llvm._WORKER_BROKEN


def _compile_in_child(queue) -> None:
    f = symdl.compile(lambda x: symdl.sum(symdl.cos(x) * 0.75), np.ones(2))
    queue.put(float(f(np.zeros(2))))


def test_a_forked_child_gets_a_helper_of_its_own(monkeypatch):
    import multiprocessing
    monkeypatch.setenv("SYMDL_CACHE_DIR", "0")
    monkeypatch.setattr(llvm, "_IN_PROCESS_DONE", llvm.IN_PROCESS_RUNS)
    parent_worker = llvm._worker()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_compile_in_child, args=(queue,))
    child.start()
    got = queue.get(timeout=120)
    child.join(timeout=120)
    assert child.exitcode == 0 and got == 1.5
    # the parent's helper was not disturbed by the child
    assert llvm._worker() is parent_worker and parent_worker.alive()
    f = symdl.compile(lambda x: symdl.sum(symdl.cos(x) * 0.25), np.ones(2))
    assert float(f(np.zeros(2))) == 0.5


def test_a_helper_that_cannot_run_means_llvm_runs_here(monkeypatch):
    # a child that exits at once (it could not import llvmlite, say): the
    # build still succeeds, in this process, and no helper is tried again
    monkeypatch.setattr(llvm, "_IN_PROCESS_DONE", llvm.IN_PROCESS_RUNS)
    monkeypatch.setattr(llvm, "_WORKER", None)
    monkeypatch.setattr(llvm, "_WORKER_BROKEN", False)
    monkeypatch.setattr(llvm.sys, "executable", "/bin/false")
    text = _ir(3.5, "mem_false_helper")
    target = llvm.host_target()
    assert llvm.optimize(text, target) == llvm._optimize_here(text, target, True)
    assert llvm._WORKER_BROKEN
