"""cumsum on dlarrays: numpy's values, derivatives of first and second order
against central differences, compiled == numpy, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads


def test_values_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4, 5))
    x = symdl.dlarray(a)
    for axis in (0, 1, 2, -1, None):
        np.testing.assert_allclose(symdl.extractdata(np.cumsum(x, axis=axis)), np.cumsum(a, axis=axis), rtol=1e-14)
    np.testing.assert_allclose(symdl.extractdata(x.cumsum(1)), a.cumsum(1), rtol=1e-14)
    f32 = symdl.dlarray(a.astype(np.float32))
    assert np.cumsum(f32, axis=0).dtype == np.float32
    labelled = symdl.dlarray(a[:, :, 0], "CB")
    assert symdl.cumsum(labelled, "B").fmt == "CB"
    np.testing.assert_allclose(symdl.extractdata(symdl.cumsum(labelled, "B")), np.cumsum(a[:, :, 0], axis=1))


@pytest.mark.parametrize("axis", [0, 1, None])
def test_derivatives_against_central_differences(axis):
    rng = np.random.default_rng(1)
    w = rng.standard_normal(12 if axis is None else (3, 4))
    check_grads(lambda x: np.sum(np.sin(np.cumsum(x, axis=axis)) * w), [rng.standard_normal((3, 4))], order=2)


def test_compiled_matches_numpy_and_gradient_is_the_reverse_scan():
    g = symdl.grad(lambda x: np.sum(np.cumsum(x, axis=0) ** 2))
    a = np.array([1.0, -2.0, 0.5, 3.0])
    s = np.cumsum(a)
    expected = np.cumsum((2 * s)[::-1])[::-1]   # d/dx_j sum_i s_i^2 = sum_{i >= j} 2 s_i
    np.testing.assert_allclose(g(a), expected, rtol=1e-14)


def test_bad_axis_is_a_clear_error():
    x = symdl.dlarray(np.ones((2, 3)))
    with pytest.raises(ValueError, match="cumsum"):
        symdl.cumsum(x, axis=2)
    with pytest.raises(TypeError, match="cumsum: axis must be an int"):
        symdl.cumsum(x, axis=(0, 1))
