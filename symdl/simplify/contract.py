"""Contractions of tangent-batched products: sums distributed inside
reductions, factors pulled out of them, products summed as contractions.

A Jacobian or Hessian batches a derivative over the rows of ``eye``
(``symdl.compiler.transforms``): every tangent is a ``(K, ...)`` array, and
the tangent of a weight is a slice of ``eye`` reshaped to the weight's shape.
Computed as written, the Hessian of an MLP loss multiplies and sums
``(K, batch, hidden)`` arrays although each term of them is a product of
small factors: ``eye[k, j] * x[n]``, ``w[j] * r[k, n]``...  These rules read
the operand of a ``reduce_sum`` or ``dot_general`` as a sum of products of
*factors*, each a node that depends on a subset of the index space, and

* distribute the sum (only where some term is made of smaller factors than
  the sum itself),
* pull factors that do not depend on a summed axis out of the sum,
* sum the remaining factors pairwise, smallest product first, as a
  ``dot_general`` over their shared summed axes (the einsum order).

With the identity-pattern rules below (a contraction with a slice of
``eye`` is a slice and an unslice; a 2-element contraction against one is
two products) and the band rule of :mod:`.structure`, the tangent arrays
are never built.  Real-number algebra (re-association, ``0 * x -> 0`` where
an identity pattern is zero), see docs/ieee.md: the ``contract`` pass runs
only in :func:`symdl.simplify.simplify` (not while nodes are built) and only
on nodes computed from an identity pattern, never under ``ieee=True``.
"""

from __future__ import annotations

import itertools
import math
import weakref
from dataclasses import dataclass

from ..ir import build as B
from ..ir.node import Node
from ..ir.rewrite import rule
from .structure import Band, Segment, band_node, band_of

__all__ = ["Factor", "touches_basis"]

_MAX_TERMS = 12       # a sum of products with more terms is left as it is
_MAX_UNROLL = 4        # contractions of at most this many elements against eye become products
_FLOATS = ("float32", "float64")


@dataclass(frozen=True)
class Factor:
    """``node ** exp`` read in an index space: dimension ``i`` of ``node``
    is index axis ``axes[i]`` (``None``: a size-1 dimension, broadcast)."""

    node: Node
    axes: tuple[int | None, ...]
    exp: int = 1

    @property
    def deps(self) -> frozenset[int]:
        return frozenset(a for a in self.axes if a is not None)


# ---------------------------------------------------------------- which nodes come from eye

_BASIS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _is_identity(node: Node) -> bool:
    band = band_of(node) if node.ndim == 2 else None
    return band is not None and band.pure


def _is_root(n: Node) -> bool:
    """An identity pattern, or a band the structure rules built from one."""
    if n.op in ("convert", "const"):
        return _is_identity(n)
    return n.op == "take_add" and n.ndim == 2 and band_of(n) is not None


def touches_basis(node: Node) -> bool:
    """Whether ``node`` is computed from an identity pattern (``eye`` or a
    slice of it): the graphs that Jacobians and Hessians build."""
    got = _BASIS.get(node)
    if got is not None:
        return got
    stack, order = [node], []
    while stack:   # iterative: deep graphs
        n = stack.pop()
        if n in _BASIS:
            continue
        order.append(n)
        stack.extend(i for i in n.inputs if i not in _BASIS)
    for n in reversed(order):
        if n not in _BASIS:
            _BASIS[n] = _is_root(n) or any(_BASIS.get(i, False) for i in n.inputs)
    return _BASIS[node]


# ---------------------------------------------------------------- factors of a node

def _operand_axes(x: Node, shape: tuple[int, ...], axes: tuple[int | None, ...]) -> tuple[int | None, ...]:
    """Index axes of an operand ``x`` broadcast (numpy rules) to ``shape``."""
    lead = len(shape) - x.ndim
    return tuple(None if d == 1 else axes[lead + i] for i, d in enumerate(x.shape))


