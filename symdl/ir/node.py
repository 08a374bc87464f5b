"""The one IR node type: immutable, interned (hash-consed) expression nodes.

Building a node equal to an existing live one returns that node, so common
subexpressions are merged by construction and nodes can serve as dict keys
(hashing and equality are by identity, which interning makes structural).
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections import deque
from typing import Any

import numpy as np

__all__ = ["Node", "ArrayValue", "make_node"]

DTYPES = ("float32", "float64", "bool", "int64")


class ArrayValue:
    """A hashable, immutable wrapper of a constant numpy array (for attrs)."""

    __slots__ = ("array", "_key", "_hash")

    def __init__(self, array: np.ndarray):
        arr = np.array(array, copy=True, order="C")
        arr.setflags(write=False)
        self.array = arr
        self._key = (arr.dtype.str, arr.shape, arr.tobytes())
        self._hash = hash(self._key)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArrayValue) and self._key == other._key

    def __repr__(self) -> str:
        flat = self.array.ravel()
        body = ", ".join(repr(v.item()) for v in flat[:4])
        more = ", ..." if flat.size > 4 else ""
        return f"array([{body}{more}], shape={self.array.shape})"

    def digest_bytes(self) -> bytes:
        return repr(self._key[:2]).encode() + self._key[2]


def _attr_bytes(value: Any) -> bytes:
    """Deterministic bytes of an attribute value (used for content digests)."""
    if isinstance(value, ArrayValue):
        return b"A" + value.digest_bytes()
    if isinstance(value, tuple):
        return b"(" + b",".join(_attr_bytes(v) for v in value) + b")"
    if isinstance(value, float):
        return b"f" + value.hex().encode()
    return repr(value).encode()


class Node:
    """One operation of the graph: ``op(inputs; attrs) -> shape, dtype``.

    Never construct directly; use :func:`make_node` (raw, interned) or the
    canonicalising builders in :mod:`symdl.ir.build`.

    Hashing and equality are object identity (inherited from ``object``, so
    dict and set lookups of nodes run at C speed); interning makes identity
    structural.  The content digest is computed on first use only: most nodes
    are never ordered or serialised.
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "depth", "_digest", "_order", "_ref", "__weakref__")

    op: str
    inputs: tuple[Node, ...]
    attrs: tuple[tuple[str, Any], ...]
    shape: tuple[int, ...]
    dtype: str
    depth: int

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("symdl IR nodes are immutable")

    def __lt__(self, other: Node) -> bool:
        return sort_key(self) < sort_key(other)

    @property
    def digest(self) -> bytes:
        """Process-independent content hash (16 bytes) of the node and its inputs."""
        d = self._digest
        return d if d is not None else _compute_digest(self)

    def attr(self, name: str, default: Any = None) -> Any:
        for key, value in self.attrs:
            if key == name:
                return value
        return default

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def is_const(self) -> bool:
        return self.op == "const"

    def const_scalar(self) -> float | None:
        """The fill value of a constant whose elements are all equal, else None."""
        if self.op != "const":
            return None
        value = self.attrs[0][1]
        if isinstance(value, ArrayValue):
            return None
        return value

    def __repr__(self) -> str:
        attrs = "".join(f", {k}={v!r}" for k, v in self.attrs)
        return f"<{self.op}{list(self.shape)}:{self.dtype} #{self.digest.hex()[:8]}{attrs}>"


# key -> weak reference: a node lives as long as something uses it
_INTERN: dict[tuple, weakref.ref] = {}

# The most recently created nodes, held strongly for a while: builders and
# derivative rules rebuild the same small nodes (constant fills, partials of
# nodes already differentiated once) over and over, and a node freed the
# moment its builder returns would be hashed and made again each time.
# (1024 keeps nearly all of that reuse; array constants are never held, so
# no data array outlives its graph by more than a few traces' worth of nodes.)
RECENT_NODES = 1024
_RECENT: deque = deque(maxlen=RECENT_NODES)


def _negative_zeros(attrs: tuple) -> tuple | None:
    """Where ``attrs`` hold -0.0 (``None``: nowhere, the common case).

    Tuples compare -0.0 equal to 0.0, but ``1 / c`` and ``x + c`` at
    ``x = -0.0`` tell them apart, so the intern key must too."""
    found = None
    pos = 0
    for _, value in attrs:
        t = type(value)
        if t is float:
            if value == 0.0 and math.copysign(1.0, value) < 0:
                found = (found or ()) + (pos,)
        elif t is tuple and 0.0 in value:  # (a C-speed scan first: most tuples hold no zero)
            for i, v in enumerate(value):
                if type(v) is float and v == 0.0 and math.copysign(1.0, v) < 0:
                    found = (found or ()) + ((pos, i),)
        pos += 1
    return found


def sort_key(node: Node) -> tuple:
    """Canonical, process-independent order of nodes (commutative operands).

    Shallower nodes first, so that printed sums read ``x + sin(x)`` rather than
    the other way round; the content digest breaks ties deterministically.
    Cached on the node: canonical sums and products ask for it on every build.
    """
    key = node._order
    if key is None:
        key = (node.depth, node.digest)
        _set_order(node, key)
    return key


