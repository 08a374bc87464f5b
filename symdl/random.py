"""symdl.rand / symdl.randn: counter-based random numbers that stay fresh in
compiled code, reproducible from ``symdl.seed``."""

from __future__ import annotations

import itertools
import threading

import numpy as np

from .array import dlarray
from .ir import build as B
from .ir import philox
from .tracing import active_root
from .ir.shapes import dtype_name

__all__ = ["rand", "randn", "seed", "next_key"]

_LOCK = threading.Lock()
_STATE = {"seed": 0, "calls": itertools.count()}


def seed(value: int) -> None:
    """Restart symdl's random numbers from ``value`` (a non-negative int).

    Example:
        >>> import symdl
        >>> symdl.seed(7); a = symdl.rand(3)
        >>> symdl.seed(7); b = symdl.rand(3)
        >>> bool((symdl.extractdata(a) == symdl.extractdata(b)).all())
        True
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
        raise ValueError(f"seed: expected an int in [0, 2**63), got {value!r}")
    with _LOCK:
        _STATE["seed"] = int(value)
        _STATE["calls"] = itertools.count()


def next_key() -> np.ndarray:
    """(seed, call counter) for one more draw: what compiled code receives."""
    forced = getattr(_FORCED, "key", None)
    if forced is not None:
        return forced.copy()
    with _LOCK:
        return np.array([_STATE["seed"], next(_STATE["calls"])], dtype=np.int64)


_FORCED = threading.local()


class forced_key:
    """Within this block every draw uses ``key`` (to re-run a compiled call's
    random numbers in the reference interpreter, e.g. for check_mode)."""

    def __init__(self, key: np.ndarray | None):
        self.key = key

    def __enter__(self):
        self.saved = getattr(_FORCED, "key", None)
        _FORCED.key = self.key
        return self

    def __exit__(self, *exc):
        _FORCED.key = self.saved


def _shape(shape, where: str) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"{where}: shape must be an int or a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"{where}: shape must not have negative sizes, got {shape}")
    return shape


def _dtype(like, dtype, where: str) -> str:
    if dtype is not None:
        name = np.dtype(dtype).name
    elif like is not None:
        name = dtype_name(np.asarray(like._value if isinstance(like, dlarray) else like).dtype)
    else:
        name = "float64"
    if name not in ("float32", "float64"):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {name}")
    return name


def _draw(dist: str, shape, like, dtype, where: str) -> dlarray:
    shape = _shape(shape, where)
    dt = _dtype(like, dtype, where)
    fmt = like._fmt if isinstance(like, dlarray) and like._fmt and len(like._fmt) == len(shape) else None
    root = active_root()
    if root is not None:
        node = B.emit("random", (root.rng_key(),), shape=shape, dtype=dt, dist=dist, stream=root.next_stream())
        return dlarray._wrap(root.value(node), node, root, fmt)
    key = next_key()
    sample = philox.uniform if dist == "uniform" else philox.normal
    return dlarray._wrap(sample(shape, dt, 0, int(key[0]), int(key[1])), None, None, fmt)


def rand(shape, like=None, dtype=None) -> dlarray:
    """Uniform random numbers in [0, 1) of ``shape`` (dtype of ``like``).

    Inside ``dlfeval``/``dlaccelerate``/``compile`` the draw is part of the
    trace, so every call of compiled code gets fresh numbers (MATLAB's
    ``rand(sz, 'like', dlX)``).

    Example:
        >>> import numpy as np, symdl
        >>> r = symdl.rand((2, 3), like=symdl.dlarray(np.zeros(1, np.float32)))
        >>> r.shape, r.dtype
        ((2, 3), dtype('float32'))
    """
    return _draw("uniform", shape, like, dtype, "rand")


def randn(shape, like=None, dtype=None) -> dlarray:
    """Standard normal random numbers of ``shape`` (see :func:`rand`).

    Example:
        >>> import symdl
        >>> symdl.seed(0)
        >>> z = symdl.randn(100000)
        >>> abs(float(symdl.mean(z))) < 0.02 and abs(float(symdl.mean(z ** 2)) - 1) < 0.02
        True
    """
    return _draw("normal", shape, like, dtype, "randn")