def view(x: Node, axes: tuple[int | None, ...], exp: int = 1) -> Factor:
    """``x`` as a factor, looking through broadcasts, transposes and
    reshapes that only add or drop size-1 dimensions."""
    while True:
        axes = tuple(None if d == 1 else a for d, a in zip(x.shape, axes))
        if x.op == "broadcast_to":
            y = x.inputs[0]
            x, axes = y, _operand_axes(y, x.shape, axes)
        elif x.op == "transpose":
            perm = x.attr("perm")
            inner: list[int | None] = [None] * x.ndim
            for i, p in enumerate(perm):
                inner[p] = axes[i]
            x, axes = x.inputs[0], tuple(inner)
        elif x.op == "reshape" and [d for d in x.shape if d != 1] == [d for d in x.inputs[0].shape if d != 1]:
            kept = iter([a for d, a in zip(x.shape, axes) if d != 1])
            y = x.inputs[0]
            x, axes = y, tuple(None if d == 1 else next(kept) for d in y.shape)
        else:
            return Factor(x, axes, exp)


class _TooMany(Exception):
    pass


def _times(left: list, right: list) -> list:
    out = [(c1 * c2, f1 + f2) for (c1, f1), (c2, f2) in itertools.product(left, right)]
    if len(out) > _MAX_TERMS:
        raise _TooMany
    return out


def _expand(f: Factor, memo: dict) -> list[tuple[float, tuple[Factor, ...]]]:
    """``f`` as a sum of products of factors: ``[(coefficient, factors)]``."""
    key = (f.node, f.axes, f.exp)
    got = memo.get(key)
    if got is not None:
        return got
    x = f.node
    out: list = [(1.0, (f,))]
    if x.op == "mul" and x.dtype in _FLOATS:
        out = [(1.0, ())]
        for inp, e in zip(x.inputs, x.attr("exps")):
            out = _times(out, _expand(view(inp, _operand_axes(inp, x.shape, f.axes), e * f.exp), memo))
    elif x.op == "add" and len(x.inputs) == 1 and x.attr("const") == 0.0 and x.dtype in _FLOATS:
        (inp,) = x.inputs   # a scaled node: its coefficient, out of the factors
        c = x.attr("coeffs")[0] ** f.exp
        out = [(c * cc, fs) for cc, fs in _expand(view(inp, _operand_axes(inp, x.shape, f.axes), f.exp), memo)]
    elif x.op == "add" and f.exp == 1 and x.dtype in _FLOATS:
        # distribute the terms made of smaller factors than the sum; the
        # others stay one sum (one factor): a dense term gains nothing
        rank = len(f.deps)
        small, rest = [], []
        for inp, c in zip(x.inputs, x.attr("coeffs")):
            sub = _expand(view(inp, _operand_axes(inp, x.shape, f.axes)), memo)
            if all(all(len(g.deps) < rank for g in fs) for _, fs in sub):
                small += [(c * cc, fs) for cc, fs in sub]
            else:
                rest.append((inp, c))
        if small:
            if x.attr("const") != 0.0:
                small.append((x.attr("const"), ()))
            if rest:
                residual = B.linear(rest)
                small.append((1.0, (view(residual, _operand_axes(residual, x.shape, f.axes)),)))
            if len(small) > _MAX_TERMS:
                raise _TooMany
            out = small
    memo[key] = out
    return out


# ---------------------------------------------------------------- building products and sums

def _aligned(f: Factor, order: list[int], shape: tuple[int, ...]) -> Node:
    """``f``'s node with its dimensions in ``order`` (size 1 where ``f`` does
    not depend on an axis of ``order``)."""
    x = f.node
    kept = [a for a in f.axes if a is not None]
    dims = [d for d, a in zip(x.shape, f.axes) if a is not None]
    if list(x.shape) != dims:
        x = B.reshape(x, dims)
    perm = sorted(range(len(kept)), key=lambda i: order.index(kept[i]))
    if perm != list(range(len(kept))):
        x = B.transpose(x, perm)
    target = [shape[a] if a in kept else 1 for a in order]
    return x if list(x.shape) == target else B.reshape(x, target)


def _product(factors: list[Factor], order: list[int], shape: tuple[int, ...], dtype: str) -> Node:
    """The product of ``factors`` over the index axes ``order`` (broadcast to them)."""
    full = tuple(shape[a] for a in order)
    if not factors:
        return B.const(1.0, full, dtype)
    nodes = [_aligned(f, order, shape) for f in factors]
    exps = tuple(f.exp for f in factors)
    out = nodes[0] if exps == (1,) else B.emit("mul", nodes, exps=exps)
    return out if out.shape == full else B.broadcast_to(out, full)


