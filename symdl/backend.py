"""From a traced program to a native entry: simplify, look up the disk cache,
compile with codegen on a miss.  (With aot.py and accelerate.py, the only
symdl modules that import codegen.)"""

from __future__ import annotations

import contextlib
import gc
import os
import time

from codegen import llvm
from codegen.compiler import Artifact, compile_graph

from .cache import cache_key, load_entry, store_entry
from .ir.node import Node
from .ir.serialize import graph_digest, graph_to_json
from .simplify import simplify

__all__ = ["build_artifact", "debug", "gc_paused"]

STATS = {"compiled": 0, "disk_hits": 0, "compile_seconds": 0.0}


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


def debug(message: str) -> None:
    if os.environ.get("SYMDL_DEBUG", "") not in ("", "0"):
        print(f"[symdl] {message}")


def build_artifact(inputs: list[Node], outputs: list[Node], fast_math: bool = False) -> tuple[Artifact, list[Node]]:
    """Native code for ``outputs(inputs)`` (disk cache first); returns the
    artifact and the simplified outputs it computes."""
    outputs = simplify(outputs, fast_math=fast_math)
    target = llvm.host_target()
    digest = graph_digest(inputs, outputs)
    key = cache_key(digest, target.key, llvm.versions())
    name = f"symdl_{key[:24]}"
    hit = load_entry(key)
    if hit is not None:
        header, code = hit
        STATS["disk_hits"] += 1
        debug(f"disk cache hit {key[:12]}")
        return Artifact(header["name"], code, [tuple(s) for s in header["in_specs"]],
                        [tuple(s) for s in header["out_specs"]], header["workspace_bytes"],
                        header["target_key"]), outputs
    start = time.perf_counter()
    art = compile_graph(inputs, outputs, name)
    STATS["compiled"] += 1
    STATS["compile_seconds"] += time.perf_counter() - start
    debug(f"compiled {name} ({len(art.object_code)} bytes) in {time.perf_counter() - start:.3f} s")
    header = {"graph": graph_to_json(inputs, outputs),
              "name": art.name, "in_specs": [[list(s), d] for s, d in art.in_specs],
              "out_specs": [[list(s), d] for s, d in art.out_specs],
              "workspace_bytes": art.workspace_bytes, "target_key": art.target_key,
              "versions": llvm.versions()}
    store_entry(key, header, art.object_code)
    return art, outputs
