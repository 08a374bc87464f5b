"""Acceptance tests of ``dlarray`` (SPEC section 1, 7, 8): construction and
dtype rules, dimension labels, data access, arithmetic, indexing, reductions,
broadcasting and the numpy protocols.

Every expected value comes from numpy on the plain data (or from a small
reference written here), never from symdl's own output.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import symdl
from helpers import central_grad as numeric_grad
from symdl import dims, dlarray, dlfeval, dlgradient, extractdata, finddim, stripdims

RNG = np.random.default_rng(20240611)


def data(x) -> np.ndarray:
    """The plain values of a dlarray (or anything array-like)."""
    return np.asarray(extractdata(x) if isinstance(x, dlarray) else x)


def assert_dl(result, expected, rtol=1e-12, atol=1e-12):
    """``result`` is a dlarray with the shape and values of numpy's ``expected``."""
    assert isinstance(result, dlarray), f"expected a dlarray, got {type(result).__name__}"
    expected = np.asarray(expected)
    assert result.shape == expected.shape, f"shape {result.shape} != numpy's {expected.shape}"
    np.testing.assert_allclose(data(result), expected, rtol=rtol, atol=atol)




def canonical_reference(fmt: str):
    """MATLAB's canonical order S..., C, B, T, U... (stable within a label)."""
    rank = {"S": 0, "C": 1, "B": 2, "T": 3, "U": 4}
    perm = sorted(range(len(fmt)), key=lambda i: (rank[fmt[i]], i))
    return perm, "".join(fmt[i] for i in perm)


# =============================================================== construction

class TestConstruction:
    def test_python_float_is_float64(self):
        x = dlarray(1.5)
        assert x.dtype == np.float64
        assert x.shape == ()
        assert float(x) == 1.5

    def test_list_of_floats_is_float64(self):
        x = dlarray([1.0, 2.0, 3.0])
        assert x.dtype == np.float64
        np.testing.assert_array_equal(data(x), [1.0, 2.0, 3.0])

    def test_float64_array_stays_float64(self):
        a = RNG.standard_normal((2, 3))
        x = dlarray(a)
        assert x.dtype == np.float64
        np.testing.assert_array_equal(data(x), a)

    def test_float32_array_stays_float32(self):
        a = RNG.standard_normal((2, 3)).astype(np.float32)
        x = dlarray(a)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(data(x), a)

    def test_numpy_float32_scalar_stays_float32(self):
        assert dlarray(np.float32(2.5)).dtype == np.float32

    @pytest.mark.parametrize("value", [3, [1, 2, 3], np.arange(4, dtype=np.int32), np.arange(4, dtype=np.uint8),
                                       np.arange(4, dtype=np.int64)])
    def test_integers_become_float64(self, value):
        x = dlarray(value)
        assert x.dtype == np.float64
        np.testing.assert_array_equal(data(x), np.asarray(value, dtype=np.float64))

    @pytest.mark.parametrize("value", [True, [True, False, True], np.array([[False], [True]])])
    def test_bools_become_float64(self, value):
        x = dlarray(value)
        assert x.dtype == np.float64
        np.testing.assert_array_equal(data(x), np.asarray(value, dtype=np.float64))

    @pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float32")])
    def test_dtype_argument_float32(self, dtype):
        x = dlarray(np.array([1, 2, 3]), dtype=dtype)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(data(x), np.array([1, 2, 3], dtype=np.float32))
        assert dlarray([0.1, 0.2], dtype=dtype).dtype == np.float32

    def test_dtype_argument_float64_from_float32(self):
        a = np.array([0.1, 0.2], dtype=np.float32)
        x = dlarray(a, dtype=np.float64)
        assert x.dtype == np.float64
        np.testing.assert_array_equal(data(x), a.astype(np.float64))

    @pytest.mark.parametrize("value", [1 + 2j, [1.0, 2j], np.array([1, 2], dtype=np.complex64),
                                       np.array([[1j]], dtype=np.complex128)])
    def test_complex_is_type_error(self, value):
        with pytest.raises(TypeError):
            dlarray(value)

    def test_non_numeric_is_type_error(self):
        with pytest.raises(TypeError):
            dlarray(np.array(["a", "b"]))

    def test_non_float_dtype_argument_is_rejected(self):
        with pytest.raises((TypeError, ValueError)):
            dlarray([1.0, 2.0], dtype=np.int32)

    def test_data_is_copied_from_source(self):
        a = np.array([1.0, 2.0, 3.0])
        x = dlarray(a)
        a[0] = 100.0
        np.testing.assert_array_equal(data(x), [1.0, 2.0, 3.0])

    def test_from_dlarray_keeps_values_and_labels(self):
        a = RNG.standard_normal((3, 4))
        x = dlarray(a, "CB")
        y = dlarray(x)
        assert isinstance(y, dlarray)
        assert y.fmt == "CB"
        np.testing.assert_array_equal(data(y), a)

    def test_from_dlarray_with_dtype(self):
        x = dlarray(np.array([1.5, 2.5]))
        y = dlarray(x, dtype=np.float32)
        assert y.dtype == np.float32
        np.testing.assert_array_equal(data(y), np.array([1.5, 2.5], dtype=np.float32))


# =============================================================== labels