class _Group:
    def __init__(self, node: Node, axes: list[int]):
        self.node, self.axes = node, axes


def _groups(dep: list[Factor], shape) -> list[list[Factor]]:
    """``dep`` merged pairwise, smallest product first, until two groups
    that are not one inside the other remain (or one)."""
    def size(axes):
        return math.prod(shape[a] for a in axes)

    groups = [[f] for f in dep]

    def axes(g):
        return frozenset().union(*(f.deps for f in g))

    while len(groups) > 1:
        if len(groups) == 2 and not (axes(groups[0]) <= axes(groups[1]) or axes(groups[1]) <= axes(groups[0])):
            break
        i, j = min(itertools.combinations(range(len(groups)), 2),
                   key=lambda p: (size(axes(groups[p[0]]) | axes(groups[p[1]])), p))
        merged = groups[i] + groups[j]
        groups = [g for k, g in enumerate(groups) if k not in (i, j)] + [merged]
    return groups


def _fkey(f: Factor) -> tuple:
    return (f.node, f.axes, f.exp)


def _group_node(g: list[Factor], summed: set[int], others: frozenset, shape, dtype) -> tuple[_Group, list[int]]:
    """The product of ``g`` summed over the summed axes no other group has."""
    order = sorted(frozenset().union(*(f.deps for f in g)))
    node = _product(g, order, shape, dtype)
    return _Group(node, order), [i for i, a in enumerate(order) if a in summed and a not in others]


def _dot(a: _Group, b: _Group, summed: set[int]) -> tuple[Node, list[int]]:
    shared = [x for x in a.axes if x in b.axes]
    contract = [x for x in shared if x in summed]
    batch = [x for x in shared if x not in summed]
    free_a = [x for x in a.axes if x not in shared]
    free_b = [x for x in b.axes if x not in shared]
    node = B.dot_general(a.node, b.node, ([a.axes.index(x) for x in contract], [b.axes.index(x) for x in contract]),
                         ([a.axes.index(x) for x in batch], [b.axes.index(x) for x in batch]))
    return node, batch + free_a + free_b


def _reduced(g: _Group, here: list[int]) -> _Group:
    if not here:
        return g
    return _Group(B.reduce_sum(g.node, here), [a for i, a in enumerate(g.axes) if i not in here])


