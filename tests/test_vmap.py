"""``vmap`` against references that do not go through symdl's batching: the
same function (written with numpy functions and operators, so it runs on
plain numpy arrays too) called in a Python loop over the examples and the
results stacked; derivatives of vmapped functions against central
differences of that loop; the compiled graph against the interpreter.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import symdl
from symdl.compiler.vmap import BatchedControlFlowError

from helpers import assert_compiled_matches_interpreter, central_grad, numeric_grad

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 3))
Y = RNG.standard_normal((4, 3))
W = RNG.standard_normal((3, 2))


def per_example(x, w):
    """An example's function: a small layer and a scalar of it."""
    h = np.tanh(x @ w)
    return np.sum(h ** 2) + np.sin(x[0]) * np.exp(-x[1] ** 2)


def loop(f, args, in_axes, out_axis=0):
    """The reference: ``f`` on each example (numpy), stacked along ``out_axis``."""
    n = {np.shape(a)[ax] for a, ax in zip(args, in_axes) if ax is not None}
    assert len(n) == 1
    results = []
    for k in range(n.pop()):
        example = [a if ax is None else np.take(a, k, axis=ax) for a, ax in zip(args, in_axes)]
        results.append(np.asarray(f(*example), dtype=np.float64))
    return np.stack(results, axis=out_axis)


def close(actual, desired, rtol=1e-10, atol=1e-12):
    actual = np.asarray(actual)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, f"shape {actual.shape} != expected {desired.shape}"
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- values against loops

def test_vmap_equals_loop_with_unbatched_argument():
    got = symdl.vmap(per_example, in_axes=(0, None))(X, W)
    close(got, loop(per_example, (X, W), (0, None)))


def test_vmap_elementwise_and_reductions_match_loop():
    def f(a, b):
        return np.stack([np.sum(a * b), np.max(a) - np.min(b), np.mean(np.exp(a) / (1 + b ** 2))])
    close(symdl.vmap(f)(X, Y), loop(f, (X, Y), (0, 0)))


@pytest.mark.parametrize("axis", [1, -1])
def test_in_axes_other_than_zero(axis):
    xt = X.T.copy()                         # (3, 4): the batch on axis 1
    got = symdl.vmap(per_example, in_axes=(axis, None))(xt, W)
    close(got, loop(per_example, (xt, W), (axis % 2, None)))


@pytest.mark.parametrize("out_axes", [1, -1, 0, -2])
def test_out_axes(out_axes):
    f = lambda x, w: np.tanh(x @ w)          # noqa: E731  (an example's result has shape (2,))
    got = symdl.vmap(f, in_axes=(0, None), out_axes=out_axes)(X, W)
    close(got, loop(f, (X, W), (0, None), out_axis=out_axes % 2))


def test_out_axes_container_and_none():
    def f(x, w):
        return {"h": np.tanh(x @ w), "w2": np.sum(w ** 2)}
    got = symdl.vmap(f, in_axes=(0, None), out_axes={"h": 1, "w2": None})(X, W)
    close(got["h"], loop(lambda x, w: np.tanh(x @ w), (X, W), (0, None), out_axis=1))
    close(got["w2"], np.sum(W ** 2))          # not batched: one value, not a stack


def test_containers_in_and_out():
    params = {"w": W, "b": np.array([0.5, -0.25])}
    batch = [X, Y]

    def f(p, xy):
        x, y = xy
        z = np.tanh(x @ p["w"] + p["b"])
        return (z, {"s": np.sum(z * (y @ p["w"]))})

    got = symdl.vmap(f, in_axes=({"w": None, "b": None}, [0, 0]))(params, batch)
    z_ref = np.stack([np.tanh(X[k] @ W + params["b"]) for k in range(4)])
    s_ref = np.array([np.sum(z_ref[k] * (Y[k] @ W)) for k in range(4)])
    assert isinstance(got, tuple) and set(got[1]) == {"s"}
    close(got[0], z_ref)
    close(got[1]["s"], s_ref)


def test_in_axes_prefix_for_a_container_and_dict_keys_in_any_order():
    p = {"a": X, "b": Y.T.copy()}
    got = symdl.vmap(lambda p: p["a"] * np.sum(p["b"]), in_axes=({"b": 1, "a": 0},))(p)
    close(got, np.stack([X[k] * np.sum(Y[k]) for k in range(4)]))
    # one int for a whole container: every leaf mapped on that axis
    got = symdl.vmap(lambda p: p["a"] - p["b"].T, in_axes=0)({"a": X, "b": Y.reshape(4, 3, 1)})
    close(got, X[:, None, :] - Y[:, None, :])