class TestLabels:
    @pytest.mark.parametrize("fmt, shape, perm, canon", [
        ("CSSB", (3, 4, 5, 2), (1, 2, 0, 3), "SSCB"),
        ("BC", (5, 3), (1, 0), "CB"),
        ("TCB", (7, 3, 5), (1, 2, 0), "CBT"),
        ("SSCB", (4, 5, 3, 2), (0, 1, 2, 3), "SSCB"),
        ("CB", (3, 6), (0, 1), "CB"),
        ("UCU", (2, 3, 4), (1, 0, 2), "CUU"),
        ("BTC", (2, 6, 3), (2, 0, 1), "CBT"),
        ("SCS", (4, 3, 5), (0, 2, 1), "SSC"),
    ])
    def test_canonical_permutation(self, fmt, shape, perm, canon):
        a = RNG.standard_normal(shape)
        x = dlarray(a, fmt)
        expected = np.transpose(a, perm)
        assert x.fmt == canon
        assert dims(x) == canon
        assert x.shape == expected.shape
        np.testing.assert_array_equal(data(x), expected)

    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.sampled_from("SCBTU"), min_size=1, max_size=5), st.data())
    def test_canonical_permutation_property(self, labels, draw):
        # C, B and T appear at most once (MATLAB); S and U may repeat
        fmt = []
        for c in labels:
            if c in "CBT" and c in fmt:
                continue
            fmt.append(c)
        fmt = "".join(fmt)
        shape = tuple(draw.draw(st.lists(st.integers(1, 3), min_size=len(fmt), max_size=len(fmt))))
        a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
        perm, canon = canonical_reference(fmt)
        x = dlarray(a, fmt)
        assert x.fmt == canon
        np.testing.assert_array_equal(data(x), np.transpose(a, perm))

    def test_unformatted_has_empty_labels(self):
        x = dlarray(np.zeros((2, 3)))
        assert x.fmt == ""
        assert dims(x) == ""
        assert list(finddim(x, "C")) == []

    def test_finddim(self):
        x = dlarray(np.zeros((3, 4, 5, 2)), "CSSB")   # -> SSCB, shape (4, 5, 3, 2)
        assert list(finddim(x, "S")) == [0, 1]
        assert list(finddim(x, "C")) == [2]
        assert list(finddim(x, "B")) == [3]
        assert list(finddim(x, "T")) == []
        y = dlarray(np.zeros((7, 3, 5)), "TCB")        # -> CBT
        assert list(finddim(y, "T")) == [2]
        assert list(finddim(y, "C")) == [0]

    def test_stripdims(self):
        a = RNG.standard_normal((3, 4, 5, 2))
        x = dlarray(a, "CSSB")
        s = stripdims(x)
        assert isinstance(s, dlarray)
        assert s.fmt == ""
        assert dims(s) == ""
        np.testing.assert_array_equal(data(s), np.transpose(a, (1, 2, 0, 3)))
        assert x.fmt == "SSCB"   # the original keeps its labels

    @pytest.mark.parametrize("fmt, shape", [("CSB", (2, 3)), ("C", (2, 3)), ("SSCB", (2, 3, 4)), ("CB", (5,))])
    def test_wrong_label_count_is_value_error(self, fmt, shape):
        with pytest.raises(ValueError) as err:
            dlarray(np.zeros(shape), fmt)
        assert fmt in str(err.value)

    @pytest.mark.parametrize("fmt, bad", [("CX", "X"), ("QB", "Q"), ("SSZB", "Z"), ("C1", "1")])
    def test_unknown_label_is_value_error(self, fmt, bad):
        with pytest.raises(ValueError) as err:
            dlarray(np.zeros((2,) * len(fmt)), fmt)
        assert bad in str(err.value)

    @pytest.mark.parametrize("fmt", ["CCB", "BSB", "TT"])
    def test_repeated_single_label_is_value_error(self, fmt):
        with pytest.raises(ValueError):
            dlarray(np.zeros((2,) * len(fmt)), fmt)

    def test_finddim_bad_label(self):
        x = dlarray(np.zeros((2, 3)), "CB")
        with pytest.raises(ValueError):
            finddim(x, "X")


# =============================================================== data access

class TestDataAccess:
    def test_extractdata_returns_owned_copy(self):
        a = RNG.standard_normal((3, 4))
        x = dlarray(a)
        d = extractdata(x)
        assert isinstance(d, np.ndarray)
        np.testing.assert_array_equal(d, a)
        d[...] = 0.0
        np.testing.assert_array_equal(extractdata(x), a)
        assert float(x[0, 0]) == a[0, 0]

    def test_extractdata_copy_is_writeable_and_independent_between_calls(self):
        x = dlarray([1.0, 2.0])
        d1, d2 = extractdata(x), extractdata(x)
        d1[0] = 7.0
        assert d2[0] == 1.0
        assert extractdata(x)[0] == 1.0

    def test_extractdata_keeps_dtype(self):
        x = dlarray(np.ones(3, dtype=np.float32))
        assert extractdata(x).dtype == np.float32

    def test_numpy_asarray(self):
        a = RNG.standard_normal((2, 3))
        x = dlarray(a)
        arr = np.asarray(x)
        assert isinstance(arr, np.ndarray)
        np.testing.assert_array_equal(arr, a)
        np.testing.assert_array_equal(np.array(x), a)

    def test_properties(self):
        a = RNG.standard_normal((3, 4, 5))
        x = dlarray(a)
        assert x.shape == (3, 4, 5)
        assert x.ndim == 3
        assert x.dtype == np.float64
        assert x.size == 60
        assert len(x) == 3

    def test_len_and_properties_after_permutation(self):
        x = dlarray(np.zeros((7, 3, 5)), "TCB")
        assert len(x) == 3
        assert x.shape == (3, 5, 7)

    @pytest.mark.parametrize("value", [2.5, [2.5], [[2.5]], np.array([[[2.5]]], dtype=np.float32)])
    def test_float_of_one_element(self, value):
        assert float(dlarray(value)) == 2.5

    def test_float_of_many_elements_is_error(self):
        with pytest.raises(TypeError):
            float(dlarray([1.0, 2.0]))

    def test_len_of_scalar_is_error(self):
        with pytest.raises(TypeError):
            len(dlarray(1.0))

    def test_extractdata_inside_dlfeval_gives_real_values(self):
        a = RNG.standard_normal(4)

        def f(x):
            d = extractdata(x * 2.0)
            assert isinstance(d, np.ndarray)
            return d

        np.testing.assert_allclose(dlfeval(f, dlarray(a)), 2.0 * a)


# =============================================================== arithmetic

