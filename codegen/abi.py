"""Calling compiled code from Python: argument checks, pointer arrays prepared
once, one ctypes call per evaluation."""

from __future__ import annotations

import ctypes

import numpy as np

__all__ = ["NativeEntry", "NativeError"]

_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)


class NativeError(RuntimeError):
    """Compiled code reported a failure (e.g. an index out of range)."""


_ERRORS = {3: "an index is out of range for the axis it indexes"}


class NativeEntry:
    """A native entry function with fixed input/output shapes and dtypes.

    Shapes and dtypes are checked here, before the native call, so native code
    never reads or writes outside its buffers.
    """

    def __init__(self, address: int, in_specs, out_specs, workspace_bytes: int, keepalive=None):
        self._fn = _ENTRY_TYPE(address)
        self.in_specs = [(tuple(s), np.dtype(d)) for s, d in in_specs]
        self.out_specs = [(tuple(s), np.dtype(d)) for s, d in out_specs]
        n = len(self.in_specs) + len(self.out_specs) + 1
        self._ptrs = (ctypes.c_void_p * n)()
        self._ptrs_addr = ctypes.addressof(self._ptrs)
        # One workspace per entry, reused across calls (64-byte aligned).
        self._workspace = np.empty(workspace_bytes + 64, dtype=np.uint8)
        base = self._workspace.ctypes.data
        self._ptrs[n - 1] = base + (-base % 64)
        self._keepalive = keepalive

    def __call__(self, *arrays: np.ndarray, names=None) -> list[np.ndarray]:
        if len(arrays) != len(self.in_specs):
            raise TypeError(f"compiled function takes {len(self.in_specs)} array inputs, got {len(arrays)}")
        ptrs = self._ptrs
        keep = []
        for k, (arr, (shape, dtype)) in enumerate(zip(arrays, self.in_specs)):
            if type(arr) is not np.ndarray or arr.dtype != dtype or not arr.flags.c_contiguous:
                arr = np.ascontiguousarray(arr, dtype=dtype)
                keep.append(arr)
            if arr.shape != shape:
                name = names[k] if names else f"input {k}"
                raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
            ptrs[k] = arr.__array_interface__["data"][0]
        outs = [np.empty(shape, dtype=dtype) for shape, dtype in self.out_specs]
        base = len(self.in_specs)
        for k, out in enumerate(outs):
            ptrs[base + k] = out.__array_interface__["data"][0]
        rc = self._fn(self._ptrs_addr)
        if rc:
            raise NativeError(f"compiled code failed: {_ERRORS.get(rc, f'error code {rc}')}")
        return outs
