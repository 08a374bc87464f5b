"""dlaccelerate: cache traces of a function per input signature and run them
as native code."""

from __future__ import annotations

import types
import warnings
from collections import OrderedDict
from typing import Any
from collections.abc import Callable

import numpy as np

from .array import dlarray
from .backend import build_artifact, debug, gc_paused
from .core import is_traced
from .program import Program, is_dlarray_leaf, leaf_array, signature_key, trace_program
from .tracing import active_root
from .tree import flatten_call, tree_flatten

__all__ = ["dlaccelerate", "AcceleratedFunction", "AccelerationWarning", "FunctionWatch"]


class AccelerationWarning(UserWarning):
    """A reused trace gave outputs that differ from the underlying function's
    (``check_mode='tolerance'``).

    Example:
        >>> import warnings, numpy as np, symdl
        >>> acc = symdl.dlaccelerate(lambda x: x + np.random.rand())  # numpy noise is frozen
        >>> acc.check_mode = "tolerance"
        >>> _ = acc(symdl.dlarray(0.0))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = acc(symdl.dlarray(0.0))
        >>> caught[0].category is symdl.AccelerationWarning
        True
    """


class _Trace:
    """One cached trace: the program and its native entry."""

    def __init__(self, program: Program, artifact):
        self.program = program
        self.artifact = artifact
        self.entry = artifact.entry()
        # Python numbers in, Python numbers out, no arrays: the fast path of
        # small scalar functions (no guards or random keys to manage).
        self.scalar = self.entry.all_scalar and not program.guard_nodes and not program.uses_rng \
            and all(slot[0] == "array" and slot[3] == "float" for slot in program.out_slots)

    def run_scalars(self, values: list) -> Any:
        return self.program.assemble_scalars(self.entry.call_scalars(values))

    def run(self, arrays: list[np.ndarray], first: bool = False):
        """Outputs, or None when a guard fails (the trace took another branch)."""
        call = self.program.call_arrays(arrays, first)
        self.last_key = call[-1] if self.program.uses_rng else None
        outs = self.entry(*call)
        n = len(self.program.array_outputs)
        if not self.program.guards_hold(outs[n:]):
            return None
        return self.program.assemble(outs[:n])


_LIBRARY_MODULES = ("symdl", "codegen", "numpy", "scipy", "sympy", "builtins", "math")
_SCALARS = (int, float, complex, str, bytes, bool, type(None))
_MISSING = object()


def _is_library(fn) -> bool:
    module = getattr(fn, "__module__", "") or ""
    return module.split(".")[0] in _LIBRARY_MODULES


class FunctionWatch:
    """What a trace of a function depends on besides its arguments: the code
    objects, defaults, closure cells and global names of the function and of
    the user functions it reaches (depth 3).  ``changed()`` is a flat list of
    identity checks, cheap enough for every call.  Library functions (symdl,
    numpy, ...) are not followed."""

    def __init__(self, fn: Callable):
        self.probes: list[tuple] = []
        self._seen: set[int] = set()
        self._watch(fn, 0)

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
        if isinstance(value, types.FunctionType) and not _is_library(value):
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
            if now is not expected and not (type(now) in _SCALARS and type(now) is type(expected)
                                            and now == expected):
                return True
        return False


