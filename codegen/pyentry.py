"""Native dispatchers: CPython calls answered by compiled code with no
Python code on the way, for all-float calls (Python floats in, Python floats
in tuples out) and for calls with numpy arrays (arrays in, new arrays out).

A dispatcher is a CPython ``METH_FASTCALL`` function generated in LLVM IR
(as numba does).  :class:`ScalarDispatcher` checks that every argument is
exactly a ``float``; :class:`ArrayDispatcher` checks that every argument is
exactly a ``numpy.ndarray`` of the compiled dtype (float32 or float64, native
byte order), number of dimensions and shape, C-contiguous and aligned (or a
``float`` where one was compiled).  Both check the function watch (identity
of the user's code objects, defaults, closure cells and the globals it
reads), call the compiled entry and build the results.  Anything else (another
type, a changed function, a native error) goes to the slow path: the Python
callable it was given, with the same arguments.

It runs with the GIL held and never releases it, so a dispatcher's own
buffers (the scalar dispatcher's inputs and outputs, and each dispatcher's
workspace, shared with no other caller of the entry) are never used by two
threads at once.  The array dispatcher keeps its pointer array on the native
stack and makes new output arrays on every call, so only the workspace is
shared between its calls, and only inside the entry, where no Python code
runs.  Every object address baked into the code belongs to objects that the
Python side keeps alive.  The layout facts it relies on (where a float keeps
its value, a tuple its items, a function its code, an ndarray its data,
shape, flags and dtype, and numpy's ``PyArray_New``) are measured at import,
and no dispatcher is built when any of them does not hold.
"""

from __future__ import annotations

import ctypes
import functools
import sys

__all__ = ["available", "arrays_available", "ScalarDispatcher", "ArrayDispatcher", "forwarding_call", "slot_offset"]

_API = ctypes.pythonapi
_METH_FASTCALL = 0x0080
_METH_KEYWORDS = 0x0002


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
_TUPLE_SIZE = 16  # offset of a tuple's ob_size (PyVarObject), checked on a live tuple before use


def forwarding_call(cls: type, path: tuple[int, ...], keywords=None):
    """A ``__call__`` for ``cls`` in native code: it follows ``path`` (byte
    offsets of object pointers, starting at the instance) to a callable and
    calls it with the arguments, so an instance's call costs one C hop more
    than calling that callable.  A call with keyword arguments goes to the
    Python function ``keywords(self, *args, **kwargs)`` instead (with no
    ``keywords``, such a call is CPython's TypeError).  Returns a method
    descriptor of ``cls`` (None when this interpreter's layout is not one
    this module knows)."""
    from . import llvm
    if _layout() is None or not path:
        return None
    probe = (1, 2, 3)
    if keywords is not None and ctypes.c_ssize_t.from_address(id(probe) + _TUPLE_SIZE).value != len(probe):
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
    if keywords is None:
        head = "define ptr @forward(ptr %self, ptr %args, i64 %nargs) {\nentry:\n"
        flags = _METH_FASTCALL
    else:
        # keywords: [self, positional..., keyword values...] to the Python function
        head = "\n".join([
            "define ptr @forward(ptr %self, ptr %args, i64 %nargs, ptr %kwnames) {", "entry:",
            "  %haskw = icmp ne ptr %kwnames, null", "  br i1 %haskw, label %keywords, label %plain", "keywords:",
            f"  %szp = getelementptr i8, ptr %kwnames, i64 {_TUPLE_SIZE}", "  %nkw = load i64, ptr %szp",
            "  %total = add i64 %nargs, %nkw", "  %slots = add i64 %total, 1",
            "  %arr = alloca ptr, i64 %slots", "  store ptr %self, ptr %arr", "  br label %copy", "copy:",
            "  %i = phi i64 [0, %keywords], [%inext, %copybody]", "  %more = icmp slt i64 %i, %total",
            "  br i1 %more, label %copybody, label %callkw", "copybody:",
            "  %src = getelementptr ptr, ptr %args, i64 %i", "  %v = load ptr, ptr %src",
            "  %inext = add i64 %i, 1", "  %dst = getelementptr ptr, ptr %arr, i64 %inext",
            "  store ptr %v, ptr %dst", "  br label %copy", "callkw:", "  %npos = add i64 %nargs, 1",
            # (an address, not a key: ``keywords`` is kept alive in _DESCRIPTOR_DEFS with the code)
            f"  %rk = call ptr inttoptr (i64 {vectorcall} to ptr)(ptr inttoptr (i64 {id(keywords)} to ptr), "
            "ptr %arr, i64 %npos, ptr %kwnames)", "  ret ptr %rk", "plain:", ""])
        flags = _METH_FASTCALL | _METH_KEYWORDS
    text = head + "\n".join(lines) + "\n}\n"
    target = llvm.host_target()
    lib = llvm.NativeLibrary(llvm.compile_object(llvm.optimize(text, target), target), target)
    method = _MethodDef(b"__call__", lib.address("forward"), flags, None)
    new = _API.PyDescr_NewMethod
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.py_object, ctypes.c_void_p]
    descriptor = new(cls, ctypes.addressof(method))
    _DESCRIPTOR_DEFS.append((lib, method, message, keywords))
    return descriptor


