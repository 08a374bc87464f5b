"""One path for every primitive call from the front end: traced operands build
graph nodes (values from the interpreter), untraced ones run the same numpy
semantics directly.  Shape errors are identical either way."""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from .ir import build as B
from .ir.ops import primitive
from .ir.quiet import quietly
from .ir.shapes import broadcast_shapes
from .tracing import active_root, tracing_active
from .ir.shapes import dtype_name

__all__ = ["apply", "to_operands", "traced_with_numbers", "promote", "Spec", "is_traced", "node_of",
           "untraced_pair", "untraced_single", "ARITHMETIC"]

# The dlarray class; symdl.array imports this module and then sets it here
# (a module-level import would be circular).
dlarray = None


class Spec:
    """Shape/dtype/attrs of an operand or result when no graph is built."""

    __slots__ = ("shape", "dtype", "attrs")

    def __init__(self, shape, dtype, attrs=()):
        self.shape, self.dtype, self.attrs = tuple(shape), dtype, attrs

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def attr(self, name: str, default: Any = None) -> Any:
        return dict(self.attrs).get(name, default)


def is_traced(x) -> bool:
    root = active_root()
    return isinstance(x, dlarray) and x._node is not None and root is not None and x._trace is root


def node_of(x, ctx) -> Any:
    """The graph node of operand ``x`` (a constant node when untraced)."""
    if isinstance(x, dlarray):
        if x._node is not None and x._trace is ctx:
            return x._node
        return ctx.const(x._value)
    return ctx.const(np.asarray(x))


def _value(x) -> np.ndarray:
    return x._value if isinstance(x, dlarray) else np.asarray(x)


def apply(op: str, inputs: Sequence[Any], fmt: str | None = None, **attrs: Any):
    """Run primitive ``op`` on dlarray/numpy operands; returns a dlarray."""
    root = active_root()
    if root is not None and any(isinstance(x, dlarray) and x._trace is root and x._node is not None
                                for x in inputs):
        node = B.emit(op, [node_of(x, root) for x in inputs], **attrs)
        return dlarray._wrap(root.value(node), node, root, fmt, (op, attrs, tuple(inputs)))
    values = [_value(x) for x in inputs]
    prim = primitive(op)
    specs = [Spec(v.shape, dtype_name(v.dtype)) for v in values]
    shape, dtype = prim.infer(specs, attrs)
    out = prim.impl(values, Spec(shape, dtype, B.as_attrs(attrs)))
    out = np.asarray(out, dtype=dtype)
    if out.shape != tuple(shape):
        out = np.broadcast_to(out, shape)
    return dlarray._wrap(out, None, None, fmt)


_F32, _F64 = np.dtype("float32"), np.dtype("float64")


def promote(operands: Sequence[Any]) -> str:
    """Result float dtype of elementwise arithmetic on ``operands``.

    dlarrays and numpy arrays count by their dtype; Python scalars are weak
    (a float32 dlarray times 2.0 stays float32), as in numpy 2 and JAX.
    """
    single = False
    for x in operands:
        if isinstance(x, dlarray):
            d = x._value.dtype
        elif isinstance(x, np.generic) or isinstance(x, np.ndarray) and x.ndim > 0:
            d = x.dtype
        else:
            continue
        if d == _F64:
            return "float64"
        single = single or d == _F32
    return "float32" if single else "float64"


def to_operands(operands: Sequence[Any], dtype: str | None = None) -> list:
    """Operands of one elementwise op converted to a common float dtype."""
    dtype = dtype or promote(operands)
    out = []
    for x in operands:
        if isinstance(x, dlarray):
            if dtype_name(x._value.dtype) != dtype:
                x = apply("convert", [x], dtype=dtype, fmt=x._fmt)
            out.append(x)
        elif type(x) is float:  # the common constant: one conversion
            out.append(np.asarray(x, dtype=dtype))
        else:
            arr = np.asarray(x)
            if arr.dtype.kind == "c":
                raise TypeError(f"symdl: complex operands are not supported, got {arr.dtype}")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"symdl: expected a numeric operand, got {type(x).__name__} of dtype {arr.dtype}")
            out.append(arr.astype(dtype))
    return out


# ---------------------------------------------------------------- traced values with Python numbers
# The commonest traced operation: a traced dlarray and Python numbers
# (``y * 0.999``, ``x - lr * g``, ``maximum(x, 0.0)``).  The same node and
# value as ``apply`` after ``to_operands`` (the numbers as weak scalars of the
# array's dtype, the same builder call), without the general bookkeeping.

_EXACT = 2 ** 53


