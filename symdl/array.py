"""``dlarray``: a numpy array with dimension labels that records the graph of
what is computed from it inside ``dlfeval``."""

from __future__ import annotations

import numbers

import numpy as np

from . import functions as F
from .core import apply, is_traced
from .ir.quiet import QUIET_SWITCH
from .tracing import _STATE, active_root
from .formats import canonical_permutation, check_fmt
from .ir.shapes import dtype_name

__all__ = ["dlarray", "extractdata", "dims", "finddim", "stripdims"]


def _operator(kernel, public):
    """The operator and its reflected form for the public function ``public``:
    outside dlfeval, :func:`_plain` first (the direct path for plain float
    arrays), else the public function."""
    def forward(self, o):
        if not _STATE.stack:
            out = _plain(self, o, False, kernel)
            if out is not None:
                return out
        return public(self, o)

    def reflected(self, o):
        if not _STATE.stack:
            out = _plain(self, o, True, kernel)
            if out is not None:
                return out
        return public(o, self)
    return forward, reflected


class dlarray:
    """A deep-learning array: data (float32 or float64), optional dimension
    labels, and, inside ``dlfeval``, its place in the traced graph.

    ``fmt`` labels each dimension with S (spatial), C (channel), B (batch),
    T (time) or U (unspecified); the data is permuted to MATLAB's canonical
    order S..., C, B, T, U...

    Example:
        >>> import numpy as np, symdl
        >>> x = symdl.dlarray(np.zeros((2, 28, 28)), "CSS")   # permuted to SSC
        >>> x.fmt, x.shape
        ('SSC', (28, 28, 2))
    """

    # _origin: how a traced value was made, (op, attrs, operands) as the user's
    # code called it, before canonical forms merged it into its users; it lets
    # dlgradient differentiate with respect to intermediate values.  An
    # ("alias", x[, tag]) origin is x relabelled; a tag says what made x
    # (softmax's logits, which crossentropy uses).
    __slots__ = ("_value", "_node", "_trace", "_fmt", "_origin")
    __array_priority__ = 1000

    def __init__(self, data, fmt: str | None = None, dtype=None):
        if isinstance(data, dlarray):
            value, src_fmt = data._value, data._fmt
        else:
            value, src_fmt = data, None
        try:
            arr = np.asarray(value)
        except ValueError as err:  # ragged nesting: numpy's message alone names no argument
            raise ValueError(f"dlarray: data must be a rectangular array, got a {type(data).__name__} "
                             f"that numpy cannot make one of ({err})") from None
        if arr.dtype.kind == "c":
            raise TypeError(f"dlarray: complex data is not supported (got dtype {arr.dtype})")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"dlarray: data must be numeric, got {type(data).__name__} of dtype {arr.dtype}")
        if dtype is not None:
            try:
                target = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"dlarray: dtype must be float32 or float64, got {dtype!r}") from None
            if target.name not in ("float32", "float64"):
                raise TypeError(f"dlarray: dtype must be float32 or float64, got {target.name}")
        elif dtype_name(arr.dtype) in ("float32", "float64"):
            target = arr.dtype
        else:
            target = np.dtype("float64")
        self._origin = None
        if isinstance(data, dlarray) and is_traced(data):
            self._init_traced(data, fmt, dtype)
            return
        arr = np.array(arr, dtype=target, copy=True)
        self._node = None
        self._trace = None
        self._fmt = None
        if fmt is None:
            self._fmt = src_fmt
        else:
            fmt = check_fmt(fmt, arr.ndim)
            perm, fmt = canonical_permutation(fmt)
            arr = np.ascontiguousarray(np.transpose(arr, perm))
            self._fmt = fmt
        self._value = arr

    def _init_traced(self, data: dlarray, fmt, dtype) -> None:
        """dlarray(x, fmt, dtype) of a traced x: relabelling stays differentiable."""
        out = data
        if dtype is not None and np.dtype(dtype) != data.dtype:
            out = F.astype(out, dtype)
        if fmt is not None:
            perm, fmt = canonical_permutation(check_fmt(fmt, data.ndim))
            if perm != tuple(range(data.ndim)):
                out = F.transpose(out, perm)
        self._value, self._node, self._trace = out._value, out._node, out._trace
        self._origin = out._origin if out is not data else ("alias", data)
        self._fmt = fmt if fmt is not None else out._fmt

    @classmethod
    def _wrap(cls, value: np.ndarray, node, trace, fmt: str | None, origin=None) -> dlarray:
        out = object.__new__(cls)
        out._value = value
        out._node = node
        out._trace = trace
        out._fmt = fmt
        out._origin = origin
        return out

    # ------------------------------------------------------------ properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self._value.shape

    @property
    def ndim(self) -> int:
        return self._value.ndim

    @property
    def dtype(self) -> np.dtype:
        return self._value.dtype

    @property
    def size(self) -> int:
        return self._value.size

    @property
    def fmt(self) -> str:
        """The dimension labels ('' when unformatted)."""
        return self._fmt or ""

    @property
    def T(self) -> dlarray:
        return F.transpose(self)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d dlarray")
        return self.shape[0]

    def _scalar(self, kind: str):
        if self.size != 1:
            raise TypeError(f"only one-element dlarrays convert to Python {kind}s, got shape {self.shape}")
        self._guard()
        return self._value.reshape(()).item()

    def _guard(self) -> None:
        """Python code is about to use the value: a trace stays valid only for it."""
        if is_traced(self):
            active_root().record_guard(self._node, self._value)

    def __float__(self) -> float:
        return float(self._scalar("float"))

    def __int__(self) -> int:
        return int(self._scalar("int"))

    def __index__(self) -> int:
        if self.dtype.kind not in "iub":
            raise TypeError("only integer dlarrays can be used as an index")
        return int(self._scalar("int"))

    def __bool__(self) -> bool:
        if self.size != 1:
            raise ValueError(f"the truth value of a dlarray of shape {self.shape} is ambiguous; use .any() or .all()")
        self._guard()
        return bool(self._value.reshape(()).item())

    def any(self, axis=None, out=None, keepdims=False, **kw):
        """numpy's ``any``: a Python bool over everything (in compiled code a
        guard on that one bool), a bool dlarray along an axis."""
        if axis is None and not keepdims and not kw:
            return bool(_np().any(self, out=out))
        return _np().any(self, axis, out, keepdims, **kw)

    def all(self, axis=None, out=None, keepdims=False, **kw):
        if axis is None and not keepdims and not kw:
            return bool(_np().all(self, out=out))
        return _np().all(self, axis, out, keepdims, **kw)

    def __format__(self, spec: str) -> str:
        # f"{loss:.4f}" as numpy scalars allow; the value is shown, as repr
        # shows it, without a guard (printing decides nothing in the trace)
        if not spec:
            return str(self)
        if self.size != 1:
            raise TypeError(f"unsupported format string {spec!r} for a dlarray of shape {self.shape}: only "
                            "one-element dlarrays format as numbers")
        return format(self._value.reshape(()).item(), spec)

    def __round__(self, ndigits: int | None = None) -> dlarray:
        """``round(x, n)``: numpy's ``round`` (no derivative, SPEC 9.2)."""
        return _np().round(self, ndigits or 0)

    def __repr__(self) -> str:
        fmt = f", fmt={self._fmt!r}" if self._fmt else ""
        traced = ", traced" if is_traced(self) else ""
        body = np.array2string(self._value, separator=", ", prefix="dlarray(")
        return f"dlarray({body}{fmt}{traced})"

    def __array__(self, dtype=None, copy=None):
        if is_traced(self):
            # numpy (or scipy, or any library calling __array__) would compute
            # on a plain copy and the result would silently lose its
            # derivative (SPEC §9.1): refuse, and say how to do either on purpose.
            raise TypeError(
                f"a traced dlarray (shape {self.shape}) cannot be converted to a numpy array: its derivative "
                "would be silently lost. Use symdl.extractdata(x) to detach on purpose, or symdl.stack / "
                "symdl.concatenate (or symdl.numpy.array) to build arrays of traced values")
        return np.array(self._value, dtype=dtype, copy=True)

    def __hash__(self):
        return id(self)

    # ------------------------------------------------------------ arithmetic
    # (the four operators try the direct path for plain arrays first: see _plain)
    __add__, __radd__ = _operator(lambda a, b: a + b, F.add)
    __sub__, __rsub__ = _operator(lambda a, b: a + np.negative(b), F.subtract)  # as core's _subtract_values
    __mul__, __rmul__ = _operator(lambda a, b: a * b, F.multiply)
    __truediv__, __rtruediv__ = _operator(lambda a, b: a / b, F.divide)

    def __pow__(self, o): return F.power(self, o)
    def __rpow__(self, o): return F.power(o, self)
    def __mod__(self, o): return _np().mod(self, o)
    def __rmod__(self, o): return _np().mod(o, self)
    def __floordiv__(self, o): return _np().floor_divide(self, o)
    def __rfloordiv__(self, o): return _np().floor_divide(o, self)
    def __divmod__(self, o): return _np().floor_divide(self, o), _np().mod(self, o)
    def __rdivmod__(self, o): return _np().floor_divide(o, self), _np().mod(o, self)
    def __matmul__(self, o): return F.matmul(self, o)
    def __rmatmul__(self, o): return F.matmul(o, self)
    def __neg__(self): return F.negative(self)
    def __pos__(self): return self
    def __abs__(self): return F.abs(self)
    def __gt__(self, o): return F.compare("gt", self, o)
    def __ge__(self, o): return F.compare("ge", self, o)
    def __lt__(self, o): return F.compare("lt", self, o)
    def __le__(self, o): return F.compare("le", self, o)
    def __eq__(self, o): return F.compare("eq", self, o)  # noqa: E704
    def __ne__(self, o): return F.compare("ne", self, o)
    def __and__(self, o): return F.logical_and(self, o)
    def __rand__(self, o): return F.logical_and(o, self)
    def __or__(self, o): return F.logical_or(self, o)
    def __ror__(self, o): return F.logical_or(o, self)
    def __invert__(self): return F.logical_not(self)

    # ------------------------------------------------------------ methods
    def reshape(self, *shape): return F.reshape(self, *shape)
    def transpose(self, *axes):
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return F.transpose(self, axes or None)

    # numpy's method signatures (axis, dtype, out, keepdims, ...); they call
    # the functions of symdl.np, which check the keywords
    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _np().reductions.sum(self, axis, dtype, out, keepdims, **kw)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _np().reductions.mean(self, axis, dtype, out, keepdims, **kw)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, **kw):
        return _np().reductions.prod(self, axis, dtype, out, keepdims, **kw)

    def max(self, axis=None, out=None, keepdims=False, **kw):
        return _np().reductions.max(self, axis, out, keepdims, **kw)

    def min(self, axis=None, out=None, keepdims=False, **kw):
        return _np().reductions.min(self, axis, out, keepdims, **kw)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _np().var(self, axis, dtype, out, ddof, keepdims, **kw)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kw):
        return _np().std(self, axis, dtype, out, ddof, keepdims, **kw)

    def cumsum(self, axis=None, dtype=None, out=None): return _np().reductions.cumsum(self, axis, dtype, out)
    def cumprod(self, axis=None, dtype=None, out=None): return _np().cumprod(self, axis, dtype, out)
    def squeeze(self, axis=None): return F.squeeze(self, axis)
    def astype(self, dtype, *args, **kwargs): return F.astype(self, dtype)
    def flatten(self, order="C"): return _np().ravel(self, order)
    def ravel(self, order="C"): return _np().ravel(self, order)
    def copy(self, order="C"): return _np().copy(self)
    def dot(self, b, out=None): return _np()._FUNCTIONS[np.dot](self, b, out=out)

    def clip(self, min=None, max=None, out=None, **kw):
        return _np().clip(self, min, max, out, **kw)

    def argmax(self, axis=None, out=None, *, keepdims=False): return _np().argmax(self, axis, out, keepdims=keepdims)
    def argmin(self, axis=None, out=None, *, keepdims=False): return _np().argmin(self, axis, out, keepdims=keepdims)
    def argsort(self, axis=-1, kind=None, order=None): return _np().argsort(self, axis, kind, order)
    def nonzero(self): return _np().nonzero(self)
    def round(self, decimals=0, out=None): return _np().round(self, decimals, out)
    def repeat(self, repeats, axis=None): return _np().repeat(self, repeats, axis)
    def swapaxes(self, axis1, axis2): return _np().swapaxes(self, axis1, axis2)
    def diagonal(self, offset=0, axis1=0, axis2=1): return _np().diagonal(self, offset, axis1, axis2)

    def trace(self, offset=0, axis1=0, axis2=1, dtype=None, out=None):
        return _np().trace(self, offset, axis1, axis2, dtype, out)

    def sort(self, axis=-1, kind=None, order=None):
        """Sort in place, as numpy's method (the dlarray now holds the sorted,
        still differentiable values)."""
        s = _np().sort(self, axis, kind, order)
        self._value, self._node, self._trace, self._origin = s._value, s._node, s._trace, s._origin

    def item(self, *args):
        if args:
            return float(self.ravel()[int(np.ravel_multi_index(args, self.shape)) if len(args) > 1 else args[0]])
        return self._scalar("float")

    def tolist(self):
        self._guard()
        return self._value.tolist()

    # ------------------------------------------------------------ indexing
    def __getitem__(self, key):
        return _getitem(self, key)

    def __setitem__(self, key, value):
        # a snapshot of the old value: the update's recorded origin must not
        # point back at this (mutated) object
        old = dlarray._wrap(self._value, self._node, self._trace, self._fmt, self._origin)
        updated = _setitem(old, key, value)
        self._value, self._node, self._trace = updated._value, updated._node, updated._trace
        self._origin = updated._origin

    # ------------------------------------------------------------ numpy protocols
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .np import call_ufunc
        result = call_ufunc(ufunc, method, inputs, kwargs)
        if result is not None:
            return result
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        # scipy.special's functions are numpy ufuncs too: name numpy only for its own
        where = "numpy." if getattr(np, ufunc.__name__, None) is ufunc else "the ufunc "
        raise TypeError(f"{where}{name} is not supported on dlarrays: symdl has no derivative rule for it "
                        "(for plain data, call it on symdl.extractdata(x))")

    def __array_function__(self, func, types, args, kwargs):
        fn = F.NUMPY_FUNCTIONS.get(func)
        if fn is None:
            module = getattr(func, "__module__", None) or "numpy"
            module = "numpy" if module.startswith("numpy._core") or module.startswith("numpy.core") else module
            raise TypeError(f"{module}.{func.__name__} is not supported on dlarrays: symdl has no derivative "
                            "rule for it (for plain data, call it on symdl.extractdata(x))")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- untraced operators
