"""dropout: inverted scaling, the drop rate, fresh masks on every call of
compiled code, the derivative is the mask, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import symdl


def data(x):
    return symdl.extractdata(x)


def test_rate_scaling_and_labels():
    symdl.seed(3)
    X = symdl.dlarray(np.full((200, 500), 2.0), "CB")
    Y = symdl.dropout(X, 0.3)
    y = data(Y)
    assert Y.fmt == "CB" and Y.dtype == np.float64
    assert set(np.unique(y)) <= {0.0, 2.0 / 0.7}
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.3) < 0.01            # 100,000 draws: the standard error is 0.0015
    assert symdl.dropout(X, 0.0) is X


def test_fresh_masks_in_compiled_code_and_gradient_is_the_mask():
    def f(x):
        y = symdl.dropout(x, 0.5)
        return y, symdl.dlgradient(symdl.sum(y), x)
    acc = symdl.dlaccelerate(f)
    x = symdl.dlarray(np.ones(64))
    y1, g1 = symdl.dlfeval(acc, x)
    y2, g2 = symdl.dlfeval(acc, x)
    assert acc.hit_rate == 50.0                              # the second call reused the trace
    assert not np.array_equal(data(y1), data(y2))            # with a fresh mask
    for y, g in ((y1, g1), (y2, g2)):
        np.testing.assert_array_equal(data(g), np.where(data(y) != 0, 2.0, 0.0))   # d/dx = mask / (1 - p)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"dropout: probability must be a number in \[0, 1\), got 1.0"):
        symdl.dropout(symdl.dlarray([1.0]), 1.0)
    with pytest.raises(TypeError, match="dropout: X must be a dlarray"):
        symdl.dropout(np.ones(3), 0.5)
