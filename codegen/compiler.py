"""Graph -> native code: plan, emit, optimise, compile, load."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from symdl.ir.node import Node

from . import llvm
from .abi import NativeEntry
from .emit import emit_module
from .plan import check_plan, lower_user_functions, make_plan

__all__ = ["Artifact", "compile_graph", "graph_ir", "export_object", "assembly"]


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

    def entry(self) -> NativeEntry:
        if self._entry is None:
            target = llvm.host_target()
            if target.key != self.target_key:
                raise ValueError("compiled code was built for another target: "
                                 f"{self.target_key.split('|')[:2]} vs {target.key.split('|')[:2]}")
            lib = llvm.NativeLibrary(self.object_code, target)
            self._entry = NativeEntry(lib, self.name, self.in_specs, self.out_specs, self.workspace_bytes)
        return self._entry

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_entry"] = None
        return state


def compile_graph(inputs: list[Node], outputs: list[Node], name: str = "symdl_entry",
                  keep_ir: bool = False) -> Artifact:
    """Compile ``outputs`` as functions of ``inputs`` to native object code."""
    outputs = lower_user_functions(list(outputs))
    plan = make_plan(list(inputs), outputs)
    check_plan(plan)
    if os.environ.get("SYMDL_DEBUG", "") not in ("", "0"):
        print(f"[symdl] kernel plan of {name}:\n{plan.describe()}")
    ir_text = emit_module(plan, name)
    target = llvm.host_target()
    optimised = llvm.optimize(ir_text, target, unroll=_worth_unrolling(plan))
    obj = llvm.compile_object(optimised, target)
    return Artifact(name, obj, [(n.shape, n.dtype) for n in inputs], [(n.shape, n.dtype) for n in outputs],
                    plan.workspace_bytes, target.key, optimised if keep_ir else "")



def graph_ir(inputs: list[Node], outputs: list[Node], name: str, c_name: str | None = None,
             optimised: bool = True) -> str:
    """LLVM IR text of a graph's entry function (optimised unless told otherwise)."""
    outputs = lower_user_functions(list(outputs))
    plan = make_plan(list(inputs), outputs)
    check_plan(plan)
    text = emit_module(plan, name, c_name)
    return llvm.optimize(text, llvm.host_target(), unroll=_worth_unrolling(plan)) if optimised else text


def _worth_unrolling(plan) -> bool:
    """Interleaving (which needs LLVM's loop unrolling) lets a few light,
    memory-bound loops run at memory speed; for many kernels, or loop bodies
    that compute a lot per element, it mostly doubles LLVM's time."""
    from .plan import LoopKernel
    work = sum(len(k.members) for k in plan.kernels if isinstance(k, LoopKernel)) + len(plan.inlined)
    return len(plan.kernels) <= 8 and work <= 64


def export_object(inputs: list[Node], outputs: list[Node], c_name: str) -> bytes:
    """Object code with the C-callable ``c_name`` (see codegen.export)."""
    return llvm.compile_object(graph_ir(inputs, outputs, f"{c_name}__entry", c_name), llvm.host_target())


def assembly(ir_text: str) -> str:
    return llvm.assembly(ir_text, llvm.host_target())
