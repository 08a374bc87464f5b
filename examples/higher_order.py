"""Higher derivatives stay small: symdl's graph against SymPy's common-subexpression form.

For g(x) = exp(sin(x)) / (1 + x^2), the k-th derivative is built by k nested
``dlgradient(..., enable_higher_derivatives=True)`` calls and traced with
``symdl.trace``.  Its size (``len(graph)``: every node, the input and the
constants included) is compared with the operation count of SymPy's
``cse(diff(g, x, k))`` (``count_ops`` summed over the replacements and the
reduced expression), and its values with SymPy's, evaluated to 30 digits.

The bound symdl holds itself to: the graph is no larger than SymPy's CSE form
(target) and never above 1.5 times it (hard limit).  What keeps it there:
canonical sums and products, interning, and forward mode for a scalar x
(docs/concepts.md shows nested reverse mode growing about twice per order
instead).  Exit status 1 when the hard limit or the accuracy check fails.

Run from the repository root:

    python examples/higher_order.py
"""

from __future__ import annotations

import sys

import numpy as np
import sympy

import symdl

ORDERS = (1, 2, 4, 6, 8)
POINTS = (-2.0, -0.7, 0.5, 1.3, 3.0)
HARD_LIMIT = 1.5            # len(graph) / SymPy CSE ops must stay at or below this
RELATIVE_TOLERANCE = 1e-10  # float64 values against 30-digit SymPy values

X = sympy.Symbol("x", real=True)
G = sympy.exp(sympy.sin(X)) / (1 + X**2)


def g(x):
    return symdl.exp(symdl.sin(x)) / (1 + x**2)


def kth_derivative(k: int):
    """The function x -> g^(k)(x), by k nested dlgradient calls."""
    def f(x):
        y = g(x)
        for _ in range(k):
            y = symdl.dlgradient(y, x, enable_higher_derivatives=True)
        return y
    f.__name__ = f"g_{k}"
    return f


def sympy_cse_ops(expr: sympy.Expr) -> int:
    """Operations of SymPy's common-subexpression form of ``expr``."""
    replacements, reduced = sympy.cse(expr)
    return sum(sympy.count_ops(e) for _, e in replacements) + sum(sympy.count_ops(e) for e in reduced)


def max_relative_error(graph: symdl.Graph, exact: sympy.Expr) -> float:
    worst = 0.0
    for p in POINTS:
        (value,) = graph(np.float64(p))
        reference = float(exact.evalf(30, subs={X: sympy.Float(p, 30)}))
        worst = max(worst, abs(float(value) - reference) / abs(reference))
    return worst


def main() -> int:
    print("symdl: k-th derivative of g(x) = exp(sin(x)) / (1 + x^2), k nested dlgradient calls")
    print(f"graph traced at x = 0.5; values checked at x = {', '.join(f'{p:g}' for p in POINTS)}\n")
    header = f"{'k':>2}  {'symdl len(graph)':>16}  {'SymPy CSE ops':>13}  {'ratio':>5}  {'max rel. error':>14}"
    print(header)
    print("-" * len(header))
    rows = []
    graphs = {}
    for k in ORDERS:
        graph = symdl.trace(kth_derivative(k), 0.5)
        graphs[k] = graph
        exact = sympy.diff(G, X, k)
        ops = sympy_cse_ops(exact)
        error = max_relative_error(graph, exact)
        rows.append((k, len(graph), ops, len(graph) / ops, error))
        print(f"{k:>2}  {len(graph):>16}  {ops:>13}  {len(graph) / ops:>5.2f}  {error:>14.1e}")

    print("\n(len(graph) counts every node: the input, constants and operations;"
          " SymPy CSE ops = count_ops over cse's replacements and reduced expression)")
    for k in (1, 2):
        print(f"\ng^({k})(x) as LaTeX (graph.latex()):\n  {graphs[k].latex()}")

    at_most_sympy = sum(1 for _, n, ops, _, _ in rows if n <= ops)
    worst_ratio = max(r for *_, r, _ in rows)
    worst_error = max(e for *_, e in rows)
    bound_holds = worst_ratio <= HARD_LIMIT
    accurate = worst_error <= RELATIVE_TOLERANCE
    print(f"\nsymdl <= SymPy at {at_most_sympy} of {len(rows)} orders; largest ratio {worst_ratio:.2f}")
    print(f"bound (never above {HARD_LIMIT}x SymPy's CSE ops): {'PASS' if bound_holds else 'FAIL'}")
    print(f"accuracy (max relative error {worst_error:.1e} <= {RELATIVE_TOLERANCE:g}): "
          f"{'PASS' if accurate else 'FAIL'}")
    return 0 if bound_holds and accurate else 1


if __name__ == "__main__":
    sys.exit(main())
