"""One path for every primitive call from the front end: traced operands build
graph nodes (values from the interpreter), untraced ones run the same numpy
semantics directly.  Shape errors are identical either way."""

from __future__ import annotations

from typing import Any
from collections.abc import Sequence

import numpy as np

from .ir import build as B
from .ir.ops import primitive
from .ir.shapes import promote_dtypes
from .tracing import active_root
from .ir.shapes import dtype_name

__all__ = ["apply", "to_operands", "promote", "Spec", "is_traced", "node_of"]

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
    if root is not None and any(is_traced(x) for x in inputs):
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


def promote(operands: Sequence[Any]) -> str:
    """Result float dtype of elementwise arithmetic on ``operands``.

    dlarrays and numpy arrays count by their dtype; Python scalars are weak
    (a float32 dlarray times 2.0 stays float32), as in numpy 2 and JAX.
    """
    dtypes = []
    for x in operands:
        if isinstance(x, dlarray):
            dtypes.append(dtype_name(x.dtype))
        elif isinstance(x, np.ndarray) and x.ndim > 0 or isinstance(x, np.generic):
            dtypes.append(dtype_name(np.asarray(x).dtype))
    strong = [d for d in dtypes if d in ("float32", "float64")]
    return promote_dtypes(strong) if strong else "float64"


def to_operands(operands: Sequence[Any], dtype: str | None = None) -> list:
    """Operands of one elementwise op converted to a common float dtype."""
    dtype = dtype or promote(operands)
    out = []
    for x in operands:
        if isinstance(x, dlarray):
            if dtype_name(x.dtype) != dtype:
                x = apply("convert", [x], dtype=dtype, fmt=x._fmt)
            out.append(x)
        else:
            arr = np.asarray(x)
            if arr.dtype.kind == "c":
                raise TypeError(f"symdl: complex operands are not supported, got {arr.dtype}")
            if arr.dtype.kind not in "biuf":
                raise TypeError(f"symdl: expected a numeric operand, got {type(x).__name__} of dtype {arr.dtype}")
            out.append(arr.astype(dtype))
    return out
