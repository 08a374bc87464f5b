"""dlconv and dltranspconv written as one contraction each (im2col): values
against direct numpy loops in MATLAB's layout (1-D to 3-D, stride, 'same' and
asymmetric padding or cropping, dilation, groups including depthwise, extra
labelled dimensions; float32 and float64), eager and compiled; gradients in
X, weights and bias against central differences to second order; the
gradient of a gradient norm; and the structure: one dot_general per
convolution and per gradient."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

import symdl
from helpers import central_grad, check_grads

RNG = np.random.default_rng(2026)


# ---------------------------------------------------------------- references (direct loops, MATLAB layout)

def pads_of(padding, sizes, reach, stride):
    if padding == "same":
        pads = []
        for n, r, s in zip(sizes, reach, stride):
            total = max((math.ceil(n / s) - 1) * s + r - n, 0)
            pads.append((total // 2, total - total // 2))
        return pads
    if isinstance(padding, int):
        return [(padding, padding)] * len(sizes)
    return [tuple(p) for p in padding]


def ref_dlconv(x, w, b, nsp, stride, pads, dilation):
    """x: (spatial..., C, other...); w: (k..., C/G, F/G, G); b: (F,).  Each
    output element is the sum over its window and its group's channels."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    xp = np.pad(x, list(pads) + [(0, 0)] * (x.ndim - nsp))
    kernel = w.shape[:nsp]
    cg, fg, groups = w.shape[nsp:]
    out = [(xp.shape[i] - (k - 1) * d - 1) // s + 1 for i, (k, d, s) in enumerate(zip(kernel, dilation, stride))]
    rest = x.shape[nsp + 1:]
    y = np.zeros(tuple(out) + (fg * groups,) + rest)
    for pos in itertools.product(*(range(m) for m in out)):
        for off in itertools.product(*(range(k) for k in kernel)):
            at = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, off, dilation))
            for g in range(groups):
                for f in range(fg):
                    for c in range(cg):
                        y[pos][g * fg + f] += w[off][c, f, g] * xp[at][g * cg + c]
    return y + np.reshape(b, (-1,) + (1,) * len(rest))


