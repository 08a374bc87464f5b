"""Static shape arithmetic shared by the primitive catalogue and the front end."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["broadcast_shapes", "normalize_axes", "promote_dtypes", "ShapeError", "dtype_name"]


class ShapeError(ValueError):
    """A shape or dtype that an operation cannot take; the message names both."""


def broadcast_shapes(op: str, shapes: Sequence[tuple[int, ...]]) -> tuple[int, ...]:
    """numpy broadcasting of ``shapes``; a mismatch names the op and the shapes."""
    if len(shapes) == 2:  # the common case, decided without the general loop
        a, b = shapes
        if a == b or not b:
            return tuple(a)
        if not a:
            return tuple(b)
    ndim = max((len(s) for s in shapes), default=0)
    out = [1] * ndim
    for shape in shapes:
        for i, dim in enumerate(shape, start=ndim - len(shape)):
            if out[i] == 1:
                out[i] = dim
            elif dim != 1 and dim != out[i]:
                listed = ", ".join(str(tuple(s)) for s in shapes)
                raise ShapeError(f"{op}: shapes {listed} cannot be broadcast together")
    return tuple(out)


def normalize_axes(op: str, axes, ndim: int) -> tuple[int, ...]:
    """Axes as a sorted tuple of non-negative ints; ``None`` means all axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int, got {type(a).__name__}")
        if not -ndim <= a < ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for an array of {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {tuple(axes)}")
    return tuple(sorted(out))


_RANK = {"bool": 0, "int64": 1, "float32": 2, "float64": 3}


def promote_dtypes(dtypes: Sequence[str]) -> str:
    """Result dtype of arithmetic: float64 wins over float32; bools/ints become float64."""
    floats = [d for d in dtypes if d in ("float32", "float64")]
    if not floats:
        return "float64"
    return max(floats, key=_RANK.__getitem__)


_NAMES: dict = {}


def dtype_name(dtype) -> str:
    """``numpy.dtype(...).name``, cached: numpy computes ``.name`` in Python,
    slowly, and the front end asks for it on every operation."""
    name = _NAMES.get(dtype)
    if name is None:
        import numpy as np
        name = _NAMES[dtype] = np.dtype(dtype).name
    return name