# ``x * g``, ``x - 0.1 * g`` on plain float dlarrays outside dlfeval (an
# optimiser's inner loop): the operator computes the result itself, with the
# kernels of the untraced arithmetic path (symdl.core.ARITHMETIC: the same
# operations in the same order, so bit for bit its values), skipping the
# public function's dispatch.  Only two arrays of one shape and dtype, or one
# and a Python number; the rest (broadcasting and its errors, promotion,
# traced values) goes through the public functions.  tests/test_dlarray.py
# compares the two paths.

_F32, _F64 = np.dtype("float32"), np.dtype("float64")
_QUIET_ON, _QUIET_OFF, _IGNORE = QUIET_SWITCH or (None, None, None)


def _plain(x: dlarray, o, reflected: bool, kernel):
    """``kernel(x, o)`` (``kernel(o, x)`` when ``reflected``) as a dlarray
    when ``o`` is a dlarray of ``x``'s float dtype and shape or a Python
    number; else None.  The caller checks that no trace runs."""
    if _QUIET_ON is None:  # pragma: no cover - other numpy versions
        return None
    va = x._value
    dt = va.dtype
    if dt is not _F64 and dt is not _F32:
        return None
    t = type(o)
    if t is dlarray:
        vb = o._value
        if vb.dtype is not dt or vb.shape != va.shape:
            return None
        first, second = (o, x) if reflected else (x, o)  # the labels of the left operand win
        fmt = first._fmt if first._fmt is not None and len(first._fmt) == va.ndim else second._fmt
        if first._fmt and second._fmt and first._fmt != second._fmt:
            F._check_label_pairs((x, o), va.ndim)  # the general path's check of contradicting labels
    else:
        vb = F._weak_number(o, dt)  # a Python number as a weak scalar of the array's dtype
        if vb is None:
            return None
        fmt = x._fmt
    token = _QUIET_ON(_IGNORE)
    try:
        out = kernel(vb, va) if reflected else kernel(va, vb)
    finally:
        _QUIET_OFF(token)
    if type(out) is not np.ndarray:  # 0-d operands give numpy scalars; results are arrays
        out = np.asarray(out)
    if fmt is not None and len(fmt) != out.ndim:
        fmt = None
    return dlarray._wrap(out, None, None, fmt)