class _IRText:
    """Lines of one LLVM IR function being written as text: fresh temporaries
    and labels, and the few instruction shapes both dispatchers use.  Calls
    go through constant addresses (``inttoptr``), which IR text writes
    directly."""

    def __init__(self):
        self.lines: list[str] = []
        self._temp = iter(range(1, 1 << 30))
        self._labels = iter(range(1 << 30))

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def t(self) -> str:
        return f"%t{next(self._temp)}"

    @staticmethod
    def addr(a: int) -> str:
        return f"inttoptr (i64 {a} to ptr)"

    def gep(self, obj: str, offset: int) -> str:
        p = self.t()
        self.emit(f"  {p} = getelementptr i8, ptr {obj}, i64 {offset}")
        return p

    def field(self, obj: str, offset: int, ty: str) -> str:
        v = self.t()
        self.emit(f"  {v} = load {ty}, ptr {self.gep(obj, offset)}")
        return v

    def cmp(self, op: str, ty: str, a: str, b: str) -> str:
        c = self.t()
        self.emit(f"  {c} = icmp {op} {ty} {a}, {b}")
        return c

    def check(self, cond: str, fail: str) -> None:
        """Go on when ``cond`` holds, else branch to the label ``fail``."""
        ok = f"ok{next(self._labels)}"
        self.emit(f"  br i1 {cond}, label %{ok}, label %{fail}")
        self.emit(f"{ok}:")

    def check_probes(self, layout: dict, probes: list, fail: str) -> None:
        """The function watch: each probed attribute or globals entry is
        still the object it was when the code was traced."""
        get_item = _address(_API.PyDict_GetItemWithError)
        for kind, obj, key, expected in probes:
            if kind == "attr":
                current = self.field(self.addr(id(obj)), layout[key], "ptr")
            else:
                current = self.t()
                self.emit(f"  {current} = call ptr {self.addr(get_item)}(ptr {self.addr(id(obj))}, "
                          f"ptr {self.addr(id(key))})")
            # a function without defaults stores NULL, which Python shows as None
            want = "null" if (kind == "attr" and key == "__defaults__" and expected is None) \
                else self.addr(id(expected))
            self.check(self.cmp("eq", "ptr", current, want), fail)

    def build_tree(self, layout: dict, tree, leaf) -> str:
        """The result object: ``leaf(k)`` for an output index, a new tuple
        (which takes the references of its items) for a tuple of trees."""
        if isinstance(tree, int):
            return leaf(tree)
        items = [self.build_tree(layout, sub, leaf) for sub in tree]
        tup = self.t()
        self.emit(f"  {tup} = call ptr {self.addr(_address(_API.PyTuple_New))}(i64 {len(items)})")
        for k, item in enumerate(items):  # PyTuple_SET_ITEM
            self.emit(f"  store ptr {item}, ptr {self.gep(tup, layout['tuple_items'] + 8 * k)}")
        return tup

    def count_and_return(self, counter: int, result: str) -> None:
        n0, n1 = self.t(), self.t()
        self.emit(f"  {n0} = load i64, ptr {self.addr(counter)}")
        self.emit(f"  {n1} = add i64 {n0}, 1")
        self.emit(f"  store i64 {n1}, ptr {self.addr(counter)}")
        self.emit(f"  ret ptr {result}")

    def call_slow(self, slow: int) -> None:
        """The slow path: the Python callable, with the same arguments."""
        r = self.t()
        vectorcall = _address(_API.PyObject_Vectorcall)
        self.emit(f"  {r} = call ptr {self.addr(vectorcall)}(ptr {self.addr(slow)}, ptr %args, i64 %nargs, "
                  "ptr null)")
        self.emit(f"  ret ptr {r}")

    def function(self, globals_: list[str] = ()) -> str:
        return ("\n".join(globals_) + "\n" + "define ptr @dispatch(ptr %self, ptr %args, i64 %nargs) {\nentry:\n"
                + "\n".join(self.lines) + "\n}\n")


