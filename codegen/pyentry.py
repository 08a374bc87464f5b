"""A native dispatcher for all-float calls: Python floats in, Python floats
(in tuples) out, with no Python code on the way.

The dispatcher is a CPython ``METH_FASTCALL`` function generated in LLVM IR
(as numba does).  It checks that every argument is exactly a ``float``,
checks the function watch (identity of the user's code objects, defaults,
closure cells and the globals it reads), writes the numbers into fixed C
buffers, calls the compiled entry, and builds the result tuples.  Anything
else (another type, a changed function, a native error) goes to the slow
path: the Python callable it was given, with the same arguments.

It runs with the GIL held and never releases it, so its fixed buffers (its
own inputs, outputs and workspace, shared with no other caller of the entry)
are never used by two threads at once.  Every object address baked into the
code belongs to objects that the Python side keeps alive.  The layout facts
it relies on (where a float keeps its value, a tuple its items, a function
its code) are measured at import, and no dispatcher is built when any of
them does not hold.
"""

from __future__ import annotations

import ctypes
import functools
import sys

__all__ = ["available", "ScalarDispatcher", "forwarding_call", "slot_offset"]

_API = ctypes.pythonapi
_METH_FASTCALL = 0x0080


class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


def _offset_of(obj, target, limit: int = 256) -> int | None:
    """Byte offset inside ``obj``'s C struct of a pointer to ``target``."""
    for off in range(8, limit, 8):
        if ctypes.c_void_p.from_address(id(obj) + off).value == id(target):
            return off
    return None


@functools.cache
def _layout() -> dict | None:
    """Offsets measured on live objects; None when the interpreter is not one
    this dispatcher understands."""
    if sys.implementation.name != "cpython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    value = 1.2345678
    if ctypes.c_double.from_address(id(value) + 16).value != value:
        return None
    a, b = object(), object()
    pair = (a, b)
    if ctypes.c_void_p.from_address(id(pair) + 24).value != id(a):
        return None
    marker_defaults = (object(),)

    def probe(x=marker_defaults[0]):
        return x
    code_off = _offset_of(probe, probe.__code__)
    defaults_off = _offset_of(probe, probe.__defaults__)
    inner = object()

    def outer():
        return inner
    cell_off = _offset_of(outer.__closure__[0], inner, 64) if outer.__closure__ else None
    if None in (code_off, defaults_off, cell_off):
        return None
    return {"float_value": 16, "tuple_items": 24, "type": 8, "__code__": code_off,
            "__defaults__": defaults_off, "cell_contents": cell_off}


def available() -> bool:
    return _layout() is not None


def _address(fn) -> int:
    return ctypes.cast(fn, ctypes.c_void_p).value


def _leaves(tree) -> list[int]:
    return [tree] if isinstance(tree, int) else [k for sub in tree for k in _leaves(sub)]


def slot_offset(obj, value) -> int | None:
    """Byte offset of the ``__slots__`` member of ``obj`` that holds ``value``
    (measured inside the object's fixed-size part)."""
    return _offset_of(obj, value, type(obj).__basicsize__)


_DESCRIPTOR_DEFS: list = []  # method definitions and code of the descriptors made: alive for the process


