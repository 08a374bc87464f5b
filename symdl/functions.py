"""The array functions of symdl (numpy names), on dlarrays traced or not.

Each is a primitive call or a decomposition into primitives, so derivatives of
every order follow from the rule table.  ``NUMPY_FUNCTIONS`` maps the numpy
functions that dlarray handles through ``__array_function__`` and
``__array_ufunc__`` to these.
"""

from __future__ import annotations

import builtins
import math
import operator
from typing import Any
from collections.abc import Sequence

import numpy as np

from .core import ARITHMETIC, apply, promote, to_operands, traced_with_numbers, untraced_pair, untraced_single
from .ir import build as B
from .ir.shapes import ShapeError, broadcast_shapes
from .tracing import _STATE as _TRACES  # each thread's stack of dlfeval contexts
from .ir.shapes import normalize_axes as _normalize_axes

__all__ = [
    "add", "subtract", "multiply", "divide", "negative", "power", "square", "sqrt",
    "exp", "log", "log1p", "expm1", "abs", "sign", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "arcsinh", "arccosh", "arctanh", "arctan2", "sinh", "cosh", "tanh", "erf", "floor", "ceil",
    "maximum", "minimum",
    "where", "clip", "sum", "cumsum", "mean", "prod", "sigmoid", "max", "min", "matmul", "dot", "concatenate",
    "stack", "reshape", "transpose", "squeeze", "expand_dims", "compare", "logical_and",
    "logical_or", "logical_not", "take", "broadcast_to", "astype", "NUMPY_FUNCTIONS", "NUMPY_UFUNCS",
]

def normalize_axes(op: str, axes, ndim: int) -> tuple[int, ...]:
    """``ir.shapes.normalize_axes``, also for numpy integers (numpy code
    passes ``np.int64`` axes)."""
    if isinstance(axes, np.integer):
        axes = int(axes)
    elif isinstance(axes, (tuple, list)):
        axes = tuple(int(a) if isinstance(a, np.integer) else a for a in axes)
    return _normalize_axes(op, axes, ndim)


# The dlarray class; symdl.array imports this module and then sets it here
# (a module-level import would be circular).
dlarray = None


def _arr(x):
    return x if isinstance(x, dlarray) else dlarray(x)


def _shape(x) -> tuple[int, ...]:
    return tuple(np.shape(x._value if hasattr(x, "_value") else x))


def _fmt_for(operands: Sequence[Any], ndim: int) -> str | None:
    """Elementwise results keep the labels of an operand of the result's rank.
    Labelled operands whose labels numpy's broadcasting would pair wrongly
    are a ValueError (see :func:`_check_label_pairs`)."""
    result = first = None
    for x in operands:
        fmt = getattr(x, "_fmt", None)
        if fmt is None:
            continue
        if result is None and len(fmt) == ndim:
            result = fmt
        if fmt:
            if first is None:
                first = fmt
            elif fmt != first:
                _check_label_pairs(operands, ndim)
    return result


def _check_label_pairs(operands: Sequence[Any], ndim: int) -> None:
    """numpy broadcasting pairs axes from the right, whatever their labels:
    an 'SSCB' array plus a 'C' vector would add the vector along B.  Data of
    a label that both operands carry must not land under another label: an
    axis of size > 1 paired with a different label that the other operand
    also has gives a silently wrong result, so it is a ValueError (SPEC 7).
    Otherwise numpy's rule stands (the left operand's labels win); an axis of
    size 1 is broadcast either way, so its label does not matter."""
    labelled = [x for x in operands if getattr(x, "_fmt", None)]
    for i, a in enumerate(labelled):
        for b in labelled[i + 1:]:
            for k in range(1, builtins.min(a.ndim, b.ndim) + 1):
                la, lb = a._fmt[-k], b._fmt[-k]
                if la == lb:
                    continue
                if (b.shape[-k] > 1 and lb in a._fmt) or (a.shape[-k] > 1 and la in b._fmt):
                    raise ValueError(
                        f"dimension labels do not line up: broadcasting from the right pairs {la!r} of fmt "
                        f"{a._fmt!r} (shape {a.shape}) with {lb!r} of fmt {b._fmt!r} (shape {b.shape}); give "
                        "the operands matching labels (e.g. a bias of fmt 'CB' and shape (C, 1)) or drop them "
                        "with stripdims")


