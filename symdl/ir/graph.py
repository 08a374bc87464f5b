"""``Graph``: a traced program (inputs -> outputs) with printer, verifier,
interpreter and views as SymPy, LaTeX and Graphviz."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .interpret import interpret
from .node import ArrayValue, Node
from .ops import primitive
from .rewrite import toposort
from .shapes import ShapeError

__all__ = ["Graph", "verify"]


class Graph:
    """An immutable program: ordered graph ``inputs`` and ``outputs`` nodes.

    ``len(graph)`` counts its nodes (inputs and constants included).

    Example:
        >>> import symdl
        >>> g = symdl.trace(lambda x: symdl.sin(x) * x, 0.5)
        >>> len(g)
        3
    """

    def __init__(self, inputs: Sequence[Node], outputs: Sequence[Node],
                 input_names: Sequence[str] | None = None):
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        reachable = toposort(self.outputs)
        seen = set(reachable)
        self.nodes: tuple[Node, ...] = tuple([i for i in self.inputs if i not in seen] + reachable)
        names = input_names or [i.attr("name") for i in self.inputs]
        self.names = dict(zip(self.inputs, names))

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self):
        return iter(self.nodes)

    def __repr__(self) -> str:
        return f"<Graph: {len(self.inputs)} inputs, {len(self.outputs)} outputs, {len(self)} nodes>"

    # ------------------------------------------------------------ evaluation
    def __call__(self, *values) -> list[np.ndarray]:
        """Evaluate with the numpy reference interpreter."""
        if len(values) != len(self.inputs):
            raise TypeError(f"Graph: expected {len(self.inputs)} input values, got {len(values)}")
        bindings = {}
        for node, value in zip(self.inputs, values):
            arr = np.asarray(value)
            if arr.shape != node.shape:
                raise ValueError(f"Graph: input {self.names[node]!r} expects shape {node.shape}, got {arr.shape}")
            bindings[node] = arr
        return interpret(list(self.outputs), bindings)

    # ------------------------------------------------------------ views
    def __str__(self) -> str:
        """Deterministic text: one line per node, ``%k = op(%i, %j; attrs)``."""
        ids = {n: k for k, n in enumerate(self.nodes)}
        lines = []
        for n in self.nodes:
            args = ", ".join(f"%{ids[i]}" for i in n.inputs)
            attrs = "; ".join(f"{k}={_fmt(v)}" for k, v in n.attrs if not (n.op == "input" and k == "name"))
            if n.op == "input":
                attrs = f"name={self.names.get(n, n.attr('name'))!r}"
            body = ", ".join(p for p in (args, attrs) if p)
            lines.append(f"%{ids[n]} = {n.op}({body}) : {n.dtype}{list(n.shape)}")
        outs = ", ".join(f"%{ids[o]}" for o in self.outputs)
        lines.append(f"return {outs}")
        return "\n".join(lines)

    def to_sympy(self):
        """The outputs as SymPy expressions (one, or a list when several).

        Elementwise arithmetic and functions read as ordinary mathematics;
        array operations appear as undefined functions named after the op.
        """
        from .sympy_bridge import to_sympy
        exprs = to_sympy(list(self.outputs), list(self.nodes), self.names)
        return exprs[0] if len(exprs) == 1 else exprs

    def latex(self) -> str:
        """LaTeX of :meth:`to_sympy` (outputs separated by commas)."""
        import sympy
        exprs = self.to_sympy()
        exprs = exprs if isinstance(exprs, list) else [exprs]
        return ",\\quad ".join(sympy.latex(e) for e in exprs)

    def dot(self) -> str:
        """Graphviz ``digraph`` text of the graph."""
        ids = {n: k for k, n in enumerate(self.nodes)}
        lines = ["digraph symdl {", "  rankdir=BT;", "  node [shape=box, fontname=monospace];"]
        for n in self.nodes:
            if n.op == "input":
                label = self.names.get(n, n.attr("name"))
            elif n.op == "const":
                label = _fmt(n.attr("value"))
            else:
                label = n.op + "".join(f"\\n{k}={_fmt(v)}" for k, v in n.attrs)
            shape = "ellipse" if n.op in ("input", "const") else "box"
            lines.append(f'  n{ids[n]} [label="{label} {list(n.shape)}", shape={shape}];')
            for i in n.inputs:
                lines.append(f"  n{ids[i]} -> n{ids[n]};")
        for k, o in enumerate(self.outputs):
            lines.append(f'  out{k} [label="output {k}", shape=plaintext];')
            lines.append(f"  n{ids[o]} -> out{k};")
        lines.append("}")
        return "\n".join(lines)

    def verify(self) -> None:
        """Check the IR invariants; raise ``ValueError`` naming the bad node."""
        verify(self.nodes)


def _fmt(value) -> str:
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_fmt(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, ArrayValue):
        return repr(value)
    return repr(value)


def verify(nodes: Sequence[Node]) -> None:
    """Every node's shape/dtype agrees with inference and inputs come first."""
    position = {n: k for k, n in enumerate(nodes)}
    for k, n in enumerate(nodes):
        prim = primitive(n.op)
        for i in n.inputs:
            if position.get(i, k) >= k:
                raise ValueError(f"verify: {n!r} uses {i!r} before it is defined")
        if prim.kind == "leaf":
            if n.inputs:
                raise ValueError(f"verify: leaf {n!r} has operands")
            continue
        try:
            shape, dtype = prim.infer(n.inputs, dict(n.attrs))
        except ShapeError as err:
            raise ValueError(f"verify: {n!r}: {err}") from None
        if tuple(shape) != n.shape or dtype != n.dtype:
            raise ValueError(f"verify: {n!r} says {n.shape}:{n.dtype}, inference gives {tuple(shape)}:{dtype}")