def _np():
    """symdl.np, where numpy's breadth lives (imported after this module)."""
    from . import np as numpy_breadth
    return numpy_breadth


# ---------------------------------------------------------------- labels

def extractdata(x) -> np.ndarray:
    """The data of ``x`` as a numpy array that the caller owns (a copy).

    Example:
        >>> import symdl
        >>> symdl.extractdata(symdl.dlarray([1.0, 2.0]))
        array([1., 2.])
    """
    if isinstance(x, dlarray):
        x._guard()
        return np.array(x._value, copy=True)
    return np.array(x, copy=True)


def dims(x) -> str:
    """The dimension labels of ``x`` ('' when it has none).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.dims(symdl.dlarray(np.zeros((3, 8)), "CB"))
        'CB'
    """
    if not isinstance(x, dlarray):
        raise TypeError(f"dims: expected a dlarray, got {type(x).__name__}")
    return x.fmt


def finddim(x, label: str) -> list[int]:
    """The axes (0-based) of ``x`` labelled ``label``.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.finddim(symdl.dlarray(np.zeros((4, 4, 3, 8)), "SSCB"), "S")
        [0, 1]
    """
    if not isinstance(x, dlarray):
        raise TypeError(f"finddim: expected a dlarray, got {type(x).__name__}")
    if not isinstance(label, str) or len(label) != 1 or label.upper() not in "SCBTU":
        raise ValueError(f"finddim: label must be one of 'S', 'C', 'B', 'T', 'U', got {label!r}")
    return [i for i, c in enumerate(x.fmt) if c == label.upper()]


