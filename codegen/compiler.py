"""The back-end passes, graph -> object code, as one table: decompose
ops without native code, plan, check the plan, emit LLVM IR, optimise, emit object code.

``run_passes`` is the only driver; ``symdl.compiler.pipeline`` puts
simplification and the disk cache in front of it, and ``compile_graph`` /
``graph_ir`` / ``export_object`` are named stops of it.
"""

from __future__ import annotations

import hashlib

from collections.abc import Callable
from dataclasses import dataclass, field

from symdl.ir.node import Node
from symdl.ir.rewrite import ieee_semantics

from . import blas, llvm, parallel
from .abi import NativeEntry
from .emit import emit_module
from .decompose import decompose
from .plan import check_plan, make_plan

__all__ = ["Artifact", "Build", "BACKEND_PASSES", "run_passes", "compile_graph", "graph_ir", "export_object",
           "assembly"]


@dataclass
class Artifact:
    """Everything needed to run compiled code again without LLVM: object code,
    the entry name and the argument layout."""

    name: str
    object_code: bytes
    in_specs: list
    out_specs: list
    workspace_bytes: int
    target_key: str
    llvm_ir: str = ""
    _entry: NativeEntry | None = field(default=None, repr=False, compare=False)
    #: the thread helper's object code, taken along when pickled code calls it
    _runtime: bytes | None = field(default=None, repr=False, compare=False)

    def entry(self) -> NativeEntry:
        if self._entry is None:
            target = llvm.host_target()
            if target.key != self.target_key:
                raise ValueError("compiled code was built for another target: "
                                 f"{self.target_key.split('|')[:2]} vs {target.key.split('|')[:2]}")
            if not blas.prepare_object(self.object_code):
                # (LLVM would abort the process on the unresolved symbol)
                raise ValueError("compiled code calls a BLAS that this process does not have "
                                 f"({', '.join(blas.references_blas(self.object_code))}); "
                                 "compile it again here")
            lib = llvm.NativeLibrary(self.object_code, target, self._runtime)
            self._entry = NativeEntry(lib, self.name, self.in_specs, self.out_specs, self.workspace_bytes)
        return self._entry

    def shipped_runtime(self) -> bytes | None:
        """The thread helper's object code that this code takes along when it
        leaves the process (pickled, or saved): None when it does not call the
        helper (or was built for another target, whose helper is not this one)."""
        if self._runtime is None and parallel.RUNTIME_SYMBOL.encode() in self.object_code \
                and llvm.host_target().key == self.target_key:
            self._runtime = parallel.runtime_object(llvm.host_target())
        return self._runtime

    def _checksum(self) -> str:
        h = hashlib.sha256()
        for part in (self.name, repr(self.in_specs), repr(self.out_specs), str(self.workspace_bytes),
                     self.target_key):
            h.update(part.encode())
            h.update(b"\0")
        h.update(self.object_code)
        if self._runtime is not None:
            h.update(b"\0runtime\0")
            h.update(self._runtime)
        return h.hexdigest()

    def __getstate__(self):
        # Pickled for worker processes (AcceleratedFunction, transforms, Dask
        # training): the receiver checks the code and its layout before it
        # maps anything, so bytes damaged on the way are a ValueError, never
        # native code run.  Code with split kernels takes the thread helper's
        # object code along, so the receiver runs no LLVM at all.
        self.shipped_runtime()
        state = dict(self.__dict__)
        state["_entry"] = None
        state["_checksum"] = self._checksum()
        return state

    def __setstate__(self, state):
        state = dict(state)
        checksum = state.pop("_checksum", None)
        state.setdefault("_runtime", None)   # pickled before the field existed
        self.__dict__.update(state)
        if checksum is None or checksum != self._checksum():
            raise ValueError("pickled compiled code is damaged (its checksum does not match); "
                             "pickle the function again from the sending process")


