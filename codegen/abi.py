"""Calling compiled code from Python: argument checks, pointer arrays prepared
once, one ctypes call per evaluation."""

from __future__ import annotations

import ctypes
import sys
import threading

import numpy as np

__all__ = ["NativeEntry", "NativeError"]

_ENTRY_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)


class NativeError(RuntimeError):
    """Compiled code reported a failure (e.g. an index out of range)."""


_ERRORS = {3: "an index is out of range for the axis it indexes"}
_REUSE_SIZE = 4096  # outputs of at least this many elements are reused when nobody holds them
_CTYPES = {np.dtype("float64"): ctypes.c_double, np.dtype("float32"): ctypes.c_float}


def _object_entry_works() -> bool:
    """Whether numpy's data pointer sits where emit.ARRAY_DATA_OFFSET says."""
    from .emit import ARRAY_DATA_OFFSET
    probe = np.arange(3.0)
    try:
        return ctypes.c_void_p.from_address(id(probe) + ARRAY_DATA_OFFSET).value == probe.ctypes.data
    except (ValueError, OSError):
        return False


_OBJECT_ENTRY = _object_entry_works()


class _CallState:
    """What one thread needs to call an entry: the pointer array, the
    workspace, the scalar cells and the outputs it may reuse.  Native code
    writes into the workspace, so two threads never share one."""

    def __init__(self, entry: NativeEntry):
        n = entry._n_in + len(entry.out_specs) + 1
        self.ptrs = (ctypes.c_void_p * n)()
        self.ptrs_addr = ctypes.addressof(self.ptrs)
        # 64-byte aligned workspace, reused across this thread's calls
        self.workspace = np.empty(entry.workspace_bytes + 64, dtype=np.uint8)
        base = self.workspace.ctypes.data
        self.ptrs[n - 1] = base + (-base % 64)
        # Output arrays of the previous call, reused when nobody else holds them:
        # a fresh large array costs page faults on first write (milliseconds for
        # megabytes on some machines); a loop that drops its results reuses memory.
        self.recent: list | None = None
        self.scalar = None
        specs = entry.in_specs + entry.out_specs
        dtypes = {dtype for _, dtype in specs}
        if specs and all(shape == () for shape, _ in specs) and len(dtypes) == 1 and dtypes <= set(_CTYPES):
            ctype = _CTYPES[dtypes.pop()]
            cells = (ctype * len(specs))()  # inputs then outputs, one C number each
            sptrs = (ctypes.c_void_p * n)()
            for k in range(len(specs)):
                sptrs[k] = ctypes.addressof(cells) + k * ctypes.sizeof(ctype)
            sptrs[n - 1] = self.ptrs[n - 1]
            self.scalar = (cells, sptrs, ctypes.addressof(sptrs))


class NativeEntry:
    """A native entry function with fixed input/output shapes and dtypes.

    Shapes, dtypes and contiguity are checked here, before the native call, so
    native code never reads or writes outside its buffers.  The pointer array
    is built once (per thread); a call fills it with the ids of the argument
    arrays (the ``_objs`` entry reads their data pointers natively).
    """

    def __init__(self, lib, name: str, in_specs, out_specs, workspace_bytes: int):
        self._lib = lib  # keeps the code alive
        self._objects = _OBJECT_ENTRY
        self._fn = _ENTRY_TYPE(lib.address(name + "_objs" if self._objects else name))
        self._plain_fn = _ENTRY_TYPE(lib.address(name))
        self.in_specs = [(tuple(s), np.dtype(d)) for s, d in in_specs]
        self.out_specs = [(tuple(s), np.dtype(d)) for s, d in out_specs]
        self._n_in = len(self.in_specs)
        self._n_all = self._n_in + len(self.out_specs)
        # per output: (shape, dtype, reusable); small outputs are always fresh (np.empty is
        # cheap for them, and a call-by-call fresh result is never shared with a caller)
        self._out_plan = [(shape, dtype, int(np.prod(shape)) >= _REUSE_SIZE) for shape, dtype in self.out_specs]
        self.workspace_bytes = workspace_bytes
        self._main_thread = threading.get_ident()
        self._main = _CallState(self)
        self._others = threading.local()

    def _state(self) -> _CallState:
        if threading.get_ident() == self._main_thread:
            return self._main
        st = getattr(self._others, "state", None)
        if st is None:
            st = self._others.state = _CallState(self)
        return st

    def _prepare(self, k: int, arr, names) -> np.ndarray:
        shape, dtype = self.in_specs[k]
        if type(arr) is not np.ndarray or arr.dtype is not dtype or not arr.flags.c_contiguous:
            arr = np.asarray(arr, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
        if arr.shape != shape:
            name = names[k] if names else f"input {k}"
            raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
        return arr

    def __call__(self, *arrays, names=None) -> list[np.ndarray]:
        # The per-call cost of a cached compiled call: kept to plain loops over
        # precomputed specs (no method calls per array).
        if len(arrays) != self._n_in:
            raise TypeError(f"compiled function takes {self._n_in} array inputs, got {len(arrays)}")
        st = self._main if threading.get_ident() == self._main_thread else self._state()
        ndarray = np.ndarray
        args = []
        k = 0
        for arr, (shape, dtype) in zip(arrays, self.in_specs):
            if type(arr) is not ndarray or arr.dtype is not dtype or arr.shape != shape \
                    or not arr.flags.c_contiguous:
                arr = self._prepare(k, arr, names)  # held in args until the call returns
            args.append(arr)
            k += 1
        outs = self._outputs(st)
        args += outs
        ptrs = st.ptrs
        if self._objects:
            ptrs[:self._n_all] = list(map(id, args))
        else:
            ptrs[:self._n_all] = [a.ctypes.data for a in args]
        rc = self._fn(st.ptrs_addr)
        if rc:
            raise NativeError(f"compiled code failed: {_ERRORS.get(rc, f'error code {rc}')}")
        st.recent = outs
        return list(outs)

    @property
    def all_scalar(self) -> bool:
        return self._main.scalar is not None

    def call_scalars(self, values) -> list[float]:
        """Run with Python numbers in and out (all-scalar signatures of one
        dtype only)."""
        cells, _, addr = self._state().scalar
        cells[:self._n_in] = values
        rc = self._plain_fn(addr)
        if rc:
            raise NativeError(f"compiled code failed: {_ERRORS.get(rc, f'error code {rc}')}")
        return cells[self._n_in:]

    def _outputs(self, st: _CallState) -> list[np.ndarray]:
        recent = st.recent
        empty, refcount = np.empty, sys.getrefcount
        if recent is None:
            return [empty(shape, dtype) for shape, dtype, _ in self._out_plan]
        outs = []
        for (shape, dtype, reusable), arr in zip(self._out_plan, recent):
            # referenced only by ``recent`` and getrefcount's argument: free to reuse
            outs.append(arr if reusable and refcount(arr) == 2 else empty(shape, dtype))
        return outs