def stripdims(x) -> dlarray:
    """``x`` without dimension labels (data and tracing unchanged).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.stripdims(symdl.dlarray(np.zeros((3, 8)), "CB")).fmt
        ''
    """
    if not isinstance(x, dlarray):
        raise TypeError(f"stripdims: expected a dlarray, got {type(x).__name__}")
    return dlarray._wrap(x._value, x._node, x._trace, None, ("alias", x) if x._node is not None else None)


# ---------------------------------------------------------------- indexing

def _normalize_key(x: dlarray, key) -> tuple:
    if not isinstance(key, tuple):
        key = (key,)
    for k in key:
        if isinstance(k, dlarray):
            k._guard()  # the index's value shapes the trace
    key = tuple(np.asarray(k._value) if isinstance(k, dlarray) else k for k in key)
    n_real = sum(1 for k in key if k is not None and k is not Ellipsis
                 and not (isinstance(k, np.ndarray) and k.dtype == bool))
    n_real += sum(k.ndim for k in key if isinstance(k, np.ndarray) and k.dtype == bool)
    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    if Ellipsis in [k for k in key if not isinstance(k, np.ndarray)]:
        i = next(j for j, k in enumerate(key) if k is Ellipsis and not isinstance(k, np.ndarray))
        key = key[:i] + (slice(None),) * (x.ndim - n_real) + key[i + 1:]
    if n_real > x.ndim:
        raise IndexError(f"too many indices for a dlarray of {x.ndim} dimensions")
    return key