A = RNG.uniform(0.5, 2.0, (3, 4))
B = RNG.uniform(0.5, 2.0, (3, 4))

BINARY = {
    "add": lambda p, q: p + q,
    "sub": lambda p, q: p - q,
    "mul": lambda p, q: p * q,
    "div": lambda p, q: p / q,
    "pow": lambda p, q: p ** q,
}


class TestArithmetic:
    @pytest.mark.parametrize("op", list(BINARY))
    def test_dlarray_with_dlarray(self, op):
        f = BINARY[op]
        assert_dl(f(dlarray(A), dlarray(B)), f(A, B))

    @pytest.mark.parametrize("op", list(BINARY))
    def test_dlarray_with_numpy_array(self, op):
        f = BINARY[op]
        assert_dl(f(dlarray(A), B), f(A, B))
        assert_dl(f(A, dlarray(B)), f(A, B))

    @pytest.mark.parametrize("op", list(BINARY))
    @pytest.mark.parametrize("scalar", [2.0, 3, -0.5])
    def test_dlarray_with_python_scalar(self, op, scalar):
        f = BINARY[op]
        assert_dl(f(dlarray(A), scalar), f(A, scalar))
        with np.errstate(invalid="ignore"):   # (-0.5) ** A is NaN, as IEEE says
            assert_dl(f(scalar, dlarray(A)), f(scalar, A))

    def test_unary_minus_and_plus(self):
        assert_dl(-dlarray(A), -A)
        assert_dl(+dlarray(A), A)

    def test_abs_operator(self):
        a = A - 1.0
        assert_dl(abs(dlarray(a)), np.abs(a))

    @pytest.mark.parametrize("sa, sb", [((3, 4), (4, 2)), ((4,), (4, 3)), ((3, 4), (4,)), ((4,), (4,)),
                                        ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 4, 2))])
    def test_matmul_operator(self, sa, sb):
        a, b = RNG.standard_normal(sa), RNG.standard_normal(sb)
        assert_dl(dlarray(a) @ dlarray(b), a @ b)
        assert_dl(dlarray(a) @ b, a @ b)
        assert_dl(a @ dlarray(b), a @ b)

    def test_matmul_shape_mismatch_is_value_error(self):
        with pytest.raises(ValueError) as err:
            dlarray(np.zeros((2, 3))) @ dlarray(np.zeros((4, 2)))
        assert "(2, 3)" in str(err.value) and "(4, 2)" in str(err.value)

    @pytest.mark.parametrize("name, op", [("gt", lambda p, q: p > q), ("ge", lambda p, q: p >= q),
                                          ("lt", lambda p, q: p < q), ("le", lambda p, q: p <= q),
                                          ("eq", lambda p, q: p == q), ("ne", lambda p, q: p != q)])
    def test_comparisons(self, name, op):
        a = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        b = np.array([[3.0, 2.0, 1.0], [4.0, 0.0, 7.0]])
        for lhs, rhs in [(dlarray(a), dlarray(b)), (dlarray(a), b), (dlarray(a), 3.0)]:
            expected = op(a, b if not isinstance(rhs, float) else 3.0)
            np.testing.assert_array_equal(np.asarray(op(lhs, rhs)).astype(bool), expected)

    def test_comparison_drives_where_inside_dlfeval(self):
        a = np.array([-1.5, 0.5, 2.0, -0.25])

        def f(x):
            y = symdl.sum(symdl.where(x > 0, x * x, -x))
            return y, dlgradient(y, x)

        y, g = dlfeval(f, dlarray(a))
        assert float(y) == pytest.approx(np.sum(np.where(a > 0, a * a, -a)))
        np.testing.assert_allclose(data(g), np.where(a > 0, 2 * a, -1.0))

    @settings(max_examples=40, deadline=None)
    @given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), st.data())
    def test_broadcast_arithmetic_property(self, shapes, draw):
        sa, sb = shapes.input_shapes
        elems = st.floats(-4, 4, allow_nan=False, allow_infinity=False)
        pos = st.floats(0.5, 4, allow_nan=False, allow_infinity=False)
        a = draw.draw(hnp.arrays(np.float64, sa, elements=elems))
        b = draw.draw(hnp.arrays(np.float64, sb, elements=pos))
        for name in ("add", "sub", "mul", "div"):
            assert_dl(BINARY[name](dlarray(a), dlarray(b)), BINARY[name](a, b))
        assert_dl(dlarray(b) ** dlarray(a), b ** a, rtol=1e-10)
        assert_dl(dlarray(a) + b, a + b)

    @settings(max_examples=25, deadline=None)
    @given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=3, max_side=3), st.data())
    def test_broadcast_traced_property(self, shapes, draw):
        """Inside dlfeval: values and the gradient (un-broadcast) of sum(a * b)."""
        sa, sb = shapes.input_shapes
        elems = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
        a = draw.draw(hnp.arrays(np.float64, sa, elements=elems))
        b = draw.draw(hnp.arrays(np.float64, sb, elements=elems))

        def f(x, y):
            z = x * y
            return z, dlgradient(symdl.sum(z), x, y)

        z, (ga, gb) = dlfeval(f, dlarray(a), dlarray(b))
        assert_dl(z, a * b)
        full = np.broadcast_shapes(sa, sb)
        # reference: d sum(a*b)/da = b summed over the broadcast axes of a
        ref_a = np.broadcast_to(b, full) * np.ones(full)
        ref_b = np.broadcast_to(a, full) * np.ones(full)
        np.testing.assert_allclose(data(ga), _unbroadcast(ref_a, sa), atol=1e-12)
        np.testing.assert_allclose(data(gb), _unbroadcast(ref_b, sb), atol=1e-12)
        assert ga.shape == sa and gb.shape == sb

    def test_broadcast_mismatch_is_value_error(self):
        with pytest.raises(ValueError) as err:
            dlarray(np.zeros((2, 3))) + dlarray(np.zeros(4))
        assert "(2, 3)" in str(err.value) and "(4,)" in str(err.value)
        with pytest.raises(ValueError):
            dlarray(np.zeros((2, 3))) * np.zeros((3, 2))


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, d in enumerate(shape) if d == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


