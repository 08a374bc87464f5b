"""The signature cache: the one place that decides whether a call can reuse
compiled code.  It owns the key (the input signature, static arguments by
value), the least-recently-used order of traces, their guards, the function
watch, the fast paths for a repeated signature and the native dispatcher of
all-float transform calls.  ``dlaccelerate`` and the transforms both call
through a :class:`SignatureCache`.

Every path that answers a call from a cached trace goes through the same
checks: the watch (has the function changed?), the signature (would this
call get the same key?) and the guards (did Python control flow read the
same values, bit for bit?).  The fast paths only skip recomputing the key
when the arguments are of kinds whose key they can check directly.
"""

from __future__ import annotations

import ctypes
import enum
import math
import struct
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..tree import Treedef, tree_flatten
from .pipeline import build_artifact, debug, gc_paused
from .trace import Program, leaf_array, trace_program

__all__ = ["SignatureCache", "FunctionWatch", "signature_key", "static_key", "calls_through_entry", "MISS"]

MISS = object()  # a fast path had no answer; take the full path


# ---------------------------------------------------------------- keys

class _Same:
    """Identity as a key, holding the object so that its address is never
    reused while the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __eq__(self, other):
        return type(other) is _Same and other.obj is self.obj

    def __hash__(self):
        return id(self.obj)

    def __repr__(self):
        return f"<{getattr(self.obj, '__qualname__', type(self.obj).__name__)}>"


class Unkeyable(TypeError):
    """A static argument (or something inside it) has no value to key by."""

    def __init__(self, value: Any, leaf: int = -1):
        super().__init__(type(value).__name__)
        self.value, self.leaf = value, leaf


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _key_items(values, found: list) -> tuple:
    return tuple(static_key(v, found) for v in values)


_KEY_RULES: dict[type, Callable[[Any, list], Any]] = {
    type(None): lambda v, found: None,
    bool: lambda v, found: ("bool", v),
    int: lambda v, found: ("int", v),
    str: lambda v, found: ("str", v),
    bytes: lambda v, found: ("bytes", v),
    type(Ellipsis): lambda v, found: ("...",),
    float: lambda v, found: ("float", _bits(v)),  # 0.0 and -0.0 differ; a NaN is its bits
    complex: lambda v, found: ("complex", _bits(v.real), _bits(v.imag)),
    tuple: lambda v, found: ("tuple", _key_items(v, found)),
    list: lambda v, found: ("list", _key_items(v, found)),
    dict: lambda v, found: ("dict", _key_items(v.keys(), found), _key_items(v.values(), found)),
    set: lambda v, found: ("set", frozenset(_key_items(v, found))),
    frozenset: lambda v, found: ("frozenset", frozenset(_key_items(v, found))),
    range: lambda v, found: ("range", v.start, v.stop, v.step),
    slice: lambda v, found: ("slice", _key_items((v.start, v.stop, v.step), found)),
}


def _ndarray_key(a: np.ndarray, found: list) -> tuple:
    if a.dtype.hasobject:
        return ("ndarray", "object", a.shape, _key_items(a.flat, found))
    return ("ndarray", a.dtype.str, a.shape, np.ascontiguousarray(a).tobytes())


def _has_value_semantics(t: type) -> bool:
    return t.__eq__ is not object.__eq__ and t.__hash__ is not None and t.__hash__ is not object.__hash__


def static_key(value: Any, found: list | None = None) -> Any:
    """A hashable key for a static (non-array) argument, by value (SPEC §9.3).

    Numbers by type and bits, containers by contents, numpy arrays by dtype,
    shape and bytes, enum members by member.  Functions, bound methods,
    builtins, ufuncs, classes and modules are keyed by identity (the key
    holds them, so the identity stays theirs); functions and bound methods go
    to ``found`` so that the cache watches their code, closures and object as
    it watches ``fun``'s.  Objects whose type compares by value (``__eq__``
    and ``__hash__``: fractions, SymPy expressions) are keyed by that value.
    Anything else (an object that compares by identity, a callable object
    whose state could change unseen) raises :class:`Unkeyable`.

    Example:
        >>> static_key(0.0) == static_key(-0.0)
        False
        >>> static_key({1.0, 2.0}) == static_key({2.0, 1.0})
        True
    """
    found = [] if found is None else found
    rule = _KEY_RULES.get(type(value))
    if rule is not None:
        return rule(value, found)
    if isinstance(value, np.ndarray):
        return _ndarray_key(value, found)
    if isinstance(value, np.generic):
        return ("numpy", value.dtype.str, value.tobytes()) if value.dtype.kind != "O" else static_key(value.item())
    if isinstance(value, enum.Enum):
        return ("enum", _Same(type(value)), value.name)
    if isinstance(value, types.FunctionType):
        found.append(value)  # user code: watched as fun is
        return ("function", _Same(value))
    if isinstance(value, types.MethodType):
        found.append(value)  # and a bound method's object, as for fun
        return ("method", _Same(value.__self__), _Same(value.__func__))
    if isinstance(value, _FIXED_CALLABLES):
        return ("object", _Same(value))  # builtins, ufuncs, classes, modules: fixed once made
    if _has_value_semantics(type(value)):
        return ("value", _Same(type(value)), value)
    raise Unkeyable(value)


_FIXED_CALLABLES = (types.BuiltinFunctionType, types.BuiltinMethodType, np.ufunc, type, types.ModuleType)


_FLOAT_PART = ("F", (), np.dtype(np.float64).str, None)  # a Python float input (scalar results come back as floats)


def _input_part(x) -> tuple:
    if type(x) is float:
        return _FLOAT_PART
    if isinstance(x, dlarray):
        return ("D", x._value.shape, x._value.dtype.str, x._fmt)
    arr = leaf_array(x)
    return ("A", arr.shape, arr.dtype.str, None)


def signature_key(leaves: list, treedef: Treedef, is_input: Callable, traced: bool,
                  found: list | None = None) -> tuple:
    """The input signature: structure, each input's kind, shape, dtype and
    fmt, each static leaf's value (see :func:`static_key`), traced-ness."""
    parts = []
    for k, x in enumerate(leaves):
        if is_input(x):
            parts.append(_input_part(x))
            continue
        try:
            parts.append(("S", static_key(x, found)))
        except Unkeyable as err:
            raise Unkeyable(err.value, k) from None
    return (treedef, tuple(parts), traced)