def _install(owner, module: str, target) -> None:
    """Compile the dispatcher ``module`` (IR text) and make ``owner.function``,
    a builtin function object whose ``self`` is ``owner``: the method
    definition and the code stay alive as long as the function can be called."""
    from . import llvm
    owner._lib = llvm.NativeLibrary(llvm.compile_object(llvm.optimize(module, target), target), target)
    owner._def = _MethodDef(b"symdl_dispatch", owner._lib.address("dispatch"), _METH_FASTCALL, None)
    new = _API.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    owner.function = new(ctypes.addressof(owner._def), owner, None)


class ScalarDispatcher:
    """Compile and hold one dispatcher.

    ``structure``: the output tree, an int (an output index) or a tuple of
    such trees.  ``probes``: the function watch's probes as
    ``(kind, obj, key, expected)`` (kinds ``attr`` and ``item`` only).
    """

    def __init__(self, entry_address: int, n_in: int, n_out: int, workspace: int, structure,
                 probes: list, slow, counter: ctypes.c_int64, target, keep=()):
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
        _install(self, self._module(layout, entry_address, n_in, structure, probes, id(slow),
                                    ctypes.addressof(counter)), target)

    def _module(self, layout, entry_address, n_in, structure, probes, slow, counter) -> str:
        """The dispatcher as LLVM IR text."""
        w = _IRText()
        addr = w.addr
        w.check(w.cmp("eq", "i64", "%nargs", str(n_in)), "slow")
        for k in range(n_in):
            obj = w.field("%args", 8 * k, "ptr")
            w.check(w.cmp("eq", "ptr", w.field(obj, layout["type"], "ptr"), addr(id(float))), "slow")
            value = w.field(obj, layout["float_value"], "double")
            w.emit(f"  store double {value}, ptr {addr(ctypes.addressof(self.inputs) + 8 * k)}")
        w.check_probes(layout, probes, "slow")
        rc = w.t()
        w.emit(f"  {rc} = call i32 {addr(entry_address)}(ptr {addr(ctypes.addressof(self.pointers))})")
        w.check(w.cmp("eq", "i32", rc, "0"), "slow")
        # Every result is read before any object is made: making a tuple may
        # run the garbage collector, whose finalizers may let another thread
        # run this dispatcher and overwrite the output buffer.
        loaded = {}
        for k in sorted(_leaves(structure)):
            loaded[k] = w.t()
            w.emit(f"  {loaded[k]} = load double, ptr {addr(ctypes.addressof(self.outputs) + 8 * k)}")
        from_double = _address(_API.PyFloat_FromDouble)

        def leaf(k: int) -> str:
            r = w.t()
            w.emit(f"  {r} = call ptr {addr(from_double)}(double {loaded[k]})")
            return r

        w.count_and_return(counter, w.build_tree(layout, structure, leaf))
        w.emit("slow:")
        w.call_slow(slow)
        return w.function()


