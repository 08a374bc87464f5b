"""Stable numerics at every order (SPEC §9.2, last bullet): the deep-learning
ops and their derivatives of orders 1-3 are finite for finite inputs of any
size (logits of ±1e4 and ±1e30 in float64, ±1e4 in float32) and match the
true values.

The reference is each op's formula as MATLAB defines it (softmax,
log-softmax inside crossentropy, sigmoid, softplus as two-class
crossentropy, gelu with and without the tanh approximation, elu, batchnorm
and layernorm with the biased variance), written naively with mpmath and
differentiated along a direction by ``mpmath.diff`` in 100-digit arithmetic
(plus the digits of the largest input)
at the inputs rounded to the dtype: it shares nothing with symdl's rules or
numerics, and at that precision the naive formula is exact enough.
symdl's side is reverse over reverse over reverse (``dlgradient`` with
``enable_higher_derivatives``), interpreted and under ``dlaccelerate``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import mpmath

import symdl

POINTS = {
    "float64": {
        "mixed-1e4": [1e4, -1e4, 0.5, -2.0],
        "mixed-1e30": [1e30, -1e30, 1.0, 3e29],
        "close-1e4": [1e4, 1e4 - 1, 1e4 - 3, 1e4 + 2],      # large and nearly equal: cancellation
        "equal-neg-1e30": [-1e30, -1e30, -1e30, -1e30],
        "mixed-1e200": [1e200, -1e200, 1.0, 3e199],          # x^2 overflows: beyond the normalisations' range
        "close-neg-1e4": [-1e4, -1e4 + 2, -1e4 + 0.5, -1e4 - 1],
    },
    "float32": {
        "mixed-1e4": [1e4, -1e4, 0.5, -2.0],
        "mixed-1e30": [1e30, -1e30, 1.0, 3e29],              # x^2 overflows: beyond the normalisations' range
        "close-1e4": [1e4, 1e4 - 1, 1e4 - 3, 1e4 + 2],
        "close-neg-1e4": [-1e4, -1e4 + 2, -1e4 + 0.5, -1e4 - 1],
    },
}
W = [0.7, -1.3, 0.4, 1.1]           # weights that reduce an op's output to a scalar
V = [0.6, -0.9, 1.2, -0.5]          # the direction of the directional derivatives
T = [0.125, 0.5, 0.25, 0.125]       # crossentropy targets (probabilities summing to 1 exactly)
ORDERS = (1, 2, 3)
EPS = 1e-5                          # batchnorm's and layernorm's epsilon (MATLAB's default)


def _weighted(values, weights):
    # the weights' exact binary values: the reference is the function symdl is given
    return sum(mpmath.mpf(w) * v for w, v in zip(weights, values))


# ---------------------------------------------------------------- the ops, in symdl and in SymPy
# each: (symdl function of x (4,) -> scalar, mpmath function of (x as mpf values, point values) -> scalar)

def sd_softmax(x):
    return symdl.sum(symdl.softmax(symdl.dlarray(symdl.reshape(x, (4, 1)), "CB")) * np.reshape(W, (4, 1)))


def sp_softmax(xs, _):
    total = sum(mpmath.exp(v) for v in xs)
    return _weighted([mpmath.exp(v) / total for v in xs], W)


def sd_crossentropy(x):
    Y = symdl.softmax(symdl.dlarray(symdl.reshape(x, (4, 1)), "CB"))
    return symdl.crossentropy(Y, np.reshape(T, (4, 1)))


def sp_crossentropy(xs, _):
    log_total = mpmath.log(sum(mpmath.exp(v) for v in xs))
    return -_weighted([v - log_total for v in xs], T)


def sd_softplus(x):
    # two-class crossentropy of logits (0, x) with the first class true is
    # log(1 + exp(x)): the softplus inside log-softmax, one observation per x
    logits = symdl.stack([x * 0.0, x], axis=0)
    Y = symdl.softmax(symdl.dlarray(logits, "CB"))
    return symdl.crossentropy(Y, np.array([[1.0] * 4, [0.0] * 4]), normalization="none")


def sp_softplus(xs, _):
    return sum(mpmath.log(1 + mpmath.exp(v)) for v in xs)


def sd_sigmoid(x):
    return symdl.sum(symdl.sigmoid(x) * np.array(W))


def sp_sigmoid(xs, _):
    return _weighted([1 / (1 + mpmath.exp(-v)) for v in xs], W)


def sd_gelu(x):
    return symdl.sum(symdl.gelu(x) * np.array(W))


def sp_gelu(xs, _):
    return _weighted([v / 2 * (1 + mpmath.erf(v / mpmath.sqrt(2))) for v in xs], W)


def sd_gelu_tanh(x):
    return symdl.sum(symdl.gelu(x, "tanh") * np.array(W))


def sp_gelu_tanh(xs, _):
    c = mpmath.sqrt(2 / mpmath.pi)
    return _weighted([v / 2 * (1 + mpmath.tanh(c * (v + 0.044715 * v ** 3))) for v in xs], W)


def sd_elu(x):
    return symdl.sum(symdl.elu(x, 1.5) * np.array(W))


def sp_elu(xs, point):
    # no point is at the kink: the branch is the point's
    alpha = 1.5
    return _weighted([v if p > 0 else alpha * (mpmath.exp(v) - 1) for v, p in zip(xs, point)], W)


def _normalised(xs):
    n = len(xs)
    mean = sum(xs) / n
    var = sum((v - mean) ** 2 for v in xs) / n                # biased, as MATLAB
    return [(v - mean) / mpmath.sqrt(var + EPS) for v in xs]


def sd_batchnorm(x):
    # one channel, four observations: normalised over the batch
    Y, _, _ = symdl.batchnorm(symdl.dlarray(symdl.reshape(x, (1, 4)), "CB"), [0.25], [2.0])
    return symdl.sum(Y * np.reshape(W, (1, 4)))


def sp_batchnorm(xs, _):
    return _weighted([2 * y + 0.25 for y in _normalised(xs)], W)


def sd_layernorm(x):
    # one observation of four channels: normalised over the channels
    Y = symdl.layernorm(symdl.dlarray(symdl.reshape(x, (4, 1)), "CB"), np.zeros(4), np.ones(4))
    return symdl.sum(Y * np.reshape(W, (4, 1)))


def sp_layernorm(xs, _):
    return _weighted(_normalised(xs), W)


OPS = {
    "softmax": (sd_softmax, sp_softmax),
    "crossentropy(softmax)": (sd_crossentropy, sp_crossentropy),
    "softplus(two-class crossentropy)": (sd_softplus, sp_softplus),
    "sigmoid": (sd_sigmoid, sp_sigmoid),
    "gelu": (sd_gelu, sp_gelu),
    "gelu(tanh)": (sd_gelu_tanh, sp_gelu_tanh),
    "elu": (sd_elu, sp_elu),
    "batchnorm": (sd_batchnorm, sp_batchnorm),
    "layernorm": (sd_layernorm, sp_layernorm),
}


# ---------------------------------------------------------------- both sides

def std(point) -> float:
    """The population standard deviation, without overflow for huge inputs."""
    p = np.asarray(point, dtype=np.float64)
    top = float(np.max(np.abs(p))) or 1.0
    return float(np.std(p / top)) * top


@functools.cache
def reference(name: str, point: tuple, v: tuple) -> list[float]:
    """f(x) and d^k/dt^k f(x + t v) at t = 0, k = 1..3, in 100-digit arithmetic
    (plus the digits of the largest input).

    mpmath.diff steps t by about 1e-15: the normalisations vary on the scale of
    the inputs' spread, so for them t is measured in that unit and the
    derivatives scaled back."""
    fn = OPS[name][1]
    unit = (std(point) or 1.0) if name in NORMALISATIONS else 1.0
    # t moves x by ~1e-15 of the unit: enough digits to hold x and that step
    digits = 100 + int(math.log10(max(1.0, max(abs(p) for p in point))))
    with mpmath.workdps(digits):
        u = mpmath.mpf(unit)

        def along(t):
            return fn([mpmath.mpf(p) + t * u * mpmath.mpf(d) for p, d in zip(point, v)], point)
        return [float(along(mpmath.mpf(0)))] + [float(mpmath.diff(along, 0, k) / u ** k) for k in ORDERS]


def directional(sd_fn):
    """The symdl function: (f, its directional derivatives, the gradients of each order)."""
    def body(x, v):
        y = sd_fn(x)
        values, grads, d = [y], [], y
        for k in ORDERS:
            g = symdl.dlgradient(d, x, enable_higher_derivatives=k < ORDERS[-1])
            grads.append(g)
            d = symdl.sum(g * v)
            values.append(d)
        return values, grads
    return body


_ACCELERATED = {name: symdl.dlaccelerate(directional(fns[0])) for name, fns in OPS.items()}


def check(name: str, dtype: str, label: str, compiled: bool) -> None:
    sd_fn = OPS[name][0]
    point = np.array(POINTS[dtype][label], dtype=dtype)
    v = np.array(V, dtype=dtype)
    fun = _ACCELERATED[name] if compiled else directional(sd_fn)
    values, grads = symdl.dlfeval(fun, symdl.dlarray(point), symdl.dlarray(v))
    want = reference(name, tuple(float(p) for p in point), tuple(float(d) for d in v))
    eps = float(np.finfo(dtype).eps)
    # float64: a few hundred roundings; float32: the same in its precision,
    # relative to the size of the terms (|x| * derivative of the next order)
    rtol = 1e-9 if dtype == "float64" else 1e-3
    # an absolute floor for true values that are tiny by cancellation of
    # terms: of O(1) terms for most ops (softmax's derivatives at logits 1e4
    # apart), of O(1 / spread^k) terms for the k-th derivative of a
    # normalisation (spread = sqrt(var + epsilon) of the inputs); and the
    # smallest normal number of the dtype, for true values below it (1e-60
    # is 0 in float32)
    spread = math.hypot(std(point), math.sqrt(EPS)) if name in NORMALISATIONS else 1.0
    tiny = float(np.finfo(dtype).tiny)
    floors = [256 * eps * max(1.0, abs(want[0]))] + [256 * eps * (1.0 / spread) ** k + tiny for k in ORDERS]
    where = f"{name} at {label} ({dtype}, {'compiled' if compiled else 'interpreted'})"
    for k, g in zip(ORDERS, grads):
        got = symdl.extractdata(g)
        assert got.dtype == np.dtype(dtype), f"{where}: order-{k} gradient has dtype {got.dtype}"
        assert np.all(np.isfinite(got)), f"{where}: order-{k} gradient is not finite: {got}"
    for k, (got, expect) in enumerate(zip(values, want)):
        got = float(got)
        assert math.isfinite(got), f"{where}: order {k} is {got}, true value {expect:.6g}"
        assert abs(got - expect) <= rtol * abs(expect) + floors[k], \
            f"{where}: order {k} is {got!r}, true value {expect!r}"


NORMALISATIONS = ("batchnorm", "layernorm")
CASES = [(name, dtype, label) for name in OPS for dtype in POINTS for label in POINTS[dtype]]


@pytest.mark.parametrize("name, dtype, label", CASES, ids=["-".join(c) for c in CASES])
def test_orders_0_to_3_are_finite_and_right(name, dtype, label):
    check(name, dtype, label, compiled=False)


@pytest.mark.parametrize("name, dtype, label", CASES, ids=["-".join(c) for c in CASES])
def test_orders_0_to_3_are_finite_and_right_compiled(name, dtype, label):
    check(name, dtype, label, compiled=True)


def test_the_points_are_what_they_say_in_float32():
    # the nearly-equal large points are exact in float32, so the test is of the
    # op's numerics, not of rounded inputs
    for label in ("close-1e4", "close-neg-1e4"):
        p = np.array(POINTS["float32"][label], dtype="float32")
        np.testing.assert_array_equal(p.astype(np.float64), POINTS["float64"][label])


def test_one_pass_variance_would_fail_here():
    # why "close-1e4" is in the sweep: E[x^2] - E[x]^2 in float32 loses every
    # digit of the variance 3.25 of these points, the two-pass formula keeps it
    x = np.array(POINTS["float32"]["close-1e4"], dtype=np.float32)
    one_pass = np.mean(x * x) - np.mean(x) ** 2
    assert abs(float(one_pass) - 3.25) > 0.5
    _, _, var = symdl.batchnorm(symdl.dlarray(x.reshape(1, 4), "CB"), [0.0], [1.0])
    assert abs(float(var[0, 0]) - 3.25) < 1e-5