def unkeyable_error(where: str, err: Unkeyable, args: tuple, kwargs: dict) -> TypeError:
    """The TypeError for a static argument that has no value to key by."""
    label, outer = _argument_of_leaf(args, kwargs, err.leaf)
    inner = type(err.value).__name__
    what = f"{inner} compares" if outer is err.value else f"it holds a {inner}, which compares"
    return TypeError(
        f"{where}: {label} (a {type(outer).__name__}) is static, so the cache of compiled traces keys it by "
        f"value, but {what} by identity (no __eq__ and __hash__ of its own). Pass arrays as arrays, give "
        f"{inner} __eq__ and __hash__ that compare by value, or let fun read the object from a closure "
        f"instead (its attributes are then frozen into each trace)")


def _argument_of_leaf(args: tuple, kwargs: dict, leaf: int) -> tuple[str, Any]:
    """'argument k' or "keyword argument 'name'" holding flat leaf ``leaf``."""
    start = 0
    named = [(f"argument {k}", a) for k, a in enumerate(args)] + \
        [(f"keyword argument {name!r}", v) for name, v in kwargs.items()]
    for label, value in named:
        n = len(tree_flatten(value)[0])
        if start <= leaf < start + n:
            return label, value
        start += n
    return f"argument {leaf}", None


# ---------------------------------------------------------------- the function watch

_LIBRARY_MODULES = ("symdl", "codegen", "numpy", "scipy", "sympy", "builtins", "math")
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_MISSING = object()


def _is_library(fn) -> bool:
    module = getattr(fn, "__module__", "") or ""
    return module.split(".")[0] in _LIBRARY_MODULES


def _same_scalar(now, expected) -> bool:
    """Equal Python scalars of one type; floats also by sign (0.0 vs -0.0)."""
    if type(now) is not type(expected) or type(now) not in _SCALARS or now != expected:
        return False
    return type(now) is not float or math.copysign(1.0, now) == math.copysign(1.0, expected)


