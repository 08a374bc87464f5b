"""Lowering tables, one module per primitive family (the same families as
``symdl.ir.ops``): how each primitive becomes native code.

| module | lowers |
|---|---|
| :mod:`.leaf` | const, input (buffers and folded constants: no code) |
| :mod:`.elementwise` | every elementwise primitive and function (per-element LLVM code) |
| :mod:`.movement` | views (reshape, broadcast_to, transpose, slice), unslice, concatenate |
| :mod:`.reduce` | reduce_sum, reduce_max |
| :mod:`.contract` | dot_general |
| :mod:`.index` | take, take_add |
| :mod:`.random` | random |
| :mod:`.scan` | cumsum |
| :mod:`.linalg` | solve, det, logabsdet, det_sign, cholesky, eigh (kernels with scratch memory) |

Every module of this package except the table itself registers lowerings
and is imported here (sorted by name), so a new family is a new file.
"""

import importlib
import pkgutil

from .table import LOWERINGS, Lowering, Placement, has_lowering, lowering  # noqa: I001  (before the families)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["LOWERINGS", "Lowering", "Placement", "has_lowering", "lowering"]
