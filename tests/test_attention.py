"""attention: values against a plain numpy loop over observations and heads
in MATLAB's layout (several shapes, float32 and float64, scale, padding and
attention masks, 'SCB' and unformatted layouts), weights' layout,
derivatives against central differences to second order, a third derivative
with masks against differences of the second, stability for
large scores, dropout, compiled == eager, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

import symdl
from helpers import assert_close, assert_same, check_grads

RNG = np.random.default_rng(23)


def data(x):
    return symdl.extractdata(x)


def attention_ref(Q, K, V, num_heads, scale=None, keep=None):
    """Q is C x B x Nq, K C x B x Nk, V Cv x B x Nk ('CBT'); keep (Nk, Nq, B) of
    bools or None.  Returns Y (Cv x B x Nq) and weights (Nk x Nq x heads x B)."""
    C, B, Nq = Q.shape
    Cv, _, Nk = V.shape
    dk, dv = C // num_heads, Cv // num_heads
    scale = 1 / math.sqrt(dk) if scale is None else scale
    Y = np.zeros((Cv, B, Nq))
    W = np.zeros((Nk, Nq, num_heads, B))
    for b in range(B):
        for h in range(num_heads):
            q = Q[h * dk:(h + 1) * dk, b, :]                     # dk x Nq
            k = K[h * dk:(h + 1) * dk, b, :]                     # dk x Nk
            v = V[h * dv:(h + 1) * dv, b, :]                     # dv x Nk
            s = scale * (k.T @ q)                                 # Nk x Nq
            if keep is not None:
                s = np.where(keep[:, :, b], s, -np.inf)
            e = np.exp(s - s.max(axis=0, keepdims=True))
            w = e / e.sum(axis=0, keepdims=True)                  # softmax over the keys
            W[:, :, h, b] = w
            Y[h * dv:(h + 1) * dv, b, :] = v @ w
    return Y, W


def qkv(C, Cv, B, Nq, Nk, dtype=np.float64):
    return (RNG.standard_normal((C, B, Nq)).astype(dtype), RNG.standard_normal((C, B, Nk)).astype(dtype),
            RNG.standard_normal((Cv, B, Nk)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("C,Cv,B,Nq,Nk,heads", [(4, 6, 2, 3, 5, 2), (3, 3, 1, 4, 4, 1), (6, 3, 3, 1, 2, 3)])
def test_values_and_layout(dtype, C, Cv, B, Nq, Nk, heads):
    Q, K, V = qkv(C, Cv, B, Nq, Nk, dtype)
    Y, W = symdl.attention(symdl.dlarray(Q, "CBT"), K, V, heads)
    eY, eW = attention_ref(*[a.astype(np.float64) for a in (Q, K, V)], heads)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    assert Y.fmt == "CBT" and Y.shape == (Cv, B, Nq) and Y.dtype == dtype
    assert not W.fmt and W.shape == (Nk, Nq, heads, B) and W.dtype == dtype
    assert_close(data(Y), eY, tol, tol, "Y")
    assert_close(data(W), eW, tol, tol, "weights")


def test_scale_and_masks():
    C, Cv, B, Nq, Nk, heads = 4, 4, 2, 3, 4, 2
    Q, K, V = qkv(C, Cv, B, Nq, Nk)
    Qf = symdl.dlarray(Q, "CBT")
    Y, W = symdl.attention(Qf, K, V, heads, scale=0.3)
    assert_close(data(Y), attention_ref(Q, K, V, heads, 0.3)[0], 1e-12, 1e-12, "scale")
    # padding mask in the keys' layout (C x B x Nk), first channel used
    pad = np.ones((2, B, Nk))
    pad[0, 0, 3] = 0
    pad[0, 1, 1:3] = 0
    pad[1] = 0                                      # the second channel is ignored
    keep = np.broadcast_to(pad[0].T[:, None, :], (Nk, Nq, B)) != 0
    Y, W = symdl.attention(Qf, K, V, heads, padding_mask=pad)
    eY, eW = attention_ref(Q, K, V, heads, keep=keep)
    assert_close(data(Y), eY, 1e-12, 1e-12, "padding mask")
    assert_close(data(W), eW, 1e-12, 1e-12, "padding mask weights")
    assert np.all(data(W)[3, :, :, 0] == 0) and np.all(data(W)[1:3, :, :, 1] == 0)
    # causal: query m sees keys n <= m
    causal = np.arange(Nk)[:, None] <= np.arange(Nq)[None, :]
    Y, W = symdl.attention(Qf, K, V, heads, attention_mask="causal")
    eY, _ = attention_ref(Q, K, V, heads, keep=np.repeat(causal[:, :, None], B, axis=2))
    assert_close(data(Y), eY, 1e-12, 1e-12, "causal")
    # numeric masks, 2-D and 3-D, combined with the padding mask
    A = RNG.random((Nk, Nq, B)) > 0.3
    A[0] = True                                     # every query keeps a key
    Y, W = symdl.attention(Qf, K, V, heads, attention_mask=A.astype(float), padding_mask=np.ones((1, B, Nk)))
    assert_close(data(Y), attention_ref(Q, K, V, heads, keep=A)[0], 1e-12, 1e-12, "3-D mask")
    pad2 = pad[:1].copy()
    pad2[0, :, 0] = 1                               # every query keeps key 0
    Y, W = symdl.attention(Qf, K, V, heads, attention_mask=A[:, :, 0], padding_mask=pad2)
    keep2 = np.broadcast_to(pad2[0].T[:, None, :], (Nk, Nq, B)) != 0
    assert_close(data(Y), attention_ref(Q, K, V, heads, keep=np.repeat(A[:, :, :1], B, axis=2) & keep2)[0],
                 1e-12, 1e-12, "2-D mask and padding")


def test_every_key_masked_gives_nan_as_matlab():
    Q, K, V = qkv(2, 2, 1, 2, 2)
    A = np.array([[1.0, 0.0], [1.0, 0.0]])           # the second query sees no key
    Y, W = symdl.attention(symdl.dlarray(Q, "CBT"), K, V, 1, attention_mask=A)
    y = data(Y)
    assert np.all(np.isfinite(y[:, :, 0])) and np.all(np.isnan(y[:, :, 1]))


def test_other_layouts():
    C, Cv, B, Nq, Nk, heads = 4, 2, 2, 3, 2, 2
    Q, K, V = qkv(C, Cv, B, Nq, Nk)
    eY, eW = attention_ref(Q, K, V, heads)
    # 'SCB': the sequence along S
    Y, W = symdl.attention(symdl.dlarray(Q.transpose(2, 0, 1), "SCB"), symdl.dlarray(K.transpose(2, 0, 1), "SCB"),
                           V.transpose(2, 0, 1), heads)
    assert Y.fmt == "SCB"
    assert_close(data(Y), eY.transpose(2, 0, 1), 1e-12, 1e-12, "SCB")
    assert_close(data(W), eW, 1e-12, 1e-12, "SCB weights")
    # unformatted, with data_format: Y keeps the queries' dimension order
    Y, W = symdl.attention(Q.transpose(2, 1, 0), K.transpose(2, 1, 0), V.transpose(2, 1, 0), heads,
                           data_format="TBC")
    assert not Y.fmt
    assert_close(data(Y), eY.transpose(2, 1, 0), 1e-12, 1e-12, "TBC")
    # no 'B': one observation
    Y, W = symdl.attention(symdl.dlarray(Q[:, 0], "CT"), K[:, 0], V[:, 0], heads)
    assert Y.fmt == "CT" and W.shape == (Nk, Nq, heads, 1)
    assert_close(data(Y), eY[:, 0], 1e-12, 1e-12, "CT")


def test_gradients_to_second_order():
    Q, K, V = qkv(4, 4, 2, 2, 3)
    pad = np.ones((1, 2, 3))
    pad[0, 1, 2] = 0
    keep = np.broadcast_to(pad[0].T[:, None, :], (3, 2, 2)) != 0

    def f(q, k, v):
        if isinstance(q, symdl.dlarray):
            Y, W = symdl.attention(symdl.dlarray(q, "CBT"), k, v, 2, padding_mask=pad)
            return symdl.concatenate([symdl.reshape(symdl.stripdims(Y), (-1,)), symdl.reshape(W, (-1,))])
        Y, W = attention_ref(q, k, v, 2, keep=keep)
        return np.concatenate([Y.reshape(-1), W.reshape(-1)])
    check_grads(f, [Q, K, V], order=2)

    def g(q, k, v):
        if isinstance(q, symdl.dlarray):
            return symdl.stripdims(symdl.attention(symdl.dlarray(q, "CBT"), k, v, 1, attention_mask="causal")[0])
        return attention_ref(q, k, v, 1, keep=np.repeat((np.arange(2)[:, None] <= np.arange(2))[:, :, None], 1, 2))[0]
    check_grads(g, [a.astype(np.float32) for a in qkv(2, 3, 1, 2, 2)], order=2)


def test_large_scores_stay_finite_to_second_order():
    Q = np.array([[[300.0, -200.0]], [[100.0, 50.0]]])             # 2 x 1 x 2: scores of about 1e4
    K = np.array([[[90.0, -80.0, 10.0]], [[40.0, 70.0, 0.0]]])
    V = RNG.standard_normal((2, 1, 3))
    for dtype in (np.float64, np.float32):
        args = [symdl.dlarray(a.astype(dtype)) for a in (Q, K, V)]

        def f(q, k, v):
            Y, _ = symdl.attention(symdl.dlarray(q, "CBT"), k, v, 1, attention_mask="causal")
            y = symdl.sum(symdl.stripdims(Y) ** 2)
            gq, gk = symdl.dlgradient(y, q, k, enable_higher_derivatives=True)
            return Y, gq, symdl.dlgradient(symdl.sum(gq * gq) + symdl.sum(gk), q, k, v)
        Y, gq, second = symdl.dlfeval(f, *args)
        for x in (Y, gq) + tuple(second):
            assert np.all(np.isfinite(data(x))), dtype
        assert_close(data(Y), attention_ref(Q, K, V, 1, keep=np.repeat(
            (np.arange(3)[:, None] <= np.arange(2))[:, :, None], 1, 2))[0], 1e-6, 1e-6, "large scores")


def test_dropout_drops_weights_with_fresh_masks():
    Q, K, V = qkv(2, 2, 2, 6, 6)
    Qf = symdl.dlarray(Q, "CBT")
    _, W0 = symdl.attention(Qf, K, V, 1)
    symdl.seed(5)
    p = 0.4
    Y, W = symdl.attention(Qf, K, V, 1, dropout_probability=p)
    w, w0 = data(W), data(W0)
    dropped = w == 0
    assert 0 < dropped.sum() < w.size
    np.testing.assert_allclose(w[~dropped], w0[~dropped] / (1 - p), rtol=1e-12)
    # Y uses exactly the returned weights
    expect = np.einsum("cbk,kqb->cbq", V, w[:, :, 0, :])
    np.testing.assert_allclose(data(Y), expect, rtol=1e-12, atol=1e-14)
    _, W2 = symdl.attention(Qf, K, V, 1, dropout_probability=p)
    assert not np.array_equal(data(W2) == 0, dropped)                # a fresh draw


def test_compiled_equals_eager():
    Q, K, V = qkv(4, 2, 2, 3, 3)
    pad = np.ones((1, 2, 3))
    pad[0, 0, 1] = 0

    def step(q, k, v):
        Y, W = symdl.attention(symdl.dlarray(q, "CBT"), k, v, 2, padding_mask=pad, attention_mask="causal")
        loss = symdl.sum(symdl.stripdims(Y) ** 2) + symdl.sum(W * W)
        return (loss,) + symdl.dlgradient(loss, q, k, v)
    eager = symdl.dlfeval(step, *[symdl.dlarray(a) for a in (Q, K, V)])
    compiled = symdl.compile(step, Q, K, V)(Q, K, V)
    for e, c in zip(eager, compiled):
        assert_same(np.asarray(data(c) if isinstance(c, symdl.dlarray) else c), data(e), 1e-12, 1e-13, "compiled")
    keep = (np.broadcast_to(pad[0].T[:, None, :], (3, 3, 2)) != 0) & (np.arange(3)[:, None] <= np.arange(3))[:, :, None]
    eY, eW = attention_ref(Q, K, V, 2, keep=keep)
    assert float(data(eager[0])) == pytest.approx(np.sum(eY ** 2) + np.sum(eW ** 2), rel=1e-12)


def test_bad_input_is_a_clear_error():
    Q, K, V = qkv(4, 4, 2, 3, 5)
    Qf = symdl.dlarray(Q, "CBT")
    with pytest.raises(ValueError, match=r"attention: num_heads \(3\) must divide the channels of the queries and "
                                         r"keys, which have 4"):
        symdl.attention(Qf, K, V, 3)
    with pytest.raises(ValueError, match=r"attention: num_heads \(2\) must divide the channels of the values"):
        symdl.attention(Qf, K, V[:3], 2)
    with pytest.raises(ValueError, match="attention: num_heads must be a positive integer, got 0"):
        symdl.attention(Qf, K, V, 0)
    with pytest.raises(ValueError, match="attention: keys must have the queries' 4 channels, got 2"):
        symdl.attention(Qf, K[:2], V, 2)
    with pytest.raises(ValueError, match=r"attention: values must have the keys' sequence and batch sizes \(5, 2\)"):
        symdl.attention(Qf, K, V[:, :, :4], 2)
    with pytest.raises(ValueError, match="attention: keys must have the queries' 2 observations, got 1"):
        symdl.attention(Qf, K[:, :1], V[:, :1], 2)
    with pytest.raises(ValueError, match="attention: keys must have the format of the queries, 'CBT'; got 'SCB'"):
        symdl.attention(Qf, symdl.dlarray(K.transpose(2, 0, 1), "SCB"), V, 2)
    with pytest.raises(ValueError, match=r"attention: attention_mask must be NumKeys x NumQueries = 5 x 3 or .*"
                                         r"5 x 3 x 2, got shape \(3, 5\)"):
        symdl.attention(Qf, K, V, 2, attention_mask=np.ones((3, 5)))
    with pytest.raises(ValueError, match="attention: attention_mask must be 'none', 'causal' or an array"):
        symdl.attention(Qf, K, V, 2, attention_mask="upper")
    with pytest.raises(ValueError, match=r"attention: padding_mask must match the keys .*NumKeys 5, "
                                         r"NumObservations 2.*got shape \(1, 2, 4\)"):
        symdl.attention(Qf, K, V, 2, padding_mask=np.ones((1, 2, 4)))
    with pytest.raises(ValueError, match="attention: padding_mask must have the layout of the queries"):
        symdl.attention(Qf, K, V, 2, padding_mask=np.ones((2, 5)))
    with pytest.raises(ValueError, match="attention: queries must be a formatted dlarray .* or give their labels"):
        symdl.attention(Q, K, V, 2)
    with pytest.raises(ValueError, match="attention: queries must have a 'C' dimension, at most one 'S' or 'T'"):
        symdl.attention(symdl.dlarray(np.zeros((2, 4, 2, 3)), "SCBT"), K, V, 2)
    with pytest.raises(ValueError, match="attention: dropout_probability must be in"):
        symdl.attention(Qf, K, V, 2, dropout_probability=1.0)
    with pytest.raises(ValueError, match="attention: scale must be 'auto'"):
        symdl.attention(Qf, K, V, 2, scale="big")
    with pytest.raises(TypeError, match="attention: values must be a dlarray or a real numeric array"):
        symdl.attention(Qf, K, "v", 2)


def test_against_pytorch_when_installed():
    torch = pytest.importorskip("torch", reason="PyTorch is an optional second reference (not in the test extra)")
    C, Cv, B, Nq, Nk, heads = 6, 4, 2, 3, 5, 2
    Q, K, V = qkv(C, Cv, B, Nq, Nk)
    A = RNG.random((Nk, Nq)) > 0.4
    A[0] = True

    def per_head(x, d):                     # C x B x N -> B x heads x N x d
        return torch.tensor(x.reshape(heads, d, B, -1).transpose(2, 0, 3, 1))
    y = torch.nn.functional.scaled_dot_product_attention(per_head(Q, C // heads), per_head(K, C // heads),
                                                         per_head(V, Cv // heads), attn_mask=torch.tensor(A.T))
    Y, _ = symdl.attention(symdl.dlarray(Q, "CBT"), K, V, heads, attention_mask=A)
    np.testing.assert_allclose(data(Y), y.numpy().transpose(1, 3, 0, 2).reshape(Cv, B, Nq), rtol=1e-10, atol=1e-12)


def test_masks_as_traced_arguments_are_never_frozen_into_a_trace():
    Q, K, V = qkv(2, 2, 1, 3, 3)

    def f(q, mask):
        Y, _ = symdl.attention(symdl.dlarray(q, "CBT"), K, V, 1, attention_mask=mask)
        return Y
    accelerated = symdl.dlaccelerate(f)
    for _ in range(2):
        A = RNG.random((3, 3)) > 0.5
        A[0] = True
        Y = symdl.dlfeval(accelerated, symdl.dlarray(Q), symdl.dlarray(A.astype(float)))
        assert_close(data(Y), attention_ref(Q, K, V, 1, keep=A[:, :, None])[0], 1e-12, 1e-12, "mask argument")
    assert accelerated.hit_rate == 50


def test_bad_format_strings_name_data_format():
    Q, K, V = qkv(2, 2, 1, 3, 3)
    with pytest.raises(ValueError, match="attention: data_format 'CBX' is not a valid format"):
        symdl.attention(Q, K, V, 1, data_format="CBX")
    with pytest.raises(ValueError, match="attention: data_format is only for unformatted queries"):
        symdl.attention(symdl.dlarray(Q, "CBT"), K, V, 1, data_format="CBT")


def test_third_derivative_with_masks_against_differences_of_the_second():
    C, B, Nq, Nk = 2, 1, 2, 3
    sizes = [C * B * Nq, C * B * Nk, C * B * Nk]
    theta = RNG.standard_normal(sum(sizes))
    u = RNG.standard_normal(theta.shape)
    pad = np.ones((1, B, Nk))
    pad[0, 0, 2] = 0                                      # a masked key: -inf inside the softmax

    def model(t):
        q = symdl.reshape(t[:sizes[0]], (C, B, Nq))
        k = symdl.reshape(t[sizes[0]:sizes[0] + sizes[1]], (C, B, Nk))
        v = symdl.reshape(t[sizes[0] + sizes[1]:], (C, B, Nk))
        Y, _ = symdl.attention(symdl.dlarray(q, "CBT"), k, v, 1, padding_mask=pad, attention_mask="causal")
        return symdl.sum(symdl.stripdims(Y) ** 2)

    def third(t):
        g = symdl.dlgradient(model(t), t, enable_higher_derivatives=True)
        g2 = symdl.dlgradient(symdl.sum(g * u), t, enable_higher_derivatives=True)
        return symdl.dlgradient(symdl.sum(g2 * u), t)
    got = data(symdl.dlfeval(third, symdl.dlarray(theta)))
    hv = symdl.hvp(model)

    def q(t):
        return float(np.dot(np.asarray(hv(t, u)), u))
    want = np.zeros_like(theta)
    for j in range(theta.size):
        def d(h, j=j):
            tp, tm = theta.copy(), theta.copy()
            tp[j] += h
            tm[j] -= h
            return (q(tp) - q(tm)) / (2 * h)
        want[j] = (4 * d(5e-5) - d(1e-4)) / 3
    assert np.all(np.isfinite(got))
    assert_close(got, want, 1e-6, 1e-7, "third derivative")
    assert np.max(np.abs(want)) > 1e-3
