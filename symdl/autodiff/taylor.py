"""Taylor-mode propagation: all derivatives of an elementwise function of one
variable up to order n, in O(n^2) nodes per operation.

Each node ``v`` of ``y = f(x)`` gets its truncated Taylor series in ``t``,
``v(x + t) = v_0 + v_1 t + ... + v_n t^n`` (``v_k = v^(k)(x) / k!``), pushed
forward op by op from ``x = [x, 1, 0, ...]``.  Products are Cauchy products,
and the usual functions have linear recurrences (``exp``, ``log``, ``sin`` /
``cos``, ``tanh``, powers, ...), so the n-th derivative costs O(n^2)
multiplications per operation, where nested differentiation grows with the
number of distinct terms of the derivative.  Operations without a recurrence
compose their own derivatives (taken by nested symbolic differentiation of the
one operation) with the Taylor series of their argument (Faa di Bruno); an
operation of several arguments that all depend on ``x``, with no rule here,
falls back to nested differentiation of its subgraph.

Exactness: every formula is an identity of real analysis; none divides by a
quantity that the derivative itself does not divide by, so the result is
finite wherever the nested symbolic derivative is.  A zero coefficient is
``None`` (structurally zero), never a ``0 * v`` term.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..ir import build as B
from ..ir.node import Node
from ..ir.ops import primitive
from ..ir.rewrite import toposort

__all__ = ["taylor_coefficients", "taylor_derivatives", "TAYLOR"]

Series = list  # list[Node | None], entry 0 is the node itself; None: zero
Rule = Callable[[Node, list, int, Node], Series]

#: Taylor rules keyed by op: ``rule(node, input_series, n, x) -> series``
#: (``x``: the variable, for the nested fallback).
TAYLOR: dict[str, Rule] = {}


def taylor_rule(*ops: str) -> Callable[[Rule], Rule]:
    """Register ``fn`` as the Taylor rule of ``ops`` (see :data:`TAYLOR`)."""
    def register(fn: Rule) -> Rule:
        for op in ops:
            TAYLOR[op] = fn
        return fn
    return register


# ---------------------------------------------------------------- linear combinations

class _Sum:
    """A sum of ``coefficient * product of nodes`` terms, built as one
    canonical n-ary sum at the end (no scaled intermediate products: see
    :func:`symdl.ir.build.product_term`)."""

    __slots__ = ("terms", "constant", "like")

    def __init__(self, like: Node):
        self.terms: list[tuple[Node, float]] = []
        self.constant = 0.0
        self.like = like

    def add(self, coeff: float, *factors: Node | None) -> None:
        if any(f is None for f in factors):
            return  # a structurally zero factor
        c, base = B.product_term(coeff, factors)
        if base is None:
            self.constant += c
        else:
            self.terms.append((base, c))

    def node(self) -> Node | None:
        """The sum, ``None`` when it is structurally zero."""
        like = self.like
        if not self.terms:
            return None if self.constant == 0.0 else B.fill(self.constant, like)
        out = B.linear(self.terms, self.constant)
        return out if out.shape == like.shape else B.broadcast_to(out, like.shape)


def _times(v: Node | None, c: float, like: Node) -> Node | None:
    if v is None:
        return None
    s = _Sum(like)
    s.add(c, v)
    return s.node()


# ---------------------------------------------------------------- series arithmetic

def _cauchy(a: Series, b: Series, n: int, like: Node, first: Node | None = None) -> Series:
    """The product series (``first``: its entry 0, when that node exists)."""
    out = [first if first is not None else B.mul(a[0], b[0])]
    nz_a = [j for j in range(n + 1) if a[j] is not None]
    for k in range(1, n + 1):
        s = _Sum(like)
        for j in nz_a:
            if j > k:
                break
            if b[k - j] is not None:
                s.add(1.0, a[j], b[k - j])
        out.append(s.node())
    return out


def _square(a: Series, n: int, like: Node, first: Node | None = None) -> Series:
    """``a * a`` with each cross product made once."""
    out = [first if first is not None else B.ipow(a[0], 2)]
    for k in range(1, n + 1):
        s = _Sum(like)
        for j in range((k + 1) // 2):
            if a[j] is not None and a[k - j] is not None:
                s.add(2.0, a[j], a[k - j])
        if k % 2 == 0 and a[k // 2] is not None:
            s.add(1.0, a[k // 2], a[k // 2])
        out.append(s.node())
    return out


def _reciprocal(g: Series, n: int, like: Node, first: Node) -> Series:
    """``1 / g`` given ``first = 1 / g_0``: r_k = -(1/g_0) sum_j g_j r_{k-j}."""
    out = [first]
    for k in range(1, n + 1):
        s = _Sum(like)
        for j in range(1, k + 1):
            if g[j] is not None and out[k - j] is not None:
                s.add(-1.0, g[j], out[k - j])
        out.append(_over(s.node(), first, like))
    return out


def _over(v: Node | None, inv: Node, like: Node) -> Node | None:
    """``v * inv`` with ``v``'s coefficient kept outside the product."""
    if v is None:
        return None
    s = _Sum(like)
    s.add(1.0, v, inv)
    return s.node()