# =============================================================== dtype and fmt preservation

class TestDtypeAndFmt:
    def test_float32_through_elementwise_ops(self):
        a = RNG.uniform(0.1, 0.9, (3, 4)).astype(np.float32)
        x = dlarray(a)
        results = {
            "x+1": x + 1.0, "2*x": 2 * x, "x/3": x / 3.0, "x-x": x - x, "x**2": x ** 2, "x**0.5": x ** 0.5,
            "-x": -x, "exp": np.exp(x), "log": np.log(x), "sqrt": np.sqrt(x), "tanh": np.tanh(x),
            "sin": symdl.sin(x), "maximum": np.maximum(x, 0.5), "where": np.where(a > 0.5, x, 0.0),
            "sum": x.sum(), "mean": x.mean(axis=0), "max": x.max(axis=1), "matmul": x @ x.T,
            "x*f32": x * np.float32(2.0), "x+f32arr": x + np.ones(4, dtype=np.float32),
        }
        for name, r in results.items():
            assert isinstance(r, dlarray), name
            assert r.dtype == np.float32, f"{name} gave {r.dtype}"
        np.testing.assert_allclose(data(results["exp"]), np.exp(a), rtol=1e-6)
        np.testing.assert_allclose(data(results["matmul"]), a @ a.T, rtol=1e-5)

    @pytest.mark.parametrize("other", [2.0, 2, True, np.float32(2.0), np.float64(2.0), np.ones(3, np.float32),
                                       np.ones(3, np.float64)], ids=repr)
    def test_result_dtype_follows_numpy_promotion(self, other):
        a32 = np.full(3, 1.5, dtype=np.float32)
        x = dlarray(a32)
        for r, ref in ((x * other, a32 * other), (other + x, other + a32), (x - other, a32 - other)):
            assert r.dtype == ref.dtype
            np.testing.assert_allclose(data(r), ref, rtol=1e-6)

    def test_float32_with_float64_array_promotes_as_numpy(self):
        x = dlarray(np.ones(3, dtype=np.float32))
        y = x + np.ones(3, dtype=np.float64)
        assert y.dtype == np.float64
        z = x * dlarray(np.ones(3))
        assert z.dtype == np.float64

    def test_elementwise_ops_keep_fmt(self):
        a = RNG.uniform(0.1, 0.9, (3, 4, 5, 2))
        x = dlarray(a, "SSCB")
        other = dlarray(RNG.uniform(0.1, 0.9, (3, 4, 5, 2)), "SSCB")
        for name, r in {
            "add": x + 1.0, "radd": 1.0 + x, "mul": x * other, "neg": -x, "pow": x ** 2, "div": x / other,
            "exp": np.exp(x), "sin": symdl.sin(x), "sqrt": np.sqrt(x), "tanh": symdl.tanh(x),
            "maximum": np.maximum(x, 0.5), "clip": np.clip(x, 0.2, 0.6), "abs": np.abs(x),
            "where": np.where(a > 0.5, x, 0.0), "plain": x * a,
        }.items():
            assert r.fmt == "SSCB", f"{name} gave fmt {r.fmt!r}"
            assert r.shape == a.shape

    def test_elementwise_keeps_fmt_inside_dlfeval(self):
        a = RNG.uniform(0.1, 0.9, (4, 3))

        def f(x):
            return np.exp(x) * 2.0 + x

        out = dlfeval(f, dlarray(a, "CB"))
        assert out.fmt == "CB"
        np.testing.assert_allclose(data(out), np.exp(a) * 2.0 + a)

    def test_slicing_keeps_fmt(self):
        x = dlarray(RNG.standard_normal((4, 6)), "CB")
        assert x[:, 1:4].fmt == "CB"
        assert x[1:3].fmt == "CB"
        assert x[..., ::-1].fmt == "CB"

    def test_concatenate_keeps_fmt(self):
        # as MATLAB's cat: joining observations along B keeps the labels
        a, b = RNG.standard_normal((4, 6)), RNG.standard_normal((4, 2))
        out = np.concatenate([dlarray(a, "CB"), dlarray(b, "CB")], axis=1)
        assert out.fmt == "CB"
        assert_dl(out, np.concatenate([a, b], axis=1))


# =============================================================== indexing

X3 = np.arange(60, dtype=np.float64).reshape(3, 4, 5) * 0.5 - 7.0

INDEX_KEYS = {
    "int": 1,
    "neg_int": -1,
    "two_ints": (1, 2),
    "all_ints": (1, 2, 3),
    "neg_all_ints": (-1, -2, -3),
    "slice": slice(1, 3),
    "slice_step": (slice(None), slice(None, None, 2)),
    "neg_step": slice(None, None, -1),
    "neg_step_inner": (slice(None), slice(3, 0, -2), slice(None, None, -1)),
    "empty_slice": slice(2, 2),
    "none_front": (None, 1),
    "none_middle": (slice(None), None, 2),
    "ellipsis_last": (Ellipsis, 2),
    "ellipsis_first": (1, Ellipsis),
    "ellipsis_none": (Ellipsis, None),
    "ellipsis_middle": (0, Ellipsis, slice(1, 3)),
    "int_array": np.array([2, 0, 2]),
    "neg_int_array": np.array([-1, 0]),
    "list": [0, 2],
    "int_array_axis1": (slice(None), np.array([3, 1])),
    "int_array_2d": np.array([[0, 1], [2, 2]]),
    "two_arrays": (np.array([0, 2]), np.array([1, 3])),
    "two_arrays_adjacent": (slice(None), np.array([0, 2]), np.array([1, 3])),
    "two_arrays_split": (np.array([0, 2]), slice(None), np.array([1, 3])),
    "int_and_array_split": (1, slice(None), np.array([0, 4])),
    "int_and_array_adjacent": (slice(None), 1, np.array([0, 4])),
    "bool_mask_full": X3 > 3.0,
    "bool_mask_axis0": np.array([True, False, True]),
    "bool_mask_axis1": (slice(None), np.array([False, True, True, False])),
    "bool_mask_2d": X3[:, :, 0] > 0.0,
    "slice_and_int": (slice(0, 2), 3),
}