def test_dataclass_argument():
    @dataclasses.dataclass
    class Pair:
        u: np.ndarray
        v: np.ndarray
    got = symdl.vmap(lambda p: np.sum(p.u * p.v))(Pair(X, Y))
    close(got, np.sum(X * Y, axis=1))


def test_static_and_unbatched_arguments():
    # an int passed with in_axes None is a static argument, keyed by value
    f = symdl.vmap(lambda x, k: x ** k, in_axes=(0, None))
    close(f(X, 3), X ** 3)
    close(f(X, 2), X ** 2)


def test_result_independent_of_the_batch_is_broadcast():
    got = symdl.vmap(lambda x, w: np.sum(w), in_axes=(0, None))(X, W)
    close(got, np.full(4, np.sum(W)))


def test_float32_stays_float32():
    x32 = X.astype(np.float32)
    got = symdl.vmap(lambda x: np.exp(x) * np.sum(x))(x32)
    assert got.dtype == np.float32
    close(got, loop(lambda x: np.exp(x) * np.sum(x), (x32.astype(np.float64),), (0,)), rtol=1e-5, atol=1e-6)


def test_batch_of_one_and_of_zero():
    close(symdl.vmap(lambda x: x * np.sum(x))(X[:1]), X[:1] * np.sum(X[:1]))
    empty = symdl.vmap(lambda x: np.sum(x ** 2))(np.zeros((0, 3)))
    assert empty.shape == (0,)


def test_dlarray_in_dlarray_out():
    got = symdl.vmap(lambda x: np.sum(x ** 2))(symdl.dlarray(X))
    assert isinstance(got, symdl.dlarray)
    close(symdl.extractdata(got), np.sum(X ** 2, axis=1))


def test_vmap_of_vmap():
    cube = RNG.standard_normal((2, 4, 3))
    got = symdl.vmap(symdl.vmap(lambda v: np.sum(np.sin(v)) * v))(cube)
    close(got, np.sum(np.sin(cube), axis=-1, keepdims=True) * cube)
    # the inner map on another axis of the outer example
    got = symdl.vmap(symdl.vmap(lambda v: np.sum(v ** 2), in_axes=1))(cube)
    close(got, np.sum(cube ** 2, axis=1))


# ---------------------------------------------------------------- derivatives through vmap

def batch_loss(x, w):
    """A reference written as a loop (numpy only)."""
    return float(sum(per_example(x[k], w) for k in range(x.shape[0])))


def vmapped_loss(x, w):
    return np.sum(symdl.vmap(per_example, in_axes=(0, None))(x, w))


def test_grad_of_vmap_against_central_differences():
    gx, gw = symdl.grad(vmapped_loss, argnums=(0, 1))(X, W)
    ex, ew = numeric_grad(batch_loss, [X, W])
    close(gx, ex, rtol=1e-7, atol=1e-9)
    close(gw, ew, rtol=1e-7, atol=1e-9)


def test_hessian_of_vmap_second_order():
    # the Hessian in w of the batch loss: central differences of the gradient
    # of the loop reference, where the gradient itself comes from central
    # differences too would lose too many digits, so the first derivative is
    # the hand formula of per_example's w-dependence: d/dw sum(tanh(x w)^2)
    def grad_w(w):
        g = np.zeros_like(w)
        for k in range(X.shape[0]):
            h = np.tanh(X[k] @ w)
            g += np.outer(X[k], 2 * h * (1 - h ** 2))
        return g
    assert np.allclose(grad_w(W), numeric_grad(batch_loss, [X, W])[1], atol=1e-8)
    H = symdl.hessian(lambda w: vmapped_loss(X, w))(W)
    ref = np.zeros(W.shape + W.shape)
    for j in np.ndindex(W.shape):
        e = np.zeros_like(W)
        e[j] = 1e-5
        ref[(...,) + j] = (grad_w(W + e) - grad_w(W - e)) / 2e-5
    close(H, ref, rtol=1e-6, atol=1e-8)


def test_vmap_of_grad_is_per_example_gradient():
    got = symdl.vmap(symdl.grad(per_example), in_axes=(0, None))(X, W)
    ref = np.stack([central_grad(lambda x: per_example(x, W), X[k]) for k in range(4)])
    close(got, ref, rtol=1e-6, atol=1e-8)


def test_vmap_of_hessian():
    f = lambda v: np.sum(np.sin(v) * v[0])   # noqa: E731
    got = symdl.vmap(symdl.hessian(f))(X)
    # hand formula: f = v0 * sum(sin v); d2f/dvi dvj
    ref = np.zeros((4, 3, 3))
    for k, v in enumerate(X):
        H = np.diag(-np.sin(v) * v[0])
        H[0, :] += np.cos(v)
        H[:, 0] += np.cos(v)
        ref[k] = H
    close(got, ref)