class FunctionWatch:
    """What a trace of a function depends on besides its arguments: the code
    objects, defaults, closure cells and global names of the function and of
    the user functions it reaches (depth 3), and the attributes of the object
    of a bound method it reaches.  ``changed()`` is a flat list of identity
    checks, cheap enough for every call.  Library functions (symdl, numpy,
    ...) are not followed, but the user functions that symdl's own wrappers
    (the transforms) hold are.  ``extra``: more callables to watch the same
    way (functions passed as static arguments).

    Example:
        >>> namespace = {"scale": 2.0}
        >>> exec("def f(x):\\n    return scale * x", namespace)   # a user function reading a global
        >>> watch = FunctionWatch(namespace["f"])
        >>> watch.changed()
        False
        >>> namespace["scale"] = -2.0
        >>> watch.changed()
        True
    """

    def __init__(self, fn: Callable, extra=()):
        self.probes: list[tuple] = []
        self._seen: set[int] = set()
        self._watch(fn, 0)
        for other in extra:
            self._follow(other, 0)

    def _watch(self, fn: Callable, depth: int) -> None:
        owner = getattr(fn, "__self__", None)
        if owner is not None and hasattr(owner, "__dict__") and not isinstance(owner, types.ModuleType):
            for name, value in vars(owner).items():  # a bound method reads its object's state
                self._probe("item", vars(owner), name, value)
        fn = getattr(fn, "__func__", fn)
        code = getattr(fn, "__code__", None)
        if code is None or id(fn) in self._seen or depth > 3:
            return
        self._seen.add(id(fn))
        if _is_library(fn):
            # symdl's own wrappers (the transforms) are fixed once made: only
            # the user functions they hold are watched
            for cell in fn.__closure__ or ():
                try:
                    self._follow(cell.cell_contents, depth)
                except ValueError:
                    continue
            return
        self.probes.append(("attr", fn, "__code__", code))
        self.probes.append(("attr", fn, "__defaults__", fn.__defaults__))
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            self._probe("attr", cell, "cell_contents", value)
            self._follow(value, depth)
        glb = fn.__globals__
        for name in code.co_names:
            value = glb.get(name, _MISSING)
            if value is _MISSING or isinstance(value, types.ModuleType):
                continue
            self._probe("item", glb, name, value)
            self._follow(value, depth)

    def _probe(self, kind: str, obj, key, value, depth: int = 0) -> None:
        self.probes.append((kind, obj, key, value))
        if isinstance(value, np.ndarray):  # contents may change in place
            self.probes.append(("array", value, None, value.copy()))
        elif isinstance(value, dlarray):
            self.probes.append(("attr", value, "_value", value._value))
        elif depth < 2 and isinstance(value, (dict, list)) and len(value) <= 64:
            # a configuration dict or list read by the function, one level deep
            self.probes.append(("len", value, None, len(value)))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                self._probe("item" if isinstance(value, dict) else "index", value, k, v, depth + 1)

    def _follow(self, value, depth: int) -> None:
        if isinstance(value, types.MethodType) and not _is_library(value.__func__):
            self._watch(value, depth + 1)  # a bound method: its object's attributes too
        elif isinstance(value, types.FunctionType) and not _is_library(value):
            self._watch(value, depth + 1)

    def changed(self) -> bool:
        for kind, obj, key, expected in self.probes:
            if kind == "array":
                if obj.shape != expected.shape or not np.array_equal(obj, expected, equal_nan=True):
                    return True
                continue
            if kind == "len":
                if len(obj) != expected:
                    return True
                continue
            if kind == "attr":
                now = getattr(obj, key, _MISSING)
            elif kind == "index":
                now = obj[key] if key < len(obj) else _MISSING
            else:
                now = obj.get(key, _MISSING)
            if now is not expected and not _same_scalar(now, expected):
                return True
        return False


# ---------------------------------------------------------------- traces

