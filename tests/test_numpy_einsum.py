"""einsum on random subscripts (hypothesis): values equal numpy's einsum,
and the gradient equals numpy's einsum of the cotangent (the adjoint
contraction, computed by numpy alone)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import symdl

SIZES = {"a": 2, "b": 3, "c": 1, "d": 2, "e": 3}


@st.composite
def einsum_problem(draw):
    n_ops = draw(st.integers(1, 3))
    terms = [draw(st.lists(st.sampled_from("abcde"), min_size=0, max_size=3)) for _ in range(n_ops)]
    used = sorted({c for t in terms for c in t})
    if draw(st.booleans()):
        out = None   # implicit output
    else:
        out = draw(st.permutations(used)).copy()[:draw(st.integers(0, len(used)))]
    text = ",".join("".join(t) for t in terms) + ("" if out is None else "->" + "".join(out))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    ops = [rng.standard_normal([SIZES[c] for c in t]) for t in terms]
    return text, ops


@settings(max_examples=60, deadline=None)
@given(einsum_problem())
def test_einsum_values_and_gradients_match_numpy(problem):
    text, ops = problem
    expected = np.einsum(text, *ops)
    got = np.einsum(text, *[symdl.dlarray(o) for o in ops])
    np.testing.assert_allclose(symdl.extractdata(got), expected, rtol=1e-12, atol=1e-12)
    # the gradient of <w, einsum(ops)> with respect to operand k is numpy's
    # einsum of w and the other operands, onto operand k's labels (repeated
    # labels: only the diagonal positions receive it)
    w = np.random.default_rng(0).standard_normal(np.shape(expected))

    def body(*xs):
        return symdl.dlgradient(symdl.sum(np.einsum(text, *xs) * w), *xs)
    grads = symdl.dlfeval(body, *[symdl.dlarray(o) for o in ops])
    grads = grads if isinstance(grads, tuple) else (grads,)
    ins, out = (text.split("->") + [None])[:2]
    terms = ins.split(",")
    if out is None:
        out = "".join(sorted(c for c in set(ins.replace(",", "")) if ins.replace(",", "").count(c) == 1))
    for k, (g, term) in enumerate(zip(grads, terms)):
        expected_g = np.zeros_like(ops[k])
        uniq = "".join(dict.fromkeys(term))
        others = [(t, o) for j, (t, o) in enumerate(zip(terms, ops)) if j != k]
        # labels found nowhere else: the cotangent is the same along them
        present = set(out) | {c for t, _ in others for c in t}
        target = "".join(c for c in uniq if c in present)
        spec = ",".join([out] + [t for t, _ in others]) + "->" + target
        sizes = [SIZES[c] for c in uniq]
        dense = np.einsum(spec, w, *[o for _, o in others])
        dense = np.broadcast_to(dense.reshape([SIZES[c] if c in present else 1 for c in uniq]), sizes)
        for idx in np.ndindex(*sizes):
            where = tuple(idx[uniq.index(c)] for c in term)
            expected_g[where] += dense[idx]
        np.testing.assert_allclose(symdl.extractdata(g), expected_g, rtol=1e-12, atol=1e-12,
                                   err_msg=f"{text}: gradient of operand {k}")