def _sum_of_products(terms, summed: set[int], out_axes: list[int], shape, dtype) -> tuple[Node, bool]:
    """``sum(c * prod(factors))`` summed over ``summed``, laid out along
    ``out_axes``; and whether that is a different computation from the
    node it came from (a sum distributed, a factor pulled out, a
    contraction formed).

    Terms with the same factors outside the sum share one product of them;
    inside, terms summed over the same axes share one reduction of their
    sum, and contractions with one operand in common one ``dot_general``
    of the sum of the other operands."""
    changed = len(terms) > 1
    by_outside: dict[tuple, tuple[list[Factor], list]] = {}
    for c, fs in terms:
        outside = [f for f in fs if not (f.deps & summed)]
        dep = [f for f in fs if f.deps & summed]
        free = [a for a in summed if not any(a in f.deps for f in fs)]
        c *= math.prod(shape[a] for a in free)   # a summed axis no factor depends on
        changed |= bool(free)
        # a factor over axes the summed product has anyway costs nothing
        # inside it, and terms then share one reduction
        span = frozenset().union(*(f.deps for f in dep))
        inside = [f for f in outside if dep and f.deps <= span]
        outside = [f for f in outside if not (dep and f.deps <= span)]
        dep += inside
        changed |= bool(outside)
        key = tuple(sorted((_fkey(f) for f in outside), key=lambda k: (k[0].digest, str(k[1]), k[2])))
        by_outside.setdefault(key, (outside, []))[1].append((c, dep))
    parts = []
    for outside, inner in by_outside.values():
        sums: dict[tuple, list] = {}      # (axes, summed positions) -> [(product, c)]
        dots: dict[tuple, list] = {}      # (a, a axes, b axes) -> [(b product, c)]
        const = 0.0
        for c, dep in inner:
            if not dep:
                const += c
                continue
            groups = _groups(dep, shape)
            if len(groups) == 1:
                g, here = _group_node(groups[0], summed, frozenset(), shape, dtype)
                sums.setdefault((tuple(g.axes), tuple(here)), []).append((g.node, c))
                continue
            changed = True
            (ga, ha), (gb, hb) = (_group_node(groups[0], summed, frozenset().union(*(f.deps for f in groups[1])),
                                              shape, dtype),
                                  _group_node(groups[1], summed, frozenset().union(*(f.deps for f in groups[0])),
                                              shape, dtype))
            ga, gb = _reduced(ga, ha), _reduced(gb, hb)
            if not any(x in gb.axes for x in ga.axes if x in summed):   # nothing summed is shared
                prod = _product([Factor(ga.node, tuple(ga.axes)), Factor(gb.node, tuple(gb.axes))],
                                sorted(set(ga.axes) | set(gb.axes)), shape, dtype)
                order = sorted(set(ga.axes) | set(gb.axes))
                sums.setdefault((tuple(order), ()), []).append((prod, c))
                continue
            if ga.node.size < gb.node.size:   # the larger operand is the one shared
                ga, gb = gb, ga
            dots.setdefault((ga.node, tuple(ga.axes), tuple(gb.axes)), []).append((gb.node, c))
        pieces = []
        for (axes, here), members in sums.items():
            total = B.linear([(n, c) for n, c in members])
            g = _reduced(_Group(total, list(axes)), list(here))
            pieces.append((g.node, g.axes, 1.0))
        for (a, a_axes, b_axes), members in dots.items():
            # one member: its coefficient scales the (smaller) result
            total, scale = (members[0][0], members[0][1]) if len(members) == 1 else \
                (B.linear([(n, c) for n, c in members]), 1.0)
            ga, gb = _Group(a, list(a_axes)), _Group(total, list(b_axes))
            first = [out_axes.index(x) for x in a_axes if x in out_axes and x not in b_axes]
            second = [out_axes.index(x) for x in b_axes if x in out_axes and x not in a_axes]
            if first and second and min(second) < min(first):   # the result in the order it is used
                ga, gb = gb, ga
            node, axes = _dot(ga, gb, summed)
            pieces.append((node, axes, scale))
        inner_terms = [(_product([Factor(n, tuple(ax))], out_axes, shape, dtype), c) for n, ax, c in pieces]
        if const != 0.0:
            inner_terms.append((B.const(1.0, tuple(shape[a] for a in out_axes), dtype), const))
        inner_sum = B.linear(inner_terms)
        outer = _product(list(outside), out_axes, shape, dtype)
        parts.append(B.mul(outer, inner_sum) if outside else inner_sum)
    out = B.add(*parts)
    full = tuple(shape[a] for a in out_axes)
    return (out if out.shape == full else B.broadcast_to(out, full)), changed


# ---------------------------------------------------------------- the rules

def _index_of_reduce(node: Node):
    (x,) = node.inputs
    shape = x.shape
    summed = set(node.attr("axes"))
    factor = view(x, tuple(range(x.ndim)))
    return [factor], shape, summed, [i for i in range(x.ndim) if i not in summed]


def _index_of_dot(node: Node):
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    fa = [i for i in range(a.ndim) if i not in ca and i not in ba]
    fb = [i for i in range(b.ndim) if i not in cb and i not in bb]
    nb, nfa, nfb = len(ba), len(fa), len(fb)
    shape = tuple([a.shape[i] for i in ba] + [a.shape[i] for i in fa] + [b.shape[i] for i in fb]
                  + [a.shape[i] for i in ca])
    axes_a: list[int] = [0] * a.ndim
    axes_b: list[int] = [0] * b.ndim
    for p, (i, j) in enumerate(zip(ba, bb)):
        axes_a[i], axes_b[j] = p, p
    for q, i in enumerate(fa):
        axes_a[i] = nb + q
    for q, j in enumerate(fb):
        axes_b[j] = nb + nfa + q
    base = nb + nfa + nfb
    for r, (i, j) in enumerate(zip(ca, cb)):
        axes_a[i], axes_b[j] = base + r, base + r
    factors = [view(a, tuple(axes_a)), view(b, tuple(axes_b))]
    return factors, shape, set(range(base, len(shape))), list(range(base))