class Trace:
    """One cached trace: the program and its native entry."""

    __slots__ = ("program", "artifact", "entry", "scalar")

    def __init__(self, program: Program, artifact):
        self.program = program
        self.artifact = artifact
        self.entry = artifact.entry()
        # Python numbers in, Python numbers out, no arrays: the fast path of
        # small scalar functions (no guards or random keys to manage).
        self.scalar = self.entry.all_scalar and not program.guard_nodes and not program.uses_rng \
            and all(slot[0] == "array" and slot[3] == "float" for slot in program.out_slots)

    def run_scalars(self, values) -> Any:
        return self.program.assemble_scalars(self.entry.call_scalars(values))

    def run(self, arrays: list[np.ndarray], first: bool = False) -> tuple[Any, Any]:
        """(outputs, the random key used), outputs None when a guard fails
        (the trace took another branch)."""
        call = self.program.call_arrays(arrays, first)
        outs = self.entry(*call)
        n = len(self.program.array_outputs)
        key = call[-1] if self.program.uses_rng else None
        if not self.program.guards_hold(outs[n:]):
            return None, key
        return self.program.assemble(outs[:n]), key


def _floats_match(values, specs) -> bool:
    return all(type(v) is float for v in values)


def _arrays_match(values, specs) -> bool:
    return all(type(v) is np.ndarray and v.shape == s and v.dtype == d for v, (s, d) in zip(values, specs))


def _dlarrays_match(values, specs) -> bool:
    return all(type(v) is dlarray and v._value.shape == s and v._value.dtype == d and v._fmt == f
               for v, (s, d, f) in zip(values, specs))


def _values(values) -> list:
    return [v._value for v in values]


class _Fast:
    """The signature of the last call, in a form checked without computing
    a key: every leaf an input of one kind (so input-ness and the key follow
    from type, shape and dtype alone).  ``positional``: the leaves were the
    call's positional arguments."""

    __slots__ = ("kind", "n", "specs", "treedef", "traced", "positional", "trace")

    def __init__(self, kind, leaves, specs, treedef, traced, positional, trace):
        self.kind, self.n, self.specs, self.treedef = kind, len(leaves), specs, treedef
        self.traced, self.positional, self.trace = traced, positional, trace


_FAST_KINDS = {  # kind -> (argument check, arrays for the native call)
    "floats": (_floats_match, None),
    "arrays": (_arrays_match, list),
    "dlarrays": (_dlarrays_match, _values),
}


def _fast_kind(key: tuple, leaves: list, trace: Trace, out_wrap: str) -> tuple[str, tuple] | None:
    parts = key[1]
    if not parts:
        return None
    if all(p is _FLOAT_PART for p in parts) and trace.scalar and out_wrap == "match":
        return "floats", ()
    if all(p[0] == "A" for p in parts) and all(type(x) is np.ndarray for x in leaves):
        return "arrays", tuple((x.shape, x.dtype) for x in leaves)
    if all(p[0] == "D" for p in parts) and all(type(x) is dlarray for x in leaves):
        return "dlarrays", tuple((x._value.shape, x._value.dtype, x._fmt) for x in leaves)
    return None


# ---------------------------------------------------------------- the cache