def _elementwise(op: str, operands: Sequence[Any], dtype: str | None = None, untraced: str | None = None,
                 **attrs):
    """Elementwise ``op`` on dlarray/numpy/number operands.  The common cases
    skip the general bookkeeping and give its exact result: untraced float
    arrays through the numpy kernel ``ARITHMETIC[untraced]`` (see
    :mod:`symdl.core`), traced arrays with each other or with Python numbers
    straight to the builder (:func:`_traced`)."""
    return _elementwise_with(op, operands, attrs or _NO_ATTRS, dtype, untraced)


# Attributes shared by every call (and kept by every traced value's origin:
# one dict, not one per operation); never mutated (callers unpack them).
_NO_ATTRS: dict = {}
_ADD = {"coeffs": (1.0, 1.0), "const": 0.0}
_SUBTRACT = {"coeffs": (1.0, -1.0), "const": 0.0}
_NEGATE = {"coeffs": (-1.0,), "const": 0.0}
_MULTIPLY = {"exps": (1, 1)}
_DIVIDE = {"exps": (1, -1)}


def _elementwise_with(op: str, operands: Sequence[Any], attrs: dict, dtype: str | None = None,
                      untraced: str | None = None):
    """:func:`_elementwise` with its attributes as one (read-only) dict."""
    if _TRACES.stack:
        out = None
        if dtype is None:
            out = _traced(op, operands, attrs)
            if out is not None:
                return out
            # several operands, numpy arrays, mixed dtypes: the general path's own fast case
            out = traced_with_numbers(op, operands, attrs)
    else:  # no trace: traced_with_numbers has nothing to do
        out = None
        if untraced is not None:
            values = untraced_pair(op, *operands) if len(operands) == 2 else untraced_single(operands[0])
            if values is not None:
                out = ARITHMETIC[untraced](*values) if len(operands) == 2 else ARITHMETIC[untraced](values)
                return dlarray._wrap(out, None, None, _fmt_for(operands, out.ndim))
    if out is None:
        out = apply(op, to_operands(operands, dtype), **attrs)
    out._fmt = _fmt_for(operands, out.ndim)  # labels of an operand of the result's rank
    return out


# ---------------------------------------------------------------- traced fast path
# Inside dlfeval nearly every elementwise operation is a traced float dlarray
# with another of the same dtype, with a Python number, or alone.  For those,
# ``_traced`` makes the same node, value, origin and labels as the general
# path (``traced_with_numbers``, itself ``apply`` after ``to_operands``) with
# none of its per-operand generality: a traced op is a few builder calls and
# one numpy call.  tests/test_tracing_cost.py compares the two paths.

_F32, _F64 = np.dtype("float32"), np.dtype("float64")
_EXACT = 2 ** 53  # larger ints are not all exact as floats: the general path decides


def _traced_float(x: dlarray, root):
    """The dtype of ``x`` if it is traced by ``root`` and float32/float64, else None."""
    if x._trace is not root or x._node is None:
        return None
    dt = x._value.dtype
    return dt if dt == _F64 or dt == _F32 else None


