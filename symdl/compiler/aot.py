"""Ahead of time: compile a function for one signature, save/load it, export
it as a C-callable shared library."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any
from collections.abc import Callable

import numpy as np
from llvmlite.ir._utils import DuplicatedNameError

from codegen import compiler as C
from codegen.export import c_header, check_c_name, link_shared

from ..array import dlarray
from ..cache import read_exactly
from ..tree import describe, tree_flatten, tree_map
from .fastcall import MAX_LEAVES, MISS, make_matcher, make_runner
from .keys import Unkeyable, _argument_of_leaf, signature_key, unkeyable_error
from .pipeline import build_artifact, build_export, build_ir, gc_paused
from .trace import Program, is_numeric_leaf, leaf_array, trace_program

__all__ = ["CompiledFunction", "compile", "load", "export"]

# File format of CompiledFunction.save (no pickle): the magic bytes, then
# little-endian u32 format version, u64 header length, u64 code length; the
# header (JSON: the graph, the argument layout, the output structure); the
# object code; SHA-256 of everything before it.
_FILE_MAGIC = b"\x89SYMDL-COMPILED\r\n\x1a\n"
_FILE_VERSION = 2
_PREFIX = struct.Struct("<IQQ")
_OLD_MAGIC = b"SYMDL-COMPILED-FUNCTION 1\n"   # format 1 was a pickle: never loaded
MAX_FILE_BYTES = 1 << 30
_FIXED = len(_FILE_MAGIC) + _PREFIX.size + 32


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
        # (match, run) of the last call's signature (symdl.compiler.fastcall), made by the checked path
        self._fast: tuple | None = None
        self._seen: list[tuple] = []  # the (match, run) pairs made, newest first: calls alternating
        # between numpy and dlarray arguments make none again

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
        fast = self._fast
        if fast is not None:
            arrays = fast[0](args)
            if arrays is not None:
                result = fast[1](arrays)
                if result is not MISS:
                    return result
        return self._call_checked(args)

    def _call_checked(self, args: tuple) -> Any:
        """A call checked leaf by leaf, with messages naming the argument;
        it remembers a signature that passes for the fast path."""
        leaves, treedef = tree_flatten((args, {}))
        key = _key(leaves, treedef, args, "compiled function")
        if key[0] != self._key[0] or len(key[1]) != len(self._key[1]):
            # (args, kwargs): the positional arguments' structure, array and static leaves alike
            raise TypeError("compiled function: the arguments' structure differs from the example's: compiled "
                            f"for {describe(self._key[0].children[0])}, got {describe(key[0].children[0])}")
        for k, (got, want) in enumerate(zip(key[1], self._key[1])):
            if got == want:
                continue
            arg = _argument_of_leaf(args, {}, k)[0]   # "argument 2", also for a leaf inside a tuple
            if want[0] == "S":
                shown = repr(leaves[k]) if got[0] == "S" else f"an array of shape {got[1]}"
                raise ValueError(f"compiled function: {arg} is static, compiled for the value "
                                 f"{self._statics.get(k, '?')}, got {shown}")
            if got[0] == "S":
                raise ValueError(f"compiled function: {arg} is static ({leaves[k]!r}), compiled for an "
                                 f"array of shape {want[1]} and dtype {want[2]}")
            if got[1:3] != want[1:3]:
                raise ValueError(f"compiled function: {arg} has shape {got[1]} and dtype {got[2]}, "
                                 f"compiled for shape {want[1]} and dtype {want[2]}")
        inputs = [x for x in leaves if is_numeric_leaf(x)]
        arrays = [leaf_array(x) for x in inputs]
        outs = self._entry(*self._program.call_arrays(arrays))
        n = len(self._program.array_outputs)
        if not self._program.guards_hold(outs[n:]):
            raise ValueError("compiled function: these inputs take a different branch of the function's "
                             "Python control flow than the example did; compile for them, or use dlaccelerate")
        result = self._program.assemble(outs[:n])
        strip = not any(isinstance(x, dlarray) for x in inputs)
        if strip:
            # numpy (or float) arguments in, numpy arrays out, as the transforms
            result = tree_map(lambda v: v._value if isinstance(v, dlarray) else v, result)
        self._remember(args, leaves, strip)
        return result

    def _remember(self, args: tuple, leaves: list, strip: bool) -> None:
        for pair in self._seen:
            if pair[0](args) is not None:
                self._fast = pair
                return
        if len(leaves) > MAX_LEAVES or len(self._seen) >= 8:
            return
        match = make_matcher(args, None, leaves, is_numeric_leaf)
        if match is not None:
            self._fast = (match, make_runner(self._program, self._entry, strip))
            self._seen.insert(0, self._fast)

    def save(self, path: str | Path) -> None:
        """Write the compiled function (graph, object code, argument layout)
        to ``path`` in symdl's own format (no pickle; see :func:`load`).
        Written to a temporary file renamed into place."""
        path = _check_path(path, "save")
        blob, _ = _to_bytes(self, portable=True)
        tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(8)}"
        try:  # O_EXCL: a fresh file; mode 0666 less the umask, as a plain write would give
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as err:
            raise ValueError(f"save: cannot write path {str(path)!r}: {err.strerror or err}") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except OSError as err:
            raise ValueError(f"save: cannot write path {str(path)!r}: {err.strerror or err}") from None
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)

    def __getstate__(self):
        # The same bytes as a saved file, checked again on unpickling; parts
        # the file format cannot hold (a static argument keyed by identity,
        # an output structure of user classes) travel as ordinary pickle
        # objects beside them: unpickling trusts the pickle anyway.
        blob, python_parts = _to_bytes(self, portable=False)
        return {"symdl-compiled-function": blob, "python": python_parts}

    def __setstate__(self, state):
        blob = state.get("symdl-compiled-function") if isinstance(state, dict) else None
        if not isinstance(blob, bytes):
            raise ValueError("unpickling a CompiledFunction: the state holds no saved compiled function")
        other = _from_bytes(blob, "unpickling a CompiledFunction", state.get("python"))
        self.__dict__.update(other.__dict__)

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

    The file format runs no pickle, and the whole file (format, version,
    length, SHA-256 checksum, then every header field) is checked before its
    object code is mapped: a damaged, truncated or foreign file, a directory
    or a FIFO is a ``ValueError`` naming ``path``.  The checksum detects
    damage, not intent: the object code in a file is native code that runs
    when the function is called, so load files only from people you would
    take a shared library from (see docs/trust.md).

    Example:
        >>> import os, tempfile, symdl
        >>> path = os.path.join(tempfile.mkdtemp(), "cube.symdl")
        >>> symdl.compile(lambda x: x ** 3, 2.0).save(path)
        >>> symdl.load(path)(3.0)
        array(27.)
    """
    path = _check_path(path, "load", must_exist=True)
    where = f"load: {str(path)!r}"
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        raise ValueError(f"{where}: cannot open it: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ValueError(f"{where} is a directory, not a saved compiled function")
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{where} is not a regular file (a FIFO, socket or device)")
        if st.st_size > MAX_FILE_BYTES:
            raise ValueError(f"{where} is {st.st_size} bytes, more than a saved compiled function can be")
        blob = read_exactly(fd, st.st_size)
    except OSError as err:
        raise ValueError(f"{where}: cannot read it: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if blob is None:
        raise ValueError(f"{where} changed while it was read")
    return _from_bytes(blob, where)


def _check_path(path, where: str, must_exist: bool = False) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")
    try:
        text = os.fspath(path)
        path = Path(path)
    except TypeError as err:
        raise TypeError(f"{where}: path must be a str or os.PathLike ({err})") from None
    if not isinstance(text, str) or str(path) in ("", ".") or "\0" in text or text.endswith(os.sep):
        raise ValueError(f"{where}: path must name a file, got {text!r}")
    if must_exist and not os.path.lexists(path):
        raise ValueError(f"{where}: path {str(path)!r} does not exist")
    if not must_exist:
        try:
            if path.is_symlink():   # write where the link points (the rename replaces the target, not the link)
                path = path.resolve()
            _refuse_special(path, where)
            parent_ok = path.parent.is_dir()
        except OSError as err:
            raise ValueError(f"{where}: cannot use path {str(path)!r}: {err.strerror or err}") from None
        if not parent_ok:
            raise ValueError(f"{where}: the directory of path {str(path)!r} does not exist")
    return path


def _refuse_special(path: Path, where: str) -> None:
    """A path to write must be new or a regular file: writing to a FIFO
    blocks, and renaming over a device (``/dev/null``) replaces it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise ValueError(f"{where}: cannot use path {str(path)!r}: {err.strerror or err}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{where}: path {str(path)!r} is a directory; give a file name")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{where}: path {str(path)!r} exists and is not a regular file (a device, FIFO or "
                         "socket); give the name of a new or regular file")


# ---------------------------------------------------------------- the file format

def _to_bytes(cf: CompiledFunction, portable: bool) -> tuple[bytes, tuple | None]:
    """The saved-file bytes of ``cf``, and (only when not ``portable``) the
    Python parts the format cannot hold, else None.  ``portable``: such
    parts are a ValueError."""
    from ..ir.serialize import NotPortable, graph_to_json, value_to_json
    p, art = cf._program, cf._artifact
    from codegen import llvm
    header = {
        "format": "symdl compiled function", "name": art.name, "versions": _versions(llvm),
        "in_specs": [[list(s), d] for s, d in art.in_specs], "out_specs": [[list(s), d] for s, d in art.out_specs],
        "workspace_bytes": art.workspace_bytes, "target_key": art.target_key,
        "graph": graph_to_json(p.inputs, p.graph_outputs),
        "counts": [len(p.array_outputs), len(p.guard_nodes)],
        "guard_values": [value_to_json(np.asarray(v)) for v in p.guard_values],
        "input_names": list(p.input_names), "uses_rng": bool(p.uses_rng),
        "trace_key": None if p.trace_key is None else value_to_json(np.asarray(p.trace_key)),
        "statics": [[k, v] for k, v in sorted(cf._statics.items())],
        # the thread helper's object code when the code calls it (codegen.parallel):
        # the receiving process then loads it without running LLVM
        "runtime": _runtime_text(art),
    }
    python_parts = None
    try:
        header["python"] = {"key": value_to_json(cf._key), "out_treedef": value_to_json(p.out_treedef),
                            "out_slots": value_to_json(list(p.out_slots))}
    except NotPortable as err:
        if portable:
            held = getattr(err.value, "obj", err.value)   # keys hold identity-keyed objects in a wrapper
            raise ValueError(
                f"save: the function's signature or outputs hold a {type(held).__name__} (a static argument "
                f"keyed by identity, or an output of a user class), which a saved file cannot hold without "
                f"pickle; pass arrays, numbers, strings, tuples, lists or dicts, or pickle the function "
                f"instead (pickling is for trusted workers)") from None
        python_parts = (cf._key, p.out_treedef, p.out_slots)
    head = json.dumps(header, sort_keys=True, allow_nan=False).encode()
    code = art.object_code
    body = _FILE_MAGIC + _PREFIX.pack(_FILE_VERSION, len(head), len(code)) + head + code
    return body + hashlib.sha256(body).digest(), python_parts


def _from_bytes(blob: bytes, where: str, python_parts: tuple | None = None) -> CompiledFunction:
    """Check ``blob`` whole (format, version, lengths, checksum, then each
    header field) and only then map its object code."""
    if not isinstance(blob, (bytes, bytearray)) or len(blob) < _FIXED:
        if isinstance(blob, (bytes, bytearray)) and blob.startswith(_FILE_MAGIC[:len(blob)]) and blob:
            raise ValueError(f"{where} is truncated ({len(blob)} bytes)")
        if isinstance(blob, (bytes, bytearray)) and blob.startswith(_OLD_MAGIC):
            raise ValueError(f"{where} was saved by an older symdl in a format (pickle) that is no longer "
                             "loaded; compile and save the function again")
        raise ValueError(f"{where} is not a saved symdl compiled function")
    if not blob.startswith(_FILE_MAGIC):
        if blob.startswith(_OLD_MAGIC):
            raise ValueError(f"{where} was saved by an older symdl in a format (pickle) that is no longer "
                             "loaded; compile and save the function again")
        raise ValueError(f"{where} is not a saved symdl compiled function")
    version, head_len, code_len = _PREFIX.unpack_from(blob, len(_FILE_MAGIC))
    if version != _FILE_VERSION:
        raise ValueError(f"{where} has file format version {version}; this symdl reads version {_FILE_VERSION}")
    if _FIXED + head_len + code_len != len(blob):
        raise ValueError(f"{where} is damaged or truncated: its lengths say {_FIXED + head_len + code_len} "
                         f"bytes, it has {len(blob)}")
    if hashlib.sha256(blob[:-32]).digest() != blob[-32:]:
        raise ValueError(f"{where} is damaged: its SHA-256 checksum does not match its contents")
    start = len(_FILE_MAGIC) + _PREFIX.size
    head, code = blob[start:start + head_len], bytes(blob[start + head_len:-32])
    try:
        header = json.loads(head.decode("utf-8"))
        cf = _decode(header, code, python_parts)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, UnicodeDecodeError) as err:
        raise ValueError(f"{where} is not a valid saved compiled function ({type(err).__name__}: {err})") from None
    return cf


def _versions(llvm) -> str:
    from .. import __version__
    return f"symdl {__version__}, {llvm.versions()}"


def _specs(value) -> list[tuple[tuple[int, ...], str]]:
    if not isinstance(value, list) or not all(
            isinstance(v, list) and len(v) == 2 and isinstance(v[0], list) and isinstance(v[1], str)
            and all(type(d) is int and d >= 0 for d in v[0]) for v in value):
        raise ValueError("malformed argument layout")
    return [(tuple(s), d) for s, d in value]


def _decode(header: dict, code: bytes, python_parts: tuple | None) -> CompiledFunction:
    from codegen import llvm
    from codegen.compiler import Artifact
    from ..cache import planned_layout
    from ..ir.serialize import graph_from_json, value_from_json
    from ..tree import Treedef
    if not isinstance(header, dict) or header.get("format") != "symdl compiled function":
        raise ValueError("the header is not a compiled function's")
    if header["versions"] != _versions(llvm):
        # the calling convention of the object code belongs to the code generator that made it
        raise ValueError(f"it was saved by another version of symdl or its code generator "
                         f"({str(header['versions'])[:200]}; this is {_versions(llvm)}); compile it again")
    host = llvm.host_target().key
    if header["target_key"] != host:
        raise ValueError(f"it was compiled for another CPU ({str(header['target_key']).split('|')[:2]}; this "
                         f"machine is {host.split('|')[:2]}); compile it again here")
    name, work = header["name"], header["workspace_bytes"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", name):
        raise ValueError("malformed entry name")
    if type(work) is not int or not 0 <= work <= 1 << 40:
        raise ValueError("malformed workspace size")
    in_specs, out_specs = _specs(header["in_specs"]), _specs(header["out_specs"])
    inputs, outputs = graph_from_json(header["graph"])
    n, g = header["counts"]
    if type(n) is not int or type(g) is not int or n < 0 or g < 0 or n + g != len(outputs):
        raise ValueError("output counts do not match the graph")
    if in_specs != [(x.shape, x.dtype) for x in inputs] or out_specs != [(x.shape, x.dtype) for x in outputs]:
        raise ValueError("the argument layout does not match the graph")
    try:  # the memory layout the planner gives this graph (no LLVM): an undersized workspace is refused
        planned = planned_layout(inputs, outputs, name)
    except Exception as err:  # noqa: BLE001 (a graph from a file: any failure to plan it means a bad file)
        raise ValueError(f"its graph cannot be planned ({type(err).__name__}: {err})") from None
    if planned != (out_specs, work):
        raise ValueError("the workspace size or outputs in the header do not match the graph's plan")
    guard_values = [value_from_json(v) for v in header["guard_values"]]
    if len(guard_values) != g or not all(type(v) is np.ndarray for v in guard_values):
        raise ValueError("malformed guard values")
    names, uses_rng = header["input_names"], header["uses_rng"]
    if not (isinstance(names, list) and len(names) == len(inputs) and all(isinstance(s, str) for s in names)) \
            or type(uses_rng) is not bool:
        raise ValueError("malformed input names")
    trace_key = None if header["trace_key"] is None else value_from_json(header["trace_key"])
    if trace_key is not None and type(trace_key) is not np.ndarray:
        raise ValueError("malformed random-number key")
    statics = {}
    for k, text in header["statics"]:
        if type(k) is not int or not isinstance(text, str):
            raise ValueError("malformed static values")
        statics[k] = text
    if python_parts is None:
        parts = header["python"]
        key, out_treedef, slots = (value_from_json(parts[f]) for f in ("key", "out_treedef", "out_slots"))
    else:
        key, out_treedef, slots = python_parts
    if not (isinstance(key, tuple) and len(key) == 3 and type(key[0]) is Treedef and isinstance(key[1], tuple)):
        raise ValueError("malformed signature")
    if type(out_treedef) is not Treedef or not isinstance(slots, list):
        raise ValueError("malformed output structure")
    for slot in slots:
        ok = isinstance(slot, tuple) and (
            (len(slot) == 2 and slot[0] == "static") or
            (len(slot) == 4 and slot[0] == "array" and type(slot[1]) is int and 0 <= slot[1] < n
             and slot[3] in ("dlarray", "ndarray", "float")))
        if not ok:
            raise ValueError("malformed output slot")
    program = Program(inputs, outputs[:n], outputs[n:], guard_values, out_treedef, slots, names,
                      uses_rng=uses_rng, trace_key=trace_key)
    runtime = header.get("runtime")
    if runtime is not None and not isinstance(runtime, str):
        raise ValueError("malformed thread helper")
    artifact = Artifact(name, code, in_specs, out_specs, work, host,
                        _runtime=None if runtime is None else base64.b64decode(runtime, validate=True))
    return CompiledFunction(program, artifact, key, None, statics)


def _runtime_text(art) -> str | None:
    runtime = art.shipped_runtime()
    return None if runtime is None else base64.b64encode(runtime).decode("ascii")


def export(fun: Callable, *example_args: Any, path: str | Path, name: str = "symdl_fn") -> Path:
    """Write ``fun`` compiled for ``example_args`` as a C-callable shared
    library (``.so``; or an object file for a path ending in ``.o``) plus a C
    header beside it (same stem, ``.h``).  See :mod:`codegen.export` for the
    calling convention.  Returns the library path (a ``path`` without a
    suffix gets ``.so``).

    ``name`` must be a C identifier that is not a C/C++ keyword, not a name
    of the C standard library, libm or POSIX (``exp``, ``memcpy``, ``main``:
    an exported symbol of that name would replace the library's for the
    whole program) and not reserved (``__x``, ``_X``); otherwise a
    ``ValueError``.

    Example:
        >>> import os, tempfile, symdl
        >>> out = os.path.join(tempfile.mkdtemp(), "cube.o")      # an object file: no linker needed
        >>> symdl.export(lambda x: x ** 3, 2.0, path=out, name="cube").name
        'cube.o'
        >>> "int cube(const double *in0, double *out0);" in open(out[:-2] + ".h").read()
        True
    """
    name = check_c_name(name)
    path = _export_path(path)
    if not callable(fun):
        raise TypeError(f"export: fun must be callable, got {type(fun).__name__}")
    program, _ = trace_program(fun, example_args, {}, is_numeric_leaf, gradients_allowed=True)
    if program.guard_nodes:
        raise ValueError("export: fun's Python control flow depends on input values; exported code "
                         "cannot retrace, so write the branch with symdl.where instead")
    if any(slot[0] == "static" for slot in program.out_slots):
        raise ValueError("export: every output of fun must be an array")
    try:
        code, outputs = build_export(program.inputs, program.array_outputs, name)
    except DuplicatedNameError as err:  # a name the generated module already uses: check_c_name's list missed it
        raise ValueError(f"export: name {name!r} clashes with a symbol of the generated code ({err}); "
                         "choose another") from None
    notes = ()
    if program.uses_rng:
        last = len(program.inputs) - 1
        notes = (f"The last input, in{last}, is the key of symdl.rand/randn: int64 {{seed, counter}};",
                 "pass a new counter on every call for fresh random numbers.")
    header = c_header(name, [(n.shape, n.dtype) for n in program.inputs], [(n.shape, n.dtype) for n in outputs],
                      notes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.with_suffix(".h").write_text(header)
        if path.suffix == ".o":
            path.write_bytes(code)
            return path
        with tempfile.TemporaryDirectory(prefix="symdl-export-") as tmp:
            obj = Path(tmp) / f"{name}.o"   # never beside the library: a user's own .o there stays
            obj.write_bytes(code)
            link_shared(obj, path)
    except OSError as err:
        raise ValueError(f"export: cannot write path {str(path)!r} (or its header): "
                         f"{err.strerror or err}") from None
    return path


_LIBRARY_SUFFIXES = (".so", ".dylib", ".o")


def _export_path(path) -> Path:
    """``path`` as a Path ending in .so (added when it has no suffix), .dylib or .o."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"export: path must be a str or os.PathLike, got {type(path).__name__}")
    text = os.fspath(path)
    path = Path(path)
    if not isinstance(text, str) or not path.name or text.endswith(os.sep) or "\0" in text:
        raise ValueError(f"export: path must name a file, got {text!r}")
    if os.path.isdir(path):
        raise ValueError(f"export: path {text!r} is a directory; give a file name")
    if path.suffix == "":
        path = path.with_name(path.name + ".so")
    if path.suffix not in _LIBRARY_SUFFIXES:
        raise ValueError(f"export: path must end in .so, .dylib or .o (or have no suffix, then .so is "
                         f"added), got {str(path)!r}")
    for written in (path, path.with_suffix(".h")):
        _refuse_special(written, "export")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"export: path {str(path)!r} is inside {str(parent)!r}, which is not a directory")
    return path
