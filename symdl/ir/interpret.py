"""The numpy reference interpreter: the oracle for eager values, every rewrite
pass and all compiled code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .node import Node
from .ops import PRIMITIVES
from .shapes import dtype_name

__all__ = ["evaluate", "interpret", "eval_node"]


_DTYPES = {name: np.dtype(name) for name in ("float32", "float64", "bool", "int64")}


def eval_node(node: Node, values: Sequence[np.ndarray]) -> np.ndarray:
    """Evaluate one node from the values of its inputs."""
    out = PRIMITIVES[node.op].impl(values if type(values) is list else list(values), node)
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    dt = out.dtype
    # (the usual dtype object by identity, else by cached name: comparing a
    # dtype with a str parses the str)
    if dt is not _DTYPES.get(node.dtype) and dtype_name(dt) != node.dtype:
        out = out.astype(node.dtype)
    if out.shape != node.shape:
        raise AssertionError(f"interpreter produced shape {out.shape} for {node!r}")
    return out


def evaluate(outputs: Sequence[Node], memo: dict[Node, np.ndarray]) -> list[np.ndarray]:
    """Values of ``outputs``; ``memo`` holds known values (inputs included) and
    receives every value computed on the way.

    Only nodes without a value are visited: the walk stops at memoised nodes,
    so evaluating a new node of a long trace costs the new nodes, not the
    whole graph (this keeps eager ``dlfeval`` linear in the trace length).

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (), "float64")
        >>> memo = {x: np.float64(3.0)}
        >>> evaluate([B.mul(x, x)], memo)[0]
        array(9.)
    """
    for out in outputs:
        if out not in memo:
            _evaluate_missing(out, memo)
    return [memo[o] for o in outputs]


def _evaluate_missing(out: Node, memo: dict[Node, np.ndarray]) -> None:
    """Evaluate ``out`` and whatever it needs that ``memo`` lacks, inputs
    first.  Iterative: no recursion limit on deep graphs."""
    stack = [out]
    while stack:
        node = stack[-1]
        if node in memo:
            stack.pop()
            continue
        missing = [i for i in node.inputs if i not in memo]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        if node.op == "input":
            raise ValueError(f"no value bound for graph input {node.attr('name')!r}")
        memo[node] = eval_node(node, [memo[i] for i in node.inputs])


def interpret(outputs: Sequence[Node], bindings: Mapping[Node, np.ndarray]) -> list[np.ndarray]:
    """Evaluate ``outputs`` with graph inputs bound by ``bindings``."""
    memo: dict[Node, np.ndarray] = {}
    for node, value in bindings.items():
        memo[node] = np.asarray(value, dtype=node.dtype).reshape(node.shape)
    return evaluate(outputs, memo)