# ---------------------------------------------------------------- numpy arrays

_NPY_TYPES = {"float32": 11, "float64": 12}  # NPY_FLOAT, NPY_DOUBLE
_C_CONTIGUOUS, _ALIGNED = 0x0001, 0x0100      # NPY_ARRAY_C_CONTIGUOUS, NPY_ARRAY_ALIGNED
_NATIVE_ORDER = b"<" if sys.byteorder == "little" else b">"


def _numpy_api() -> int | None:
    """Address of numpy's C API table (the ``_ARRAY_API`` capsule)."""
    try:
        import numpy._core._multiarray_umath as umath
    except ImportError:  # numpy 1.x
        try:
            import numpy.core.multiarray as umath
        except ImportError:
            return None
    capsule = getattr(umath, "_ARRAY_API", None)
    if capsule is None:
        return None
    get = _API.PyCapsule_GetPointer
    get.restype, get.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    try:
        return get(capsule, None)
    except (ValueError, TypeError):
        return None


@functools.cache
def _array_layout() -> dict | None:
    """numpy's struct layout as this dispatcher reads it (PyArrayObject_fields
    and PyArray_Descr), each offset checked on probe arrays and dtypes, plus
    ``PyArray_New`` from the C API table, checked by calling it.  None when
    any fact does not hold: then no array dispatcher is built."""
    import numpy as np
    if _layout() is None:
        return None
    table = _numpy_api()
    if not table:
        return None
    api = (ctypes.c_void_p * 100).from_address(table)
    # PyArrayObject_fields after PyObject_HEAD: data, nd, dimensions, strides,
    # base, descr, flags; PyArray_Descr: typeobj, kind, type, byteorder, (a
    # char), type_num.  API slots: 2 is PyArray_Type, 93 PyArray_New.  Strides
    # are not read (the contiguity flag says what the entry needs) but checked
    # with the rest, as evidence that the struct is the one described.
    L = {"data": 16, "nd": 24, "dimensions": 32, "strides": 40, "descr": 56, "flags": 64,
         "byteorder": 26, "type_num": 28, "array_type": api[2], "new": api[93]}
    try:
        if L["array_type"] != id(np.ndarray):
            return None
        probe = np.zeros((2, 3, 5))

        def ptr(obj, off):
            return ctypes.c_void_p.from_address(id(obj) + off).value

        def i32(obj, off):
            return ctypes.c_int32.from_address(id(obj) + off).value

        if ptr(probe, L["data"]) != probe.ctypes.data or i32(probe, L["nd"]) != 3:
            return None
        if tuple((ctypes.c_int64 * 3).from_address(ptr(probe, L["dimensions"]))) != probe.shape:
            return None
        if tuple((ctypes.c_int64 * 3).from_address(ptr(probe, L["strides"]))) != probe.strides:
            return None
        if ptr(probe, L["descr"]) != id(probe.dtype):
            return None
        flags = i32(probe, L["flags"])
        strided = probe[:, ::2]
        unaligned = np.frombuffer(bytes(17), dtype=np.float64, count=2, offset=1)
        if flags & (_C_CONTIGUOUS | _ALIGNED) != _C_CONTIGUOUS | _ALIGNED \
                or i32(strided, L["flags"]) & _C_CONTIGUOUS or unaligned.flags.aligned \
                or i32(unaligned, L["flags"]) & _ALIGNED:
            return None
        for name, number in _NPY_TYPES.items():
            for order, char in (("=", b"="), (">" if _NATIVE_ORDER == b"<" else "<", None)):
                dt = np.dtype(name).newbyteorder(order)
                if i32(dt, L["type_num"]) != number or dt.num != number:
                    return None
                got = ctypes.c_char.from_address(id(dt) + L["byteorder"]).value
                if got != (char or dt.byteorder.encode()):
                    return None
        # PYFUNCTYPE: called with the GIL held, as numpy requires
        new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                               ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                               ctypes.c_void_p)(L["new"])
        dims = (ctypes.c_int64 * 2)(4, 3)
        made = new(L["array_type"], 2, ctypes.addressof(dims), 11, None, None, 0, 0, None)
        if type(made) is not np.ndarray or made.shape != (4, 3) or made.dtype != np.float32 \
                or not (made.flags.c_contiguous and made.flags.owndata and made.flags.writeable
                        and made.flags.aligned) or made.base is not None:
            return None
    except (ValueError, TypeError, OSError):
        return None
    return L