def _traced(op: str, operands: Sequence[Any], attrs: dict):
    """The traced result of elementwise ``op`` when the operands are one
    traced float dlarray, two of one dtype, or one and a Python number; else
    None (the general path decides)."""
    root = _TRACES.stack[0]
    if len(operands) == 1:
        (a,) = operands
        if type(a) is not dlarray or _traced_float(a, root) is None:
            return None
        node = B.emit(op, (a._node,), **attrs)
        parts = (a,)
        fmt = a._fmt
    elif len(operands) == 2:
        a, b = operands
        if type(a) is dlarray:
            dt = _traced_float(a, root)
            if dt is None:
                return None
            if type(b) is dlarray:
                if b._trace is not root or b._node is None or b._value.dtype != dt:
                    return None
                node = B.emit(op, (a._node, b._node), **attrs)
                parts = (a, b)
            else:
                c = _weak_number(b, dt)
                if c is None:
                    return None
                parts = (a, c)
                node = _with_number(op, a._node, c, True, attrs, root)
        elif type(b) is dlarray:
            dt = _traced_float(b, root)
            if dt is None:
                return None
            c = _weak_number(a, dt)
            if c is None:
                return None
            parts = (c, b)
            node = _with_number(op, b._node, c, False, attrs, root)
        else:
            return None
        fmt = a._fmt if type(a) is dlarray else None
        if fmt is None and type(b) is dlarray:
            fmt = b._fmt
    else:
        return None
    value = root.value(node)
    if fmt is not None:
        fmt = _fmt_for(operands, value.ndim)
    return dlarray._wrap(value, node, root, fmt, (op, attrs, parts))


def _weak_number(x, dt: np.dtype):
    """A Python float, or an int exact as a float, as a numpy scalar of
    ``dt`` (a weak scalar: it takes the array's dtype), else None.  (The
    general path's 0-d array holds the same number; a scalar is a third of
    its size, and every traced value keeps its operands in its origin.)"""
    t = type(x)
    if t is float or t is int and -_EXACT < x < _EXACT:
        return dt.type(x)
    return None


def _with_number(op: str, node, c: np.generic, first: bool, attrs: dict, root):
    """The node of ``op(node, c)`` (``op(c, node)`` when not ``first``) for a
    constant ``c``."""
    if op == "mul" and attrs["exps"] == (1, 1):
        # ``y * c``: the canonical form of a product with a constant factor
        # is the scaled term ``c y`` (see canonical_product), built directly
        # (no constant node, no product to take apart).  ``c`` is rounded to
        # the array's dtype, as the constant node would hold it.
        return B.scale(node, float(c))
    k = root.const(c)
    return B.emit(op, (node, k) if first else (k, node), **attrs)


# ---------------------------------------------------------------- arithmetic

def add(a, b):
    """Elementwise ``a + b`` (broadcasting).

    Example:
        >>> import symdl
        >>> symdl.functions.add(symdl.dlarray([1.0, 2.0]), 0.5)
        dlarray([1.5, 2.5])
    """
    return _elementwise_with("add", [a, b], _ADD, untraced="add")


def subtract(a, b):
    """Elementwise ``a - b`` (broadcasting).

    Example:
        >>> import symdl
        >>> symdl.functions.subtract(symdl.dlarray([1.0, 2.0]), 0.5)
        dlarray([0.5, 1.5])
    """
    return _elementwise_with("add", [a, b], _SUBTRACT, untraced="subtract")


def negative(a):
    """Elementwise ``-a``.

    Example:
        >>> import symdl
        >>> symdl.functions.negative(symdl.dlarray([1.0, -2.0]))
        dlarray([-1.,  2.])
    """
    return _elementwise_with("add", [a], _NEGATE, untraced="negative")


def multiply(a, b):
    """Elementwise ``a * b`` (broadcasting).

    Example:
        >>> import symdl
        >>> symdl.functions.multiply(symdl.dlarray([1.0, 2.0]), 3.0)
        dlarray([3., 6.])
    """
    return _elementwise_with("mul", [a, b], _MULTIPLY, untraced="multiply")


def divide(a, b):
    """Elementwise ``a / b`` (broadcasting), computed as ``a * (1 / b)``.

    Example:
        >>> import symdl
        >>> symdl.functions.divide(symdl.dlarray([1.0, 2.0]), 4.0)
        dlarray([0.25, 0.5 ])
    """
    return _elementwise_with("mul", [a, b], _DIVIDE, untraced="divide")


