"""Band structure instead of dense arithmetic: products with identity patterns.

A Jacobian or Hessian is built by batching a VJP over the rows of the
identity (``symdl.compiler.transforms``), so its graph multiplies values by
``eye`` and by slices of it: ``x[j] * eye[i, j]``, unslices of such products,
sums of them.  Computed as written, every element of the N x N result costs a
comparison, a product and masked reads, though only a few diagonals are
non-zero (the tridiagonal Hessian of Rosenbrock's function).

These rules find that a 2-D node is zero off a few diagonals and rebuild it
as a **band**: the diagonal segments as 1-D vectors (computed with O(N)
work), scattered into a zero matrix by ``take_add`` with constant indices::

    take_add(segment rows, flat_indices, axis=0, size=(R, C))

which lowers to a zero fill of the result plus one store per non-zero.  The
band form of an operand is read back by the rules of its users, so sums,
products, slices, unslices and transposes of bands stay bands.

Real-number algebra (docs/ieee.md): off the band the graph computes
``0 * x``, which IEEE makes NaN where ``x`` is inf or NaN; the band holds an
exact 0 there, as the symbolic Hessian has it (SymEngine, SymPy), and the
non-zeros are the same formulas without those ``0 * x`` terms.  A rule of a
construction set (``algebra``), so a traced value and compiled code agree;
not applied under ``ieee=True``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from ..ir import build as B
from ..ir.node import ArrayValue, Node
from ..ir.ops import primitive
from ..ir.rewrite import rule

__all__ = ["Segment", "Band", "band_of", "band_node"]

_FLOATS = ("float32", "float64")
_MAX_DEPTH = 200          # recursion bound of the diagonal reads (deeper: a gather)
_MAX_CONST_DIAGONALS = 8  # a constant matrix with more non-zero diagonals is left dense


@dataclass(frozen=True)
class Segment:
    """Elements ``(p + t, p + t + offset)``, ``t < len(values)``, of a 2-D
    node hold ``values`` (1-D); ``p`` is the first row of the segment."""

    offset: int
    row: int
    values: Node

    @property
    def length(self) -> int:
        return self.values.shape[0]


@dataclass(frozen=True)
class Band:
    """A 2-D node of ``shape`` that is zero outside ``segments`` (their
    values add where they overlap).  ``pure``: an identity pattern moved
    about (``eye``, its slices), cheaper as index arithmetic than as a band."""

    shape: tuple[int, int]
    segments: tuple[Segment, ...]
    pure: bool = False

    @property
    def nonzeros(self) -> int:
        return sum(s.length for s in self.segments)


_BANDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # node -> Band | None
_ENCODED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # band node -> Band


# ---------------------------------------------------------------- segments moved about

def _clip(seg: Segment, rows: tuple[int, int], cols: tuple[int, int]) -> Segment | None:
    """The part of ``seg`` inside ``rows x cols`` (half-open ranges)."""
    p, k, n = seg.row, seg.offset, seg.length
    lo = max(0, rows[0] - p, cols[0] - p - k)
    hi = min(n, rows[1] - p, cols[1] - p - k)
    if hi <= lo:
        return None
    values = seg.values if (lo, hi) == (0, n) else B.slice_(seg.values, [slice(lo, hi)])
    return Segment(k, p + lo, values)


def _shift(seg: Segment, dr: int, dc: int) -> Segment:
    return Segment(seg.offset + dc - dr, seg.row + dr, seg.values)


def _band_of_slice(node: Node, band: Band) -> Band | None:
    if any(s != 1 for s in node.attr("steps")):
        return None
    (a, b), (r, c) = node.attr("starts"), node.shape
    segs = (_clip(s, (a, a + r), (b, b + c)) for s in band.segments)
    return Band(node.shape, tuple(_shift(s, -a, -b) for s in segs if s is not None), band.pure)


def _band_of_unslice(node: Node, band: Band) -> Band | None:
    if any(s != 1 for s in node.attr("steps")):
        return None
    a, b = node.attr("starts")
    return Band(node.shape, tuple(_shift(s, a, b) for s in band.segments), band.pure)


def _band_of_transpose(node: Node, band: Band) -> Band | None:
    if tuple(node.attr("perm")) != (1, 0):
        return None
    return Band(node.shape, tuple(Segment(-s.offset, s.row + s.offset, s.values) for s in band.segments),
                band.pure)


# ---------------------------------------------------------------- values along a diagonal

class _Reader:
    """Values of 2-D-broadcast nodes along one diagonal run: element
    ``(r0 + t, c0 + t)`` for ``t < n``, as a node of shape ``(n,)`` or ``()``,
    by the same elementwise operations on slices of the operands (exact)."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.memo: dict[tuple, Node] = {}

    def read(self, x: Node, r0: int, c0: int, n: int, depth: int = 0) -> Node:
        key = (x, r0, c0, n)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._read(x, r0, c0, n, depth)
        return got

    def _read(self, x: Node, r0: int, c0: int, n: int, depth: int) -> Node:
        if x.ndim == 0:
            return x
        if x.ndim == 1:
            return B.reshape(x, ()) if x.shape[0] == 1 else B.slice_(x, [slice(c0, c0 + n)])
        rows, cols = x.shape
        if rows == 1 or cols == 1:
            flat = B.reshape(x, (rows * cols,))
            if rows * cols == 1:
                return B.reshape(x, ())
            start = c0 if rows == 1 else r0
            return B.slice_(flat, [slice(start, start + n)])
        band = band_of(x)
        if band is not None:
            return _diagonal_values(band, c0 - r0, r0, n, x.dtype)
        if depth < _MAX_DEPTH:
            got = self._read_op(x, r0, c0, n, depth + 1)
            if got is not None:
                return got
        return self._gather(x, r0, c0, n)

    def _read_op(self, x: Node, r0: int, c0: int, n: int, depth: int) -> Node | None:
        op = x.op
        if op == "broadcast_to":
            return self.read(x.inputs[0], r0, c0, n, depth)
        if op == "iota":
            start = r0 if x.attr("axis") == 0 else c0
            return B.linear([(B.iota((n,), 0, x.dtype), 1.0)], float(start))
        if op == "slice" and all(s == 1 for s in x.attr("steps")):
            a, b = x.attr("starts")
            return self.read(x.inputs[0], r0 + a, c0 + b, n, depth)
        if op == "transpose":
            return self.read(x.inputs[0], c0, r0, n, depth)
        if op == "unslice" and all(s == 1 for s in x.attr("steps")):
            return self._read_unslice(x, r0, c0, n, depth)
        if primitive(op).kind == "elementwise" and x.inputs and "shape" not in dict(x.attrs):
            args = [self.read(i, r0, c0, n, depth) for i in x.inputs]
            if all(a.ndim == 0 for a in args):
                args[0] = B.broadcast_to(args[0], (n,))
            return B.emit(op, args, **dict(x.attrs))
        return None

    def _read_unslice(self, x: Node, r0: int, c0: int, n: int, depth: int) -> Node:
        (e,), (a, b) = x.inputs, x.attr("starts")
        lo = max(0, a - r0, b - c0)
        hi = min(n, a + e.shape[0] - r0, b + e.shape[1] - c0)
        if hi <= lo:
            return B.const(0.0, (n,), x.dtype)
        part = self.read(e, r0 + lo - a, c0 + lo - b, hi - lo, depth)
        if part.ndim == 0:
            part = B.broadcast_to(part, (hi - lo,))
        return part if (lo, hi) == (0, n) else B.unslice(part, (lo,), (hi,), (1,), (n,))

    def _gather(self, x: Node, r0: int, c0: int, n: int) -> Node:
        """A dense node read at the diagonal's flat indices: O(n) work on a
        value that is in memory anyway."""
        cols = x.shape[1]
        idx = (r0 + np.arange(n, dtype=np.int64)) * cols + c0 + np.arange(n, dtype=np.int64)
        return B.take(B.reshape(x, (x.size,)), B.const(idx, (n,), "int64"), 0)