def _rewrite(node: Node, index) -> Node | None:
    if node.dtype not in _FLOATS or not touches_basis(node):
        return None
    factors, shape, summed, out_axes = index(node)
    memo: dict = {}
    try:
        terms = [(1.0, ())]
        for f in factors:
            terms = _times(terms, _expand(f, memo))
    except _TooMany:
        return None
    trivial = terms == [(1.0, tuple(factors))] and all(f.deps & summed for f in factors)
    # a slice of eye seen through a reshape: rebuilt 2-D, it becomes movement
    reveal = node.op == "dot_general" and any(f.node not in node.inputs and _ones_segment(f.node) is not None
                                              for f in factors)
    if trivial and not reveal:
        return None   # already a sum of its own operands
    out, changed = _sum_of_products(terms, summed, out_axes, shape, node.dtype)
    if not (changed or reveal):
        return None
    return out if out.shape == node.shape else B.reshape(out, node.shape)


@rule("contract", "reduce_sum")
def sum_of_products(node: Node) -> Node | None:
    """``reduce_sum`` of a product: factors that do not depend on the summed
    axes pulled out, sums distributed where their terms are smaller, the
    rest summed as a contraction (nodes computed from ``eye`` only).

    Example:
        >>> from symdl.ir import build as B
        >>> m = B.input_node("m", (6, 4), "float64")                    # m[n, j]
        >>> e = B.slice_(B.eye(9), [slice(None), slice(2, 6)])          # e[k, j]
        >>> node = B.reduce_sum(B.mul(B.reshape(e, (9, 1, 4)), B.reshape(m, (1, 6, 4))), [1])
        >>> new = sum_of_products(node)                                 # e[k, j] * sum_n m[n, j]
        >>> from symdl.ir.rewrite import toposort
        >>> new.shape, max(n.ndim for n in toposort([new]))            # no (9, 6, 4) product
        ((9, 4), 2)
    """
    return _rewrite(node, _index_of_reduce)


@rule("contract", "dot_general")
def contraction_of_products(node: Node) -> Node | None:
    """A ``dot_general`` of products or sums, read as the sum of products it
    is (see :func:`sum_of_products`)."""
    return _rewrite(node, _index_of_dot)


def _ones_segment(node: Node):
    """``(offset, row, length)`` of a 2-D node that is a slice of ``eye``:
    ones at ``(row + t, row + t + offset)``, zero elsewhere."""
    if node.ndim != 2 or node.dtype not in _FLOATS:
        return None
    band = band_of(node)
    if band is None or not band.pure or len(band.segments) != 1:
        return None
    (s,) = band.segments
    values = s.values
    if values.op != "const" or values.const_scalar() != 1.0:
        return None
    return s.offset, s.row, s.length


@rule("contract", "dot_general")
def contraction_with_identity(node: Node) -> Node | None:
    """``dot_general(E, M)`` with ``E`` a slice of ``eye`` (no batch axes)
    contracted over one of its axes: rows of ``M`` moved into place (a
    slice and an unslice), no arithmetic."""
    a, b = node.inputs
    (ca, cb), (ba, _) = node.attr("contract"), node.attr("batch")
    if ba or len(ca) != 1:
        return None
    for e, m, ce, cm, e_first in ((a, b, ca[0], cb[0], True), (b, a, cb[0], ca[0], False)):
        seg = _ones_segment(e)
        if seg is None:
            continue
        offset, row, length = seg
        if ce == 0:   # E transposed: (c, c + offset) is element (row', row' - offset) of E.T
            offset, row = -offset, row + offset
        rows = e.shape[1 - ce]
        # out[r, ...] = m[r + offset, ...] for r in [row, row + length)
        sl = [slice(None)] * m.ndim
        sl[cm] = slice(row + offset, row + offset + length)
        part = B.slice_(m, sl)
        rest = [i for i in range(m.ndim) if i != cm]
        perm = [cm] + rest if e_first else rest + [cm]
        if perm != list(range(m.ndim)):
            part = B.transpose(part, perm)
        axis = 0 if e_first else part.ndim - 1
        starts = [0] * part.ndim
        stops = list(part.shape)
        shape = list(part.shape)
        starts[axis], stops[axis], shape[axis] = row, row + length, rows
        out = part if shape == list(part.shape) else B.unslice(part, starts, stops, [1] * part.ndim, shape)
        return out if out.shape == node.shape else B.reshape(out, node.shape)
    return None