class SignatureCache:
    """Cached traces of ``function`` per input signature, least recently used
    first out.  ``is_input`` decides which argument leaves are array inputs
    (the rest are static, keyed by value); ``out_wrap`` and ``gradients`` are
    passed to the tracer; ``where`` names the caller in error messages.

    ``entry`` is the callable a transform's call is forwarded to: the Python
    path given as ``python_entry``, or the native dispatcher of the last
    all-float signature once it has been seen twice.

    Example:
        >>> import symdl
        >>> from symdl.compiler.trace import is_dlarray_leaf
        >>> cache = SignatureCache(lambda x, n: x * n, 2, is_input=is_dlarray_leaf)
        >>> x = symdl.dlarray(2.0)
        >>> [float(cache.call((x, n), {})) for n in (1, 2, 1, 3, 1)]
        [2.0, 4.0, 2.0, 6.0, 2.0]
        >>> cache.hit_rate, cache.n_traces
        (40.0, 2)
    """

    __slots__ = ("entry", "__dict__", "__weakref__")

    def __init__(self, function: Callable, cache_size: int = 50, *, is_input: Callable, out_wrap: str = "auto",
                 gradients: bool | None = None, where: str = "dlaccelerate", python_entry: Callable | None = None):
        self.function = function
        self.cache_size = cache_size
        self.check: Callable | None = None  # check(result, args, kwargs, traced, rng_key) on every reuse
        self._is_input, self._out_wrap, self._gradients, self._where = is_input, out_wrap, gradients, where
        self._python_entry = python_entry
        self.entry = python_entry
        self._lock = threading.RLock()
        self._init_state()

    def _init_state(self) -> None:
        self._traces: OrderedDict[Trace, tuple] = OrderedDict()  # least recently used first
        self._by_key: dict[tuple, list[Trace]] = {}
        self._mru: Trace | None = None
        self._calls = self._hits = 0
        self._fast: _Fast | None = None
        self._native = None  # (dispatcher, trace, hit counter) of the all-float dispatcher
        self._native_seen = 0
        self._native_tried: Trace | None = None
        self._statics: dict[int, Any] = {}  # functions passed as static arguments: watched too
        self._watch = FunctionWatch(self.function)

    # ------------------------------------------------------------ statistics
    @property
    def cache_size(self) -> int:
        return self._cache_size

    @cache_size.setter
    def cache_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{getattr(self, '_where', 'dlaccelerate')}: cache_size must be a positive integer, "
                             f"got {value!r}")
        self._cache_size = int(value)
        if hasattr(self, "_traces"):
            with self._lock:
                self._evict()

    @property
    def n_traces(self) -> int:
        return len(self._traces)

    @property
    def hit_rate(self) -> float:
        """Percent of calls that reused a cached trace."""
        self._sync_native()
        return 100.0 * self._hits / self._calls if self._calls else 0.0

    @property
    def occupancy(self) -> float:
        """Percent of ``cache_size`` in use."""
        return 100.0 * self.n_traces / self.cache_size

    def clear(self) -> None:
        """Forget every trace and every fast path; statistics restart."""
        with self._lock:
            self._drop_native()
            self._init_state()

    # ------------------------------------------------------------ bookkeeping
    def _sync_native(self) -> None:
        """Count the native dispatcher's hits and give its trace their
        recency: they all happened after the last Python-side call."""
        native = self._native
        if native is None:
            return
        count = native[2].value
        if count != self._native_seen:
            new = count - self._native_seen
            self._native_seen = count
            self._calls += new
            self._hits += new
            self._touch(native[1])

    def _touch(self, trace: Trace) -> None:
        if self._mru is not trace:
            try:
                self._traces.move_to_end(trace)
            except KeyError:  # evicted by another thread meanwhile: nothing to order
                return
            self._mru = trace

    def _hit(self, trace: Trace) -> None:
        self._calls += 1
        self._hits += 1
        self._touch(trace)

    def _add(self, key: tuple, trace: Trace) -> None:
        self._by_key.setdefault(key, []).append(trace)
        self._traces[trace] = key
        self._mru = trace
        self._evict()

    def _evict(self) -> None:
        self._sync_native()
        while len(self._traces) > self._cache_size:
            gone, key = self._traces.popitem(last=False)
            traces = self._by_key[key]
            traces.remove(gone)
            if not traces:
                del self._by_key[key]
            if self._fast is not None and self._fast.trace is gone:
                self._fast = None
            if self._native is not None and self._native[1] is gone:
                self._drop_native()
            if self._mru is gone:
                self._mru = None

    def _forget(self) -> None:
        """The function changed: no trace is valid any more."""
        self._drop_native()
        calls, hits = self._calls, self._hits
        self._init_state()
        self._calls, self._hits = calls, hits

    def _drop_native(self) -> None:
        self._sync_native()
        self._native = None
        self._native_tried = None
        self.entry = self._python_entry

    # ------------------------------------------------------------ calling
    def fast_positional(self, args: tuple) -> Any:
        """The last signature again, for positional floats or numpy arrays
        (the transforms' common calls): the result, or :data:`MISS`."""
        fast = self._fast
        if fast is None or not fast.positional or fast.n != len(args) or fast.kind == "dlarrays":
            return MISS
        return self._run_fast(fast, args)

    def _run_fast(self, fast: _Fast, values) -> Any:
        match, arrays = _FAST_KINDS[fast.kind]
        if not match(values, fast.specs) or self.check is not None:
            return MISS
        self._sync_native()
        if self._watch.changed():
            return MISS
        trace = fast.trace
        if arrays is None:
            result = trace.run_scalars(values)
        else:
            result, _ = trace.run(arrays(values))
            if result is None:  # a guard failed: the full path finds (or makes) the trace
                return MISS
        self._hit(trace)
        if arrays is None and self._native_tried is not trace and self._python_entry is not None:
            self._install_native(trace)  # the same all-float signature twice: worth native code
        return result

    def call(self, args: tuple, kwargs: dict, leaves: list | None = None, treedef: Treedef | None = None,
             traced: bool = False) -> Any:
        """Run the cached trace for this call, tracing and compiling on a miss."""
        if leaves is None:
            leaves, treedef = tree_flatten((args, kwargs))
        fast = self._fast
        if fast is not None and fast.n == len(leaves) and fast.traced == traced and fast.treedef == treedef:
            result = self._run_fast(fast, leaves)
            if result is not MISS:
                return result
        with self._lock:
            return self._call_locked(args, kwargs, leaves, treedef, traced)

    def _call_locked(self, args, kwargs, leaves, treedef, traced) -> Any:
        self._sync_native()
        if self._watch.changed():
            debug(f"{self._where}: the function's code, closure or globals changed; cache cleared")
            self._forget()
        found: list = []
        try:
            key = signature_key(leaves, treedef, self._is_input, traced, found)
        except Unkeyable as err:
            raise unkeyable_error(self._where, err, args, kwargs) from None
        arrays = [leaf_array(x) for x in leaves if self._is_input(x)]
        traces = self._by_key.get(key, ())
        for trace in list(traces):
            result, rng_key = trace.run(arrays)
            if result is not None:
                self._hit(trace)
                self._remember(key, leaves, args, kwargs, trace)
                if self.check is not None:
                    self.check(result, args, kwargs, traced, rng_key)
                return result
        if traces:
            debug(f"{self._where}: cache miss: a guard failed (Python control flow took another branch)")
        else:
            debug(f"{self._where}: cache miss: new input signature {key[1]!r}")
        trace = self._trace(args, kwargs, traced, found)
        self._add(key, trace)
        result, _ = trace.run(arrays, first=True)
        self._calls += 1  # counted once it has a result (a failing trace is not a call)
        if result is None:  # cannot happen for a deterministic function: guards came from this run
            raise RuntimeError(f"{self._where}: a fresh trace failed its own guards; is the function deterministic?")
        self._remember(key, leaves, args, kwargs, trace)
        return result

    def _trace(self, args, kwargs, traced: bool, found: list) -> Trace:
        allowed = traced if self._gradients is None else self._gradients
        with gc_paused():
            program, _ = trace_program(self.function, args, kwargs, self._is_input, gradients_allowed=allowed,
                                       out_wrap=self._out_wrap, lazy_values=self._out_wrap == "match")
            # What the function reads is judged against the state after this run:
            # its own side effects while tracing (a call counter) are not edits.
            for fn in found:
                self._statics.setdefault(id(fn), fn)
            self._watch = FunctionWatch(self.function, self._statics.values())
            self._drop_native()  # its probes are those of the old watch
            artifact, outputs = build_artifact(program.inputs, program.graph_outputs)
        n = len(program.array_outputs)
        program.array_outputs, program.guard_nodes = outputs[:n], outputs[n:]
        return Trace(program, artifact)

    def _remember(self, key, leaves, args, kwargs, trace: Trace) -> None:
        kind = _fast_kind(key, leaves, trace, self._out_wrap)
        if kind is None:
            return  # the previous fast path stays: it is still right for its own signature
        positional = not kwargs and len(leaves) == len(args) and all(a is x for a, x in zip(args, leaves))
        self._fast = _Fast(kind[0], leaves, kind[1], key[0], key[2], positional, trace)

    # ------------------------------------------------------------ the native dispatcher
    def _install_native(self, trace: Trace) -> None:
        with self._lock:
            if self._native_tried is trace:
                return
            self._drop_native()
            self._native_tried = trace
            made = _native_dispatcher(trace, self._watch.probes, self._python_entry)
            if made is None:
                return
            self._native, self._native_seen = (made[0], trace, made[1]), 0
            _enable_forwarding()
            self.entry = made[0].function

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        self._sync_native()
        return {"function": self.function, "cache_size": self._cache_size, "is_input": self._is_input,
                "out_wrap": self._out_wrap, "gradients": self._gradients, "where": self._where,
                "calls": self._calls, "hits": self._hits,
                "traces": [(key, t.program, t.artifact) for t, key in self._traces.items()]}

    def __setstate__(self, state):
        self.__init__(state["function"], state["cache_size"], is_input=state["is_input"],
                      out_wrap=state["out_wrap"], gradients=state["gradients"], where=state["where"])
        for key, program, artifact in state["traces"]:
            self._add(key, Trace(program, artifact))
        self._calls, self._hits = state["calls"], state["hits"]