def _diagonal_values(band: Band, offset: int, row: int, n: int, dtype: str) -> Node:
    """The ``n`` elements ``(row + t, row + t + offset)`` of ``band`` as a
    1-D node (zero where no segment is)."""
    parts = []
    for s in band.segments:
        if s.offset != offset:
            continue
        lo, hi = max(row, s.row), min(row + n, s.row + s.length)
        if hi <= lo:
            continue
        v = s.values if (lo, hi) == (s.row, s.row + s.length) else B.slice_(s.values, [slice(lo - s.row, hi - s.row)])
        parts.append(v if (lo, hi) == (row, row + n) else B.unslice(v, (lo - row,), (hi - row,), (1,), (n,)))
    return B.add(*parts) if parts else B.const(0.0, (n,), dtype)


# ---------------------------------------------------------------- which nodes are bands

def _identity_pattern(node: Node) -> Band | None:
    """``convert(eq(iota(axis 0), iota(axis 1)))``: ones on the diagonal."""
    if node.op != "convert" or node.dtype not in _FLOATS or node.inputs[0].op != "eq":
        return None
    a, b = node.inputs[0].inputs
    if a.op != "iota" or b.op != "iota" or {a.attr("axis"), b.attr("axis")} != {0, 1}:
        return None
    if a.shape != node.shape or b.shape != node.shape:
        return None
    n = min(node.shape)
    return Band(node.shape, (Segment(0, 0, B.const(1.0, (n,), node.dtype)),) if n else (), pure=True)


