"""Construction-time rule sets: the canonical form of the IR.

``canonical``: n-ary sums as ``{term: coefficient} + constant`` and products
as ``{factor: integer exponent}`` (flattened, like terms and like factors
collected, operands in the deterministic order of :func:`sort_key`).  Sums
and products are canonicalised from their fields by constructors, before any
node exists (:data:`symdl.ir.rewrite.CONSTRUCTORS`), so the builders never
intern a raw node only for the rule to take it apart; the rules of the same
name handle nodes made raw (``rebuild``, deserialisation) and must agree.
``identity``: exact identities that only remove work (``reshape`` to the same
shape, ``x ** 1``, ``where(c, a, a)``, ...).  ``fold``: constant folding
through the reference interpreter.

Semantics: ``canonical`` is real-number algebra, not step-by-step IEEE
evaluation: collecting like terms cancels an inf or NaN (``x - x`` is 0 even
at inf), re-association and distribution (``c (a + b) -> c a + c b``) move
roundings, overflows and cancellations.  ``0 * x`` and ``x / x`` are kept
(dropping them is the fast-math set in :mod:`symdl.simplify.fastmath`),
except the structural zeros of identity patterns, which
:mod:`symdl.simplify.structure` turns into band structure.
``identity`` and ``fold`` are exact for every IEEE input; they are the only
sets under :func:`~symdl.ir.rewrite.ieee_semantics`, where the constructors
keep sums and products as written.  docs/ieee.md says all this for users.
"""

from __future__ import annotations

import math

import numpy as np

from . import build as B
from .interpret import eval_node
from .node import Node, make_node, precedes
from .node import ordered as in_order
from .ops import primitive
from .rewrite import _IEEE, constructor, ieee_active, rule

FOLD_LIMIT = 1 << 16  # fold constant results up to this many elements


def _finish(result: Node, like: Node) -> Node:
    """Restore the broadcast shape that cancelled terms may have carried."""
    if result.shape != like.shape:
        result = B.broadcast_to(result, like.shape)
    return result


def _to_shape(result: Node, shape: tuple[int, ...]) -> Node:
    """:func:`_finish` for a node that does not exist yet (constructors)."""
    if result.shape != shape:
        result = B.broadcast_to(result, shape)
    return result


def _already_canonical(inputs: tuple[Node, ...], nested: str) -> bool:
    """Fast check: no nested op to flatten, no constant, operands strictly
    ordered (hence distinct)."""
    prev = None
    for t in inputs:
        if t.op == nested or t.op == "const":
            return False
        if prev is not None and not precedes(prev, t):
            return False
        prev = t
    return True


# ---------------------------------------------------------------- sums

def _collect_terms(inputs, coeffs, constant: float) -> tuple[dict[Node, float], float, bool]:
    """Flatten nested sums and fold scalar constants: ``{term: coefficient}``,
    the constant, and whether anything changed."""
    terms: dict[Node, float] = {}
    changed = False
    for term, c in zip(inputs, coeffs):
        op = term.op
        if op == "add":
            changed = True
            (_, inner_coeffs), (_, inner_constant) = term.attrs  # (sorted: coeffs, const)
            if inner_constant != 0.0:  # (an infinite c times a zero constant is no NaN term)
                constant += c * inner_constant
            for t, k in zip(term.inputs, inner_coeffs):
                if t in terms:
                    terms[t] += c * k
                else:
                    terms[t] = c * k  # (not 0.0 + c k: that turns a -0.0 coefficient into +0.0)
            continue
        if op == "const" and term.const_scalar() is not None:
            changed = True
            constant += c * term.const_scalar()
            continue
        if term in terms:
            changed = True
            terms[term] += c
        else:
            terms[term] = c * 1.0  # (c * k with k = 1.0, as for the terms of a nested sum)
    return terms, constant, changed


def canonical_sum(inputs: tuple[Node, ...], coeffs, constant: float, shape: tuple[int, ...],
                  dtype: str) -> Node | None:
    """The canonical form of ``constant + sum(coeffs * inputs)`` (``None``:
    these fields are canonical as they are)."""
    if len(inputs) > 1 and _already_canonical(inputs, "add"):
        return None
    terms, constant, changed = _collect_terms(inputs, coeffs, constant)
    ordered = in_order(terms)
    trivial = len(ordered) == 1 and terms[ordered[0]] == 1.0 and constant == 0.0
    if not changed and not trivial and tuple(ordered) == inputs:
        return None
    if not ordered:
        return B.const(constant, shape, dtype)
    coeffs = tuple(map(terms.__getitem__, ordered))
    if len(ordered) == 1 and coeffs[0] == 1.0 and constant == 0.0:
        return _to_shape(ordered[0], shape)
    common = ordered[0].shape
    for t in ordered:  # (the terms' broadcast shape: most often all the same)
        if t.shape != common:
            common = B.common_shape("add", ordered)
            break
    new = make_node("add", tuple(ordered), (("coeffs", coeffs), ("const", constant)), common, dtype)
    return new if new.shape == shape else B.broadcast_to(new, shape)


@constructor("add")
def construct_add(inputs, attrs, shape, dtype) -> Node | None:
    """The constructor of sums (before any node exists); under IEEE
    semantics the sum stays as written (``None``)."""
    if _IEEE.get():  # (ieee_active(), without the call: every sum built asks)
        return None
    return canonical_sum(inputs, attrs["coeffs"], attrs["const"], shape, dtype)