class AcceleratedFunction:
    """A function with a cache of native traces, called exactly like it.

    Attributes (as MATLAB's): ``function``, ``enabled``, ``cache_size``,
    ``hit_rate`` and ``occupancy`` (percentages), ``check_mode``
    ('none' | 'tolerance'), ``check_tolerance``; ``clear_cache()``.

    Example:
        >>> import symdl
        >>> def f(x):
        ...     y = symdl.sum(x ** 2)
        ...     return y, symdl.dlgradient(y, x)
        >>> acc = symdl.dlaccelerate(f)
        >>> y, g = symdl.dlfeval(acc, symdl.dlarray([1.0, 2.0]))
        >>> acc.occupancy
        2.0
    """

    def __init__(self, function: Callable, cache_size: int = 50, *, _inputs: Callable = is_dlarray_leaf,
                 _out_wrap: str = "auto", _gradients: bool | None = None):
        if not callable(function):
            raise TypeError(f"dlaccelerate: fun must be callable, got {type(function).__name__}")
        self.function = function
        self.enabled = True
        self.cache_size = cache_size
        self.check_mode = "none"
        self.check_tolerance = 1e-4
        self._cache: OrderedDict[tuple, list[_Trace]] = OrderedDict()
        self._calls = 0
        self._hits = 0
        self._fingerprint = FunctionWatch(function)
        self._is_input = _inputs
        self._out_wrap = _out_wrap
        self._gradients = _gradients
        self._fast = None  # (treedef, traced, trace, n) of the last all-float call
        self._fast_arrays = None  # (n, ((shape, dtype), ...), trace) of the last all-ndarray call
        self._fast_dl = None  # (treedef, traced, ((shape, dtype, fmt), ...), trace): last all-dlarray call

    # ------------------------------------------------------------ attributes
    @property
    def cache_size(self) -> int:
        return self._cache_size

    @cache_size.setter
    def cache_size(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"dlaccelerate: cache_size must be a positive integer, got {value!r}")
        self._cache_size = int(value)
        if hasattr(self, "_cache"):
            self._evict()

    @property
    def check_mode(self) -> str:
        return self._check_mode

    @check_mode.setter
    def check_mode(self, value: str) -> None:
        if value not in ("none", "tolerance"):
            raise ValueError(f"check_mode must be 'none' or 'tolerance', got {value!r}")
        self._check_mode = value

    @property
    def check_tolerance(self) -> float:
        return self._check_tolerance

    @check_tolerance.setter
    def check_tolerance(self, value: float) -> None:
        if not isinstance(value, (int, float, np.floating)) or not value >= 0:
            raise ValueError(f"check_tolerance must be a non-negative number, got {value!r}")
        self._check_tolerance = float(value)

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"enabled must be True or False, got {value!r}")
        self._enabled = bool(value)

    @property
    def n_traces(self) -> int:
        return sum(len(v) for v in self._cache.values())

    @property
    def hit_rate(self) -> float:
        """Percent of calls that reused a cached trace."""
        return 100.0 * self._hits / self._calls if self._calls else 0.0

    @property
    def occupancy(self) -> float:
        """Percent of ``cache_size`` in use (one trace of 50 is 2)."""
        return 100.0 * self.n_traces / self.cache_size

    def clear_cache(self) -> None:
        """Forget every trace (statistics restart too)."""
        self._cache.clear()
        self._fast = self._fast_arrays = self._fast_dl = None
        self._calls = self._hits = 0

    def __repr__(self) -> str:
        name = getattr(self.function, "__name__", repr(self.function))
        return (f"AcceleratedFunction(function={name}, enabled={self.enabled}, cache_size={self.cache_size}, "
                f"hit_rate={self.hit_rate:g}, occupancy={self.occupancy:g}, check_mode={self.check_mode!r}, "
                f"check_tolerance={self.check_tolerance:g})")

    # ------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self.function(*args, **kwargs)
        root = active_root()
        leaves, treedef = flatten_call(args, kwargs)
        if root is not None and any(is_traced(x) for x in leaves):
            # Inside user code under dlfeval: run the Python body so that the
            # outer trace can differentiate through it (never a silent zero).
            debug("dlaccelerate: traced call inside dlfeval runs the function body")
            return self.function(*args, **kwargs)
        return self._accelerated(args, kwargs, leaves, treedef, traced=False)

    def _dlfeval_call(self, args: tuple, kwargs: dict) -> Any:
        """``dlfeval(accfun, ...)``: a traced call, run by the cached native trace."""
        if not self.enabled:
            from .autodiff.api import dlfeval
            return dlfeval(self.function, *args, **kwargs)
        leaves, treedef = flatten_call(args, kwargs)
        return self._accelerated(args, kwargs, leaves, treedef, traced=True)

    def _accelerated(self, args, kwargs, leaves, treedef, traced: bool) -> Any:
        # (the transforms' all-float and all-ndarray fast paths run before this, in _Transform)
        if self._fingerprint.changed():
            debug("dlaccelerate: the function's code, closure or globals changed; cache cleared")
            self._cache.clear()
            self._fast = self._fast_arrays = self._fast_dl = None
            self._fingerprint = FunctionWatch(self.function)
        else:
            fast = self._fast_dl
            if fast is not None and fast[0] is treedef and fast[1] == traced and self.check_mode == "none" \
                    and all(type(x) is dlarray and x._value.shape == s and x._value.dtype == d and x._fmt == f
                            for x, (s, d, f) in zip(leaves, fast[2])):
                # the last all-dlarray signature again (MATLAB's loop: dlfeval(accfun, ...))
                result = fast[3].run([x._value for x in leaves])
                if result is not None:
                    self._calls += 1
                    self._hits += 1
                    return result
        key = signature_key(leaves, treedef, self._is_input, traced)
        if self._out_wrap == "match" and all(type(x) is float for x in leaves):
            traces = self._cache.get(key)
            if traces is not None and traces[0].scalar:
                self._calls += 1
                self._hits += 1
                self._fast = (treedef, traced, traces[0], len(leaves))
                return traces[0].run_scalars(leaves)
        arrays = [leaf_array(x) for x in leaves if self._is_input(x)]
        traces = self._cache.get(key)
        if traces is not None:
            self._cache.move_to_end(key)
            for trace in traces:
                result = trace.run(arrays)
                if result is not None:
                    self._calls += 1
                    self._hits += 1
                    if self._out_wrap == "match" and not trace.program.guard_nodes and \
                            all(type(x) is np.ndarray for x in leaves):
                        # remember this all-ndarray signature for the transform's fast path
                        self._fast_arrays = (len(leaves), tuple((x.shape, x.dtype) for x in leaves), trace)
                    elif leaves and all(type(x) is dlarray for x in leaves):
                        self._fast_dl = (treedef, traced,
                                         tuple((x._value.shape, x._value.dtype, x._fmt) for x in leaves), trace)
                    if self.check_mode == "tolerance":
                        self._check(result, args, kwargs, traced, trace.last_key)
                    return result
            debug("dlaccelerate: cache miss: a guard failed (Python control flow took another branch)")
        else:
            debug(f"dlaccelerate: cache miss: new input signature {key[1]!r}")
        allowed = traced if self._gradients is None else self._gradients
        with gc_paused():
            program, _ = trace_program(self.function, args, kwargs, self._is_input, gradients_allowed=allowed,
                                       out_wrap=self._out_wrap, lazy_values=self._out_wrap == "match")
            # What the function reads is judged against the state after this run:
            # its own side effects while tracing (a call counter) are not edits.
            self._fingerprint = FunctionWatch(self.function)
            artifact, outputs = build_artifact(program.inputs, program.graph_outputs)
        n = len(program.array_outputs)
        program.array_outputs, program.guard_nodes = outputs[:n], outputs[n:]
        trace = _Trace(program, artifact)
        self._cache.setdefault(key, []).append(trace)
        self._cache.move_to_end(key)
        self._evict()
        result = trace.run(arrays, first=True)
        self._calls += 1  # counted once it has a result (a failing trace is not a call)
        if result is None:  # cannot happen for a deterministic function: guards came from this run
            raise RuntimeError("dlaccelerate: a fresh trace failed its own guards; is the function deterministic?")
        if self._out_wrap == "match" and trace.scalar and all(type(x) is float for x in leaves):
            self._fast = (treedef, traced, trace, len(leaves))  # the next identical call goes straight in
        return result

    def _evict(self) -> None:
        while self.n_traces > self.cache_size:
            key, traces = next(iter(self._cache.items()))
            gone = traces.pop(0)
            if self._fast is not None and self._fast[2] is gone:
                self._fast = None
            if self._fast_arrays is not None and self._fast_arrays[2] is gone:
                self._fast_arrays = None
            if self._fast_dl is not None and self._fast_dl[3] is gone:
                self._fast_dl = None
            if not traces:
                del self._cache[key]

    def _check(self, result, args, kwargs, traced: bool, key) -> None:
        # The reference runs the Python body in the interpreter with the same
        # random key as the native call: symdl.rand gives no false alarm, while
        # numpy's random numbers (frozen into the trace) do differ.
        from .random import forced_key
        allowed = traced if self._gradients is None else self._gradients
        with forced_key(key):
            _, reference = trace_program(self.function, args, kwargs, self._is_input,
                                         gradients_allowed=allowed, out_wrap=self._out_wrap)
        got, _ = tree_flatten(result)
        want, _ = tree_flatten(reference)
        for a, b in zip(got, want):
            a = np.asarray(a._value if isinstance(a, dlarray) else a, dtype=float)
            b = np.asarray(b._value if isinstance(b, dlarray) else b, dtype=float)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=self.check_tolerance, equal_nan=True):
                warnings.warn(AccelerationWarning("Accelerated outputs differ from underlying function outputs."),
                              stacklevel=3)
                return

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fingerprint"] = None
        state["_fast"] = state["_fast_arrays"] = state["_fast_dl"] = None
        state["_cache"] = OrderedDict((k, [(t.program, t.artifact) for t in v]) for k, v in self._cache.items())
        return state

    def __setstate__(self, state):
        cache = state.pop("_cache")
        self.__dict__.update(state)
        self._fingerprint = FunctionWatch(self.function)
        self._cache = OrderedDict((k, [_Trace(p, a) for p, a in v]) for k, v in cache.items())


def dlaccelerate(fun: Callable, cache_size: int = 50) -> AcceleratedFunction:
    """Accelerate ``fun``: traces are cached per input signature and run as
    native code.  See :class:`AcceleratedFunction`.

    Example:
        >>> import symdl
        >>> acc = symdl.dlaccelerate(lambda x: symdl.exp(x) * 2.0)
        >>> float(acc(symdl.dlarray(0.0))), acc.occupancy
        (2.0, 2.0)
    """
    if isinstance(fun, AcceleratedFunction):
        fun = fun.function
    return AcceleratedFunction(fun, cache_size)
