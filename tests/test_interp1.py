"""interp1: every method against scipy.interpolate / numpy.interp and
MATLAB's documented outputs; derivatives in v and xq against central
differences (second order, and a third derivative against differences of
second derivatives and scipy's exact derivatives); compiled code with query
values in other intervals than at trace time; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import CubicSpline, PchipInterpolator, interp1d

import symdl
from helpers import check_grads

RNG = np.random.default_rng(7)
X = np.array([0.0, 1.0, 2.5, 3.0, 4.5, 6.0, 7.0])       # non-uniform spacing
METHODS = ["linear", "nearest", "previous", "next", "pchip", "spline"]


def data(a):
    return symdl.extractdata(a)


def scipy_ref(x, v, xq, method, extrap=False):
    """The reference interpolant along axis 0 (MATLAB's conventions: 'nearest'
    rounds half-way up; 'pchip' and 'spline' extrapolate)."""
    if method == "pchip":
        return PchipInterpolator(x, v, axis=0, extrapolate=True)(xq)
    if method == "spline":
        return CubicSpline(x, v, axis=0, bc_type="not-a-knot")(xq)
    kind = "nearest-up" if method == "nearest" else method
    fill = "extrapolate" if extrap else np.nan
    return interp1d(x, v, kind=kind, axis=0, bounds_error=False, fill_value=fill)(xq)


def queries(shape=(25,)):
    """Inside, outside and exactly on the sample points."""
    q = RNG.uniform(-1.5, 8.5, size=int(np.prod(shape)))
    q[: len(X)] = X
    return RNG.permutation(q).reshape(shape)


# ---------------------------------------------------------------- values

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("vshape, qshape", [((7,), (25,)), ((7, 3), (25,)), ((7, 2, 2), (5, 4)), ((7,), ())])
def test_values_against_scipy(method, vshape, qshape):
    v = RNG.standard_normal(vshape)
    xq = queries(qshape) if qshape else np.array(3.7)
    got = data(symdl.interp1(X, v, xq, method))
    expect = scipy_ref(X, v, xq, method)
    assert got.shape == xq.shape + vshape[1:]
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("method", METHODS)
def test_extrap_against_scipy(method):
    v = RNG.standard_normal((7, 2))
    xq = queries()
    got = data(symdl.interp1(X, v, xq, method, "extrap"))
    np.testing.assert_allclose(got, scipy_ref(X, v, xq, method, extrap=True), rtol=1e-12, atol=1e-12,
                               equal_nan=True)


@pytest.mark.parametrize("method", METHODS)
def test_scalar_extrapolation_value_fills_outside(method):
    v = RNG.standard_normal(7)
    xq = queries()
    got = data(symdl.interp1(X, v, xq, method, -5.0))
    inside = (xq >= X[0]) & (xq <= X[-1])
    expect = np.where(inside, scipy_ref(X, v, xq, method, extrap=True), -5.0)
    np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


def test_linear_against_numpy_interp():
    v = RNG.standard_normal(7)
    xq = RNG.uniform(0.0, 7.0, 40)
    np.testing.assert_allclose(data(symdl.interp1(X, v, xq)), np.interp(xq, X, v), rtol=1e-13, atol=1e-13)


def test_matlab_documented_outputs():
    # interp1 reference page / MATLAB Answers 320154 and 413891: outputs printed by MATLAB
    x, v = np.array([1.0, 2.0, 4.0]), np.array([17.0, 100.0, 17.0])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.arange(1.0, 6.0), "previous")),
                                  [17, 100, 100, 17, np.nan])
    X3, Y3 = np.array([1.0, 2.0, 3.0]), np.array([12.0, 5000.0, 12000.0])
    assert float(symdl.interp1(X3, Y3, 4.0, "nearest", "extrap")) == 12000.0
    assert float(symdl.interp1(X3, Y3, 4.0, "linear", "extrap")) == 19000.0
    np.testing.assert_allclose(data(symdl.interp1(X3, Y3, np.array([0.0, 1.5, 4.0]), "linear", "extrap")),
                               [-4976.0, 2506.0, 19000.0])
    np.testing.assert_allclose(data(symdl.interp1(X3, Y3, np.array([1.5, 4.0]), "linear", 12000.0)),
                               [2506.0, 12000.0])
    np.testing.assert_array_equal(data(symdl.interp1(X3, Y3, np.array([0.0, 4.0]), "nearest", "extrap")),
                                  [12.0, 12000.0])


def test_nearest_half_way_takes_the_later_sample():
    assert float(symdl.interp1(np.array([1.0, 2.0]), np.array([10.0, 20.0]), 1.5, "nearest")) == 20.0


def test_previous_and_next_have_no_value_on_their_open_side():
    x, v = np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.array([-1.0, 0.0, 2.0, 3.0]), "previous", "extrap")),
                                  [np.nan, 1.0, 3.0, 3.0])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.array([-1.0, 0.0, 2.0, 3.0]), "next", "extrap")),
                                  [1.0, 1.0, 3.0, np.nan])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.array([0.5, 1.0]), "next")), [2.0, 2.0])


@pytest.mark.parametrize("method", METHODS)
def test_nan_query_gives_nan_and_nan_sample_stays_local(method):
    out = data(symdl.interp1(X, np.arange(7.0), np.array([np.nan, 1.5]), method, "extrap"))
    assert np.isnan(out[0]) and np.isfinite(out[1])
    if method in ("linear", "nearest", "previous", "next", "pchip"):      # local methods: NaN stays near
        v = np.arange(7.0)
        v[5] = np.nan
        out = data(symdl.interp1(X, v, np.array([0.5, 1.5]), method))
        np.testing.assert_allclose(out, scipy_ref(X, np.arange(7.0), np.array([0.5, 1.5]), method))


def test_infinite_queries_with_extrapolation():
    v = np.array([0.0, 1.0, 3.0])
    x = np.array([0.0, 1.0, 2.0])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.array([-np.inf, np.inf]), "nearest", "extrap")),
                                  [0.0, 3.0])
    np.testing.assert_array_equal(data(symdl.interp1(x, v, np.array([-np.inf, np.inf]), "linear", "extrap")),
                                  [-np.inf, np.inf])


def test_unsorted_sample_points_are_sorted_with_their_values():
    order = RNG.permutation(7)
    v = RNG.standard_normal((7, 2))
    xq = queries()
    for method in METHODS:
        got = data(symdl.interp1(X[order], v[order], xq, method))
        np.testing.assert_allclose(got, scipy_ref(X, v, xq, method), rtol=1e-12, atol=1e-12, equal_nan=True)


def test_two_and_three_points_spline_is_the_line_and_the_parabola():
    xq = np.linspace(-1.0, 4.0, 11)
    line = data(symdl.interp1(np.array([0.0, 2.0]), np.array([1.0, 5.0]), xq, "spline"))
    np.testing.assert_allclose(line, 1.0 + 2.0 * xq, rtol=1e-13, atol=1e-13)
    x3, v3 = np.array([0.0, 1.0, 3.0]), np.array([1.0, -1.0, 2.0])
    parabola = np.polyval(np.polyfit(x3, v3, 2), xq)
    np.testing.assert_allclose(data(symdl.interp1(x3, v3, xq, "spline")), parabola, rtol=1e-12, atol=1e-12)
    pchip2 = data(symdl.interp1(np.array([0.0, 2.0]), np.array([1.0, 5.0]), xq, "pchip"))
    np.testing.assert_allclose(pchip2, 1.0 + 2.0 * xq, rtol=1e-13, atol=1e-13)
    for n in (3, 4):                     # the smallest cases of pchip's end formula and of not-a-knot
        xs, vs = np.sort(RNG.uniform(0.0, 3.0, n)), RNG.standard_normal(n)
        for method in ("pchip", "spline"):
            np.testing.assert_allclose(data(symdl.interp1(xs, vs, xq, method)), scipy_ref(xs, vs, xq, method),
                                       rtol=1e-11, atol=1e-11)


def test_pchip_keeps_monotone_data_monotone_and_flat_parts_flat():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    v = np.array([0.0, 0.0, 1.0, 5.0, 5.0, 6.0])
    xq = np.linspace(0.0, 5.0, 101)
    got = data(symdl.interp1(x, v, xq, "pchip"))
    np.testing.assert_allclose(got, PchipInterpolator(x, v)(xq), rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(got) >= -1e-14)


def test_float32_stays_float32():
    v = RNG.standard_normal(7).astype(np.float32)
    xq = queries().astype(np.float32)
    for method in METHODS:
        out = symdl.interp1(X, symdl.dlarray(v), symdl.dlarray(xq), method)
        assert out.dtype == np.float32
        np.testing.assert_allclose(data(out), scipy_ref(X, v.astype(np.float64), xq.astype(np.float64), method),
                                   rtol=1e-4, atol=1e-4, equal_nan=True)


def test_python_number_query_keeps_float32_and_labels_are_left_alone():
    v = symdl.dlarray(RNG.standard_normal((7, 2)).astype(np.float32), "CB")
    out = symdl.interp1(X, v, 1.5)
    assert out.dtype == np.float32 and out.shape == (2,)
    assert v.fmt == "CB"                                          # the caller's array keeps its labels
    q = symdl.dlarray(np.array([[0.5, 2.0]]), "CB")
    out = symdl.interp1(X, np.arange(7.0), q)
    assert out.fmt == "CB"                     # a vector v: the result is shaped (and labelled) like xq
    np.testing.assert_allclose(data(out), np.interp(data(q), X, np.arange(7.0)))


# ---------------------------------------------------------------- derivatives

# queries at least 0.2 from every sample point: the difference steps never cross a breakpoint
XQ_SMOOTH = np.array([0.4, 1.7, 2.75, 3.6, 5.2, 6.5])
# values whose pchip slope branches (sign tests, end limiter) are far from switching within a difference step
V_SMOOTH = np.array([[0.1, 1.0], [0.9, 0.5], [1.3, 0.2], [0.4, 0.3], [0.6, 1.5], [1.8, 1.0], [2.3, 0.0]])


def _fun(method, extrap=None):
    def fun(v, xq):
        if isinstance(v, symdl.dlarray):
            return symdl.interp1(X, v, xq, method, extrap)
        return scipy_ref(X, v, xq, method, extrap == "extrap")
    return fun


@pytest.mark.parametrize("method", ["linear", "pchip", "spline"])
def test_gradients_in_v_and_xq_to_second_order(method):
    check_grads(_fun(method), [V_SMOOTH, XQ_SMOOTH], order=2)


@pytest.mark.parametrize("method", ["nearest", "previous", "next"])
def test_step_methods_gradients(method):
    v = RNG.standard_normal(7)
    xq = np.array([0.3, 1.4, 2.6, 3.9, 5.0, 6.8])     # away from samples and half-way points too
    check_grads(_fun(method), [v, xq], order=2)

    def dxq(xq):
        return symdl.dlgradient(symdl.sum(symdl.interp1(X, v, xq, method)), xq)
    np.testing.assert_array_equal(data(symdl.dlfeval(dxq, symdl.dlarray(xq))), np.zeros(6))


def test_gradients_outside_with_extrap_and_fill():
    v = V_SMOOTH[:, 0]
    xq = np.array([-0.9, 7.6, 3.3])
    for method in ["linear", "pchip", "spline"]:
        check_grads(_fun(method, "extrap"), [v, xq], order=2)
    # a fill value carries no derivative
    def f(v, xq):
        y = symdl.sum(symdl.interp1(X, v, xq, "linear", 2.0))
        return symdl.dlgradient(y, v, xq)
    gv, gq = symdl.dlfeval(f, symdl.dlarray(v), symdl.dlarray(xq))
    np.testing.assert_array_equal(data(gq)[:2], [0.0, 0.0])
    assert data(gv).sum() == pytest.approx(1.0)          # only the inside query: weights of one line


def test_float32_gradients():
    v = V_SMOOTH[:, 1].astype(np.float32)
    check_grads(_fun("pchip"), [v, XQ_SMOOTH.astype(np.float32)], order=1)


@pytest.mark.parametrize("method", ["pchip", "spline"])
def test_third_derivative_in_xq(method):
    v = RNG.standard_normal(7)

    def second(xq):   # elementwise d2/dxq2 (each output depends on its own query only)
        y = symdl.sum(symdl.interp1(X, v, xq, method))
        g = symdl.dlgradient(y, xq, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g), xq, enable_higher_derivatives=True)

    def third(xq):
        return symdl.dlgradient(symdl.sum(second(xq)), xq)

    d3 = data(symdl.dlfeval(third, symdl.dlarray(XQ_SMOOTH)))
    spline = PchipInterpolator(X, v) if method == "pchip" else CubicSpline(X, v)
    exact = spline.derivative(3)(XQ_SMOOTH)
    np.testing.assert_allclose(d3, exact, rtol=1e-9, atol=1e-9)
    h = 1e-4
    fd = (data(symdl.dlfeval(second, symdl.dlarray(XQ_SMOOTH + h)))
          - data(symdl.dlfeval(second, symdl.dlarray(XQ_SMOOTH - h)))) / (2 * h)
    np.testing.assert_allclose(d3, fd, rtol=1e-6, atol=1e-6)


def test_third_derivative_in_v_through_pchip():
    """pchip's slopes are nonlinear in v: the third directional derivative
    along u against central differences of the (symdl) second one."""
    v = V_SMOOTH[:, 0]
    u = RNG.standard_normal(7)
    w = RNG.standard_normal(6)

    def second(vv):
        y = symdl.sum(symdl.interp1(X, vv, XQ_SMOOTH, "pchip") * w)
        g = symdl.dlgradient(y, vv, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g * u), vv, enable_higher_derivatives=True)

    def third(vv):
        return symdl.dlgradient(symdl.sum(second(vv) * u), vv)

    d3 = float(np.sum(data(symdl.dlfeval(third, symdl.dlarray(v))) * u))
    h = 1e-4
    s = [float(np.sum(data(symdl.dlfeval(second, symdl.dlarray(v + k * h * u))) * u)) for k in (1, -1)]
    fd = (s[0] - s[1]) / (2 * h)
    assert abs(d3) > 1e-3                                  # the check is not vacuous
    assert d3 == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_hessian_transform_in_xq_is_the_second_derivative():
    v = V_SMOOTH[:, 0]
    H = symdl.hessian(lambda xq: symdl.sum(symdl.interp1(X, v, xq, "spline")))(XQ_SMOOTH)
    np.testing.assert_allclose(np.asarray(H), np.diag(CubicSpline(X, v).derivative(2)(XQ_SMOOTH)), rtol=1e-10,
                               atol=1e-10)


# ---------------------------------------------------------------- compiled code

@pytest.mark.parametrize("method", METHODS)
def test_compiled_with_new_queries_in_other_intervals(method):
    """The stale-trace trap: compiled with queries in some intervals, called
    with queries in others (and outside), it must equal scipy and the
    interpreter for the new values."""
    v = RNG.standard_normal(7)

    def f(v, xq):
        return symdl.interp1(X, v, xq, method)

    cf = symdl.compile(f, v, np.array([0.5, 0.6, 0.7]))
    for xq in (np.array([0.5, 0.6, 0.7]), np.array([6.9, 2.6, 4.4]), np.array([-3.0, 3.0, 9.0])):
        got = np.asarray(cf(v, xq))
        np.testing.assert_allclose(got, scipy_ref(X, v, xq, method), rtol=1e-12, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(got, data(f(v, xq)), rtol=1e-13, atol=1e-13, equal_nan=True)
    # NaN and infinite queries: the native comparisons treat them as the interpreter does
    odd = np.array([np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(np.asarray(cf(v, odd)), data(f(v, odd)))
    extrap = symdl.compile(lambda v, xq: symdl.interp1(X, v, xq, method, "extrap"), v, odd)
    np.testing.assert_array_equal(np.asarray(extrap(v, odd)), data(symdl.interp1(X, v, odd, method, "extrap")))


@pytest.mark.parametrize("method", ["linear", "pchip", "spline"])
def test_compiled_gradient_with_new_queries(method):
    v = RNG.standard_normal(7)

    def loss(xq):
        return symdl.sum(symdl.interp1(X, v, xq, method))

    g = symdl.grad(loss)
    ref = (PchipInterpolator(X, v) if method == "pchip" else CubicSpline(X, v) if method == "spline"
           else None)
    for xq in (np.array([0.3, 0.4]), np.array([6.2, 2.8])):
        got = np.asarray(g(xq))
        if ref is None:
            expect = np.diff(v)[np.searchsorted(X, xq) - 1] / np.diff(X)[np.searchsorted(X, xq) - 1]
        else:
            expect = ref.derivative()(xq)
        np.testing.assert_allclose(got, expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["pchip", "spline", "next"])
def test_compiled_graph_with_derivatives_matches_the_interpreter(method):
    from helpers import assert_compiled_matches_interpreter

    def fun(v, xq):
        y = symdl.interp1(X, v, xq, method, "extrap")
        gv, gq = symdl.dlgradient(symdl.sum(y * y), v, xq, enable_higher_derivatives=True)
        return y, gv, gq, symdl.dlgradient(symdl.sum(gq), xq)
    v0, q0 = V_SMOOTH, np.array([0.2, 3.1, 6.6])
    graph = symdl.trace(fun, v0, q0)
    assert_compiled_matches_interpreter(graph.inputs, graph.outputs,
                                        [(v0, q0), (V_SMOOTH[::-1].copy(), np.array([7.5, -0.4, 2.6]))])


def test_accelerated_function_reuses_its_trace_for_new_intervals():
    v = RNG.standard_normal(7)
    fast = symdl.dlaccelerate(lambda xq: symdl.interp1(X, v, xq, "spline"))
    for xq in (np.array([0.5, 1.0]), np.array([6.5, 3.2]), np.array([-2.0, 2.6])):
        np.testing.assert_allclose(data(fast(symdl.dlarray(xq))), CubicSpline(X, v)(xq), rtol=1e-12, atol=1e-12)
    assert fast.hit_rate > 0


# ---------------------------------------------------------------- bad input

def test_bad_method_and_extrapolation():
    with pytest.raises(ValueError, match="method.*'linear'.*got 'cubical'"):
        symdl.interp1(X, np.ones(7), 1.0, "cubical")
    with pytest.raises(TypeError, match="method must be a string"):
        symdl.interp1(X, np.ones(7), 1.0, 3)
    with pytest.raises(ValueError, match="extrapolation must be 'extrap' or a real number, got 'extra'"):
        symdl.interp1(X, np.ones(7), 1.0, "linear", "extra")
    with pytest.raises(TypeError, match="extrapolation"):
        symdl.interp1(X, np.ones(7), 1.0, "linear", [1.0])


def test_bad_sample_points():
    with pytest.raises(ValueError, match="x must be distinct, 1.0 appears more than once"):
        symdl.interp1(np.array([0.0, 1.0, 1.0]), np.ones(3), 0.5)
    with pytest.raises(ValueError, match="at least 2 sample points, got 1"):
        symdl.interp1(np.array([0.0]), np.ones(1), 0.5)
    with pytest.raises(ValueError, match="x must be finite"):
        symdl.interp1(np.array([0.0, np.nan]), np.ones(2), 0.5)
    with pytest.raises(ValueError, match=r"x must be a vector, got shape \(2, 2\)"):
        symdl.interp1(np.ones((2, 2)), np.ones(2), 0.5)
    with pytest.raises(TypeError, match="x must be a real numeric vector"):
        symdl.interp1(np.array(["a", "b"]), np.ones(2), 0.5)

    def traced_x(x):
        return symdl.interp1(x, np.ones(2), 0.5)
    with pytest.raises(TypeError, match="x .*must be data, not a traced dlarray.*extractdata"):
        symdl.dlfeval(traced_x, symdl.dlarray(np.array([0.0, 1.0])))


def test_bad_values_and_queries():
    with pytest.raises(ValueError, match=r"v must have len\(x\) = 7 rows.*got shape \(6,\)"):
        symdl.interp1(X, np.ones(6), 0.5)
    with pytest.raises(ValueError, match=r"got shape \(3, 7\)"):
        symdl.interp1(X, np.ones((3, 7)), 0.5)
    with pytest.raises(TypeError, match="xq must be a dlarray or a real numeric array, got str"):
        symdl.interp1(X, np.ones(7), "0.5")
    with pytest.raises(TypeError, match="xq must be real numeric, got dtype complex128"):
        symdl.interp1(X, np.ones(7), np.array([1j]))
