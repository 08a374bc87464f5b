"""The one compile pipeline: a traced program's graph -> simplify -> (disk
cache) -> the back-end passes of :mod:`codegen.compiler` (decompose,
plan, check_plan, emit, optimise, object_code).

``dlaccelerate``, the transforms and ``compile`` build through
:func:`build_artifact`; ``CompiledFunction.llvm_ir`` stops after
``optimise``; ``export`` runs every pass with the C wrapper.

Environment switches: ``SYMDL_DEBUG=1`` prints each pass (and why a cache
missed); ``SYMDL_DEBUG=2`` also dumps the graph, the plan and the LLVM IR
after the passes that make them; ``SYMDL_VERIFY=1`` re-checks the graph's
shapes and order after simplification and lowering.
"""

from __future__ import annotations

import contextlib
import gc
import os
import time

import numpy as np

from codegen import llvm
from codegen.compiler import Artifact, Build, run_passes

from ..cache import cache_key, cached_artifact, store_entry
from ..ir.node import Node
from ..ir.rewrite import ieee_semantics, ieee_active
from ..ir.serialize import graph_digest, graph_to_json
from ..simplify import simplify

__all__ = ["build_artifact", "build_ir", "build_export", "debug", "debug_level", "gc_paused", "STATS",
           "ieee_semantics", "check_ieee"]

STATS = {"compiled": 0, "disk_hits": 0, "compile_seconds": 0.0}


def debug_level() -> int:
    value = os.environ.get("SYMDL_DEBUG", "")
    if value in ("", "0"):
        return 0
    return 2 if value == "2" else 1


def _verify_enabled() -> bool:
    return os.environ.get("SYMDL_VERIFY", "") not in ("", "0")


def debug(message: str) -> None:
    if debug_level():
        print(f"[symdl] {message}")


@contextlib.contextmanager
def gc_paused():
    """Tracing and compiling make many short-lived objects and no cycles worth
    collecting; the cyclic collector's passes over everything alive cost a
    fifth of a large build, so it waits until the build is done."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _verify(nodes: list[Node], after: str) -> None:
    from ..ir.graph import verify
    from ..ir.rewrite import toposort
    try:
        verify(toposort(nodes))
    except ValueError as err:
        raise ValueError(f"after pass {after}: {err}") from None


def _dump_graph(outputs: list[Node]) -> str:
    from ..ir.rewrite import toposort
    return "\n".join(f"  {n!r}" for n in toposort(outputs))


_DUMPS = {  # what SYMDL_DEBUG=2 shows after a pass
    "decompose": lambda b: _dump_graph(b.outputs),
    "plan": lambda b: b.plan.describe(),
    "emit": lambda b: b.ir,
    "optimise": lambda b: b.optimised,
}


def _observe(name: str, build: Build) -> None:
    level = debug_level()
    if name == "decompose" and _verify_enabled():
        _verify(build.outputs, name)
    if name == "plan" and level:
        print(f"[symdl] kernel plan of {build.name}:\n{build.plan.describe()}")
    elif level >= 2 and name in _DUMPS:
        print(f"[symdl] after pass {name} ({build.name}):\n{_DUMPS[name](build)}")


def _simplified(outputs: list[Node], fast_math: bool) -> list[Node]:
    outputs = simplify(outputs, fast_math=fast_math)
    if _verify_enabled():
        _verify(outputs, "simplify")
    if debug_level() >= 2:
        print(f"[symdl] after pass simplify:\n{_dump_graph(outputs)}")
    return outputs


def build_artifact(inputs: list[Node], outputs: list[Node], fast_math: bool = False) -> tuple[Artifact, list[Node]]:
    """Native code for ``outputs(inputs)`` (disk cache first); returns the
    artifact and the simplified outputs it computes.  Under
    :func:`~symdl.ir.rewrite.ieee_semantics` (the caller's ``ieee=True``)
    simplification keeps IEEE results and the code re-associates nothing."""
    outputs = _simplified(outputs, fast_math)
    target = llvm.host_target()
    ieee = ieee_active()
    # IEEE semantics also changes the code made from one graph (no
    # re-association in reductions): part of the key
    key = cache_key(graph_digest(inputs, outputs), target.key + ("|ieee" if ieee else ""), llvm.versions())
    name = f"symdl_{key[:24]}" + (IEEE_SUFFIX if ieee else "")
    hit = cached_artifact(key, inputs, outputs, name, target.key)
    if hit is not None:
        STATS["disk_hits"] += 1
        debug(f"disk cache hit {key[:12]}")
        return hit, outputs
    start = time.perf_counter()
    art = run_passes(Build(list(inputs), list(outputs), name, ieee=ieee), observe=_observe).artifact()
    seconds = time.perf_counter() - start
    STATS["compiled"] += 1
    STATS["compile_seconds"] += seconds
    debug(f"compiled {name} ({len(art.object_code)} bytes) in {seconds:.3f} s")
    header = {"graph": graph_to_json(inputs, outputs),
              "name": art.name, "in_specs": [[list(s), d] for s, d in art.in_specs],
              "out_specs": [[list(s), d] for s, d in art.out_specs],
              "workspace_bytes": art.workspace_bytes, "target_key": art.target_key,
              "versions": llvm.versions()}
    store_entry(key, header, art.object_code)
    return art, outputs


def check_ieee(ieee, where: str) -> bool:
    """The ``ieee=`` argument of ``where``: a bool (anything else is a TypeError)."""
    if not isinstance(ieee, (bool, np.bool_)):
        raise TypeError(f"{where}: ieee must be True or False, got {type(ieee).__name__} {ieee!r}")
    return bool(ieee)


#: The entry names of code built with ieee=True end so: ``build_ir`` of
#: such an entry rebuilds the IEEE code (its caller knows only the name).
IEEE_SUFFIX = "_ieee"


def build_ir(inputs: list[Node], outputs: list[Node], name: str) -> str:
    """The optimised LLVM IR of already simplified ``outputs`` (what
    ``build_artifact`` compiled for them under the entry ``name``)."""
    ieee = ieee_active() or name.endswith(IEEE_SUFFIX)
    return run_passes(Build(list(inputs), list(outputs), name, ieee=ieee), "optimise", observe=_observe).optimised


def build_export(inputs: list[Node], outputs: list[Node], c_name: str) -> tuple[bytes, list[Node]]:
    """Object code with the C-callable ``c_name`` (see codegen.export) and
    the simplified outputs it computes."""
    outputs = _simplified(outputs, False)
    build = run_passes(Build(list(inputs), list(outputs), f"{c_name}__entry", c_name, ieee=ieee_active()),
                       observe=_observe)
    return build.object_code, outputs