def forwarding_call(cls: type, path: tuple[int, ...]):
    """A ``__call__`` for ``cls`` in native code: it follows ``path`` (byte
    offsets of object pointers, starting at the instance) to a callable and
    calls it with the arguments, so an instance's call costs one C hop more
    than calling that callable.  Returns a method descriptor of ``cls``
    (None when this interpreter's layout is not one this module knows)."""
    from . import llvm
    if _layout() is None or not path:
        return None
    lines, obj = [], "%self"
    for k, offset in enumerate(path):
        p, nxt, bad = f"%p{k}", f"%o{k}", f"%null{k}"
        lines += [f"  {p} = getelementptr i8, ptr {obj}, i64 {offset}", f"  {nxt} = load ptr, ptr {p}",
                  f"  {bad} = icmp eq ptr {nxt}, null", f"  br i1 {bad}, label %unset, label %ok{k}", f"ok{k}:"]
        obj = nxt
    incref, decref = _address(_API.Py_IncRef), _address(_API.Py_DecRef)
    vectorcall = _address(_API.PyObject_Vectorcall)
    set_string = _address(_API.PyErr_SetString)
    error = ctypes.c_void_p.in_dll(_API, "PyExc_TypeError").value
    message = ctypes.create_string_buffer(f"{cls.__name__} object is not initialised".encode())
    # the target may be replaced while it runs (a new dispatcher): it is held for the call
    lines += [f"  call void inttoptr (i64 {incref} to ptr)(ptr {obj})",
              f"  %r = call ptr inttoptr (i64 {vectorcall} to ptr)(ptr {obj}, ptr %args, i64 %nargs, ptr null)",
              f"  call void inttoptr (i64 {decref} to ptr)(ptr {obj})",
              "  ret ptr %r",
              "unset:",
              f"  call void inttoptr (i64 {set_string} to ptr)(ptr inttoptr (i64 {error} to ptr), "
              f"ptr inttoptr (i64 {ctypes.addressof(message)} to ptr))",
              "  ret ptr null"]
    text = "define ptr @forward(ptr %self, ptr %args, i64 %nargs) {\nentry:\n" + "\n".join(lines) + "\n}\n"
    target = llvm.host_target()
    lib = llvm.NativeLibrary(llvm.compile_object(llvm.optimize(text, target), target), target)
    method = _MethodDef(b"__call__", lib.address("forward"), _METH_FASTCALL, None)
    new = _API.PyDescr_NewMethod
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.py_object, ctypes.c_void_p]
    descriptor = new(cls, ctypes.addressof(method))
    _DESCRIPTOR_DEFS.append((lib, method, message))
    return descriptor