def _int_power(a: Series, e: int, n: int, like: Node) -> Series:
    """``a ** e`` for an integer ``e >= 1`` by binary powering of series."""
    result = None
    base = a
    while True:
        if e & 1:
            result = base if result is None else _cauchy(result, base, n, like)
        e >>= 1
        if not e:
            return result
        base = _square(base, n, like)


def _is_constant(series: Series) -> bool:
    return all(v is None for v in series[1:])


# ---------------------------------------------------------------- rules: arithmetic

@taylor_rule("add")
def _add(node: Node, ins: list, n: int, x: Node) -> Series:
    out = [node]
    for k in range(1, n + 1):
        s = _Sum(node)
        for a, c in zip(ins, node.attr("coeffs")):
            if a[k] is not None and c != 0.0:
                s.add(c, a[k])
        out.append(s.node())
    return out


@taylor_rule("mul")
def _mul(node: Node, ins: list, n: int, x: Node) -> Series:
    factors = []
    for base, a, e in zip(node.inputs, ins, node.attr("exps")):
        if _is_constant(a):
            factors.append([B.ipow(base, e)] + [None] * n)
            continue
        if e < 0:
            a = _reciprocal(a, n, node, B.ipow(base, -1))
            e = -e
        factors.append(_int_power(a, e, n, node))
    out = factors[0]
    for k, f in enumerate(factors[1:], start=2):
        out = _cauchy(out, f, n, node, node if k == len(factors) else None)
    out[0] = node
    return out


@taylor_rule("powc")
def _powc(node: Node, ins: list, n: int, x: Node) -> Series:
    # a^p for a non-integer p.  a y' = p a' y gives a recurrence that divides
    # by a_0; for p < 0 so does the derivative (a_0 = 0 is a pole), but for
    # p > 0 the low derivatives are finite at a_0 = 0: compose instead.
    p = node.attr("p")
    if p > 0:
        return _compose(node, ins, n, x)
    (a,) = ins
    inv = B.ipow(node.inputs[0], -1)
    out = [node]
    for k in range(1, n + 1):
        s = _Sum(node)
        for j in range(1, k + 1):
            c = (p * j - (k - j)) / k
            if c != 0.0 and a[j] is not None and out[k - j] is not None:
                s.add(c, a[j], out[k - j])
        out.append(_over(s.node(), inv, node))
    return out


# ---------------------------------------------------------------- rules: functions

def _derivative_of_argument(y: Series, a: Series, k: int, z: Series, like: Node, sign: float = 1.0) -> Node | None:
    """``y_k`` for ``y' = z a'``: sum_{j=1..k} (j/k) a_j z_{k-j}."""
    s = _Sum(like)
    for j in range(1, k + 1):
        if a[j] is not None and z[k - j] is not None:
            s.add(sign * j / k, a[j], z[k - j])
    return s.node()


