"""Acceptance checks of SPEC sections 1, 2, 3, 7, 8 and 9.1-9.3, written as an
outside judge would (against SPEC.md and the docs only), for the defects such
an audit found.  Every expected value comes from a reference: an analytic
formula, sympy.diff, numpy, or central differences."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import sympy

import symdl
from symdl import dlarray, dlfeval, dlgradient


# ---------------------------------------------------------------- dllaplacian of a scalar field

def test_laplacian_of_a_scalar_field_without_the_coordinate_axis():
    # SPEC 8: dim is the axis of x; u = sum_c x_c^3 * sin(x_0), shaped like x
    # without its coordinate axis (one value per observation)
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 5))

    def lap(x):
        u = symdl.sum(x ** 3, 0) * symdl.sin(x[0])
        return symdl.dllaplacian(u, x, 0), symdl.dllaplacian(u, x, "C")

    by_axis, by_label = dlfeval(lap, dlarray(data, "CB"))
    s3 = (data ** 3).sum(0)
    # d2/dx0^2 [(x0^3 + r) sin x0] + sum_{c>0} 6 x_c sin x0
    expect = (6 * data.sum(0) * np.sin(data[0]) + 6 * data[0] ** 2 * np.cos(data[0])
              - s3 * np.sin(data[0]))
    for got in (by_axis, by_label):
        assert got.shape == (5,)
        np.testing.assert_allclose(symdl.extractdata(got), expect, rtol=1e-12, atol=1e-12)


def test_laplacian_of_a_u_that_fits_neither_layout_is_a_value_error():
    def lap(x):
        return symdl.dllaplacian(symdl.sum(x, 0)[:3], x, 0)

    with pytest.raises(ValueError, match=r"dllaplacian: u of shape \(3,\) must be shaped like x"):
        dlfeval(lap, dlarray(np.ones((2, 5)), "CB"))


# ---------------------------------------------------------------- symdl.elementwise with special functions

Z = sympy.Symbol("z")


@pytest.mark.parametrize("expr", [sympy.loggamma(Z), sympy.besselj(0, Z), sympy.polygamma(0, Z),
                                  sympy.erfc(Z) * sympy.sin(Z)], ids=str)
def test_elementwise_special_functions_to_third_order(expr):
    # lambdify's numpy printer writes math.lgamma & co., which take scalars
    # only; polygamma(0, z) has a numeric argument sympy cannot differentiate by
    fn = symdl.elementwise(sympy.Lambda(Z, expr))
    points = np.array([0.7, 1.5, 2.2])

    def derivs(x):
        y = fn(x)
        g1 = dlgradient(symdl.sum(y), x, enable_higher_derivatives=True)
        g2 = dlgradient(symdl.sum(g1), x, enable_higher_derivatives=True)
        return y, g1, g2, dlgradient(symdl.sum(g2), x)

    got = dlfeval(derivs, dlarray(points))
    for k, value in enumerate(got):
        ref = [float(sympy.diff(expr, Z, k).subs(Z, p).evalf()) for p in points]
        np.testing.assert_allclose(symdl.extractdata(value), ref, rtol=1e-10, atol=1e-12, err_msg=f"order {k}")


def test_elementwise_erfc_compiles_through_erf():
    fn = symdl.elementwise(lambda z: sympy.erfc(z) * z)
    points = np.array([-0.4, 0.3, 1.7])
    ref = [float(sympy.diff(sympy.erfc(Z) * Z, Z).subs(Z, p)) for p in points]
    np.testing.assert_allclose(symdl.grad(lambda x: np.sum(fn(x)))(points), ref, rtol=1e-12)


def test_elementwise_function_without_native_code_is_a_clear_error_when_compiled():
    fn = symdl.elementwise(lambda z: sympy.besselj(1, z))
    with pytest.raises(TypeError, match=r"besselj.*no native code"):
        symdl.grad(lambda x: np.sum(fn(x)))(np.array([0.5]))


# ---------------------------------------------------------------- transforms of constant functions

def test_transforms_of_a_function_that_ignores_its_argument_give_zeros():
    # as JAX: grad(lambda x: 0.0) is zeros, not an error
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(symdl.grad(lambda x: 0.0)(x), np.zeros(2))
    np.testing.assert_array_equal(symdl.grad(lambda x: np.sum(np.ones(3)))(x), np.zeros(2))
    value, g = symdl.value_and_grad(lambda x: 3)(x)
    assert float(value) == 3.0
    np.testing.assert_array_equal(g, np.zeros(2))
    np.testing.assert_array_equal(symdl.hessian(lambda x: 2.0)(x), np.zeros((2, 2)))
    np.testing.assert_array_equal(symdl.hvp(lambda x: 1.0)(x, x), np.zeros(2))
    np.testing.assert_array_equal(symdl.jacobian(lambda x: np.ones(3))(x), np.zeros((3, 2)))
    jac = symdl.jacobian(lambda x: (x ** 2, 1.0))(x)
    np.testing.assert_array_equal(jac[0], np.diag(2 * x))
    np.testing.assert_array_equal(jac[1], np.zeros(2))
    assert symdl.grad(lambda x: 0.0)(x.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("result, shown", [(True, "bool"), ("a", "str"), (None, "NoneType"),
                                           (np.complex128(1j), "complex128")])
def test_transforms_of_a_function_with_a_non_real_result_name_it(result, shown):
    with pytest.raises(TypeError, match=f"grad: fun must return a real array or number, got {shown}"):
        symdl.grad(lambda x: result)(np.ones(2))


# ---------------------------------------------------------------- bad input names the argument

def test_dlarray_of_ragged_data_is_a_value_error_naming_dlarray():
    with pytest.raises(ValueError, match="dlarray: data must be a rectangular array, got a list"):
        dlarray([[1.0, 2.0], [3.0]])


def test_dlarray_with_an_unknown_dtype_is_a_type_error_naming_dtype():
    with pytest.raises(TypeError, match="dlarray: dtype must be float32 or float64, got 'floaty'"):
        dlarray([1.0], dtype="floaty")


def test_compiled_function_called_with_another_structure_says_expected_and_got():
    compiled = symdl.compile(lambda w, x: symdl.sum(w * x), np.ones(2), np.ones(2))
    with pytest.raises(TypeError, match=r"structure differs from the example's: compiled for \(x, x\), got \(x,\)"):
        compiled(np.ones(2))
    with pytest.raises(TypeError, match=r"compiled for \(x, x\), got \(\[x, x\], x\)"):
        compiled([1.0, 2.0], np.ones(2))


# ---------------------------------------------------------------- Python number protocols

def test_format_and_round_of_one_element_dlarrays_as_numpy():
    assert f"{dlarray(1.2345):.2f}" == format(np.float64(1.2345), ".2f")
    assert f"{dlarray([2.5]):6.1f}" == format(2.5, "6.1f")
    assert f"{dlarray(1.5)}" == str(dlarray(1.5))
    with pytest.raises(TypeError, match=r"dlarray of shape \(2,\)"):
        f"{dlarray([1.0, 2.0]):.2f}"
    np.testing.assert_array_equal(symdl.extractdata(round(dlarray([1.26, 2.5]), 1)), np.round([1.26, 2.5], 1))


def test_formatting_a_traced_value_records_no_guard():
    shown = []
    accfun = symdl.dlaccelerate(lambda x: (shown.append(f"{x:.1f}"), x * 2)[1])
    accfun(dlarray(1.0))
    assert float(accfun(dlarray(3.0))) == 6.0   # the same trace: formatting decided nothing
    assert shown == ["1.0"] and accfun.hit_rate == 50.0


# ---------------------------------------------------------------- pickling transforms (SPEC 3)

def test_transforms_travel_through_pickle_with_their_compiled_traces():
    import pickle
    x = np.array([0.3, 1.0])
    for transform in (symdl.jacobian(np.sin), symdl.derivative(np.sin, order=3), symdl.vmap(np.sin)):
        value = transform(x)
        copy = pickle.loads(pickle.dumps(transform))
        np.testing.assert_array_equal(copy(x), value)
        assert copy.hit_rate == 50.0           # the unpickled trace was reused, not traced again
    np.testing.assert_allclose(pickle.loads(pickle.dumps(symdl.jacobian(np.sin)))(x), np.diag(np.cos(x)))


def test_transforms_of_lambdas_travel_through_cloudpickle():
    # Dask ships functions with cloudpickle: the copy must work, not fail on call
    import cloudpickle  # (the test extra installs it: Dask's serialiser)
    calls = []

    def loss(w):
        calls.append(1)
        return np.sum(np.sin(w) * w)

    for transform in (symdl.grad(loss), symdl.hvp(loss, ieee=True), symdl.value_and_grad(loss, argnums=(0,))):
        args = (np.array([0.3, 1.0]),) * (2 if transform.__name__ == "hvp" else 1)
        value = transform(*args)
        copy = cloudpickle.loads(cloudpickle.dumps(transform))
        calls.clear()
        again = copy(*args)
        assert not calls                       # compiled code came along: no retrace
        assert copy.ieee == transform.ieee
        for a, b in zip(np.atleast_1d(value) if not isinstance(value, tuple) else value,
                        np.atleast_1d(again) if not isinstance(again, tuple) else again):
            np.testing.assert_array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object))
    w = np.array([0.3, 1.0])
    np.testing.assert_allclose(cloudpickle.loads(cloudpickle.dumps(symdl.grad(loss)))(w),
                               np.cos(w) * w + np.sin(w), rtol=1e-14)


def test_symdl_numpy_is_reachable_after_import_symdl():
    # as jax.numpy after ``import jax`` (in a fresh interpreter: another test
    # may have imported symdl.numpy already)
    import subprocess
    import sys
    code = ("import symdl; x = symdl.dlarray(1.0); "
            "print(symdl.numpy.array([x, 2.0]).shape, float(symdl.numpy.sum(symdl.numpy.array([x, 2.0]))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["(2,)", "3.0"]


# ---------------------------------------------------------------- MATLAB logical options are checked

@pytest.mark.parametrize("option", ["retain_data", "enable_higher_derivatives"])
def test_dlgradient_options_must_be_logical(option):
    # 'no' is truthy: taken as True it would silently mean the opposite
    def f(x):
        return dlgradient(symdl.sum(x ** 2), x, **{option: "no"})

    with pytest.raises(TypeError, match=f"dlgradient: {option} must be True or False, got str 'no'"):
        dlfeval(f, dlarray([1.0, 2.0]))
    g = dlfeval(lambda x: dlgradient(symdl.sum(x ** 2), x, **{option: np.True_}), dlarray([1.0, 2.0]))
    np.testing.assert_array_equal(symdl.extractdata(g), [2.0, 4.0])


def test_pinn_operators_name_u_and_check_their_option():
    x = dlarray(np.array([[1.0, 2.0]]), "CB")
    with pytest.raises(ValueError, match="dljacobian: u is not traced"):
        dlfeval(lambda x: symdl.dljacobian(dlarray(np.ones((1, 2)), "CB"), x, 0), x)
    with pytest.raises(TypeError, match="dldivergence: enable_higher_derivatives must be True or False"):
        dlfeval(lambda x: symdl.dldivergence(x ** 2, x, 0, enable_higher_derivatives="x"), x)


# ---------------------------------------------------------------- labels and numpy broadcasting

def test_a_labelled_vector_never_broadcasts_under_another_label():
    # numpy pairs axes from the right: an 'SSCB' batch plus a 'C' bias would
    # add the bias along B (silently wrong whenever C == B); refused, traced or not
    images = dlarray(np.zeros((2, 2, 3, 3)), "SSCB")
    bias = dlarray(np.array([1.0, 2.0, 3.0]), "C")
    for combine in (lambda a, b: a + b, lambda a, b: b * a, np.maximum):
        with pytest.raises(ValueError, match="dimension labels do not line up"):
            combine(images, bias)
        with pytest.raises(ValueError, match="dimension labels do not line up"):
            dlfeval(combine, images, bias)
    # the MATLAB layout of a bias, (C, 1) with fmt 'CB', adds along C
    right = images + dlarray(np.array([[1.0], [2.0], [3.0]]), "CB")
    np.testing.assert_array_equal(symdl.extractdata(right)[0, 0], np.repeat([[1.0], [2.0], [3.0]], 3, axis=1))
    # dropping the labels on purpose gives numpy's rule
    np.testing.assert_array_equal(symdl.extractdata(images + symdl.stripdims(bias))[0, 0],
                                  np.zeros((3, 3)) + [1.0, 2.0, 3.0])


def test_labels_that_cannot_be_misplaced_follow_numpy():
    # labels only one operand has, and size-1 axes, broadcast as numpy does
    cb, sb = dlarray(np.ones((3, 2)), "CB"), dlarray(2 * np.ones((3, 2)), "SB")
    assert (cb + sb).fmt == "CB" and float(symdl.sum(cb + sb)) == 18.0
    scb = dlarray(np.arange(24.0).reshape(4, 3, 2), "SCB")
    per_observation = dlarray(np.array([[10.0, 20.0]]), "SB")       # S of size 1
    np.testing.assert_array_equal(symdl.extractdata(scb + per_observation),
                                  np.arange(24.0).reshape(4, 3, 2) + [10.0, 20.0])


@pytest.mark.parametrize("expr, derivatives", [
    (sympy.Max(Z, 0) ** 2, lambda x: [np.maximum(x, 0) ** 2, 2 * np.maximum(x, 0), 2.0 * (x > 0), 0 * x]),
    (sympy.Heaviside(Z) * Z ** 2, lambda x: [(x > 0) * x ** 2, 2 * x * (x > 0), 2.0 * (x > 0), 0 * x]),
    (sympy.Min(Z ** 2, 1), lambda x: [np.minimum(x ** 2, 1), 2 * x * (x ** 2 < 1), 2.0 * (x ** 2 < 1), 0 * x]),
], ids=str)
def test_elementwise_steps_differentiate_to_third_order_compiled_and_interpreted(expr, derivatives):
    # sympy.diff gives Heaviside (no native code: compiled as its Piecewise),
    # then DiracDelta(z) and DiracDelta(z, 1): zero wherever they exist
    fn = symdl.elementwise(sympy.Lambda(Z, expr))
    points = np.array([-1.3, -0.2, 0.4, 2.1])
    refs = derivatives(points)
    for k, ref in enumerate(refs):
        np.testing.assert_allclose(symdl.derivative(fn, order=k)(points), ref, atol=1e-14, err_msg=f"order {k}")

    def chain(x):
        g1 = dlgradient(symdl.sum(fn(x)), x, enable_higher_derivatives=True)
        g2 = dlgradient(symdl.sum(g1), x, enable_higher_derivatives=True)
        return g1, g2, dlgradient(symdl.sum(g2), x)

    for k, got in enumerate(dlfeval(chain, dlarray(points)), start=1):
        np.testing.assert_allclose(symdl.extractdata(got), refs[k], atol=1e-14, err_msg=f"order {k}")


# ---------------------------------------------------------------- functions with no derivative rule

@pytest.mark.parametrize("call, named", [
    (lambda x: np.frexp(x), "numpy.frexp"),
    (lambda x: np.median(x), "numpy.median"),
    (lambda x: np.fft.fft(x), "numpy.fft.fft"),
    (lambda x: np.linalg.eig(np.diag(x)), "numpy.linalg.eig"),
    (lambda x: np.add.reduceat(x, [0]), "numpy.add.reduceat"),
])
def test_a_numpy_function_without_a_rule_is_a_type_error_naming_it(call, named):
    x = dlarray([1.0, 2.0])
    with pytest.raises(TypeError, match=f"^{named} is not supported on dlarrays"):
        call(x)
    with pytest.raises(TypeError, match=f"^{named} is not supported on dlarrays"):
        dlfeval(call, x)


def test_a_scipy_ufunc_without_a_rule_is_not_called_a_numpy_function():
    import scipy.special as special  # (the test extra installs scipy)
    with pytest.raises(TypeError, match="^the ufunc expit is not supported on dlarrays"):
        special.expit(dlarray([1.0, 2.0]))


# ---------------------------------------------------------------- edits are noticed

def test_an_edit_of_keyword_only_defaults_is_retraced():
    def f(x, *, w=2.0):
        return symdl.sum(x) * w

    accfun = symdl.dlaccelerate(f)
    x = dlarray(np.ones(3))
    assert float(accfun(x)) == 6.0
    f.__kwdefaults__ = {"w": 5.0}
    assert float(accfun(x)) == 15.0        # was the stale 6.0
    f.__kwdefaults__["w"] = 7.0
    assert float(accfun(x)) == 21.0

    def h(x, *, k=2.0):
        return np.sum(x ** 2) * k

    g = symdl.grad(h)
    np.testing.assert_array_equal(g(np.ones(2)), [4.0, 4.0])
    h.__kwdefaults__ = {"k": 5.0}
    np.testing.assert_array_equal(g(np.ones(2)), [10.0, 10.0])


@dataclasses.dataclass
class _Settings:
    scale: float = 2.0


@pytest.mark.parametrize("cfg", [types.SimpleNamespace(scale=2.0), _Settings()], ids=["namespace", "dataclass"])
def test_an_attribute_of_an_object_the_function_reads_is_watched(cfg):
    # cfg.scale = ... on a captured config object gave the old answer
    accfun = symdl.dlaccelerate(lambda x: symdl.sum(x) * cfg.scale)
    g = symdl.grad(lambda x: np.sum(x) * cfg.scale)
    x = np.ones(3)
    assert float(accfun(dlarray(x))) == 6.0
    np.testing.assert_array_equal(g(x), [2.0, 2.0, 2.0])
    cfg.scale = 4.0
    assert float(accfun(dlarray(x))) == 12.0
    np.testing.assert_array_equal(g(x), [4.0, 4.0, 4.0])


GLOBAL_SETTINGS = types.SimpleNamespace(scale=2.0)


def _scaled_sum(x):
    return np.sum(x) * GLOBAL_SETTINGS.scale


def test_an_attribute_of_a_global_object_is_watched():
    g = symdl.grad(_scaled_sum)
    np.testing.assert_array_equal(g(np.ones(2)), [2.0, 2.0])
    GLOBAL_SETTINGS.scale = 9.0
    try:
        np.testing.assert_array_equal(g(np.ones(2)), [9.0, 9.0])
    finally:
        GLOBAL_SETTINGS.scale = 2.0


class _Loss:
    """A loss as a callable object (as Flax/PyTorch users write models)."""

    def __init__(self):
        self.k = 2.0

    def __call__(self, x):
        return symdl.sum(x) * self.k


def test_a_callable_object_as_the_function_is_watched_like_a_bound_method():
    loss = _Loss()
    accfun = symdl.dlaccelerate(loss)
    g = symdl.grad(loss)
    assert float(accfun(dlarray(np.ones(3)))) == 6.0
    np.testing.assert_array_equal(g(np.ones(2)), [2.0, 2.0])
    loss.k = 5.0
    assert float(accfun(dlarray(np.ones(3)))) == 15.0     # was the stale 6.0
    np.testing.assert_array_equal(g(np.ones(2)), [5.0, 5.0])


def test_a_partial_as_the_function_is_watched():
    import functools

    def base(x, k):
        return symdl.sum(x) * k

    part = functools.partial(base, k=2.0)
    accfun = symdl.dlaccelerate(part)
    assert float(accfun(dlarray(np.ones(3)))) == 6.0
    part.keywords["k"] = 7.0
    assert float(accfun(dlarray(np.ones(3)))) == 21.0


def test_attributes_the_function_writes_are_bookkeeping_not_inputs():
    # calls.n += 1 in the body: watching n would retrace on every call
    calls = types.SimpleNamespace(n=0)
    cfg = types.SimpleNamespace(scale=2.0)

    def f(x):
        calls.n += 1
        return symdl.sum(x) * cfg.scale

    accfun = symdl.dlaccelerate(f)
    for _ in range(3):
        assert float(accfun(dlarray(np.ones(2)))) == 4.0
    assert calls.n == 1 and accfun.hit_rate == pytest.approx(200 / 3)
    cfg.scale = 3.0                                   # read, not written: still watched
    assert float(accfun(dlarray(np.ones(2)))) == 6.0 and calls.n == 2


def test_an_unhashable_static_argument_is_described_as_such():
    class EqualByValue:   # __eq__ without __hash__: Python makes it unhashable
        def __eq__(self, other):
            return isinstance(other, EqualByValue)

    accfun = symdl.dlaccelerate(lambda x, o: symdl.sum(x))
    with pytest.raises(TypeError, match=r"argument 1 \(a EqualByValue\) is static.*EqualByValue is unhashable "
                                        r"\(it defines __eq__ but no __hash__\)"):
        accfun(dlarray(np.ones(2)), EqualByValue())


def test_symdl_numpy_array_nests_a_traced_vector_beside_a_list_as_numpy():
    import symdl.numpy as snp
    x0 = np.array([0.5, 1.5])

    def f(x):
        a = snp.asarray([x, [1.0, 2.0]])          # numpy: a (2, 2) array
        return a, dlgradient(symdl.sum(a ** 2), x)

    a, g = dlfeval(f, dlarray(x0))
    np.testing.assert_array_equal(symdl.extractdata(a), np.asarray([x0, [1.0, 2.0]]))
    np.testing.assert_array_equal(symdl.extractdata(g), 2 * x0)


def test_dlfeval_inside_an_accelerated_function_called_outside_dlfeval():
    # the function's own dlfeval allows dlgradient inside it (MATLAB's too);
    # dlgradient directly in an accelerated function called outside dlfeval
    # stays an error
    def inner(x):
        y = symdl.sum(x * x * x)
        return y, symdl.dlgradient(y, x)
    acc = symdl.dlaccelerate(lambda x: symdl.dlfeval(inner, x))
    for v in ([1.0, 2.0], [3.0, -4.0]):
        y, g = acc(symdl.dlarray(v))
        assert float(y) == sum(t ** 3 for t in v)
        np.testing.assert_array_equal(symdl.extractdata(g), 3 * np.array(v) ** 2)
    assert acc.hit_rate == 50
    with pytest.raises(RuntimeError, match="dlgradient must be called inside a function evaluated with dlfeval"):
        symdl.dlaccelerate(lambda x: symdl.dlgradient(symdl.sum(x * x), x))(symdl.dlarray([1.0]))


def test_transforms_take_keyword_arguments_as_jax_does():
    # bound by the function's signature and passed by position: inputs like any
    # other, differentiated only where argnums points; both the Python call and
    # the native forwarding __call__ (made once an all-float dispatcher exists)
    def f(x, scale=1.0, shift=0.0):
        return symdl.sum(x * x) * scale + shift
    x = np.array([1.0, 2.0])
    for _ in range(2):
        g = symdl.grad(f)
        np.testing.assert_array_equal(g(x, scale=3.0), 6 * x)
        np.testing.assert_array_equal(g(x, shift=1.0, scale=2.0), 4 * x)
        value, grad = symdl.value_and_grad(f)(x, scale=2.0, shift=0.5)
        assert float(value) == 2 * np.sum(x * x) + 0.5
        np.testing.assert_array_equal(grad, 4 * x)
        # hvp's trailing v stays positional
        h = symdl.hvp(lambda x, s=1.0: symdl.sum(x ** 3) * s)
        np.testing.assert_array_equal(h(x, np.array([1.0, 0.0]), s=2.0), [12.0 * x[0], 0.0])
        # a differentiated argument given by keyword
        np.testing.assert_array_equal(symdl.grad(lambda a, b: a * b, argnums=1)(2.0, b=3.0), 2.0)
        for _ in range(2):                 # an all-float signature twice: native dispatch and forwarding
            symdl.grad(lambda t: t * t)(1.0)
    assert not isinstance(type(g).__call__, types.FunctionType)   # the native forwarding __call__ ran above

    def kw_only(x, *, scale=1.0):
        return symdl.sum(x) * scale
    with pytest.raises(TypeError, match=r"grad: keyword-only arguments \(scale\) are not supported"):
        symdl.grad(kw_only)(x, scale=2.0)
    with pytest.raises(TypeError, match="grad: got an unexpected keyword argument 'nope'"):
        symdl.grad(f)(x, nope=2.0)