@rule("contract", "dot_general")
def small_contraction(node: Node) -> Node | None:
    """A contraction of at most a few elements against ``eye``'s slices is
    a short sum of products (each then an outer product, with the identity
    pattern visible to the rules above)."""
    a, b = node.inputs
    (ca, cb), _ = node.attr("contract"), node.attr("batch")
    k = math.prod(a.shape[i] for i in ca)
    if not ca or k <= 1 or k > _MAX_UNROLL or node.dtype not in _FLOATS:
        return None
    if not (touches_basis(a) or touches_basis(b)):
        return None
    terms = []
    for idx in itertools.product(*[range(a.shape[i]) for i in ca]):
        sa = [slice(None)] * a.ndim
        sb = [slice(None)] * b.ndim
        for i, j, t in zip(ca, cb, idx):
            sa[i], sb[j] = slice(t, t + 1), slice(t, t + 1)
        terms.append(B.emit("dot_general", (B.slice_(a, sa), B.slice_(b, sb)), **dict(node.attrs)))
    return B.add(*terms)


@rule("contract", "slice")
def slice_of_split(node: Node) -> Node | None:
    """``reshape(y, (..., p, q))[..., s:t, :]`` is ``reshape(y[..., s*q:t*q])``:
    a slice of a split last axis read as a slice of the axis (so a slice of
    ``eye`` stays visible as one)."""
    (r,) = node.inputs
    if r.op != "reshape" or any(s != 1 for s in node.attr("steps")) or not touches_basis(r):
        return None
    (y,) = r.inputs
    lead = y.ndim - 1
    if y.ndim == 0 or r.ndim <= lead or r.shape[:lead] != y.shape[:lead]:
        return None
    starts, stops = node.attr("starts"), node.attr("stops")
    tail = r.shape[lead:]
    if any((starts[i], stops[i]) != (0, tail[i - lead]) for i in range(lead + 1, r.ndim)):
        return None
    inner = math.prod(tail[1:])
    sl = [slice(starts[i], stops[i]) for i in range(lead)] + [slice(starts[lead] * inner, stops[lead] * inner)]
    return B.reshape(B.slice_(y, sl), node.shape)


def _box(u: Node) -> tuple[list[int], list[int]] | None:
    """The box ``[starts, stops)`` of an unslice with unit steps (zero outside)."""
    if u.op != "unslice" or any(t != 1 for t in u.attr("steps")):
        return None
    return list(u.attr("starts")), [a + d for a, d in zip(u.attr("starts"), u.inputs[0].shape)]


def _slice_box(x: Node, shape: tuple[int, ...], lo: list[int], hi: list[int]) -> Node:
    """Operand ``x`` (broadcast to ``shape``) read over the box ``[lo, hi)``."""
    lead = len(shape) - x.ndim
    sl = [slice(None) if d == 1 else slice(lo[lead + i], hi[lead + i]) for i, d in enumerate(x.shape)]
    return B.slice_(x, sl) if any(s != slice(None) for s in sl) else x


@rule("contract", "mul")
def product_with_zero_padding(node: Node) -> Node | None:
    """A product with an unslice (zero outside a box) is the product over
    the box, unsliced: ``0 * x -> 0`` outside it (real algebra, nodes
    computed from ``eye`` only)."""
    if node.dtype not in _FLOATS or not touches_basis(node):
        return None
    for k, (u, e) in enumerate(zip(node.inputs, node.attr("exps"))):
        box = _box(u) if e > 0 and u.shape == node.shape else None
        if box is None:
            continue
        lo, hi = box
        parts = [u.inputs[0] if j == k else _slice_box(x, node.shape, lo, hi) for j, x in enumerate(node.inputs)]
        inner = B.emit("mul", parts, exps=node.attr("exps"))
        target = tuple(h - a for a, h in zip(lo, hi))
        if inner.shape != target:
            inner = B.broadcast_to(inner, target)
        return B.unslice(inner, lo, hi, [1] * node.ndim, node.shape)
    return None