# ---------------------------------------------------------------- native code for all-float calls

_NATIVE_PROBES = {"__code__", "__defaults__", "cell_contents"}


def _structure(program):
    """The output tree as output indices (nested tuples), or None when the
    result is not made only of tuples and array outputs."""
    slots = iter(program.out_slots)

    def walk(td):
        if td.kind == "leaf":
            slot = next(slots)
            return slot[1] if slot[0] == "array" else None
        if td.kind != "tuple":
            return None
        children = [walk(c) for c in td.children]
        return None if any(c is None for c in children) else tuple(children)

    return walk(program.out_treedef)


def _probes_supported(probes) -> bool:
    return all((kind == "attr" and key in _NATIVE_PROBES) or (kind == "item" and isinstance(obj, dict)
                                                               and type(key) is str)
               for kind, obj, key, _ in probes)


def _native_dispatcher(trace: Trace, probes: list, slow: Callable):
    """(dispatcher, hit counter) for an all-float trace, or None when the
    trace or the watch is not one native code can check."""
    from codegen import llvm, pyentry
    entry = trace.entry
    f64 = np.dtype(np.float64)
    if not pyentry.available() or not trace.scalar or not _probes_supported(probes):
        return None
    if any(d != f64 for _, d in entry.in_specs + entry.out_specs):
        return None
    structure = _structure(trace.program)
    if structure is None:
        return None
    # A workspace of its own: the Python path of any thread never shares it,
    # and the dispatcher holds the GIL for its whole run.
    workspace = np.empty(entry.workspace_bytes + 64, dtype=np.uint8)
    base = workspace.ctypes.data
    counter = ctypes.c_int64(0)
    dispatcher = pyentry.ScalarDispatcher(
        ctypes.cast(entry._plain_fn, ctypes.c_void_p).value, len(entry.in_specs), len(entry.out_specs),
        base + (-base % 64), structure, list(probes), slow, counter, llvm.host_target(),
        keep=(trace, workspace))
    return dispatcher, counter


