"""The signature cache: the one place that decides whether a call can reuse
compiled code.  It owns the key (the input signature, static arguments by
value), the least-recently-used order of traces, their guards, the function
watch, the fast paths for a repeated signature and the native dispatchers of
transform calls (all Python floats, or numpy arrays and Python floats as
positional arguments).  ``dlaccelerate`` and the transforms both call through
a :class:`SignatureCache`.

Every path that answers a call from a cached trace goes through the same
checks: the watch (has the function changed?), the signature (would this
call get the same key?) and the guards (did Python control flow read the
same values, bit for bit?).  The fast paths only skip recomputing the key
when the arguments are of kinds whose key they can check directly.

The first fast path of any call (:meth:`SignatureCache.call_fast`) is a
matcher generated for the last signature (:mod:`~symdl.compiler.fastcall`):
straight-line checks of containers, dict keys in order, leaf types, shapes,
dtypes, formats and static values that accept exactly the calls the key
would accept, with no flattening and no key; the output structure is rebuilt
by generated code too.  ``_Fast`` below remains the path of positional
floats and arrays, and the way to the native dispatchers.
"""

from __future__ import annotations

import ctypes
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..tree import Treedef, tree_flatten
from .fastcall import MAX_LEAVES, MISS, make_matcher, make_runner
from .pipeline import build_artifact, debug, gc_paused
from .keys import FLOAT_PART, ByIdentity, Unkeyable, signature_key, unkeyable_error
from .trace import Program, leaf_array, trace_program
from .watch import FunctionWatch

__all__ = ["SignatureCache", "CacheAttributes", "calls_through_entry", "MISS"]


# ---------------------------------------------------------------- traces

class Trace:
    """One cached trace: the program and its native entry."""

    __slots__ = ("program", "artifact", "entry", "scalar", "matchers", "no_matcher", "_runner")

    def __init__(self, program: Program, artifact):
        self.program = program
        self.artifact = artifact
        self.entry = artifact.entry()
        self.matchers: list[tuple[bool, Callable]] = []  # (traced, match) of calls seen, newest first
        self.no_matcher = 0  # calls that could not have one (see _Structured)
        self._runner: Callable | None = None
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

    def runner(self) -> Callable:
        """``run(arrays)``: :meth:`run` for a later call (not the first after
        tracing), with the output structure rebuilt by generated code; the
        result, or :data:`MISS` when a guard fails."""
        if self._runner is None:
            self._runner = make_runner(self.program, self.entry)
        return self._runner


class _Structured:
    """The last call's signature as a generated matcher (see
    :mod:`~symdl.compiler.fastcall`): containers, leaf types, shapes,
    dtypes, formats and static values checked in straight-line code, for
    any arguments (dicts of dlarrays, None, numbers), with the watch that
    was current when the call was answered by ``trace``: a function changed
    since is a miss even if another thread has traced it again meanwhile."""

    __slots__ = ("match", "traced", "trace", "watch", "run")

    def __init__(self, match, traced, trace, watch, run):
        self.match, self.traced, self.trace, self.watch, self.run = match, traced, trace, watch, run


def _floats_match(values, specs) -> bool:
    return all(type(v) is float for v in values)


def _arrays_match(values, specs) -> bool:
    return all(type(v) is np.ndarray and v.shape == s and v.dtype == d for v, (s, d) in zip(values, specs))


def _dlarrays_match(values, specs) -> bool:
    return all(type(v) is dlarray and v._value.shape == s and v._value.dtype == d and v._fmt == f
               for v, (s, d, f) in zip(values, specs))


def _values(values) -> list:
    return [v._value for v in values]


def _mixed_match(values, specs) -> bool:
    return all(type(v) is float if s is None else (type(v) is np.ndarray and v.shape == s[0] and v.dtype == s[1])
               for v, s in zip(values, specs))


def _mixed_arrays(values) -> list:
    return [leaf_array(v) if type(v) is float else v for v in values]


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
    "mixed": (_mixed_match, _mixed_arrays),  # Python floats and numpy arrays
}


