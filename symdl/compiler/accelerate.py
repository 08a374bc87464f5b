"""dlaccelerate: MATLAB's accelerated functions, called exactly like the
function, run from a :class:`~symdl.compiler.dispatch.SignatureCache` of
native traces."""

from __future__ import annotations

import warnings
from typing import Any
from collections.abc import Callable

import numpy as np

from ..array import dlarray
from ..core import is_traced
from ..tracing import active_root
from ..tree import flatten_call, tree_flatten
from .dispatch import MISS, CacheAttributes, SignatureCache
from .watch import FunctionWatch
from .pipeline import check_ieee, debug
from ..ir.rewrite import ieee_semantics
from .trace import is_dlarray_leaf, trace_program

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


class AcceleratedFunction(CacheAttributes):
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

    def __init__(self, function: Callable, cache_size: int = 50, ieee: bool = False):
        if not callable(function):
            raise TypeError(f"dlaccelerate: fun must be callable, got {type(function).__name__}")
        self._ieee = check_ieee(ieee, "dlaccelerate")
        self._cache = SignatureCache(function, cache_size, is_input=is_dlarray_leaf)
        self.enabled = True
        self.check_mode = "none"
        self.check_tolerance = 1e-4

    # ------------------------------------------------------------ attributes
    @property
    def function(self) -> Callable:
        return self._cache.function

    @property
    def ieee(self) -> bool:
        """Traces are built with step-by-step IEEE semantics (docs/ieee.md)."""
        return self._ieee

    @property
    def check_mode(self) -> str:
        return self._check_mode

    @check_mode.setter
    def check_mode(self, value: str) -> None:
        if value not in ("none", "tolerance"):
            raise ValueError(f"check_mode must be 'none' or 'tolerance', got {value!r}")
        self._check_mode = value
        self._cache.check = self._check if value == "tolerance" else None

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

    def __repr__(self) -> str:
        name = getattr(self.function, "__name__", repr(self.function))
        return (f"AcceleratedFunction(function={name}, enabled={self.enabled}, cache_size={self.cache_size}, "
                f"hit_rate={self.hit_rate:g}, occupancy={self.occupancy:g}, check_mode={self.check_mode!r}, "
                f"check_tolerance={self.check_tolerance:g})")

    def __str__(self) -> str:
        """The properties as MATLAB displays an AcceleratedFunction (names in
        MATLAB's spelling, right-aligned; the attributes are their snake_case)."""
        name = getattr(self.function, "__name__", repr(self.function))
        rows = [("Function", f"@{name}"), ("Enabled", str(int(self.enabled))), ("CacheSize", str(self.cache_size)),
                ("HitRate", f"{self.hit_rate:.4g}"), ("Occupancy", f"{self.occupancy:.4g}"),
                ("CheckMode", repr(self.check_mode)), ("CheckTolerance", f"{self.check_tolerance:.4e}")]
        return "  AcceleratedFunction with properties:\n\n" + "\n".join(f"{k:>18s}: {v}" for k, v in rows)

    # ------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._enabled:
            return self.function(*args, **kwargs)
        if active_root() is None:
            result = self._cache.call_fast(args, kwargs, False)
            if result is not MISS:
                return result
        leaves, treedef = flatten_call(args, kwargs)
        if active_root() is not None and any(is_traced(x) for x in leaves):
            # Inside user code under dlfeval: run the Python body so that the
            # outer trace can differentiate through it (never a silent zero).
            debug("dlaccelerate: traced call inside dlfeval runs the function body")
            return self.function(*args, **kwargs)
        with ieee_semantics(self._ieee):
            return self._cache.call(args, kwargs, leaves, treedef, traced=False)

    def _dlfeval_call(self, args: tuple, kwargs: dict) -> Any:
        """``dlfeval(accfun, ...)``: a traced call, run by the cached native trace."""
        if not self._enabled:
            from ..autodiff.api import dlfeval
            return dlfeval(self.function, *args, **kwargs)
        # the last signature again: no flattening, no key, no IEEE switch
        # (which matters only when tracing)
        result = self._cache.call_fast(args, kwargs, True)
        if result is not MISS:
            return result
        leaves, treedef = flatten_call(args, kwargs)
        with ieee_semantics(self._ieee):
            return self._cache.call(args, kwargs, leaves, treedef, traced=True)

    def _check(self, result, args, kwargs, traced: bool, key) -> None:
        # The reference runs the Python body in the interpreter with the same
        # random key as the native call: symdl.rand gives no false alarm, while
        # numpy's random numbers (frozen into the trace) do differ.
        from ..random import forced_key
        with forced_key(key), ieee_semantics(self._ieee):
            _, reference = trace_program(self.function, args, kwargs, is_dlarray_leaf, gradients_allowed=traced)
        got, _ = tree_flatten(result)
        want, _ = tree_flatten(reference)
        for a, b in zip(got, want):
            a = np.asarray(a._value if isinstance(a, dlarray) else a, dtype=float)
            b = np.asarray(b._value if isinstance(b, dlarray) else b, dtype=float)
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=self.check_tolerance, equal_nan=True):
                warnings.warn(AccelerationWarning("Accelerated outputs differ from underlying function outputs."),
                              stacklevel=5)
                return

    # ------------------------------------------------------------ pickling
    def __getstate__(self):
        return {"cache": self._cache, "enabled": self._enabled, "check_mode": self._check_mode,
                "check_tolerance": self._check_tolerance, "ieee": self._ieee}

    def __setstate__(self, state):
        self._cache = state["cache"]
        self._ieee = state.get("ieee", False)
        self.enabled = state["enabled"]
        self.check_mode = state["check_mode"]
        self.check_tolerance = state["check_tolerance"]


def dlaccelerate(fun: Callable, cache_size: int = 50, *, ieee: bool = False) -> AcceleratedFunction:
    """Accelerate ``fun``: traces are cached per input signature and run as
    native code.  See :class:`AcceleratedFunction`.  ``ieee=True`` keeps
    step-by-step IEEE semantics (no real-number simplification: docs/ieee.md).

    Example:
        >>> import symdl
        >>> acc = symdl.dlaccelerate(lambda x: symdl.exp(x) * 2.0)
        >>> float(acc(symdl.dlarray(0.0))), acc.occupancy
        (2.0, 2.0)
    """
    if isinstance(fun, AcceleratedFunction):
        fun = fun.function
    return AcceleratedFunction(fun, cache_size, ieee)