@taylor_rule("exp")
def _exp(node: Node, ins: list, n: int, x: Node) -> Series:
    (a,) = ins
    out = [node]
    for k in range(1, n + 1):
        out.append(_derivative_of_argument(out, a, k, out, node))
    return out


def _pair(node: Node, ins: list, n: int, partner: str, signs: tuple[float, float]) -> Series:
    """sin/cos and sinh/cosh: each one's derivative is the other (up to sign)."""
    (a,) = ins
    mine, other = [node], [B.fn(partner, node.inputs[0])]
    for k in range(1, n + 1):
        m = _derivative_of_argument(mine, a, k, other, node, signs[0])
        o = _derivative_of_argument(other, a, k, mine, node, signs[1])
        mine.append(m)
        other.append(o)
    return mine


@taylor_rule("sin")
def _sin(node, ins, n, x):
    return _pair(node, ins, n, "cos", (1.0, -1.0))


@taylor_rule("cos")
def _cos(node, ins, n, x):
    return _pair(node, ins, n, "sin", (-1.0, 1.0))


@taylor_rule("sinh")
def _sinh(node, ins, n, x):
    return _pair(node, ins, n, "cosh", (1.0, 1.0))


@taylor_rule("cosh")
def _cosh(node, ins, n, x):
    return _pair(node, ins, n, "sinh", (1.0, 1.0))


def _one_plus_square(node: Node, y: Series, sign: float, n: int) -> Series:
    """The series of ``1 + sign * y^2`` (entries filled in as ``y`` grows)."""
    return [B.linear([(B.ipow(y[0], 2), sign)], 1.0)] + [None] * n


