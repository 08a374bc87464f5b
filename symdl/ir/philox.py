"""Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
SC 2011): the counter-based generator behind symdl.rand/randn.

The numpy version here is the reference; codegen emits the same rounds, so
compiled and interpreted code draw identical numbers.  Element ``i`` of the
``stream``-th random call of a trace, on the ``call``-th call, with ``seed``:
counter = (i, stream, call_lo, call_hi), key = (seed_lo, seed_hi).
"""

from __future__ import annotations

import numpy as np

__all__ = ["philox4x32", "uniform", "normal", "M0", "M1", "W0", "W1", "ROUNDS"]

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10
_MASK = np.uint64(0xFFFFFFFF)


def philox4x32(counter: list[np.ndarray], key: tuple[int, int]) -> list[np.ndarray]:
    """Four uint32 words per element (as uint64 arrays)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & _MASK for c in counter)
    k0, k1 = np.uint64(key[0] & 0xFFFFFFFF), np.uint64(key[1] & 0xFFFFFFFF)
    for _ in range(ROUNDS):
        p0 = np.uint64(M0) * c0
        p1 = np.uint64(M1) * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK
        c0, c1, c2, c3 = (hi1 ^ c1 ^ k0) & _MASK, lo1, (hi0 ^ c3 ^ k1) & _MASK, lo0
        k0 = (k0 + np.uint64(W0)) & _MASK
        k1 = (k1 + np.uint64(W1)) & _MASK
    return [c0, c1, c2, c3]


def _words(size: int, stream: int, seed: int, call: int) -> list[np.ndarray]:
    i = np.arange(size, dtype=np.uint64)
    counter = [i, np.full(size, stream, np.uint64), np.full(size, call & 0xFFFFFFFF, np.uint64),
               np.full(size, (call >> 32) & 0xFFFFFFFF, np.uint64)]
    return philox4x32(counter, (seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF))


def _unit(w_hi: np.ndarray, w_lo: np.ndarray, dtype: str) -> np.ndarray:
    """A uniform number in [0, 1) from two 32-bit words (53 or 24 bits)."""
    if dtype == "float32":
        return ((w_hi >> np.uint64(8)).astype(np.float64) * 2.0 ** -24).astype(np.float32)
    bits = (w_hi >> np.uint64(5)) * np.uint64(1 << 26) + (w_lo >> np.uint64(6))
    return bits.astype(np.float64) * 2.0 ** -53


def uniform(shape, dtype: str, stream: int, seed: int, call: int) -> np.ndarray:
    size = int(np.prod(shape, dtype=np.int64))
    w = _words(size, stream, seed, call)
    return _unit(w[0], w[1], dtype).reshape(shape)


def normal(shape, dtype: str, stream: int, seed: int, call: int) -> np.ndarray:
    """Box-Muller on two uniforms of one Philox block."""
    size = int(np.prod(shape, dtype=np.int64))
    w = _words(size, stream, seed, call)
    u1 = _unit(w[0], w[1], "float64")
    u2 = _unit(w[2], w[3], "float64")
    z = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)
    return z.astype(dtype).reshape(shape)