class TestIndexing:
    @pytest.mark.parametrize("name", list(INDEX_KEYS))
    def test_getitem_matches_numpy(self, name):
        key = INDEX_KEYS[name]
        assert_dl(dlarray(X3)[key], X3[key])

    @pytest.mark.parametrize("name", list(INDEX_KEYS))
    def test_getitem_traced_value_and_gradient(self, name):
        key = INDEX_KEYS[name]
        w = np.cos(np.arange(np.asarray(X3[key]).size, dtype=np.float64)).reshape(np.shape(X3[key]))

        def f(x):
            z = x[key]
            return z, dlgradient(symdl.sum(z * w), x)

        z, g = dlfeval(f, dlarray(X3))
        assert_dl(z, X3[key])
        # reference: scatter-add w back to the positions numpy's indexing selects
        pos = np.arange(X3.size).reshape(X3.shape)[key]
        ref = np.bincount(np.ravel(pos), weights=np.ravel(w), minlength=X3.size).reshape(X3.shape)
        np.testing.assert_allclose(data(g), ref, atol=1e-12)

    def test_index_out_of_bounds_is_index_error(self):
        with pytest.raises(IndexError):
            dlarray(X3)[3]
        with pytest.raises(IndexError):
            dlarray(X3)[0, 0, 0, 0]

    @pytest.mark.parametrize("key, value", [
        (1, 7.0),
        ((slice(None), 0), np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])),
        ((0, slice(None), 2), np.arange(4.0)),
        (slice(None, None, -2), -1.0),
        (np.array([0, 0, 2]), np.stack([np.full((4, 5), 1.0), np.full((4, 5), 2.0), np.full((4, 5), 3.0)])),
        (X3 > 10.0, 0.0),
        ((Ellipsis, 1), np.ones((3, 4))),
        ((1, 2, 3), 99.0),
    ])
    def test_setitem_matches_numpy(self, key, value):
        x = dlarray(X3)
        expected = X3.copy()
        expected[key] = value
        x[key] = value
        assert_dl(x, expected)

    def test_setitem_with_dlarray_value_and_fmt_kept(self):
        a = RNG.standard_normal((3, 4))
        x = dlarray(a, "CB")
        x[1:, ::2] = dlarray(np.full((2, 2), 5.0))
        expected = a.copy()
        expected[1:, ::2] = 5.0
        assert x.fmt == "CB"
        assert_dl(x, expected)

    def test_setitem_keeps_float32(self):
        x = dlarray(np.zeros(4, dtype=np.float32))
        x[1] = 2.0
        assert x.dtype == np.float32
        np.testing.assert_array_equal(data(x), [0.0, 2.0, 0.0, 0.0])

    def test_setitem_gradient_inside_dlfeval(self):
        a = RNG.standard_normal(5)
        c = RNG.standard_normal(5)

        def f(x, w):
            z = x * 1.0
            z[1] = w * 3.0
            y = symdl.sum(z * c)
            return z, dlgradient(y, x, w)

        z, (gx, gw) = dlfeval(f, dlarray(a), dlarray(0.5))
        expected = a.copy()
        expected[1] = 1.5
        assert_dl(z, expected)
        ref = c.copy()
        ref[1] = 0.0
        np.testing.assert_allclose(data(gx), ref, atol=1e-12)
        assert float(gw) == pytest.approx(3.0 * c[1])


# =============================================================== movement

class TestReshapeTranspose:
    def test_reshape_forms(self):
        a = RNG.standard_normal((3, 4))
        x = dlarray(a)
        assert_dl(x.reshape(4, 3), a.reshape(4, 3))
        assert_dl(x.reshape((2, 6)), a.reshape((2, 6)))
        assert_dl(x.reshape(-1, 2), a.reshape(-1, 2))
        assert_dl(x.reshape(12), a.reshape(12))
        assert_dl(np.reshape(x, (6, -1)), np.reshape(a, (6, -1)))
        assert_dl(symdl.reshape(x, (2, 2, 3)), a.reshape(2, 2, 3))

    def test_reshape_bad_size_is_value_error(self):
        with pytest.raises(ValueError):
            dlarray(np.zeros((3, 4))).reshape(5, 2)

    def test_transpose_forms(self):
        a = RNG.standard_normal((2, 3, 4))
        x = dlarray(a)
        assert_dl(x.transpose(), a.transpose())
        assert_dl(x.transpose(1, 0, 2), a.transpose(1, 0, 2))
        assert_dl(x.transpose((2, 0, 1)), a.transpose((2, 0, 1)))
        assert_dl(np.transpose(x, (0, 2, 1)), np.transpose(a, (0, 2, 1)))
        assert_dl(np.transpose(x), np.transpose(a))
        m = RNG.standard_normal((3, 5))
        assert_dl(dlarray(m).T, m.T)

    def test_transpose_bad_axes_is_value_error(self):
        with pytest.raises(ValueError):
            dlarray(np.zeros((2, 3))).transpose((0, 0))

    def test_reshape_transpose_gradient(self):
        a = RNG.standard_normal((2, 3))
        w = RNG.standard_normal((3, 2))

        def f(x):
            return dlgradient(symdl.sum(x.reshape(3, 2) * w.T.reshape(3, 2) + x.T * w), x)

        g = dlfeval(f, dlarray(a))
        np.testing.assert_allclose(data(g), w.T.reshape(3, 2).reshape(2, 3) + w.T, atol=1e-12)


# =============================================================== reductions

