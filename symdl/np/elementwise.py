"""numpy's elementwise functions beyond the basic ones: each a primitive with
declared partials (log2, cbrt, logaddexp, mod, ...) or a decomposition into
primitives (sinc, logaddexp2, fmax, nan_to_num, ...), so derivatives of every
order follow from the rule table."""

from __future__ import annotations

import math

import numpy as np

from .. import functions as F
from ._common import arr

__all__ = ["log2", "log10", "exp2", "cbrt", "reciprocal", "fabs", "sinc", "deg2rad", "rad2deg", "radians",
           "degrees", "logaddexp", "logaddexp2", "hypot", "mod", "remainder", "fmod", "fmax", "fmin",
           "nan_to_num", "isnan", "isinf", "isfinite"]

_LN2 = math.log(2.0)


def log2(x):
    """Base-2 logarithm.

    Example:
        >>> import symdl
        >>> symdl.log2(symdl.dlarray([1.0, 8.0]))
        dlarray([0., 3.])
    """
    return F._elementwise("log2", [x])


def log10(x):
    """Base-10 logarithm.

    Example:
        >>> import symdl
        >>> symdl.log10(symdl.dlarray([1.0, 100.0]))
        dlarray([0., 2.])
    """
    return F._elementwise("log10", [x])


def exp2(x):
    """``2 ** x``.

    Example:
        >>> import symdl
        >>> symdl.exp2(symdl.dlarray([0.0, 3.0]))
        dlarray([1., 8.])
    """
    return F._elementwise("exp2", [x])


def cbrt(x):
    """Real cube root (negative for negative ``x``); the derivative
    ``1 / (3 cbrt(x)**2)`` is +inf at 0.

    Example:
        >>> import symdl
        >>> symdl.cbrt(symdl.dlarray([-8.0, 27.0]))
        dlarray([-2.,  3.])
    """
    return F._elementwise("cbrt", [x])


def reciprocal(x):
    """The elementwise reciprocal ``1 / x`` (numpy's ``reciprocal``).

    Example:
        >>> import symdl
        >>> symdl.reciprocal(symdl.dlarray([2.0, -4.0]))
        dlarray([ 0.5 , -0.25])
    """
    return F.power(x, -1)


def fabs(x):
    """Absolute value (numpy's ``fabs``, the same as :func:`symdl.abs`).

    Example:
        >>> import symdl
        >>> symdl.fabs(symdl.dlarray([-1.5]))
        dlarray([1.5])
    """
    return F.abs(x)


def deg2rad(x):
    """Degrees to radians, ``x * pi / 180``.

    Example:
        >>> import symdl
        >>> float(symdl.deg2rad(symdl.dlarray(180.0)))
        3.141592653589793
    """
    return F.multiply(x, math.pi / 180.0)


def rad2deg(x):
    """Radians to degrees, ``x * 180 / pi``.

    Example:
        >>> import math, symdl
        >>> float(symdl.rad2deg(symdl.dlarray(math.pi)))
        180.0
    """
    return F.multiply(x, 180.0 / math.pi)


radians, degrees = deg2rad, rad2deg

# sin(t)/t near t = 0 as its Taylor polynomial, sum_k (-t^2)^k / (2k+1)!, so
# that derivatives of every order (up to 18) are exact at and near 0; beyond
# |t| = 0.5 the omitted terms are below 1e-25.
_SINC_SMALL = 0.5
_SINC_COEFFS = [(-1) ** k / math.factorial(2 * k + 1) for k in range(10)]


def sinc(x):
    """numpy's normalised sinc, ``sin(pi x) / (pi x)`` and 1 at 0.  Near 0 it
    is computed as its Taylor polynomial, so every derivative there is the
    true one (sinc''(0) = -pi^2 / 3), not 0/0.

    Example:
        >>> import symdl
        >>> symdl.sinc(symdl.dlarray([0.0, 0.5]))
        dlarray([1.        , 0.63661977])
    """
    t = F.multiply(arr(x), math.pi)
    small = F.compare("lt", F.abs(t), _SINC_SMALL)
    # each branch gets a harmless operand where it is not chosen, so its
    # derivative there is finite (a NaN times the zero cotangent would be NaN)
    t_far = F.where(small, 1.0, t)
    t_near = F.where(small, t, 0.0)
    far = F.divide(F.sin(t_far), t_far)
    u = F.square(t_near)
    near = _SINC_COEFFS[-1]
    for c in reversed(_SINC_COEFFS[:-1]):
        near = F.add(F.multiply(near, u), c)
    return F.where(small, near, far)