def traced_with_numbers(op: str, operands: Sequence[Any], attrs: dict):
    """``apply(op, to_operands(operands), **attrs)`` when the operands are
    traced float dlarrays of one dtype and Python numbers; else None."""
    root = active_root()
    if root is None:
        return None
    dt = None
    for x in operands:
        if type(x) is dlarray:
            if x._trace is not root or x._node is None:
                return None
            d = x._value.dtype
            if dt is None:
                if d != _F64 and d != _F32:
                    return None
                dt = d
            elif d != dt:
                return None
        elif not (type(x) is float or type(x) is int and -_EXACT < x < _EXACT):
            return None
    if dt is None:
        return None
    parts = tuple(x if type(x) is dlarray else np.asarray(x, dtype=dt) for x in operands)
    if op == "mul" and len(parts) == 2 and attrs["exps"] == (1, 1) and \
            (type(parts[0]) is dlarray) is not (type(parts[1]) is dlarray):
        # ``y * c``: the canonical form of a product with a constant factor
        # is the scaled term ``c y`` (see canonical_product), built directly
        # (no constant node, no product to take apart).  ``c`` is rounded to
        # the array's dtype, as the constant node would hold it.
        y, c = parts if type(parts[0]) is dlarray else parts[::-1]
        node = B.scale(y._node, float(c))
    else:
        node = B.emit(op, [x._node if type(x) is dlarray else root.const(x) for x in parts], **attrs)
    return dlarray._wrap(root.value(node), node, root, None, (op, attrs, parts))


# ---------------------------------------------------------------- untraced arithmetic fast path
# Plain dlarray arithmetic (no trace running) is the inner loop of optimisers
# and data preparation.  The general path above spends tens of microseconds
# per call on promotion, specs and inference; for the common operands (float
# dlarrays of one dtype, Python numbers) the result follows from numpy
# directly.  Each kernel below does the same floating-point operations, in
# the same order, as the primitive's interpreter implementation
# (``ir/ops._add_impl`` / ``_mul_impl``), so the values are bit for bit those
# of the general path; anything else (mixed dtypes, numpy operands, traced
# values) takes the general path.

_EXACT_INT = 2 ** 53  # larger ints are not all exact as floats: the general path decides


def _number(x, dt: np.dtype):
    """``x`` as a numpy scalar of ``dt`` when it is a Python float or an int
    that converts exactly (a weak scalar, as the general path treats it)."""
    t = type(x)
    if t is float or (t is int and -_EXACT_INT < x < _EXACT_INT):
        return dt.type(x)
    return None


def _float_value(x) -> np.ndarray | None:
    """The value of an untraced float32/float64 dlarray in native byte order, else None."""
    if type(x) is not dlarray:
        return None
    v = x._value
    dt = v.dtype
    return v if dt is _F64 or dt is _F32 else None


def untraced_single(a) -> np.ndarray | None:
    """``a``'s value when a unary op on it may take the fast path, else None."""
    return None if tracing_active() else _float_value(a)


def untraced_pair(op: str, a, b) -> tuple[np.ndarray, Any] | None:
    """The values of ``a`` and ``b`` when the binary elementwise ``op`` may
    take the fast path, else None.  Shapes that do not broadcast raise the
    general path's error (it names ``op`` and the shapes)."""
    if tracing_active():
        return None
    va = _float_value(a)
    if va is not None:
        vb = _float_value(b)
        if vb is None:
            vb = _number(b, va.dtype)
            return None if vb is None else (va, vb)
        if vb.dtype is not va.dtype:
            return None  # promotion: a convert first
        if va.shape != vb.shape:
            broadcast_shapes(op, (va.shape, vb.shape))
        return va, vb
    vb = _float_value(b)
    if vb is None:
        return None
    va = _number(a, vb.dtype)
    return None if va is None else (va, vb)


def _as_array(out) -> np.ndarray:
    # 0-d operands give numpy scalars; results are always arrays
    return out if type(out) is np.ndarray else np.asarray(out)


@quietly
def _add_values(a, b) -> np.ndarray:
    # ``_add_impl`` with coefficients (1, 1): a + b
    return _as_array(a + b)


@quietly
def _subtract_values(a, b) -> np.ndarray:
    # ``_add_impl`` with coefficients (1, -1): a + (-b)
    return _as_array(a + np.negative(b))


@quietly
def _negative_values(a) -> np.ndarray:
    return _as_array(np.negative(a))


@quietly
def _multiply_values(a, b) -> np.ndarray:
    # ``_mul_impl``: (1 * a) * b, and 1 * a is a for every a
    return _as_array(a * b)


@quietly
def _divide_values(a, b) -> np.ndarray:
    # ``_mul_impl`` with exponents (1, -1): a / b
    return _as_array(a / b)


#: The untraced kernels of the arithmetic operators, by public name.
ARITHMETIC = {"add": _add_values, "subtract": _subtract_values, "multiply": _multiply_values,
              "divide": _divide_values, "negative": _negative_values}
