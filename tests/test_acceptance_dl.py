"""Acceptance tests of SPEC sections 4, 5, 6, 8 (deep-learning details) and
9.4, written from SPEC.md, SEEDS.md and MATLAB's documented behaviour.

Every expected value comes from a numpy reference written here (naive loops,
MATLAB's formulas), from scipy, or from central differences; derivatives of
the first and second order are checked against central differences of the
operation's own values (which are checked against the references).  float32
and float64 both: dtypes are kept, gradients included.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import symdl
from symdl import nn

E = symdl.extractdata
RNG = np.random.default_rng(20261201)


def rand(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def tol(dtype):
    return dict(rtol=2e-4, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- references

def np_conv(X, W, b, stride, pads, dil):
    """MATLAB's dlconv (cross-correlation) by loops: X spatial... x C x B,
    W filter... x C/G x F/G x G (or filter... x C x F)."""
    n = X.ndim - 2
    if W.ndim == n + 2:
        W = W[..., None]
    G, cg, fg = W.shape[-1], W.shape[n], W.shape[n + 1]
    Xp = np.pad(X.astype(np.float64), list(pads) + [(0, 0), (0, 0)])
    k = W.shape[:n]
    out = [(Xp.shape[i] - (k[i] - 1) * dil[i] - 1) // stride[i] + 1 for i in range(n)]
    Y = np.zeros(out + [fg * G, X.shape[-1]])
    for g in range(G):
        for pos in np.ndindex(*out):
            for off in np.ndindex(*k):
                idx = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, off, dil))
                Y[pos][g * fg:(g + 1) * fg] += W[off][:, :, g].T @ Xp[idx][g * cg:(g + 1) * cg]
    return Y + np.asarray(b, dtype=np.float64).reshape(-1, 1)


def np_pool(X, pool, stride, pads, kind):
    n = X.ndim - 2
    fill = -np.inf if kind == "max" else 0.0
    Xp = np.pad(X.astype(np.float64), list(pads) + [(0, 0), (0, 0)], constant_values=fill)
    out = [(Xp.shape[i] - pool[i]) // stride[i] + 1 for i in range(n)]
    Y = np.zeros(out + list(X.shape[n:]))
    for pos in np.ndindex(*out):
        window = Xp[tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, stride, pool))]
        flat = window.reshape(-1, *X.shape[n:])
        Y[pos] = flat.max(0) if kind == "max" else flat.mean(0)
    return Y


def same_pads(sizes, reach, stride):
    """MATLAB's 'same': output ceil(size / stride), the odd pad after."""
    pads = []
    for size, r, s in zip(sizes, reach, stride):
        total = max((-(-size // s) - 1) * s + r - size, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# ---------------------------------------------------------------- derivative checks

def fd_check(fun, args, fmts, dtype=np.float64, second=True, h=1e-5):
    """dlgradient of sum(fun(*args) * w) against central differences of the
    same sum, and (``second``) the Hessian-vector product against central
    differences of the gradient."""
    args = [a.astype(dtype) for a in args]

    def wrap(values):
        return [symdl.dlarray(v, f) if f else symdl.dlarray(v) for v, f in zip(values, fmts)]

    w = RNG.standard_normal(fun(*wrap(args)).shape)
    vs = [RNG.standard_normal(a.shape) for a in args]

    def loss(*xs):
        return symdl.sum(fun(*xs) * w.astype(dtype))

    def grads(*xs):
        g = symdl.dlgradient(loss(*xs), *xs, enable_higher_derivatives=second)
        g = g if isinstance(g, tuple) else (g,)
        if not second:
            return g, None
        inner = sum(symdl.sum(gi * v.astype(dtype)) for gi, v in zip(g, vs))
        h2 = symdl.dlgradient(inner, *xs)
        return g, (h2 if isinstance(h2, tuple) else (h2,))

    g, hv = symdl.dlfeval(grads, *wrap(args))
    for gi in g:
        assert E(gi).dtype == dtype, "gradients keep the dtype"
    x64 = [a.astype(np.float64) for a in args]

    def value(vals):
        return float(np.sum(E(fun(*[symdl.dlarray(v, f) if f else symdl.dlarray(v)
                                    for v, f in zip(vals, fmts)])) * w))

    def gradient(vals):
        out = symdl.dlfeval(lambda *xs: symdl.dlgradient(loss(*xs), *xs), *wrap(vals))
        return [E(o).astype(np.float64) for o in (out if isinstance(out, tuple) else (out,))]

    t = dict(rtol=2e-2, atol=2e-2) if dtype == np.float32 else dict(rtol=1e-5, atol=1e-6)
    if dtype == np.float64:
        for k, a in enumerate(x64):
            num = np.zeros_like(a)
            for i in np.ndindex(*a.shape):
                up = [x.copy() for x in x64]
                dn = [x.copy() for x in x64]
                up[k][i] += h
                dn[k][i] -= h
                num[i] = (value(up) - value(dn)) / (2 * h)
            np.testing.assert_allclose(E(g[k]), num, **t)
    if second:
        hh = 1e-4 if dtype == np.float64 else 1e-2
        up = gradient([x + hh * v for x, v in zip(x64, vs)] if dtype == np.float64 else
                      [(x + hh * v).astype(dtype) for x, v in zip(x64, vs)])
        dn = gradient([x - hh * v for x, v in zip(x64, vs)] if dtype == np.float64 else
                      [(x - hh * v).astype(dtype) for x, v in zip(x64, vs)])
        for k in range(len(args)):
            assert E(hv[k]).dtype == dtype
            np.testing.assert_allclose(E(hv[k]), (up[k] - dn[k]) / (2 * hh), **t)


# ---------------------------------------------------------------- dlconv

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_dlconv_matches_loops(nd, dtype):
    sizes = [7, 6, 5][:nd]
    kernel = [3, 2, 2][:nd]
    fmt = "S" * nd + "CB"
    for stride, padding, dil, groups in itertools.product((1, 2), (0, 1, "same", "dims", "pairs"), (1, 2),
                                                          (1, 2)):
        C, F = 4, 6
        X = rand(*sizes, C, 2, dtype=dtype)
        W = rand(*kernel, C, F, dtype=dtype) if groups == 1 else rand(*kernel, C // groups, F // groups, groups,
                                                                      dtype=dtype)
        b = rand(F, dtype=dtype)
        reach = [(k - 1) * dil + 1 for k in kernel]
        if padding == "same":
            pads, arg = same_pads(sizes, reach, [stride] * nd), "same"
        elif padding == "dims":              # MATLAB's [a b]: one int per spatial dimension
            arg = tuple(range(1, nd + 1))
            pads = [(p, p) for p in arg]
        elif padding == "pairs":
            arg = tuple((1, 0) if k % 2 else (0, 2) for k in range(nd))
            pads = list(arg)
        else:
            arg, pads = padding, [(padding, padding)] * nd
        Y = symdl.dlconv(symdl.dlarray(X, fmt), W, b, stride=stride, padding=arg, dilation=dil)
        ref = np_conv(X, W, b, [stride] * nd, pads, [dil] * nd)
        assert Y.fmt == fmt and E(Y).dtype == dtype
        np.testing.assert_allclose(E(Y), ref, **tol(dtype), err_msg=f"{stride} {padding} {dil} {groups}")


def test_dlconv_same_output_size_is_ceil_of_input_over_stride():
    X = symdl.dlarray(rand(7, 8, 2, 1), "SSCB")
    for stride in (1, 2, 3):
        Y = symdl.dlconv(X, rand(4, 3, 2, 5), 0.0, stride=stride, padding="same", dilation=2)
        assert Y.shape == (-(-7 // stride), -(-8 // stride), 5, 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dlconv_derivatives(dtype):
    X, W, b = rand(5, 4, 4, 2), rand(3, 2, 2, 3, 2), rand(6)
    fd_check(lambda x, w, c: symdl.dlconv(x, w, c, stride=2, padding="same"), [X, W, b], ["SSCB", None, None],
             dtype)


def test_dlconv_bad_arguments_name_themselves():
    X = symdl.dlarray(rand(5, 5, 3, 2), "SSCB")
    with pytest.raises(ValueError, match="3 channels"):
        symdl.dlconv(X, rand(3, 3, 4, 2), 0.0)
    with pytest.raises(TypeError, match="padding"):
        symdl.dlconv(X, rand(3, 3, 3, 2), 0.0, padding=1.5)
    with pytest.raises(ValueError, match="padding.*one int or .before, after. pair per spatial dimension .2."):
        symdl.dlconv(X, rand(3, 3, 3, 2), 0.0, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="bias must hold 2 values"):
        symdl.dlconv(X, rand(3, 3, 3, 2), np.ones(3))


# ---------------------------------------------------------------- dltranspconv

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dltranspconv_is_the_adjoint_of_dlconv(dtype):
    # SPEC/MATLAB: dltranspconv(Y, W, 0) is the transpose of dlconv(X, W, 0) with the same W
    for stride, dil, groups in itertools.product((1, 2, 3), (1, 2), (1, 2)):
        X = rand(7, 6, 4, 2, dtype=dtype)
        W = rand(3, 2, 4, 6, dtype=dtype) if groups == 1 else rand(3, 2, 2, 3, 2, dtype=dtype)
        Y = symdl.dlconv(symdl.dlarray(X, "SSCB"), W, 0.0, stride=stride, dilation=dil)
        V = rand(*Y.shape, dtype=dtype)
        Z = symdl.dltranspconv(symdl.dlarray(V, "SSCB"), W, 0.0, stride=stride, dilation=dil)
        # the transposed output stops at the last row a window reaches: rows of X beyond it
        # take no part in dlconv's result
        h, w = E(Z).shape[:2]
        assert h <= X.shape[0] and w <= X.shape[1] and X.shape[0] - h < stride and X.shape[1] - w < stride
        lhs = float(np.sum(E(Y).astype(np.float64) * V))
        rhs = float(np.sum(E(Z).astype(np.float64) * X[:h, :w]))
        assert E(Z).dtype == dtype
        assert abs(lhs - rhs) <= (1e-3 if dtype == np.float32 else 1e-9) * max(1.0, abs(lhs))


def test_dltranspconv_scatter_and_cropping():
    X = rand(3, 2, 2, 1)
    W = rand(3, 3, 4, 2)                 # filterH x filterW x numFilters x numChannels
    b = rand(4)
    full = np.zeros((2 * 2 + 3, 1 * 2 + 3, 4, 1))
    for i, j in np.ndindex(3, 2):
        for u, v in np.ndindex(3, 3):
            full[2 * i + u, 2 * j + v, :, 0] += W[u, v] @ X[i, j, :, 0]
    full += b.reshape(1, 1, 4, 1)
    Z = symdl.dltranspconv(symdl.dlarray(X, "SSCB"), W, b, stride=2, cropping=((1, 0), (0, 2)))
    np.testing.assert_allclose(E(Z), full[1:, :-2], rtol=1e-12, atol=1e-12)
    Zs = symdl.dltranspconv(symdl.dlarray(X, "SSCB"), W, b, stride=2, cropping="same")
    assert Zs.shape == (6, 4, 4, 1)      # stride * input
    np.testing.assert_allclose(E(Zs), full[0:6, 0:4], rtol=1e-12, atol=1e-12)   # crop 1 = 0 before, 1 after


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dltranspconv_derivatives(dtype):
    fd_check(lambda x, w: symdl.dltranspconv(x, w, 0.0, stride=2, cropping=1), [rand(3, 2, 2, 2), rand(3, 2, 3, 2)],
             ["SSCB", None], dtype)


# ---------------------------------------------------------------- pooling

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pooling_matches_loops(dtype):
    X = rand(7, 8, 3, 2, dtype=dtype)
    for pool, stride, padding in itertools.product((2, 3, (2, 3)), (1, 2, 3), (0, 1, "same", (1, 0), ((0, 1), (1, 0)))):
        ps = pool if isinstance(pool, tuple) else (pool, pool)
        if padding == "same":
            pads = same_pads(X.shape[:2], ps, (stride, stride))
        elif isinstance(padding, int):
            pads = [(padding, padding)] * 2
        elif isinstance(padding[0], int):
            pads = [(p, p) for p in padding]
        else:
            pads = list(padding)
        for kind, fn in (("max", symdl.maxpool), ("avg", symdl.avgpool)):
            Y = fn(symdl.dlarray(X, "SSCB"), pool, stride=stride, padding=padding)
            assert Y.fmt == "SSCB" and E(Y).dtype == dtype
            np.testing.assert_allclose(E(Y), np_pool(X, ps, (stride, stride), pads, kind), **tol(dtype),
                                       err_msg=f"{kind} {pool} {stride} {padding}")


def test_pooling_1d_and_3d():
    X = rand(9, 2, 3)
    np.testing.assert_allclose(E(symdl.maxpool(symdl.dlarray(X, "SCB"), 3, stride=2)),
                               np_pool(X, (3,), (2,), [(0, 0)], "max"))
    X = rand(4, 5, 3, 2, 2)
    np.testing.assert_allclose(E(symdl.avgpool(symdl.dlarray(X, "SSSCB"), 2, stride=(2, 1, 1), padding=1)),
                               np_pool(X, (2, 2, 2), (2, 1, 1), [(1, 1)] * 3, "avg"), rtol=1e-12)


def test_maxpool_indices_and_maxunpool():
    X = rand(6, 6, 2, 2)
    Y, idx, size = symdl.maxpool(symdl.dlarray(X, "SSCB"), 3, stride=2, padding=1, return_indices=True)
    assert size == X.shape
    # every index points at its window's maximum
    np.testing.assert_array_equal(X.ravel()[idx], E(Y))
    U = symdl.maxunpool(Y, idx, size)
    ref = np.zeros(X.size)
    np.add.at(ref, idx.ravel(), E(Y).ravel())         # overlapping windows add up
    np.testing.assert_allclose(E(U), ref.reshape(X.shape))
    # ties: the first maximum of the window
    T = np.zeros((2, 2, 1, 1))
    T[0, 1] = T[1, 0] = 1.0
    _, i, _ = symdl.maxpool(symdl.dlarray(T, "SSCB"), 2, return_indices=True)
    assert int(i.ravel()[0]) == np.ravel_multi_index((0, 1, 0, 0), T.shape)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pooling_derivatives(dtype):
    fd_check(lambda x: symdl.maxpool(x, 3, stride=2, padding=1), [rand(5, 5, 2, 1)], ["SSCB"], dtype)
    fd_check(lambda x: symdl.avgpool(x, 2, stride=1, padding="same"), [rand(4, 3, 2, 1)], ["SSCB"], dtype)
    fd_check(lambda y: symdl.maxunpool(y, np.array([[[[0]]], [[[3]]]]), (2, 2, 1, 1)), [rand(2, 1, 1, 1)],
             ["SSCB"], dtype)


# ---------------------------------------------------------------- normalisations

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batchnorm_training_inference_and_running_statistics(dtype):
    X = (rand(3, 4, 3, 5) * 2 + 1).astype(dtype)
    off, sc = rand(3, dtype=dtype), rand(3, dtype=dtype)
    mu, var = X.mean(axis=(0, 1, 3)), X.var(axis=(0, 1, 3))        # biased, as MATLAB
    ref = (X - mu.reshape(1, 1, 3, 1)) / np.sqrt(var.reshape(1, 1, 3, 1) + 1e-5) * sc.reshape(1, 1, 3, 1) + \
        off.reshape(1, 1, 3, 1)
    Y, m, v = symdl.batchnorm(symdl.dlarray(X, "SSCB"), off, sc)
    assert Y.fmt == "SSCB" and E(Y).dtype == dtype and E(m).shape == (3, 1)
    np.testing.assert_allclose(E(Y), ref, **tol(dtype))
    np.testing.assert_allclose(E(m).ravel(), mu, **tol(dtype))
    np.testing.assert_allclose(E(v).ravel(), var, **tol(dtype))
    rm, rv = rand(3, dtype=dtype), (np.abs(rand(3)) + 0.5).astype(dtype)
    Y2, m2, v2 = symdl.batchnorm(symdl.dlarray(X, "SSCB"), off, sc, rm, rv, training=True)
    np.testing.assert_allclose(E(Y2), ref, **tol(dtype))
    np.testing.assert_allclose(E(m2).ravel(), 0.1 * mu + 0.9 * rm, **tol(dtype))        # decay 0.1
    np.testing.assert_allclose(E(v2).ravel(), 0.1 * var + 0.9 * rv, **tol(dtype))
    Yi = symdl.batchnorm(symdl.dlarray(X, "SSCB"), off, sc, rm, rv)
    refi = (X - rm.reshape(1, 1, 3, 1)) / np.sqrt(rv.reshape(1, 1, 3, 1) + 1e-5) * sc.reshape(1, 1, 3, 1) + \
        off.reshape(1, 1, 3, 1)
    np.testing.assert_allclose(E(Yi), refi, **tol(dtype))


def test_layer_group_instance_norm_and_crosschannelnorm():
    X = rand(3, 4, 6, 2)
    off, sc = rand(6), rand(6)
    o, s = off.reshape(1, 1, 6, 1), sc.reshape(1, 1, 6, 1)

    def normed(x, axes):
        return (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + 1e-5)

    np.testing.assert_allclose(E(symdl.layernorm(symdl.dlarray(X, "SSCB"), off, sc)),
                               normed(X, (0, 1, 2)) * s + o, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(E(symdl.instancenorm(symdl.dlarray(X, "SSCB"), off, sc)),
                               normed(X, (0, 1)) * s + o, rtol=1e-10, atol=1e-10)
    grouped = normed(X.reshape(3, 4, 3, 2, 2), (0, 1, 3)).reshape(X.shape)
    np.testing.assert_allclose(E(symdl.groupnorm(symdl.dlarray(X, "SSCB"), 3, off, sc)), grouped * s + o,
                               rtol=1e-10, atol=1e-10)
    # layernorm of 'CBT': each observation and time step over its channels
    S = rand(5, 2, 3)
    np.testing.assert_allclose(E(symdl.layernorm(symdl.dlarray(S, "CBT"), np.zeros(5), np.ones(5))),
                               normed(S, (0,)), rtol=1e-10, atol=1e-10)
    # crosschannelnorm: x / (k + alpha * ss / n)^beta, window floor((n-1)/2) before and the rest after
    for n in (3, 4, 5):
        ss = np.zeros_like(X)
        for c in range(6):
            lo, hi = max(0, c - (n - 1) // 2), min(6, c + n - 1 - (n - 1) // 2 + 1)
            ss[:, :, c] = (X[:, :, lo:hi] ** 2).sum(axis=2)
        np.testing.assert_allclose(E(symdl.crosschannelnorm(symdl.dlarray(X, "SSCB"), n, alpha=0.1, beta=0.75,
                                                            k=1.5)),
                                   X / (1.5 + 0.1 * ss / n) ** 0.75, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_normalisation_derivatives(dtype):
    fd_check(lambda x, o, s: symdl.batchnorm(x, o, s)[0], [rand(2, 2, 3, 3), rand(3), rand(3)],
             ["SSCB", None, None], dtype)
    fd_check(lambda x: symdl.groupnorm(x, 2, np.ones(4, dtype), np.zeros(4, dtype)), [rand(3, 4, 2)], ["SCB"], dtype)
    fd_check(lambda x: symdl.crosschannelnorm(x, 3, alpha=0.5, beta=0.75, k=1.0), [rand(4, 3)], ["CB"], dtype)


# ---------------------------------------------------------------- activations and losses

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activations(dtype):
    from math import erf
    x = (rand(4, 6) * 3).astype(dtype)
    X = symdl.dlarray(x, "CB")
    erf_v = np.vectorize(erf)
    refs = {
        "relu": (symdl.relu(X), np.maximum(x, 0)),
        "leakyrelu": (symdl.leakyrelu(X), np.where(x > 0, x, 0.01 * x)),         # MATLAB's default scale
        "elu": (symdl.elu(X, 0.7), np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
        "gelu": (symdl.gelu(X), x / 2 * (1 + erf_v(x / np.sqrt(2)))),
        "gelu-tanh": (symdl.gelu(X, "tanh"), x / 2 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
        "sigmoid": (symdl.sigmoid(X), sigmoid(x)),
        "tanh": (symdl.tanh(X), np.tanh(x)),
        "softmax": (symdl.softmax(X), np.exp(x) / np.exp(x).sum(0)),            # over 'C'
    }
    for name, (got, ref) in refs.items():
        assert E(got).dtype == dtype, name
        assert got.fmt == "CB", name
        np.testing.assert_allclose(E(got), ref, **tol(dtype), err_msg=name)
    # softmax over 'C' wherever C sits in the format
    Z = symdl.softmax(symdl.dlarray(x.T.copy(), "BC"))
    np.testing.assert_allclose(E(Z), np.exp(x) / np.exp(x).sum(0), **tol(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_activation_derivatives(dtype):
    r = rand(3, 4)
    away = np.sign(r) * (np.abs(r) + 0.2)       # differences must not step across the kinks at 0
    for fn in (symdl.gelu, symdl.elu, symdl.softmax, lambda x: symdl.leakyrelu(x, 0.2)):
        fd_check(fn, [away], ["CB"], dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_losses_follow_matlab(dtype):
    Y, T = (np.abs(rand(5, 7)) + 0.1).astype(dtype), np.abs(rand(5, 7)).astype(dtype)
    P = Y / Y.sum(0)
    N = 7
    cases = {
        "crossentropy": (symdl.crossentropy(symdl.dlarray(P, "CB"), T), -(T * np.log(P)).sum() / N),
        "mse": (symdl.mse(symdl.dlarray(Y, "CB"), T), ((Y - T) ** 2).sum() / 2 / N),      # half MSE
        "l2loss": (symdl.l2loss(symdl.dlarray(Y, "CB"), T), ((Y - T) ** 2).sum() / N),
        "l1loss": (symdl.l1loss(symdl.dlarray(Y, "CB"), T), np.abs(Y - T).sum() / N),
        "huber": (symdl.huber(symdl.dlarray(Y * 3, "CB"), T),
                  np.where(np.abs(3 * Y - T) <= 1, (3 * Y - T) ** 2 / 2, np.abs(3 * Y - T) - 0.5).sum() / N),
        "mse-all": (symdl.mse(symdl.dlarray(Y, "CB"), T, normalization="all-elements"), ((Y - T) ** 2).sum() / 2 / 35),
    }
    for name, (got, ref) in cases.items():
        assert E(got).dtype == dtype and E(got).shape == (), name
        np.testing.assert_allclose(float(got), ref, **tol(dtype), err_msg=name)
    # sequences: the sum over time steps, divided by the observations only
    S, U = np.abs(rand(4, 2, 3)) + 0.1, np.abs(rand(4, 2, 3))
    np.testing.assert_allclose(float(symdl.crossentropy(symdl.dlarray(S, "CBT"), U)), -(U * np.log(S)).sum() / 2)
    # crossentropy of a softmax of huge logits stays finite (computed from the logits)
    L = symdl.dlarray(np.array([[1000.0, 0.0], [0.0, 1000.0]]), "CB")
    assert float(symdl.crossentropy(symdl.softmax(L), np.array([[0.0, 1.0], [1.0, 0.0]]))) == pytest.approx(1000.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_loss_derivatives(dtype):
    T = np.abs(rand(4, 3))
    T /= T.sum(0)
    fd_check(lambda x: symdl.crossentropy(symdl.softmax(x), T.astype(x.dtype)), [rand(4, 3)], ["CB"], dtype)
    fd_check(lambda x: symdl.huber(x, T.astype(x.dtype), transition_point=0.5), [rand(4, 3)], ["CB"], dtype)
    fd_check(lambda x: symdl.mse(x, T.astype(x.dtype)), [rand(4, 3)], ["CB"], dtype)


def test_losses_refuse_mismatches():
    Y = symdl.dlarray(np.full((3, 4), 0.3), "CB")
    with pytest.raises(ValueError, match="targets must have the shape of Y"):
        symdl.crossentropy(Y, np.ones((3, 5)))
    with pytest.raises(ValueError, match="no format"):
        symdl.mse(symdl.dlarray(np.ones((3, 4))), np.ones((3, 4)))


# ---------------------------------------------------------------- fullyconnect, embed, one-hot, dropout

def test_fullyconnect_layouts():
    X = rand(2, 3, 4, 5)
    W, b = rand(6, 24), rand(6)
    Y = symdl.fullyconnect(symdl.dlarray(X, "SSCB"), W, b)
    assert Y.fmt == "CB"
    # the non-batch dimensions of each observation flattened in C order (SPEC 8)
    np.testing.assert_allclose(E(Y), W @ np.moveaxis(X, 3, 0).reshape(5, 24).T + b.reshape(6, 1), rtol=1e-12)
    S, V = rand(4, 2, 3), rand(5, 4)
    Z = symdl.fullyconnect(symdl.dlarray(S, "CBT"), V, np.zeros((5, 1)))
    assert Z.fmt == "CBT"
    np.testing.assert_allclose(E(Z), np.einsum("oc,cbt->obt", V, S), rtol=1e-12)


def test_embed_onehot_roundtrip():
    W = rand(3, 6)
    idx = np.array([[1, 5, 0], [2, 2, 4]])            # B x T
    Y = symdl.embed(idx, W)
    assert Y.fmt == "CBT" and Y.shape == (3, 2, 3)
    np.testing.assert_allclose(E(Y), W[:, idx], rtol=0)
    g = symdl.dlfeval(lambda w: symdl.dlgradient(symdl.sum(symdl.embed(idx, w) ** 2), w), symdl.dlarray(W))
    counts = np.bincount(idx.ravel(), minlength=6)
    np.testing.assert_allclose(E(g), 2 * W * counts, rtol=1e-12)
    with pytest.raises(ValueError, match="0..5"):
        symdl.embed(np.array([6]), W)
    labels = np.array(["cat", "dog", "cat", "bird"])
    H = symdl.onehotencode(labels)
    assert H.fmt == "CB"
    np.testing.assert_array_equal(E(H), (np.unique(labels)[:, None] == labels[None, :]).astype(float))
    np.testing.assert_array_equal(symdl.onehotdecode(H, np.unique(labels)), labels)
    np.testing.assert_array_equal(symdl.onehotdecode(symdl.dlarray(E(H).T.copy(), "BC"), np.unique(labels)), labels)


def test_dropout_fresh_masks_under_dlaccelerate_and_matching_gradient():
    def step(x):
        y = symdl.dropout(x, 0.5)
        return y, symdl.dlgradient(symdl.sum(y * y), x)

    acc = symdl.dlaccelerate(step)
    x = symdl.dlarray(np.arange(1.0, 201.0, dtype=np.float32))
    (y1, g1), (y2, g2) = symdl.dlfeval(acc, x), symdl.dlfeval(acc, x)
    assert acc.hit_rate == 50.0                       # the second call reused the trace
    assert (E(y1) != E(y2)).any()                      # ... with a fresh mask
    for y, g in ((y1, g1), (y2, g2)):
        kept = E(y) != 0
        np.testing.assert_allclose(E(y)[kept], 2 * E(x)[kept], rtol=1e-6)       # scaled by 1 / (1 - p)
        np.testing.assert_allclose(E(g), np.where(kept, 2 * E(y) * 2, 0), rtol=1e-6)
        assert E(g).dtype == np.float32


# ---------------------------------------------------------------- recurrent

def np_lstm(X, h, c, W, R, b):
    H = R.shape[1]
    out = []
    for t in range(X.shape[2]):
        z = W @ X[:, :, t] + R @ h + b.reshape(-1, 1)
        i, f, g, o = sigmoid(z[:H]), sigmoid(z[H:2 * H]), np.tanh(z[2 * H:3 * H]), sigmoid(z[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out.append(h)
    return np.stack(out, 2), h, c


def np_gru(X, h, W, R, b, mode):
    H = R.shape[1]
    bR = b[3 * H:].reshape(-1, 1) if mode == "recurrent-bias-after-multiplication" else np.zeros((3 * H, 1))
    b = b[:3 * H].reshape(-1, 1)
    out = []
    for t in range(X.shape[2]):
        x = W @ X[:, :, t] + b
        zh = R @ h + bR
        r, z = sigmoid(x[:H] + zh[:H]), sigmoid(x[H:2 * H] + zh[H:2 * H])
        if mode == "before-multiplication":
            cand = np.tanh(x[2 * H:] + R[2 * H:] @ (r * h))
        else:
            cand = np.tanh(x[2 * H:] + r * zh[2 * H:])
        h = (1 - z) * cand + z * h
        out.append(h)
    return np.stack(out, 2), h


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_and_gru_in_matlab_gate_order(dtype):
    D, H, N, T = 3, 4, 2, 5
    X = rand(D, N, T, dtype=dtype)
    h0, c0 = rand(H, N, dtype=dtype), rand(H, N, dtype=dtype)
    W, R, b = rand(4 * H, D, dtype=dtype), rand(4 * H, H, dtype=dtype), rand(4 * H, dtype=dtype)
    Y, h, c = symdl.lstm(symdl.dlarray(X, "CBT"), h0, c0, W, R, b)
    rY, rh, rc = np_lstm(*(a.astype(np.float64) for a in (X, h0, c0, W, R, b)))
    assert Y.fmt == "CBT" and E(Y).dtype == dtype
    for got, ref in ((Y, rY), (h, rh), (c, rc)):
        np.testing.assert_allclose(E(got), ref, **tol(dtype))
    for mode, nb in (("after-multiplication", 3), ("before-multiplication", 3),
                     ("recurrent-bias-after-multiplication", 6)):
        Wg, Rg, bg = rand(3 * H, D, dtype=dtype), rand(3 * H, H, dtype=dtype), rand(nb * H, dtype=dtype)
        Yg, hg = symdl.gru(symdl.dlarray(X, "CBT"), h0, Wg, Rg, bg, reset_gate_mode=mode)
        rY, rh = np_gru(*(a.astype(np.float64) for a in (X, h0, Wg, Rg, bg)), mode)
        np.testing.assert_allclose(E(Yg), rY, **tol(dtype), err_msg=mode)
        np.testing.assert_allclose(E(hg), rh, **tol(dtype), err_msg=mode)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_recurrent_derivatives(dtype):
    D, H = 2, 2
    fd_check(lambda x, w, r: symdl.lstm(x, np.zeros(H, x.dtype), np.zeros(H, x.dtype), w, r,
                                        np.arange(4 * H, dtype=x.dtype) * 0.1)[0],
             [rand(D, 2, 3), rand(4 * H, D) * 0.5, rand(4 * H, H) * 0.5], ["CBT", None, None], dtype)
    fd_check(lambda x, w: symdl.gru(x, np.zeros(H, x.dtype), w, np.eye(3 * H, H, dtype=x.dtype),
                                    np.zeros(3 * H, x.dtype))[0],
             [rand(D, 2, 3), rand(3 * H, D) * 0.5], ["CBT", None], dtype)


# ---------------------------------------------------------------- attention and interp1

def np_attention(Q, K, V, heads, scale, keep=None):
    """Q: C x B x Nq; per head and observation softmax over keys of scale K'Q."""
    C, B, Nq = Q.shape
    Cv, Nk = V.shape[0], K.shape[2]
    dq, dv = C // heads, Cv // heads
    Y = np.zeros((Cv, B, Nq))
    Wts = np.zeros((Nk, Nq, heads, B))
    for hd, b in itertools.product(range(heads), range(B)):
        q, k, v = Q[hd * dq:(hd + 1) * dq, b], K[hd * dq:(hd + 1) * dq, b], V[hd * dv:(hd + 1) * dv, b]
        s = scale * k.T @ q
        if keep is not None:
            s = np.where(keep[b], s, -np.inf)
        w = np.exp(s - s.max(0))
        w /= w.sum(0)
        Wts[:, :, hd, b] = w
        Y[hd * dv:(hd + 1) * dv, b] = v @ w
    return Y, Wts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_attention_heads_masks_scale(dtype):
    Q, K, V = rand(4, 2, 3, dtype=dtype), rand(4, 2, 5, dtype=dtype), rand(6, 2, 5, dtype=dtype)
    Y, W = symdl.attention(symdl.dlarray(Q, "CBT"), K, V, 2)
    rY, rW = np_attention(Q.astype(float), K.astype(float), V.astype(float), 2, 1 / np.sqrt(2))
    assert Y.fmt == "CBT" and W.shape == (5, 3, 2, 2) and E(Y).dtype == dtype
    np.testing.assert_allclose(E(Y), rY, **tol(dtype))
    np.testing.assert_allclose(E(W), rW, **tol(dtype))
    pm = np.ones((4, 2, 5))
    pm[:, 1, 3:] = 0                                   # observation 1 has 3 real keys
    keep = np.ones((2, 5, 3), bool)
    keep[1, 3:] = False
    Y, _ = symdl.attention(symdl.dlarray(Q, "CBT"), K, V, 2, scale=0.3, padding_mask=pm)
    np.testing.assert_allclose(E(Y), np_attention(Q.astype(float), K.astype(float), V.astype(float), 2, 0.3, keep)[0],
                               **tol(dtype))
    causal = np.arange(3)[:, None] <= np.arange(3)[None, :]
    Y, _ = symdl.attention(symdl.dlarray(Q, "CBT"), K[:, :, :3], V[:, :, :3], 1, attention_mask="causal")
    ref = np_attention(Q.astype(float), K[:, :, :3].astype(float), V[:, :, :3].astype(float), 1, 0.5,
                       np.stack([causal, causal]))[0]
    np.testing.assert_allclose(E(Y), ref, **tol(dtype))


def test_attention_derivatives():
    fd_check(lambda q, k, v: symdl.attention(q, k, v, 2, padding_mask=np.array([[[1, 1, 0]], [[1, 1, 1]]])
                                             .reshape(1, 2, 3).repeat(2, 0))[0],
             [rand(2, 2, 2), rand(2, 2, 3), rand(2, 2, 3)], ["CBT", "CBT", "CBT"])


def test_interp1_methods_match_scipy_and_matlab():
    from scipy import interpolate as si
    x = np.sort(RNG.random(7)) * 5
    v = rand(7)
    xq = np.concatenate([np.linspace(x[0], x[-1], 17), [x[0] - 1, x[-1] + 1]])
    inside = slice(0, 17)
    refs = {
        "linear": np.interp(xq[inside], x, v),
        "previous": si.interp1d(x, v, kind="previous")(xq[inside]),
        "next": si.interp1d(x, v, kind="next")(xq[inside]),
        "pchip": si.PchipInterpolator(x, v)(xq),
        "spline": si.CubicSpline(x, v, bc_type="not-a-knot")(xq),
    }
    for method, ref in refs.items():
        got = E(symdl.interp1(x, v, xq, method))
        if method in ("pchip", "spline"):           # MATLAB extrapolates these two
            np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12, err_msg=method)
        else:                                        # and gives NaN outside for the others
            np.testing.assert_allclose(got[inside], ref, rtol=1e-10, atol=1e-12, err_msg=method)
            assert np.isnan(got[17:]).all(), method
    # 'nearest': a query half-way takes the later sample (MATLAB rounds up)
    got = E(symdl.interp1(np.array([0.0, 1.0, 2.0]), np.array([0.0, 10.0, 20.0]), np.array([0.5, 1.5, 1.2]),
                          "nearest"))
    np.testing.assert_array_equal(got, [10.0, 20.0, 10.0])


@pytest.mark.parametrize("method", ["linear", "pchip", "spline"])
def test_interp1_derivatives_in_v_and_xq(method):
    x = np.array([0.0, 0.7, 1.5, 2.2, 3.0])
    fd_check(lambda v, q: symdl.interp1(x, v, q, method), [rand(5), np.array([0.3, 1.1, 2.6])], [None, None])


# ---------------------------------------------------------------- optimisers (SPEC 5)

def test_optimisers_follow_matlab_formulas_with_none_state_and_nested_params():
    p = {"w": [rand(3), {"b": rand(2, 2).astype(np.float32)}]}
    g = {"w": [rand(3), {"b": rand(2, 2).astype(np.float32)}]}
    P = {"w": [symdl.dlarray(p["w"][0]), {"b": symdl.dlarray(p["w"][1]["b"])}]}
    G = {"w": [symdl.dlarray(g["w"][0]), {"b": symdl.dlarray(g["w"][1]["b"])}]}
    leaves = lambda t: [t["w"][0], t["w"][1]["b"]]              # noqa: E731

    # sgdm: v = momentum v - lr g; p = p + v
    p1, v1 = symdl.sgdmupdate(P, G, None, learn_rate=0.1, momentum=0.8)
    p2, v2 = symdl.sgdmupdate(p1, G, v1, learn_rate=0.1, momentum=0.8)
    for got, x, gg in zip(leaves(p2), leaves(p), leaves(g)):
        v = -0.1 * gg
        v = 0.8 * v - 0.1 * gg
        np.testing.assert_allclose(E(got), x - 0.1 * gg + v, rtol=1e-5)
        assert E(got).dtype == x.dtype
    # adam with bias correction, iteration counted from 1
    q, m, s = P, None, None
    ref = [x.astype(np.float64) for x in leaves(p)]
    M = [0 * r for r in ref]
    S = [0 * r for r in ref]
    for it in (1, 2, 3):
        q, m, s = symdl.adamupdate(q, G, m, s, it, learn_rate=0.01, grad_decay=0.8, sq_grad_decay=0.99,
                                   epsilon=1e-6)
        for k, gg in enumerate(leaves(g)):
            M[k] = 0.8 * M[k] + 0.2 * gg
            S[k] = 0.99 * S[k] + 0.01 * gg ** 2
            ref[k] = ref[k] - 0.01 * (M[k] / (1 - 0.8 ** it)) / (np.sqrt(S[k] / (1 - 0.99 ** it)) + 1e-6)
    for got, r in zip(leaves(q), ref):
        np.testing.assert_allclose(E(got), r, rtol=1e-5)
    # rmsprop
    r1, a1 = symdl.rmspropupdate(P, G, None, learn_rate=0.01, sq_grad_decay=0.9, epsilon=1e-8)
    for got, x, gg in zip(leaves(r1), leaves(p), leaves(g)):
        np.testing.assert_allclose(E(got), x - 0.01 * gg / (np.sqrt(0.1 * gg ** 2) + 1e-8), rtol=1e-5)
    # dlupdate: any function, the same structure
    half = symdl.dlupdate(lambda a, b: a - 0.5 * b, P, G)
    for got, x, gg in zip(leaves(half), leaves(p), leaves(g)):
        np.testing.assert_allclose(E(got), x - 0.5 * gg, rtol=1e-6)
    with pytest.raises(ValueError, match=r"grad\['w'\]\[0\] has shape"):
        symdl.sgdmupdate(P, {"w": [symdl.dlarray(np.ones(4)), G["w"][1]]}, None)


def test_adam_on_a_dlnetwork_inside_dlaccelerate_matches_the_formula():
    symdl.seed(3)
    net = nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(4), nn.tanh_layer(),
                        nn.fully_connected_layer(2)], dtype="float64")
    X = symdl.dlarray(rand(3, 8), "CB")
    T = symdl.dlarray(rand(2, 8), "CB")

    def step(net, X, T, m, v, it):
        loss = symdl.mse(nn.predict(net, X), T)
        g = symdl.dlgradient(loss, net)
        net, m, v = symdl.adamupdate(net, g, m, v, it, learn_rate=0.01)
        return net, m, v, g

    acc = symdl.dlaccelerate(step)
    ref = {k: {p: E(a) for p, a in d.items()} for k, d in net.learnables.items()}
    M = {k: {p: 0 * a for p, a in d.items()} for k, d in ref.items()}
    S = {k: {p: 0 * a for p, a in d.items()} for k, d in ref.items()}
    m = v = None
    for it in range(1, 5):
        before = net
        net, m, v, g = symdl.dlfeval(acc, net, X, T, m, v, symdl.dlarray(float(it)))
        # the gradient the step used, recomputed uncompiled at the parameters it started from
        g0 = symdl.dlfeval(lambda n, x, t: symdl.dlgradient(symdl.mse(nn.predict(n, x), t), n), before, X, T)
        for k in ref:
            for p in ref[k]:
                gg = E(g0[k][p])
                np.testing.assert_allclose(E(g[k][p]), gg, rtol=1e-10, atol=1e-12)
                M[k][p] = 0.9 * M[k][p] + 0.1 * gg
                S[k][p] = 0.999 * S[k][p] + 0.001 * gg ** 2
                ref[k][p] = ref[k][p] - 0.01 * (M[k][p] / (1 - 0.9 ** it)) / (np.sqrt(S[k][p] / (1 - 0.999 ** it))
                                                                             + 1e-8)
    assert isinstance(net, nn.dlnetwork) and isinstance(m, dict) and set(m) == set(ref)
    for k in ref:
        for p in ref[k]:
            np.testing.assert_allclose(E(net.learnables[k][p]), ref[k][p], rtol=1e-9, atol=1e-12)
    assert acc.hit_rate == 50.0       # state None on the first call, then one trace for iterations 2..4


# ---------------------------------------------------------------- networks (SPEC 6)

def test_every_layer_builds_and_runs_in_a_network():
    symdl.seed(0)
    image = [nn.image_input_layer((8, 8, 3)), nn.convolution2d_layer(3, 4, padding="same"),
             nn.batch_normalization_layer(), nn.relu_layer(), nn.max_pooling2d_layer(2, stride=2),
             nn.convolution2d_layer(3, 4, stride=2, padding=(1, 1, 0, 1)), nn.layer_normalization_layer(),
             nn.leaky_relu_layer(), nn.elu_layer(), nn.gelu_layer(), nn.tanh_layer(), nn.sigmoid_layer(),
             nn.average_pooling2d_layer(2, padding=(1, 0)), nn.transposed_convolution2d_layer(2, 3, stride=2),
             nn.dropout_layer(0.3), nn.flatten_layer(), nn.fully_connected_layer(5), nn.softmax_layer()]
    net = nn.dlnetwork(image)
    X = rand(8, 8, 3, 4)
    Y, state = nn.forward(net, X)
    assert Y.fmt == "CB" and Y.shape == (5, 4) and E(Y).dtype == np.float32        # MATLAB's single
    np.testing.assert_allclose(E(Y).sum(0), 1, rtol=1e-5)
    assert set(state) == {"batchnorm"}
    sequence = [nn.sequence_input_layer(1, min_length=3), nn.embedding_layer(4, 10),
                nn.convolution1d_layer(2, 4, padding=(1, 0)), nn.lstm_layer(5), nn.gru_layer(3, output_mode="last"),
                nn.fully_connected_layer(2)]
    net = nn.dlnetwork(sequence, dtype="float64")
    Y = nn.predict(net, RNG.integers(0, 10, (1, 2, 6)).astype(float))
    assert Y.fmt == "CB" and Y.shape == (2, 2)
    names = [layer.name for layer in net.layers]
    assert names == ["sequenceinput", "embedding", "conv", "lstm", "gru", "fc"]


def test_network_layers_compose_as_the_functional_operations():
    symdl.seed(1)
    net = nn.dlnetwork([nn.image_input_layer((5, 5, 2), normalization="none"),
                        nn.convolution2d_layer(3, 3, padding=(1, 2, 0, 1), stride=(1, 2)),
                        nn.batch_normalization_layer(), nn.relu_layer(),
                        nn.max_pooling2d_layer(2, padding=(0, 1, 1, 0)), nn.fully_connected_layer(2)],
                       dtype="float64")
    L = net.learnables
    X = rand(5, 5, 2, 3)
    W, b = E(L["conv"]["weights"]), E(L["conv"]["bias"]).ravel()
    h = np_conv(X, W, b, (1, 2), [(1, 2), (0, 1)], (1, 1))
    mu, var = h.mean(axis=(0, 1, 3), keepdims=True), h.var(axis=(0, 1, 3), keepdims=True)
    hn = (h - mu) / np.sqrt(var + 1e-5)
    hp = np_pool(np.maximum(hn, 0), (2, 2), (1, 1), [(0, 1), (1, 0)], "max")
    ref = E(L["fc"]["weights"]) @ np.moveaxis(hp, 3, 0).reshape(3, -1).T + E(L["fc"]["bias"])
    Y, state = nn.forward(net, X)
    np.testing.assert_allclose(E(Y), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(E(state["batchnorm"]["trained_mean"]).ravel(), 0.1 * mu.ravel(), rtol=1e-10)
    np.testing.assert_allclose(E(state["batchnorm"]["trained_variance"]).ravel(), 0.9 + 0.1 * var.ravel(),
                               rtol=1e-10)


def test_dag_with_skip_connections_and_gradients():
    g = nn.layer_graph([nn.feature_input_layer(3, name="x"), nn.fully_connected_layer(3, name="fc1"),
                        nn.tanh_layer(name="t"), nn.addition_layer(2, name="add"),
                        nn.concatenation_layer("C", 2, name="cat"), nn.fully_connected_layer(2, name="fc2")])
    g = nn.connect_layers(g, "x", "add/in2")
    g = nn.connect_layers(g, "fc1", "cat/in2")
    net = nn.dlnetwork(g, dtype="float64")
    L = {k: {p: E(a) for p, a in d.items()} for k, d in net.learnables.items()}
    X = rand(3, 4)

    def ref(L, X):
        a = L["fc1"]["weights"] @ X + L["fc1"]["bias"]
        h = np.concatenate([np.tanh(a) + X, a])
        return L["fc2"]["weights"] @ h + L["fc2"]["bias"]

    np.testing.assert_allclose(E(nn.predict(net, X)), ref(L, X), rtol=1e-12)
    grad = symdl.dlfeval(lambda n, x: symdl.dlgradient(symdl.sum(nn.predict(n, x) ** 2), n), net,
                         symdl.dlarray(X, "CB"))
    assert set(grad) == {"fc1", "fc2"} and set(grad["fc1"]) == {"weights", "bias"}
    h = 1e-6
    for layer, param in (("fc1", "weights"), ("fc2", "bias")):
        num = np.zeros_like(L[layer][param])
        for i in np.ndindex(*num.shape):
            up = {k: {p: a.copy() for p, a in d.items()} for k, d in L.items()}
            dn = {k: {p: a.copy() for p, a in d.items()} for k, d in L.items()}
            up[layer][param][i] += h
            dn[layer][param][i] -= h
            num[i] = ((ref(up, X) ** 2).sum() - (ref(dn, X) ** 2).sum()) / (2 * h)
        np.testing.assert_allclose(E(grad[layer][param]), num, rtol=1e-6, atol=1e-8)


def test_bad_wiring_and_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="input 'in2' of layer 'add' is not connected"):
        nn.dlnetwork(nn.layer_graph([nn.feature_input_layer(3, name="in"), nn.addition_layer(2, name="add")]))
    g = nn.layer_graph([nn.feature_input_layer(3, name="in"), nn.addition_layer(2, name="add")])
    g = nn.connect_layers(nn.add_layers(g, [nn.fully_connected_layer(4, name="fc")]), "in", "fc")
    with pytest.raises(ValueError, match="layer 'add' cannot take its input"):
        nn.dlnetwork(nn.connect_layers(g, "fc", "add/in2"))
    with pytest.raises(ValueError, match="names no layer"):
        nn.connect_layers(g, "in", "nope")
    with pytest.raises(ValueError, match="unique"):
        nn.layer_graph([nn.feature_input_layer(3, name="a"), nn.relu_layer(name="a")])
    with pytest.raises(ValueError, match="2 spatial dimension"):
        nn.dlnetwork([nn.feature_input_layer(3), nn.convolution2d_layer(3, 2)])
    net = nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2)])
    with pytest.raises(ValueError, match=r"input size \(3,\)"):
        nn.predict(net, np.ones((4, 5)))
    with pytest.raises(TypeError, match="padding"):
        nn.convolution2d_layer(3, 2, padding=1.5)
    with pytest.raises(ValueError, match="padding"):
        nn.max_pooling2d_layer(2, padding="valid")
    with pytest.raises(ValueError, match="output layer"):
        nn.dlnetwork([nn.feature_input_layer(3), nn.fully_connected_layer(2), nn.classification_layer()])


class _Cube(nn.Layer):
    """Z = a * X^3 with a hand-written backward (MATLAB's custom-layer template)."""

    learnables = ("a",)

    def __init__(self, name=""):
        super().__init__(name)
        self.a = np.array([[1.5], [-0.5]])

    def predict(self, X):
        return self.a * X ** 3

    def forward(self, X):
        return self.predict(X), "memory"

    def backward(self, X, Z, dLdZ, memory):
        assert memory == "memory"
        return dLdZ * 3.0 * self.a * X ** 2, symdl.sum(dLdZ * X ** 3, axis=1, keepdims=True)


def test_custom_layer_backward_is_used_and_differentiable():
    net = nn.dlnetwork([nn.feature_input_layer(2), _Cube(name="cube")], dtype="float64")
    X = rand(2, 3)
    a = np.array([[1.5], [-0.5]])

    def derivatives(net, X):
        Z, _ = nn.forward(net, X)
        y = symdl.sum(Z)
        gx, gnet = symdl.dlgradient(y, X, net, enable_higher_derivatives=True)
        gxx = symdl.dlgradient(symdl.sum(gx), X, enable_higher_derivatives=True)
        gxxx = symdl.dlgradient(symdl.sum(gxx), X)
        return gx, gnet, gxx, gxxx

    gx, gnet, gxx, gxxx = symdl.dlfeval(derivatives, net, symdl.dlarray(X, "CB"))
    np.testing.assert_allclose(E(gx), 3 * a * X ** 2, rtol=1e-12)
    np.testing.assert_allclose(E(gnet["cube"]["a"]), (X ** 3).sum(1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(E(gxx), 6 * a * X, rtol=1e-12)
    np.testing.assert_allclose(E(gxxx), 6 * a * np.ones_like(X), rtol=1e-12)


# ---------------------------------------------------------------- train_network, classify, minibatch_queue

def _blobs(n=96):
    labels = np.array(["left", "right", "up"])[RNG.integers(0, 3, n)]
    centers = {"left": (-2.0, 0.0), "right": (2.0, 0.0), "up": (0.0, 2.5)}
    X = np.array([centers[k] for k in labels]).T + 0.4 * RNG.standard_normal((2, n))
    return X, labels


def test_train_network_progress_table_and_string_labels(capsys):
    X, y = _blobs()
    symdl.seed(0)
    layers = [nn.feature_input_layer(2), nn.fully_connected_layer(3), nn.softmax_layer(), nn.classification_layer()]
    opts = nn.training_options("adam", max_epochs=4, mini_batch_size=20, initial_learn_rate=0.1,
                               verbose_frequency=5, validation_data=(X[:, :30], y[:30]), validation_frequency=4)
    net, info = nn.train_network(X, y, layers, opts)
    out = capsys.readouterr().out
    for word in ("Epoch", "Iteration", "Time Elapsed", "Mini-batch", "Loss", "Accuracy", "Base Learning",
                 "Validation"):
        assert word in out
    iterations = 4 * (96 // 20)                        # the partial mini-batch is discarded, as MATLAB's
    assert len(info["training_loss"]) == iterations == len(info["base_learn_rate"])
    rows = [line for line in out.splitlines() if line.startswith("|") and line[1:].strip()[:1].isdigit()]
    assert [int(r.split("|")[2]) for r in rows] == [1, 5, 10, 15, iterations]
    labels = nn.classify(net, X)
    assert labels.dtype.kind == "U" and set(labels) <= set(y)
    assert (labels == y).mean() > 0.9
    # the reported mini-batch loss of the last step is crossentropy (no regularisation) at that step's batch
    assert info["training_loss"][-1] > 0


def test_train_network_writes_the_training_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="the training plot needs matplotlib (an optional extra)")
    X, y = _blobs(40)
    png = tmp_path / "progress.png"
    opts = nn.training_options("sgdm", max_epochs=2, mini_batch_size=20, verbose=False,
                               plots="training-progress", plots_file=str(png))
    nn.train_network(X, y, [nn.feature_input_layer(2), nn.fully_connected_layer(3), nn.softmax_layer(),
                            nn.classification_layer()], opts)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_network_refuses_misfitting_outputs():
    X, y = _blobs(40)
    opts = nn.training_options(max_epochs=1, verbose=False)
    with pytest.raises(ValueError, match="must follow a softmax_layer"):
        nn.train_network(X, y, [nn.feature_input_layer(2), nn.fully_connected_layer(3),
                                nn.classification_layer()], opts)
    with pytest.raises(ValueError, match=r"has shape \(2,\) per observation .* 3 classes"):
        nn.train_network(X, y, [nn.feature_input_layer(2), nn.fully_connected_layer(2), nn.softmax_layer(),
                                nn.classification_layer()], opts)
    with pytest.raises(ValueError, match=r"responses of shape \(2,\)"):
        nn.train_network(X, np.ones((2, 40)), [nn.feature_input_layer(2), nn.fully_connected_layer(1),
                                                nn.regression_layer()], opts)


def test_minibatch_queue():
    X, T = rand(3, 10), rand(2, 10)
    q = nn.minibatch_queue(X, T, mini_batch_size=4, mini_batch_format=("CB", "CB"))
    batches = list(q)
    assert [b[0].shape[1] for b in batches] == [4, 4, 2]            # MATLAB's default: the partial one too
    np.testing.assert_array_equal(np.concatenate([E(b[0]) for b in batches], axis=1), X)
    assert not q.has_data()
    q.reset()
    assert q.has_data()
    q = nn.minibatch_queue(X, mini_batch_size=4, partial_mini_batch="discard",
                           mini_batch_fcn=lambda x: x * 2.0, mini_batch_format="CB")
    out = list(q)
    assert len(out) == 2 and out[0].fmt == "CB"
    np.testing.assert_array_equal(E(out[1]), 2 * X[:, 4:8])
    with pytest.raises(ValueError, match="same number of observations"):
        nn.minibatch_queue(X, rand(2, 9))


def test_numpy_parameters_do_not_turn_float32_data_into_float64():
    # SPEC 8: results keep the input dtype; numpy weights, biases and states (float64 by
    # default, or a Python 0.0) take X's dtype, as fullyconnect and batchnorm do
    x = symdl.dlarray(rand(4, 4, 2, 1, dtype=np.float32), "SSCB")
    s = symdl.dlarray(rand(2, 3, 2, dtype=np.float32), "CBT")
    outs = {
        "dlconv": symdl.dlconv(x, rand(2, 2, 2, 3), 0.0),
        "dlconv-bias": symdl.dlconv(x, rand(2, 2, 2, 3), np.zeros(3)),
        "dltranspconv": symdl.dltranspconv(x, rand(2, 2, 3, 2), 0.0, stride=2),
        "lstm": symdl.lstm(s, np.zeros(1), np.zeros(1), rand(4, 2), rand(4, 1), np.zeros(4))[0],
        "gru": symdl.gru(s, np.zeros(1), rand(3, 2), rand(3, 1), np.zeros(3))[0],
        "attention": symdl.attention(s, rand(2, 3, 2), rand(2, 3, 2), 1)[0],
        "fullyconnect": symdl.fullyconnect(s, rand(5, 2), np.zeros(5)),
    }
    for name, y in outs.items():
        assert y.dtype == np.float32, name
    g = symdl.dlfeval(lambda x: symdl.dlgradient(symdl.sum(symdl.dlconv(x, rand(2, 2, 2, 3), 0.5)), x), x)
    assert g.dtype == np.float32


def test_groupnorm_and_instancenorm_of_sequences_normalise_over_time():
    # MATLAB: over the (grouped) channels and the 'S', 'T' and 'U' dimensions of each
    # observation (each element alone was normalised to 0 before)
    S = rand(4, 2, 5)                                  # C x B x T
    o, s = rand(4), rand(4)
    inst = (S - S.mean(2, keepdims=True)) / np.sqrt(S.var(2, keepdims=True) + 1e-5)
    np.testing.assert_allclose(E(symdl.instancenorm(symdl.dlarray(S, "CBT"), o, s)),
                               inst * s.reshape(4, 1, 1) + o.reshape(4, 1, 1), rtol=1e-10, atol=1e-12)
    G = S.reshape(2, 2, 2, 5)                          # groups x per group x B x T
    grp = ((G - G.mean((1, 3), keepdims=True)) / np.sqrt(G.var((1, 3), keepdims=True) + 1e-5)).reshape(S.shape)
    np.testing.assert_allclose(E(symdl.groupnorm(symdl.dlarray(S, "CBT"), 2, o, s)),
                               grp * s.reshape(4, 1, 1) + o.reshape(4, 1, 1), rtol=1e-10, atol=1e-12)
    V = rand(3, 2, 4, 2)                               # S x C x B x T
    inst = (V - V.mean((0, 3), keepdims=True)) / np.sqrt(V.var((0, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(E(symdl.instancenorm(symdl.dlarray(V, "SCBT"), np.zeros(2), np.ones(2))), inst,
                               rtol=1e-10, atol=1e-12)


def test_embed_names_a_non_integer_index():
    with pytest.raises(ValueError, match="non-integer value 0.5"):
        symdl.embed(np.array([0.5, 1.0]), rand(2, 3))


def test_maxpool_indices_are_computed_by_an_accelerated_trace():
    # the indices of a traced X come from the trace: a cache hit with new data must not
    # reuse the first call's maxima (maxunpool placed values at stale positions before)
    def unpool(x):
        y, idx, size = symdl.maxpool(x, 3, stride=2, padding=1, return_indices=True)
        return symdl.maxunpool(y, idx, size), idx

    acc = symdl.dlaccelerate(unpool)
    for _ in range(3):
        X = rand(5, 5, 2, 2, dtype=np.float32)
        U, idx = acc(symdl.dlarray(X, "SSCB"))
        ref_idx = np.zeros((3, 3, 2, 2), dtype=np.int64)
        for i, j in np.ndindex(3, 3):                   # the first maximum of each window, by loops
            for c, b in np.ndindex(2, 2):
                window = [(r, q) for r in range(2 * i - 1, 2 * i + 2) for q in range(2 * j - 1, 2 * j + 2)
                          if 0 <= r < 5 and 0 <= q < 5]
                r, q = max(window, key=lambda rq: (X[rq[0], rq[1], c, b], -rq[0], -rq[1]))
                ref_idx[i, j, c, b] = np.ravel_multi_index((r, q, c, b), X.shape)
        np.testing.assert_array_equal(np.asarray(E(idx) if isinstance(idx, symdl.dlarray) else idx), ref_idx)
        ref = np.zeros(X.size, np.float32)
        np.add.at(ref, ref_idx.ravel(), X.ravel()[ref_idx.ravel()])
        np.testing.assert_array_equal(E(U), ref.reshape(X.shape))
    assert acc.hit_rate > 60                           # the trace was reused, with fresh indices
    # and the derivatives through maxunpool's traced indices
    fd_check(lambda x: unpool(x)[0] * x, [rand(4, 4, 1, 2)], ["SSCB"])


def test_onehotdecode_under_dlaccelerate_decodes_each_input():
    acc = symdl.dlaccelerate(lambda y: symdl.onehotdecode(symdl.softmax(y), ["a", "b", "c"]))
    for logits in (np.array([[3.0, 0.0], [0.0, 3.0], [0.0, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 3.0]]),
                   np.array([[5.0, 0.0], [0.0, 6.0], [0.0, 0.0]])):
        expect = np.array(["a", "b", "c"])[logits.argmax(0)]
        np.testing.assert_array_equal(acc(symdl.dlarray(logits, "CB")), expect)
    assert acc.hit_rate > 0                            # the third input reused the first trace


class _Sixth(nn.Layer):
    """Z = X^6 with its exact backward."""

    def predict(self, X):
        return X ** 6

    def backward(self, X, Z, dLdZ, memory):
        return (dLdZ * 6.0 * X ** 5,)


def _derivatives_through_custom_backward(order):
    net = nn.dlnetwork([nn.feature_input_layer(1), _Sixth(name="p6")], dtype="float64")

    def chain(net, X):
        y, out = symdl.sum(nn.predict(net, X)), []
        for _ in range(order):
            y = symdl.dlgradient(y, X, enable_higher_derivatives=True)
            out.append(y)
            y = symdl.sum(y)
        return out

    return [float(d) for d in symdl.dlfeval(chain, net, symdl.dlarray(np.array([[1.3]]), "CB"))]


def test_derivatives_through_a_custom_backward_to_fourth_order():
    x = 1.3
    np.testing.assert_allclose(_derivatives_through_custom_backward(4),
                               [6 * x ** 5, 30 * x ** 4, 120 * x ** 3, 360 * x ** 2], rtol=1e-12)


def test_derivatives_through_a_custom_backward_beyond_fourth_order_are_a_clear_error():
    # the construct (two Gauss-Legendre nodes, symdl/nn/layer.py) is exact to
    # the fourth order; the fifth would be silently wrong (910 for 936 here),
    # so it is refused, naming the layer
    with pytest.raises(ValueError, match="custom backward of layer 'p6'.*order above 4"):
        _derivatives_through_custom_backward(5)


def test_custom_backward_order_limit_in_reverse_mode_and_through_transforms():
    # two observations: dlgradient takes the reverse mode; sum of x^6 over
    # both, each derivative summed again: d^n = 6!/(6-n)! * x^(6-n) summed
    net = nn.dlnetwork([nn.feature_input_layer(1), _Sixth(name="p6")], dtype="float64")
    x = np.array([[1.3, 0.7]])

    def chain(order):
        def f(net, X):
            y, out = symdl.sum(nn.predict(net, X)), []
            for _ in range(order):
                y = symdl.sum(symdl.dlgradient(y, X, enable_higher_derivatives=True))
                out.append(float(y))
            return out
        return f
    got = symdl.dlfeval(chain(4), net, symdl.dlarray(x, "CB"))
    want = [np.sum(6 * x ** 5), np.sum(30 * x ** 4), np.sum(120 * x ** 3), np.sum(360 * x ** 2)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    with pytest.raises(ValueError, match="custom backward of layer 'p6'.*order above 4"):
        symdl.dlfeval(chain(5), net, symdl.dlarray(x, "CB"))
    # the function transforms count the same way (nested grad)
    layer = _Sixth(name="p6")

    def y(x):
        return symdl.sum(nn.predict(nn.dlnetwork([nn.feature_input_layer(1), layer], dtype="float64"),
                                    symdl.dlarray(x, "CB")))
    g = y
    for _ in range(5):
        g = (lambda h: (lambda x: symdl.sum(symdl.grad(h)(x))))(g)
    with pytest.raises(ValueError, match="order above 4"):
        g(x)


def test_fifth_derivatives_that_do_not_pass_through_the_custom_backward_still_work():
    # only derivatives through the layer count: y = p6(X) + sin(W) differentiated
    # five times in W never meets the layer's construct
    net = nn.dlnetwork([nn.feature_input_layer(1), _Sixth(name="p6")], dtype="float64")

    def chain(net, X, W):
        y = symdl.sum(nn.predict(net, X)) + symdl.sum(symdl.sin(W))
        for _ in range(5):
            y = symdl.sum(symdl.dlgradient(y, W, enable_higher_derivatives=True))
        return y
    w = 0.7
    got = float(symdl.dlfeval(chain, net, symdl.dlarray(np.array([[1.3]]), "CB"), symdl.dlarray(np.array([w]))))
    np.testing.assert_allclose(got, np.cos(w), rtol=1e-12)          # d^5 sin = cos


def test_normalising_over_no_elements_is_a_clear_error():
    with pytest.raises(ValueError, match="batchnorm: the dimensions normalised over must not be empty"):
        symdl.batchnorm(symdl.dlarray(np.zeros((4, 4, 2, 0)), "SSCB"), np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="layernorm: the dimensions normalised over must not be empty"):
        symdl.layernorm(symdl.dlarray(np.zeros((0, 2, 3)), "SCB"), np.zeros(2), np.ones(2))