def _getitem(x: dlarray, key):
    key = _normalize_key(x, key)
    slices, out_shape, advanced = [], [], []
    axis = 0
    for k in key:
        if k is None:
            out_shape.append(1)
            continue
        if isinstance(k, slice):
            n = len(range(x.shape[axis])[k])
            slices.append(k)
            out_shape.append(n)
        elif isinstance(k, numbers.Integral) and not isinstance(k, bool):
            size = x.shape[axis]
            if not -size <= k < size:
                raise IndexError(f"index {k} is out of bounds for axis {axis} with size {size}")
            slices.append(slice(int(k) % size, int(k) % size + 1))
        else:
            arr = np.asarray(k)
            if arr.dtype == bool:
                if arr.shape != x.shape[axis:axis + arr.ndim]:
                    raise IndexError(f"boolean index of shape {arr.shape} does not match shape {x.shape}")
                if arr.ndim != 1:
                    return _flat_gather(x, key)
                arr = np.nonzero(arr)[0]
            if arr.dtype.kind not in "iu":
                raise IndexError(f"dlarray indices must be integers, slices, None, ... or bool arrays, got {arr.dtype}")
            advanced.append((len(out_shape), axis, arr))
            slices.append(slice(None))
            out_shape.append(None)
        axis += 1
    for rest in range(axis, x.ndim):  # axes the key does not mention are kept whole
        slices.append(slice(None))
        out_shape.append(x.shape[rest])
    if len(advanced) > 1 or advanced and any(isinstance(k, numbers.Integral) for k in key):
        # numpy's rules for several advanced indices (integers count as such
        # next to arrays) decide the result's axis order: let numpy place them
        return _flat_gather(x, key)
    out = x
    if any(s != slice(None) for s in slices):
        out = apply("slice", [x], **_slice_attrs(x.shape, slices))
    if advanced:
        pos, ax, arr = advanced[0]
        out = F.take(out, arr, axis=ax)
        shape = []
        for d in out_shape:
            shape.extend(arr.shape if d is None else (d,))
        return F.reshape(out, shape)
    result = F.reshape(out, out_shape)
    if x._fmt and len(out_shape) == x.ndim and all(isinstance(k, slice) for k in key):
        result._fmt = x._fmt
    return result


