"""The numpy reference interpreter: the oracle for eager values, every rewrite
pass and all compiled code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .node import Node
from .ops import primitive
from .rewrite import toposort

__all__ = ["evaluate", "interpret", "eval_node"]


def eval_node(node: Node, values: Sequence[np.ndarray]) -> np.ndarray:
    """Evaluate one node from the values of its inputs."""
    out = primitive(node.op).impl(list(values), node)
    out = np.asarray(out)
    if out.dtype != node.dtype:
        out = out.astype(node.dtype)
    if out.shape != node.shape:
        raise AssertionError(f"interpreter produced shape {out.shape} for {node!r}")
    return out


def evaluate(outputs: Sequence[Node], memo: dict[Node, np.ndarray]) -> list[np.ndarray]:
    """Values of ``outputs``; ``memo`` holds known values (inputs included) and
    receives every value computed on the way."""
    for node in toposort(outputs):
        if node not in memo:
            if node.op == "input":
                raise ValueError(f"no value bound for graph input {node.attr('name')!r}")
            memo[node] = eval_node(node, [memo[i] for i in node.inputs])
    return [memo[o] for o in outputs]


def interpret(outputs: Sequence[Node], bindings: Mapping[Node, np.ndarray]) -> list[np.ndarray]:
    """Evaluate ``outputs`` with graph inputs bound by ``bindings``."""
    memo: dict[Node, np.ndarray] = {}
    for node, value in bindings.items():
        memo[node] = np.asarray(value, dtype=node.dtype).reshape(node.shape)
    return evaluate(outputs, memo)