def _scalar_exponent(p) -> float | None:
    if isinstance(p, dlarray):
        return None
    arr = np.asarray(p)
    if arr.ndim == 0 and arr.dtype.kind in "biuf":
        return float(arr)
    return None


def power(a, p):
    """``a ** p``: a constant exponent is exact (integers become products);
    an array exponent is the differentiable ``pow`` primitive.

    Example:
        >>> import symdl
        >>> symdl.power(symdl.dlarray([2.0, 3.0]), 2)
        dlarray([4., 9.])
    """
    e = _scalar_exponent(p)
    if e is not None:
        (x,) = to_operands([a], promote([a]))
        if e.is_integer():
            if e == 0:  # x ** 0 is 1 for every x, NaN included (IEEE pow)
                return apply("powc", [x], fmt=getattr(a, "_fmt", None), p=0.0)
            return apply("mul", [x], fmt=getattr(a, "_fmt", None), exps=(int(e),))
        return apply("powc", [x], fmt=getattr(a, "_fmt", None), p=e)
    return _elementwise("pow", [a, p])


def square(a):
    """``a ** 2``.

    Example:
        >>> import symdl
        >>> symdl.square(symdl.dlarray([3.0]))
        dlarray([9.])
    """
    return power(a, 2)


def sqrt(a):
    """``a ** 0.5`` (NaN for negative values, as numpy).

    Example:
        >>> import symdl
        >>> symdl.sqrt(symdl.dlarray([4.0]))
        dlarray([2.])
    """
    return power(a, 0.5)


def _unary(op: str, public: str | None = None, at: float = 0.5):
    """The public function for the elementwise primitive ``op``."""
    public = public or op

    def f(x):
        return _elementwise_with(op, [x], _NO_ATTRS)
    f.__name__ = f.__qualname__ = public
    from .ir.ops.functions import FUNCTIONS
    # the docstring's example, from numpy (math for erf: scipy is not imported at import time)
    value = math.erf(at) if op == "erf" else float(FUNCTIONS[op].numpy_impl(np.float64(at)))
    f.__doc__ = (f"Elementwise ``{public}``; derivatives of every order come from its SymPy definition.\n\n"
                 f"    Example:\n        >>> import symdl\n"
                 f"        >>> float(symdl.{public}(symdl.dlarray({at!r})))\n        {value!r}\n")
    return f


exp, log, log1p, expm1 = (_unary(n) for n in ("exp", "log", "log1p", "expm1"))
sin, cos, tan, sinh, cosh, tanh = (_unary(n) for n in ("sin", "cos", "tan", "sinh", "cosh", "tanh"))
arcsin, arccos, arctan = _unary("asin", "arcsin"), _unary("acos", "arccos"), _unary("atan", "arctan")
arcsinh, arccosh, arctanh = _unary("asinh", "arcsinh"), _unary("acosh", "arccosh", 1.5), _unary("atanh", "arctanh")
abs, sign, erf, floor, ceil = (_unary(n, at=-1.5) for n in ("abs", "sign", "erf", "floor", "ceil"))
sigmoid = _unary("sigmoid")


def arctan2(y, x):
    """The angle of the point (x, y), elementwise.

    Example:
        >>> import symdl
        >>> float(symdl.arctan2(symdl.dlarray(1.0), 1.0))  # pi / 4
        0.7853981633974483
    """
    return _elementwise("atan2", [y, x])


def maximum(a, b):
    """Elementwise maximum (NaN wins, as numpy).  Derivative: to the larger
    operand; at a tie a constant operand takes it (so ``maximum(x, 0)`` is
    relu with derivative 0 at 0), two variables share it half and half.

    Example:
        >>> import symdl
        >>> symdl.maximum(symdl.dlarray([-1.0, 2.0]), 0.0)
        dlarray([0., 2.])
    """
    return _elementwise("maximum", [a, b])


def minimum(a, b):
    """Elementwise minimum (the mirror of :func:`maximum`).

    Example:
        >>> import symdl
        >>> symdl.minimum(symdl.dlarray([-1.0, 2.0]), 0.0)
        dlarray([-1.,  0.])
    """
    return _elementwise("minimum", [a, b])


