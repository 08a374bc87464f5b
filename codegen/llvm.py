"""The one module that talks to ``llvmlite.binding``: target machine, the
optimisation pipeline, object code, and loading object code into the process.
"""

from __future__ import annotations

import functools
import threading

import llvmlite
import llvmlite.binding as llvm

__all__ = ["host_target", "optimize", "compile_object", "assembly", "NativeLibrary", "versions"]

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

    def __init__(self, opt: int = 3):
        _initialised()
        self.triple = llvm.get_process_triple()
        self.cpu = llvm.get_host_cpu_name()
        self.features = llvm.get_host_cpu_features().flatten()
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
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
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
    interleaving to run at memory speed."""
    with _LOCK:
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


class NativeLibrary:
    """Object code loaded into this process; function addresses by name.

    Each library has its own execution engine, so its code lives exactly as
    long as the Python object that holds it.
    """

    def __init__(self, object_code: bytes, target: HostTarget):
        with _LOCK:
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