class ScalarDispatcher:
    """Compile and hold one dispatcher.

    ``structure``: the output tree, an int (an output index) or a tuple of
    such trees.  ``probes``: the function watch's probes as
    ``(kind, obj, key, expected)`` (kinds ``attr`` and ``item`` only).
    """

    def __init__(self, entry_address: int, n_in: int, n_out: int, workspace: int, structure,
                 probes: list, slow, counter: ctypes.c_int64, target, keep=()):
        from . import llvm
        layout = _layout()
        # everything the code points at stays alive: the slow path, the watched
        # objects, the counter, and (``keep``) the compiled entry and its workspace
        self._keep = [slow, probes, counter, *keep]
        self.inputs = (ctypes.c_double * max(n_in, 1))()
        self.outputs = (ctypes.c_double * max(n_out, 1))()
        self.pointers = (ctypes.c_void_p * (n_in + n_out + 1))()
        for k in range(n_in):
            self.pointers[k] = ctypes.addressof(self.inputs) + 8 * k
        for k in range(n_out):
            self.pointers[n_in + k] = ctypes.addressof(self.outputs) + 8 * k
        self.pointers[n_in + n_out] = workspace
        module = self._module(layout, entry_address, n_in, structure, probes, id(slow),
                              ctypes.addressof(counter))
        text = llvm.optimize(module, target)
        self._lib = llvm.NativeLibrary(llvm.compile_object(text, target), target)
        self._def = _MethodDef(b"symdl_dispatch", self._lib.address("dispatch"), _METH_FASTCALL, None)
        new = _API.PyCFunction_NewEx
        new.restype = ctypes.py_object
        new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
        # the function object holds this dispatcher as its ``self``: the method
        # definition and the code stay alive as long as the function can be called
        self.function = new(ctypes.addressof(self._def), self, None)

    def _module(self, layout, entry_address, n_in, structure, probes, slow, counter) -> str:
        """The dispatcher as LLVM IR text.  Calls go through constant
        addresses (``inttoptr``), which IR text writes directly."""
        lines: list[str] = []
        temp = iter(range(1, 1 << 30))

        def t() -> str:
            return f"%t{next(temp)}"

        def addr(a: int) -> str:
            return f"inttoptr (i64 {a} to ptr)"

        def field(obj: str, offset: int, ty: str) -> str:
            p, v = t(), t()
            lines.append(f"  {p} = getelementptr i8, ptr {obj}, i64 {offset}")
            lines.append(f"  {v} = load {ty}, ptr {p}")
            return v

        labels = iter(range(1 << 30))

        def check(cond: str) -> None:
            ok = f"ok{next(labels)}"
            lines.append(f"  br i1 {cond}, label %{ok}, label %slow")
            lines.append(f"{ok}:")

        c = t()
        lines.append(f"  {c} = icmp eq i64 %nargs, {n_in}")
        check(c)
        for k in range(n_in):
            p, obj = t(), t()
            lines.append(f"  {p} = getelementptr ptr, ptr %args, i64 {k}")
            lines.append(f"  {obj} = load ptr, ptr {p}")
            typ = field(obj, layout["type"], "ptr")
            c = t()
            lines.append(f"  {c} = icmp eq ptr {typ}, {addr(id(float))}")
            check(c)
            value = field(obj, layout["float_value"], "double")
            lines.append(f"  store double {value}, ptr {addr(ctypes.addressof(self.inputs) + 8 * k)}")
        get_item = _address(_API.PyDict_GetItemWithError)
        for kind, obj, key, expected in probes:
            if kind == "attr":
                current = field(addr(id(obj)), layout[key], "ptr")
            else:
                current = t()
                lines.append(f"  {current} = call ptr {addr(get_item)}(ptr {addr(id(obj))}, ptr {addr(id(key))})")
            c = t()
            # a function without defaults stores NULL, which Python shows as None
            want = "null" if (kind == "attr" and key == "__defaults__" and expected is None) else addr(id(expected))
            lines.append(f"  {c} = icmp eq ptr {current}, {want}")
            check(c)
        rc, c = t(), t()
        lines.append(f"  {rc} = call i32 {addr(entry_address)}(ptr {addr(ctypes.addressof(self.pointers))})")
        lines.append(f"  {c} = icmp eq i32 {rc}, 0")
        check(c)
        from_double = _address(_API.PyFloat_FromDouble)
        tuple_new = _address(_API.PyTuple_New)
        # Every result is read before any object is made: making a tuple may
        # run the garbage collector, whose finalizers may let another thread
        # run this dispatcher and overwrite the output buffer.
        loaded = {}
        for k in sorted(_leaves(structure)):
            loaded[k] = t()
            lines.append(f"  {loaded[k]} = load double, ptr {addr(ctypes.addressof(self.outputs) + 8 * k)}")

        def build(tree) -> str:
            if isinstance(tree, int):
                r = t()
                lines.append(f"  {r} = call ptr {addr(from_double)}(double {loaded[tree]})")
                return r
            items = [build(sub) for sub in tree]
            tup = t()
            lines.append(f"  {tup} = call ptr {addr(tuple_new)}(i64 {len(items)})")
            for k, item in enumerate(items):  # PyTuple_SET_ITEM: the tuple takes the reference
                p = t()
                lines.append(f"  {p} = getelementptr i8, ptr {tup}, i64 {layout['tuple_items'] + 8 * k}")
                lines.append(f"  store ptr {item}, ptr {p}")
            return tup

        result = build(structure)
        n0, n1 = t(), t()
        lines.append(f"  {n0} = load i64, ptr {addr(counter)}")
        lines.append(f"  {n1} = add i64 {n0}, 1")
        lines.append(f"  store i64 {n1}, ptr {addr(counter)}")
        lines.append(f"  ret ptr {result}")
        lines.append("slow:")
        r = t()
        vectorcall = _address(_API.PyObject_Vectorcall)
        lines.append(f"  {r} = call ptr {addr(vectorcall)}(ptr {addr(slow)}, ptr %args, i64 %nargs, ptr null)")
        lines.append(f"  ret ptr {r}")
        return "define ptr @dispatch(ptr %self, ptr %args, i64 %nargs) {\nentry:\n" + "\n".join(lines) + "\n}\n"
