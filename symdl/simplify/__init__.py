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

import math
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

#: The ``contract`` pass is kept only when it divides the graph's estimated
#: cost (:func:`_cost`) by at least 1 / CONTRACT_GAIN: the 2-16-1 MLP
#: Hessian (64 samples) 3x less, 4x faster per call; a 12-parameter
#: softmax Hessian or a 3-layer MLP's would cost more kernels than the
#: products they save (measured: slower per call, builds 2-3x longer).
CONTRACT_GAIN = 0.5

#: A reduction or contraction kernel counted as this many elements of work
#: (its call and loop overhead, and 15-20 ms of LLVM time each).
KERNEL_ELEMENTS = 2048


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
        new = rewrite_graph(out, (name,))
        if name == "contract" and new != out and _cost(new) > CONTRACT_GAIN * _cost(out):
            # small tangents, or sums distributed through several layers:
            # more kernels than the dense products save
            if debug:
                print(f"[symdl] pass contract: {before} -> {len(toposort(new))} nodes, not kept")
            continue
        out = new
        if debug:
            print(f"[symdl] pass {name}: {before} -> {len(toposort(out))} nodes")
    return out


_FREE = frozenset({"reshape", "broadcast_to", "transpose", "slice", "input", "const", "iota"})


def _cost(outputs) -> int:
    """Elements computed, plus :data:`KERNEL_ELEMENTS` per reduction or
    contraction: a rough cost of a graph (views are free)."""
    cost = 0
    for n in toposort(outputs):
        if n.op in _FREE:
            continue
        if n.op == "dot_general":
            cost += n.size * math.prod(n.inputs[0].shape[i] for i in n.attr("contract")[0]) + KERNEL_ELEMENTS
        elif n.op in ("reduce_sum", "reduce_max", "take_add"):
            cost += n.inputs[0].size + KERNEL_ELEMENTS
        else:
            cost += n.size
    return cost