def precedes(a: Node, b: Node) -> bool:
    """``sort_key(a) < sort_key(b)``, hashing only to break a tie in depth
    (most operands of a new sum or product differ in depth, and a new node's
    content digest is otherwise never needed while tracing)."""
    da, db = a.depth, b.depth
    if da != db:
        return da < db
    return sort_key(a) < sort_key(b)


def ordered(items, base=None) -> list:
    """``items`` in :func:`sort_key` order of their nodes (``base(item)``;
    default: the items are nodes), ties broken by the items themselves.  The
    digests are computed only when two depths tie."""
    items = list(items)
    if len(items) < 2:
        return items
    nodes = items if base is None else [base(i) for i in items]
    if len(items) == 2:  # the commonest case (binary sums and products): one comparison
        da, db = nodes[0].depth, nodes[1].depth
        if da != db:
            return items if da < db else [items[1], items[0]]
    depths = [n.depth for n in nodes]
    if len(set(depths)) == len(depths):
        return [items[k] for _, k in sorted(zip(depths, range(len(items))))]
    if base is None:
        return sorted(items, key=sort_key)
    return sorted(items, key=lambda i: (sort_key(base(i)), i[1:]))


def _own_digest(node: Node, input_digests: bytes) -> bytes:
    attrs = node.attrs
    # repr is exact for the usual attrs (ints, floats, strings, tuples of them);
    # array constants need their bytes, not their abbreviated repr
    if attrs and attrs[0][0] == "value" and isinstance(attrs[0][1], ArrayValue):
        attr_bytes = _attr_bytes(attrs)
    else:
        attr_bytes = repr(attrs).encode()
    return hashlib.blake2b(b"%s|%s|%s|%s|" % (node.op.encode(), attr_bytes, repr(node.shape).encode(),
                                               node.dtype.encode()) + input_digests, digest_size=16).digest()


def _compute_digest(node: Node) -> bytes:
    """Digest ``node`` and whichever of its ancestors have none yet.

    Iterative (graphs can be deeper than the recursion limit): a node is
    hashed once all its inputs are.
    """
    stack = [node]
    while stack:
        top = stack[-1]
        if top._digest is not None:
            stack.pop()
            continue
        missing = [i for i in top.inputs if i._digest is None]
        if missing:
            stack.extend(missing)
            continue
        stack.pop()
        _set_digest(top, _own_digest(top, b"".join([i._digest for i in top.inputs])))
    return node._digest


def make_node(op: str, inputs: tuple[Node, ...], attrs: tuple[tuple[str, Any], ...],
              shape: tuple[int, ...], dtype: str) -> Node:
    """Return the unique live node with these fields (raw: no checks, no rewriting)."""
    key = (op, inputs, attrs, shape, dtype)
    if attrs:
        zeros = _negative_zeros(attrs)
        if zeros is not None:
            key += (zeros,)
    ref = _INTERN.get(key)
    if ref is not None:
        node = ref()
        if node is not None:
            return node
    node = _new(Node)
    _set_op(node, op)
    _set_inputs(node, inputs)
    _set_attrs(node, attrs)
    _set_shape(node, shape)
    _set_dtype(node, dtype)
    n = len(inputs)
    if n == 1:
        _set_depth(node, inputs[0].depth + 1)
    elif n == 2:
        da, db = inputs[0].depth, inputs[1].depth
        _set_depth(node, (da if da > db else db) + 1)
    else:
        _set_depth(node, 1 + max([i.depth for i in inputs]) if inputs else 1)
    _set_digest(node, None)
    _set_order(node, None)
    ref = _Ref(node, _forget)
    ref.key = key
    hash(ref)  # cached now: a dead reference must still hash (see _forget)
    _set_ref(node, ref)
    _INTERN[key] = ref
    if not (attrs and type(attrs[0][1]) is ArrayValue):
        _RECENT.append(node)
    return node


_new = object.__new__
_set_op, _set_inputs, _set_attrs, _set_shape, _set_dtype, _set_depth, _set_digest, _set_order, _set_ref = (
    getattr(Node, name).__set__
    for name in ("op", "inputs", "attrs", "shape", "dtype", "depth", "_digest", "_order", "_ref"))


class _Ref(weakref.ref):
    """The intern table's reference to a node, carrying the table key, so that
    one shared callback (not a closure per node) drops the entry."""

    __slots__ = ("key",)


def _forget(ref: _Ref) -> None:
    if _INTERN is None:  # interpreter shutdown: module globals are gone
        return
    if _INTERN.get(ref.key) is ref:  # not a newer node made under the same key
        del _INTERN[ref.key]
    for values in VALUE_TABLES:
        values.pop(ref, None)


# Tables of per-trace values keyed by the nodes' own intern references
# (``node._ref``): a lookup needs no new weak reference, and a node's death
# (the callback above) drops its value from every table registered here, as
# a WeakKeyDictionary would (see symdl.tracing.NodeValues).
VALUE_TABLES: list[dict] = []
