"""Canonicalising node builders: the only way the front end and the
differentiation rules make nodes.

Each builder infers shape and dtype (errors name the op and the shapes),
builds the canonical form (sums and products straight from their fields,
other ops by running the construction rule sets on the interned raw node), so
the graph is in canonical form at every moment: n-ary sums ``{term: coefficient}``,
n-ary products ``{factor: exponent}``, constants folded, trivial movement
removed.
"""

from __future__ import annotations

from typing import Any
from collections.abc import Iterable, Sequence

import numpy as np

from .node import ArrayValue, Node, make_node
from .ops import PRIMITIVES, primitive
from .rewrite import AFTER_CONSTRUCTOR, CONSTRUCTION, CONSTRUCTORS, rewrite_node
from .shapes import ShapeError, broadcast_shapes

__all__ = [
    "emit", "rebuild", "const", "fill", "input_node", "linear", "add", "sub", "neg", "scale",
    "mul", "div", "ipow", "powc", "fn", "where", "compare", "convert", "broadcast_to",
    "reshape", "transpose", "slice_", "unslice", "concatenate", "reduce_sum", "reduce_max",
    "dot_general", "take", "take_add", "unbroadcast", "expand_to", "as_attrs", "iota", "eye",
    "split_scale", "product_term", "sum_of_products",
]


