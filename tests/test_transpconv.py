"""dltranspconv: against a direct numpy loop written from the definition
(every input element spreads its weighted filter over the output), as the
adjoint of dlconv (<dlconv(X, W), Y> == <X, dltranspconv(Y, W)>), 1-D to 3-D,
stride, cropping ('same' too), dilation, groups; derivatives against central
differences to second order; compiled equals interpreted; bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import symdl
from helpers import check_grads

RNG = np.random.default_rng(23)


def data(x):
    return symdl.extractdata(x)


def ref_transpconv(x, w, b, nsp, stride, crops, dilation):
    """x: (spatial..., C, N); w: (k..., F/G, C/G, G) (MATLAB's layout); the
    definition: input position i with filter tap o lands at output i*s + o*d
    of the uncropped output, then ``crops`` (before, after) are removed."""
    kernel = w.shape[:nsp]
    fg, cg, groups = w.shape[nsp:]
    sizes = x.shape[:nsp]
    full = [(m - 1) * s + (k - 1) * d + 1 for m, s, k, d in zip(sizes, stride, kernel, dilation)]
    y = np.zeros(full + [fg * groups, x.shape[-1]])
    for pos in itertools.product(*(range(m) for m in sizes)):
        for off in itertools.product(*(range(k) for k in kernel)):
            at = tuple(p * s + o * d for p, s, o, d in zip(pos, stride, off, dilation))
            for g in range(groups):
                y[at][g * fg:(g + 1) * fg] += w[off][:, :, g] @ x[pos][g * cg:(g + 1) * cg]
    crop = tuple(slice(a, n - z) for (a, z), n in zip(crops, full))
    return y[crop] + np.reshape(b, (-1, 1))


CASES = [  # fmt, x shape (spatial..., C, N), kernel, F/G, C/G, groups, stride, cropping, dilation
    ("SSCB", (3, 4, 3, 2), (3, 2), 2, 3, 1, (1, 1), 0, (1, 1)),
    ("SSCB", (3, 3, 4, 2), (3, 3), 3, 2, 2, (2, 1), ((1, 0), (0, 2)), (1, 2)),
    ("SCB", (4, 2, 3), (3,), 2, 2, 1, (3,), 1, (2,)),
    ("SSSCB", (2, 3, 2, 2, 1), (2, 2, 2), 2, 2, 1, (2, 1, 2), (1, 0, 1), (1, 1, 1)),
    ("SSCB", (3, 2, 2, 1), (4, 3), 2, 2, 1, (2, 3), 0, (1, 1)),
]


def crops_of(cropping, n, reach, stride):
    if cropping == "same":
        return [((r - s) // 2, r - s - (r - s) // 2) for r, s in zip(reach, stride)]
    if isinstance(cropping, int):
        return [(cropping, cropping)] * n
    return [(c, c) if isinstance(c, int) else tuple(c) for c in cropping]


@pytest.mark.parametrize("fmt, shape, kernel, fg, cg, groups, stride, cropping, dilation", CASES)
def test_values_against_the_definition(fmt, shape, kernel, fg, cg, groups, stride, cropping, dilation):
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal(kernel + (fg, cg, groups))
    b = RNG.standard_normal(fg * groups)
    weights = w[..., 0] if groups == 1 else w                          # MATLAB's 4-D form when ungrouped
    y = symdl.dltranspconv(symdl.dlarray(x, fmt), weights, b, stride=stride, cropping=cropping, dilation=dilation)
    nsp = fmt.count("S")
    reach = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    expect = ref_transpconv(x, w, b, nsp, stride, crops_of(cropping, nsp, reach, stride), dilation)
    np.testing.assert_allclose(data(y), expect, rtol=1e-12, atol=1e-12)
    assert y.fmt == fmt


@pytest.mark.parametrize("kernel, stride", [((3, 3), (2, 2)), ((4, 3), (2, 3)), ((2, 2), (1, 1)), ((3, 2), (3, 2))])
def test_same_cropping_gives_stride_times_the_input_size(kernel, stride):
    x = RNG.standard_normal((3, 4, 2, 1))
    w = RNG.standard_normal(kernel + (3, 2))
    y = symdl.dltranspconv(symdl.dlarray(x, "SSCB"), w, 0.0, stride=stride, cropping="same")
    assert y.shape == (3 * stride[0], 4 * stride[1], 3, 1)
    reach = list(kernel)
    crops = crops_of("same", 2, reach, stride)
    if all(r >= s for r, s in zip(reach, stride)):
        np.testing.assert_allclose(data(y), ref_transpconv(x, w[..., None], 0.0, 2, stride, crops, (1, 1)),
                                   rtol=1e-12, atol=1e-12)


ADJOINT_CASES = [  # fmt, conv input shape, kernel, C/G, F/G, groups, stride, padding, dilation
    ("SSCB", (5, 6, 3, 2), (3, 2), 3, 4, 1, (1, 1), 0, (1, 1)),
    ("SSCB", (7, 7, 4, 2), (3, 2), 2, 3, 2, (2, 2), ((1, 1), (0, 0)), (1, 2)),
    ("SSCB", (6, 6, 2, 1), (3, 3), 2, 2, 1, (2, 3), "same", (1, 1)),
    ("SSCB", (6, 4, 2, 1), (1, 1), 2, 2, 1, (3, 2), "same", (1, 1)),   # stride > filter: 'same' pads the end
    ("SCB", (9, 2, 3), (3,), 2, 2, 1, (2,), 1, (2,)),
    ("SSSCB", (5, 4, 4, 2, 1), (2, 2, 2), 2, 2, 1, (1, 2, 2), ((1, 0), (0, 0), (1, 1)), (1, 1, 1)),
]


@pytest.mark.parametrize("fmt, shape, kernel, cg, fg, groups, stride, padding, dilation", ADJOINT_CASES)
def test_adjoint_of_dlconv(fmt, shape, kernel, cg, fg, groups, stride, padding, dilation):
    x = RNG.standard_normal(shape)
    w = RNG.standard_normal(kernel + (cg, fg, groups))
    weights = w[..., 0] if groups == 1 else w
    conv = symdl.dlconv(symdl.dlarray(x, fmt), weights, 0.0, stride=stride, padding=padding, dilation=dilation)
    y = RNG.standard_normal(conv.shape)
    back = symdl.dltranspconv(symdl.dlarray(y, fmt), weights, 0.0, stride=stride, cropping=padding,
                              dilation=dilation)
    assert back.shape == x.shape
    np.testing.assert_allclose(np.sum(data(conv) * y), np.sum(x * data(back)), rtol=1e-12)


def test_adjoint_is_dlconvs_input_gradient():
    """dlgradient of <dlconv(X, W), Y> in X is dltranspconv(Y, W), elementwise."""
    x = RNG.standard_normal((6, 5, 2, 2))
    w = RNG.standard_normal((3, 3, 2, 3))
    y = RNG.standard_normal((3, 5, 3, 2))

    def f(xx):
        conv = symdl.dlconv(symdl.dlarray(xx, "SSCB"), w, 0.0, stride=(2, 1), padding="same")
        return symdl.dlgradient(symdl.sum(conv * y), xx)
    g = data(symdl.dlfeval(f, symdl.dlarray(x)))
    t = data(symdl.dltranspconv(symdl.dlarray(y, "SSCB"), w, 0.0, stride=(2, 1), cropping="same"))
    np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-12)


def test_derivatives_in_x_weights_and_bias_to_second_order():
    x0 = RNG.standard_normal((3, 2, 2, 2)) * 0.5
    w0 = RNG.standard_normal((2, 3, 3, 2)) * 0.3   # moderate tanh arguments: central differences stay accurate
    b0 = RNG.standard_normal(3)
    crops = [(1, 0), (0, 1)]

    def f(x, w, b):
        if isinstance(x, symdl.dlarray):
            y = symdl.dltranspconv(symdl.dlarray(x, "SSCB"), w, b, stride=(2, 1), cropping=crops)
            return symdl.tanh(y)
        return np.tanh(ref_transpconv(x, w[..., None], b, 2, (2, 1), crops, (1, 1)))
    check_grads(f, [x0, w0, b0], order=2)


def test_grouped_derivatives():
    x0 = RNG.standard_normal((3, 4, 1)) * 0.5
    w0 = RNG.standard_normal((2, 1, 2, 2)) * 0.5     # k=2, F/G=1, C/G=2, G=2

    def f(x, w):
        if isinstance(x, symdl.dlarray):
            return symdl.tanh(symdl.dltranspconv(symdl.dlarray(x, "SCB"), w, 0.0, stride=2, dilation=2))
        return np.tanh(ref_transpconv(x, w, 0.0, 1, (2,), [(0, 0)], (2,)))
    check_grads(f, [x0, w0], order=2)


def test_float32():
    x = RNG.standard_normal((3, 3, 2, 2)).astype(np.float32)
    w = RNG.standard_normal((2, 2, 3, 2)).astype(np.float32)
    y = symdl.dltranspconv(symdl.dlarray(x, "SSCB"), w, np.float32(0.5), stride=2)
    assert y.dtype == np.float32
    expect = ref_transpconv(x.astype(np.float64), w[..., None].astype(np.float64), 0.5, 2, (2, 2),
                            [(0, 0), (0, 0)], (1, 1))
    np.testing.assert_allclose(data(y), expect, rtol=1e-5, atol=1e-5)


def test_compiled_equals_interpreted():
    w = RNG.standard_normal((3, 2, 2, 3))
    b = RNG.standard_normal(2)

    def loss(x):
        y = symdl.dltranspconv(symdl.dlarray(x, "SSCB"), w, b, stride=(2, 2), cropping="same")
        return symdl.sum(symdl.tanh(y) ** 2)

    g = symdl.grad(loss)
    cf = symdl.compile(loss, np.zeros((3, 4, 3, 2)))
    for _ in range(2):
        x = RNG.standard_normal((3, 4, 3, 2))
        np.testing.assert_allclose(float(cf(x)), float(loss(x)), rtol=1e-12)

        def interpreted(xx):
            return symdl.dlgradient(loss(xx), xx)
        np.testing.assert_allclose(np.asarray(g(x)), data(symdl.dlfeval(interpreted, symdl.dlarray(x))),
                                   rtol=1e-11, atol=1e-12)


def test_compiled_graph_matches_the_interpreter_node_by_node():
    from helpers import assert_compiled_matches_interpreter
    w = RNG.standard_normal((2, 2, 2, 2, 2))       # grouped: F/G=2, C/G=2, G=2
    x = RNG.standard_normal((3, 3, 4, 1))

    def fun(xx):
        return symdl.dltranspconv(symdl.dlarray(xx, "SSCB"), w, 0.25, stride=(1, 2), cropping=(0, 1))
    graph = symdl.trace(fun, x)
    assert_compiled_matches_interpreter(graph.inputs, graph.outputs, [(x,), (RNG.standard_normal(x.shape),)])


# ---------------------------------------------------------------- bad input

def test_bad_input_is_a_clear_error():
    X = symdl.dlarray(RNG.standard_normal((4, 4, 3, 2)), "SSCB")
    with pytest.raises(ValueError, match="weights take 2 channels per group x 1 groups, but X has 3 channels"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 2)), 0.0)
    with pytest.raises(ValueError, match="weights take 1 channels per group x 2 groups, but X has 3 channels"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 1, 2)), 0.0)
    with pytest.raises(ValueError, match="bias must hold 4 values"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match=r"weights must have 4 dimensions .* got shape \(3, 3\)"):
        symdl.dltranspconv(X, np.ones((3, 3)), 0.0)
    with pytest.raises(ValueError, match="stride and dilation must be positive"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, stride=0)
    with pytest.raises(ValueError, match="stride must be an int or 2 ints"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="cropping must be 'same'.*got 'valid'"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, cropping="valid")
    with pytest.raises(ValueError, match="cropping must be non-negative"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, cropping=-1)
    with pytest.raises(ValueError, match="cropping must be 'same'"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, cropping=[1.5, 2])
    with pytest.raises(ValueError, match="cropping 3 removes the whole output"):
        symdl.dltranspconv(X, np.ones((3, 3, 4, 3)), 0.0, cropping=3)
    with pytest.raises(ValueError, match="X must be a formatted dlarray with spatial"):
        symdl.dltranspconv(symdl.dlarray(np.ones((5, 5))), np.ones((3, 3, 1, 1)), 0.0)
    with pytest.raises(TypeError, match="weights must be a dlarray or a real numeric array"):
        symdl.dltranspconv(X, "weights", 0.0)