def logaddexp(a, b):
    """``log(exp(a) + exp(b))`` without overflow; its derivatives
    (``sigmoid(a - b)``, ...) are finite at every order for finite inputs.

    Example:
        >>> import symdl
        >>> float(symdl.logaddexp(symdl.dlarray(1000.0), 1000.0))
        1000.6931471805599
    """
    return F._elementwise("logaddexp", [a, b])


def logaddexp2(a, b):
    """``log2(2**a + 2**b)`` without overflow (a scaled :func:`logaddexp`).

    Example:
        >>> import symdl
        >>> float(symdl.logaddexp2(symdl.dlarray(3.0), 3.0))
        4.0
    """
    a, b = F.to_operands([a, b])
    return F.multiply(logaddexp(F.multiply(a, _LN2), F.multiply(b, _LN2)), 1.0 / _LN2)


def hypot(a, b):
    """``sqrt(a**2 + b**2)`` without overflow or underflow.

    Example:
        >>> import symdl
        >>> float(symdl.hypot(symdl.dlarray(3.0), 4.0))
        5.0
    """
    return F._elementwise("hypot", [a, b])


def mod(a, b):
    """numpy's remainder: ``a - floor(a / b) * b``, with the sign of ``b``
    (the ``%`` operator).  Derivatives: 1 in ``a``, ``-floor(a / b)`` in ``b``.

    Example:
        >>> import symdl
        >>> symdl.mod(symdl.dlarray([5.0, -5.0]), 3.0)
        dlarray([2., 1.])
    """
    return F._elementwise("mod", [a, b])


remainder = mod


def fmod(a, b):
    """C's remainder: ``a - trunc(a / b) * b``, with the sign of ``a``.

    Example:
        >>> import symdl
        >>> symdl.fmod(symdl.dlarray([5.0, -5.0]), 3.0)
        dlarray([ 2., -2.])
    """
    return F._elementwise("fmod", [a, b])


def isnan(x):
    """Where ``x`` is NaN (a bool dlarray; no derivative).

    Example:
        >>> import symdl
        >>> symdl.isnan(symdl.dlarray([1.0, float("nan")]))
        dlarray([False,  True])
    """
    # NaN is the one value not <= +inf
    return F.logical_not(F.compare("le", arr(x), math.inf))


def isinf(x):
    """Where ``x`` is +inf or -inf (bool, no derivative).

    Example:
        >>> import symdl
        >>> symdl.isinf(symdl.dlarray([1.0, -float("inf")]))
        dlarray([False,  True])
    """
    return F.compare("eq", F.abs(arr(x)), math.inf)


def isfinite(x):
    """Where ``x`` is neither inf nor NaN (bool, no derivative).

    Example:
        >>> import symdl
        >>> symdl.isfinite(symdl.dlarray([1.0, float("inf"), float("nan")]))
        dlarray([ True, False, False])
    """
    return F.compare("lt", F.abs(arr(x)), math.inf)


def _nan_aware(op, a, b):
    a, b = F.to_operands([a, b])
    a, b = arr(a), arr(b)
    return F.where(isnan(b), a, F.where(isnan(a), b, op(a, b)))


def fmax(a, b):
    """Elementwise maximum that ignores NaN (the other operand wins; NaN only
    when both are NaN).

    Example:
        >>> import symdl
        >>> symdl.fmax(symdl.dlarray([1.0, float("nan")]), 0.0)
        dlarray([1., 0.])
    """
    return _nan_aware(F.maximum, a, b)


def fmin(a, b):
    """Elementwise minimum that ignores NaN (the mirror of :func:`fmax`).

    Example:
        >>> import symdl
        >>> symdl.fmin(symdl.dlarray([1.0, float("nan")]), 0.0)
        dlarray([0., 0.])
    """
    return _nan_aware(F.minimum, a, b)


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN replaced by ``nan``, infinities by ``posinf``/``neginf`` (default:
    the largest finite numbers of the dtype); derivative 1 at finite values.

    Example:
        >>> import symdl
        >>> symdl.nan_to_num(symdl.dlarray([float("nan"), 2.0]), nan=-1.0)
        dlarray([-1.,  2.])
    """
    x = arr(x)
    big = float(np.finfo(x.dtype).max)
    def value(v):  # a dlarray replacement keeps its derivative
        return v if isinstance(v, F.dlarray) else float(v)
    posinf = big if posinf is None else value(posinf)
    neginf = -big if neginf is None else value(neginf)
    out = F.where(isnan(x), value(nan), x)
    out = F.where(F.compare("eq", x, math.inf), posinf, out)
    out = F.where(F.compare("eq", x, -math.inf), neginf, out)
    out._fmt = x._fmt
    return out
