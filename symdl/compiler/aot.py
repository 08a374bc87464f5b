"""Ahead of time: compile a function for one signature, save/load it, export
it as a C-callable shared library."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any
from collections.abc import Callable

from codegen import compiler as C
from codegen.export import c_header, link_shared

from ..array import dlarray
from ..tree import tree_flatten, tree_map
from .keys import Unkeyable, signature_key, unkeyable_error
from .pipeline import build_artifact, build_export, build_ir, gc_paused
from .trace import Program, is_numeric_leaf, leaf_array, trace_program

__all__ = ["CompiledFunction", "compile", "load", "export"]

_FILE_MAGIC = b"SYMDL-COMPILED-FUNCTION 1\n"


class CompiledFunction:
    """Native code of a function for one input signature.

    Array arguments (dlarrays, numpy float arrays, Python floats) must keep
    the example's shapes and dtypes; other arguments are static and must
    equal the example's.  Called with dlarrays it returns dlarrays where
    ``fun`` did; called with numpy arrays or floats, numpy arrays.  ``.llvm_ir``, ``.asm``, ``.save(path)``; pickles
    with its object code.

    Example:
        >>> import numpy as np, symdl
        >>> f = symdl.compile(lambda x: np.sum(np.sin(x)), np.zeros(3))
        >>> float(f(np.zeros(3)))
        0.0
    """

    def __init__(self, program: Program, artifact, key: tuple, fun: Callable | None, statics: dict | None = None):
        self._program = program
        self._artifact = artifact
        self._key = key
        self._statics = statics or {}  # leaf index -> repr of the example's static value (for messages)
        self._fun = fun
        self._entry = artifact.entry()
        self._llvm_ir: str | None = None

    @property
    def llvm_ir(self) -> str:
        """The optimised LLVM IR of the entry function."""
        if self._llvm_ir is None:
            p = self._program
            self._llvm_ir = build_ir(p.inputs, p.graph_outputs, self._artifact.name)
        return self._llvm_ir

    @property
    def asm(self) -> str:
        """The host assembly of the entry function."""
        return C.assembly(self.llvm_ir)

    @property
    def graph(self):
        from ..ir.graph import Graph
        return Graph(self._program.inputs, self._program.array_outputs)

    def __call__(self, *args: Any) -> Any:
        leaves, treedef = tree_flatten((args, {}))
        key = _key(leaves, treedef, args, "compiled function")
        if key[0] != self._key[0] or len(key[1]) != len(self._key[1]):
            raise TypeError("compiled function: the arguments' structure differs from the example's")
        for k, (got, want) in enumerate(zip(key[1], self._key[1])):
            if want[0] == "S" and got != want:
                shown = repr(leaves[k]) if got[0] == "S" else f"an array of shape {got[1]}"
                raise ValueError(f"compiled function: argument {k} is static, compiled for the value "
                                 f"{self._statics.get(k, '?')}, got {shown}")
            if got[0] == "S" and got != want:
                raise ValueError(f"compiled function: argument {k} is static ({leaves[k]!r}), compiled for an "
                                 f"array of shape {want[1]} and dtype {want[2]}")
            if got[0] != "S" and (want[0] == "S" or got[1:3] != want[1:3]):
                raise ValueError(f"compiled function: argument {k} has shape {got[1]} and dtype {got[2]}, "
                                 f"compiled for shape {want[1]} and dtype {want[2]}")
        inputs = [x for x in leaves if is_numeric_leaf(x)]
        arrays = [leaf_array(x) for x in inputs]
        outs = self._entry(*self._program.call_arrays(arrays))
        n = len(self._program.array_outputs)
        if not self._program.guards_hold(outs[n:]):
            raise ValueError("compiled function: these inputs take a different branch of the function's "
                             "Python control flow than the example did; compile for them, or use dlaccelerate")
        result = self._program.assemble(outs[:n])
        if not any(isinstance(x, dlarray) for x in inputs):
            # numpy (or float) arguments in, numpy arrays out, as the transforms
            result = tree_map(lambda v: v._value if isinstance(v, dlarray) else v, result)
        return result

    def save(self, path: str | Path) -> None:
        """Write the compiled function (graph and object code) to ``path``."""
        Path(path).write_bytes(_FILE_MAGIC + pickle.dumps(self, protocol=4))

    def __getstate__(self):
        return {"program": self._program, "artifact": self._artifact, "key": self._key, "statics": self._statics}

    def __setstate__(self, state):
        self.__init__(state["program"], state["artifact"], state["key"], None, state.get("statics"))

    def __repr__(self) -> str:
        p = self._program
        return f"<CompiledFunction {self._artifact.name}: {len(p.inputs)} array inputs, " \
               f"{len(p.array_outputs)} outputs>"


def compile(fun: Callable, *example_args: Any, ieee: bool = False) -> CompiledFunction:  # noqa: A001 (SPEC name)
    """Trace ``fun`` on ``example_args`` (it may call dlgradient) and compile it
    to native code for that signature.  ``ieee=True`` keeps step-by-step IEEE
    semantics (no real-number simplification: docs/ieee.md).

    Example:
        >>> import symdl
        >>> def loss(x):
        ...     y = x ** 3
        ...     return y, symdl.dlgradient(y, x)
        >>> f = symdl.compile(loss, 2.0)
        >>> f(2.0)
        (array(8.), array(12.))
    """
    if not callable(fun):
        raise TypeError(f"compile: fun must be callable, got {type(fun).__name__}")
    from .pipeline import check_ieee, ieee_semantics
    ieee = check_ieee(ieee, "compile")
    leaves, treedef = tree_flatten((example_args, {}))
    with gc_paused(), ieee_semantics(ieee):
        program, _ = trace_program(fun, example_args, {}, is_numeric_leaf, gradients_allowed=True)
        artifact, outputs = build_artifact(program.inputs, program.graph_outputs)
    n = len(program.array_outputs)
    program.array_outputs, program.guard_nodes = outputs[:n], outputs[n:]
    statics = {k: repr(x) for k, x in enumerate(leaves) if not is_numeric_leaf(x)}
    return CompiledFunction(program, artifact, _key(leaves, treedef, example_args, "compile"), fun, statics)


def _key(leaves, treedef, args, where: str) -> tuple:
    try:
        return signature_key(leaves, treedef, is_numeric_leaf, True)
    except Unkeyable as err:
        raise unkeyable_error(where, err, args, {}) from None


def load(path: str | Path) -> CompiledFunction:
    """Load a function written by ``CompiledFunction.save`` (no recompilation).

    Only load files you trust: like ``pickle``, loading runs what the file says.

    Example:
        >>> import os, tempfile, symdl
        >>> path = os.path.join(tempfile.mkdtemp(), "cube.symdl")
        >>> symdl.compile(lambda x: x ** 3, 2.0).save(path)
        >>> symdl.load(path)(3.0)
        array(27.)
    """
    blob = Path(path).read_bytes()
    if not blob.startswith(_FILE_MAGIC):
        raise ValueError(f"load: {path} is not a saved symdl compiled function")
    try:
        obj = pickle.loads(blob[len(_FILE_MAGIC):])
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as err:
        raise ValueError(f"load: {path} is damaged or truncated ({err})") from None
    if not isinstance(obj, CompiledFunction):
        raise ValueError(f"load: {path} does not hold a CompiledFunction")
    return obj


def export(fun: Callable, *example_args: Any, path: str | Path, name: str = "symdl_fn") -> Path:
    """Write ``fun`` compiled for ``example_args`` as a C-callable shared
    library (``.so``; or an object file for a path ending in ``.o``) plus a C
    header beside it (same stem, ``.h``).  See :mod:`codegen.export` for the
    calling convention.  Returns the library path.

    Example:
        >>> import os, tempfile, symdl
        >>> out = os.path.join(tempfile.mkdtemp(), "cube.o")      # an object file: no linker needed
        >>> symdl.export(lambda x: x ** 3, 2.0, path=out, name="cube").name
        'cube.o'
        >>> "int cube(const double *in0, double *out0);" in open(out[:-2] + ".h").read()
        True
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"export: name must be a C identifier, got {name!r}")
    program, _ = trace_program(fun, example_args, {}, is_numeric_leaf, gradients_allowed=True)
    if program.guard_nodes:
        raise ValueError("export: fun's Python control flow depends on input values; exported code "
                         "cannot retrace, so write the branch with symdl.where instead")
    if any(slot[0] == "static" for slot in program.out_slots):
        raise ValueError("export: every output of fun must be an array")
    code, outputs = build_export(program.inputs, program.array_outputs, name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    notes = ()
    if program.uses_rng:
        last = len(program.inputs) - 1
        notes = (f"The last input, in{last}, is the key of symdl.rand/randn: int64 {{seed, counter}};",
                 "pass a new counter on every call for fresh random numbers.")
    header = c_header(name, [(n.shape, n.dtype) for n in program.inputs], [(n.shape, n.dtype) for n in outputs],
                      notes)
    path.with_suffix(".h").write_text(header)
    if path.suffix == ".o":
        path.write_bytes(code)
        return path
    obj = path.with_suffix(".o")
    obj.write_bytes(code)
    try:
        link_shared(obj, path)
    finally:
        obj.unlink(missing_ok=True)
    return path
