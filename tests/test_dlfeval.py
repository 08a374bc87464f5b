"""Acceptance tests of differentiation (SPEC sections 2, 3 "Inspection", 7, 8):
dlfeval, dlgradient, symdl.elementwise and symdl.trace / Graph.

Expected values come from analytic derivatives, central differences of numpy
code, or sympy.diff -- never from symdl's own output.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symdl
from helpers import central_grad as numeric_grad
from symdl import Graph, dlarray, dlfeval, dlgradient, extractdata

RNG = np.random.default_rng(7)


def data(x) -> np.ndarray:
    return np.asarray(extractdata(x) if isinstance(x, dlarray) else x)


def close(actual, expected, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(data(actual), np.asarray(expected), rtol=rtol, atol=atol)




def first_output(result):
    """Graph(...)(values) may give the outputs as a list; take the first."""
    return result[0] if isinstance(result, (list, tuple)) else result


@dataclasses.dataclass
class Params:
    w: object
    b: object


# =============================================================== dlfeval

class TestDlfeval:
    def test_returns_what_fun_returns(self):
        marker = object()

        def f(x, tag):
            return {"y": x * 2.0, "tag": tag, "n": 3, "items": [x + 1.0, "s"], "obj": marker}

        a = np.array([1.0, -2.0])
        out = dlfeval(f, dlarray(a), "hello")
        assert set(out) == {"y", "tag", "n", "items", "obj"}
        assert isinstance(out["y"], dlarray)
        close(out["y"], 2.0 * a)
        assert out["tag"] == "hello" and out["n"] == 3 and out["obj"] is marker
        assert isinstance(out["items"], list)
        close(out["items"][0], a + 1.0)
        assert out["items"][1] == "s"

    def test_returns_none_and_scalars(self):
        assert dlfeval(lambda x: None, dlarray(1.0)) is None
        assert dlfeval(lambda x: 5, dlarray(1.0)) == 5

    def test_returned_dlarrays_are_plain_values(self):
        a = np.array([1.0, 2.0, 3.0])
        y_old = dlfeval(lambda x: x ** 2, dlarray(a))
        assert isinstance(y_old, dlarray)
        close(y_old, a ** 2)

        # in a later call it is a constant: d/dz sum(y_old * z) = y_old
        def g(z):
            return dlgradient(symdl.sum(y_old * z), z)

        close(dlfeval(g, dlarray(np.ones(3))), a ** 2)

        # and it is not traced: differentiating it is a ValueError
        def h(z):
            return dlgradient(symdl.sum(y_old), z)

        with pytest.raises(ValueError):
            dlfeval(h, dlarray(np.ones(3)))

    def test_returned_dlarray_keeps_fmt_and_dtype(self):
        a = RNG.standard_normal((3, 4)).astype(np.float32)
        out = dlfeval(lambda x: np.tanh(x) + 1.0, dlarray(a, "CB"))
        assert out.fmt == "CB"
        assert out.dtype == np.float32
        close(out, np.tanh(a) + 1.0, rtol=1e-5, atol=1e-6)

    def test_inputs_are_not_modified(self):
        a = np.array([1.0, 2.0])
        x = dlarray(a)
        dlfeval(lambda z: dlgradient(symdl.sum(z * z), z), x)
        close(x, a)
        assert x.shape == (2,) and x.dtype == np.float64

    def test_fun_not_callable_is_type_error(self):
        with pytest.raises(TypeError):
            dlfeval(3, dlarray(1.0))

    def test_namedtuple_argument_and_gradient(self):
        from collections import namedtuple
        Pair = namedtuple("Pair", ["u", "v"])
        a, b = np.array([1.0, 2.0]), np.array([-0.5, 0.3])

        def f(p):
            return dlgradient(symdl.sum(p.u * p.v ** 2), p)

        g = dlfeval(f, Pair(dlarray(a), dlarray(b)))
        assert isinstance(g, Pair)
        close(g.u, b ** 2)
        close(g.v, 2 * a * b)

    def test_nested_tuple_list_dict_arguments(self):
        a, b, c, d = (RNG.standard_normal(3) for _ in range(4))

        def f(pair, lst, dct):
            x1, x2 = pair
            (x3,) = lst
            x4 = dct["inner"]["v"]
            y = symdl.sum(x1 * x2 + x3 ** 2 + symdl.sin(x4))
            return dlgradient(y, pair, lst, dct)

        gpair, glst, gdct = dlfeval(f, (dlarray(a), dlarray(b)), [dlarray(c)], {"inner": {"v": dlarray(d)}})
        assert isinstance(gpair, tuple) and len(gpair) == 2
        assert isinstance(glst, list) and len(glst) == 1
        assert isinstance(gdct, dict) and set(gdct) == {"inner"} and set(gdct["inner"]) == {"v"}
        close(gpair[0], b)
        close(gpair[1], a)
        close(glst[0], 2 * c)
        close(gdct["inner"]["v"], np.cos(d))

    def test_dataclass_arguments_and_gradient(self):
        w, b, x = RNG.standard_normal(3), 0.7, RNG.standard_normal(3)

        def f(p, xx):
            y = symdl.sum((p.w * xx + p.b) ** 2)
            return y, dlgradient(y, p)

        y, g = dlfeval(f, Params(dlarray(w), dlarray(b)), dlarray(x))
        r = w * x + b
        assert float(y) == pytest.approx(np.sum(r ** 2))
        assert isinstance(g, Params)
        close(g.w, 2 * r * x)
        assert g.b.shape == ()
        assert float(g.b) == pytest.approx(np.sum(2 * r))

    def test_kwargs_are_traced(self):
        a = np.array([0.5, 1.5])

        def f(x, *, scale, mode):
            assert mode == "square"
            y = symdl.sum(scale * x ** 2)
            return dlgradient(y, x, scale)

        gx, gs = dlfeval(f, dlarray(a), scale=dlarray(3.0), mode="square")
        close(gx, 6.0 * a)
        assert float(gs) == pytest.approx(np.sum(a ** 2))

    def test_non_dlarray_arguments_pass_through(self):
        arr = np.array([1.0, 2.0])
        obj = object()
        seen = {}

        def f(x, plain, thing, k):
            seen.update(plain=plain, thing=thing, k=k)
            return x * 1.0

        dlfeval(f, dlarray(1.0), arr, obj, 4)
        assert seen["thing"] is obj and seen["k"] == 4
        assert not isinstance(seen["plain"], dlarray)
        np.testing.assert_array_equal(np.asarray(seen["plain"]), arr)

    def test_same_dlarray_passed_twice_is_two_inputs(self):
        # value semantics (as MATLAB): each argument is its own variable
        a = np.array([1.5, -2.0])
        x = dlarray(a)

        def f(p, q):
            return dlgradient(symdl.sum(p ** 2 * q), p, q)

        gp, gq = dlfeval(f, x, x)
        close(gp, 2 * a * a)
        close(gq, a ** 2)

    def test_python_control_flow_on_values(self):
        a = np.array([0.3, 0.4])

        def f(x):
            y = x
            k = 0
            while abs(float(symdl.sum(y))) < 10.0:    # real values during the call
                y = y * 2.0
                k += 1
            if symdl.sum(x) > 0:                  # bool() of a one-element comparison
                z = symdl.sum(y ** 2)
            else:
                z = symdl.sum(-y)
            return k, z, dlgradient(z, x)

        k_ref, s = 0, a.sum()
        while s < 10.0:
            s *= 2.0
            k_ref += 1
        k, z, g = dlfeval(f, dlarray(a))
        assert k == k_ref
        assert float(z) == pytest.approx(np.sum((a * 2.0 ** k_ref) ** 2))
        close(g, 2 * 4.0 ** k_ref * a)

        neg = -a
        k2, z2, g2 = dlfeval(f, dlarray(neg))
        assert k2 == k_ref
        assert float(z2) == pytest.approx(np.sum(-neg * 2.0 ** k_ref))
        close(g2, -np.ones(2) * 2.0 ** k_ref)

    def test_value_dependent_indexing(self):
        a = np.array([0.2, 3.0, -1.0, 2.5])

        def f(x):
            i = int(np.argmax(extractdata(x)))
            y = x[i] ** 3
            return i, dlgradient(y, x)

        i, g = dlfeval(f, dlarray(a))
        assert i == 1
        close(g, [0.0, 3 * 3.0 ** 2, 0.0, 0.0])

    def test_nested_dlfeval_outer_differentiates_inner_result(self):
        a = np.array([2.0, -1.0])

        def outer(x):
            y = dlfeval(lambda z: z ** 3, x)
            return dlgradient(symdl.sum(y), x)

        close(dlfeval(outer, dlarray(a)), 3 * a ** 2)

    def test_nested_dlfeval_second_derivative(self):
        a = np.array([0.7, -0.3])

        def inner(z):
            return dlgradient(symdl.sum(symdl.sin(z) * z), z, enable_higher_derivatives=True)

        def outer(x):
            g = dlfeval(inner, x)
            return g, dlgradient(symdl.sum(g), x)

        g, h = dlfeval(outer, dlarray(a))
        close(g, np.cos(a) * a + np.sin(a))
        close(h, 2 * np.cos(a) - a * np.sin(a))

    def test_nested_dlfeval_on_fresh_array(self):
        def inner(z):
            return dlgradient(symdl.sum(np.exp(z)), z)

        def outer(x):
            g_inner = dlfeval(inner, dlarray(np.array([0.0, 1.0])))
            return g_inner, dlgradient(symdl.sum(x ** 2), x)

        g_inner, g = dlfeval(outer, dlarray(np.array([3.0])))
        close(g_inner, np.exp([0.0, 1.0]))
        close(g, [6.0])


# =============================================================== dlgradient

class TestDlgradient:
    def test_single_x_returns_gradient_itself(self):
        a = RNG.standard_normal((2, 3))
        g = dlfeval(lambda x: dlgradient(symdl.sum(x ** 3), x), dlarray(a))
        assert isinstance(g, dlarray)
        assert g.shape == a.shape
        close(g, 3 * a ** 2)

    def test_several_xs_return_tuple_in_order(self):
        a, b, c = RNG.standard_normal(3), RNG.standard_normal(3), 0.4

        def f(x, w, s):
            y = symdl.sum(x * w ** 2) * s
            return dlgradient(y, w, s, x)

        out = dlfeval(f, dlarray(a), dlarray(b), dlarray(c))
        assert isinstance(out, tuple) and len(out) == 3
        gw, gs, gx = out
        close(gw, 2 * a * b * c)
        assert float(gs) == pytest.approx(np.sum(a * b ** 2))
        close(gx, b ** 2 * c)

    def test_same_x_twice(self):
        a = np.array([1.0, 2.0])
        g1, g2 = dlfeval(lambda x: dlgradient(symdl.sum(x ** 2), x, x), dlarray(a))
        close(g1, 2 * a)
        close(g2, 2 * a)

    def test_independent_x_gets_zeros(self):
        a = RNG.standard_normal(3)
        w = RNG.standard_normal((2, 4)).astype(np.float32)

        def f(x, v):
            return dlgradient(symdl.sum(x ** 2), x, v)

        gx, gv = dlfeval(f, dlarray(a), dlarray(w, "CB"))
        close(gx, 2 * a)
        assert isinstance(gv, dlarray)
        assert gv.shape == (2, 4)
        assert gv.dtype == np.float32
        assert gv.fmt == "CB"
        np.testing.assert_array_equal(data(gv), np.zeros((2, 4)))

    def test_dependence_only_through_comparison_gets_zeros(self):
        a = np.array([0.5, -0.5, 2.0])

        def f(x):
            y = symdl.sum(symdl.where(x > 0, 1.0, 0.0))
            return y, dlgradient(y, x)

        y, g = dlfeval(f, dlarray(a))
        assert float(y) == 2.0
        np.testing.assert_array_equal(data(g), np.zeros(3))

    def test_one_element_y_of_any_rank(self):
        a = np.array([[2.0]])
        g = dlfeval(lambda x: dlgradient(x * x, x), dlarray(a))
        close(g, [[4.0]])

    def test_gradient_wrt_intermediate(self):
        # as MATLAB's Grad-CAM: differentiate with respect to a traced activation
        a = np.array([1.0, -2.0])

        def scaled(x):
            z = 3.0 * x
            return dlgradient(symdl.sum(z ** 2), z)

        def shifted(x):
            z = x + 1.0
            return dlgradient(symdl.sum(2.0 * z + z * z), z)

        def nonlinear(x):
            z = symdl.exp(x)
            return dlgradient(symdl.sum(z * z), z)

        def activation(x):
            z = np.tanh(x @ np.ones((2, 3)))
            return dlgradient(symdl.sum(z * np.array([1.0, 2.0, 3.0])), z)

        close(dlfeval(nonlinear, dlarray(a)), 2 * np.exp(a))
        close(dlfeval(activation, dlarray(a)), [1.0, 2.0, 3.0])
        close(dlfeval(scaled, dlarray(a)), 2 * 3.0 * a)
        close(dlfeval(shifted, dlarray(a)), 2.0 + 2 * (a + 1.0))

    def test_dlarray_constructor_keeps_tracing(self):
        # MATLAB code relabels inside model functions: Z = dlarray(Z, 'CB')
        a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        w = np.arange(6.0).reshape(3, 2)

        def rewrap(x):
            z = dlarray(x)
            return dlgradient(symdl.sum(z * z), x)

        def relabel(x):
            z = dlarray(x, "CB")
            assert z.fmt == "CB"
            return dlgradient(symdl.sum(z * z + x), x)

        def relabel_permuted(x):
            z = dlarray(x, "BC")               # stored as 'CB': the transpose of x
            assert z.fmt == "CB" and z.shape == (3, 2)
            return dlgradient(symdl.sum(z * w), x)

        def recast(x):
            z = dlarray(x, dtype=np.float32)
            assert z.dtype == np.float32
            return dlgradient(symdl.sum(z * x), x)

        close(dlfeval(rewrap, dlarray(a)), 2 * a)
        close(dlfeval(relabel, dlarray(a)), 2 * a + 1)
        close(dlfeval(relabel_permuted, dlarray(a)), w.T)
        close(dlfeval(recast, dlarray(a)), 2 * a, rtol=1e-6)

    def test_non_scalar_y_is_value_error(self):
        def f(x):
            return dlgradient(x * 2.0, x)

        with pytest.raises(ValueError) as err:
            dlfeval(f, dlarray(np.ones(3)))
        assert "scalar" in str(err.value)

    def test_untraced_y_is_value_error(self):
        def f(x):
            return dlgradient(dlarray(1.0), x)

        with pytest.raises(ValueError) as err:
            dlfeval(f, dlarray(np.ones(3)))
        assert "trac" in str(err.value)

    @pytest.mark.parametrize("y", [1.0, np.float64(2.0), np.array(3.0)])
    def test_y_not_dlarray_is_value_error(self, y):
        def f(x):
            return dlgradient(y, x)

        with pytest.raises(ValueError) as err:
            dlfeval(f, dlarray(1.0))
        assert "dlarray" in str(err.value)

    def test_x_not_traced_is_value_error(self):
        outside = dlarray(np.ones(3))

        def created_inside(x):
            w = dlarray(np.ones(3))
            return dlgradient(symdl.sum(x * w), w)

        def captured(x):
            return dlgradient(symdl.sum(x * outside), outside)

        for fn in (created_inside, captured):
            with pytest.raises(ValueError) as err:
                dlfeval(fn, dlarray(np.ones(3)))
            assert "trac" in str(err.value)

    def test_x_not_dlarray_is_value_error(self):
        def f(x, plain):
            return dlgradient(symdl.sum(x * plain), plain)

        with pytest.raises(ValueError):
            dlfeval(f, dlarray(np.ones(2)), np.ones(2))

    def test_boolean_y_is_value_error(self):
        def f(x):
            return dlgradient(symdl.sum(x) > 0, x)

        with pytest.raises(ValueError):
            dlfeval(f, dlarray(np.ones(3)))

    def test_no_x_is_error(self):
        with pytest.raises((TypeError, ValueError)):
            dlfeval(lambda x: dlgradient(symdl.sum(x)), dlarray(np.ones(3)))

    def test_outside_dlfeval_is_runtime_error(self):
        x = dlarray(np.ones(2))
        with pytest.raises(RuntimeError) as err:
            dlgradient(symdl.sum(x), x)
        assert "dlfeval" in str(err.value)

    def test_outside_dlfeval_with_leaked_traced_values(self):
        leaked = {}

        def f(x):
            leaked["y"], leaked["x"] = symdl.sum(x ** 2), x
            return None

        dlfeval(f, dlarray(np.ones(2)))
        with pytest.raises(RuntimeError):
            dlgradient(leaked["y"], leaked["x"])

    @pytest.mark.parametrize("retain", [False, True])
    def test_retain_data_two_calls_same_results(self, retain):
        a, b = RNG.standard_normal(3), RNG.standard_normal(3)

        def f(x, w):
            y = symdl.sum(symdl.exp(x * w))
            gx = dlgradient(y, x, retain_data=retain)
            gw = dlgradient(y, w, retain_data=retain)
            gboth = dlgradient(y, x, w, retain_data=retain)
            return gx, gw, gboth

        gx, gw, (gx2, gw2) = dlfeval(f, dlarray(a), dlarray(b))
        e = np.exp(a * b)
        close(gx, b * e)
        close(gw, a * e)
        close(gx2, b * e)
        close(gw2, a * e)

    def test_retain_data_flags_agree(self):
        a = RNG.standard_normal((2, 3))

        def f(x, retain):
            y = symdl.sum(symdl.tanh(x) * x)
            return dlgradient(y, x, retain_data=retain), dlgradient(y, x)

        r1 = dlfeval(f, dlarray(a), True)
        r0 = dlfeval(f, dlarray(a), False)
        for g in (*r1, *r0):
            close(g, (1 - np.tanh(a) ** 2) * a + np.tanh(a))
        np.testing.assert_array_equal(data(r1[0]), data(r0[0]))

    def test_higher_derivatives_disabled_gives_constant_gradient(self):
        a = np.array([0.3, 1.1])

        def f(x):
            g = dlgradient(symdl.sum(x ** 3), x)                 # 3x^2, not differentiable further
            return g, dlgradient(symdl.sum(g * x), x)            # so this is just g

        g, h = dlfeval(f, dlarray(a))
        close(g, 3 * a ** 2)
        close(h, 3 * a ** 2)

    def test_higher_derivatives_enabled(self):
        a = np.array([0.3, 1.1])

        def f(x):
            g = dlgradient(symdl.sum(x ** 3), x, enable_higher_derivatives=True)
            return g, dlgradient(symdl.sum(g * x), x)            # d/dx (3x^3) = 9x^2

        g, h = dlfeval(f, dlarray(a))
        close(g, 3 * a ** 2)
        close(h, 9 * a ** 2)

    def test_higher_derivatives_through_untraced_gradient_of_y(self):
        def f(x):
            g = dlgradient(symdl.sum(x ** 3), x)
            return dlgradient(symdl.sum(g), x)

        # sum(g) is not a function of x when higher derivatives are off: it
        # either is rejected (untraced y) or has zero gradient -- never 6x
        try:
            h = dlfeval(f, dlarray(np.array([1.0, 2.0])))
        except ValueError:
            return
        np.testing.assert_array_equal(data(h), np.zeros(2))

    def test_higher_order_against_sympy(self):
        t = sympy.Symbol("t")
        expr = sympy.exp(sympy.sin(t)) / (1 + t ** 2)
        a = np.array([-0.8, 0.1, 0.9])

        def f(x):
            out = []
            g = symdl.exp(symdl.sin(x)) / (1 + x ** 2)
            for _ in range(4):
                g = dlgradient(symdl.sum(g), x, enable_higher_derivatives=True)
                out.append(g)
            return out

        derivs = dlfeval(f, dlarray(a))
        for n, g in enumerate(derivs, start=1):
            ref = sympy.lambdify(t, sympy.diff(expr, t, n), "numpy")(a)
            close(g, ref, rtol=1e-9, atol=1e-10)

    def test_mixed_second_derivative(self):
        a, b = 0.6, -1.3

        def f(x, w):
            y = symdl.sin(x * w) + x ** 2 * w
            gx = dlgradient(y, x, enable_higher_derivatives=True)
            return dlgradient(gx, w)

        h = dlfeval(f, dlarray(a), dlarray(b))
        assert float(h) == pytest.approx(np.cos(a * b) - a * b * np.sin(a * b) + 2 * a, rel=1e-12)

    def test_gradients_keep_float32_and_fmt(self):
        a = RNG.uniform(0.5, 1.5, (3, 4)).astype(np.float32)
        w = RNG.uniform(0.5, 1.5, (3, 1)).astype(np.float32)

        def f(x, v):
            y = symdl.sum(np.log(x) * v + x ** 2)
            g = dlgradient(y, x, v, enable_higher_derivatives=True)
            h = dlgradient(symdl.sum(g[0]), x)
            return y, g, h

        y, (gx, gv), h = dlfeval(f, dlarray(a, "CB"), dlarray(w, "CB"))
        assert y.dtype == np.float32
        for g, shape in ((gx, (3, 4)), (gv, (3, 1)), (h, (3, 4))):
            assert g.dtype == np.float32
            assert g.fmt == "CB"
            assert g.shape == shape
        close(gx, w / a + 2 * a, rtol=1e-5, atol=1e-6)
        close(gv, np.sum(np.log(a), axis=1, keepdims=True), rtol=1e-5, atol=1e-5)
        close(h, -w / a ** 2 + 2, rtol=1e-5, atol=1e-5)

    def test_gradient_fmt_follows_permuted_labels(self):
        a = RNG.standard_normal((5, 3))        # labelled 'BC' -> stored as 'CB', shape (3, 5)
        g = dlfeval(lambda x: dlgradient(symdl.sum(x ** 2), x), dlarray(a, "BC"))
        assert g.fmt == "CB"
        close(g, 2 * a.T)

    def test_matmul_model_gradient_against_central_differences(self):
        w0, x0, b0 = RNG.standard_normal((2, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal((2, 1))
        t0 = RNG.standard_normal((2, 4))

        def loss_np(w, b):
            return float(np.mean((np.tanh(w @ x0 + b) - t0) ** 2))

        def f(w, b):
            loss = symdl.mean((np.tanh(w @ x0 + b) - t0) ** 2)
            return loss, dlgradient(loss, w, b)

        loss, (gw, gb) = dlfeval(f, dlarray(w0), dlarray(b0))
        assert float(loss) == pytest.approx(loss_np(w0, b0), rel=1e-12)
        close(gw, numeric_grad(lambda w: loss_np(w, b0), w0), rtol=1e-6, atol=1e-8)
        close(gb, numeric_grad(lambda b: loss_np(w0, b), b0), rtol=1e-6, atol=1e-8)

    @settings(max_examples=20, deadline=None)
    @given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=3),
                      elements=st.floats(-2, 2, allow_nan=False, allow_infinity=False)))
    def test_gradient_property_against_analytic(self, a):
        def f(x):
            y = symdl.sum(symdl.sin(x) * x ** 2 + symdl.exp(-x))
            return dlgradient(y, x)

        close(dlfeval(f, dlarray(a)), np.cos(a) * a ** 2 + 2 * a * np.sin(a) - np.exp(-a), rtol=1e-10, atol=1e-12)


# =============================================================== symdl.elementwise

T = sympy.Symbol("t")


def _ref(expr, n=0):
    return sympy.lambdify(T, sympy.diff(expr, T, n) if n else expr, "numpy")


ELEMENTWISE_EXPRS = {
    "softplus": sympy.log(1 + sympy.exp(T)),
    "t_sin_t": T * sympy.sin(T) + sympy.exp(-T ** 2),
    "rational": sympy.atan(T) ** 2 / (1 + T ** 2),
}


class TestElementwise:
    @pytest.mark.parametrize("name", list(ELEMENTWISE_EXPRS))
    @pytest.mark.parametrize("form", ["lambda", "callable"])
    def test_values_and_derivatives(self, name, form):
        expr = ELEMENTWISE_EXPRS[name]
        fn = symdl.elementwise(sympy.Lambda(T, expr) if form == "lambda" else (lambda s: expr.subs(T, s)))
        a = np.array([-1.3, -0.2, 0.4, 1.7])

        out = fn(dlarray(a))
        assert isinstance(out, dlarray)
        close(out, _ref(expr)(a))

        def f(x):
            g1 = dlgradient(symdl.sum(fn(x)), x, enable_higher_derivatives=True)
            g2 = dlgradient(symdl.sum(g1), x, enable_higher_derivatives=True)
            g3 = dlgradient(symdl.sum(g2), x)
            return g1, g2, g3

        for n, g in enumerate(dlfeval(f, dlarray(a)), start=1):
            close(g, _ref(expr, n)(a), rtol=1e-9, atol=1e-10)

    def test_keeps_float32_and_fmt(self):
        fn = symdl.elementwise(lambda s: sympy.sqrt(1 + s ** 2))
        a = RNG.standard_normal((2, 3)).astype(np.float32)
        out = fn(dlarray(a, "CB"))
        assert out.dtype == np.float32
        assert out.fmt == "CB"
        close(out, np.sqrt(1 + a ** 2), rtol=1e-6, atol=1e-6)
        g = dlfeval(lambda x: dlgradient(symdl.sum(fn(x)), x), dlarray(a, "CB"))
        assert g.dtype == np.float32 and g.fmt == "CB"
        close(g, a / np.sqrt(1 + a ** 2), rtol=1e-5, atol=1e-6)

    def test_composes_with_other_ops(self):
        sq = symdl.elementwise(sympy.Lambda(T, T ** 2))
        a = np.array([0.5, -1.0])

        def f(x):
            y = symdl.sum(symdl.exp(sq(x)) * 2.0)
            return dlgradient(y, x)

        close(dlfeval(f, dlarray(a)), 2.0 * np.exp(a ** 2) * 2 * a)

    def test_same_definition_twice_is_consistent(self):
        f1 = symdl.elementwise(lambda s: sympy.cos(s) ** 2)
        f2 = symdl.elementwise(lambda s: sympy.cos(s) ** 2)
        a = np.array([0.1, 2.0])
        close(f1(dlarray(a)), np.cos(a) ** 2)
        close(f2(dlarray(a)), np.cos(a) ** 2)

    @pytest.mark.parametrize("bad", [3, "sin(x)", None, [sympy.sin(T)]])
    def test_not_lambda_or_callable_is_type_error(self, bad):
        with pytest.raises(TypeError):
            symdl.elementwise(bad)

    def test_callable_returning_non_expression_is_type_error(self):
        with pytest.raises(TypeError):
            symdl.elementwise(lambda s: [s, s])

    def test_free_symbol_is_value_error(self):
        q = sympy.Symbol("q")
        with pytest.raises(ValueError) as err:
            symdl.elementwise(lambda s: s * q)
        assert "q" in str(err.value)
        with pytest.raises(ValueError):
            symdl.elementwise(sympy.Lambda(T, T + q))

    def test_wrong_number_of_arguments_is_type_error(self):
        fn = symdl.elementwise(lambda s: s ** 3)
        with pytest.raises(TypeError):
            fn(dlarray(1.0), dlarray(2.0))

    def test_complex_input_is_type_error(self):
        fn = symdl.elementwise(lambda s: s ** 3)
        with pytest.raises(TypeError):
            fn(np.array([1j]))


# =============================================================== symdl.trace / Graph

def _only_symbol(expr):
    syms = sorted(expr.free_symbols, key=str)
    assert len(syms) == 1, f"expected one input symbol in {expr}"
    return syms[0]


class TestTrace:
    def test_len_counts_nodes(self):
        g = symdl.trace(lambda x: symdl.sin(x) * x, 0.5)     # x, sin(x), x*sin(x)
        assert isinstance(g, Graph)
        assert len(g) == 3
        bigger = symdl.trace(lambda x: symdl.exp(symdl.sin(x) * x), 0.5)
        assert len(bigger) == 4

    def test_to_sympy_matches_expected(self):
        g = symdl.trace(lambda x: symdl.sin(x) * x + symdl.exp(x) / (1 + x ** 2), 0.5)
        expr = g.to_sympy()
        s = _only_symbol(expr)
        expected = sympy.sin(s) * s + sympy.exp(s) / (1 + s ** 2)
        assert sympy.simplify(expr - expected) == 0

    def test_to_sympy_of_derivative(self):
        def f(x):
            return dlgradient(symdl.exp(symdl.sin(x)) * x, x, enable_higher_derivatives=True)

        expr = symdl.trace(f, 0.3).to_sympy()
        s = _only_symbol(expr)
        expected = sympy.diff(sympy.exp(sympy.sin(s)) * s, s)
        assert sympy.simplify(expr - expected) == 0

    def test_derivative_with_default_flags_is_still_a_function_of_x(self):
        # trace (like compile) records fun, dlgradient included: the gradient
        # must stay a function of the input, not a number frozen at 0.3
        def f(x):
            return dlgradient(symdl.exp(symdl.sin(x)), x)

        g = symdl.trace(f, 0.3)
        expr = g.to_sympy()
        s = _only_symbol(expr)
        assert sympy.simplify(expr - sympy.exp(sympy.sin(s)) * sympy.cos(s)) == 0
        value = first_output(g(np.array(1.1)))
        assert float(value) == pytest.approx(np.exp(np.sin(1.1)) * np.cos(1.1), rel=1e-12)

    def test_two_inputs_to_sympy(self):
        g = symdl.trace(lambda a, b: a * symdl.exp(b) - b ** 2, 1.0, 2.0)
        expr = g.to_sympy()
        syms = sorted(expr.free_symbols, key=str)
        assert len(syms) == 2
        p, q = syms
        assert sympy.simplify(expr - (p * sympy.exp(q) - q ** 2)) == 0

    def test_several_outputs(self):
        g = symdl.trace(lambda x: (symdl.sin(x), x ** 3), 0.5)
        exprs = g.to_sympy()
        assert len(exprs) == 2
        s = _only_symbol(exprs[0] + exprs[1])
        assert sympy.simplify(exprs[0] - sympy.sin(s)) == 0
        assert sympy.simplify(exprs[1] - s ** 3) == 0
        outs = g(np.array(0.9))
        assert len(outs) == 2
        assert float(outs[0]) == pytest.approx(np.sin(0.9), rel=1e-14)
        assert float(outs[1]) == pytest.approx(0.9 ** 3, rel=1e-14)

    def test_latex_and_dot(self):
        g = symdl.trace(lambda x: symdl.sin(x) * x, 0.5)
        tex = g.latex()
        assert isinstance(tex, str) and "sin" in tex
        dot = g.dot()
        assert isinstance(dot, str)
        assert dot.lstrip().startswith("digraph")
        assert dot.rstrip().endswith("}")
        assert "->" in dot

    def test_str_is_deterministic(self):
        def f(x, w):
            return symdl.sum(np.tanh(x @ w) * 2.0 + symdl.exp(-x @ w))

        x0, w0 = np.ones((2, 3)), np.ones((3, 2))
        s1 = str(symdl.trace(f, x0, w0))
        s2 = str(symdl.trace(f, x0, w0))
        assert isinstance(s1, str) and s1
        assert s1 == s2

    def test_graph_interprets_new_values(self):
        def f(x):
            return symdl.sum(np.exp(x) * x) + symdl.max(x)

        g = symdl.trace(f, np.zeros(3))
        v = np.array([0.2, -1.0, 0.7])
        out = first_output(g(v))
        assert float(out) == pytest.approx(np.sum(np.exp(v) * v) + np.max(v), rel=1e-12)

    def test_graph_of_gradient_interprets_new_values(self):
        def f(x):
            y = symdl.sum(x ** 2 * symdl.sin(x))
            return dlgradient(y, x, enable_higher_derivatives=True)

        g = symdl.trace(f, np.zeros(3))
        v = np.array([0.2, -1.0, 0.7])
        close(first_output(g(v)), 2 * v * np.sin(v) + v ** 2 * np.cos(v))


# =============================================================== second order through the numpy protocols

W34 = RNG.standard_normal((4, 3))


def _setitem_model(x):
    z = x * 1.0
    z[1] = x[2] ** 2
    return np.sum(z * np.sin(z))


SECOND_ORDER = {
    "prod_with_zero": lambda x: np.prod(x * np.array([1.0, 0.0, 1.0, 1.0]) + x ** 2),
    "prod_plain": lambda x: np.prod(x),
    "reverse_slice": lambda x: np.sum(x[::-1] * x ** 2),
    "step_slice": lambda x: np.sum(x[::2] ** 3) + np.sum(x[1:3] * x[2:]),
    "fancy_index": lambda x: np.sum(x[np.array([0, 0, 3])] ** 3),
    "matmul_tanh": lambda x: np.sum(np.tanh(x @ W34)),
    "concatenate": lambda x: np.sum(np.concatenate([x, x ** 2]) * np.arange(8.0)) ** 2,
    "stack_max": lambda x: np.sum(np.max(np.stack([x ** 2, np.sin(x)]), axis=0) ** 2),
    "where": lambda x: np.sum(np.where(x > 0, x ** 3, np.sin(x))),
    "abs_cubed": lambda x: np.sum(np.abs(x) ** 3),
    "arctan2": lambda x: np.sum(np.arctan2(x, x ** 2 + 1.0)),
    "power_xx": lambda x: np.sum(np.power(x ** 2 + 0.5, x)),
    "reshape_transpose_mean": lambda x: np.mean(np.transpose(np.reshape(x, (2, 2))) @ np.reshape(x, (2, 2))) ** 2,
    "minimum_clip": lambda x: np.sum(np.minimum(x, 0.5) * np.clip(x, -0.2, 0.9) ** 2),
    "log_exp_sqrt": lambda x: np.sum(np.log1p(np.exp(x)) * np.sqrt(x ** 2 + 1.0) + np.expm1(x) * np.cosh(x)),
    "setitem": _setitem_model,
}


@pytest.mark.parametrize("name", list(SECOND_ORDER))
def test_second_order_bilinear_form_against_numpy(name):
    """u . (H v) from nested dlgradient equals the mixed second difference of
    the same function run on plain numpy arrays."""
    fn = SECOND_ORDER[name]
    x0 = np.array([0.7, -0.4, 1.3, 0.25])
    u, v = RNG.standard_normal(4), RNG.standard_normal(4)

    def f(x):
        g = dlgradient(fn(x), x, enable_higher_derivatives=True)
        return g, dlgradient(symdl.sum(g * v), x)

    g, hv = dlfeval(f, dlarray(x0))
    np.testing.assert_allclose(data(g), numeric_grad(fn, x0), rtol=1e-6, atol=1e-7, err_msg="gradient")
    e = 1e-4
    ref = (fn(x0 + e * u + e * v) - fn(x0 + e * u - e * v)
           - fn(x0 - e * u + e * v) + fn(x0 - e * u - e * v)) / (4 * e * e)
    assert float(np.dot(u, data(hv))) == pytest.approx(ref, rel=1e-5, abs=1e-6)


def test_gradient_with_respect_to_a_value_whose_node_is_an_input():
    # z = x * 1.0 canonicalises to x's node, but d/dz holds x fixed:
    # d/dz (z^2 + 3x) = 2z = 4 at x = 2 (not 2x + 3 = 7, the derivative in x)
    def f(x):
        z = x * 1.0
        y = z * z + 3.0 * x
        return symdl.dlgradient(y, z), symdl.dlgradient(y, x)
    gz, gx = symdl.dlfeval(f, symdl.dlarray(2.0))
    assert float(gz) == 4.0 and float(gx) == 7.0

    def same_object(x):
        z = x  # the input itself: d/dz is d/dx
        return symdl.dlgradient(z * z + 3.0 * x, z)
    assert float(symdl.dlfeval(same_object, symdl.dlarray(2.0))) == 7.0

    def relabelled(x):
        z = symdl.dlarray(x, "CB")  # a relabelling of the input is the input
        return symdl.dlgradient(symdl.sum(z * z), z)
    g = symdl.dlfeval(relabelled, symdl.dlarray(np.array([[1.0, 2.0]])))
    np.testing.assert_array_equal(symdl.extractdata(g), [[2.0, 4.0]])


def test_gradient_with_respect_to_an_intermediate_sees_paths_through_earlier_gradients():
    # g = d(z^3)/dz = 3 z^2 is a function of z; d g / d z = 6 z (was 0: the
    # replay treated the earlier gradient as a constant)
    def f(x):
        z = x * 2.0
        g = symdl.dlgradient(z ** 3, z, enable_higher_derivatives=True)
        return g, symdl.dlgradient(g, z), symdl.dlgradient(g, x)
    g, dgdz, dgdx = symdl.dlfeval(f, symdl.dlarray(1.5))
    z = 3.0
    assert float(g) == 3 * z**2 and float(dgdz) == 6 * z and float(dgdx) == 6 * z * 2.0

    def through_inputs_gradient(x):
        g = symdl.dlgradient(x ** 3, x, enable_higher_derivatives=True)   # 3 x^2
        z = x * 1.0
        w = g + z * z                                                    # 3 x^2 + z^2
        return symdl.dlgradient(w, z)                                    # 2 z, x held fixed
    assert float(symdl.dlfeval(through_inputs_gradient, symdl.dlarray(1.5))) == 3.0

    def without_higher(x):
        z = x * 2.0
        g = symdl.dlgradient(z ** 3, z)                  # not traced further (MATLAB's default)
        return symdl.dlgradient(g * z, z)                # so d(g z)/dz = g
    assert float(symdl.dlfeval(without_higher, symdl.dlarray(1.5))) == 3 * 3.0**2