def as_attrs(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    if len(attrs) < 2:  # nothing to sort (most elementwise ops: no attrs at all)
        return tuple(attrs.items())
    return tuple(sorted(attrs.items()))


def emit(op: str, inputs: Sequence[Node], **attrs: Any) -> Node:
    """Build ``op(inputs; attrs)`` in canonical form."""
    if type(inputs) is not tuple:
        inputs = tuple(inputs)
    prim = PRIMITIVES.get(op) or primitive(op)  # (primitive() raises the error naming an unknown op)
    if prim.arity is not None and len(inputs) != prim.arity:
        raise ShapeError(f"{op}: takes {prim.arity} operands, got {len(inputs)}")
    shape, dtype = prim.infer(inputs, attrs)
    shape = tuple(map(int, shape))
    construct = CONSTRUCTORS.get(op)
    if construct is not None:
        # canonical before interning: the raw node is never built
        node = construct(inputs, attrs, shape, dtype)
        if node is None:
            node = make_node(op, inputs, as_attrs(attrs), shape, dtype)
        return rewrite_node(node, AFTER_CONSTRUCTOR)
    node = make_node(op, inputs, as_attrs(attrs), shape, dtype)
    return rewrite_node(node, CONSTRUCTION)


def rebuild(node: Node, inputs: tuple[Node, ...]) -> Node:
    """``node`` with new inputs of the same shapes (raw: rules run afterwards)."""
    prim = primitive(node.op)
    if prim.kind == "leaf":
        return node
    shape, dtype = prim.infer(inputs, dict(node.attrs))
    if shape != node.shape or dtype != node.dtype:
        shape, dtype = node.shape, node.dtype
    return make_node(node.op, inputs, node.attrs, shape, dtype)


# ---------------------------------------------------------------- leaves

def const(value: Any, shape: Sequence[int] | None = None, dtype: str = "float64") -> Node:
    """A constant; all-equal values are stored as one scalar fill value."""
    if type(value) in (float, int) and dtype in ("float32", "float64"):
        # the common case (fills made by rules): no numpy round trip
        shape = () if shape is None else tuple(int(d) for d in shape)
        v = float(value)
        if dtype == "float32":
            v = float(np.float32(v))
        return make_node("const", (), (("value", v),), shape, dtype)
    arr = np.asarray(value)
    if shape is None:
        shape = arr.shape
    shape = tuple(int(d) for d in shape)
    arr = np.broadcast_to(arr.astype(dtype), shape)
    flat = arr.reshape(-1)
    if arr.size == 0 or bool(np.all(flat == flat[0])) and not np.isnan(flat[0]) or arr.ndim == 0:
        scalar = flat[0].item() if arr.size else 0.0
        if dtype in ("float32", "float64"):
            scalar = float(scalar)
        return make_node("const", (), (("value", scalar),), shape, dtype)
    if bool(np.all(np.isnan(flat))):
        return make_node("const", (), (("value", float("nan")),), shape, dtype)
    return make_node("const", (), (("value", ArrayValue(arr)),), shape, dtype)


def fill(value: float, like: Node, shape: Sequence[int] | None = None) -> Node:
    return const(value, like.shape if shape is None else shape, like.dtype)


def input_node(name: str, shape: Sequence[int], dtype: str) -> Node:
    return make_node("input", (), (("name", name),), tuple(int(d) for d in shape), dtype)


def iota(shape: Sequence[int], axis: int, dtype: str = "float64") -> Node:
    return emit("iota", (), shape=tuple(int(d) for d in shape), axis=int(axis), dtype=dtype)


def eye(n: int, dtype: str = "float64") -> Node:
    """The n x n identity matrix."""
    return convert(compare("eq", iota((n, n), 0, dtype), iota((n, n), 1, dtype)), dtype)



# ---------------------------------------------------------------- arithmetic

def linear(terms: Iterable[tuple[Node, float]], constant: float = 0.0) -> Node:
    """``constant + sum(c * t)`` in canonical form."""
    terms = [(t, float(c)) for t, c in terms]
    if not terms:
        raise ValueError("linear: needs at least one term")
    return emit("add", [t for t, _ in terms], coeffs=tuple(c for _, c in terms), const=float(constant))


def add(*xs: Node) -> Node:
    return linear((x, 1.0) for x in xs)


def sub(a: Node, b: Node) -> Node:
    return linear([(a, 1.0), (b, -1.0)])


def neg(a: Node) -> Node:
    return linear([(a, -1.0)])


def scale(a: Node, c: float) -> Node:
    if c == 1.0:
        return a
    if a.op != "add" and a.op != "const" and a.dtype in _FLOATS:
        # ``c a`` of a term that is neither a sum (whose coefficients would
        # absorb c) nor a constant (which would fold): its canonical form is
        # the one-term sum with these very fields (canonical_sum finds
        # nothing to change), interned directly.  ``y * 0.999`` in a traced loop.
        node = make_node("add", (a,), (("coeffs", (float(c),)), ("const", 0.0)), a.shape, a.dtype)
        return rewrite_node(node, AFTER_CONSTRUCTOR)
    return linear([(a, c)])


_FLOATS = ("float32", "float64")


def split_scale(v: Node) -> tuple[float, Node | None]:
    """``v`` as ``coefficient * node`` (node ``None``: ``v`` is a constant fill)."""
    c = v.const_scalar()
    if c is not None:
        return c, None
    if v.op == "add" and len(v.inputs) == 1 and v.attrs[1][1] == 0.0:
        return v.attrs[0][1][0], v.inputs[0]
    return 1.0, v


def product_term(coeff: float, factors: Iterable[Node]) -> tuple[float, Node | None]:
    """``coeff * prod(factors)`` as ``(coefficient, canonical product)``: the
    factors' own coefficients are pulled out before the product is built, so
    no scaled product (``c * (a b)``, a node of its own) is made only to be
    taken apart by the sum it goes into.  Node ``None``: the term is a constant."""
    bases = []
    for f in factors:
        c, base = split_scale(f)
        coeff *= c
        if base is not None:
            bases.append(base)
    if not bases:
        return coeff, None
    prod = bases[0] if len(bases) == 1 else mul(*bases)
    c, base = split_scale(prod)
    return coeff * c, base


def sum_of_products(terms: Iterable[tuple[float, Sequence[Node]]], like: Node, constant: float = 0.0) -> Node:
    """``constant + sum(c * prod(factors))`` as one canonical sum of ``like``'s
    shape and dtype (see :func:`product_term`).

    Example:
        >>> x = input_node("x", (), "float64")
        >>> sum_of_products([(2.0, [x, x]), (1.0, [scale(x, 3.0)])], x) is linear([(ipow(x, 2), 2.0), (x, 3.0)])
        True
    """
    collected = []
    for c, factors in terms:
        c, base = product_term(c, factors)
        if base is None:
            constant += c
        else:
            collected.append((base, c))
    if not collected:
        return fill(constant, like)
    out = linear(collected, constant)
    return out if out.shape == like.shape else broadcast_to(out, like.shape)


def mul(*xs: Node) -> Node:
    return emit("mul", xs, exps=(1,) * len(xs))


def div(a: Node, b: Node) -> Node:
    return emit("mul", (a, b), exps=(1, -1))


def ipow(a: Node, n: int) -> Node:
    if n == 0:
        return fill(1.0, a)
    return emit("mul", (a,), exps=(int(n),))


def powc(a: Node, p: float) -> Node:
    """``a ** p`` for a constant exponent (integers become products)."""
    p = float(p)
    if p.is_integer() and abs(p) < 2**31:
        return ipow(a, int(p))
    return emit("powc", (a,), p=p)


def fn(name: str, *args: Node) -> Node:
    """An elementwise function (exp, sin, atan2, maximum, ...) of broadcast operands."""
    return emit(name, args)


def where(cond: Node, a: Node, b: Node) -> Node:
    return emit("where", (cond, a, b))


def compare(op: str, a: Node, b: Node) -> Node:
    return emit(op, (a, b))


def convert(a: Node, dtype: str) -> Node:
    return a if a.dtype == dtype else emit("convert", (a,), dtype=dtype)


# ---------------------------------------------------------------- movement

def broadcast_to(a: Node, shape: Sequence[int]) -> Node:
    return emit("broadcast_to", (a,), shape=tuple(int(d) for d in shape))


def reshape(a: Node, shape: Sequence[int]) -> Node:
    return emit("reshape", (a,), shape=tuple(int(d) for d in shape))


def transpose(a: Node, perm: Sequence[int]) -> Node:
    return emit("transpose", (a,), perm=tuple(int(p) for p in perm))


def _norm_slice(s: slice, n: int) -> tuple[int, int | None, int]:
    if len(range(n)[s]) == 0:
        return 0, 0, 1  # every empty selection is the same one (and never a negative offset)
    start, stop, step = s.indices(n)
    if step < 0 and stop < 0:
        stop = None  # "through index 0": keep it representable
    return start, stop, step


def slice_(a: Node, slices: Sequence[slice]) -> Node:
    """Basic slicing, one ``slice`` per axis (missing trailing axes are full)."""
    slices = list(slices) + [slice(None)] * (a.ndim - len(slices))
    norm = [_norm_slice(s, n) for s, n in zip(slices, a.shape)]
    return emit("slice", (a,), starts=tuple(s[0] for s in norm), stops=tuple(s[1] for s in norm),
                steps=tuple(s[2] for s in norm))


def unslice(a: Node, starts, stops, steps, shape) -> Node:
    """Zeros of ``shape`` with ``a`` placed at the slice positions (slice's VJP)."""
    return emit("unslice", (a,), starts=tuple(starts), stops=tuple(stops), steps=tuple(steps),
                shape=tuple(shape))


def concatenate(xs: Sequence[Node], axis: int) -> Node:
    return emit("concatenate", tuple(xs), axis=int(axis))


def reduce_sum(a: Node, axes: Sequence[int]) -> Node:
    return emit("reduce_sum", (a,), axes=tuple(sorted(int(x) for x in axes)))


def reduce_max(a: Node, axes: Sequence[int]) -> Node:
    return emit("reduce_max", (a,), axes=tuple(sorted(int(x) for x in axes)))


def dot_general(a: Node, b: Node, contract, batch=((), ())) -> Node:
    contract = (tuple(contract[0]), tuple(contract[1]))
    batch = (tuple(batch[0]), tuple(batch[1]))
    return emit("dot_general", (a, b), contract=contract, batch=batch)


def take(a: Node, idx: Node, axis: int) -> Node:
    return emit("take", (a, idx), axis=int(axis))


def take_add(g: Node, idx: Node, axis: int, size: int) -> Node:
    return emit("take_add", (g, idx), axis=int(axis), size=int(size))


def substitute(outputs: Sequence[Node], mapping: dict[Node, Node], replace=None) -> list[Node]:
    """``outputs`` with nodes replaced per ``mapping`` (same shapes), rebuilt
    in canonical form.  ``replace(node, new_inputs)``, when given, may
    return the replacement of a node from its rebuilt inputs (None: rebuild
    it as it is)."""
    from .rewrite import toposort
    new = dict(mapping)
    for node in toposort(outputs):
        if node in new or not node.inputs:
            continue
        ins = tuple(new.get(i, i) for i in node.inputs)
        made = None if replace is None else replace(node, ins)
        if made is not None:
            new[node] = made
        elif ins != node.inputs:
            new[node] = emit(node.op, ins, **dict(node.attrs))
    return [new.get(o, o) for o in outputs]


# ---------------------------------------------------------------- broadcasting helpers

def unbroadcast(g: Node, shape: tuple[int, ...]) -> Node:
    """Sum ``g`` down to ``shape`` (the adjoint of numpy broadcasting)."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = list(range(lead)) + [lead + i for i, d in enumerate(shape) if d == 1 and g.shape[lead + i] != 1]
    summed = reduce_sum(g, axes)
    return reshape(summed, shape)


def expand_to(g: Node, shape: tuple[int, ...], axes: Sequence[int]) -> Node:
    """Broadcast a reduction result ``g`` back over the reduced ``axes`` of ``shape``."""
    kept = [1 if i in axes else d for i, d in enumerate(shape)]
    return broadcast_to(reshape(g, kept), shape)



def common_shape(op: str, nodes: Sequence[Node]) -> tuple[int, ...]:
    return broadcast_shapes(op, [n.shape for n in nodes])
