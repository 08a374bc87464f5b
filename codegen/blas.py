"""BLAS for large contractions, and the policy that picks how a contraction
is lowered (generated kernel, BLAS, loop nest).

The BLAS is the OpenBLAS that numpy ships (``numpy.libs/libscipy_openblas64_*``,
symbols ``scipy_cblas_sgemm64_`` / ``scipy_cblas_dgemm64_`` with 64-bit
integers), or another OpenBLAS build found beside numpy or named by
``SYMDL_BLAS_LIB`` (``cblas_sgemm64_``, ``cblas_sgemm``, ...; the integer
width comes from the symbol suffix and the library's configuration string).
It is already in the process whenever numpy is, so using it adds no
dependency.  Its ``?gemm`` functions are registered with LLVM under
symdl-private names that carry the integer width
(``symdl_cblas_sgemm_i64``), and generated code calls those names.

Rules that keep this safe:

* Object code that names a BLAS symbol is loaded only after
  :func:`prepare_object` registered it; where no matching BLAS exists it
  says so and the caller treats the code as unusable (a disk-cache miss, a
  clear error for pickled code), never an unresolved symbol inside LLVM.
* :func:`policy_key` is part of every disk-cache key, so switching BLAS off
  (``SYMDL_BLAS=0``) or on never reuses code built under the other choice.
* Exported libraries (:mod:`codegen.export`) and ``ieee=True`` code never
  call BLAS (:func:`generated_only`; docs/ieee.md).

Environment switches (read at each compilation):

* ``SYMDL_BLAS``: ``auto`` (default: BLAS for products of at least
  :data:`BLAS_MIN_WORK` multiply-adds), ``0``/``off`` (never), ``always``
  (every product whose strides BLAS accepts; for tests).
* ``SYMDL_GEMM``: ``auto`` (default), ``always`` (the generated kernel for
  every product BLAS does not take, however small), ``never`` (loop nests).
* ``SYMDL_NUM_THREADS``: OpenBLAS's thread count (set when the library is
  first used; unset, OpenBLAS's own default: all cores, or
  ``OPENBLAS_NUM_THREADS``).
* ``SYMDL_BLAS_LIB``: the path of the BLAS library to use instead of
  searching (a path that does not load: no BLAS).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import glob
import os
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BlasLibrary", "library", "blas_mode", "gemm_mode", "policy_key", "generated_only", "choose",
           "prepare_object", "references_blas", "symbol_prefix", "BLAS_MIN_WORK", "BLAS_MIN_SIDE",
           "set_num_threads"]

#: Products of at least this many multiply-adds (M*N*K), with every side at
#: least :data:`BLAS_MIN_SIDE`, call BLAS.  Below, the generated kernel is
#: within 10-20% of single-threaded OpenBLAS (benchmarks/bench_matmul.py,
#: docs/performance.md), and BLAS's threads cost more than they bring: its
#: worker threads spin after each call and, on a busy machine, a call waits
#: for a descheduled worker (a 256^3 product measured 20x slower that way,
#: an MLP step 2.5x).  Only long products amortise that risk.  Skinny products
#: (a side of 10 classes) are memory-bound: no gain from BLAS either.
BLAS_MIN_WORK = 512 * 512 * 512
BLAS_MIN_SIDE = 128

#: Every private symbol starts so; object code containing these bytes
#: references BLAS.
symbol_prefix = "symdl_cblas_"

_CBLAS_ROW_MAJOR, _CBLAS_NO_TRANS, _CBLAS_TRANS = 101, 111, 112

_ONLY_GENERATED = contextvars.ContextVar("symdl_only_generated", default=False)
_lock = threading.Lock()


@dataclass(frozen=True)
class BlasLibrary:
    """A loaded BLAS: its path, the C names of sgemm/dgemm, the integer width."""

    path: str
    sgemm: str
    dgemm: str
    int_bits: int
    set_threads: str | None
    handle: object = None

    def private_name(self, dtype: str) -> str:
        return f"{symbol_prefix}{'d' if dtype == 'float64' else 's'}gemm_i{self.int_bits}"

    def address(self, c_name: str) -> int:
        return ctypes.cast(getattr(self.handle, c_name), ctypes.c_void_p).value

    @property
    def ident(self) -> str:
        return f"{Path(self.path).name}:{self.sgemm}:i{self.int_bits}"


# ---------------------------------------------------------------- discovery

#: (sgemm, dgemm, integer bits or None = ask the configuration string, thread setter)
_SYMBOL_SETS = (
    ("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_", 64, "scipy_openblas_set_num_threads64_"),
    ("cblas_sgemm64_", "cblas_dgemm64_", 64, "openblas_set_num_threads64_"),
    ("scipy_cblas_sgemm", "scipy_cblas_dgemm", None, "scipy_openblas_set_num_threads"),
    ("cblas_sgemm", "cblas_dgemm", None, "openblas_set_num_threads"),
)
_CONFIG_NAMES = ("scipy_openblas_get_config64_", "openblas_get_config64_", "scipy_openblas_get_config",
                 "openblas_get_config")


def _candidates() -> list[str]:
    """BLAS libraries to try: ``SYMDL_BLAS_LIB``, else the ones numpy's
    wheel and the scipy-openblas packages ship, then numpy's build record."""
    env = os.environ.get("SYMDL_BLAS_LIB")
    if env:
        return [env]
    import numpy
    here = Path(numpy.__file__).resolve().parent
    dirs = [here.parent / "numpy.libs", here / ".libs", here / ".dylibs", here.parent / "numpy" / "DLLs"]
    for pkg in ("scipy_openblas64", "scipy_openblas32"):
        dirs.append(here.parent / pkg / "lib")
    with contextlib.suppress(Exception):
        info = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        if info.get("lib directory"):
            dirs.append(Path(info["lib directory"]))
    found: list[str] = []
    for d in dirs:
        for pattern in ("*openblas*.so*", "*openblas*.dylib", "*openblas*.dll"):
            found += sorted(glob.glob(str(d / pattern)))
    return list(dict.fromkeys(found))