@taylor_rule("tanh", "tan")
def _tanh_tan(node: Node, ins: list, n: int, x: Node) -> Series:
    # tanh' = 1 - tanh^2, tan' = 1 + tan^2: z = 1 -+ y^2 grows with y
    (a,) = ins
    sign = -1.0 if node.op == "tanh" else 1.0
    out = [node]
    z = _one_plus_square(node, out, sign, n)
    for k in range(1, n + 1):
        out.append(_derivative_of_argument(out, a, k, z, node))
        s = _Sum(node)
        for j in range((k + 1) // 2):
            if out[j] is not None and out[k - j] is not None:
                s.add(2.0 * sign, out[j], out[k - j])
        if k % 2 == 0 and out[k // 2] is not None:
            s.add(sign, out[k // 2], out[k // 2])
        z[k] = s.node()
    return out


def _quotient_recurrence(node: Node, a: Series, q: Series, inv_q0: Node, n: int) -> Series:
    """``y' q = a'``: y_k = (a_k - sum_{j=1..k-1} ((k-j)/k) y_{k-j} q_j) / q_0."""
    out = [node]
    for k in range(1, n + 1):
        s = _Sum(node)
        if a[k] is not None:
            s.add(1.0, a[k])
        for j in range(1, k):
            if out[k - j] is not None and q[j] is not None:
                s.add(-(k - j) / k, out[k - j], q[j])
        out.append(_over(s.node(), inv_q0, node))
    return out


@taylor_rule("log")
def _log(node: Node, ins: list, n: int, x: Node) -> Series:
    (a,) = ins
    return _quotient_recurrence(node, a, a, B.ipow(node.inputs[0], -1), n)


@taylor_rule("log1p")
def _log1p(node: Node, ins: list, n: int, x: Node) -> Series:
    (a,) = ins
    q0 = B.linear([(node.inputs[0], 1.0)], 1.0)
    return _quotient_recurrence(node, a, [q0] + a[1:], B.ipow(q0, -1), n)


@taylor_rule("atan")
def _atan(node: Node, ins: list, n: int, x: Node) -> Series:
    (a,) = ins
    sq = _square(a, n, node)
    q = [B.linear([(sq[0], 1.0)], 1.0)] + sq[1:]
    return _quotient_recurrence(node, a, q, B.ipow(q[0], -1), n)


@taylor_rule("expm1")
def _expm1(node: Node, ins: list, n: int, x: Node) -> Series:
    (a,) = ins
    e = [B.fn("exp", node.inputs[0])]
    for k in range(1, n + 1):
        e.append(_derivative_of_argument(e, a, k, e, node))
    return [node] + e[1:]


@taylor_rule("atan2")
def _atan2(node: Node, ins: list, n: int, x: Node) -> Series:
    # y' (u^2 + v^2) = v u' - u v', divided by u0^2 + v0^2 as the partials are
    u, v = ins
    if _is_constant(u) or _is_constant(v):
        return _compose(node, ins, n, x)
    su, sv = _square(u, n, node), _square(v, n, node)
    q = [B.add(su[0], sv[0])] + [_plus(su[j], sv[j], node) for j in range(1, n + 1)]
    inv = B.ipow(q[0], -1)
    out = [node]
    for k in range(1, n + 1):
        s = _Sum(node)
        for i in range(k):
            w = (k - i) / k
            s.add(w, v[i], u[k - i])
            s.add(-w, u[i], v[k - i])
        for j in range(1, k):
            s.add(-(k - j) / k, out[k - j], q[j])
        out.append(_over(s.node(), inv, node))
    return out


def _plus(a: Node | None, b: Node | None, like: Node) -> Node | None:
    s = _Sum(like)
    for v in (a, b):
        if v is not None:
            s.add(1.0, v)
    return s.node()


@taylor_rule("pow")
def _pow(node: Node, ins: list, n: int, x: Node) -> Series:
    # a^b with both varying: y' = y (b log a)'; log a divides by a_0 where the
    # partial d/db = log(a) a^b is already not finite at a_0 = 0
    a, b = ins
    if _is_constant(a) or _is_constant(b):
        return _compose(node, ins, n, x)
    base = node.inputs[0]
    log_a = _log(B.fn("log", base), [a], n, x)
    w = _cauchy(b, log_a, n, node, first=node)  # entry 0 is never used
    out = [node]
    for k in range(1, n + 1):
        out.append(_derivative_of_argument(out, w, k, out, node))
    return out


# ---------------------------------------------------------------- composition (Faa di Bruno)

def _own_derivatives(node: Node, index: int, n: int) -> list[Node | None]:
    """d^m node / d input_index^m for m = 1..n, by nested symbolic
    differentiation of the one operation (its other inputs held fixed).

    The operation is differentiated at a placeholder input and the argument
    substituted afterwards: canonical forms may merge the argument into its
    own inputs (``erf'(u) = exp(-u^2)`` with ``u = x^2`` becomes ``exp(-x^4)``),
    after which a derivative "with respect to u" would no longer see it.
    """
    from .reverse import jvp
    arg = node.inputs[index]
    u = B.input_node("__taylor_argument__", arg.shape, arg.dtype)
    inputs = list(node.inputs)
    inputs[index] = u
    cur = B.emit(node.op, inputs, **dict(node.attrs))
    one = B.fill(1.0, u)
    out = []
    for _ in range(n):
        (cur,) = jvp([cur], [u], [one]) if cur is not None else (None,)
        out.append(cur)
    present = [d for d in out if d is not None]
    back = iter(B.substitute(present, {u: arg}))
    return [None if d is None else next(back) for d in out]


def _compose(node: Node, ins: list, n: int, x: Node) -> Series:
    """``node = g(a)`` with ``a`` its one input that varies:
    y_k = sum_{m=1..k} g^(m)(a_0) / m! * [t^k] (a - a_0)^m."""
    varying = [i for i, s in enumerate(ins) if not _is_constant(s)]
    if len(varying) != 1:
        return _nested(node, n, x)
    arg_index = varying[0]
    a = ins[arg_index]
    d = [None] + a[1:]
    derivs = _own_derivatives(node, arg_index, n)
    terms = [_Sum(node) for _ in range(n + 1)]
    power = d
    for m in range(1, n + 1):
        if m > 1:
            power = _cauchy(power, d, n, node, first=B.fill(0.0, node))
            power[0] = None
        g = derivs[m - 1]
        if g is not None:
            for k in range(m, n + 1):
                if power[k] is not None:
                    terms[k].add(1.0 / math.factorial(m), g, power[k])
    return [node] + [t.node() for t in terms[1:]]


def _nested(node: Node, n: int, x: Node) -> Series:
    """The fallback: nested differentiation of the subgraph of ``node`` with
    respect to the variable ``x``."""
    from .reverse import jvp
    out, cur = [node], node
    one = B.fill(1.0, x)
    for k in range(1, n + 1):
        if cur is not None:
            (cur,) = jvp([cur], [x], [one])
        out.append(_times(cur, 1.0 / math.factorial(k), node))
    return out



def _piecewise_linear(node: Node, ins: list, n: int, x: Node) -> Series:
    """Ops whose derivative is piecewise constant (where, maximum, minimum,
    abs, movement, sums over axes, conversions): the tangent rule maps each
    coefficient as it maps a tangent, with the same branch decisions."""
    rule = primitive(node.op).jvp
    out = [node]
    for k in range(1, n + 1):
        t = rule(node, [s[k] for s in ins])
        if t is not None and t.shape != node.shape:
            t = B.broadcast_to(t, node.shape)
        out.append(t)
    return out


_PIECEWISE_LINEAR = frozenset({"where", "maximum", "minimum", "abs", "convert"})
_LINEAR_KINDS = frozenset({"movement", "reduce", "scan"})


def _rule_for(node: Node) -> Rule:
    rule = TAYLOR.get(node.op)
    if rule is not None:
        return rule
    prim = primitive(node.op)
    if node.op in _PIECEWISE_LINEAR or (prim.kind in _LINEAR_KINDS and node.op != "reduce_max"):
        return _piecewise_linear
    return _compose


# ---------------------------------------------------------------- entry points

def taylor_coefficients(y: Node, x: Node, order: int) -> list[Node | None]:
    """Taylor coefficients ``[y_0, ..., y_order]`` of ``y`` as a function of
    ``x`` (elementwise): ``y_k = (d^k y / dx^k) / k!``; ``None`` where a
    coefficient is structurally zero.

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (), "float64")
        >>> c = taylor_coefficients(B.fn("exp", x), x, 2)
        >>> c[0] is B.fn("exp", x)
        True
    """
    if order < 0:
        raise ValueError(f"taylor: order must be >= 0, got {order}")
    n = order
    series: dict[Node, Series] = {x: [x, B.fill(1.0, x)] + [None] * (n - 1) if n else [x]}
    for node in toposort([y]):
        if node in series:
            continue
        ins = [series.get(i) for i in node.inputs]
        if all(s is None for s in ins) or not primitive(node.op).differentiable:
            continue  # independent of x, or piecewise constant
        ins = [s if s is not None else [i] + [None] * n for i, s in zip(node.inputs, ins)]
        series[node] = _rule_for(node)(node, ins, n, x) if n else [node]
    return series.get(y, [y] + [None] * n)


def taylor_derivatives(y: Node, x: Node, order: int) -> list[Node]:
    """``[y, dy/dx, ..., d^order y/dx^order]`` of an elementwise function by
    Taylor-mode propagation (``k!`` times the Taylor coefficients; zeros are
    constant nodes).

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (), "float64")
        >>> taylor_derivatives(B.fn("sin", x), x, 2)[2] is B.neg(B.fn("sin", x))
        True
    """
    coeffs = taylor_coefficients(y, x, order)
    out = []
    for k, c in enumerate(coeffs):
        d = c if k < 2 else _times(c, float(math.factorial(k)), y)
        out.append(B.fill(0.0, y) if d is None else d)
    return out