def ref_dltranspconv(x, w, b, nsp, stride, crops, dilation):
    """x: (spatial..., C, other...); w: (k..., F/G, C/G, G): every input
    element spreads w times itself over the (uncropped) output, then crop."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    kernel = w.shape[:nsp]
    fg, cg, groups = w.shape[nsp:]
    sizes = x.shape[:nsp]
    rest = x.shape[nsp + 1:]
    full = [(m - 1) * s + (k - 1) * d + 1 for m, s, k, d in zip(sizes, stride, kernel, dilation)]
    y = np.zeros(tuple(full) + (fg * groups,) + rest)
    for pos in itertools.product(*(range(m) for m in sizes)):
        for off in itertools.product(*(range(k) for k in kernel)):
            at = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, off, dilation))
            for g in range(groups):
                for f in range(fg):
                    for c in range(cg):
                        y[at][g * fg + f] += w[off][f, c, g] * x[pos][g * cg + c]
    y = y[tuple(slice(a, n - z) for (a, z), n in zip(crops, full))]
    return y + np.reshape(b, (-1,) + (1,) * len(rest))


def crops_of(cropping, kernel, stride, dilation):
    if cropping == "same":
        out = []
        for k, s, d in zip(kernel, stride, dilation):
            total = (k - 1) * d + 1 - s
            out.append((total // 2, total - total // 2))
        return out
    if isinstance(cropping, int):
        return [(cropping, cropping)] * len(kernel)
    return [tuple(c) for c in cropping]


# fmt, X shape, kernel, C/G, F/G, G, stride, padding, dilation
CONV_CASES = [
    ("SCB", (11, 3, 2), (3,), 3, 2, 1, (2,), "same", (1,)),
    ("SCB", (10, 4, 2), (3,), 1, 2, 4, (1,), [(2, 1)], (2,)),                      # depthwise, multiplier 2
    ("SSCB", (9, 8, 4, 2), (3, 2), 2, 3, 2, (2, 3), [(1, 0), (2, 1)], (2, 1)),    # asymmetric padding
    ("SSCB", (7, 6, 3, 2), (3, 3), 1, 1, 3, (1, 1), "same", (1, 1)),               # depthwise C/G = F/G = 1
    ("SSCB", (6, 5, 3, 2), (1, 1), 3, 4, 1, (2, 2), 0, (1, 1)),                    # 1 x 1, strided
    ("SSCB", (8, 7, 2, 3), (5, 5), 2, 3, 1, (1, 1), 0, (1, 1)),                    # the CNN's 5 x 5
    ("SCBT", (8, 2, 2, 3), (2,), 2, 3, 1, (1,), 1, (3,)),                          # an extra 'T' dimension
    ("SSSCB", (5, 4, 6, 4, 2), (2, 3, 2), 2, 1, 2, (1, 2, 2), [(0, 1), (1, 1), (0, 0)], (2, 1, 1)),
]


def conv_case(case, dtype):
    fmt, shape, kernel, cg, fg, groups, stride, padding, dilation = case
    x = RNG.standard_normal(shape).astype(dtype)
    w = RNG.standard_normal(tuple(kernel) + (cg, fg, groups)).astype(dtype)
    b = RNG.standard_normal(fg * groups).astype(dtype)
    nsp = fmt.count("S")
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    pads = pads_of(padding, shape[:nsp], reach, stride)
    return x, w, b, nsp, pads


TOL = {"float64": dict(rtol=1e-11, atol=1e-11), "float32": dict(rtol=2e-5, atol=2e-5)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[0]}-k{c[2]}-G{c[5]}")
def test_dlconv_eager_and_compiled_against_direct_loops(case, dtype):
    fmt, _, _, _, _, groups, stride, padding, dilation = case
    x, w, b, nsp, pads = conv_case(case, dtype)
    weights = w[..., 0] if groups == 1 else w                  # MATLAB's 4-D form when ungrouped

    def conv(X, weights, b):
        return symdl.dlconv(X, weights, b, stride=stride, padding=padding, dilation=dilation)

    X = symdl.dlarray(x, fmt)
    expect = ref_dlconv(x, w, b, nsp, stride, pads, dilation)
    eager = symdl.dlfeval(conv, X, symdl.dlarray(weights), symdl.dlarray(b))
    compiled = symdl.dlaccelerate(conv)(X, symdl.dlarray(weights), symdl.dlarray(b))
    for y in (eager, compiled):
        assert y.fmt == fmt and y.dtype == np.dtype(dtype)
        np.testing.assert_allclose(symdl.extractdata(y), expect, **TOL[dtype])
    np.testing.assert_allclose(symdl.extractdata(compiled), symdl.extractdata(eager), **TOL[dtype])


# fmt, X shape, kernel, F/G, C/G, G, stride, cropping, dilation
TRANSP_CASES = [
    ("SCB", (5, 3, 2), (3,), 2, 3, 1, (2,), "same", (1,)),
    ("SCB", (6, 4, 2), (3,), 2, 1, 4, (1,), [(1, 2)], (2,)),                        # depthwise
    ("SSCB", (4, 5, 4, 2), (3, 2), 3, 2, 2, (2, 3), [(1, 0), (0, 2)], (1, 2)),     # asymmetric cropping
    ("SSCB", (4, 4, 3, 2), (2, 2), 1, 1, 3, (3, 3), 0, (1, 1)),                     # stride > filter: gaps
    ("SSCB", (3, 4, 2, 2), (5, 5), 3, 2, 1, (1, 1), 2, (1, 1)),
    ("SCBT", (4, 2, 2, 3), (2,), 3, 2, 1, (2,), 0, (2,)),
    ("SSSCB", (3, 2, 3, 2, 2), (2, 2, 3), 2, 1, 2, (2, 1, 1), [(0, 1), (1, 0), (1, 1)], (1, 1, 1)),
]


def transp_case(case, dtype):
    fmt, shape, kernel, fg, cg, groups, stride, cropping, dilation = case
    x = RNG.standard_normal(shape).astype(dtype)
    w = RNG.standard_normal(tuple(kernel) + (fg, cg, groups)).astype(dtype)
    b = RNG.standard_normal(fg * groups).astype(dtype)
    return x, w, b, fmt.count("S"), crops_of(cropping, kernel, stride, dilation)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", TRANSP_CASES, ids=lambda c: f"{c[0]}-k{c[2]}-G{c[5]}")
def test_dltranspconv_eager_and_compiled_against_direct_loops(case, dtype):
    fmt, _, _, _, _, groups, stride, cropping, dilation = case
    x, w, b, nsp, crops = transp_case(case, dtype)
    weights = w[..., 0] if groups == 1 else w

    def transp(X, weights, b):
        return symdl.dltranspconv(X, weights, b, stride=stride, cropping=cropping, dilation=dilation)

    X = symdl.dlarray(x, fmt)
    expect = ref_dltranspconv(x, w, b, nsp, stride, crops, dilation)
    eager = symdl.dlfeval(transp, X, symdl.dlarray(weights), symdl.dlarray(b))
    compiled = symdl.dlaccelerate(transp)(X, symdl.dlarray(weights), symdl.dlarray(b))
    for y in (eager, compiled):
        assert y.fmt == fmt and y.dtype == np.dtype(dtype) and y.shape == expect.shape
        np.testing.assert_allclose(symdl.extractdata(y), expect, **TOL[dtype])


# ---------------------------------------------------------------- derivatives

GRAD_CASES = [  # a subset of CONV_CASES small enough for second differences
    CONV_CASES[1], CONV_CASES[2], CONV_CASES[6], CONV_CASES[7],
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: f"{c[0]}-k{c[2]}-G{c[5]}")
def test_dlconv_derivatives_to_second_order(case):
    fmt, _, _, _, _, groups, stride, padding, dilation = case
    x, w, b, nsp, pads = conv_case(case, "float64")
    x, w = 0.5 * x, 0.3 * w                                    # moderate tanh arguments

    def f(x, w, b):
        if isinstance(x, symdl.dlarray):
            y = symdl.dlconv(symdl.dlarray(x, fmt), w, b, stride=stride, padding=padding, dilation=dilation)
            return symdl.tanh(y)
        return np.tanh(ref_dlconv(x, w, b, nsp, stride, pads, dilation))
    check_grads(f, [x, w, b], order=2)


@pytest.mark.parametrize("case", [TRANSP_CASES[1], TRANSP_CASES[2], TRANSP_CASES[6]],
                         ids=lambda c: f"{c[0]}-k{c[2]}-G{c[5]}")
def test_dltranspconv_derivatives_to_second_order(case):
    fmt, _, _, _, _, groups, stride, cropping, dilation = case
    x, w, b, nsp, crops = transp_case(case, "float64")
    x, w = 0.5 * x, 0.3 * w

    def f(x, w, b):
        if isinstance(x, symdl.dlarray):
            y = symdl.dltranspconv(symdl.dlarray(x, fmt), w, b, stride=stride, cropping=cropping, dilation=dilation)
            return symdl.tanh(y)
        return np.tanh(ref_dltranspconv(x, w, b, nsp, stride, crops, dilation))
    check_grads(f, [x, w, b], order=2)


def test_float32_gradients_against_central_differences():
    x, w, b, nsp, pads = conv_case(CONV_CASES[2], "float32")

    def f(x, w, b):
        if isinstance(x, symdl.dlarray):
            y = symdl.dlconv(symdl.dlarray(x, "SSCB"), w, b, stride=(2, 3), padding=[(1, 0), (2, 1)],
                             dilation=(2, 1))
            return y * y
        return ref_dlconv(x, w, b, nsp, (2, 3), pads, (2, 1)) ** 2
    check_grads(f, [x, w, b], order=1)


def test_gradient_of_a_gradient_norm_against_central_differences():
    """d/dW of ||dL/dX||^2 with L = sum(tanh(dlconv(X, W)) * R): a second
    derivative mixing both operands, eager and compiled, against central
    differences of the same norm built from the reference (dL/dX by central
    differences would be too noisy, so the norm uses the exact adjoint:
    dL/dX = dltranspconv of the cotangent, computed by the reference loops)."""
    fmt, stride, padding, dilation = "SSCB", (2, 1), [(1, 0), (0, 1)], (1, 2)
    x = RNG.standard_normal((5, 6, 4, 2)) * 0.5
    w = RNG.standard_normal((2, 2, 2, 3, 2)) * 0.3              # 2 groups of 2 -> 3 channels
    pads = pads_of(padding, (5, 6), [2, 3], stride)
    r = RNG.standard_normal(ref_dlconv(x, w, np.zeros(6), 2, stride, pads, dilation).shape)

    def norm_ref(w):
        y = ref_dlconv(x, w, np.zeros(6), 2, stride, pads, dilation)
        cot = r * (1 - np.tanh(y) ** 2)                          # dL/dy
        # dL/dx: the adjoint of the convolution, by reference loops (transpconv with dlconv's weights)
        full = ref_dltranspconv(cot, w, np.zeros(4), 2, stride, [(0, 0), (0, 0)], dilation)
        gx = np.zeros((5 + sum(pads[0]), 6 + sum(pads[1]), 4, 2))   # the padded input
        gx[:full.shape[0], :full.shape[1]] = full                 # its last rows may lie beyond every window
        return np.sum(gx[pads[0][0]:pads[0][0] + 5, pads[1][0]:pads[1][0] + 6] ** 2)

    def fun(X, W):
        y = symdl.dlconv(X, W, 0.0, stride=stride, padding=padding, dilation=dilation)
        loss = symdl.sum(symdl.tanh(y) * r)
        gx = symdl.dlgradient(loss, X, enable_higher_derivatives=True)
        norm = symdl.sum(gx * gx)
        return norm, symdl.dlgradient(norm, W)

    expect = central_grad(norm_ref, w, eps=1e-6)
    X, W = symdl.dlarray(x, fmt), symdl.dlarray(w)
    for run in (fun, symdl.dlaccelerate(fun)):
        norm, g = symdl.dlfeval(run, X, W)
        np.testing.assert_allclose(float(norm), norm_ref(w), rtol=1e-10)
        np.testing.assert_allclose(symdl.extractdata(g), expect, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- structure: one contraction each

def _contractions(fun, *args):
    """The sizes of each dot_general of the traced graph (sorted: the layout
    of the operands is the implementation's choice, the sizes are not)."""
    graph = symdl.trace(fun, *args)
    return sorted(tuple(sorted(n.shape)) for n in graph.nodes if n.op == "dot_general")


@pytest.mark.parametrize("groups", [1, 2])
def test_one_contraction_per_convolution_and_per_gradient(groups):
    rng = np.random.default_rng(0)
    X = symdl.dlarray(rng.standard_normal((9, 9, 4, 3)), "SSCB")
    W = symdl.dlarray(rng.standard_normal((3, 3, 4 // groups, 6 // groups, groups)))

    def conv_grads(X, W):
        y = symdl.dlconv(X, W, 0.0, stride=2, padding="same")
        loss = symdl.sum(y * y)
        return loss, symdl.dlgradient(loss, X, W)

    def transp_grads(X, W):
        y = symdl.dltranspconv(X, W, 0.0, stride=2, cropping=1)
        loss = symdl.sum(y * y)
        return loss, symdl.dlgradient(loss, X, W)

    def sizes(*dims):
        return tuple(sorted(dims + ((groups,) if groups > 1 else ())))

    pixels = 5 * 5 * 3                                      # output pixels x batch of dlconv
    depth = 9 * 4 // groups                                 # filter positions x channels per group
    # forward: pixels x depth x F/G; the input gradient pixels x F/G -> depth; the weights' F/G x pixels -> depth
    expect = sorted([sizes(pixels, 6 // groups), sizes(pixels, depth), sizes(6 // groups, depth)])
    assert _contractions(conv_grads, X, W) == expect
    # dltranspconv: the same three over the 9 x 9 x 3 input pixels, with every position's filters
    pixels, per_position = 9 * 9 * 3, 9 * (6 // groups)
    W2 = symdl.dlarray(rng.standard_normal((3, 3, 6 // groups, 4 // groups, groups)))
    expect = sorted([sizes(pixels, per_position), sizes(pixels, 4 // groups), sizes(per_position, 4 // groups)])
    assert _contractions(transp_grads, X, W2) == expect