_FORWARDING: list[type] = []  # classes whose instances call ``self._cache.entry``
_FORWARDING_NATIVE: set[type] = set()


def calls_through_entry(cls: type) -> type:
    """Class decorator: calling an instance calls ``self._cache.entry`` (a
    :class:`SignatureCache`'s current entry).  In Python at first; once any
    native dispatcher exists, by a native ``__call__`` (one C hop), so a
    transform's cached all-float call stays about a tenth of a microsecond.
    The class needs a ``_cache`` slot."""
    def __call__(self, *args):
        return self._cache.entry(*args)
    __call__.__doc__ = "Call the transformed function (compiled, cached per input signature)."
    cls.__call__ = __call__
    _FORWARDING.append(cls)
    return cls


def _enable_forwarding() -> None:
    from codegen import pyentry
    for cls in _FORWARDING:
        if cls in _FORWARDING_NATIVE:
            continue
        _FORWARDING_NATIVE.add(cls)  # tried once, whatever the outcome
        probe, marker = object.__new__(cls), object()
        probe._cache = marker
        outer = pyentry.slot_offset(probe, marker)
        holder = object.__new__(SignatureCache)
        holder.entry = marker
        inner = pyentry.slot_offset(holder, marker)
        if outer is None or inner is None:
            continue
        descriptor = pyentry.forwarding_call(cls, (outer, inner))
        if descriptor is not None:
            cls.__call__ = descriptor
