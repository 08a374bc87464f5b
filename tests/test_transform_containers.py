"""jacobian, hessian and hvp of container arguments (dict, list, tuple,
dataclass), as JAX lays them out: the result's structure outside, the
argument's inside.  References: analytic derivatives and central differences
of the flattened function."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import symdl


def f(p):
    return np.sum(p["a"] ** 2) * p["b"] + p["b"] ** 3 + np.sum(np.sin(p["a"]))


P = {"a": np.array([0.3, -1.2, 2.0]), "b": 1.5}


def flat_f(v):
    return float(f({"a": v[:3], "b": v[3]}))


def numeric_hessian(fun, v, eps=1e-4):
    n = v.size
    H = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            e_i, e_j = np.eye(n)[i] * eps, np.eye(n)[j] * eps
            H[i, j] = (fun(v + e_i + e_j) - fun(v + e_i - e_j) - fun(v - e_i + e_j) + fun(v - e_i - e_j)) / (4 * eps**2)
    return H


V = np.concatenate([P["a"], [P["b"]]])
H_REF = numeric_hessian(flat_f, V)


def test_hessian_of_a_dict_is_a_dict_of_dicts():
    H = symdl.hessian(f)(P)
    a, b = P["a"], P["b"]
    np.testing.assert_allclose(H["a"]["a"], np.diag(2 * b - np.sin(a)), rtol=1e-12)   # analytic
    np.testing.assert_allclose(H["a"]["b"], 2 * a, rtol=1e-12)
    np.testing.assert_allclose(H["b"]["a"], 2 * a, rtol=1e-12)
    np.testing.assert_allclose(float(H["b"]["b"]), 6 * b, rtol=1e-12)
    blocks = np.block([[H["a"]["a"], H["a"]["b"][:, None]], [H["b"]["a"][None, :], np.reshape(H["b"]["b"], (1, 1))]])
    np.testing.assert_allclose(blocks, H_REF, rtol=1e-5, atol=1e-5)                    # central differences


def test_hvp_of_a_dict_is_a_dict():
    v = {"a": np.array([1.0, -0.5, 0.25]), "b": -2.0}
    hv = symdl.hvp(f)(P, v)
    flat_v = np.concatenate([v["a"], [v["b"]]])
    want = H_REF @ flat_v
    np.testing.assert_allclose(hv["a"], want[:3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(hv["b"]), want[3], rtol=1e-5, atol=1e-5)


def test_jacobian_of_a_container_argument_and_of_a_tuple_result():
    def g(p):
        return p["a"] * p["b"], np.sum(p["a"] ** 2)
    J = symdl.jacobian(g)(P)
    a, b = P["a"], P["b"]
    assert isinstance(J, tuple) and set(J[0]) == {"a", "b"}
    np.testing.assert_allclose(J[0]["a"], np.diag(np.full(3, b)), rtol=1e-14)
    np.testing.assert_allclose(J[0]["b"], a, rtol=1e-14)
    np.testing.assert_allclose(J[1]["a"], 2 * a, rtol=1e-14)
    np.testing.assert_allclose(float(J[1]["b"]), 0.0)


@dataclass
class Params:
    w: np.ndarray
    layers: list


def test_nested_dataclass_and_list_leaves():
    p = Params(np.array([1.0, 2.0]), [np.array([0.5]), 3.0])

    def loss(q):
        return np.sum(q.w ** 2 * q.layers[0]) + q.layers[1] ** 2 * np.sum(q.w)

    H = symdl.hessian(loss)(p)
    assert isinstance(H, Params) and isinstance(H.w, Params)
    # d2/dw2 = 2 * layers[0] * I; d2/dw d(layers[1]) = 2 * layers[1]
    np.testing.assert_allclose(H.w.w, np.eye(2) * 2 * 0.5, rtol=1e-14)
    np.testing.assert_allclose(H.w.layers[1], np.full(2, 2 * 3.0), rtol=1e-14)
    np.testing.assert_allclose(H.layers[0].w, (2 * p.w).reshape(1, 2), rtol=1e-14)
    v = Params(np.array([1.0, 0.0]), [np.array([0.0]), 1.0])
    hv = symdl.hvp(loss)(p, v)
    assert isinstance(hv, Params)
    np.testing.assert_allclose(hv.w, [1.0 + 6.0, 6.0], rtol=1e-14)   # H_ww v_w + H_w,l1 v_l1


def test_hessian_with_several_argnums_of_containers():
    def loss(p, s):
        return np.sum(p["a"] ** 2) * s[0]
    H = symdl.hessian(loss, argnums=(0, 1))(P, [2.0])
    np.testing.assert_allclose(H[0][1]["a"][0], 2 * P["a"], rtol=1e-14)    # d/da d/ds0
    np.testing.assert_allclose(H[1][1][0][0], 0.0)


def test_structure_and_shape_mismatches_are_clear_errors():
    with pytest.raises(ValueError, match="hvp: v must have the structure and shapes of argument 0"):
        symdl.hvp(f)(P, {"a": np.ones(2), "b": 1.0})
    with pytest.raises(ValueError, match="hvp: v must have the structure"):
        symdl.hvp(f)(P, [np.ones(3), 1.0])
    with pytest.raises(TypeError, match="jacobian: fun must return an array or a container of arrays"):
        symdl.jacobian(lambda p: "text")(P)
    with pytest.raises(TypeError, match=r"argument 0\['b'\]"):
        symdl.hessian(f)({"a": np.ones(3), "b": "x"})