def compare(op: str, a, b):
    """Elementwise comparison (``gt ge lt le eq ne``): a bool dlarray, not differentiable."""
    return _elementwise(op, [a, b])


def _as_bool(c):
    if isinstance(c, dlarray):
        return c if c.dtype == np.bool_ else compare("ne", c, 0.0)
    return np.asarray(c, dtype=bool)


def logical_and(a, b):
    return apply("logical_and", [_as_bool(a), _as_bool(b)])


def logical_or(a, b):
    return apply("logical_or", [_as_bool(a), _as_bool(b)])


def logical_not(a):
    return apply("logical_not", [_as_bool(a)])


def where(cond, a, b):
    """``a`` where ``cond`` holds, else ``b`` (derivatives flow to the chosen side).

    Example:
        >>> import symdl
        >>> x = symdl.dlarray([-1.0, 2.0])
        >>> symdl.where(x > 0, x, 0.0)
        dlarray([0., 2.])
    """
    cond = _as_bool(cond)
    x, y = to_operands([a, b])
    shape = broadcast_shapes("where", [_shape(cond), _shape(x), _shape(y)])
    return apply("where", [cond, x, y], fmt=_fmt_for([a, b], len(shape)))


def clip(x, lo, hi):
    """``x`` limited to ``[lo, hi]`` (either may be None).

    Example:
        >>> import symdl
        >>> symdl.clip(symdl.dlarray([-2.0, 0.5, 3.0]), -1.0, 1.0)
        dlarray([-1. ,  0.5,  1. ])
    """
    out = x
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return out


def astype(x, dtype):
    dtype = np.dtype(dtype).name
    if dtype not in ("float32", "float64"):
        raise TypeError(f"astype: dtype must be float32 or float64, got {dtype}")
    return apply("convert", [_arr(x)], fmt=getattr(x, "_fmt", None), dtype=dtype)


# ---------------------------------------------------------------- movement

def reshape(x, shape, *more):
    """Reshape (C order); one dimension may be -1.

    Example:
        >>> import symdl
        >>> symdl.reshape(symdl.dlarray([1.0, 2.0, 3.0, 4.0]), (2, -1)).shape
        (2, 2)
    """
    x = _arr(x)
    if more:
        shape = (shape, *more)
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = [operator.index(d) for d in shape]
    except TypeError:
        raise TypeError(f"reshape: shape must be an int or a sequence of ints, got {shape!r}") from None
    if any(d < -1 for d in shape):
        raise ValueError(f"reshape: dimensions must be >= 0 (or one -1), got {tuple(shape)}")
    if -1 not in shape and math.prod(shape) != x.size:
        raise ValueError(f"reshape: cannot reshape shape {x.shape} into {tuple(shape)}")
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: only one dimension may be -1, got {tuple(shape)}")
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        if known == 0 or x.size % known:
            raise ValueError(f"reshape: cannot reshape shape {x.shape} into {tuple(shape)}")
        shape[shape.index(-1)] = x.size // known
    return apply("reshape", [x], shape=tuple(shape))


def transpose(x, axes=None):
    """Permute the axes (reversed by default).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.transpose(symdl.dlarray(np.zeros((2, 3)))).shape
        (3, 2)
    """
    x = _arr(x)
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) % builtins.max(x.ndim, 1) for a in axes)
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes")
    return apply("transpose", [x], perm=perm)


def broadcast_to(x, shape):
    x = _arr(x)
    return apply("broadcast_to", [x], shape=tuple(int(d) for d in shape))


def squeeze(x, axis=None):
    """Drop axes of size 1 (all, or the given ones, which must have size 1).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.squeeze(symdl.dlarray(np.zeros((1, 3, 1)))).shape
        (3,)
    """
    x = _arr(x)
    if axis is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    else:
        axes = normalize_axes("squeeze", axis, x.ndim)
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size {x.shape[a]}, not 1")
    return reshape(x, [d for i, d in enumerate(x.shape) if i not in axes])