def _int_bits(handle, declared: int | None) -> int | None:
    if declared is not None:
        return declared
    for name in _CONFIG_NAMES:
        fn = getattr(handle, name, None)
        if fn is not None:
            fn.restype = ctypes.c_char_p
            config = (fn() or b"").decode(errors="replace")
            return 64 if "USE64BITINT" in config else 32
    return None  # unknown width: not used


def _open(path: str) -> BlasLibrary | None:
    try:
        handle = ctypes.CDLL(path)
    except OSError:
        return None
    for sgemm, dgemm, bits, threads in _SYMBOL_SETS:
        if getattr(handle, sgemm, None) is None or getattr(handle, dgemm, None) is None:
            continue
        bits = _int_bits(handle, bits)
        if bits is None:
            continue
        setter = threads if getattr(handle, threads, None) is not None else None
        return BlasLibrary(path, sgemm, dgemm, bits, setter, handle)
    return None


@functools.cache
def _library_at(key: str) -> BlasLibrary | None:
    for path in _candidates():
        lib = _open(path)
        if lib is not None:
            _set_threads_from_env(lib)
            return lib
    return None


def library() -> BlasLibrary | None:
    """The BLAS of this process (searched once per ``SYMDL_BLAS_LIB``), or
    None when none was found.

    >>> lib = library()
    >>> lib is None or lib.int_bits in (32, 64)
    True
    """
    return _library_at(os.environ.get("SYMDL_BLAS_LIB", ""))


def _set_threads_from_env(lib: BlasLibrary) -> None:
    text = os.environ.get("SYMDL_NUM_THREADS", "").strip()
    if text:
        set_num_threads(_thread_count(text), lib)


def _thread_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"SYMDL_NUM_THREADS must be a positive integer, got {text!r}")
    return n


def set_num_threads(n: int, lib: BlasLibrary | None = None) -> bool:
    """Set the BLAS's thread count (shared with numpy, which uses the same
    library); False when there is no BLAS or it has no such setting.

    >>> set_num_threads(os.cpu_count() or 1) in (True, False)
    True
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads: n must be a positive integer, got {n!r}")
    lib = lib or library()
    if lib is None or lib.set_threads is None:
        return False
    fn = getattr(lib.handle, lib.set_threads)
    fn.argtypes = [ctypes.c_int64 if lib.int_bits == 64 and lib.set_threads.endswith("64_") else ctypes.c_int]
    fn.restype = None
    fn(n)
    return True


# ---------------------------------------------------------------- policy

def _mode(var: str, allowed: dict[str, str]) -> str:
    text = os.environ.get(var, "").strip().lower()
    if text in allowed:
        return allowed[text]
    raise ValueError(f"{var} must be one of {sorted(k for k in allowed if k)}, got {text!r}")


def blas_mode() -> str:
    """``SYMDL_BLAS`` as ``'auto'``, ``'never'`` or ``'always'``."""
    return _mode("SYMDL_BLAS", {"": "auto", "auto": "auto", "1": "auto", "on": "auto", "0": "never",
                                "off": "never", "never": "never", "always": "always"})


def gemm_mode() -> str:
    """``SYMDL_GEMM`` as ``'auto'``, ``'never'`` or ``'always'``."""
    return _mode("SYMDL_GEMM", {"": "auto", "auto": "auto", "0": "never", "off": "never", "never": "never",
                                "always": "always"})


@contextlib.contextmanager
def generated_only(on: bool = True):
    """Within the block, compilations never call BLAS (exported libraries)."""
    token = _ONLY_GENERATED.set(bool(on) or _ONLY_GENERATED.get())
    try:
        yield
    finally:
        _ONLY_GENERATED.reset(token)


def _usable() -> BlasLibrary | None:
    if _ONLY_GENERATED.get() or blas_mode() == "never":
        return None
    return library()


def policy_key() -> str:
    """What decides how this process lowers contractions (part of every
    disk-cache key): the BLAS used (if any), the modes and thresholds."""
    from .lower.contract import GEMM_MIN_WORK
    lib = None if blas_mode() == "never" else library()
    return (f"contract:gemm={gemm_mode()}:{GEMM_MIN_WORK}|blas={blas_mode()}:{BLAS_MIN_WORK}:{BLAS_MIN_SIDE}:"
            f"{lib.ident if lib else 'none'}")


# ---------------------------------------------------------------- lowering

def _lead(rows: int, cols: int, rs: int, cs: int) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a rows x cols row-major
    operand with these strides, or None when BLAS cannot take them."""
    if cs == 1 or cols == 1:
        ld = rs if rows > 1 else max(cols, 1)
        if ld >= max(cols, 1):
            return _CBLAS_NO_TRANS, ld
    if rs == 1 or rows == 1:
        ld = cs if cols > 1 else max(rows, 1)
        if ld >= max(rows, 1):
            return _CBLAS_TRANS, ld
    return None


