"""The lowering table: how each primitive becomes native code, keyed by op.

The planner decides by a record's ``placement`` and flags, and the emitter
calls its functions; neither tests op names.  Family modules of this package
(:mod:`.elementwise`, :mod:`.movement`, ...) fill the table.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Placement", "Lowering", "LOWERINGS", "lower", "lowering", "has_lowering"]


class Placement(enum.Enum):
    """Where the planner puts a node's computation."""

    LEAF = "leaf"      # an input buffer or a constant (folded into code or a constant buffer)
    VIEW = "view"      # a strided view of its operand's memory: no code at all
    LOOP = "loop"      # one value per index, fused into elementwise loop kernels
    COPY = "copy"      # copy loops of its operands into sub-views of its result
    KERNEL = "kernel"  # a kernel of its own (reductions, contractions, gathers, random numbers)


#: ``scalar(ctx, node, operand_values) -> value`` (LOOP ops computed from their
#: operands at the same index).
ScalarEmitter = Callable[[Any, Any, list], Any]
#: ``at_index(values, node, idx) -> value`` (LOOP and VIEW ops that need the
#: index itself: iota, the masked read of unslice, views read at a mapped index).
IndexEmitter = Callable[[Any, Any, list], Any]
#: ``view(node, base_view) -> view | None`` (VIEW ops; None: needs a copy first).
ViewRule = Callable[[Any, Any], Any]
#: ``kernel(emitter, op_kernel)`` emits a whole KERNEL op.
KernelEmitter = Callable[[Any, Any], None]
#: ``copies(node, out_view) -> [(operand, sub_view)]`` (COPY ops).
CopyRule = Callable[[Any, Any], list]
#: ``scratch(node) -> (elements, dtype)``: working memory a KERNEL op needs
#: besides its output (a matrix being factorised), given as ``kernel.scratch``.
ScratchRule = Callable[[Any], "tuple[int, str]"]
#: ``region(node) -> (lo, hi) | None``: a masked read (unslice) reads inside
#: its operand for ``lo <= i < hi`` along the last axis (None: no such split).
RegionRule = Callable[[Any], "tuple[int, int] | None"]
#: ``fuses_epilogue(emitter, op_kernel) -> bool``: whether the kernel emitter
#: will run ``op_kernel.epilogue`` (an elementwise loop over its result that
#: the planner attached) inside its own loops; when False the emitter runs
#: that loop right after the kernel instead.
EpilogueRule = Callable[[Any, Any], bool]
#: ``split(emitter, op_kernel) -> int | None``: the number of independent
#: parts a KERNEL op's emitter can share among threads (enough work for
#: threads, see ``codegen.parallel``), or None.  The emitter then runs only
#: the parts ``emitter.outer_range`` names.
SplitRule = Callable[[Any, Any], "int | None"]


@dataclass(frozen=True)
class Lowering:
    """How one primitive is lowered.

    ``cheap``: recomputed by every consumer instead of stored, when its
    operands are themselves in memory or cheap (one arithmetic step).
    ``hosts_loop``: reads its operands through the loop evaluator (at mapped
    indices), so a producer cone can be computed inside it (reductions,
    unslice) rather than stored first.
    ``fuses_epilogue``: a KERNEL op that can run the elementwise loop reading
    its result as it produces it (contractions; see ``codegen.plan``).
    ``split``: a KERNEL op whose work can be shared among threads.
    """

    placement: Placement
    scalar: ScalarEmitter | None = None
    at_index: IndexEmitter | None = None
    view: ViewRule | None = None
    kernel: KernelEmitter | None = None
    copies: CopyRule | None = None
    region: RegionRule | None = None
    scratch: ScratchRule | None = None
    cheap: bool = False
    hosts_loop: bool = False
    fuses_epilogue: EpilogueRule | None = None
    split: SplitRule | None = None


LOWERINGS: dict[str, Lowering] = {}


def lower(*ops: str, **fields) -> Callable:
    """Register the decorated function as a field of the lowering of ``ops``:
    ``@lower("exp", placement=Placement.LOOP, field="scalar")``."""
    field = fields.pop("field")

    def register(fn):
        for op in ops:
            LOWERINGS[op] = Lowering(**{**fields, field: fn})
        return fn
    return register


def lowering(op: str) -> Lowering:
    """The lowering of ``op``; a TypeError names an op without native code."""
    try:
        return LOWERINGS[op]
    except KeyError:
        raise TypeError(f"cannot compile the op {op!r}: it has no native lowering "
                        "(and no declared decomposition into ops that have one)") from None


def has_lowering(op: str) -> bool:
    return op in LOWERINGS