def expand_dims(x, axis):
    """Insert axes of size 1 at ``axis``.

    Example:
        >>> import numpy as np, symdl
        >>> symdl.expand_dims(symdl.dlarray(np.zeros(3)), 0).shape
        (1, 3)
    """
    x = _arr(x)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    ndim = x.ndim + len(axes)
    axes = normalize_axes("expand_dims", axes, ndim)
    it = iter(x.shape)
    return reshape(x, [1 if i in axes else next(it) for i in range(ndim)])


def concatenate(arrays, axis=0):
    """Join arrays along an existing axis (shared labels are kept).

    Example:
        >>> import symdl
        >>> symdl.concatenate([symdl.dlarray([1.0]), symdl.dlarray([2.0, 3.0])])
        dlarray([1., 2., 3.])
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("concatenate: needs at least one array")
    if axis is not None and (isinstance(axis, bool) or not isinstance(axis, (int, np.integer))):
        raise TypeError(f"concatenate: axis must be an int or None, got {type(axis).__name__}")
    ops = to_operands(arrays)
    ndim = len(_shape(ops[0]))
    if axis is None:
        ops = [reshape(_arr(a), (-1,)) for a in ops]
        axis, ndim = 0, 1
    axis = normalize_axes("concatenate", axis, ndim)[0]
    fmts = {getattr(a, "_fmt", None) for a in arrays}
    fmt = fmts.pop() if len(fmts) == 1 else None  # shared labels survive, as MATLAB's cat
    return apply("concatenate", [_arr(a) for a in ops], axis=axis, fmt=fmt if fmt and len(fmt) == ndim else None)


def stack(arrays, axis=0):
    """Join arrays of one shape along a new axis.

    Example:
        >>> import symdl
        >>> symdl.stack([symdl.dlarray([1.0, 2.0]), symdl.dlarray([3.0, 4.0])]).shape
        (2, 2)
    """
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: needs at least one array")
    shapes = {_shape(a) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"stack: all arrays must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(_arr(a), axis) for a in arrays], axis=axis)


def take(x, indices, axis=None):
    """``numpy.take`` with constant integer indices (differentiable in ``x``)."""
    x = _arr(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    axis = normalize_axes("take", axis, x.ndim)[0]
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got {idx.dtype}")
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"take: index out of range for axis {axis} of size {n}")
    return apply("take", [x, (idx % builtins.max(n, 1)).astype(np.int64)], axis=axis)


# ---------------------------------------------------------------- reductions

def _reduced(x, out, axes, keepdims):
    if keepdims:
        return reshape(out, [1 if i in axes else d for i, d in enumerate(x.shape)])
    return out


def _label_after(x, axes, keepdims):
    fmt = getattr(x, "_fmt", None)
    if fmt is None:
        return None
    return fmt if keepdims else "".join(c for i, c in enumerate(fmt) if i not in axes) or None


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (int, tuple or label letter; None: all).

    Example:
        >>> import numpy as np, symdl
        >>> x = symdl.dlarray(np.ones((2, 3)), "CB")
        >>> symdl.sum(x, "B")
        dlarray([3., 3.], fmt='C')
    """
    x = _arr(x)
    axes = _axes(x, axis, "sum")
    out = apply("reduce_sum", [x], axes=axes)
    out = _reduced(x, out, axes, keepdims)
    out._fmt = _label_after(x, axes, keepdims)
    return out


