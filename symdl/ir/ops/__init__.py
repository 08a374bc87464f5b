"""The closed catalogue of primitives, one module per family.

Each family module defines its primitives with everything about them side by
side (shape and dtype rule, numpy semantics, VJP, JVP, batching rule) in one
:class:`~.registry.Primitive` record.  Everything else symdl offers (softmax,
losses, normalisation, prod, ...) is a decomposition into these.

| family | primitives |
|---|---|
| :mod:`.leaf` | const, input |
| :mod:`.elementwise` | add, mul, powc, pow, where, maximum, minimum, convert, comparisons, logic, iota |
| :mod:`.functions` | exp, log, sin, ... (defined by SymPy; user functions from ``symdl.elementwise``) |
| :mod:`.movement` | broadcast_to, reshape, transpose, slice, unslice, concatenate |
| :mod:`.reduce` | reduce_sum, reduce_max |
| :mod:`.contract` | dot_general |
| :mod:`.index` | take, take_add |
| :mod:`.random` | random |
| :mod:`.scan` | cumsum |
| :mod:`.linalg` | solve, det, logabsdet, det_sign, cholesky, eigh |

The elementwise family also has two identities that only differentiation
sees: ``stop_gradient`` (derivative zero) and ``order_limit`` (counts the
derivatives taken through it; see ``symdl.autodiff.reverse.count_orders``).

Every module of this package is a family and is imported here (sorted by
name), so a new family is a new file and nothing else.
"""

import importlib
import pkgutil

from .registry import Kind, PRIMITIVES, Primitive, define, primitive  # noqa: I001  (before the families)

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

from .contract import dot_general_subscripts  # noqa: E402

__all__ = ["Kind", "Primitive", "PRIMITIVES", "define", "primitive", "dot_general_subscripts"]
