"""Graph simplification: named passes of declarative rewrite rules run by the
one fixed-point engine of :mod:`symdl.ir.rewrite`.

Passes (in order): ``canonical`` (n-ary sums and products, like terms
collected, commutative operands ordered), ``identity`` (exact identities),
``algebra`` (identities of functions, and the band structure of products
with identity patterns, :mod:`.structure`), ``contract`` (sums of products
in Jacobians and Hessians summed as contractions, :mod:`.contract`; not a
construction set), ``fold`` (constant folding
through the reference interpreter) -- real-number algebra, see docs/ieee.md;
dead code is whatever no output reaches, and a Graph only holds reachable
nodes.  ``fastmath`` rules (``x * 0 -> 0``, ``x / x -> 1``) are a separate
set, off by default.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..ir.node import Node
from ..ir.rewrite import RULE_SETS, rewrite_graph, toposort
from . import algebra as _algebra  # noqa: F401  (registers rules)
from . import contract as _contract  # noqa: F401  (registers rules)
from . import fastmath as _fastmath  # noqa: F401  (registers rules)
from . import structure as _structure  # noqa: F401  (registers rules)

__all__ = ["simplify", "DEFAULT_PASSES", "FAST_MATH_PASSES", "rule_sets"]

DEFAULT_PASSES: tuple[str, ...] = ("canonical", "identity", "algebra", "contract", "fold")
FAST_MATH_PASSES: tuple[str, ...] = DEFAULT_PASSES + ("fastmath",)


def rule_sets() -> dict[str, list[str]]:
    """Rule names per set (for documentation and debugging)."""
    return {name: sorted({fn.__name__ for fns in table.values() for fn in fns})
            for name, table in RULE_SETS.items()}


def simplify(outputs: Sequence[Node], fast_math: bool = False,
             passes: Sequence[str] | None = None) -> list[Node]:
    """Simplified equivalents of ``outputs`` (same shapes and dtypes).

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (), "float64")
        >>> simplify([B.fn("log", B.fn("exp", x))])[0] is x
        True
    """
    chosen = tuple(passes) if passes is not None else (FAST_MATH_PASSES if fast_math else DEFAULT_PASSES)
    debug = os.environ.get("SYMDL_DEBUG", "") not in ("", "0")
    out = list(outputs)
    for name in chosen:
        before = len(toposort(out)) if debug else 0
        out = rewrite_graph(out, (name,))
        if debug:
            print(f"[symdl] pass {name}: {before} -> {len(toposort(out))} nodes")
    return out