def cumsum(x, axis=None, dtype=None):
    """Running sums along ``axis`` (numpy's ``cumsum``: ``axis=None`` runs
    over the flattened array); a label letter names the axis.

    Example:
        >>> import symdl
        >>> symdl.cumsum(symdl.dlarray([[1.0, 2.0], [3.0, 4.0]]), axis=1)
        dlarray([[1., 3.],
                 [3., 7.]])
    """
    x = _arr(x)
    if dtype is not None:
        x = astype(x, dtype)
    if axis is None:
        x, axis = reshape(x, (x.size,)), 0
    (ax,) = _axes(x, axis, "cumsum") if not isinstance(axis, (tuple, list)) else (None,)
    if ax is None:
        raise TypeError(f"cumsum: axis must be an int or a label letter, got {axis!r}")
    out = apply("cumsum", [x], axis=ax, reverse=False)
    out._fmt = getattr(x, "_fmt", None)
    return out


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (as :func:`sum`).

    Example:
        >>> import symdl
        >>> float(symdl.mean(symdl.dlarray([1.0, 2.0, 6.0])))
        3.0
    """
    x = _arr(x)
    axes = _axes(x, axis, "mean")
    count = math.prod(x.shape[a] for a in axes)
    total = sum(x, axes, keepdims)
    out = multiply(total, 1.0 / count) if count else divide(total, 0.0)
    out._fmt = total._fmt
    return out


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; the derivative is shared equally among ties.

    Example:
        >>> import symdl
        >>> float(symdl.max(symdl.dlarray([1.0, 5.0, 2.0])))
        5.0
    """
    x = _arr(x)
    axes = _axes(x, axis, "max")
    out = _reduced(x, apply("reduce_max", [x], axes=axes), axes, keepdims)
    out._fmt = _label_after(x, axes, keepdims)
    return out


def min(x, axis=None, keepdims=False):
    """Minimum over ``axis`` (as :func:`max`).

    Example:
        >>> import symdl
        >>> float(symdl.min(symdl.dlarray([1.0, 5.0, 2.0])))
        1.0
    """
    return negative(max(negative(x), axis, keepdims))


def prod(x, axis=None, keepdims=False):
    """Product over ``axis``, as a balanced tree of elementwise products, so
    every derivative order is exact even where elements are zero.

    Example:
        >>> import symdl
        >>> float(symdl.prod(symdl.dlarray([2.0, 3.0, 4.0])))
        24.0
    """
    x = _arr(x)
    axes = _axes(x, axis, "prod")
    out = x
    for a in sorted(axes, reverse=True):
        out = _prod_axis(out, a)
    out = _reduced(x, out, axes, True)
    out = out if keepdims else reshape(out, [d for i, d in enumerate(x.shape) if i not in axes])
    out._fmt = _label_after(x, axes, keepdims)
    return out


def _prod_axis(x, axis):
    """Product along one axis, keeping it with size 1."""
    n = x.shape[axis]
    if n == 0:
        shape = list(x.shape)
        shape[axis] = 1
        return _elementwise("add", [broadcast_to(sum(x, axis, True), shape)], coeffs=(0.0,), const=1.0)
    while n > 1:
        if n % 2:
            pad_shape = list(x.shape)
            pad_shape[axis] = 1
            x = concatenate([x, np.ones(pad_shape, dtype=x.dtype)], axis=axis)
            n += 1
        even = [slice(None)] * x.ndim
        odd = [slice(None)] * x.ndim
        even[axis], odd[axis] = slice(0, n, 2), slice(1, n, 2)
        x = multiply(x[tuple(even)], x[tuple(odd)])
        n //= 2
    return x


def _axes(x, axis, op) -> tuple[int, ...]:
    if isinstance(axis, str):
        from .array import finddim
        found = finddim(x, axis)
        if not found:
            raise ValueError(f"{op}: the array has no dimension labelled {axis!r} (fmt {x.fmt!r})")
        return tuple(found)
    return normalize_axes(op, axis, x.ndim)


# ---------------------------------------------------------------- products