def _constant_band(node: Node) -> Band | None:
    """A constant matrix whose non-zeros lie on a few diagonals (constant
    folding turns combinations of identity slices into such arrays)."""
    value = node.attr("value")
    if not isinstance(value, ArrayValue):
        return None
    arr = value.array
    if 2 * np.count_nonzero(arr) > arr.size:  # dense (a weight matrix): no index arrays built
        return None
    rows, cols = np.nonzero(arr)
    offsets = np.unique(cols - rows)
    if offsets.size > _MAX_CONST_DIAGONALS:
        return None
    segs = []
    for k in offsets.tolist():
        first = rows[cols - rows == k]
        lo, hi = int(first.min()), int(first.max()) + 1
        t = np.arange(lo, hi)
        segs.append(Segment(k, lo, B.const(arr[t, t + k], (hi - lo,), node.dtype)))
    return Band(node.shape, tuple(segs), pure=True)


def _band_of_sum(node: Node) -> Band | None:
    if node.attr("const") != 0.0:
        return None
    segs = []
    for t, c in zip(node.inputs, node.attr("coeffs")):
        band = band_of(t) if t.shape == node.shape else None
        if band is None:
            return None
        segs += [Segment(s.offset, s.row, s.values if c == 1.0 else B.scale(s.values, c)) for s in band.segments]
    return Band(node.shape, _merge(segs))


def _merge(segs: list[Segment]) -> tuple[Segment, ...]:
    """Segments over the same elements summed into one (one scatter per
    element, one vector to copy), in first-seen order."""
    groups: dict[tuple[int, int, int], list[Node]] = {}
    for s in segs:
        groups.setdefault((s.offset, s.row, s.length), []).append(s.values)
    return tuple(Segment(k, r, vs[0] if len(vs) == 1 else B.add(*vs)) for (k, r, _), vs in groups.items())


def _band_of_product(node: Node) -> Band | None:
    factors = list(zip(node.inputs, node.attr("exps")))
    found = None
    for k, (f, e) in enumerate(factors):
        if e > 0 and f.shape == node.shape and (band := band_of(f)) is not None:
            found = k, band, e
            break
    if found is None:
        return None
    k, band, e = found
    reader, segs = _Reader(node.shape), []
    for s in band.segments:
        terms = [s.values if e == 1 else B.ipow(s.values, e)]
        for j, (f, ej) in enumerate(factors):
            if j != k:
                v = reader.read(f, s.row, s.row + s.offset, s.length)
                terms.append(v if ej == 1 else B.ipow(v, ej))
        value = B.mul(*terms)
        if value.shape != (s.length,):
            value = B.broadcast_to(value, (s.length,))
        segs.append(Segment(s.offset, s.row, value))
    return Band(node.shape, tuple(segs))


def band_of(node: Node) -> Band | None:
    """The band structure of a 2-D float node, or None (dense or unknown).

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (4,), "float64")
        >>> band = band_of(B.mul(x, B.eye(4)))      # x[j] on the diagonal
        >>> [(s.offset, s.row, s.length) for s in band.segments]
        [(0, 0, 4)]
    """
    if node.ndim != 2 or node.dtype not in _FLOATS:
        return None
    try:
        return _BANDS[node]
    except KeyError:
        pass
    band = _find_band(node)
    _BANDS[node] = band
    return band


