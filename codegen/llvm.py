"""The one module that talks to ``llvmlite.binding``: target machine, the
optimisation pipeline, object code, and loading object code into the process.

Optimisation runs in a helper process after the first few (see
:func:`optimize`: llvmlite's pass builder leaks native memory on every run);
``SYMDL_LLVM_WORKER=0`` keeps it in this process.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import struct
import subprocess
import sys
import threading
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm

__all__ = ["host_target", "optimize", "compile_object", "assembly", "NativeLibrary", "versions", "register_symbol"]

_LOCK = threading.RLock()


@functools.cache
def _initialised() -> bool:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    llvm.initialize_native_asmparser()
    return True


class HostTarget:
    """Triple, CPU name and features of this machine, and a target machine
    that generates code for exactly them (so LLVM can vectorise)."""

    def __init__(self, opt: int = 3, triple: str | None = None, cpu: str | None = None,
                 features: str | None = None):
        _initialised()
        self.triple = triple or llvm.get_process_triple()
        self.cpu = cpu or llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten() if features is None else features
        self.opt = opt
        self.machine = self.new_machine()
        self.data_layout = str(self.machine.target_data)

    def new_machine(self):
        """A fresh target machine (an execution engine takes ownership of its own)."""
        target = llvm.Target.from_triple(self.triple)
        return target.create_target_machine(cpu=self.cpu, features=self.features, opt=self.opt,
                                            reloc="pic", codemodel="default")

    @property
    def key(self) -> str:
        """Everything about the target that changes the generated code."""
        return f"{self.triple}|{self.cpu}|{self.features}|O{self.opt}"


@functools.cache
def host_target(opt: int = 3) -> HostTarget:
    return HostTarget(opt)


@functools.cache
def codegen_fingerprint() -> str:
    """A hash of the code generator's own source: part of every disk-cache key,
    so object code made by another version of the lowering is never loaded."""
    import hashlib
    from pathlib import Path
    h = hashlib.sha256()
    # lower/ included: the lowering tables and the generated kernels are code
    # generator too; so are the primitives' definitions in symdl/ir (what an op
    # of the graph means, and constants the lowering reads, such as the scale
    # of the overflow-safe sum)
    here = Path(__file__).parent
    for root in (here, here.parent / "symdl" / "ir"):
        for path in sorted(root.rglob("*.py")):
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def versions() -> str:
    return (f"codegen {codegen_fingerprint()}, llvmlite {llvmlite.__version__}, "
            f"LLVM {'.'.join(map(str, llvm.llvm_version_info))}")


def _parse(ir_text: str):
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    return mod


def optimize(ir_text: str, target: HostTarget, unroll: bool = True) -> str:
    """Run LLVM's standard O-level pipeline (vectoriser included); returns IR text.

    ``unroll=False`` skips loop unrolling and interleaving: a plan of many
    small kernels (a Hessian's) then builds several times faster at no cost
    per call, while a few large loops (a gradient over 1e6 elements) need
    interleaving to run at memory speed.

    Each run of llvmlite's pass builder leaves about 60 KB of native memory
    that nothing frees (its ``PassInstrumentationCallbacks`` is allocated
    and never deleted, and every run registers more callbacks in it).  The
    first :data:`IN_PROCESS_RUNS` optimisations run here; later ones run in a
    helper process (:class:`_OptimiserProcess`) that is replaced every
    :data:`WORKER_RUNS` runs, so a long-lived process stays flat however
    much it compiles."""
    global _IN_PROCESS_DONE
    with _LOCK:
        if _IN_PROCESS_DONE >= IN_PROCESS_RUNS and _worker_enabled():
            text = _optimize_in_worker(ir_text, target, unroll)
            if text is not None:
                return text
        _IN_PROCESS_DONE += 1
        return _optimize_here(ir_text, target, unroll)


def _optimize_in_worker(ir_text: str, target: HostTarget, unroll: bool) -> str | None:
    """The optimised IR from the helper process; ``None`` (optimise here)
    when no helper works: a helper that dies is replaced once, and if the
    new one dies too, helpers are not used again in this process."""
    global _WORKER_BROKEN
    for _ in range(2):
        try:
            return _worker().optimize(ir_text, target, unroll)
        except _WorkerDied:
            pass
    _WORKER_BROKEN = True
    return None


def _optimize_here(ir_text: str, target: HostTarget, unroll: bool) -> str:
    mod = _for_target(ir_text, target)
    pto = llvm.create_pipeline_tuning_options(speed_level=target.opt)
    # The loop vectoriser (with interleaving, which needs loop_unrolling)
    # is what makes fused loops fast; SLP vectorisation adds compile time
    # on large kernels (k-th derivatives) with no measurable gain on them.
    pto.loop_vectorization = True
    pto.slp_vectorization = False
    pto.loop_unrolling = unroll  # also enables interleaving in the loop vectoriser
    pb = llvm.create_pass_builder(target.machine, pto)
    mpm = pb.getModulePassManager()
    mpm.run(mod, pb)
    return str(mod)


#: Optimisations run in this process before the helper process takes over
#: (their leak, ~4 MB at most, is paid once; short scripts never start it).
IN_PROCESS_RUNS = 64
#: Optimisations per helper process before it is replaced (bounds its leak).
WORKER_RUNS = 512
_IN_PROCESS_DONE = 0


def _worker_enabled() -> bool:
    return os.environ.get("SYMDL_LLVM_WORKER", "1") not in ("0", "") and not _WORKER_BROKEN


_WORKER_BROKEN = False
_WORKER: _OptimiserProcess | None = None


def _worker() -> _OptimiserProcess:
    global _WORKER
    if _WORKER is not None and _WORKER.owner != os.getpid():
        _WORKER = None  # inherited through fork: the parent's helper is not ours to use
    if _WORKER is None or _WORKER.runs >= WORKER_RUNS or not _WORKER.alive():
        if _WORKER is not None:
            _WORKER.close()
        _WORKER = _OptimiserProcess()
    return _WORKER


class _OptimiserProcess:
    """A child Python process that runs :func:`_optimize_here` on request.

    Requests and replies are length-prefixed JSON over its stdin/stdout.  If
    no child can be started, ``optimize`` answers ``None`` and the caller
    optimises in process from then on; a child that dies during a request
    raises ``_WorkerDied`` (see :func:`_optimize_in_worker`)."""

    def __init__(self):
        self.runs = 0
        self.proc = None
        self.owner = os.getpid()
        # The child runs this file by path: it imports llvmlite and the
        # standard library only (not symdl), so it starts in a fraction of
        # a second.
        # It finds llvmlite where this process found it.
        here = Path(__file__).resolve()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        if getattr(sys, "frozen", False) or not sys.executable:
            self._broken()  # no Python interpreter to start (a frozen application)
            return
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')",
                 str(here)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=str(here.parent.parent), env=env)
        except (OSError, ValueError, TypeError):  # no executable, no processes allowed
            self._broken()

    def _broken(self) -> None:
        global _WORKER_BROKEN
        _WORKER_BROKEN = True  # no child can be started here: optimise in process
        self.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def optimize(self, ir_text: str, target: HostTarget, unroll: bool) -> str | None:
        if self.proc is None:
            return None
        request = {"ir": ir_text, "triple": target.triple, "cpu": target.cpu, "features": target.features,
                   "opt": target.opt, "unroll": unroll}
        try:
            _send(self.proc.stdin, request)
            reply = _receive(self.proc.stdout)
        except (OSError, EOFError, ValueError) as err:
            self.close()
            raise _WorkerDied(str(err)) from None
        self.runs += 1
        if not reply.get("ok"):
            raise RuntimeError(f"LLVM optimisation failed: {reply.get('error')}")
        return reply["ir"]

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        with contextlib.suppress(OSError):
            proc.stdout.close()


class _WorkerDied(Exception):
    pass


def _send(stream, obj) -> None:
    data = json.dumps(obj).encode()
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream) -> dict:
    head = stream.read(8)
    if len(head) != 8:
        raise EOFError("LLVM helper process closed its pipe")
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) != size:
        raise EOFError("LLVM helper process closed its pipe")
    return json.loads(data)


def _serve() -> None:
    """The helper process: optimise each request until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the reply stream
    targets: dict[tuple, HostTarget] = {}
    while True:
        try:
            req = _receive(stdin)
        except EOFError:
            return
        key = (req["triple"], req["cpu"], req["features"], req["opt"])
        try:
            if key not in targets:
                targets[key] = HostTarget(req["opt"], req["triple"], req["cpu"], req["features"])
            reply = {"ok": True, "ir": _optimize_here(req["ir"], targets[key], req["unroll"])}
        except Exception as err:  # reported to the parent, which raises it
            reply = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        _send(stdout, reply)


@atexit.register
def _stop_worker() -> None:
    if _WORKER is not None and _WORKER.owner == os.getpid():
        _WORKER.close()


def _forget_worker() -> None:
    global _WORKER
    _WORKER = None


# a forked child must not write into its parent's helper's pipe
os.register_at_fork(after_in_child=_forget_worker)


def _for_target(ir_text: str, target: HostTarget):
    mod = _parse(ir_text)
    mod.triple = target.triple
    mod.data_layout = target.data_layout
    return mod


def compile_object(ir_text: str, target: HostTarget) -> bytes:
    """Optimised IR text -> relocatable object code for the host."""
    with _LOCK:
        return target.machine.emit_object(_for_target(ir_text, target))


def assembly(ir_text: str, target: HostTarget) -> str:
    with _LOCK:
        return target.machine.emit_assembly(_for_target(ir_text, target))


def register_symbol(name: str, address: int) -> None:
    """Make ``name`` resolve to ``address`` in object code loaded later
    (the BLAS functions of :mod:`codegen.blas`)."""
    with _LOCK:
        _initialised()
        llvm.add_symbol(name, address)


class NativeLibrary:
    """Object code loaded into this process; function addresses by name.
    ``runtime``: the thread helper's object code, if the code calls it and
    came with it (see ``codegen.parallel.ensure_runtime``).

    Each library has its own execution engine, so its code lives exactly as
    long as the Python object that holds it.
    """

    def __init__(self, object_code: bytes, target: HostTarget, runtime: bytes | None = None):
        from . import parallel
        with _LOCK:
            # generated code reads the thread count from this process-wide
            # global (codegen.parallel): set from SYMDL_NUM_THREADS at load
            parallel.load_from_env()
            llvm.add_symbol(parallel.NUM_THREADS_SYMBOL, parallel.symbol_address())
            if parallel.RUNTIME_SYMBOL.encode() in object_code:   # (the name is in its symbol table)
                parallel.ensure_runtime(target, runtime)
            empty = llvm.parse_assembly("")
            empty.triple = target.triple
            self._engine = llvm.create_mcjit_compiler(empty, target.new_machine())
            self._engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
            self._engine.finalize_object()

    def address(self, name: str) -> int:
        with _LOCK:
            addr = self._engine.get_function_address(name)
        if not addr:
            raise RuntimeError(f"symbol {name!r} not found in compiled object code")
        return addr


if __name__ == "__main__":
    _serve()
