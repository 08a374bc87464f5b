"""Construction-time rule sets: the canonical form of the IR.

``canonical``: n-ary sums as ``{term: coefficient} + constant`` and products
as ``{factor: integer exponent}`` (flattened, like terms and like factors
collected, operands in the deterministic order of :func:`sort_key`).
``identity``: exact identities that only remove work (``reshape`` to the same
shape, ``x ** 1``, ``where(c, a, a)``, ...).  ``fold``: constant folding
through the reference interpreter.

Exactness: every rule here holds for all IEEE inputs, NaN and infinities
included, except that sums are re-associated.  ``0 * x`` and ``x / x`` are kept
(they are NaN for infinite or zero ``x``); dropping them is the fast-math set
in :mod:`symdl.simplify.fastmath`.
"""

from __future__ import annotations

import math

import numpy as np

from . import build as B
from .interpret import eval_node
from .node import Node, make_node, sort_key
from .ops import primitive
from .rewrite import rule

FOLD_LIMIT = 1 << 16  # fold constant results up to this many elements


def _finish(result: Node, like: Node) -> Node:
    """Restore the broadcast shape that cancelled terms may have carried."""
    if result.shape != like.shape:
        result = B.broadcast_to(result, like.shape)
    return result


def _already_canonical(node: Node, nested: str) -> bool:
    """Fast check: no nested op to flatten, no constant, operands strictly
    ordered (hence distinct)."""
    prev = None
    for t in node.inputs:
        if t.op == nested or t.op == "const":
            return False
        k = sort_key(t)
        if prev is not None and not prev < k:
            return False
        prev = k
    return True


@rule("canonical", "add")
def canonical_add(node: Node) -> Node | None:
    if len(node.inputs) > 1 and _already_canonical(node, "add"):
        return None
    terms: dict[Node, float] = {}
    constant = node.attr("const")
    changed = False
    for term, c in zip(node.inputs, node.attr("coeffs")):
        if term.op == "add":
            changed = True
            constant += c * term.attr("const")
            inner = zip(term.inputs, term.attr("coeffs"))
        elif term.op == "const" and term.const_scalar() is not None:
            changed = True
            constant += c * term.const_scalar()
            continue
        else:
            inner = [(term, 1.0)]
        for t, k in inner:
            if t in terms:
                changed = True
            terms[t] = terms.get(t, 0.0) + c * k
    ordered = sorted(terms, key=sort_key)
    trivial = len(ordered) == 1 and terms[ordered[0]] == 1.0 and constant == 0.0
    if not changed and not trivial and tuple(ordered) == node.inputs:
        return None
    if not ordered:
        return B.fill(constant, node)
    coeffs = tuple(terms[t] for t in ordered)
    if len(ordered) == 1 and coeffs[0] == 1.0 and constant == 0.0:
        return _finish(ordered[0], node)
    shape = B.common_shape("add", ordered)
    new = make_node("add", tuple(ordered), (("coeffs", coeffs), ("const", constant)), shape, node.dtype)
    return _finish(new, node)


def _mul_canonical(node: Node) -> bool:
    """Fast check for products: nothing to flatten or pull out, ordered by
    (base, sign) with no repeated key."""
    prev = None
    for f, e in zip(node.inputs, node.attr("exps")):
        if f.op == "const" or (f.op == "mul" and len(f.inputs) == 1) or \
                (f.op == "add" and len(f.inputs) == 1 and f.attr("const") == 0.0):
            return False
        k = (sort_key(f), e > 0)
        if prev is not None and not prev < k:
            return False
        prev = k
    return True


def _cpow(c: float, e: int) -> float:
    """``c ** e`` for an integer e with IEEE results (inf, not an exception)."""
    if e == 1:
        return c
    odd_negative = c < 0 or (c == 0.0 and math.copysign(1.0, c) < 0)
    sign = -1.0 if odd_negative and e % 2 else 1.0
    if c == 0.0 and e < 0:
        return sign * math.inf
    try:
        return c ** e
    except OverflowError:
        return sign * math.inf