def arrays_available() -> bool:
    """Whether numpy's layout is one :class:`ArrayDispatcher` can read."""
    return _array_layout() is not None


class ArrayDispatcher:
    """Compile and hold one dispatcher for calls with numpy arrays (and
    Python floats) as positional arguments.

    ``inputs``: per argument, ``None`` for a Python float (a float64 scalar
    input of the entry) or ``(shape, dtype name)`` for a native-order,
    aligned, C-contiguous ``numpy.ndarray`` (never a subclass).
    ``outputs``: per output of the entry, ``(shape, dtype name, as_float)``;
    ``as_float``: returned as a Python float (0-d outputs only).
    ``structure``, ``probes``, ``slow``, ``counter``, ``keep``: as for
    :class:`ScalarDispatcher`.  ``workspace``: the entry's workspace, used
    by this dispatcher only.

    Inputs and outputs are per call (the pointer array on the native stack,
    each output a new array), so nothing a later call writes is shared with
    an earlier result.  Output arrays are made before the arguments and the
    function watch are checked: making an object may run the garbage
    collector, whose finalizers run Python code, which could edit what was
    just checked.  The workspace is used only inside the entry call, which
    runs no Python code and keeps the GIL.
    """

    def __init__(self, entry_address: int, inputs: list, outputs: list, workspace: int, structure,
                 probes: list, slow, counter: ctypes.c_int64, target, keep=()):
        self._keep = [slow, probes, counter, *keep]
        _install(self, self._module(_layout(), _array_layout(), entry_address, inputs, outputs, workspace,
                                    structure, probes, id(slow), ctypes.addressof(counter)), target)

    @staticmethod
    def _module(layout, A, entry_address, inputs, outputs, workspace, structure, probes, slow, counter) -> str:
        w = _IRText()
        addr, gep, field, cmp, check = w.addr, w.gep, w.field, w.cmp, w.check
        globals_: list[str] = []
        n_in, n_out = len(inputs), len(outputs)
        w.emit(f"  %slots = alloca [{n_in + n_out + 1} x ptr]")
        w.emit(f"  %cells = alloca [{n_in + n_out + 1} x double]")
        w.emit(f"  %made = alloca [{max(n_out, 1)} x ptr]")
        for k in range(n_out):
            w.emit(f"  store ptr null, ptr {gep('%made', 8 * k)}")
        check(cmp("eq", "i64", "%nargs", str(n_in)), "slow")

        def slot(k: int, value: str) -> None:
            w.emit(f"  store ptr {value}, ptr {gep('%slots', 8 * k)}")

        # outputs first (see the class docstring); a failure to make one is a
        # MemoryError raised to the caller, as numpy would
        for k, (shape, dtype, as_float) in enumerate(outputs):
            if as_float:
                slot(n_in + k, gep("%cells", 8 * (n_in + k)))
                continue
            dims = f"@dims{k}"
            values = ", ".join(f"i64 {d}" for d in shape) or "i64 0"
            globals_.append(f"{dims} = private constant [{max(len(shape), 1)} x i64] [{values}]")
            arr = w.t()
            w.emit(f"  {arr} = call ptr {addr(A['new'])}(ptr {addr(A['array_type'])}, i32 {len(shape)}, "
                   f"ptr {dims}, i32 {_NPY_TYPES[dtype]}, ptr null, ptr null, i32 0, i32 0, ptr null)")
            w.emit(f"  store ptr {arr}, ptr {gep('%made', 8 * k)}")
            check(cmp("ne", "ptr", arr, "null"), "nomemory")
            slot(n_in + k, field(arr, A["data"], "ptr"))
        # the arguments: exactly what the entry was compiled for
        for k, spec in enumerate(inputs):
            obj = field("%args", 8 * k, "ptr")
            typ = field(obj, layout["type"], "ptr")
            if spec is None:
                check(cmp("eq", "ptr", typ, addr(id(float))), "mismatch")
                value = field(obj, layout["float_value"], "double")
                cell = gep("%cells", 8 * k)
                w.emit(f"  store double {value}, ptr {cell}")
                slot(k, cell)
                continue
            shape, dtype = spec
            check(cmp("eq", "ptr", typ, addr(A["array_type"])), "mismatch")
            descr = field(obj, A["descr"], "ptr")
            check(cmp("eq", "i32", field(descr, A["type_num"], "i32"), str(_NPY_TYPES[dtype])), "mismatch")
            order = field(descr, A["byteorder"], "i8")
            native, eq = cmp("eq", "i8", order, str(ord("="))), cmp("eq", "i8", order, str(_NATIVE_ORDER[0]))
            either = w.t()
            w.emit(f"  {either} = or i1 {native}, {eq}")
            check(either, "mismatch")
            check(cmp("eq", "i32", field(obj, A["nd"], "i32"), str(len(shape))), "mismatch")
            if shape:
                dims = field(obj, A["dimensions"], "ptr")
                for i, d in enumerate(shape):
                    check(cmp("eq", "i64", field(dims, 8 * i, "i64"), str(d)), "mismatch")
            flags, masked = field(obj, A["flags"], "i32"), w.t()
            want = _C_CONTIGUOUS | _ALIGNED
            w.emit(f"  {masked} = and i32 {flags}, {want}")
            check(cmp("eq", "i32", masked, str(want)), "mismatch")
            slot(k, field(obj, A["data"], "ptr"))
        w.check_probes(layout, probes, "mismatch")
        slot(n_in + n_out, addr(workspace))
        rc = w.t()
        w.emit(f"  {rc} = call i32 {addr(entry_address)}(ptr %slots)")
        check(cmp("eq", "i32", rc, "0"), "mismatch")
        # Python floats for scalar outputs, read before any object is made
        from_double = _address(_API.PyFloat_FromDouble)
        floats = {}
        for k, (_shape, dtype, as_float) in enumerate(outputs):
            if as_float:
                v = field("%cells", 8 * (n_in + k), "double" if dtype == "float64" else "float")
                if dtype != "float64":
                    wide = w.t()
                    w.emit(f"  {wide} = fpext float {v} to double")
                    v = wide
                floats[k] = v

        def leaf(k: int) -> str:
            if k in floats:
                r = w.t()
                w.emit(f"  {r} = call ptr {addr(from_double)}(double {floats[k]})")
                return r
            # each array output appears once in the result (checked by the caller)
            return field("%made", 8 * k, "ptr")

        w.count_and_return(counter, w.build_tree(layout, structure, leaf))

        def release() -> None:
            decref = _address(_API.Py_DecRef)
            for k in range(n_out):
                w.emit(f"  call void {addr(decref)}(ptr {field('%made', 8 * k, 'ptr')})")  # Py_XDECREF

        w.emit("nomemory:")
        release()
        w.emit("  ret ptr null")
        w.emit("mismatch:")
        release()
        w.emit("  br label %slow")
        w.emit("slow:")
        w.call_slow(slow)
        return w.function(globals_)
