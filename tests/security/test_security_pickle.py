"""Pickles of compiled functions sent to workers (AcceleratedFunction and the
transforms carry their object code in the pickle): damaged code bytes are a
ValueError on unpickling, never native code run (issue 10 item 3)."""

import pickle

import numpy as np
import pytest

import symdl
from codegen.compiler import Artifact


def _gradient(x):
    return symdl.dlgradient(symdl.sum(symdl.sin(x) * x), x)


def _accelerated():
    acc = symdl.dlaccelerate(_gradient)
    x = symdl.dlarray(np.array([0.5, -1.0, 2.0]))
    symdl.dlfeval(acc, x)
    return acc, x


def _artifacts(obj):
    """``obj``'s pickle and the state of every Artifact it carries."""
    found = []
    blob = pickle.dumps(obj)
    art_state = []
    original = Artifact.__setstate__

    def spy(self, state):
        art_state.append(dict(state))
        return original(self, state)
    Artifact.__setstate__ = spy
    try:
        pickle.loads(blob)
    finally:
        Artifact.__setstate__ = original
    found.extend(art_state)
    return blob, found


def test_an_accelerated_function_round_trips_through_pickle():
    acc, x = _accelerated()
    blob, states = _artifacts(acc)
    assert states, "the pickle carries no compiled code: nothing to check"
    again = pickle.loads(blob)
    g = symdl.dlfeval(again, x)
    v = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(symdl.extractdata(g), np.cos(v) * v + np.sin(v), rtol=1e-14)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_damaged_object_code_in_a_pickle_is_a_value_error(where):
    acc, _ = _accelerated()
    blob, states = _artifacts(acc)
    code = states[0]["object_code"]
    at = blob.find(code)
    assert at >= 0
    k = at + int(where * len(code))
    damaged = blob[:k] + bytes([blob[k] ^ 0x10]) + blob[k + 1:]
    with pytest.raises(ValueError, match="damaged"):
        pickle.loads(damaged)


def test_damaged_layout_in_a_pickle_is_a_value_error():
    acc, _ = _accelerated()
    blob, states = _artifacts(acc)
    work = states[0]["workspace_bytes"]
    state = dict(states[0], workspace_bytes=work + 8)
    art = Artifact.__new__(Artifact)
    with pytest.raises(ValueError, match="damaged"):
        art.__setstate__(state)
