"""Contractions with numpy's signatures: einsum (any subscripts, implicit
output, ellipsis, repeated labels), tensordot, inner, outer, kron, cross,
trace.  Each is built from ``dot_general``, transposes, diagonal gathers and
sums, so its derivatives of every order follow."""

from __future__ import annotations

import builtins
import string

import numpy as np

from .. import functions as F
from ..core import to_operands
from ._common import arr, axis_of, gather_flat
from .shape import diagonal, moveaxis

__all__ = ["einsum", "tensordot", "inner", "outer", "kron", "cross", "trace"]


# ---------------------------------------------------------------- einsum

def _interleaved(args):
    """einsum(op0, sublist0, op1, sublist1, ..., [out]) as (subscripts, operands)."""
    letters = string.ascii_letters

    def to_str(sub):
        if isinstance(sub, (str, bytes)) or not hasattr(sub, "__iter__"):
            raise TypeError(f"einsum: a sublist must be a list of ints in [0, 52) or Ellipsis, got {sub!r}")
        for s in sub:
            if s is not Ellipsis and (isinstance(s, bool) or not isinstance(s, (int, np.integer))
                                      or not 0 <= s < len(letters)):
                raise ValueError(f"einsum: sublist entries must be ints in [0, 52) or Ellipsis, got {s!r}")
        return "".join("..." if s is Ellipsis else letters[s] for s in sub)

    pairs = args if len(args) % 2 == 0 else args[:-1]
    ops = list(pairs[0::2])
    subs = [to_str(s) for s in pairs[1::2]]
    text = ",".join(subs)
    if len(args) % 2:
        text += "->" + to_str(args[-1])
    return text, ops


def _parse(subscripts: str, shapes):
    """The labels of each operand and of the output (ellipses expanded to
    private labels), checked against the operand shapes."""
    sub = subscripts.replace(" ", "")
    if "->" in sub:
        ins, out = sub.split("->")
        if "->" in out:
            raise ValueError(f"einsum: subscripts {subscripts!r} have more than one '->'")
    else:
        ins, out = sub, None
    terms = ins.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: subscripts {subscripts!r} name {len(terms)} operands, got {len(shapes)}")
    for t in terms + ([out] if out is not None else []):
        rest = t.replace("...", "")
        if "." in rest or any(c not in string.ascii_letters for c in rest):
            raise ValueError(f"einsum: invalid subscript {t!r} in {subscripts!r} (letters and '...' only)")
        if t.count("...") > 1:
            raise ValueError(f"einsum: more than one ellipsis in {t!r}")
    ell_rank = 0
    labels = []
    for t, shape in zip(terms, shapes):
        explicit = len(t.replace("...", ""))
        if "..." in t:
            k = len(shape) - explicit
            if k < 0:
                raise ValueError(f"einsum: operand of shape {shape} has fewer dimensions than {t!r}")
            ell_rank = builtins.max(ell_rank, k)
            head, tail = t.split("...")
            labels.append(list(head) + [f"#{j}" for j in range(k - 1, -1, -1)] + list(tail))  # #j: j-th from the right
        else:
            if explicit != len(shape):
                raise ValueError(f"einsum: subscript {t!r} has {explicit} labels for an operand of shape {shape}")
            labels.append(list(t))
    ell = [f"#{j}" for j in range(ell_rank - 1, -1, -1)]
    if out is None:
        counts: dict[str, int] = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out_labels = ell + sorted(c for c, n in counts.items() if n == 1 and not c.startswith("#"))
    else:
        if len(set(out.replace("...", ""))) != len(out.replace("...", "")):
            raise ValueError(f"einsum: output subscript {out!r} repeats a label")
        head, _, tail = out.partition("...")
        if ell_rank and "..." not in out:
            raise ValueError(f"einsum: output has more dimensions than subscripts given in {subscripts!r}, "
                             "but no '...' ellipsis to broadcast the extra dimensions")
        out_labels = list(head) + (ell if "..." in out else []) + list(tail)
        known = {c for ls in labels for c in ls}
        for c in out_labels:
            if c not in known and not c.startswith("#"):
                raise ValueError(f"einsum: output label {c!r} appears in no operand of {subscripts!r}")
    return labels, out_labels


def _sizes(labels, shapes):
    sizes: dict[str, int] = {}
    for ls, shape in zip(labels, shapes):
        for c, d in zip(ls, shape):
            if c in sizes and sizes[c] != d and d != 1 and sizes[c] != 1:
                shown = "..." if c.startswith("#") else repr(c)
                raise ValueError(f"einsum: label {shown} has size {sizes[c]} in one operand and {d} in another")
            sizes[c] = builtins.max(sizes.get(c, 1), d) if c in sizes else d
    return sizes


