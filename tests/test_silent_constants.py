"""SPEC §9.1: a traced dlarray never silently turns into a constant.

Each way numpy (or a library built on it) could take a plain copy of a traced
value is a TypeError naming the two deliberate alternatives; the same calls
on untraced dlarrays keep working, and float()/bool() still serve Python
control flow (detached, as PyTorch's .item())."""

import numpy as np
import pytest

import symdl

scipy_special = pytest.importorskip("scipy.special", reason="scipy is the test extra's reference library")

LOSES_TRACE = {
    "asarray": lambda x: np.sum(np.asarray(x) * x),
    "array of list": lambda x: np.sum(np.array([x, 2.0 * x]) * x),
    "list to a numpy function": lambda x: np.sum([x, 2.0 * x]) * x,
    "numpy.array with dtype": lambda x: np.sum(np.array(x, dtype=np.float64)),
    "scipy logsumexp": lambda x: symdl.sum(x * x) + scipy_special.logsumexp(x),
    "nested list to numpy.mean": lambda x: x * np.mean([[x, x], [x, x]], axis=(0, 1)),
}


def _dlgradient_of(fun, x0):
    def model(x):
        return symdl.dlgradient(symdl.sum(fun(x)), x)
    return symdl.dlfeval(model, symdl.dlarray(x0))


@pytest.mark.parametrize("case", sorted(LOSES_TRACE))
@pytest.mark.parametrize("driver", ["grad", "dlfeval", "dlaccelerate"])
def test_conversion_of_a_traced_value_is_a_type_error(case, driver):
    fun = LOSES_TRACE[case]
    x0 = np.array([0.5, -1.5]) if case != "array of list" else np.array(1.0)
    with pytest.raises(TypeError) as err:
        if driver == "grad":
            symdl.grad(lambda x: symdl.sum(fun(x)))(x0)
        elif driver == "dlfeval":
            _dlgradient_of(fun, x0)
        else:
            symdl.dlaccelerate(lambda x: symdl.dlgradient(symdl.sum(fun(x)), x))(symdl.dlarray(x0))
    message = str(err.value)
    assert "extractdata" in message and "symdl.stack" in message


def test_untraced_dlarrays_convert_as_before():
    x = symdl.dlarray([1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])
    np.testing.assert_array_equal(np.array([x, 2.0 * x]), [[1.0, 2.0], [2.0, 4.0]])
    assert scipy_special.logsumexp(x) == pytest.approx(np.log(np.exp(1.0) + np.exp(2.0)))


def test_extractdata_detaches_on_purpose():
    # d/dx [ c * x ] with c = extractdata(x) held constant is c (not 2x)
    g = symdl.grad(lambda x: symdl.sum(symdl.extractdata(x) * x))(np.array([3.0, -2.0]))
    np.testing.assert_allclose(g, [3.0, -2.0])


def test_stack_keeps_the_derivative():
    # the working version of the "array of list" case: d/dx sum([x, 2x] * x) = 2x + 4x = 6x
    g = symdl.grad(lambda x: symdl.sum(symdl.stack([x, 2.0 * x]) * x))(1.0)
    assert float(g) == pytest.approx(6.0)


def test_float_and_bool_give_detached_python_values_for_control_flow():
    def f(x):
        scale = float(x)  # a Python number: no derivative, as torch's .item()
        return x * x if bool(x > 0) else -scale * x
    g = symdl.grad(f)
    assert float(g(3.0)) == pytest.approx(6.0)      # d(x^2)
    assert float(g(-2.0)) == pytest.approx(2.0)     # d(-c x) with c = -2 held constant
