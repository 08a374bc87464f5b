"""Contractions: ``dot_general`` (sums of products over paired axes, with
batch axes), the one primitive behind matmul, dot, einsum-like products and
their derivatives."""

from __future__ import annotations

import numpy as np

from .. import build as B
from ..node import Node
from ..quiet import quiet
from .reduce import overflow_safe_sum
from .registry import Kind, Primitive, ShapeError, define, same_float_dtype

__all__ = ["dot_general_subscripts"]


def _dot_infer(inputs, attrs):
    if len(inputs) != 2:
        raise ShapeError(f"dot_general: takes two operands, got {len(inputs)}")
    a, b = inputs
    dtype = same_float_dtype("dot_general", inputs)
    (ca, cb), (ba, bb) = attrs["contract"], attrs["batch"]
    if len(ca) != len(cb) or len(ba) != len(bb):
        raise ShapeError("dot_general: contracting/batch axes must pair up")
    for x, y in zip(ca + ba, cb + bb):
        if a.shape[x] != b.shape[y]:
            raise ShapeError(f"dot_general: axis {x} of {a.shape} does not match axis {y} of {b.shape}")
    free_a = [d for i, d in enumerate(a.shape) if i not in ca and i not in ba]
    free_b = [d for i, d in enumerate(b.shape) if i not in cb and i not in bb]
    return tuple([a.shape[i] for i in ba] + free_a + free_b), dtype


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def dot_general_subscripts(ndim_a: int, ndim_b: int, contract, batch) -> str:
    """The einsum string of a dot_general (used by the interpreter and tests)."""
    (ca, cb), (ba, bb) = contract, batch
    la = list(_LETTERS[:ndim_a])
    lb = list(_LETTERS[ndim_a:ndim_a + ndim_b])
    for x, y in zip(ca + ba, cb + bb):
        lb[y] = la[x]
    out = [la[i] for i in ba] + [la[i] for i in range(ndim_a) if i not in ca and i not in ba] \
        + [lb[i] for i in range(ndim_b) if i not in cb and i not in bb]
    return f"{''.join(la)},{''.join(lb)}->{''.join(out)}"


def _dot_impl(values, node):
    """numpy's einsum; where an output element is inf or NaN, the products
    (each rounded as IEEE rounds it) are summed again with the overflow-safe
    rule of sums (``overflow_safe_sum``): compiled code does the same
    (``codegen/lower/contract.py``), so the two agree where a partial sum
    overflows."""
    a, b = values
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    sub = dot_general_subscripts(a.ndim, b.ndim, (ca, cb), (ba, bb))
    with quiet():
        out = np.asarray(np.einsum(sub, a, b, optimize=True), dtype=node.dtype)
        bad = ~np.isfinite(out)
        if not bad.any():
            return out
        # (batch, free, contracted) matrices of both operands: out[p, m, n] sums A[p, m, :] * B[p, n, :]
        free_a = [i for i in range(a.ndim) if i not in ca and i not in ba]
        free_b = [i for i in range(b.ndim) if i not in cb and i not in bb]
        k = int(np.prod([a.shape[i] for i in ca], dtype=np.int64))
        am = np.transpose(a, list(ba) + free_a + list(ca)).reshape(-1, int(np.prod([a.shape[i] for i in free_a],
                                                                                   dtype=np.int64)), k)
        bm = np.transpose(b, list(bb) + free_b + list(cb)).reshape(-1, int(np.prod([b.shape[i] for i in free_b],
                                                                                   dtype=np.int64)), k)
        flat = out.reshape(am.shape[0], am.shape[1], bm.shape[1])
        for p, m, n in zip(*np.nonzero(bad.reshape(flat.shape))):
            flat[p, m, n] = overflow_safe_sum(am[p, m] * bm[p, n], (0,))
        return out


def _dot_vjp(node, g):
    a, b = node.inputs
    (ca, cb), (ba, bb) = node.attr("contract"), node.attr("batch")
    nb = len(ba)
    free_a = [i for i in range(a.ndim) if i not in ca and i not in ba]
    free_b = [i for i in range(b.ndim) if i not in cb and i not in bb]
    g_batch = list(range(nb))
    g_fa = list(range(nb, nb + len(free_a)))
    g_fb = list(range(nb + len(free_a), g.ndim))
    # d/da: contract g's b-free axes with b's free axes; batch stays batch.
    ga = _cotangent_product(g, b, (g_fb, free_b), (g_batch, bb), list(ba), free_a,
                            [ca[cb.index(j)] for j in sorted(cb)], a.ndim)
    gb = _cotangent_product(g, a, (g_fa, free_a), (g_batch, ba), list(bb), free_b,
                            [cb[ca.index(j)] for j in sorted(ca)], b.ndim)
    return [ga, gb]


def _cotangent_product(g, other, contract, batch, batch_axes, free_axes, rest_axes, ndim):
    """The cotangent of one operand: ``g`` contracted with the ``other``
    operand, axes permuted back to the operand's.  Of the two operand orders
    (``g`` first: batch, free, rest; ``other`` first: batch, rest, free) the
    one already in the operand's layout is taken, so that a matmul's
    cotangents (``g @ b.T``, ``a.T @ g``) are products written in place, not
    products followed by a transposed copy."""
    src = batch_axes + free_axes + rest_axes
    perm = [src.index(j) for j in range(ndim)]
    if perm != list(range(ndim)):
        swapped = batch_axes + rest_axes + free_axes
        if swapped == list(range(ndim)):
            (cg, co), (bg, bo) = contract, batch
            return B.dot_general(other, g, (co, cg), (bo, bg))
    return B.transpose(B.dot_general(g, other, contract, batch), perm)


def _dot_jvp(node, t):
    a, b = node.inputs
    attrs = dict(node.attrs)
    terms = []
    if t[0] is not None:
        terms.append(B.emit("dot_general", (t[0], b), **attrs))
    if t[1] is not None:
        terms.append(B.emit("dot_general", (a, t[1]), **attrs))
    if not terms:
        return None
    return terms[0] if len(terms) == 1 else B.add(*terms)


def _dot_batch(node: Node, ins: list, n: int) -> Node:
    a, b = node.inputs
    ba_, bb_ = ins
    (ca, cb), (bta, btb) = node.attr("contract"), node.attr("batch")

    def shift(axes):
        return tuple(x + 1 for x in axes)

    if ba_ is not None and bb_ is not None:
        return B.dot_general(ba_, bb_, (shift(ca), shift(cb)), ((0,) + shift(bta), (0,) + shift(btb)))
    if ba_ is not None:
        out = B.dot_general(ba_, b, (shift(ca), cb), (shift(bta), btb))
        pos = len(bta)  # the new axis is a's first free axis, right after the batch axes
    else:
        out = B.dot_general(a, bb_, (ca, shift(cb)), (bta, shift(btb)))
        free_a = a.ndim - len(ca) - len(bta)
        pos = len(bta) + free_a
    if pos == 0:
        return out
    perm = [pos] + [i for i in range(out.ndim) if i != pos]
    return B.transpose(out, perm)


define(Primitive("dot_general", Kind.CONTRACT, _dot_infer, _dot_impl,
                 vjp=_dot_vjp, jvp=_dot_jvp, batch=_dot_batch, arity=2))
