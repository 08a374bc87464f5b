"""Scans: running sums along one axis (``cumsum``, forwards or from the end)."""

from __future__ import annotations

import numpy as np

from .. import build as B
from .movement import linear_jvp
from .registry import Kind, Primitive, ShapeError, define, one_input


def _cumsum_infer(inputs, attrs):
    x = one_input("cumsum", inputs)
    if not 0 <= attrs["axis"] < x.ndim:
        raise ShapeError(f"cumsum: axis {attrs['axis']} out of range for shape {x.shape}")
    return x.shape, x.dtype


def _cumsum_impl(values, node):
    (v,) = values
    axis = node.attr("axis")
    if node.attr("reverse"):
        return np.flip(np.cumsum(np.flip(v, axis), axis=axis, dtype=node.dtype), axis)
    return np.cumsum(v, axis=axis, dtype=node.dtype)


def _cumsum_vjp(node, g):
    # out[i] = sum_{j <= i} x[j], so dx[j] = sum_{i >= j} g[i]: the scan the other way
    return [B.emit("cumsum", (g,), axis=node.attr("axis"), reverse=not node.attr("reverse"))]


define(Primitive(
    "cumsum", Kind.SCAN, _cumsum_infer, _cumsum_impl, vjp=_cumsum_vjp, jvp=linear_jvp,
    batch=lambda node, b, n: B.emit("cumsum", (b[0],), axis=node.attr("axis") + 1, reverse=node.attr("reverse")),
    arity=1))
