"""The derivative rules: one VJP and one JVP rule per primitive, keyed by op.

Every rule returns graph nodes (never numbers), so derivatives of derivatives
work to any order.  Elementwise functions have no hand-written rule: their
partial derivatives are ``sympy.diff`` of their SymPy definition.  Branch-like
rules select with ``where`` (never ``mask * g``: NaN * 0 is NaN).

VJP rule: ``vjp(node, g) -> [cotangent or None per input]`` (``None``: no
dependence).  Cotangents returned here still have the broadcast shape of
``node``; the caller sums them down to each input's shape.
JVP rule: ``jvp(node, tangents) -> tangent or None`` where ``tangents[i]`` is
the tangent of ``node.inputs[i]`` (``None``: zero).
"""

from __future__ import annotations

from functools import cache
from collections.abc import Callable


from ..ir import build as B
from ..ir import elementwise as E
from ..ir.node import Node

Cot = "Node | None"
VJP: dict[str, Callable[[Node, Node], list]] = {}
JVP: dict[str, Callable[[Node, list], Node | None]] = {}


def vjp_rule(*ops: str):
    def register(fn):
        for op in ops:
            VJP[op] = fn
        return fn
    return register


def jvp_rule(*ops: str):
    def register(fn):
        for op in ops:
            JVP[op] = fn
        return fn
    return register


# ---------------------------------------------------------------- partials of elementwise ops

def partials(node: Node) -> list[Node | None]:
    """d node / d input_i as nodes (broadcast shapes), None where zero."""
    op = node.op
    if op == "add":
        return [None if c == 0.0 else B.fill(c, node, ()) for c in node.attr("coeffs")]
    if op == "mul":
        return [_mul_partial(node, i) for i in range(len(node.inputs))]
    if op == "powc":
        (x,), p = node.inputs, node.attr("p")
        return [B.scale(B.powc(x, p - 1.0), p)]
    if op == "pow":
        x, y = node.inputs
        dx = B.mul(y, B.fn("pow", x, B.linear([(y, 1.0)], -1.0)))
        dy = B.mul(B.fn("log", x), node)
        return [dx, dy]
    if op in E.FUNCTIONS:
        if not E.FUNCTIONS[op].differentiable:
            return [None] * len(node.inputs)
        return [_fn_partial(node, i) for i in range(len(node.inputs))]
    raise KeyError(op)


def _mul_partial(node: Node, i: int) -> Node:
    exps = list(node.attr("exps"))
    e = exps[i]
    exps[i] = e - 1
    pairs = [(b, k) for b, k in zip(node.inputs, exps) if k != 0]
    if pairs:
        rest = B.emit("mul", [b for b, _ in pairs], exps=tuple(k for _, k in pairs))
    else:
        rest = B.fill(1.0, node, ())
    return B.scale(rest, float(e))


@cache
def _self_symbol():
    """The symbol that stands for the function itself in its derivative."""
    import sympy
    return sympy.Symbol("__self__", real=True)


@cache
def _partial_sympy(name: str, i: int):
    """The partial derivative, with the function itself written as the self
    symbol (d exp = exp, d tanh = 1 - tanh^2) so the derivative reuses the node."""
    fn = E.FUNCTIONS[name]
    return E.partial_expr(name, i).subs(fn.expr, _self_symbol())


def _fn_partial(node: Node, i: int) -> Node | None:
    from ..ir.sympy_bridge import from_sympy
    fn = E.FUNCTIONS[node.op]
    expr = _partial_sympy(node.op, i)
    if expr == 0:
        return None
    env = dict(zip(fn.params, node.inputs))
    env[_self_symbol()] = node
    return from_sympy(expr, env, node.dtype)


ELEMENTWISE_SMOOTH = ("add", "mul", "powc", "pow")


def _elementwise_vjp(node: Node, g: Node) -> list:
    return [None if p is None else B.mul(g, p) for p in partials(node)]


def _elementwise_jvp(node: Node, tangents: list) -> Node | None:
    terms = [B.mul(t, p) for t, p in zip(tangents, partials(node)) if t is not None and p is not None]
    if not terms:
        return None
    out = B.add(*terms) if len(terms) > 1 else terms[0]
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


for _op in (*ELEMENTWISE_SMOOTH, *E.FUNCTIONS):
    VJP[_op] = _elementwise_vjp
    JVP[_op] = _elementwise_jvp


def register_elementwise(name: str) -> None:
    """Give a newly defined elementwise function its (SymPy-derived) rules."""
    VJP[name] = _elementwise_vjp
    JVP[name] = _elementwise_jvp


# ---------------------------------------------------------------- selection

@vjp_rule("where")
def _where_vjp(node, g):
    cond = node.inputs[0]
    zero = B.fill(0.0, g, ())
    return [None, B.where(cond, g, zero), B.where(cond, zero, g)]


@jvp_rule("where")
def _where_jvp(node, t):
    if t[1] is None and t[2] is None:
        return None
    zero = B.fill(0.0, node, ())
    out = B.where(node.inputs[0], t[1] if t[1] is not None else zero, t[2] if t[2] is not None else zero)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


def _minmax_share(node, v: Node, operand: int) -> Node:
    """The part of ``v`` (a cotangent or tangent) that belongs to one operand
    of maximum/minimum, selected with ``where`` (never mask * v: NaN * 0 is NaN).

    The winner gets all of it.  At a tie: when one operand is a constant it
    takes the tie, so relu(x) = maximum(x, 0) = maximum(0, x) has derivative 0
    at 0 (as MATLAB's relu); between two variables the tie is split in half
    (as JAX).
    """
    a, b = node.inputs
    win, lose = ("gt", "lt") if node.op == "maximum" else ("lt", "gt")
    mine, theirs = (B.compare(win, a, b), B.compare(lose, a, b))
    if operand == 1:
        mine, theirs = theirs, mine
    zero = B.fill(0.0, v, ())
    other_const = node.inputs[1 - operand].op == "const"
    self_const = node.inputs[operand].op == "const"
    if other_const:
        return B.where(mine, v, zero)
    if self_const:
        return B.where(theirs, zero, v)
    return B.where(mine, v, B.where(theirs, zero, B.scale(v, 0.5)))


