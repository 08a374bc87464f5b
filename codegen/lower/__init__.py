"""Lowering tables, one module per primitive family (the same families as
``symdl.ir.ops``): how each primitive becomes native code.

| module | lowers |
|---|---|
| :mod:`.elementwise` | every elementwise primitive and function (per-element LLVM code) |
| :mod:`.movement` | views (reshape, broadcast_to, transpose, slice), unslice, concatenate |
| :mod:`.reduce` | reduce_sum, reduce_max |
| :mod:`.contract` | dot_general |
| :mod:`.index` | take, take_add |
| :mod:`.random` | random |
"""

from .table import LOWERINGS, Lowering, Placement, has_lowering, lowering  # noqa: I001  (before the families)
from . import elementwise, movement, reduce, contract, index, random  # noqa: F401

LOWERINGS["const"] = Lowering(Placement.LEAF)
LOWERINGS["input"] = Lowering(Placement.LEAF)

__all__ = ["LOWERINGS", "Lowering", "Placement", "has_lowering", "lowering"]
