"""Leaves: graph inputs and constants (no operands, shape and dtype given)."""

from __future__ import annotations

import numpy as np

from ..node import ArrayValue
from .registry import Kind, Primitive, ShapeError, define


def _leaf_infer(inputs, attrs):  # shape and dtype are given, never inferred
    raise ShapeError("leaf nodes carry their own shape and dtype")


def _const_impl(values, node):
    value = node.attr("value")
    if isinstance(value, ArrayValue):
        return value.array
    return np.full(node.shape, value, dtype=node.dtype)


def _input_impl(values, node):
    raise ValueError(f"graph input {node.attr('name')!r} has no value bound")


define(Primitive("const", Kind.LEAF, _leaf_infer, _const_impl, differentiable=False, arity=0))
define(Primitive("input", Kind.LEAF, _leaf_infer, _input_impl, differentiable=False, arity=0))
