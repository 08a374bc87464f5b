"""interp1: MATLAB's 1-D interpolation ('linear', 'nearest', 'previous',
'next', 'pchip', 'spline'), differentiable in the sample values and the query
points to any order.

Written as a decomposition into primitives.  The sample points ``x`` are
data (numpy); everything that depends only on them (interval widths, the
not-a-knot spline's slope operator) is computed once in numpy.  Everything
that depends on the values ``v`` (slopes, polynomial coefficients) or the
queries ``xq`` is graph arithmetic, so derivatives of every order follow.

The interval of each query is chosen *inside the graph*, by comparing ``xq``
with the breakpoints and selecting each interval's coefficients with
``where`` and a sum over intervals.  A compiled function therefore finds
the right interval for every new ``xq``: nothing about the query values seen
at trace time is baked in.  (``where``, not a 0/1 mask times the
coefficients: a NaN in one interval's coefficients must not reach queries
in other intervals, and ``NaN * 0`` is NaN.)  The cost is
O(queries x intervals) comparisons, fine for the few hundred breakpoints
interpolation tables usually have.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from .. import functions as F
from ..array import dlarray, stripdims
from ..core import is_traced

__all__ = ["interp1"]

METHODS = ("linear", "nearest", "previous", "next", "pchip", "spline")
_WHERE = "interp1"


def interp1(x, v, xq, method: str = "linear", extrapolation=None):
    """Interpolate the samples ``v(x)`` at the query points ``xq``, as MATLAB's
    ``interp1(x, v, xq, method, extrapolation)``.

    ``x`` is a vector of distinct sample points (numpy data, sorted here if
    it is not).  ``v`` is a vector of ``len(x)`` values, or an array whose
    first dimension has ``len(x)`` rows, interpolated along that dimension.
    ``xq`` is an array of any shape; the result has shape
    ``xq.shape + v.shape[1:]``.

    ``method``: ``'linear'`` (default), ``'nearest'`` (a query half-way
    between two samples takes the later one, as MATLAB), ``'previous'``,
    ``'next'``, ``'pchip'`` (shape-preserving piecewise cubic, MATLAB's
    ``pchip`` slopes) or ``'spline'`` (cubic spline with not-a-knot end
    conditions, as MATLAB's ``spline``).

    ``extrapolation``: ``None`` follows MATLAB (NaN outside ``[min(x),
    max(x)]`` for 'linear', 'nearest', 'previous' and 'next'; 'pchip' and
    'spline' extrapolate); ``'extrap'`` evaluates the method outside too
    ('previous' has no value below the first sample and 'next' none above
    the last: NaN there); a real number is returned for every query outside.
    A NaN query gives NaN.

    Derivatives of every order flow to ``v`` and ``xq`` (the derivative in
    ``xq`` is that of the local polynomial; zero for 'nearest', 'previous'
    and 'next').  ``x`` must be data, not a traced dlarray.

    Example:
        >>> import numpy as np, symdl
        >>> x = np.array([1.0, 2.0, 4.0])
        >>> v = np.array([17.0, 100.0, 17.0])
        >>> symdl.interp1(x, v, np.array([1.5, 3.0, 5.0]))
        dlarray([58.5, 58.5,  nan])
        >>> symdl.interp1(x, v, np.array([1.0, 3.0, 5.0]), "previous", "extrap")
        dlarray([ 17., 100.,  17.])
    """
    method = _method(method)
    xs = _sample_points(x)
    vv, q, dtype = _operands(v, xq, len(xs))
    fill = _fill(extrapolation, method)
    order = np.argsort(xs, kind="stable")
    if np.any(order != np.arange(len(xs))):   # MATLAB sorts unsorted sample points (and v with them)
        xs, vv = xs[order], F.take(vv, order, axis=0)
    trail = vv.shape[1:]
    out = _INTERPOLANTS[method](xs, vv, q, trail, dtype)
    out = _outside(out, xs, q, trail, method, fill, dtype)
    # a NaN query is NaN whatever the method (the step methods would otherwise select nothing)
    out = F.where(_column(F.compare("ne", q, q), trail), np.asarray(np.nan, dtype), out)
    out._fmt = q._fmt if not trail and q._fmt is not None and len(q._fmt) == out.ndim else None
    return out


# ---------------------------------------------------------------- arguments

def _method(method) -> str:
    if not isinstance(method, str):
        raise TypeError(f"{_WHERE}: method must be a string, one of {', '.join(map(repr, METHODS))}; "
                        f"got {type(method).__name__}")
    m = method.lower()
    if m == "cubic":              # MATLAB: 'cubic' is 'pchip'
        m = "pchip"
    if m not in METHODS:
        raise ValueError(f"{_WHERE}: method must be one of {', '.join(map(repr, METHODS))}, got {method!r}")
    return m


def _sample_points(x) -> np.ndarray:
    if isinstance(x, dlarray):
        if is_traced(x):
            raise TypeError(f"{_WHERE}: x (the sample points) must be data, not a traced dlarray; pass a numpy "
                            f"array (or extractdata(x) to detach on purpose)")
        x = x._value
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{_WHERE}: x must be a real numeric vector, got {type(x).__name__} of dtype {arr.dtype}")
    if arr.ndim != 1 and not (arr.ndim == 2 and 1 in arr.shape):
        raise ValueError(f"{_WHERE}: x must be a vector, got shape {arr.shape}")
    xs = arr.astype(np.float64).ravel()
    if xs.size < 2:
        raise ValueError(f"{_WHERE}: x must hold at least 2 sample points, got {xs.size}")
    if not np.all(np.isfinite(xs)):
        raise ValueError(f"{_WHERE}: x must be finite, got {float(xs[~np.isfinite(xs)][0])!r} in it")
    s = np.sort(xs)
    same = np.flatnonzero(s[1:] == s[:-1])
    if same.size:
        raise ValueError(f"{_WHERE}: the sample points x must be distinct, {float(s[same[0]])!r} appears "
                         f"more than once")
    return xs


def _operands(v, xq, n: int):
    vv = stripdims(_array(v, "v"))
    q = _array(xq, "xq")
    if vv.ndim == 0 or vv.shape[0] != n:
        raise ValueError(f"{_WHERE}: v must have len(x) = {n} rows (a vector of {n} values, or an array "
                         f"interpolated along its first dimension), got shape {vv.shape}")
    # float32 stays float32; a Python number as xq takes v's dtype (as numpy's weak scalars)
    weak = isinstance(xq, (int, float)) and not isinstance(xq, bool)
    dtype = "float32" if vv.dtype == np.float32 and (weak or q.dtype == np.float32) else "float64"
    if vv.dtype != dtype:
        vv = F.astype(vv, dtype)
    if q.dtype != dtype:
        q = F.astype(q, dtype)
    return vv, q, dtype


def _array(value, name: str) -> dlarray:
    if isinstance(value, dlarray):
        return value
    if isinstance(value, bool) or not isinstance(value, (Real, np.ndarray, list, tuple, np.generic)):
        raise TypeError(f"{_WHERE}: {name} must be a dlarray or a real numeric array, got {type(value).__name__}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{_WHERE}: {name} must be real numeric, got dtype {arr.dtype}")
    return dlarray(arr if arr.dtype.kind == "f" else arr.astype(np.float64))


def _fill(extrapolation, method: str):
    """None for 'extrap', else the value used outside [x0, x_end]."""
    if extrapolation is None:
        return None if method in ("pchip", "spline") else np.nan
    if isinstance(extrapolation, str):
        if extrapolation.lower() != "extrap":
            raise ValueError(f"{_WHERE}: extrapolation must be 'extrap' or a real number, got {extrapolation!r}")
        return None
    if isinstance(extrapolation, bool) or not isinstance(extrapolation, (Real, np.generic)) or \
            np.asarray(extrapolation).dtype.kind not in "iuf":
        raise TypeError(f"{_WHERE}: extrapolation must be 'extrap' or a real number, got {extrapolation!r}")
    return float(extrapolation)


# ---------------------------------------------------------------- selection inside the graph

def _column(a, trail):
    """``a`` (shaped like xq) with ones appended for v's trailing dimensions."""
    return F.reshape(a, a.shape + (1,) * len(trail)) if trail else a


def _select(q, edges: np.ndarray, coefficients, trail, dtype, right_closed: bool = False):
    """For each query, the coefficients of its bin: bin k holds
    ``edges[k-1] <= xq < edges[k]`` (``edges[k-1] < xq <= edges[k]`` when
    ``right_closed``); bin 0 is open below and the last bin open above.
    ``coefficients`` are arrays shaped ``(bins,) + trail``.  A NaN query is
    in no bin (it gets zeros: the caller makes it NaN)."""
    shape = (len(edges) + 1,) + (1,) * len(trail)
    # The outer edges are sentinels that every non-NaN query passes, +-inf included:
    # "xq >= -inf" / "not (xq >= NaN)" for left-closed bins, "not (xq <= NaN)" / "xq <= inf" for right-closed.
    lo = np.concatenate([[np.nan if right_closed else -np.inf], edges]).astype(dtype).reshape(shape)
    hi = np.concatenate([edges, [np.inf if right_closed else np.nan]]).astype(dtype).reshape(shape)
    qe = F.reshape(q, q.shape + (1,) + (1,) * len(trail))
    if right_closed:
        inside = F.logical_and(F.logical_not(F.compare("le", qe, lo)), F.compare("le", qe, hi))
    else:
        inside = F.logical_and(F.compare("ge", qe, lo), F.logical_not(F.compare("ge", qe, hi)))
    zero = np.zeros((), dtype)
    return [F.sum(F.where(inside, c, zero), axis=q.ndim) for c in coefficients]


def _as_const(a: np.ndarray, trail, dtype) -> np.ndarray:
    return np.asarray(a, dtype=dtype).reshape((-1,) + (1,) * len(trail))


# ---------------------------------------------------------------- the methods

def _steps(edges, right_closed: bool = False):
    """'nearest', 'previous', 'next': the value of one sample, chosen by bins."""
    def interpolant(xs, v, q, trail, dtype):
        (value,) = _select(q, edges(xs), [v], trail, dtype, right_closed)
        return value
    return interpolant


def _previous_edges(xs):
    return xs[1:]                    # bins [x_k, x_k+1): the last sample at or before xq


def _next_edges(xs):
    return xs[:-1]                   # bins (x_k-1, x_k]: the first sample at or after xq


def _nearest_edges(xs):
    return (xs[:-1] + xs[1:]) / 2    # bins [mid_k-1, mid_k): half-way goes to the later sample, as MATLAB


def _hermite(xs, v, q, trail, dtype, slopes):
    """Piecewise cubic Hermite: on [x_k, x_k+1] with t = xq - x_k,
    v_k + t (d_k + t (c_k + t e_k)), where the slopes d come from ``slopes``."""
    h = _as_const(np.diff(xs), trail, dtype)
    delta = (v[1:] - v[:-1]) / h
    d = slopes(xs, v, delta, trail, dtype)
    d0, d1 = d[:-1], d[1:]
    c2 = (3.0 * delta - 2.0 * d0 - d1) / h
    c3 = (d0 + d1 - 2.0 * delta) / (h * h)
    a, b, c, e, x0 = _select(q, xs[1:-1], [v[:-1], d0, c2, c3, _as_const(xs[:-1], trail, dtype)], trail, dtype)
    t = _column(q, trail) - x0
    return a + t * (b + t * (c + t * e))


def _linear(xs, v, q, trail, dtype):
    h = _as_const(np.diff(xs), trail, dtype)
    slope = (v[1:] - v[:-1]) / h
    a, b, x0 = _select(q, xs[1:-1], [v[:-1], slope, _as_const(xs[:-1], trail, dtype)], trail, dtype)
    return a + (_column(q, trail) - x0) * b


def _same_sign(a, b):
    """sign(a) == sign(b), elementwise (NaN: false)."""
    pos = F.logical_and(F.compare("gt", a, 0.0), F.compare("gt", b, 0.0))
    neg = F.logical_and(F.compare("lt", a, 0.0), F.compare("lt", b, 0.0))
    zero = F.logical_and(F.compare("eq", a, 0.0), F.compare("eq", b, 0.0))
    return F.logical_or(F.logical_or(pos, neg), zero)


def _pchip_slopes(xs, v, delta, trail, dtype):
    """MATLAB's pchip slopes (Fritsch-Carlson): the weighted harmonic mean of
    the neighbouring secants where they have the same strict sign, else 0;
    the ends by the one-sided three-point formula, limited to keep shape."""
    if len(xs) == 2:
        return F.concatenate([delta, delta], axis=0)
    h = np.diff(xs)
    hl, hr = _as_const(h[:-1], trail, dtype), _as_const(h[1:], trail, dtype)
    dl, dr = delta[:-1], delta[1:]
    strict = F.logical_and(_same_sign(dl, dr), F.logical_not(F.compare("eq", dl, 0.0)))
    w1, w2 = 2.0 * hr + hl, hr + 2.0 * hl
    # the harmonic mean only where it is taken: where() keeps 1/0 out of values and derivatives
    one = np.ones((), dtype)
    sl, sr = F.where(strict, dl, one), F.where(strict, dr, one)
    inner = F.where(strict, (w1 + w2) / (w1 / sl + w2 / sr), np.zeros((), dtype))
    first = _pchip_end(float(h[0]), float(h[1]), delta[0:1], delta[1:2], trail, dtype)
    last = _pchip_end(float(h[-1]), float(h[-2]), delta[-1:], delta[-2:-1], trail, dtype)
    return F.concatenate([first, inner, last], axis=0)


def _pchip_end(h0: float, h1: float, m0, m1, trail, dtype):
    d = ((2.0 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    zero = np.zeros((), dtype)
    limited = F.where(F.logical_and(F.logical_not(_same_sign(m0, m1)), F.compare("gt", F.abs(d), 3.0 * F.abs(m0))),
                      3.0 * m0, d)
    return F.where(_same_sign(d, m0), limited, zero)


def _spline_slopes(xs, v, delta, trail, dtype):
    """Not-a-knot spline slopes: linear in v, d = S v with S from x alone."""
    S = _spline_slope_operator(xs).astype(dtype)
    flat = F.reshape(v, (len(xs), -1))
    return F.reshape(F.matmul(S, flat), v.shape)


def _spline_slope_operator(xs: np.ndarray) -> np.ndarray:
    """The n x n matrix S with slopes = S @ values for MATLAB's spline
    (not-a-knot ends; 2 points: the line; 3 points: the parabola)."""
    n = len(xs)
    h = np.diff(xs)
    D = np.zeros((n - 1, n))                       # secants = D @ values
    D[np.arange(n - 1), np.arange(n - 1)] = -1.0 / h
    D[np.arange(n - 1), np.arange(1, n)] = 1.0 / h
    if n == 2:
        return np.vstack([D, D])
    A = np.zeros((n, n))
    R = np.zeros((n, n - 1))                       # right-hand side = R @ secants
    for i in range(1, n - 1):                      # continuity of the second derivative
        A[i, i - 1], A[i, i], A[i, i + 1] = h[i], 2.0 * (h[i - 1] + h[i]), h[i - 1]
        R[i, i - 1], R[i, i] = 3.0 * h[i], 3.0 * h[i - 1]
    if n == 3:                                     # one parabola through the three points
        A[0, :2] = 1.0
        R[0, 0] = 2.0
        A[2, 1:] = 1.0
        R[2, 1] = 2.0
    else:                                          # not-a-knot: the third derivative is continuous at x1, x_{n-2}
        A[0, 0], A[0, 1] = h[1], h[0] + h[1]
        R[0, 0] = ((h[0] + 2.0 * (h[0] + h[1])) * h[1]) / (h[0] + h[1])
        R[0, 1] = h[0] ** 2 / (h[0] + h[1])
        A[-1, -2], A[-1, -1] = h[-1] + h[-2], h[-2]
        R[-1, -2] = h[-1] ** 2 / (h[-2] + h[-1])
        R[-1, -1] = ((2.0 * (h[-2] + h[-1]) + h[-1]) * h[-2]) / (h[-2] + h[-1])
    return np.linalg.solve(A, R @ D)


_INTERPOLANTS = {
    "linear": _linear,
    "nearest": _steps(_nearest_edges),
    "previous": _steps(_previous_edges),
    "next": _steps(_next_edges, right_closed=True),
    "pchip": lambda xs, v, q, trail, dtype: _hermite(xs, v, q, trail, dtype, _pchip_slopes),
    "spline": lambda xs, v, q, trail, dtype: _hermite(xs, v, q, trail, dtype, _spline_slopes),
}


def _outside(out, xs, q, trail, method: str, fill, dtype):
    """Queries outside [x0, x_end]: ``fill`` there, or (fill None, 'extrap')
    the method's own value, except below the first sample for 'previous'
    and above the last for 'next', which have no sample to take (NaN)."""
    nan = np.asarray(np.nan, dtype)
    # the ends in the working dtype, as the bins see them
    below, above = F.compare("lt", q, np.asarray(xs[0], dtype)), F.compare("gt", q, np.asarray(xs[-1], dtype))
    if fill is None:
        if method == "previous":
            return F.where(_column(below, trail), nan, out)
        if method == "next":
            return F.where(_column(above, trail), nan, out)
        return out
    return F.where(_column(F.logical_or(below, above), trail), np.asarray(fill, dtype), out)
