"""The numpy functions of SPEC section 9.2 on dlarrays, table-driven.

Each case is a function written with numpy (so on numpy arrays it is its own
independent reference) and its arguments.  For every case:
- values on untraced dlarrays equal numpy's (float64 and float32);
- first-order gradients and Hessian-vector products from ``dlgradient``
  equal central differences of the numpy reference (``helpers.check_grads``);
- the compiled ``value_and_grad`` equals numpy's value and the interpreted
  (``dlfeval``) gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

import symdl
from helpers import check_grads

pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors are deprecated")

RNG = np.random.default_rng(20261130)


def normal(*shape):
    return RNG.standard_normal(shape)


def positive(*shape):
    return RNG.uniform(0.5, 2.0, shape)


def away_from_zero(*shape):
    return RNG.uniform(0.5, 2.0, shape) * RNG.choice([-1.0, 1.0], shape)


def distinct(*shape):
    """Values with well separated elements (sort, max: no ties to cross)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n) * 0.7 + RNG.uniform(-0.2, 0.2, n)).reshape(shape) - n * 0.35


# name: (function written with numpy, arguments)
CASES = {
    # ---------------------------------------------------------------- elementwise
    "log2": (lambda x: np.log2(x), [positive(3, 4)]),
    "log10": (lambda x: np.log10(x), [positive(3, 4)]),
    "exp2": (lambda x: np.exp2(x), [normal(3, 4)]),
    "cbrt": (lambda x: np.cbrt(x), [away_from_zero(3, 4)]),
    "reciprocal": (lambda x: np.reciprocal(x), [away_from_zero(3, 4)]),
    "fabs": (lambda x: np.fabs(x), [away_from_zero(3, 4)]),
    "sinc": (lambda x: np.sinc(x), [np.array([0.0, 1e-3, -0.1, 0.2, 0.4, 1.3, -2.7, 0.5])]),
    "deg2rad": (lambda x: np.deg2rad(x), [normal(5)]),
    "rad2deg": (lambda x: np.rad2deg(x), [normal(5)]),
    "radians": (lambda x: np.radians(x), [normal(5)]),
    "degrees": (lambda x: np.degrees(x), [normal(5)]),
    "logaddexp": (lambda a, b: np.logaddexp(a, b), [normal(3, 1) * 3, normal(1, 4) * 3]),
    "logaddexp_tie": (lambda a: np.logaddexp(a, a), [normal(4)]),
    "logaddexp2": (lambda a, b: np.logaddexp2(a, b), [normal(3, 4) * 3, normal(3, 4) * 3]),
    "hypot": (lambda a, b: np.hypot(a, b), [away_from_zero(3, 4), normal(3, 4)]),
    "mod": (lambda a, b: np.mod(a, b), [RNG.uniform(2.1, 2.9, (6,)) + RNG.choice([0.0, 3.5, -7.0], 6),
                                        np.full(6, 3.5)]),
    "remainder_op": (lambda a, b: a % b, [RNG.uniform(0.2, 0.8, 5) - 2.0, np.full(5, -1.0)]),
    "fmod": (lambda a, b: np.fmod(a, b), [RNG.uniform(2.1, 2.9, (6,)) * RNG.choice([-1.0, 1.0], 6),
                                          RNG.uniform(3.0, 4.0, 6)]),
    "fmax": (lambda a, b: np.fmax(a, b), [distinct(6), distinct(6) + 0.3]),
    "fmin": (lambda a, b: np.fmin(a, b), [distinct(6), distinct(6) + 0.3]),
    "nan_to_num": (lambda x: np.nan_to_num(x * 2.0), [normal(5)]),
    "clip_keywords": (lambda x: np.clip(x, a_min=-0.5, a_max=0.5), [distinct(7) / 7]),
    "clip_method": (lambda x: x.clip(-0.5, None), [distinct(7) / 7]),
    # ---------------------------------------------------------------- reductions and scans
    "var": (lambda x: np.var(x), [normal(3, 4)]),
    "var_axis_ddof": (lambda x: np.var(x, axis=0, ddof=1, keepdims=True), [normal(3, 4)]),
    "var_method": (lambda x: x.var(axis=(0, 2)), [normal(2, 3, 2)]),
    "std": (lambda x: np.std(x, axis=1), [normal(3, 4)]),
    "std_method": (lambda x: x.std(ddof=1), [normal(5)]),
    "sum_where_initial": (lambda x: np.sum(x, axis=1, where=np.array([True, False, True, True]), initial=2.0),
                          [normal(3, 4)]),
    "sum_dtype": (lambda x: np.sum(x, dtype=np.float64), [normal(3, 4)]),
    "mean_where": (lambda x: np.mean(x, axis=0, where=np.array([[True], [False], [True]])), [normal(3, 4)]),
    "prod_initial": (lambda x: np.prod(x, axis=0, initial=3.0), [normal(3, 4)]),
    "max_initial": (lambda x: np.max(x, axis=1, initial=0.0), [distinct(3, 4)]),
    "min_where": (lambda x: np.min(x, where=np.array([True, False, True]), initial=5.0), [distinct(3)]),
    "cumsum_method": (lambda x: x.cumsum(axis=1), [normal(3, 4)]),
    "cumprod": (lambda x: np.cumprod(x), [normal(2, 3)]),
    "cumprod_axis_with_zero": (lambda x: np.cumprod(x * np.array([1.0, 0.0, 1.0, 1.0, 1.0]), axis=1),
                               [normal(2, 5)]),
    "cumprod_method": (lambda x: x.cumprod(0), [normal(3, 2)]),
    "diff": (lambda x: np.diff(x), [normal(3, 4)]),
    "diff_n2_axis0": (lambda x: np.diff(x, n=2, axis=0), [normal(4, 3)]),
    "diff_prepend": (lambda x: np.diff(x, prepend=0.5, append=np.ones((3, 1))), [normal(3, 4)]),
    "sort": (lambda x: np.sort(x) * np.arange(1.0, 6.0), [distinct(5)]),
    "sort_axis0": (lambda x: np.sort(x, axis=0), [distinct(4, 3)]),
    "sort_none": (lambda x: np.sort(x, axis=None), [distinct(2, 3)]),
    "partition": (lambda x: np.partition(x, 2)[2] * np.partition(x, 2)[:2].sum(), [distinct(6)]),
    # ---------------------------------------------------------------- contractions
    "einsum_matmul": (lambda a, b: np.einsum("ij,jk->ik", a, b), [normal(2, 3), normal(3, 4)]),
    "einsum_implicit": (lambda a, b: np.einsum("ij,jk", a, b), [normal(2, 3), normal(3, 4)]),
    "einsum_implicit_sorted": (lambda a, b: np.einsum("kj,ji", a, b), [normal(2, 3), normal(3, 4)]),
    "einsum_diagonal": (lambda a: np.einsum("ii->i", a), [normal(3, 3)]),
    "einsum_trace": (lambda a: np.einsum("ii", a), [normal(3, 3)]),
    "einsum_sum": (lambda a: np.einsum("ijk->", a), [normal(2, 3, 2)]),
    "einsum_transpose": (lambda a: np.einsum("ijk->kij", a), [normal(2, 3, 2)]),
    "einsum_dot": (lambda a, b: np.einsum("i,i", a, b), [normal(4), normal(4)]),
    "einsum_outer": (lambda a, b: np.einsum("i,j->ij", a, b), [normal(3), normal(2)]),
    "einsum_batch": (lambda a, b: np.einsum("bij,bjk->bik", a, b), [normal(2, 2, 3), normal(2, 3, 2)]),
    "einsum_ellipsis": (lambda a, b: np.einsum("...ij,...jk->...ik", a, b), [normal(2, 2, 3), normal(3, 2)]),
    "einsum_ellipsis_implicit": (lambda a: np.einsum("...ii", a), [normal(2, 3, 3)]),
    "einsum_three": (lambda a, b, c: np.einsum("ij,jk,kl->il", a, b, c), [normal(2, 3), normal(3, 2), normal(2, 2)]),
    "einsum_repeated_across": (lambda a, b: np.einsum("ij,ij,i->j", a, b, a[:, 0]), [normal(3, 2), normal(3, 2)]),
    "einsum_mixed_diag": (lambda a, b: np.einsum("iij,j->i", a, b), [normal(3, 3, 2), normal(2)]),
    "einsum_interleaved": (lambda a, b: np.einsum(a, [0, 1], b, [1, 2], [2, 0]), [normal(2, 3), normal(3, 2)]),
    "einsum_broadcast_one": (lambda a, b: np.einsum("...i,...i->...", a, b), [normal(3, 4), normal(1, 4)]),
    "tensordot": (lambda a, b: np.tensordot(a, b), [normal(2, 3, 2), normal(3, 2, 2)]),
    "tensordot_1": (lambda a, b: np.tensordot(a, b, 1), [normal(2, 3), normal(3, 2)]),
    "tensordot_pairs": (lambda a, b: np.tensordot(a, b, axes=([0, 2], [1, 0])), [normal(2, 3, 4), normal(4, 2, 2)]),
    "tensordot_0": (lambda a, b: np.tensordot(a, b, 0), [normal(2), normal(3)]),
    "inner": (lambda a, b: np.inner(a, b), [normal(2, 3), normal(4, 3)]),
    "inner_vectors": (lambda a, b: np.inner(a, b), [normal(3), normal(3)]),
    "outer": (lambda a, b: np.outer(a, b), [normal(2, 2), normal(3)]),
    "kron": (lambda a, b: np.kron(a, b), [normal(2, 2), normal(2, 3)]),
    "kron_mixed_rank": (lambda a, b: np.kron(a, b), [normal(3), normal(2, 2)]),
    "cross": (lambda a, b: np.cross(a, b), [normal(4, 3), normal(4, 3)]),
    "cross_broadcast": (lambda a, b: np.cross(a, b), [normal(2, 3), normal(3)]),
    "cross_2d": (lambda a, b: np.cross(a, b), [normal(3, 2), normal(3, 2)]),
    "cross_2_and_3": (lambda a, b: np.cross(a, b), [normal(2), normal(3)]),
    "cross_axis": (lambda a, b: np.cross(a, b, axisa=0, axisb=0, axisc=0), [normal(3, 2), normal(3, 2)]),
    "trace": (lambda a: np.trace(a), [normal(3, 3)]),
    "trace_offset": (lambda a: np.trace(a, offset=1, axis1=1, axis2=2), [normal(2, 3, 4)]),
    "dot_method": (lambda a, b: a.dot(b), [normal(2, 3), normal(3)]),
    # ---------------------------------------------------------------- shape and movement
    "ravel": (lambda x: np.ravel(x), [normal(2, 3)]),
    "ravel_F": (lambda x: np.ravel(x, order="F"), [normal(2, 3)]),
    "flatten_method": (lambda x: x.flatten(), [normal(2, 3)]),
    "copy_method": (lambda x: x.copy() * 2, [normal(2, 3)]),
    "repeat": (lambda x: np.repeat(x, 2), [normal(2, 2)]),
    "repeat_axis": (lambda x: np.repeat(x, [1, 0, 3], axis=1), [normal(2, 3)]),
    "tile": (lambda x: np.tile(x, (2, 1, 2)), [normal(2, 3)]),
    "roll": (lambda x: np.roll(x, 2), [normal(2, 3)]),
    "roll_axes": (lambda x: np.roll(x, (1, -1), axis=(0, 1)), [normal(2, 3)]),
    "rot90": (lambda x: np.rot90(x), [normal(2, 3)]),
    "rot90_k2": (lambda x: np.rot90(x, 2), [normal(2, 3)]),
    "rot90_k3_axes": (lambda x: np.rot90(x, -1, axes=(1, 2)), [normal(2, 3, 2)]),
    "flip": (lambda x: np.flip(x), [normal(2, 3)]),
    "flip_axis": (lambda x: np.flip(x, axis=1), [normal(2, 3)]),
    "flipud": (lambda x: np.flipud(x), [normal(2, 3)]),
    "fliplr": (lambda x: np.fliplr(x), [normal(2, 3)]),
    "swapaxes": (lambda x: np.swapaxes(x, 0, 2), [normal(2, 3, 2)]),
    "moveaxis": (lambda x: np.moveaxis(x, [0, 1], [-1, 0]), [normal(2, 3, 4)]),
    "atleast_1d": (lambda x: np.atleast_1d(x), [np.array(1.5)]),
    "atleast_2d": (lambda x: np.atleast_2d(x), [normal(3)]),
    "atleast_3d": (lambda x: np.atleast_3d(x), [normal(2, 3)]),
    "diag_vector": (lambda x: np.diag(x), [normal(3)]),
    "diag_vector_k": (lambda x: np.diag(x, k=-1), [normal(3)]),
    "diag_matrix": (lambda x: np.diag(x, 1), [normal(3, 4)]),
    "diagonal": (lambda x: np.diagonal(x, offset=-1, axis1=2, axis2=0), [normal(3, 2, 4)]),
    "tril": (lambda x: np.tril(x), [normal(3, 4)]),
    "tril_k_batched": (lambda x: np.tril(x, k=-1), [normal(2, 3, 3)]),
    "triu": (lambda x: np.triu(x, 1), [normal(3, 4)]),
    "pad_constant": (lambda x: np.pad(x, ((1, 0), (2, 1)), constant_values=0.5), [normal(2, 3)]),
    "pad_edge": (lambda x: np.pad(x, 2, mode="edge"), [normal(2, 3)]),
    "pad_reflect": (lambda x: np.pad(x, (2, 3), mode="reflect"), [normal(4)]),
    "pad_symmetric": (lambda x: np.pad(x, ((1, 2), (0, 1)), mode="symmetric"), [normal(2, 3)]),
    "pad_wrap": (lambda x: np.pad(x, 4, mode="wrap"), [normal(3)]),
    "select": (lambda x: np.select([x < -0.5, x > 0.5], [x ** 2, 3 * x], default=-x), [distinct(8) / 4]),
    "append": (lambda a, b: np.append(a, b), [normal(2, 2), normal(3)]),
    "append_axis": (lambda a, b: np.append(a, b, axis=0), [normal(2, 2), normal(1, 2)]),
    "split": (lambda x: np.concatenate([p * (k + 1) for k, p in enumerate(np.split(x, 2, axis=1))]),
              [normal(2, 4)]),
    "split_indices": (lambda x: np.concatenate([p * (k + 1) for k, p in enumerate(np.split(x, [1, 3]))]),
                      [normal(5)]),
    "array_split": (lambda x: np.concatenate([p * (k + 1) for k, p in enumerate(np.array_split(x, 3))]),
                    [normal(7)]),
    "hsplit": (lambda x: np.hsplit(x, 2)[1], [normal(2, 4)]),
    "vsplit": (lambda x: np.vsplit(x, [1])[1], [normal(3, 2)]),
    "dsplit": (lambda x: np.dsplit(x, 2)[0], [normal(1, 2, 4)]),
    "vstack": (lambda a, b: np.vstack([a, b, a]), [normal(3), normal(2, 3)]),
    "hstack": (lambda a, b: np.hstack((a, b)), [normal(2, 1), normal(2, 3)]),
    "hstack_1d": (lambda a, b: np.hstack((a, b)), [normal(2), normal(3)]),
    "dstack": (lambda a, b: np.dstack([a, b]), [normal(2, 3), normal(2, 3)]),
    "column_stack": (lambda a, b: np.column_stack([a, b]), [normal(3), normal(3, 2)]),
    "stack_list_of_traced": (lambda a, b: np.stack([a, b], axis=1), [normal(3), normal(3)]),
    "rollaxis": (lambda x: np.rollaxis(x, 2, 1), [normal(2, 3, 4)]),
    "linspace": (lambda a, b: np.linspace(a, b, 5), [normal(2), normal(2)]),
    "linspace_open_axis": (lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=1), [normal(3), normal(1)]),
    "linspace_one": (lambda a, b: np.linspace(a, b, 1), [normal(2), normal(2)]),
    "take_along_axis": (lambda x: np.take_along_axis(x, np.array([[1, 0], [2, 2]]), axis=1), [normal(2, 3)]),
    "floordiv_op_is_flat": (lambda x: x * (x // 1.0), [RNG.uniform(0.1, 0.9, 4) + np.array([0.0, 1.0, -2.0, 3.0])]),
}

NAMES = sorted(CASES)


def _to_dl(args, dtype=np.float64):
    return [symdl.dlarray(a.astype(dtype)) for a in args]


@pytest.mark.parametrize("name", NAMES)
def test_values_match_numpy(name):
    fn, args = CASES[name]
    expected = fn(*args)
    got = fn(*_to_dl(args))
    assert isinstance(got, symdl.dlarray), f"{name}: result is a {type(got).__name__}"
    assert got.shape == np.shape(expected)
    np.testing.assert_allclose(symdl.extractdata(got), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_float32_keeps_numpys_dtype(name):
    fn, args = CASES[name]
    got = fn(*_to_dl(args, np.float32))
    expected = fn(*[a.astype(np.float32) for a in args])
    # float32 stays float32 unless the function itself brings float64 in, as in numpy
    assert got.dtype == expected.dtype, f"{name}: float32 input gave {got.dtype}, numpy {expected.dtype}"
    np.testing.assert_allclose(symdl.extractdata(got), fn(*args), rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", NAMES)
def test_first_and_second_order_against_central_differences(name):
    fn, args = CASES[name]
    check_grads(fn, args, order=2)


@pytest.mark.parametrize("name", NAMES)
def test_compiled_matches_numpy_and_interpreter(name):
    fn, args = CASES[name]
    w = np.random.default_rng(1).standard_normal(np.shape(fn(*args)))

    def loss(*xs):
        return symdl.sum(fn(*xs) * w)

    argnums = tuple(range(len(args)))
    value, grads = symdl.value_and_grad(loss, argnums=argnums)(*args)
    np.testing.assert_allclose(np.asarray(value), np.sum(fn(*args) * w), rtol=1e-12, atol=1e-12)

    def interpreted(*xs):
        return symdl.dlgradient(loss(*xs), *xs)
    expected = symdl.dlfeval(interpreted, *_to_dl(args))
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(np.asarray(g), symdl.extractdata(e), rtol=1e-12, atol=1e-12)