def _fast_kind(key: tuple, leaves: list, trace: Trace, out_wrap: str) -> tuple[str, tuple] | None:
    parts = key[1]
    if not parts:
        return None
    if all(p is FLOAT_PART for p in parts) and trace.scalar and out_wrap == "match":
        return "floats", ()
    if all(p[0] == "A" for p in parts) and all(type(x) is np.ndarray for x in leaves):
        return "arrays", tuple((x.shape, x.dtype) for x in leaves)
    if all(p[0] == "D" for p in parts) and all(type(x) is dlarray for x in leaves):
        return "dlarrays", tuple((x._value.shape, x._value.dtype, x._fmt) for x in leaves)
    if all(p is FLOAT_PART or p[0] == "A" for p in parts) \
            and all(type(x) is float or type(x) is np.ndarray for x in leaves):
        return "mixed", tuple(None if type(x) is float else (x.shape, x.dtype) for x in leaves)
    return None


# ---------------------------------------------------------------- the cache

class CacheAttributes:
    """MATLAB's cache attributes of an object that calls through a
    :class:`SignatureCache` held in ``self._cache`` (``dlaccelerate`` and
    the transforms)."""

    __slots__ = ()

    @property
    def cache_size(self) -> int:
        """The most traces kept (50 by default), least recently used out first."""
        return self._cache.cache_size

    @cache_size.setter
    def cache_size(self, value: int) -> None:
        self._cache.cache_size = value

    @property
    def n_traces(self) -> int:
        """Traces in the cache."""
        return self._cache.n_traces

    @property
    def hit_rate(self) -> float:
        """Percent of calls that reused a cached trace (native calls included)."""
        return self._cache.hit_rate

    @property
    def occupancy(self) -> float:
        """Percent of ``cache_size`` in use (one trace of 50 is 2)."""
        return self._cache.occupancy

    def clear_cache(self) -> None:
        """Forget every trace, every fast path and the native dispatcher
        (statistics restart too).

        Example:
            >>> import symdl
            >>> g = symdl.grad(lambda x: x ** 3)
            >>> g(2.0), g(2.0), g.hit_rate, g.occupancy
            (12.0, 12.0, 50.0, 2.0)
            >>> g.clear_cache()
            >>> g.hit_rate, g.occupancy
            (0.0, 0.0)
        """
        self._cache.clear()