@rule("contract", "dot_general")
def contraction_with_zero_padding(node: Node) -> Node | None:
    """A contraction with an unslice operand: the other operand sliced to
    the box along the shared axes, the result unsliced along the free ones."""
    if node.dtype not in _FLOATS or not touches_basis(node):
        return None
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    for u, other, cu, co, bu, bo, u_first in ((a, b, ca, cb, ba, bb, True), (b, a, cb, ca, bb, ba, False)):
        box = _box(u)
        if box is None:
            continue
        lo, hi = box
        sl = [slice(None)] * other.ndim
        for i, j in zip(cu + bu, co + bo):
            sl[j] = slice(lo[i], hi[i])
        part = B.slice_(other, sl)
        inner = B.dot_general(u.inputs[0], part, (cu, co), (bu, bo)) if u_first else \
            B.dot_general(part, u.inputs[0], (co, cu), (bo, bu))
        free_u = [i for i in range(u.ndim) if i not in cu and i not in bu]
        free_o = [j for j in range(other.ndim) if j not in co and j not in bo]
        # output axes: batch, free of the first operand, free of the second
        out_lo = [lo[i] for i in bu] + ([lo[i] for i in free_u] + [0] * len(free_o) if u_first
                                        else [0] * len(free_o) + [lo[i] for i in free_u])
        starts = out_lo
        stops = [s + d for s, d in zip(starts, inner.shape)]
        if list(inner.shape) == list(node.shape):
            return inner
        return B.unslice(inner, starts, stops, [1] * node.ndim, node.shape)
    return None


@rule("contract", "add")
def sum_of_bands(node: Node) -> Node | None:
    """Several band terms of a 2-D sum (``eye`` slices times vectors, the
    other terms dense) become one band: one zero fill and one scatter."""
    if node.ndim != 2 or node.dtype not in _FLOATS or node.attr("const") != 0.0:
        return None
    bands, rest = [], []
    for t, c in zip(node.inputs, node.attr("coeffs")):
        band = band_of(t) if t.shape == node.shape and t.op == "take_add" else None
        (bands if band is not None else rest).append((t, c, band))
    if len(bands) < 2:
        return None
    segs = [Segment(s.offset, s.row, s.values if c == 1.0 else B.scale(s.values, c))
            for _, c, band in bands for s in band.segments]
    merged = band_node(Band(node.shape, tuple(segs)), node.dtype)
    if not rest:
        return merged
    return B.linear([(merged, 1.0)] + [(t, c) for t, c, _ in rest])


@rule("contract", "add")
def sum_of_blocks(node: Node) -> Node | None:
    """A sum of unslices that tile the result along one axis (the blocks of
    a Hessian, one per argument slice) is their concatenation: each block
    copied into place, no masked reads of every block at every element."""
    if node.dtype not in _FLOATS or node.attr("const") != 0.0 or len(node.inputs) < 2:
        return None
    if any(c != 1.0 for c in node.attr("coeffs")) or not touches_basis(node):
        return None
    boxes = []
    for u in node.inputs:
        box = _box(u) if u.shape == node.shape else None
        if box is None:
            return None
        boxes.append((box, u.inputs[0]))
    axes = {d for (lo, hi), _ in boxes for d in range(node.ndim) if (lo[d], hi[d]) != (0, node.shape[d])}
    if len(axes) != 1:
        return None
    (d,) = axes
    spans = sorted(((lo[d], hi[d], inner) for (lo, hi), inner in boxes), key=lambda t: t[0])
    parts, at = [], 0
    for lo, hi, inner in spans:
        if lo < at:
            return None   # overlapping blocks add: not a concatenation
        if lo > at:
            gap = list(node.shape)
            gap[d] = lo - at
            parts.append(B.const(0.0, tuple(gap), node.dtype))
        parts.append(inner)
        at = hi
    if at < node.shape[d]:
        gap = list(node.shape)
        gap[d] = node.shape[d] - at
        parts.append(B.const(0.0, tuple(gap), node.dtype))
    return B.concatenate(parts, d)