@dataclass(frozen=True)
class BlasCall:
    """One ``cblas_?gemm`` call per entry of a product's outer loops."""

    lib: BlasLibrary
    swap: bool
    ta: int
    lda: int
    tb: int
    ldb: int
    ldc: int

    def emit(self, em, dtype: str, shape, pa, pb, pc, accumulate) -> None:
        """Emit the call (``accumulate``: i32, non-zero adds to C)."""
        from llvmlite import ir
        from .lower.scalar import I32, llvm_type
        ty = llvm_type(dtype)
        it = ir.IntType(self.lib.int_bits)
        name = self.lib.private_name(dtype)
        fn = em.module.globals.get(name)
        if fn is None:
            ptr = ir.PointerType()
            fn = ir.Function(em.module, ir.FunctionType(ir.VoidType(), [I32, I32, I32, it, it, it, ty, ptr, it, ptr,
                                                                      it, ty, ptr, it]), name)
        s = shape.transposed() if self.swap else shape
        if self.swap:
            pa, pb = pb, pa
        b = em.b
        beta = b.select(b.icmp_signed("!=", accumulate, I32(0)), ir.Constant(ty, 1.0), ir.Constant(ty, 0.0))
        b.call(fn, [I32(_CBLAS_ROW_MAJOR), I32(self.ta), I32(self.tb), it(s.M), it(s.N), it(s.K),
                    ir.Constant(ty, 1.0), pa, it(self.lda), pb, it(self.ldb), beta, pc, it(self.ldc)])


def choose(shape, dtype: str) -> BlasCall | None:
    """The BLAS call for a classified product (``codegen.lower.contract``),
    or None when BLAS is off, missing, too slow for its size or cannot take
    its strides."""
    lib = _usable()
    if lib is None:
        return None
    mode = blas_mode()
    if mode == "auto" and (shape.work < BLAS_MIN_WORK or min(shape.M, shape.N, shape.K) < BLAS_MIN_SIDE):
        return None
    limit = (1 << (lib.int_bits - 1)) - 1
    for swap in (False, True):
        s = shape.transposed() if swap else shape
        c = _lead(s.M, s.N, s.rsc, s.csc)
        if c is None or c[0] != _CBLAS_NO_TRANS:
            continue
        a, bb = _lead(s.M, s.K, s.rsa, s.csa), _lead(s.K, s.N, s.rsb, s.csb)
        if a is None or bb is None or max(s.M, s.N, s.K, a[1], bb[1], c[1]) > limit:
            continue
        return BlasCall(lib, swap, a[0], a[1], bb[0], bb[1], c[1])
    return None


# ---------------------------------------------------------------- loading

def references_blas(object_code: bytes) -> list[str]:
    """The private BLAS symbols that object code names."""
    out = []
    for bits in (32, 64):
        for p in "sd":
            name = f"{symbol_prefix}{p}gemm_i{bits}"
            if name.encode() in object_code:
                out.append(name)
    return out


def prepare_object(object_code: bytes) -> bool:
    """Register every BLAS symbol the object code names; False when one of
    them cannot be provided here (no BLAS, or one of another integer width):
    such code must not be loaded."""
    names = references_blas(object_code)
    if not names:
        return True
    lib = library()
    if lib is None:
        return False
    from . import llvm
    with _lock:
        for name in names:
            if not name.endswith(f"_i{lib.int_bits}"):
                return False
            dtype = "float64" if name[len(symbol_prefix)] == "d" else "float32"
            llvm.register_symbol(name, lib.address(lib.dgemm if dtype == "float64" else lib.sgemm))
    return True