def _prepare(x, ls, sizes, keep):
    """One operand: diagonal of repeated labels, broadcast size-1 axes, and
    labels needed nowhere else summed away."""
    uniq = list(dict.fromkeys(ls))
    if len(uniq) != len(ls):
        grid = np.indices([x.shape[ls.index(c)] for c in uniq])
        strides = np.cumprod((x.shape[1:] + (1,))[::-1])[::-1]
        pos = builtins.sum(grid[uniq.index(c)] * int(st) for c, st in zip(ls, strides))
        x = gather_flat(x, pos)
    target = tuple(sizes[c] for c in uniq)
    if x.shape != target:
        x = F.broadcast_to(x, target)
    drop = [i for i, c in enumerate(uniq) if c not in keep]
    if drop:
        x = F.sum(x, tuple(drop))
        uniq = [c for c in uniq if c in keep]
    return x, uniq


def einsum(*operands, out=None, optimize=False, dtype=None, order="K", casting="safe"):
    """numpy's ``einsum``: any subscripts, implicit output, ``...``, repeated
    labels (diagonals), and the interleaved ``einsum(a, [0, 1], b, [1, 2])``
    form; built from ``dot_general`` and movement ops, contracted left to right.

    Example:
        >>> import numpy as np, symdl
        >>> a = symdl.dlarray(np.arange(6.0).reshape(2, 3))
        >>> symdl.einsum("ij,ij->i", a, a)
        dlarray([ 5., 50.])
    """
    if out is not None:
        raise TypeError("einsum: out= is not supported (dlarrays are immutable)")
    if not operands:
        raise TypeError("einsum: needs subscripts and operands")
    if isinstance(operands[0], str):
        subscripts, ops = operands[0], list(operands[1:])
    else:
        subscripts, ops = _interleaved(operands)
    ops = [arr(o) for o in to_operands([arr(o) for o in ops], None if dtype is None else np.dtype(dtype).name)]
    shapes = [o.shape for o in ops]
    labels, out_labels = _parse(subscripts, shapes)
    sizes = _sizes(labels, shapes)
    current = []
    for k, (x, ls) in enumerate(zip(ops, labels)):
        others = {c for j, m in enumerate(labels) if j != k for c in m}
        current.append(_prepare(x, ls, sizes, others | set(out_labels)))
    acc, la = current[0]
    for k in range(1, len(current)):
        b, lb = current[k]
        later = {c for _, m in current[k + 1:] for c in m} | set(out_labels)
        both = [c for c in la if c in lb]
        batch = [c for c in both if c in later]
        contract = [c for c in both if c not in later]
        acc = F.apply("dot_general", [acc, b],
                      contract=(tuple(la.index(c) for c in contract), tuple(lb.index(c) for c in contract)),
                      batch=(tuple(la.index(c) for c in batch), tuple(lb.index(c) for c in batch)))
        la = batch + [c for c in la if c not in both] + [c for c in lb if c not in both]
        gone = [i for i, c in enumerate(la) if c not in later]
        if gone:
            acc = F.sum(acc, tuple(gone))
            la = [c for c in la if c in later]
    gone = [i for i, c in enumerate(la) if c not in out_labels]
    if gone:
        acc = F.sum(acc, tuple(gone))
        la = [c for c in la if c in out_labels]
    out_labels = [c for c in out_labels if c in la or not c.startswith("#")]
    perm = [la.index(c) for c in out_labels]
    if perm != list(range(len(perm))):
        acc = F.transpose(acc, perm)
    return acc


# ---------------------------------------------------------------- the named contractions

def tensordot(a, b, axes=2):
    """Sum of products over ``axes`` (an int N: the last N of ``a`` with the
    first N of ``b``; or two lists of axes).

    Example:
        >>> import numpy as np, symdl
        >>> a = symdl.dlarray(np.ones((2, 3, 4)))
        >>> symdl.tensordot(a, symdl.dlarray(np.ones((3, 4, 5)))).shape
        (2, 5)
    """
    a, b = (arr(v) for v in to_operands([arr(a), arr(b)]))
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        if n < 0 or n > a.ndim or n > b.ndim:
            raise ValueError(f"tensordot: axes={n} does not fit shapes {a.shape} and {b.shape}")
        ca, cb = list(range(a.ndim - n, a.ndim)), list(range(n))
    else:
        try:
            ca, cb = axes
        except (TypeError, ValueError):
            raise ValueError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}") from None
        ca = [axis_of("tensordot", c, a.ndim) for c in np.atleast_1d(ca).tolist()]
        cb = [axis_of("tensordot", c, b.ndim) for c in np.atleast_1d(cb).tolist()]
        if len(ca) != len(cb):
            raise ValueError(f"tensordot: axes {axes!r} pair {len(ca)} axes with {len(cb)}")
    for i, j in zip(ca, cb):
        if a.shape[i] != b.shape[j]:
            raise ValueError(f"tensordot: shape-mismatch for sum: axis {i} of {a.shape} and axis {j} of {b.shape}")
    return F.apply("dot_general", [a, b], contract=(tuple(ca), tuple(cb)), batch=((), ()))