@rule("canonical", "mul")
def canonical_mul(node: Node) -> Node | None:
    # Key by (base, sign of exponent): x^2 * x^3 collects to x^5, but x^2 * x^-1
    # stays as it is, since x/x -> 1 is wrong at x = 0 (fast-math only).
    if len(node.inputs) > 1 and _mul_canonical(node):
        return None
    factors: dict[tuple[Node, bool], int] = {}
    coeff = 1.0
    changed = False
    for f, e in zip(node.inputs, node.attr("exps")):
        if f.op == "mul" and len(f.inputs) == 1:
            # Powers of one base merge (x^2 * x -> x^3).  Products of several
            # factors stay nested: they are blocks (f', g'' of a Leibniz
            # expansion) that other terms share, and flattening them would
            # expand derivatives into ever more distinct monomials.
            changed = True
            inner = [(b, k * e) for b, k in zip(f.inputs, f.attr("exps"))]
        elif f.op == "add" and len(f.inputs) == 1 and f.attr("const") == 0.0:
            changed = True  # (c t)^e = c^e t^e for integer e
            coeff *= _cpow(f.attr("coeffs")[0], e)
            inner = [(f.inputs[0], e)]
        elif f.op == "const" and f.const_scalar() is not None:
            changed = True
            coeff *= _cpow(f.const_scalar(), e)
            continue
        else:
            inner = [(f, e)]
        for b, k in inner:
            key = (b, k > 0)
            if key in factors:
                changed = True
            factors[key] = factors.get(key, 0) + k
    ordered = sorted(factors, key=lambda kb: (sort_key(kb[0]), kb[1]))
    trivial = len(ordered) == 1 and factors[ordered[0]] == 1
    if not changed and not trivial and tuple(b for b, _ in ordered) == node.inputs:
        return None
    if not ordered:
        return B.fill(coeff, node)
    bases = tuple(b for b, _ in ordered)
    exps = tuple(factors[k] for k in ordered)
    if len(bases) == 1 and exps[0] == 1:
        prod = bases[0]
    else:
        prod = make_node("mul", bases, (("exps", exps),), B.common_shape("mul", bases), node.dtype)
    if coeff != 1.0:
        prod = make_node("add", (prod,), (("coeffs", (coeff,)), ("const", 0.0)), prod.shape, node.dtype)
    return _finish(prod, node)


# ---------------------------------------------------------------- identities

@rule("identity", "reshape", "broadcast_to")
def same_shape(node: Node) -> Node | None:
    x = node.inputs[0]
    if x.shape == node.shape:
        return x
    if x.op == node.op or (node.op == "reshape" and x.op == "reshape"):
        return B.emit(node.op, x.inputs, shape=node.shape)
    if x.op == "const" and x.const_scalar() is not None:
        return B.fill(x.const_scalar(), node)
    return None


@rule("identity", "broadcast_to")
def broadcast_of_reshape_to_leading(node: Node) -> Node | None:
    # broadcast_to(reshape(x, (1,)*k + s), t) with x.shape == s: a leading-axis
    # broadcast needs no reshape (numpy adds leading axes itself).
    x = node.inputs[0]
    if x.op == "reshape":
        inner = x.inputs[0]
        k = x.ndim - inner.ndim
        if k > 0 and x.shape[k:] == inner.shape and all(d == 1 for d in x.shape[:k]):
            return B.broadcast_to(inner, node.shape)
    return None


@rule("identity", "transpose")
def transpose_identity(node: Node) -> Node | None:
    x, perm = node.inputs[0], node.attr("perm")
    if perm == tuple(range(len(perm))):
        return x
    if x.op == "transpose":
        inner = x.attr("perm")
        return B.transpose(x.inputs[0], [inner[p] for p in perm])
    if x.op == "const" and x.const_scalar() is not None:
        return B.fill(x.const_scalar(), node)
    return None


