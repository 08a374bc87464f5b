"""minibatch_queue against plain numpy slicing."""

import numpy as np
import pytest

import symdl
from symdl import nn


def test_batches_cover_the_data_in_order():
    X = np.arange(24.0).reshape(2, 3, 1, 4)   # H W C N
    T = np.array([3, 1, 4, 1])
    q = nn.minibatch_queue(X, T, mini_batch_size=3, mini_batch_format=("SSCB", ""))
    x1, t1 = q.next()
    assert x1.fmt == "SSCB" and x1.shape == (2, 3, 1, 3) and t1.fmt == ""
    np.testing.assert_array_equal(symdl.extractdata(x1), X[..., :3])
    x2, t2 = q.next()
    np.testing.assert_array_equal(symdl.extractdata(t2), T[3:])
    assert not q.has_data()
    with pytest.raises(ValueError, match="no data left"):
        q.next()
    q.reset()
    np.testing.assert_array_equal(symdl.extractdata(q.next()[1]), T[:3])


def test_discard_shuffle_and_fcn():
    X = np.arange(10.0).reshape(1, 10)
    q = nn.minibatch_queue(X, mini_batch_size=4, partial_mini_batch="discard",
                           mini_batch_fcn=lambda x: x * 2.0, output_as_dlarray=False)
    got = list(q)
    assert len(got) == 2 and isinstance(got[0], np.ndarray)
    np.testing.assert_array_equal(np.concatenate(got, axis=1), 2.0 * X[:, :8])
    symdl.seed(3)
    q.shuffle()
    seen = np.concatenate(list(q), axis=1).ravel() / 2.0
    assert len(seen) == 8 and len(set(seen)) == 8 and set(seen) <= set(X.ravel())


def test_queue_errors():
    with pytest.raises(ValueError, match="same number of observations"):
        nn.minibatch_queue(np.ones((2, 5)), np.ones(4))
    with pytest.raises(ValueError, match="mini_batch_size"):
        nn.minibatch_queue(np.ones(4), mini_batch_size=0)
    with pytest.raises(ValueError, match="partial_mini_batch"):
        nn.minibatch_queue(np.ones(4), partial_mini_batch="keep")
    with pytest.raises(ValueError, match="2 outputs"):
        nn.minibatch_queue(np.ones((2, 4)), np.ones(4), mini_batch_format="CB").next()