def inner(a, b):
    """Sum of products over the last axes (a product for scalars).

    Example:
        >>> import symdl
        >>> float(symdl.inner(symdl.dlarray([1.0, 2.0]), [3.0, 4.0]))
        11.0
    """
    a, b = (arr(v) for v in to_operands([arr(a), arr(b)]))
    if a.ndim == 0 or b.ndim == 0:
        return F.multiply(a, b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"inner: last dimensions differ, shapes {a.shape} and {b.shape}")
    return tensordot(a, b, ([a.ndim - 1], [b.ndim - 1]))


def outer(a, b, out=None):
    """``a.ravel()[:, None] * b.ravel()[None, :]``.

    Example:
        >>> import symdl
        >>> symdl.outer(symdl.dlarray([1.0, 2.0]), [3.0, 4.0])
        dlarray([[3., 4.],
                 [6., 8.]])
    """
    if out is not None:
        raise TypeError("outer: out= is not supported (dlarrays are immutable)")
    a, b = F.reshape(arr(a), (-1, 1)), F.reshape(arr(b), (1, -1))
    return F.multiply(a, b)


def kron(a, b):
    """Kronecker product (blocks ``a[i, j] * b``).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.kron(symdl.dlarray(np.eye(2)), [[1.0, 2.0]])
        dlarray([[1., 2., 0., 0.],
                 [0., 0., 1., 2.]])
    """
    a, b = arr(a), arr(b)
    nd = builtins.max(a.ndim, b.ndim)
    sa = (1,) * (nd - a.ndim) + a.shape
    sb = (1,) * (nd - b.ndim) + b.shape
    wide_a = F.reshape(a, [d for s in sa for d in (s, 1)])
    wide_b = F.reshape(b, [d for s in sb for d in (1, s)])
    return F.reshape(F.multiply(wide_a, wide_b), [i * j for i, j in zip(sa, sb)])


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 3-vectors (or 2-vectors: z = 0; two 2-vectors give the
    z component), along the given axes, broadcasting the others.

    Example:
        >>> import symdl
        >>> symdl.cross(symdl.dlarray([1.0, 0.0, 0.0]), [0.0, 1.0, 0.0])
        dlarray([0., 0., 1.])
    """
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = (arr(v) for v in to_operands([arr(a), arr(b)]))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("cross: operands must be arrays of vectors, got a 0-d one")
    a = moveaxis(a, axis_of("cross", axisa, a.ndim), -1)
    b = moveaxis(b, axis_of("cross", axisb, b.ndim), -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError(f"cross: incompatible dimensions for cross product (dimension must be 2 or 3), "
                         f"got {a.shape[-1]} and {b.shape[-1]}")

    def comp(v, i):
        return v[..., i] if i < v.shape[-1] else None

    a0, a1, a2 = (comp(a, i) for i in range(3))
    b0, b1, b2 = (comp(b, i) for i in range(3))
    z = F.subtract(F.multiply(a0, b1), F.multiply(a1, b0))
    if a2 is None and b2 is None:
        return z

    def term(p, q, r, s):  # p * q - r * s with missing components as zero
        left = None if p is None or q is None else F.multiply(p, q)
        right = None if r is None or s is None else F.multiply(r, s)
        if right is None:
            return left
        return F.negative(right) if left is None else F.subtract(left, right)

    x = term(a1, b2, a2, b1)
    y = term(a2, b0, a0, b2)
    shape = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    c = F.stack([F.broadcast_to(v, shape) for v in (x, y, z)], axis=-1)
    return moveaxis(c, -1, axis_of("cross", axisc, c.ndim))


def trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    """Sum along a diagonal of the ``axis1`` x ``axis2`` planes.

    Example:
        >>> import numpy as np, symdl
        >>> float(np.trace(symdl.dlarray(np.arange(9.0).reshape(3, 3))))
        12.0
    """
    if out is not None:
        raise TypeError("trace: out= is not supported (dlarrays are immutable)")
    x = arr(a) if dtype is None else F.astype(arr(a), dtype)
    return F.sum(diagonal(x, offset, axis1, axis2), -1)