def matmul(a, b):
    """numpy ``matmul`` semantics (batched, with 1-D promotion).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.matmul(symdl.dlarray(np.eye(2)), symdl.dlarray([1.0, 2.0]))
        dlarray([1., 2.])
    """
    a, b = (_arr(v) for v in to_operands([a, b]))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {a.shape} and {b.shape}")
    va, vb = a.ndim == 1, b.ndim == 1
    if va:
        a = reshape(a, (1, a.shape[0]))
    if vb:
        b = reshape(b, (b.shape[0], 1))
    if a.shape[-1] != b.shape[-2]:
        raise ShapeError(f"matmul: shapes {a.shape} and {b.shape} do not align ({a.shape[-1]} != {b.shape[-2]})")
    batch = broadcast_shapes("matmul", [a.shape[:-2], b.shape[:-2]])
    nb = len(batch)
    if nb:
        a = broadcast_to(a, batch + a.shape[-2:])
        b = broadcast_to(b, batch + b.shape[-2:])
    batch_axes = tuple(range(nb))
    out = apply("dot_general", [a, b], contract=((nb + 1,), (nb,)), batch=(batch_axes, batch_axes))
    if va:
        out = squeeze(out, -2)
    if vb:
        out = squeeze(out, -1)
    return out


def dot(a, b):
    """numpy ``dot``: inner product, matrix product, or sum over the last axis
    of ``a`` and the second-to-last of ``b``.

    Example:
        >>> import symdl
        >>> float(symdl.dot(symdl.dlarray([1.0, 2.0]), symdl.dlarray([3.0, 4.0])))
        11.0
    """
    a, b = (_arr(v) for v in to_operands([a, b]))
    if a.ndim == 0 or b.ndim == 0:
        return multiply(a, b)
    cb = 0 if b.ndim == 1 else b.ndim - 2
    if a.shape[-1] != b.shape[cb]:
        raise ShapeError(f"dot: shapes {a.shape} and {b.shape} do not align")
    return apply("dot_general", [a, b], contract=((a.ndim - 1,), (cb,)), batch=((), ()))


# ---------------------------------------------------------------- numpy protocol tables

NUMPY_UFUNCS = {
    np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
    np.true_divide: divide, np.negative: negative, np.power: power, np.square: square,
    np.sqrt: sqrt, np.exp: exp, np.log: log, np.log1p: log1p, np.expm1: expm1, np.abs: abs,
    np.absolute: abs, np.sign: sign, np.sin: sin, np.cos: cos, np.tan: tan,
    np.arcsin: arcsin, np.arccos: arccos, np.arctan: arctan, np.arctan2: arctan2,
    np.sinh: sinh, np.cosh: cosh, np.tanh: tanh, np.arcsinh: arcsinh, np.arccosh: arccosh,
    np.arctanh: arctanh, np.maximum: maximum, np.minimum: minimum, np.matmul: matmul,
    np.floor: floor, np.ceil: ceil,
    np.greater: lambda a, b: compare("gt", a, b), np.greater_equal: lambda a, b: compare("ge", a, b),
    np.less: lambda a, b: compare("lt", a, b), np.less_equal: lambda a, b: compare("le", a, b),
    np.equal: lambda a, b: compare("eq", a, b), np.not_equal: lambda a, b: compare("ne", a, b),
    np.logical_and: logical_and, np.logical_or: logical_or, np.logical_not: logical_not,
    np.positive: lambda a: a,
}

NUMPY_FUNCTIONS = {
    np.where: where, np.clip: clip, np.sum: sum, np.mean: mean, np.prod: prod, np.max: max,
    np.amax: max, np.min: min, np.amin: min, np.matmul: matmul, np.dot: dot, np.cumsum: cumsum,
    np.concatenate: concatenate, np.stack: stack, np.reshape: reshape, np.transpose: transpose,
    np.squeeze: squeeze, np.expand_dims: expand_dims, np.take: take, np.broadcast_to: broadcast_to,
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim, np.size: lambda x: x.size,
}
NUMPY_FUNCTIONS.update({uf: fn for uf, fn in NUMPY_UFUNCS.items() if not isinstance(uf, np.ufunc)})


# numpy's breadth (section 9.2 of the spec) lives in symdl.np, grouped by job;
# importing it extends the two tables above in place.
from . import np as _numpy_breadth  # noqa: E402,F401