def _slice_attrs(shape, slices):
    from .ir.build import _norm_slice
    slices = list(slices) + [slice(None)] * (len(shape) - len(slices))
    norm = [_norm_slice(s, n) for s, n in zip(slices, shape)]
    return dict(starts=tuple(s[0] for s in norm), stops=tuple(s[1] for s in norm),
                steps=tuple(s[2] for s in norm))


def _flat_positions(x: dlarray, key) -> np.ndarray:
    try:
        return np.arange(x.size, dtype=np.int64).reshape(x.shape)[key]
    except IndexError as err:
        raise IndexError(f"dlarray index {key!r} does not fit shape {x.shape}: {err}") from None


def _flat_gather(x: dlarray, key):
    pos = _flat_positions(x, key)
    return F.reshape(F.take(F.reshape(x, (-1,)), pos.reshape(-1), axis=0), pos.shape)


def _setitem(x: dlarray, key, value) -> dlarray:
    key = _normalize_key(x, key)
    pos = np.asarray(_flat_positions(x, key)).reshape(-1)
    if pos.size == 0:
        return x
    # numpy assignment keeps the last write to a repeated position
    uniq, first_in_reversed = np.unique(pos[::-1], return_index=True)
    last = pos.size - 1 - first_in_reversed
    target_shape = np.asarray(_flat_positions(x, key)).shape
    v = value if isinstance(value, dlarray) else np.asarray(value)
    v = F.broadcast_to(F.astype(v, x.dtype) if isinstance(v, dlarray) else dlarray(v, dtype=x.dtype), target_shape)
    v_flat = F.take(F.reshape(v, (-1,)), last, axis=0)
    scattered = apply("take_add", [v_flat, uniq.astype(np.int64)], axis=0, size=x.size)
    mask = np.zeros(x.size, dtype=bool)
    mask[uniq] = True
    out = F.where(mask, scattered, F.reshape(x, (-1,)))
    out = F.reshape(out, x.shape)
    out._fmt = x._fmt
    return out


def _bind_class() -> None:
    """Let the modules this one imports refer to dlarray without importing it."""
    from . import core, functions
    core.dlarray = dlarray
    functions.dlarray = dlarray


_bind_class()


def _register_leaves() -> None:
    import numpy as _np
    from .tree import register_flat_leaf
    register_flat_leaf(dlarray)
    register_flat_leaf(_np.ndarray)
    register_flat_leaf(_np.float64)


_register_leaves()