@vjp_rule("maximum", "minimum")
def _minmax_vjp(node, g):
    return [_minmax_share(node, g, 0), _minmax_share(node, g, 1)]


@jvp_rule("maximum", "minimum")
def _minmax_jvp(node, t):
    terms = [_minmax_share(node, ti, k) for k, ti in enumerate(t) if ti is not None]
    if not terms:
        return None
    out = terms[0] if len(terms) == 1 else B.add(*terms)
    return out if out.shape == node.shape else B.broadcast_to(out, node.shape)


@vjp_rule("convert")
def _convert_vjp(node, g):
    return [B.convert(g, node.inputs[0].dtype)]


@jvp_rule("convert")
def _convert_jvp(node, t):
    return None if t[0] is None else B.convert(t[0], node.dtype)


# ---------------------------------------------------------------- movement

@vjp_rule("broadcast_to")
def _broadcast_vjp(node, g):
    return [B.unbroadcast(g, node.inputs[0].shape)]


@vjp_rule("reshape")
def _reshape_vjp(node, g):
    return [B.reshape(g, node.inputs[0].shape)]


@vjp_rule("transpose")
def _transpose_vjp(node, g):
    perm = node.attr("perm")
    inverse = [perm.index(i) for i in range(len(perm))]
    return [B.transpose(g, inverse)]


@vjp_rule("slice")
def _slice_vjp(node, g):
    return [B.unslice(g, node.attr("starts"), node.attr("stops"), node.attr("steps"), node.inputs[0].shape)]


@vjp_rule("unslice")
def _unslice_vjp(node, g):
    return [B.emit("slice", (g,), starts=node.attr("starts"), stops=node.attr("stops"), steps=node.attr("steps"))]


@vjp_rule("concatenate")
def _concat_vjp(node, g):
    axis, out, start = node.attr("axis"), [], 0
    for x in node.inputs:
        sl = [slice(None)] * g.ndim
        sl[axis] = slice(start, start + x.shape[axis])
        out.append(B.slice_(g, sl))
        start += x.shape[axis]
    return out


@vjp_rule("reduce_sum")
def _reduce_sum_vjp(node, g):
    x = node.inputs[0]
    return [B.expand_to(g, x.shape, node.attr("axes"))]


def _max_mask_and_count(node):
    x, axes = node.inputs[0], node.attr("axes")
    mask = B.compare("eq", x, B.expand_to(node, x.shape, axes))
    count = B.reduce_sum(B.convert(mask, x.dtype), axes)
    return mask, count


@vjp_rule("reduce_max")
def _reduce_max_vjp(node, g):
    # Ties share the cotangent equally (the mean of the subgradients).
    x, axes = node.inputs[0], node.attr("axes")
    mask, count = _max_mask_and_count(node)
    share = B.expand_to(B.div(g, count), x.shape, axes)
    return [B.where(mask, share, B.fill(0.0, x, ()))]


@jvp_rule("reduce_max")
def _reduce_max_jvp(node, t):
    if t[0] is None:
        return None
    x, axes = node.inputs[0], node.attr("axes")
    mask, count = _max_mask_and_count(node)
    picked = B.where(mask, t[0], B.fill(0.0, x, ()))
    return B.div(B.reduce_sum(picked, axes), count)


def _linear_jvp(node, t):
    """Ops linear in every operand: apply the op to the tangents."""
    if all(v is None for v in t):
        return None
    ins = [v if v is not None else B.fill(0.0, i) for v, i in zip(t, node.inputs)]
    return B.emit(node.op, ins, **dict(node.attrs))


for _op in ("broadcast_to", "reshape", "transpose", "slice", "unslice", "concatenate", "reduce_sum"):
    JVP[_op] = _linear_jvp


# ---------------------------------------------------------------- contraction

@vjp_rule("dot_general")
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
    ga = B.dot_general(g, b, (g_fb, free_b), (g_batch, bb))
    rest_b = sorted(cb)  # b axes left in ga, ascending
    src_a = list(ba) + free_a + [ca[cb.index(j)] for j in rest_b]
    ga = B.transpose(ga, [src_a.index(j) for j in range(a.ndim)])
    gb = B.dot_general(g, a, (g_fa, free_a), (g_batch, ba))
    rest_a = sorted(ca)
    src_b = list(bb) + free_b + [cb[ca.index(j)] for j in rest_a]
    gb = B.transpose(gb, [src_b.index(j) for j in range(b.ndim)])
    return [ga, gb]


@jvp_rule("dot_general")
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


# ---------------------------------------------------------------- gather / scatter

@vjp_rule("take")
def _take_vjp(node, g):
    x, idx = node.inputs
    axis = node.attr("axis")
    return [B.take_add(g, idx, axis, x.shape[axis]), None]


@jvp_rule("take")
def _take_jvp(node, t):
    return None if t[0] is None else B.take(t[0], node.inputs[1], node.attr("axis"))


@vjp_rule("take_add")
def _take_add_vjp(node, g):
    return [B.take(g, node.inputs[1], node.attr("axis")), None]


@jvp_rule("take_add")
def _take_add_jvp(node, t):
    if t[0] is None:
        return None
    return B.take_add(t[0], node.inputs[1], node.attr("axis"), node.attr("size"))