R3 = RNG.permutation(np.linspace(0.6, 1.5, 60)).reshape(3, 4, 5)   # distinct values: no ties for max/min
REDUCERS = ["sum", "mean", "prod", "max", "min"]
AXES = [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2)]


class TestReductions:
    @pytest.mark.parametrize("name", REDUCERS)
    @pytest.mark.parametrize("axis", AXES)
    @pytest.mark.parametrize("keepdims", [False, True])
    def test_method_and_numpy_function(self, name, axis, keepdims):
        x = dlarray(R3)
        expected = getattr(np, name)(R3, axis=axis, keepdims=keepdims)
        assert_dl(getattr(x, name)(axis=axis, keepdims=keepdims), expected, rtol=1e-12)
        assert_dl(getattr(np, name)(x, axis=axis, keepdims=keepdims), expected, rtol=1e-12)
        assert_dl(getattr(symdl, name)(x, axis, keepdims), expected, rtol=1e-12)

    @pytest.mark.parametrize("name", REDUCERS)
    def test_positional_axis(self, name):
        x = dlarray(R3)
        assert_dl(getattr(x, name)(1), getattr(np, name)(R3, 1))

    @pytest.mark.parametrize("name", REDUCERS)
    @pytest.mark.parametrize("axis", [None, 1, (0, 2)])
    def test_reduction_gradient(self, name, axis):
        w = np.cos(np.arange(getattr(np, name)(R3, axis=axis).size)).reshape(getattr(np, name)(R3, axis=axis).shape)

        def f(x):
            return dlgradient(symdl.sum(getattr(x, name)(axis=axis) * w), x)

        g = dlfeval(f, dlarray(R3))
        ref = numeric_grad(lambda a: float(np.sum(getattr(np, name)(a, axis=axis) * w)), R3)
        np.testing.assert_allclose(data(g), ref, rtol=1e-6, atol=1e-7)

    @pytest.mark.parametrize("name", REDUCERS)
    def test_label_letter_axis(self, name):
        a = RNG.uniform(0.5, 1.5, (3, 4, 5, 2))
        x = dlarray(a, "SSCB")
        ref = getattr(np, name)
        assert_dl(getattr(x, name)(axis="S", keepdims=True), ref(a, axis=(0, 1), keepdims=True))
        assert_dl(getattr(x, name)(axis="S"), ref(a, axis=(0, 1)))
        assert_dl(getattr(x, name)(axis="C", keepdims=True), ref(a, axis=2, keepdims=True))
        assert_dl(getattr(symdl, name)(x, "B"), ref(a, axis=3))
        assert getattr(x, name)(axis="S", keepdims=True).fmt == "SSCB"
        assert getattr(x, name)(axis="S").fmt == "CB"

    def test_label_letter_not_present_is_value_error(self):
        x = dlarray(np.zeros((3, 4)), "CB")
        with pytest.raises(ValueError):
            x.sum(axis="T")

    def test_reduction_bad_axis(self):
        with pytest.raises((ValueError, IndexError)):
            dlarray(np.zeros((3, 4))).sum(axis=2)

    def test_float32_reductions(self):
        a = RNG.uniform(0.5, 1.5, (3, 4)).astype(np.float32)
        for name in REDUCERS:
            r = getattr(dlarray(a), name)(axis=0)
            assert r.dtype == np.float32, name
            np.testing.assert_allclose(data(r), getattr(np, name)(a, axis=0), rtol=1e-5)


# =============================================================== numpy protocols

P = RNG.uniform(0.15, 0.85, (3, 4))      # inside every domain (log, arcsin, arccos, ...)
Q = RNG.uniform(0.15, 0.85, (3, 4))
V4 = RNG.uniform(0.15, 0.85, (4,))
M42 = RNG.uniform(0.15, 0.85, (4, 2))
COND = P > Q
SQ = RNG.uniform(0.15, 0.85, (3, 1, 4))

