"""The closed catalogue of primitives: shape/dtype inference and numpy semantics.

Everything else symdl offers (softmax, losses, normalisation, prod, ...) is a
decomposition into these.  Each primitive states how its result shape and dtype
follow from its inputs (errors name the op and the shapes) and how the numpy
reference interpreter evaluates it.  Elementwise *functions* (exp, sin, ...)
live in :mod:`symdl.ir.elementwise` and register themselves here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import numpy as np

from .node import ArrayValue, Node
from .shapes import ShapeError, broadcast_shapes

__all__ = ["Primitive", "PRIMITIVES", "register", "primitive"]

Infer = Callable[[tuple[Node, ...], dict[str, Any]], tuple[tuple[int, ...], str]]
Impl = Callable[[list[np.ndarray], Node], np.ndarray]


@dataclass(frozen=True)
class Primitive:
    """One primitive operation.

    kind: 'leaf', 'elementwise', 'reduce', 'movement', 'contract', 'index' or
    'random'.  ``differentiable=False`` ops (comparisons, sign, floor, ...)
    contribute no cotangent.
    """

    name: str
    kind: str
    infer: Infer
    impl: Impl
    differentiable: bool = True
    arity: int | None = None  # None: any number of inputs


PRIMITIVES: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    PRIMITIVES[prim.name] = prim
    return prim


def primitive(name: str) -> Primitive:
    try:
        return PRIMITIVES[name]
    except KeyError:
        raise ValueError(f"unknown primitive op {name!r}") from None


# ---------------------------------------------------------------- helpers

def _np(dtype: str):
    return np.dtype(dtype)


def _same_float_dtype(op: str, inputs: tuple[Node, ...]) -> str:
    dtypes = {i.dtype for i in inputs}
    if len(dtypes) != 1 or next(iter(dtypes)) not in ("float32", "float64"):
        raise ShapeError(f"{op}: operands must share one float dtype, got {sorted(dtypes)}")
    return next(iter(dtypes))


def _elementwise_infer(op: str, out_dtype: str | None = None) -> Infer:
    def infer(inputs, attrs):
        if not inputs:
            raise ShapeError(f"{op}: needs at least one operand")
        shape = broadcast_shapes(op, [i.shape for i in inputs])
        dtype = out_dtype or _same_float_dtype(op, inputs)
        if out_dtype == "bool" and op not in ("logical_and", "logical_or", "logical_not"):
            _same_float_dtype(op, inputs)
        return shape, dtype
    return infer


def elementwise(name: str, impl: Callable[..., np.ndarray], *, arity: int | None,
                out_dtype: str | None = None, differentiable: bool = True) -> Primitive:
    """Register an elementwise primitive whose numpy semantics is ``impl(*values)``."""
    def run(values, node):
        with np.errstate(all="ignore"):
            out = impl(*values)
        return np.broadcast_to(np.asarray(out, dtype=node.dtype), node.shape)
    return register(Primitive(name, "elementwise", _elementwise_infer(name, out_dtype), run,
                              differentiable=differentiable, arity=arity))


# ---------------------------------------------------------------- leaves

def _leaf_infer(inputs, attrs):  # shape and dtype are given, never inferred
    raise ShapeError("leaf nodes carry their own shape and dtype")


def _const_impl(values, node):
    value = node.attr("value")
    if isinstance(value, ArrayValue):
        return value.array
    return np.full(node.shape, value, dtype=node.dtype)


def _input_impl(values, node):
    raise ValueError(f"graph input {node.attr('name')!r} has no value bound")


register(Primitive("const", "leaf", _leaf_infer, _const_impl, arity=0))
register(Primitive("input", "leaf", _leaf_infer, _input_impl, arity=0))


# ---------------------------------------------------------------- arithmetic (canonical n-ary forms)

def _add_impl(values, node):
    coeffs = node.attr("coeffs")
    dt = _np(node.dtype)
    out = np.full(node.shape, node.attr("const"), dtype=dt)
    with np.errstate(all="ignore"):
        for v, c in zip(values, coeffs):
            out = out + (v if c == 1 else dt.type(c) * v)
    return out.astype(dt, copy=False)


def _int_power(v: np.ndarray, e: int) -> np.ndarray:
    if e == 1:
        return v
    if e == -1:
        return 1 / v
    if e == 2:
        return v * v
    return np.power(v, v.dtype.type(e))


def _mul_impl(values, node):
    dt = _np(node.dtype)
    out = np.ones(node.shape, dtype=dt)
    with np.errstate(all="ignore"):
        for v, e in zip(values, node.attr("exps")):
            out = out * _int_power(v, e)
    return out.astype(dt, copy=False)


def _add_infer(inputs, attrs):
    if len(attrs["coeffs"]) != len(inputs):
        raise ShapeError("add: one coefficient per term is required")
    return _elementwise_infer("add")(inputs, attrs)


def _mul_infer(inputs, attrs):
    exps = attrs["exps"]
    if len(exps) != len(inputs) or not all(isinstance(e, int) and e != 0 for e in exps):
        raise ShapeError("mul: one non-zero integer exponent per factor is required")
    return _elementwise_infer("mul")(inputs, attrs)


register(Primitive("add", "elementwise", _add_infer, _add_impl))
register(Primitive("mul", "elementwise", _mul_infer, _mul_impl))


def _powc_impl(values, node):
    (v,) = values
    p = node.attr("p")
    with np.errstate(all="ignore"):
        if p == 0.5:
            return np.sqrt(v)
        return np.power(v, v.dtype.type(p))


register(Primitive("powc", "elementwise", _elementwise_infer("powc"), _powc_impl, arity=1))


def _where_infer(inputs, attrs):
    cond, a, b = inputs
    if cond.dtype != "bool":
        raise ShapeError(f"where: condition must be bool, got {cond.dtype}")
    dtype = _same_float_dtype("where", (a, b))
    return broadcast_shapes("where", [cond.shape, a.shape, b.shape]), dtype


register(Primitive("where", "elementwise", _where_infer,
                   lambda vals, node: np.broadcast_to(np.where(*vals), node.shape).astype(node.dtype),
                   arity=3))


def _convert_infer(inputs, attrs):
    return inputs[0].shape, attrs["dtype"]


register(Primitive("convert", "elementwise", _convert_infer,
                   lambda vals, node: vals[0].astype(node.dtype), arity=1))

for _name, _fn in {"gt": np.greater, "ge": np.greater_equal, "lt": np.less, "le": np.less_equal,
                   "eq": np.equal, "ne": np.not_equal}.items():
    elementwise(_name, _fn, arity=2, out_dtype="bool", differentiable=False)
elementwise("logical_and", np.logical_and, arity=2, out_dtype="bool", differentiable=False)
elementwise("logical_or", np.logical_or, arity=2, out_dtype="bool", differentiable=False)
elementwise("logical_not", np.logical_not, arity=1, out_dtype="bool", differentiable=False)
# Identity whose derivative is zero: what dlgradient returns without
# enable_higher_derivatives, so the trace keeps it but nothing differentiates it.
elementwise("stop_gradient", lambda v: v, arity=1, differentiable=False)
elementwise("maximum", np.maximum, arity=2)
elementwise("minimum", np.minimum, arity=2)
elementwise("pow", np.power, arity=2)


def _iota_infer(inputs, attrs):
    shape, axis = attrs["shape"], attrs["axis"]
    if inputs or not 0 <= axis < len(shape):
        raise ShapeError(f"iota: needs no operands and an axis of {shape}, got axis {axis}")
    return shape, attrs["dtype"]


def _iota_impl(values, node):
    axis = node.attr("axis")
    n = node.shape[axis]
    ar = np.arange(n, dtype=node.dtype).reshape([n if i == axis else 1 for i in range(len(node.shape))])
    return np.broadcast_to(ar, node.shape)


# The index along one axis, as a value: identity matrices and one-hot bases
# without a constant of n^2 elements.
register(Primitive("iota", "elementwise", _iota_infer, _iota_impl, differentiable=False, arity=0))


# ---------------------------------------------------------------- movement

def _one_input(op, inputs):
    if len(inputs) != 1:
        raise ShapeError(f"{op}: takes one operand, got {len(inputs)}")
    return inputs[0]


def _broadcast_infer(inputs, attrs):
    x = _one_input("broadcast_to", inputs)
    shape = attrs["shape"]
    if broadcast_shapes("broadcast_to", [x.shape, shape]) != shape:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return shape, x.dtype


def _reshape_infer(inputs, attrs):
    x = _one_input("reshape", inputs)
    shape = attrs["shape"]
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ShapeError(f"reshape: cannot reshape shape {x.shape} ({x.size} elements) to {shape}")
    return shape, x.dtype


def _transpose_infer(inputs, attrs):
    x = _one_input("transpose", inputs)
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the axes of shape {x.shape}")
    return tuple(x.shape[p] for p in perm), x.dtype


def _slices(attrs) -> tuple[slice, ...]:
    return tuple(slice(a, b, c) for a, b, c in zip(attrs["starts"], attrs["stops"], attrs["steps"]))


def _slice_infer(inputs, attrs):
    x = _one_input("slice", inputs)
    if not (len(attrs["starts"]) == len(attrs["stops"]) == len(attrs["steps"]) == x.ndim):
        raise ShapeError(f"slice: needs one (start, stop, step) per axis of shape {x.shape}")
    shape = tuple(len(range(x.shape[i])[s]) for i, s in enumerate(_slices(attrs)))
    return shape, x.dtype


def _unslice_infer(inputs, attrs):
    x = _one_input("unslice", inputs)
    full = attrs["shape"]
    expect = tuple(len(range(full[i])[s]) for i, s in enumerate(_slices(attrs)))
    if expect != x.shape:
        raise ShapeError(f"unslice: operand shape {x.shape} does not fill {expect} of {full}")
    return full, x.dtype


def _unslice_impl(values, node):
    out = np.zeros(node.shape, dtype=node.dtype)
    out[_slices(dict(node.attrs))] = values[0]
    return out


def _concat_infer(inputs, attrs):
    axis = attrs["axis"]
    if not inputs:
        raise ShapeError("concatenate: needs at least one operand")
    first = inputs[0]
    dtype = _same_float_dtype("concatenate", inputs)
    for i in inputs:
        if i.ndim != first.ndim or any(a != b for k, (a, b) in enumerate(zip(i.shape, first.shape)) if k != axis):
            raise ShapeError(f"concatenate: shapes {[x.shape for x in inputs]} differ off axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(i.shape[axis] for i in inputs)
    return tuple(shape), dtype


register(Primitive("broadcast_to", "movement", _broadcast_infer,
                   lambda v, n: np.broadcast_to(v[0], n.shape), arity=1))
register(Primitive("reshape", "movement", _reshape_infer, lambda v, n: v[0].reshape(n.shape), arity=1))
register(Primitive("transpose", "movement", _transpose_infer,
                   lambda v, n: np.transpose(v[0], n.attr("perm")), arity=1))
register(Primitive("slice", "movement", _slice_infer, lambda v, n: v[0][_slices(dict(n.attrs))], arity=1))
register(Primitive("unslice", "movement", _unslice_infer, _unslice_impl, arity=1))
register(Primitive("concatenate", "movement", _concat_infer,
                   lambda v, n: np.concatenate(v, axis=n.attr("axis"))))


# ---------------------------------------------------------------- reductions

def _reduce_infer(op):
    def infer(inputs, attrs):
        x = _one_input(op, inputs)
        axes = attrs["axes"]
        if any(not 0 <= a < x.ndim for a in axes) or list(axes) != sorted(set(axes)):
            raise ShapeError(f"{op}: axes {axes} do not fit shape {x.shape}")
        if op == "reduce_max" and any(x.shape[a] == 0 for a in axes):
            raise ShapeError(f"reduce_max: cannot take the maximum over an empty axis of shape {x.shape}")
        return tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype
    return infer


register(Primitive("reduce_sum", "reduce", _reduce_infer("reduce_sum"),
                   lambda v, n: np.asarray(np.sum(v[0], axis=n.attr("axes")), dtype=n.dtype), arity=1))
register(Primitive("reduce_max", "reduce", _reduce_infer("reduce_max"),
                   lambda v, n: np.asarray(np.max(v[0], axis=n.attr("axes")), dtype=n.dtype), arity=1))


# ---------------------------------------------------------------- contraction

def _dot_infer(inputs, attrs):
    if len(inputs) != 2:
        raise ShapeError(f"dot_general: takes two operands, got {len(inputs)}")
    a, b = inputs
    dtype = _same_float_dtype("dot_general", inputs)
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
    a, b = values
    sub = dot_general_subscripts(a.ndim, b.ndim, node.attr("contract"), node.attr("batch"))
    return np.asarray(np.einsum(sub, a, b, optimize=True), dtype=node.dtype)


register(Primitive("dot_general", "contract", _dot_infer, _dot_impl, arity=2))


# ---------------------------------------------------------------- gather / scatter

def _take_infer(inputs, attrs):
    x, idx = inputs
    axis = attrs["axis"]
    if idx.dtype != "int64":
        raise ShapeError(f"take: indices must be int64, got {idx.dtype}")
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"take: axis {axis} out of range for shape {x.shape}")
    return x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype


def _take_impl(values, node):
    x, idx = values
    axis = node.attr("axis")
    if idx.size and (idx.min() < -x.shape[axis] or idx.max() >= x.shape[axis]):
        raise IndexError(f"take: index out of range for axis {axis} of size {x.shape[axis]}")
    return np.take(x, idx, axis=axis)


def _take_add_infer(inputs, attrs):
    g, idx = inputs
    axis, size = attrs["axis"], attrs["size"]
    if idx.dtype != "int64":
        raise ShapeError(f"take_add: indices must be int64, got {idx.dtype}")
    lead, trail = g.shape[:axis], g.shape[axis + idx.ndim:]
    if g.shape[axis:axis + idx.ndim] != idx.shape:
        raise ShapeError(f"take_add: operand shape {g.shape} does not hold indices {idx.shape} at axis {axis}")
    return lead + (size,) + trail, g.dtype


def _take_add_impl(values, node):
    g, idx = values
    axis = node.attr("axis")
    out = np.zeros(node.shape, dtype=node.dtype)
    moved = np.moveaxis(out, axis, 0)
    gm = g.reshape(g.shape[:axis] + (idx.size,) + g.shape[axis + idx.ndim:])
    np.add.at(moved, idx.ravel() % node.shape[axis], np.moveaxis(gm, axis, 0))
    return out


register(Primitive("take", "index", _take_infer, _take_impl, arity=2))
register(Primitive("take_add", "index", _take_add_infer, _take_add_impl, arity=2))


# ---------------------------------------------------------------- random numbers

def _random_infer(inputs, attrs):
    (key,) = inputs
    if key.dtype != "int64" or key.shape != (2,):
        raise ShapeError(f"random: the key must be int64 of shape (2,), got {key.dtype}{key.shape}")
    if attrs["dist"] not in ("uniform", "normal"):
        raise ShapeError(f"random: dist must be 'uniform' or 'normal', got {attrs['dist']!r}")
    return attrs["shape"], attrs["dtype"]


def _random_impl(values, node):
    from . import philox
    seed, call = (int(v) for v in values[0].astype(np.uint64))
    draw = philox.uniform if node.attr("dist") == "uniform" else philox.normal
    return draw(node.shape, node.dtype, node.attr("stream"), seed, call)


# Fresh numbers per call: the key input is (seed, call counter), supplied anew
# on every call of compiled code.
register(Primitive("random", "random", _random_infer, _random_impl, differentiable=False, arity=1))