@rule("canonical", "add")
def canonical_add(node: Node) -> Node | None:
    """The canonical rule of sums made raw (rebuilt or deserialised)."""
    return canonical_sum(node.inputs, node.attr("coeffs"), node.attr("const"), node.shape, node.dtype)


# ---------------------------------------------------------------- products

def _mul_canonical(inputs, exps) -> bool:
    """Fast check for products: nothing to flatten or pull out, ordered by
    (base, sign) with no repeated key."""
    prev = None
    for f, e in zip(inputs, exps):
        if f.op == "const" or (f.op == "mul" and len(f.inputs) == 1) or \
                (f.op == "add" and len(f.inputs) == 1 and f.attr("const") == 0.0):
            return False
        k = (f, e > 0)
        if prev is not None and not (prev[1] < k[1] if prev[0] is f else precedes(prev[0], f)):
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


def _factor_parts(f: Node, e: int) -> tuple[float, list[tuple[Node, int]]] | None:
    """``f ** e`` as ``(coefficient, [(base, exponent)])``; ``None`` when ``f``
    is a base as it stands."""
    if f.op == "mul" and len(f.inputs) == 1:
        # Powers of one base merge (x^2 * x -> x^3).  Products of several
        # factors stay nested: they are blocks (f', g'' of a Leibniz
        # expansion) that other terms share, and flattening them would
        # expand derivatives into ever more distinct monomials.
        return 1.0, [(b, k * e) for b, k in zip(f.inputs, f.attr("exps"))]
    if f.op == "add" and len(f.inputs) == 1 and f.attr("const") == 0.0:
        # (c t)^e = c^e t^e for integer e; t itself may be a power of one base
        t = f.inputs[0]
        inner = _factor_parts(t, e)
        return _cpow(f.attr("coeffs")[0], e), inner[1] if inner is not None else [(t, e)]
    if f.op == "const" and f.const_scalar() is not None:
        return _cpow(f.const_scalar(), e), []
    return None


def _collect_factors(inputs, exps) -> tuple[dict[tuple[Node, bool], int], float, bool]:
    """Merge powers of one base and pull out constant factors:
    ``{(base, exponent > 0): exponent}``, the coefficient, and whether anything
    changed."""
    factors: dict[tuple[Node, bool], int] = {}
    coeff = 1.0
    changed = False
    for f, e in zip(inputs, exps):
        parts = _factor_parts(f, e)
        if parts is None:
            inner = ((f, e),)
        else:
            changed = True
            c, inner = parts
            coeff *= c
        for b, k in inner:
            key = (b, k > 0)
            if key in factors:
                changed = True
            factors[key] = factors.get(key, 0) + k
    return factors, coeff, changed


def canonical_product(inputs: tuple[Node, ...], exps, shape: tuple[int, ...], dtype: str) -> Node | None:
    """The canonical form of ``prod(inputs ** exps)`` (``None``: these fields
    are canonical as they are)."""
    # Key by (base, sign of exponent): x^2 * x^3 collects to x^5, but x^2 * x^-1
    # stays as it is, since x/x -> 1 is wrong at x = 0 (fast-math only).
    if len(inputs) > 1 and _mul_canonical(inputs, exps):
        return None
    factors, coeff, changed = _collect_factors(inputs, exps)
    ordered = in_order(factors, base=lambda kb: kb[0])
    trivial = len(ordered) == 1 and factors[ordered[0]] == 1
    if not changed and not trivial and tuple(b for b, _ in ordered) == inputs:
        return None
    if not ordered:
        return B.const(coeff, shape, dtype)
    bases = tuple(b for b, _ in ordered)
    exps = tuple(factors[k] for k in ordered)
    if len(bases) == 1 and exps[0] == 1:
        prod = bases[0]
    else:
        prod = make_node("mul", bases, (("exps", exps),), B.common_shape("mul", bases), dtype)
    if coeff != 1.0:
        # through the sum's canonical form: a constant times a sum distributes
        # (c (a + b) -> c a + c b), which keeps like terms collecting
        coeffs = (coeff,)
        prod = canonical_sum((prod,), coeffs, 0.0, prod.shape, dtype) or \
            make_node("add", (prod,), (("coeffs", coeffs), ("const", 0.0)), prod.shape, dtype)
    return _to_shape(prod, shape)


@constructor("mul")
def construct_mul(inputs, attrs, shape, dtype) -> Node | None:
    """The constructor of products (before any node exists); under IEEE
    semantics the product stays as written (``None``)."""
    if ieee_active():
        return None
    return canonical_product(inputs, attrs["exps"], shape, dtype)


@rule("canonical", "mul")
def canonical_mul(node: Node) -> Node | None:
    """The canonical rule of products made raw (rebuilt or deserialised)."""
    return canonical_product(node.inputs, node.attr("exps"), node.shape, node.dtype)


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
    inputs = node.inputs
    if not inputs:  # (constants and graph inputs have none)
        return None
    for i in inputs:  # a loop, not all(...): this rule sees every node built
        if i.op != "const":
            return None
    if node.size > FOLD_LIMIT:
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


# The exact algebra of symdl.simplify is a construction set too (see
# symdl.ir.rewrite.CONSTRUCTION): registered as soon as nodes can be built.
from ..simplify import algebra as _algebra  # noqa: E402, F401