def _find_band(node: Node) -> Band | None:
    op = node.op
    if op == "convert":
        return _identity_pattern(node)
    if op == "const":
        return _constant_band(node)
    if op == "take_add":
        return _ENCODED.get(node)  # a band this module built (a deserialised copy is just dense)
    if op == "add":
        return _band_of_sum(node)
    if op == "mul":
        return _band_of_product(node)
    moves = {"slice": _band_of_slice, "unslice": _band_of_unslice, "transpose": _band_of_transpose}
    if op in moves and (inner := band_of(node.inputs[0])) is not None:
        return moves[op](node, inner)
    return None


def _join(segs: list[Segment], dtype: str) -> list[Segment]:
    """Segments of one diagonal that overlap or touch become one, over the
    union of their rows (fewer loops and copies; sums where they overlap)."""
    segs = sorted(segs, key=lambda s: s.row)
    runs: list[list[Segment]] = [[segs[0]]]
    for s in segs[1:]:
        if s.row <= max(t.row + t.length for t in runs[-1]):
            runs[-1].append(s)
        else:
            runs.append([s])
    out = []
    for run in runs:
        lo, hi = run[0].row, max(t.row + t.length for t in run)
        parts = [v if (t.row, t.length) == (lo, hi - lo) else B.unslice(v, (t.row - lo,), (t.row - lo + t.length,),
                                                                           (1,), (hi - lo,))
                 for t in run for v in [_as_dtype(t.values, dtype)]]
        out.append(Segment(run[0].offset, lo, parts[0] if len(parts) == 1 else B.add(*parts)))
    return out


def _as_dtype(v: Node, dtype: str) -> Node:
    return v if v.dtype == dtype else B.convert(v, dtype)


def band_node(band: Band, dtype: str) -> Node:
    """A node computing ``band``: its segments scattered into a zero matrix.

    Segments of one diagonal that overlap are joined; segments with the
    same values (the two off-diagonals of a symmetric matrix) share one
    vector, read as broadcast rows, so the scatter's operand is a
    ``(segments, L)`` matrix built with one contiguous copy per distinct
    vector.  Shorter vectors are padded with zeros, scattered onto their
    segment's first element.  (Measured alternatives: the segments end to
    end as a sum of unslices compile faster but read every vector through
    masks, 1.5 us slower per call at N = 200; a select over broadcast rows
    makes LLVM unswitch and unroll the loop per row.)

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (3,), "float64")
        >>> band = band_of(B.mul(x, B.eye(3)))
        >>> node = band_node(band, "float64")
        >>> node.op, node.attr("size")
        ('take_add', (3, 3))
    """
    rows, cols = band.shape
    by_offset: dict[int, list[Segment]] = {}
    for s in band.segments:
        if s.length > 0:
            by_offset.setdefault(s.offset, []).append(s)
    segs = [m for k in sorted(by_offset) for m in _join(by_offset[k], dtype)]
    if not segs:
        return B.const(0.0, band.shape, dtype)
    width = max(s.length for s in segs)
    columns: dict[Node, list[Segment]] = {}
    for s in segs:
        columns.setdefault(s.values, []).append(s)
    blocks, idx = [], []
    for v, group in columns.items():
        padded = v if v.shape[0] == width else B.unslice(v, (0,), (v.shape[0],), (1,), (width,))
        blocks.append(B.broadcast_to(B.reshape(padded, (1, width)), (len(group), width)))
        for s in group:
            t = np.arange(width, dtype=np.int64)
            t[s.length:] = 0
            idx.append((s.row + t) * (cols + 1) + s.offset)
    values = blocks[0] if len(blocks) == 1 else B.concatenate(blocks, 0)
    index = np.stack(idx, axis=0)
    node = B.emit("take_add", (values, B.const(index, index.shape, "int64")), axis=0, size=(rows, cols))
    _ENCODED[node] = Band(band.shape, tuple(segs))
    return node


# ---------------------------------------------------------------- the rule

@rule("algebra", "add", "mul", "slice", "unslice", "transpose")
def sparse_band(node: Node) -> Node | None:
    """A 2-D node that is zero off a few diagonals (at most half its
    elements) becomes a band: O(non-zeros) work plus the zero fill (real
    algebra: ``0 * x -> 0`` off the band).  Identity patterns alone stay
    index arithmetic.

    Example:
        >>> from symdl.ir import build as B
        >>> x = B.input_node("x", (5,), "float64")
        >>> B.mul(x, B.eye(5)).op        # the builders run the rule
        'take_add'
    """
    band = band_of(node)
    if band is None or band.pure or 2 * band.nonzeros > node.size:
        return None
    return band_node(band, node.dtype)