@rule("identity", "reduce_sum", "reduce_max")
def reduce_identity(node: Node) -> Node | None:
    x, axes = node.inputs[0], node.attr("axes")
    if not axes:
        return x
    if all(x.shape[a] == 1 for a in axes):
        return B.reshape(x, node.shape)
    v = x.const_scalar()
    if v is not None:
        count = 1 if node.op == "reduce_max" else int(np.prod([x.shape[a] for a in axes]))
        return B.fill(v * count, node)
    return None


@rule("identity", "slice")
def slice_identity(node: Node) -> Node | None:
    x = node.inputs[0]
    if node.shape == x.shape and all(s == 1 for s in node.attr("steps")):
        return x
    if x.const_scalar() is not None:
        return B.fill(x.const_scalar(), node)
    return None


@rule("identity", "unslice")
def unslice_identity(node: Node) -> Node | None:
    x = node.inputs[0]
    if x.shape == node.shape and all(s == 1 for s in node.attr("steps")):
        return x  # a reversing step of -1 keeps the shape but is not the identity
    if x.const_scalar() == 0.0:
        return B.fill(0.0, node)
    return None


@rule("identity", "convert")
def convert_identity(node: Node) -> Node | None:
    x = node.inputs[0]
    if x.dtype == node.dtype:
        return x
    if x.op == "convert" and x.inputs[0].dtype == node.dtype and x.inputs[0].dtype == "float32":
        return x.inputs[0]  # float32 -> float64 -> float32 is exact
    return None


@rule("identity", "where")
def where_identity(node: Node) -> Node | None:
    cond, a, b = node.inputs
    if a is b:
        return _finish(a, node)
    c = cond.const_scalar()
    if c is not None:
        return _finish(a if c else b, node)
    return None


@rule("identity", "powc")
def powc_identity(node: Node) -> Node | None:
    p = node.attr("p")
    if float(p).is_integer():
        return B.ipow(node.inputs[0], int(p))
    return None


@rule("identity", "pow")
def pow_const_exponent(node: Node) -> Node | None:
    base, e = node.inputs
    v = e.const_scalar()
    if v is not None and e.op == "const":
        return _finish(B.powc(base, v), node)
    return None


# ---------------------------------------------------------------- constant folding

@rule("fold", "*")
def fold_constants(node: Node) -> Node | None:
    if node.op in ("const", "input") or not node.inputs:
        return None
    if not all(i.op == "const" for i in node.inputs) or node.size > FOLD_LIMIT:
        return None
    if primitive(node.op).kind == "random":
        return None
    value = eval_node(node, [primitive("const").impl([], i) for i in node.inputs])
    return B.const(value, node.shape, node.dtype)


@rule("identity", "dot_general")
def outer_product(node: Node) -> Node | None:
    """A contraction over axes of size 1 (an outer product, common in
    Jacobians of matrix products) is an elementwise product of broadcast
    operands: one term per output, so exact, and it fuses with its neighbours."""
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    if any(a.shape[x] != 1 for x in ca):
        return None
    free_a = [i for i in range(a.ndim) if i not in ca and i not in ba]
    free_b = [i for i in range(b.ndim) if i not in cb and i not in bb]
    nfa, nfb = len(free_a), len(free_b)
    batch_shape = [a.shape[i] for i in ba]
    # a -> (batch, free_a, 1...), b -> (batch, 1..., free_b)
    a2 = B.reshape(B.transpose(a, list(ba) + free_a + list(ca)), batch_shape + [a.shape[i] for i in free_a] + [1] * nfb)
    b2 = B.reshape(B.transpose(b, list(bb) + free_b + list(cb)), batch_shape + [1] * nfa + [b.shape[i] for i in free_b])
    out = B.mul(a2, b2)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)