# name -> (function of numpy-like inputs, list of array inputs); the same call runs
# on the plain arrays (reference) and on dlarrays (through the numpy protocols).
NUMPY_CASES = {
    "exp": (lambda a: np.exp(a), [P]),
    "log": (lambda a: np.log(a), [P]),
    "log1p": (lambda a: np.log1p(a), [P]),
    "expm1": (lambda a: np.expm1(a), [P]),
    "sqrt": (lambda a: np.sqrt(a), [P]),
    "square": (lambda a: np.square(a), [P]),
    "abs": (lambda a: np.abs(a - 0.5), [P]),
    "absolute": (lambda a: np.absolute(a - 0.5), [P]),
    "sign": (lambda a: np.sign(a - 0.5) * a, [P]),
    "sin": (lambda a: np.sin(a), [P]),
    "cos": (lambda a: np.cos(a), [P]),
    "tan": (lambda a: np.tan(a), [P]),
    "arcsin": (lambda a: np.arcsin(a), [P]),
    "arccos": (lambda a: np.arccos(a), [P]),
    "arctan": (lambda a: np.arctan(a), [P]),
    "arctan2": (lambda a, b: np.arctan2(a - 0.5, b - 0.4), [P, Q]),
    "sinh": (lambda a: np.sinh(a), [P]),
    "cosh": (lambda a: np.cosh(a), [P]),
    "tanh": (lambda a: np.tanh(a), [P]),
    "power_scalar": (lambda a: np.power(a, 3), [P]),
    "power_frac": (lambda a: np.power(a, 1.5), [P]),
    "power_array": (lambda a, b: np.power(a, b), [P, Q]),
    "maximum": (lambda a, b: np.maximum(a, b), [P, Q]),
    "minimum": (lambda a, b: np.minimum(a, b), [P, Q]),
    "maximum_scalar": (lambda a: np.maximum(a, 0.5), [P]),
    "where": (lambda a, b: np.where(COND, a, b), [P, Q]),
    "where_scalar": (lambda a: np.where(COND, a, 0.0), [P]),
    "clip": (lambda a: np.clip(a, 0.3, 0.7), [P]),
    "sum": (lambda a: np.sum(a), [P]),
    "sum_axis": (lambda a: np.sum(a, axis=1), [P]),
    "mean": (lambda a: np.mean(a, axis=0), [P]),
    "prod": (lambda a: np.prod(a, axis=1), [P]),
    "max": (lambda a: np.max(a, axis=0), [P]),
    "min": (lambda a: np.min(a), [P]),
    "amax": (lambda a: np.amax(a, axis=1), [P]),
    "matmul": (lambda a, b: np.matmul(a, b), [P, M42]),
    "matmul_vec": (lambda a, b: np.matmul(a, b), [P, V4]),
    "dot": (lambda a, b: np.dot(a, b), [P, M42]),
    "dot_vec": (lambda a, b: np.dot(a, b), [V4, V4]),
    "concatenate": (lambda a, b: np.concatenate([a, b], axis=1), [P, Q]),
    "concatenate0": (lambda a, b: np.concatenate((a, b, a)), [P, Q]),
    "stack": (lambda a, b: np.stack([a, b]), [P, Q]),
    "stack_axis": (lambda a, b: np.stack([a, b], axis=2), [P, Q]),
    "reshape": (lambda a: np.reshape(a, (2, 6)), [P]),
    "transpose": (lambda a: np.transpose(a), [P]),
    "squeeze": (lambda a: np.squeeze(a), [SQ]),
    "squeeze_axis": (lambda a: np.squeeze(a, axis=1), [SQ]),
    "expand_dims": (lambda a: np.expand_dims(a, 1), [P]),
    "expand_dims_neg": (lambda a: np.expand_dims(a, -1), [P]),
    "add_ufunc": (lambda a, b: np.add(a, b), [P, Q]),
    "multiply_ufunc": (lambda a, b: np.multiply(a, b), [P, Q]),
    "divide_ufunc": (lambda a, b: np.divide(a, b), [P, Q]),
    "subtract_ufunc": (lambda a, b: np.subtract(a, b), [P, Q]),
    "negative_ufunc": (lambda a: np.negative(a), [P]),
    "mixed_plain_first": (lambda a: np.add(Q, a) * np.maximum(Q, a), [P]),
}


class TestNumpyProtocols:
    @pytest.mark.parametrize("name", list(NUMPY_CASES))
    def test_untraced_matches_numpy(self, name):
        fn, inputs = NUMPY_CASES[name]
        out = fn(*[dlarray(a) for a in inputs])
        assert_dl(out, fn(*inputs), rtol=1e-12)

    @pytest.mark.parametrize("name", list(NUMPY_CASES))
    def test_traced_matches_numpy_and_differentiates(self, name):
        fn, inputs = NUMPY_CASES[name]
        w = None

        def f(*xs):
            out = fn(*xs)
            assert isinstance(out, dlarray)
            nonlocal w
            w = np.cos(np.arange(out.size)).reshape(out.shape)
            y = symdl.sum(out * w)          # traced: dlgradient would reject an untraced y
            grads = dlgradient(y, *xs)
            return out, grads if len(xs) > 1 else (grads,)

        out, grads = dlfeval(f, *[dlarray(a) for a in inputs])
        assert_dl(out, fn(*inputs), rtol=1e-12)
        for k, g in enumerate(grads):
            def scalar(a, k=k):
                args = list(inputs)
                args[k] = a
                return float(np.sum(fn(*args) * w))
            np.testing.assert_allclose(data(g), numeric_grad(scalar, inputs[k]), rtol=1e-6, atol=1e-7,
                                       err_msg=f"gradient {k} of {name}")

    def test_float32_through_numpy_functions(self):
        a = P.astype(np.float32)
        x = dlarray(a)
        for name in ("exp", "log", "sin", "tanh", "sqrt", "square", "sum", "max", "transpose", "expand_dims"):
            fn, _ = NUMPY_CASES[name]
            r = fn(x)
            assert r.dtype == np.float32, name
            np.testing.assert_allclose(data(r), fn(a), rtol=1e-5)

    @pytest.mark.parametrize("fname, call", [
        ("fft", lambda x: np.fft.fft(x)),
        ("median", lambda x: np.median(x)),
        ("convolve", lambda x: np.convolve(x[0], x[1])),
        ("unique", lambda x: np.unique(x)),
        ("accumulate", lambda x: np.maximum.accumulate(x)),
    ])
    @pytest.mark.parametrize("traced", [False, True])
    def test_unsupported_numpy_function_is_type_error(self, fname, call, traced):
        a = RNG.standard_normal((3, 3))
        if traced:
            with pytest.raises(TypeError) as err:
                dlfeval(call, dlarray(a))
        else:
            with pytest.raises(TypeError) as err:
                call(dlarray(a))
        assert fname in str(err.value)

    def test_ufunc_out_argument_is_rejected(self):
        x = dlarray(P)
        with pytest.raises(TypeError):
            np.exp(x, out=np.empty_like(P))


class TestIndexingProperties:
    @settings(max_examples=80, deadline=None)
    @given(st.data())
    def test_basic_indices_against_numpy(self, draw):
        shape = draw.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
        key = draw.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
        a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) - 3.5
        expected = a[key]
        assert_dl(dlarray(a)[key], expected)

        def f(x):
            z = x[key]
            return dlgradient(symdl.sum(z * z), x)

        pos = np.arange(a.size).reshape(shape)[key]
        ref = np.bincount(np.ravel(pos), weights=2 * np.ravel(expected), minlength=a.size).reshape(shape)
        np.testing.assert_allclose(data(dlfeval(f, dlarray(a))), ref, atol=1e-12)

    @settings(max_examples=40, deadline=None)
    @given(st.data())
    def test_integer_array_indices_against_numpy(self, draw):
        shape = draw.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
        key = draw.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2,
                                                                                      max_side=3)))
        a = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape) * 0.25
        assert_dl(dlarray(a)[key], a[key])


