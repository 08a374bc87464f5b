"""Weight initialisers as MATLAB documents them ('glorot', 'he',
'narrow-normal', 'orthogonal', 'zeros', 'ones', 'unit-forget-gate', or a
callable taking the size).  Draws come from symdl's random stream, so
``symdl.seed(k)`` makes a network's initial weights reproducible."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..random import next_key

__all__ = ["initialize", "INITIALIZERS", "check_initializer"]


def _rng() -> np.random.Generator:
    seed, count = (int(v) for v in next_key())
    return np.random.default_rng([seed, count, 0x5EED])


def _glorot(shape, fan_in: int, fan_out: int) -> np.ndarray:
    # MATLAB: uniform on [-b, b], b = sqrt(6 / (numIn + numOut))
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    return _rng().uniform(-bound, bound, size=shape)


def _he(shape, fan_in: int, fan_out: int) -> np.ndarray:
    # MATLAB: normal with mean 0 and variance 2 / numIn
    return _rng().normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


def _narrow_normal(shape, fan_in: int, fan_out: int) -> np.ndarray:
    # MATLAB: normal with mean 0 and standard deviation 0.01
    return _rng().normal(0.0, 0.01, size=shape)


def _orthogonal(shape, fan_in: int, fan_out: int) -> np.ndarray:
    # MATLAB: Q of the QR decomposition Z = QR of a unit normal Z (sign-fixed)
    rows, cols = shape[0], int(np.prod(shape[1:]))
    z = _rng().normal(size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(z)
    q = q * np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].reshape(shape)


INITIALIZERS: dict[str, Callable] = {
    "glorot": _glorot,
    "he": _he,
    "narrow-normal": _narrow_normal,
    "orthogonal": _orthogonal,
    "zeros": lambda shape, fi, fo: np.zeros(shape),
    "ones": lambda shape, fi, fo: np.ones(shape),
}


def check_initializer(value, name: str, where: str, allowed: tuple[str, ...]) -> str | Callable:
    """A known initialiser name or a callable, else a ValueError naming it."""
    if callable(value):
        return value
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    raise ValueError(f"{where}: {name} must be one of {list(allowed)} or a callable taking the size, "
                     f"got {value!r}")


def initialize(init, shape: tuple[int, ...], fan_in: int, fan_out: int, dtype: str, name: str,
               where: str) -> np.ndarray:
    """Draw a parameter of ``shape`` with the initialiser ``init``."""
    shape = tuple(int(s) for s in shape)
    if callable(init):
        value = np.asarray(init(shape), dtype=np.float64)
        if value.shape != shape:
            raise ValueError(f"{where}: {name} initialiser returned shape {value.shape}, expected {shape}")
    else:
        value = INITIALIZERS[init](shape, fan_in, fan_out)
    return np.asarray(value, dtype=dtype)
