"""The primitive table: one record per primitive with everything the engine
needs to know about it, side by side.

A :class:`Primitive` carries its shape/dtype rule, its numpy semantics (the
reference interpreter), and its derivative and batching rules.  Family modules
(:mod:`.elementwise`, :mod:`.movement`, ...) build the records and
:func:`define` them; the drivers (``ir.interpret``, ``autodiff.reverse``,
``autodiff.batching``) only look rules up here, never test op names.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..shapes import ShapeError, broadcast_shapes

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["Kind", "Primitive", "PRIMITIVES", "define", "primitive", "Infer", "Impl", "VjpRule",
           "JvpRule", "BatchRule", "PartialsRule", "ShapeError", "same_float_dtype", "one_input",
           "elementwise_infer"]


class Kind(str, enum.Enum):
    """What sort of computation a primitive is; the planner and the drivers
    decide by it (never by op names).  A ``str`` enum, so a kind also equals
    its name (``Kind.LEAF == "leaf"``) in serialised plans and messages."""

    LEAF = "leaf"                # no operands: graph inputs and constants
    ELEMENTWISE = "elementwise"  # out[i] depends on in_k[i] only (numpy broadcasting)
    MOVEMENT = "movement"        # reorders, selects or places elements; no arithmetic
    REDUCE = "reduce"            # combines elements along axes
    SCAN = "scan"                # running combinations along an axis (cumsum)
    CONTRACT = "contract"        # sums of products (dot_general)
    INDEX = "index"              # data-dependent indexing (gather, scatter-add)
    RANDOM = "random"            # counter-based random numbers
    LINALG = "linalg"            # dense matrix factorisations on the last two axes (solve, det, eigh, ...)


# Rule signatures (all return graph nodes, never numbers, so every rule can be
# differentiated again):
Infer = Callable[[tuple, dict], tuple[tuple[int, ...], str]]
Impl = Callable[[list, "Node"], np.ndarray]
#: ``vjp(node, g) -> [cotangent | None per input]``; cotangents may still have
#: the broadcast shape of ``node`` (the driver sums them down).
VjpRule = Callable[["Node", "Node"], list]
#: ``jvp(node, tangents) -> tangent | None``; ``tangents[i]`` is None for zero.
JvpRule = Callable[["Node", list], "Node | None"]
#: ``batch(node, batched_inputs, n) -> node`` with a new leading axis of size
#: ``n``; ``batched_inputs[i]`` is None where input i is not batched.
BatchRule = Callable[["Node", list, int], "Node"]
#: Elementwise only: ``partials(node) -> [d node / d input_i | None]``.
PartialsRule = Callable[["Node"], list]
#: Optionally, the same partials as ``(coefficient, factors)`` pairs (the
#: partial is ``coefficient * prod(factors)``), so forward mode builds no
#: node for the scaled partial (canonical sums and products).
PartialTermsRule = Callable[["Node"], list]


@dataclass(frozen=True, eq=False)
class Primitive:
    """One primitive operation, with all of its rules.

    ``differentiable=False`` ops (comparisons, sign, floor, random, ...)
    contribute no derivative and need no derivative rules.  ``arity=None``
    takes any number of operands.  ``decomposition`` (instead of native
    lowering) names the function that rewrites the op into other primitives
    before code generation: ``decomposition(node, can_lower) -> node`` where
    ``can_lower(op)`` says which ops the code generator has native code for.
    """

    name: str
    kind: Kind
    infer: Infer
    impl: Impl
    vjp: VjpRule | None = None
    jvp: JvpRule | None = None
    batch: BatchRule | None = None
    partials: PartialsRule | None = None
    partial_terms: PartialTermsRule | None = None
    differentiable: bool = True
    arity: int | None = None
    decomposition: Callable[[Node, Callable[[str], bool]], Node] | None = None

    def __repr__(self) -> str:
        return f"<primitive {self.name} ({self.kind.value})>"


PRIMITIVES: dict[str, Primitive] = {}


def define(prim: Primitive) -> Primitive:
    """Add ``prim`` to the catalogue; a differentiable primitive must come
    with its derivative rules (the catalogue guard test checks the rest)."""
    if prim.differentiable and prim.kind is not Kind.LEAF and (prim.vjp is None or prim.jvp is None):
        raise TypeError(f"primitive {prim.name!r} is differentiable but lacks a VJP or JVP rule")
    PRIMITIVES[prim.name] = prim
    return prim


def primitive(name: str) -> Primitive:
    """The catalogue record of ``name`` (a ValueError names an unknown op)."""
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise ValueError(f"unknown primitive op {name!r}") from None


# ---------------------------------------------------------------- shared shape rules

_FLOAT_DTYPES = ("float32", "float64")


def same_float_dtype(op: str, inputs) -> str:
    dtype = inputs[0].dtype if inputs else None
    if dtype not in _FLOAT_DTYPES or any(i.dtype != dtype for i in inputs):
        raise ShapeError(f"{op}: operands must share one float dtype, got {sorted({i.dtype for i in inputs})}")
    return dtype


def one_input(op: str, inputs):
    if len(inputs) != 1:
        raise ShapeError(f"{op}: takes one operand, got {len(inputs)}")
    return inputs[0]


def elementwise_infer(op: str, out_dtype: str | None = None, float_operands: bool = True) -> Infer:
    """numpy broadcasting of the operands; the result dtype is ``out_dtype``
    or the operands' common float dtype."""
    def infer(inputs, attrs: dict[str, Any]):
        # one operand, or two of one shape and dtype: every traced unary
        # function and most binary arithmetic, decided without the general
        # rules (which give the same answer, or the error, otherwise)
        n = len(inputs)
        if n == 1 or n == 2 and inputs[0].shape == inputs[1].shape and inputs[0].dtype == inputs[1].dtype:
            a = inputs[0]
            if float_operands and a.dtype not in _FLOAT_DTYPES:
                same_float_dtype(op, inputs)  # raises
            return a.shape, out_dtype or a.dtype
        if not inputs:
            raise ShapeError(f"{op}: needs at least one operand")
        shape = broadcast_shapes(op, [i.shape for i in inputs])
        dtype = out_dtype or same_float_dtype(op, inputs)
        if out_dtype is not None and float_operands:
            same_float_dtype(op, inputs)
        return shape, dtype
    return infer