class TestIEEE:
    @pytest.mark.parametrize("name, fn", [
        ("x-x", lambda x: x - x), ("x/x", lambda x: x / x), ("x*0", lambda x: x * 0.0),
        ("2x-x-x", lambda x: x * 2.0 - x - x), ("x/0", lambda x: x / 0.0), ("exp", lambda x: np.exp(x)),
        ("log", lambda x: np.log(x)), ("sqrt", lambda x: np.sqrt(x)), ("maximum", lambda x: np.maximum(x, 0.0)),
        ("sum", lambda x: x.sum()), ("max", lambda x: x.max()), ("x**0", lambda x: x ** 0),
    ])
    def test_nan_and_inf_propagate(self, name, fn):
        a = np.array([np.inf, np.nan, 1.0, -np.inf, 0.0, -2.0])
        with np.errstate(all="ignore"):
            expected = fn(a)
            untraced = data(fn(dlarray(a)))
            traced = data(dlfeval(fn, dlarray(a)))
        np.testing.assert_array_equal(untraced, expected)
        np.testing.assert_array_equal(traced, expected)


# ---------------------------------------------------------------- the operators' direct path
# Outside dlfeval, + - * / on two plain float dlarrays of one shape and dtype,
# or on one and a Python number, compute their result in the operator itself
# (symdl.array._plain).  Everything about the result must be the general
# path's (symdl.functions._elementwise without its own fast case): values to
# the bit, dtype, shape, labels, and which operand is on the left.

_OPS = {"+": (lambda a, b: a + b, "add", {"coeffs": (1.0, 1.0), "const": 0.0}),
        "-": (lambda a, b: a - b, "add", {"coeffs": (1.0, -1.0), "const": 0.0}),
        "*": (lambda a, b: a * b, "mul", {"exps": (1, 1)}),
        "/": (lambda a, b: a / b, "mul", {"exps": (1, -1)})}
_VALUES = np.array([0.0, -0.0, 1.0, -2.5, 1e-310, 1e308, -1e308, 3.4e38, np.inf, -np.inf, np.nan, 0.1])


def _general_path(op, attrs, a, b):
    from symdl.core import apply, to_operands
    from symdl.functions import _fmt_for
    out = apply(op, to_operands([a, b]), **attrs)
    out._fmt = _fmt_for([a, b], out.ndim)
    return out


def _same_bits(fast, general):
    assert type(fast) is dlarray and fast._node is None and fast._trace is None
    assert fast.dtype == general.dtype and fast.shape == general.shape and fast.fmt == general.fmt
    f, g = extractdata(fast), extractdata(general)
    assert type(f) is np.ndarray
    assert np.array_equal(np.isnan(f), np.isnan(g))
    assert f[~np.isnan(f)].tobytes() == g[~np.isnan(g)].tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sym", list(_OPS))
@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
def test_operator_direct_path_is_the_general_path(sym, dtype):
    fn, op, attrs = _OPS[sym]
    with np.errstate(all="ignore"):
        grid = np.array(np.meshgrid(_VALUES, _VALUES)).reshape(2, -1).astype(dtype)
    labelled = [(dlarray(grid[0].reshape(12, 12), "CB"), dlarray(grid[1].reshape(12, 12))),
                (dlarray(grid[0].reshape(12, 12)), dlarray(grid[1].reshape(12, 12), "SB")),
                (dlarray(grid[0].reshape(12, 12), "CB"), dlarray(grid[1].reshape(12, 12), "SB")),
                (dlarray(grid[0]), dlarray(grid[1])),
                (dlarray(grid[0][0]), dlarray(grid[1][0]))]           # 0-d: results are still arrays
    for a, b in labelled:
        _same_bits(fn(a, b), _general_path(op, attrs, a, b))
        _same_bits(type(b).__radd__(b, a) if sym == "+" else fn(a, b), _general_path(op, attrs, a, b))
    x = labelled[0][0]
    for number in [0.1, -0.0, 2, -3, 1e300, float("nan"), float("inf")]:
        _same_bits(fn(x, number), _general_path(op, attrs, x, number))
        _same_bits(fn(number, x), _general_path(op, attrs, number, x))
        assert fn(x, number).dtype == np.dtype(dtype)                 # Python numbers are weak


def test_operator_direct_path_leaves_the_rest_to_the_general_path():
    x32, x64 = dlarray(np.ones(2, np.float32), "C"), dlarray(np.array([1.0, -2.0]))
    assert (x32 * x64).dtype == np.float64 and (x64 - x32).dtype == np.float64   # promotion
    assert (x32 * np.float64(2.0)).dtype == np.float64                           # numpy scalars are strong
    assert (x32 + True).dtype == np.float32 and (x32 * 2 ** 60).dtype == np.float32
    assert_dl(dlarray(np.ones((2, 1))) * x64, np.ones((2, 1)) * np.array([1.0, -2.0]))  # broadcasting
    with pytest.raises(ValueError, match=r"add: shapes \(2,\), \(3,\) cannot be broadcast together"):
        x64 + dlarray(np.ones(3))
    with pytest.raises(TypeError, match="complex"):
        x64 * 1j
    # reflected with a dlarray on the right: the left operand's labels win, as in the general path
    a, b = dlarray(np.ones((2, 3)), "CB"), dlarray(np.ones((2, 3)), "SB")
    assert a.__radd__(b).fmt == "SB" and a.__rmul__(b).fmt == "SB" and a.__rsub__(b).fmt == "SB"
    assert_dl(a.__rsub__(b * 3.0), np.full((2, 3), 2.0))
    assert_dl(a.__rtruediv__(b * 3.0), np.full((2, 3), 3.0))

    def f(x):  # inside dlfeval the operators trace
        y = x * x - 0.5 * x
        assert y._node is not None
        return dlgradient(symdl.sum(y), x)
    assert_dl(dlfeval(f, x64), 2 * np.array([1.0, -2.0]) - 0.5)