@dataclass
class Build:
    """What the passes know about one graph so far.  ``c_name`` asks for the
    C-callable wrapper of ``symdl.export``; ``ieee`` asks for step-by-step
    IEEE code (decomposition without re-canonicalising, reductions and
    contractions in order, without LLVM's ``reassoc``)."""

    inputs: list[Node]
    outputs: list[Node]
    name: str
    c_name: str | None = None
    ieee: bool = False
    plan: object = None
    ir: str = ""
    optimised: str = ""
    object_code: bytes = b""

    def artifact(self, keep_ir: bool = False) -> Artifact:
        return Artifact(self.name, self.object_code, [(n.shape, n.dtype) for n in self.inputs],
                        [(n.shape, n.dtype) for n in self.outputs], self.plan.workspace_bytes,
                        llvm.host_target().key, self.optimised if keep_ir else "")


def _decompose(b: Build) -> None:
    b.outputs = decompose(list(b.outputs))


def _plan(b: Build) -> None:
    b.plan = make_plan(list(b.inputs), b.outputs)


def _check(b: Build) -> None:
    check_plan(b.plan)  # every view stays inside its buffer: never skipped


def _emit(b: Build) -> None:
    b.ir = emit_module(b.plan, b.name, b.c_name)


def _optimise(b: Build) -> None:
    b.optimised = llvm.optimize(b.ir, llvm.host_target(), unroll=_worth_unrolling(b.plan))


def _object_code(b: Build) -> None:
    b.object_code = llvm.compile_object(b.optimised, llvm.host_target())


BACKEND_PASSES: list[tuple[str, Callable[[Build], None]]] = [
    ("decompose", _decompose),
    ("plan", _plan),
    ("check_plan", _check),
    ("emit", _emit),
    ("optimise", _optimise),
    ("object_code", _object_code),
]


def run_passes(build: Build, until: str = "object_code",
               observe: Callable[[str, Build], None] | None = None) -> Build:
    """Run the back-end passes in order up to and including ``until``;
    ``observe(name, build)`` after each (debug dumps)."""
    # exported libraries and ieee=True code never call BLAS (codegen.blas)
    for name, run in BACKEND_PASSES:
        with ieee_semantics(build.ieee), blas.generated_only(build.c_name is not None or build.ieee):
            run(build)
        if observe is not None:
            observe(name, build)
        if name == until:
            return build
    raise ValueError(f"no back-end pass named {until!r}")


def compile_graph(inputs: list[Node], outputs: list[Node], name: str = "symdl_entry",
                  keep_ir: bool = False) -> Artifact:
    """Compile ``outputs`` as functions of ``inputs`` to native object code."""
    return run_passes(Build(list(inputs), list(outputs), name)).artifact(keep_ir)


def graph_ir(inputs: list[Node], outputs: list[Node], name: str, c_name: str | None = None,
             optimised: bool = True) -> str:
    """LLVM IR text of a graph's entry function (optimised unless told otherwise)."""
    build = run_passes(Build(list(inputs), list(outputs), name, c_name), "optimise" if optimised else "emit")
    return build.optimised if optimised else build.ir


def _worth_unrolling(plan) -> bool:
    """Interleaving (which needs LLVM's loop unrolling) lets a few light,
    memory-bound loops run at memory speed; for many kernels, or loop bodies
    that compute a lot per element, it mostly doubles LLVM's time."""
    from .plan import LoopKernel
    loops = [k if isinstance(k, LoopKernel) else k.epilogue for k in plan.kernels]
    work = sum(len(k.members) for k in loops if k is not None) + len(plan.inlined)
    return len(plan.kernels) <= 8 and work <= 64


def export_object(inputs: list[Node], outputs: list[Node], c_name: str) -> bytes:
    """Object code with the C-callable ``c_name`` (see codegen.export)."""
    return run_passes(Build(list(inputs), list(outputs), f"{c_name}__entry", c_name)).object_code


def assembly(ir_text: str) -> str:
    return llvm.assembly(ir_text, llvm.host_target())