class SignatureCache:
    """Cached traces of ``function`` per input signature, least recently used
    first out.  ``is_input`` decides which argument leaves are array inputs
    (the rest are static, keyed by value); ``out_wrap`` and ``gradients`` are
    passed to the tracer; ``where`` names the caller in error messages.

    ``entry`` is the callable a transform's call is forwarded to: the Python
    path given as ``python_entry``, or the native dispatcher of the last
    all-float or positional-ndarray signature once it has been seen twice
    (built once per trace and kept, so alternating signatures do not
    compile again).

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
        self._structured: _Structured | None = None
        self._native = None  # (dispatcher, trace, hit counter) of the installed native dispatcher
        self._native_seen = 0
        self._native_tried: Trace | None = None
        self._made: dict[Trace, Any] = {}  # native dispatchers built per trace (None: cannot be), reused
        self._statics: dict[ByIdentity, Any] = {}  # functions passed as static arguments: watched too
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
            if self._structured is not None and self._structured.trace is gone:
                self._structured = None
            if self._native is not None and self._native[1] is gone:
                self._drop_native()
            self._made.pop(gone, None)
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

    def call_fast(self, args: tuple, kwargs: dict, traced: bool) -> Any:
        """The last signature again, for any arguments a generated matcher
        covers: the result, or :data:`MISS` (then take :meth:`call`).  No
        flattening, no key: the matcher checks structure, types, shapes,
        dtypes, formats and static values; then the watch, the guards."""
        fast = self._structured
        if fast is None or fast.traced is not traced or self.check is not None:
            return MISS
        arrays = fast.match(args, kwargs)
        if arrays is None or fast.watch.changed():
            return MISS
        if self._native is not None:
            self._sync_native()  # its hits happened before this call (recency)
        result = fast.run(arrays)
        if result is MISS:  # a guard failed: the full path finds (or makes) the trace
            return MISS
        self._hit(fast.trace)
        return result

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
        if self._native_tried is not trace and self._python_entry is not None \
                and (arrays is None or (fast.kind in ("arrays", "mixed") and fast.positional)):
            self._install_native(trace, fast)  # the same signature twice: worth native code
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
                structured = self._structured
                if structured is None or structured.trace is not fast.trace or structured.traced is not traced \
                        or structured.match(args, kwargs) is None:
                    # a matcher made stale (by a container registered since) or for another
                    # signature: the next call of this one should not need the flattening
                    with self._lock:
                        self._structured = self._structured_for(fast.trace, args, kwargs, leaves, traced)
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
        self._remember(key, leaves, args, kwargs, trace, fresh=True)
        return result

    def _trace(self, args, kwargs, traced: bool, found: list) -> Trace:
        allowed = traced if self._gradients is None else self._gradients
        with gc_paused():
            program, _ = trace_program(self.function, args, kwargs, self._is_input, gradients_allowed=allowed,
                                       out_wrap=self._out_wrap, lazy_values=self._out_wrap == "match")
            # What the function reads is judged against the state after this run:
            # its own side effects while tracing (a call counter) are not edits.
            for fn in found:
                self._statics.setdefault(ByIdentity(fn), fn)
            old = self._watch.probes
            self._watch = FunctionWatch(self.function, self._statics.values())
            self._drop_native()  # its probes are those of the old watch
            if not _same_probes(old, self._watch.probes):
                self._made.clear()  # built dispatchers check the old watch
            artifact, outputs = build_artifact(program.inputs, program.graph_outputs)
        n = len(program.array_outputs)
        program.array_outputs, program.guard_nodes = outputs[:n], outputs[n:]
        return Trace(program, artifact)

    def _remember(self, key, leaves, args, kwargs, trace: Trace, fresh: bool = False) -> None:
        if not fresh:
            # a matcher costs about a millisecond to make: only for a signature seen twice
            # (a fresh trace keeps the previous one, still right for its own signature)
            self._structured = self._structured_for(trace, args, kwargs, leaves, key[2])
        kind = _fast_kind(key, leaves, trace, self._out_wrap)
        if kind is None:
            return  # the previous fast path stays: it is still right for its own signature
        positional = not kwargs and len(leaves) == len(args) and all(a is x for a, x in zip(args, leaves))
        self._fast = _Fast(kind[0], leaves, kind[1], key[0], key[2], positional, trace)

    def _structured_for(self, trace: Trace, args, kwargs, leaves, traced: bool) -> _Structured | None:
        """The matcher of this call's signature for ``trace``: one built
        before (kept per trace, so alternating signatures build none
        again), or a new one; None when the call has none."""
        for seen, match in trace.matchers:
            if seen is traced and match(args, kwargs) is not None:
                return _Structured(match, traced, trace, self._watch, trace.runner())
        if trace.no_matcher >= 4 or len(leaves) > MAX_LEAVES:
            return None  # calls of this trace hold what no matcher checks: stop trying
        match = make_matcher(args, kwargs, leaves, self._is_input)
        if match is None:
            trace.no_matcher += 1
            return None
        trace.matchers = [(traced, match), *trace.matchers[:3]]
        return _Structured(match, traced, trace, self._watch, trace.runner())

    # ------------------------------------------------------------ the native dispatcher
    def _install_native(self, trace: Trace, fast: _Fast) -> None:
        with self._lock:
            if self._native_tried is trace:
                return
            self._drop_native()
            self._native_tried = trace
            # Built once per trace and kept: calls alternating between two
            # signatures swap dispatchers without compiling again.
            made = self._made.get(trace, MISS)
            if made is MISS:
                if fast.kind == "floats":
                    made = _native_dispatcher(trace, self._watch.probes, self._python_entry)
                else:
                    made = _array_dispatcher(trace, fast, self._watch.probes, self._python_entry)
                self._made[trace] = made
            if made is None:
                return
            self._native, self._native_seen = (made[0], trace, made[1]), made[1].value
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
        self.restore(state["traces"], state["calls"], state["hits"])

    def restore(self, traces: list, calls: int, hits: int) -> None:
        """Add pickled ``(key, program, artifact)`` traces and the statistics."""
        for key, program, artifact in traces:
            self._add(key, Trace(program, artifact))
        self._calls, self._hits = calls, hits


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


def _same_probes(a: list, b: list) -> bool:
    """Whether two watches check the same things against the same objects."""
    return len(a) == len(b) and all(
        len(p) == len(q) and all(x is y for x, y in zip(p, q)) for p, q in zip(a, b))


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


def _array_structure(program, n_out: int):
    """(structure, wraps) for the array dispatcher: the output tree as
    output indices, and each output's wrap on the Python path (``float``:
    a 0-d result comes back as a Python float); None when
    the result holds anything else (dlarrays, static values) or does not
    use each output exactly once."""
    structure = _structure(program)
    if structure is None:
        return None
    wraps = {slot[1]: slot[3] for slot in program.out_slots}
    leaves = _leaves_of(structure)
    if sorted(leaves) != list(range(n_out)) or any(w not in ("ndarray", "float") for w in wraps.values()):
        return None
    return structure, wraps


def _leaves_of(tree) -> list[int]:
    return [tree] if isinstance(tree, int) else [k for sub in tree for k in _leaves_of(sub)]


def _array_dispatcher(trace: Trace, fast: _Fast, probes: list, slow: Callable):
    """(dispatcher, hit counter) for a trace called with numpy arrays (and
    Python floats) as positional arguments, or None when the trace or the
    watch is not one native code can check (guards, random numbers, dtypes
    other than float32/float64, results other than arrays and floats in
    tuples)."""
    from codegen import llvm, pyentry
    entry, program = trace.entry, trace.program
    if not pyentry.arrays_available() or program.guard_nodes or program.uses_rng \
            or not _probes_supported(probes):
        return None
    names = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}
    if any(d not in names for _, d in entry.in_specs + entry.out_specs):
        return None
    found = _array_structure(program, len(entry.out_specs))
    if found is None:
        return None
    structure, wraps = found
    outputs = []
    for k, (shape, dtype) in enumerate(entry.out_specs):
        as_float = wraps[k] == "float" and shape == ()  # the Python path's value.item()
        outputs.append((shape, names[dtype], as_float))
    if len(fast.specs) != len(entry.in_specs):
        return None
    inputs = []
    for spec, (shape, dtype) in zip(fast.specs, entry.in_specs):
        if spec is None:  # a Python float: a float64 scalar of the entry
            if shape != () or dtype != np.float64:
                return None
            inputs.append(None)
        elif spec[0] != shape or spec[1] != dtype:
            return None  # converted on the Python path (an integer array): not native
        else:
            inputs.append((shape, names[dtype]))
    workspace = np.empty(entry.workspace_bytes + 64, dtype=np.uint8)  # its own (see ArrayDispatcher)
    base = workspace.ctypes.data
    counter = ctypes.c_int64(0)
    dispatcher = pyentry.ArrayDispatcher(
        ctypes.cast(entry._plain_fn, ctypes.c_void_p).value, inputs, outputs, base + (-base % 64), structure,
        list(probes), slow, counter, llvm.host_target(), keep=(trace, workspace))
    return dispatcher, counter


_FORWARDING: list[type] = []  # classes whose instances call ``self._cache.entry``
_FORWARDING_NATIVE: set[type] = set()


def calls_through_entry(cls: type) -> type:
    """Class decorator: calling an instance calls ``self._cache.entry`` (a
    :class:`SignatureCache`'s current entry).  In Python at first; once any
    native dispatcher exists, by a native ``__call__`` (one C hop), so a
    transform's cached all-float call stays about a tenth of a microsecond.
    The class needs a ``_cache`` slot, and a ``_call_keywords(*args,
    **kwargs)`` method for calls with keyword arguments."""
    def __call__(self, *args, **kwargs):
        if kwargs:
            return self._call_keywords(*args, **kwargs)
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
        descriptor = pyentry.forwarding_call(cls, (outer, inner), keywords=getattr(cls, "_call_keywords", None))
        if descriptor is not None:
            cls.__call__ = descriptor