def test_jacobian_of_vmap():
    f = lambda v: np.tanh(v) * np.sum(v ** 2)   # noqa: E731
    x = X[:2]
    J = symdl.jacobian(symdl.vmap(f))(x)
    from test_transforms import central_jacobian
    close(J, central_jacobian(lambda z: loop(f, (z,), (0,)), x), rtol=1e-7, atol=1e-9)


def test_dlgradient_through_vmap_in_dlfeval():
    def body(x, w):
        return symdl.dlgradient(vmapped_loss(x, w), w)
    got = symdl.dlfeval(body, symdl.dlarray(X), symdl.dlarray(W))
    close(symdl.extractdata(got), numeric_grad(batch_loss, [X, W])[1], rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- caching and compilation

def test_second_call_does_not_retrace():
    calls = []

    def f(x):
        calls.append(1)
        return np.sum(np.sin(x))

    vf = symdl.vmap(f)
    close(vf(X), np.sum(np.sin(X), axis=1))
    close(vf(Y), np.sum(np.sin(Y), axis=1))
    assert len(calls) == 1 and vf.hit_rate == 50.0
    vf(X[:2])                                 # another batch size: another signature
    assert len(calls) == 2 and vf.n_traces == 2


def test_compiled_matches_interpreter():
    graph = symdl.trace(symdl.vmap(per_example, in_axes=(0, None)), X, W)
    assert_compiled_matches_interpreter(graph.inputs, graph.outputs, [(X, W), (Y, W * 2)])
    grad_graph = symdl.trace(symdl.grad(vmapped_loss, argnums=(0, 1)), X, W)
    assert_compiled_matches_interpreter(grad_graph.inputs, grad_graph.outputs, [(X, W), (Y, -W)])


def test_compile_and_accelerate_a_vmapped_function():
    c = symdl.compile(symdl.vmap(per_example, in_axes=(0, None)), X, W)
    close(c(Y, W), loop(per_example, (Y, W), (0, None)))
    acc = symdl.dlaccelerate(lambda x, w: symdl.vmap(per_example, in_axes=(0, None))(x, w))
    got = acc(symdl.dlarray(X), symdl.dlarray(W))
    close(symdl.extractdata(got), loop(per_example, (X, W), (0, None)))


def test_control_flow_on_unbatched_argument_is_guarded():
    def f(x, s):
        return x * 2.0 if float(s) > 0 else x * -3.0
    vf = symdl.vmap(f, in_axes=(0, None))
    close(vf(X, 1.0), X * 2.0)
    close(vf(X, -1.0), X * -3.0)            # the guard on s fails: a new trace, never a stale branch
    close(vf(X, 2.0), X * 2.0)


# ---------------------------------------------------------------- errors

def branchy(x):
    if float(np.sum(x)) > 0:
        return x
    return -x


def test_value_dependent_control_flow_is_refused():
    with pytest.raises(BatchedControlFlowError, match="ConcretizationTypeError"):
        symdl.vmap(branchy)(X)
    with pytest.raises(TypeError, match="cannot be batched"):
        symdl.dlfeval(lambda x: symdl.vmap(branchy)(x), symdl.dlarray(X))
    with pytest.raises(TypeError, match="cannot be batched"):
        symdl.grad(lambda x: np.sum(symdl.vmap(branchy)(x)))(X)
    with pytest.raises(TypeError, match="cannot be batched"):
        symdl.vmap(lambda v: v[int(v[0] > 0)])(X)
    with pytest.raises(TypeError, match="cannot be batched"):
        symdl.vmap(lambda v: v * symdl.extractdata(v))(X)   # detaching one example's data


def test_mismatched_batch_sizes():
    with pytest.raises(ValueError, match=r"argument 0 has size 4 .* argument 1 has size 3"):
        symdl.vmap(lambda a, b: a + b)(X, X[:3])
    with pytest.raises(ValueError, match=r"argument 1\['b'\] has size 2"):
        symdl.vmap(lambda a, p: a * np.sum(p["b"]))(X, {"b": np.ones((2, 3))})


@pytest.mark.parametrize("in_axes, match", [
    (2, r"in_axes 2 for argument 0 \(shape \(4, 3\)\) is out of range"),
    (-3, r"in_axes -3 for argument 0 .* out of range"),
    ((0, 1), "in_axes has 2 entries but the function was called with 1"),
    (None, "no argument is mapped over"),
    (({"a": 0},), r"in_axes\[0\] is a dict but the value it describes is an array of shape \(4, 3\)"),
])
def test_bad_in_axes(in_axes, match):
    with pytest.raises(ValueError, match=match):
        symdl.vmap(lambda x: x * 2.0, in_axes=in_axes)(X)


def test_in_axes_structure_mismatch():
    with pytest.raises(ValueError, match="must be an int, None, or a container with the structure"):
        symdl.vmap(lambda p: p["a"], in_axes=({"a": 0, "c": 0},))({"a": X, "b": Y})
    with pytest.raises(ValueError, match="must be an int, None, or a container with the structure"):
        symdl.vmap(lambda p: p[0], in_axes=([0, 0, 0],))([X, Y])


def test_bad_axes_types_and_values():
    with pytest.raises(TypeError, match="in_axes must be an int, None, or a container"):
        symdl.vmap(lambda x: x, in_axes="0")
    with pytest.raises(TypeError, match="out_axes must be"):
        symdl.vmap(lambda x: x, out_axes=1.5)
    with pytest.raises(ValueError, match=r"out_axes 2 for result leaf 0 \(shape \(3,\)\) is out of range"):
        symdl.vmap(lambda x: x, out_axes=2)(X)
    with pytest.raises(ValueError, match="out_axes is None for result leaf 0, but that result depends"):
        symdl.vmap(lambda x: x, out_axes=None)(X)
    with pytest.raises(ValueError, match="0-d value"):
        symdl.vmap(lambda x, s: x * s)(X, 2.0)
    with pytest.raises(TypeError, match="argument 1 is a str, which cannot be mapped over"):
        symdl.vmap(lambda x, s: x)(X, "mode")
    with pytest.raises(TypeError, match="fun must be callable"):
        symdl.vmap(3)
    with pytest.raises(TypeError, match="fun must return arrays"):
        symdl.vmap(lambda x: "text")(X)


def test_function_closing_over_an_outer_traced_value():
    # X is a plain numpy array, w a value of grad's trace that the mapped
    # function closes over: the map is built in grad's trace, so w stays a variable
    got = symdl.grad(lambda w: np.sum(symdl.vmap(lambda x: per_example(x, w))(X)))(W)
    close(got, numeric_grad(batch_loss, [X, W])[1], rtol=1e-7, atol=1e-9)


def test_vmap_of_jacobian():
    f = lambda v: np.tanh(v) * np.sum(v ** 2)   # noqa: E731
    from test_transforms import central_jacobian
    got = symdl.vmap(symdl.jacobian(f))(X)
    close(got, np.stack([central_jacobian(f, x) for x in X]), rtol=1e-7, atol=1e-9)


def test_axis_size():
    got = symdl.vmap(lambda w: np.sum(w ** 2), in_axes=None, axis_size=3)(W)
    close(got, np.full(3, np.sum(W ** 2)))
    close(symdl.vmap(lambda x: x * 2.0, axis_size=4)(X), X * 2.0)
    with pytest.raises(ValueError, match=r"axis_size is 3 but argument 0 has size 4"):
        symdl.vmap(lambda x: x, axis_size=3)(X)
    with pytest.raises(TypeError, match="axis_size must be None or a non-negative int"):
        symdl.vmap(lambda x: x, axis_size=2.5)


def test_transforms_with_untraced_arguments_inside_a_trace():
    # A transform called inside another trace (dlfeval, vmap, grad) on plain
    # numpy arguments: compiled on its own when its function is independent of
    # the outer trace, built in the outer trace when it closes over its values.
    # (These gave zeros before: the nested trace did not trace its inputs.)
    x0 = np.array([1.0, 2.0])
    ws = np.array([[3.0, 4.0], [5.0, 6.0]])
    got = symdl.dlfeval(lambda w: symdl.jacobian(lambda x: x ** 2)(x0), symdl.dlarray(x0))
    close(got, np.diag(2 * x0))
    got = symdl.dlfeval(lambda w: symdl.hessian(lambda x: np.sum(x ** 3))(x0), symdl.dlarray(x0))
    close(got, np.diag(6 * x0))
    got = symdl.vmap(lambda w: symdl.jacobian(lambda x: x * w)(x0))(ws)
    close(got, np.stack([np.diag(w) for w in ws]))
    got = symdl.vmap(lambda w: symdl.grad(lambda x: np.sum(x * w ** 2))(x0))(ws)
    close(got, ws ** 2)
    got = symdl.grad(lambda w: np.sum(symdl.hessian(lambda x: np.sum(x ** 3 * w))(x0)))(ws[0])
    close(got, 6 * x0)    # d/dw sum(diag(6 x w))
    got = symdl.dlfeval(lambda w: symdl.dlgradient(np.sum(symdl.grad(lambda x: np.sum(x ** 2 * w))(x0)), w),
                        symdl.dlarray(ws[0]))
    close(symdl.extractdata(got), 2 * x0)
