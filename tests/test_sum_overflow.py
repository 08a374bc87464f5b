"""Sums whose partial sums overflow (issue 10, item 7; docs/ieee.md).

``reduce_sum`` (behind ``sum``, ``mean`` and every composite that sums) is
overflow-safe, by one rule in the interpreter and in compiled code, default
and ``ieee=True``: a NaN term, or both +inf and -inf, give NaN; else an
infinite term gives that infinity; else the result is the sum of the terms,
finite when the exact sum is representable and inf of its sign when it is not.

Reference: the exact sum of the terms (``fractions.Fraction``; its ``float``
is correctly rounded and raises OverflowError exactly when the sum overflows)
and the inf/NaN rule above.  (``math.fsum`` is not usable as the reference:
it raises OverflowError on an intermediate overflow too,
``fsum([1e308, 1e308, -1e308])``.)  Most data are small integers times a
large power of two, so every summation order is exact and the results can be
compared bit for bit.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import symdl
from symdl import dlarray, dlfeval

from symdl.ir.ops.reduce import overflow_safe_sum

INF, NAN = np.inf, np.nan
DTYPES = ["float64", "float32"]


def _big(dtype: str) -> float:
    """A power of two 2**-8 times the overflow threshold: sums of integers k
    times it are exact, and overflow exactly when |sum k| >= 256."""
    return 2.0 ** (np.finfo(dtype).maxexp - 8)


def exact_sum(values, dtype: str) -> float:
    """The reference: the inf/NaN rule, else the exact sum rounded once."""
    values = [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]
    if any(v != v for v in values) or (INF in values and -INF in values):
        return NAN
    if INF in values or -INF in values:
        return INF if INF in values else -INF
    total = sum((Fraction(v) for v in values), Fraction(0))
    limit = Fraction(float(np.finfo(dtype).max))
    try:
        rounded = float(total)  # correctly rounded to float64
    except OverflowError:
        return INF if total > 0 else -INF
    if dtype == "float32":
        # the exact sum rounded to float32 overflows from max + half an ulp on
        half_ulp = Fraction(2) ** (np.finfo(dtype).maxexp - 1 - np.finfo(dtype).nmant - 1)
        if abs(total) >= limit + half_ulp:
            return INF if total > 0 else -INF
        return float(np.float32(rounded))
    return rounded


def exact_sum_axes(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``exact_sum`` of each output element of a sum over ``axes``."""
    kept = [a for a in range(x.ndim) if a not in axes]
    rows = np.transpose(x, kept + list(axes)).reshape(
        [x.shape[a] for a in kept] + [-1])
    flat = rows.reshape(-1, rows.shape[-1])
    out = np.array([exact_sum(r, x.dtype.name) for r in flat], dtype=x.dtype)
    return out.reshape([x.shape[a] for a in kept])


def _interpreted(f, x):
    """The interpreter's value: ``f`` traced under dlfeval."""
    return np.asarray(dlfeval(f, dlarray(x))._value)


def _compiled(f, x):
    """Compiled values: default (dlaccelerate and compile) and ieee=True."""
    acc = symdl.dlaccelerate(f)
    acc(dlarray(x))  # (the first call traces)
    return {"dlaccelerate": np.asarray(acc(dlarray(x))._value),
            "compile": np.asarray(symdl.compile(f, x)(x)),
            "ieee": np.asarray(symdl.compile(f, x, ieee=True)(x))}


def _assert_all(f, x, want, exact=True):
    """Interpreter, compiled and compiled ieee=True all give ``want``
    (bitwise when ``exact``, else to the roundings of a sum)."""
    got = {"interpreter": _interpreted(f, x), **_compiled(f, x)}
    for how, value in got.items():
        assert value.dtype == x.dtype, how
        if exact:
            np.testing.assert_array_equal(value, want, err_msg=how)
        else:
            np.testing.assert_allclose(value, want, rtol=1e-12 if x.dtype == np.float64 else 1e-5,
                                       err_msg=how)


# ---------------------------------------------------------------- the issue's example

def test_issue_example():
    x = np.array([1e308, 1e308, -1e308, -1e308] * 2)
    with np.errstate(all="ignore"):
        assert np.isnan(np.sum(x))  # numpy's pairwise sum: inf - inf
    _assert_all(np.sum, x, 0.0)
    # the untraced path (numpy on a dlarray outside any trace) too
    np.testing.assert_array_equal(np.sum(dlarray(x))._value, 0.0)
    np.testing.assert_array_equal(symdl.mean(dlarray(x))._value, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_overflow_on_the_way(dtype, where):
    big = _big(dtype)
    ks = {"start": [200, 200, -200, -199, 1, 2, 3],
          "middle": [1, 2, 200, 200, -200, -199, 3],
          "end": [1, 2, 3, 200, 200, -200, -199]}[where]
    x = np.array(ks, dtype=dtype) * np.array(big, dtype=dtype)
    want = exact_sum(x, dtype)
    assert want == 7 * big
    _assert_all(np.sum, x, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ks, finite", [
    ([200, 200], False), ([-200, -200], False),         # a true overflow: inf of its sign
    ([200, 56], False), ([200, 55], True),             # at the threshold (256 * 2**-8 of 2**maxexp)
    ([-200, 200, -200, -200, 200], True),
    ([255, 255, -255], True), ([-255, -255, 255], True),
])
def test_true_overflow_and_threshold(dtype, ks, finite):
    x = np.array(ks, dtype=dtype) * np.array(_big(dtype), dtype=dtype)
    want = exact_sum(x, dtype)
    assert np.isfinite(want) == finite
    _assert_all(np.sum, x, want)


def test_reference_is_exact():
    # the reference itself, against hand-computed values
    assert exact_sum([1e308, 1e308, -1e308], "float64") == 1e308
    assert exact_sum([1e308, 1e308], "float64") == INF
    assert exact_sum([-1e308, -1e308, 1.0], "float64") == -INF
    assert np.isnan(exact_sum([INF, -INF, 1.0], "float64"))
    assert np.isnan(exact_sum([NAN, INF], "float64"))
    assert exact_sum([INF, 1e308, 1e308, -1e308], "float64") == INF
    assert exact_sum([3e38, 3e38], "float32") == INF
    assert exact_sum([3e38, 3e38, -3e38], "float32") == float(np.float32(3e38))


# ---------------------------------------------------------------- every length, every combination

def _base_rows(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Integer rows of n terms: partial sums that overflow but cancel (the
    positives first, or shuffled), a true overflow of either sign, and small
    terms that never overflow."""
    half = n // 2
    pos = rng.integers(130, 250, half)
    cancel = np.concatenate([pos, -(pos + rng.integers(-3, 4, half)), rng.integers(-5, 6, n - 2 * half)])
    shuffled = rng.permutation(cancel)
    sign = rng.choice([-1, 1])
    return [cancel, -cancel, shuffled, sign * rng.integers(150, 250, n), rng.integers(-20, 21, n)]


def _rows(n: int, dtype: str, rng: np.random.Generator) -> np.ndarray:
    """Rows of n terms: the integer rows above times the big power of two,
    each also with NaN, +inf, -inf in every combination at random places,
    and the issue's pattern shifted through the row."""
    big = np.array(_big(dtype), dtype=dtype)
    rows = []
    for special in ([], [NAN], [INF], [-INF], [INF, -INF], [NAN, INF], [NAN, -INF], [NAN, INF, -INF]):
        if len(special) > n:
            continue
        for ks in _base_rows(n, rng):
            row = ks.astype(dtype) * big
            row[rng.choice(n, len(special), replace=False)] = special
            rows.append(row)
    for shift in range(0, n, max(1, n // 4)):
        pattern = np.resize(np.array([250, 250, -250, -250]), n)
        pattern[-1] -= pattern.sum() if n % 4 == 1 else 0  # (n = 4m + 1: cancel the lone 250)
        if n % 4 in (2, 3):
            pattern[-(n % 4):] = np.array([1, -1, 2])[:n % 4]
        rows.append(np.roll(pattern, shift).astype(dtype) * big)
    return np.array(rows, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", list(range(1, 41)) + [1000])
def test_lengths_and_special_values(dtype, n):
    rng = np.random.default_rng(n)
    x = _rows(n, dtype, rng)
    want = exact_sum_axes(x, (1,))
    if n >= 4:  # (the data cover what they are meant to: a finite sum after an overflow on the way)
        with np.errstate(all="ignore"):
            partial_overflow = ~np.isfinite(np.cumsum(x, axis=1)).all(axis=1)
        assert (np.isfinite(want) & partial_overflow).any() and np.isinf(want).any() and np.isnan(want).any()
    f = lambda v: np.sum(v * 0.5, axis=1)  # noqa: E731  (a producer cone, recomputed by the careful path)
    _assert_all(f, x, exact_sum_axes(x * np.asarray(0.5, dtype), (1,)))
    # the same sums as full reductions (one output element), row by row
    row = x[len(x) // 2]
    entry = symdl.compile(np.sum, row)
    strict = symdl.compile(np.sum, row, ieee=True)
    for r, w in zip(x, want):
        np.testing.assert_array_equal(entry(r), w)
        np.testing.assert_array_equal(strict(r), w)
        np.testing.assert_array_equal(overflow_safe_sum(r, (0,)), w)


# ---------------------------------------------------------------- axis reductions

AXES_2D = [(0,), (1,), (0, 1)]
AXES_3D = [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axes", [((9, 11), a) for a in AXES_2D] + [((5, 6, 7), a) for a in AXES_3D])
def test_axis_reductions(dtype, shape, axes):
    rng = np.random.default_rng(len(shape) * 10 + sum(axes))
    big = np.array(_big(dtype), dtype=dtype)
    x = rng.integers(-100, 101, shape).astype(dtype) * big  # partial sums overflow, some finals too
    # NaN and infinities in every combination, in the even output elements only
    kept = [a for a in range(x.ndim) if a not in axes]
    out_of = np.ravel_multi_index(np.indices(shape)[kept], [shape[a] for a in kept]) if kept \
        else np.zeros(shape, dtype=int)
    flat, even = x.reshape(-1), np.flatnonzero(out_of.reshape(-1) % 2 == 0)
    flat[rng.choice(even, 3, replace=False)] = [NAN, INF, -INF]
    flat[rng.choice(even, 4, replace=False)] = [INF, INF, -INF, -INF]
    want = exact_sum_axes(x, axes)
    if want.size >= 6:  # (the data cover what they are meant to)
        assert np.isnan(want).any() and np.isinf(want).any() and np.isfinite(want).any()
    f = lambda v: symdl.sum(v, axis=axes) if isinstance(v, dlarray) else np.sum(v, axis=axes)  # noqa: E731
    _assert_all(f, x, want)


def test_axis_reductions_overflow_partially():
    # per output element: a finite sum whose partial sums overflow, next to
    # true overflows and plain sums (the careful path per element, not per array)
    big = _big("float64")
    x = np.array([[250, 250, -250, -249], [250, 250, 1, 1], [1, 2, 3, 4], [-250, -250, 250, 250]]) * big
    want = exact_sum_axes(x, (1,))
    np.testing.assert_array_equal(want, [big, INF, 10 * big, 0.0])
    _assert_all(lambda v: np.sum(v, axis=1), x, want)
    _assert_all(lambda v: np.sum(v.T, axis=0), x, want)


# ---------------------------------------------------------------- finite sums stay what they were

@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_sums_that_do_not_overflow_are_unchanged(dtype):
    rng = np.random.default_rng(7)
    scale = np.finfo(dtype).max / 4000
    x = (rng.standard_normal((3, 1000)) * scale).astype(dtype)
    x[1] = np.abs(x[1])  # large but finite: sum ~ 0.2 max
    f = lambda v: np.sum(v, axis=1)  # noqa: E731
    with np.errstate(all="raise"):
        numpy_sum = np.sum(x, axis=1)
    # the interpreter: numpy's sum, bit for bit
    np.testing.assert_array_equal(_interpreted(f, x), numpy_sum)
    np.testing.assert_array_equal(overflow_safe_sum(x, (1,)), numpy_sum)
    # ieee=True: left to right, bit for bit
    left_to_right = np.zeros(3, dtype=dtype)
    for j in range(x.shape[1]):
        left_to_right = left_to_right + x[:, j]
    np.testing.assert_array_equal(symdl.compile(f, x, ieee=True)(x), left_to_right)
    # default: a vectorised order, within the roundings of the exact sum
    want = exact_sum_axes(x, (1,))
    tol = 1e-12 if dtype == "float64" else 1e-4
    np.testing.assert_allclose(symdl.compile(f, x)(x), want, rtol=tol)
    assert np.isfinite(want).all()


def test_overflow_safe_sum_keeps_integer_sums():
    # (integer data never reach reduce_sum from the public functions, but
    # the helper must not turn them into floats)
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    out = overflow_safe_sum(x, (1,))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [3, 12])


# ---------------------------------------------------------------- composites keep their stable results

def test_composites_with_huge_values():
    big = _big("float64")
    x = np.array([250, 250, -250, -250, 4, 200, 50, -246]) * big
    cases = [
        # (function, exact reference)
        (lambda v: symdl.mean(v) if isinstance(v, dlarray) else np.mean(v), 1.0 * big),
        (lambda v: np.sum(v * 0.25 + v * 0.25), 4.0 * big),
        (lambda v: symdl.mean(v * 0.5, axis=0) if isinstance(v, dlarray) else np.mean(v * 0.5, axis=0), 0.5 * big),
    ]
    for f, want in cases:
        _assert_all(f, x, want)
    # logsumexp and softmax subtract the maximum first: finite, as before
    z = np.array([[1e308, 1e308 - 2e292, -1e308], [1.0, 2.0, 3.0]])

    def lse(v):
        m = np.max(v, axis=1, keepdims=True)
        return np.log(np.sum(np.exp(v - m), axis=1)) + m[:, 0]
    with np.errstate(all="ignore"):
        want = lse(z)
    assert np.isfinite(want).all()
    _assert_all(lse, z, want, exact=False)
    with np.errstate(over="ignore"):
        e = np.exp(z.T - z.T.max(axis=0))
    want = e / e.sum(axis=0)
    traced = dlfeval(symdl.softmax, dlarray(z.T, "CB"))
    np.testing.assert_allclose(np.asarray(traced._value), want, rtol=1e-12)
    acc = symdl.dlaccelerate(symdl.softmax)
    acc(dlarray(z.T, "CB"))
    np.testing.assert_allclose(np.asarray(acc(dlarray(z.T, "CB"))._value), want, rtol=1e-12)


def test_crossentropy_with_huge_logits():
    logits = np.array([[1e308, 1.0], [-1e308, 2.0], [5.0, 3.0]])  # C x B
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])

    def loss(y):
        return symdl.crossentropy(symdl.softmax(y), dlarray(targets, "CB"))
    # the exact loss: -log softmax at the targets: -log(1) for B=0; for B=1,
    # log(sum exp(z - 3)) - (2 - 3)
    want = (0.0 + np.log(np.exp(-2.0) + np.exp(-1.0) + 1.0) + 1.0) / 2
    traced = dlfeval(loss, dlarray(logits, "CB"))
    np.testing.assert_allclose(float(traced._value), want, rtol=1e-12)
    acc = symdl.dlaccelerate(loss)
    acc(dlarray(logits, "CB"))
    np.testing.assert_allclose(float(acc(dlarray(logits, "CB"))._value), want, rtol=1e-12)


def test_gradient_of_an_overflowing_sum_is_a_broadcast():
    x = np.array([1e308, 1e308, -1e308, -1e308, 3.0])
    v, g = symdl.value_and_grad(lambda v: np.sum(v * 0.5))(x)
    np.testing.assert_array_equal(v, 1.5)
    np.testing.assert_array_equal(g, np.full(5, 0.5))
    v, g = symdl.value_and_grad(lambda v: np.sum(v * 0.5), ieee=True)(x)
    np.testing.assert_array_equal(v, 1.5)
    np.testing.assert_array_equal(g, np.full(5, 0.5))


# ---------------------------------------------------------------- the helper other sum lowerings can call

def test_recheck_sums_scans_the_output_when_not_told(monkeypatch):
    # recheck_sums without any_bad (as a contraction kernel would call it on
    # its output): a reduce_sum lowering that stores plain sums and leaves
    # the rest to the helper gives the overflow-safe sums
    import dataclasses

    from codegen.compiler import compile_graph
    from codegen.lower import LOWERINGS
    from codegen.lower import reduce as lower_reduce
    from symdl.ir import build as B
    from symdl.ir.interpret import interpret

    def plain_then_recheck(em, kernel):
        node = kernel.node
        accumulate = lower_reduce._accumulator(em, kernel, 0.0)
        em.loop_nest(node.shape, lambda idx: em.store(
            accumulate(idx, lambda b, a, v: b.fadd(a, v)), kernel.out, idx, node.dtype))
        lower_reduce.recheck_sums(em, kernel.out, node.shape, node.dtype, lambda idx, scale: accumulate(
            idx, lambda b, a, v: b.fadd(a, b.fmul(v, scale))))

    patched = dataclasses.replace(LOWERINGS["reduce_sum"], kernel=plain_then_recheck)
    monkeypatch.setitem(LOWERINGS, "reduce_sum", patched)
    big = _big("float64")
    x = np.array([[250, 250, -250, -249], [250, 250, 1, 1], [1, 2, 3, 4], [-250, -250, 250, 250]]) * big
    x[2, 1] = NAN
    node = B.input_node("x", x.shape, "float64")
    out = B.reduce_sum(node, (1,))
    (got,) = compile_graph([node], [out]).entry()(x)
    want = exact_sum_axes(x, (1,))
    np.testing.assert_array_equal(want, [big, INF, NAN, 0.0])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(interpret([out], {node: x})[0], want)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_row_sums_split_across_threads_recheck_their_own_rows(threads):
    """A row-sum kernel large enough to be split across threads
    (codegen.parallel): rows whose partial sums overflow are re-summed by the
    thread that computed them, with the same results for every thread count."""
    from codegen import parallel
    rows, cols = 1024, 512                        # 2^19 element-operations: above the split threshold
    rng = np.random.default_rng(5)
    unit = 2.0 ** 1012                            # every partial sum a multiple: exact in any order
    x = rng.integers(-3, 4, (rows, cols)) * unit
    big = 2.0 ** 1023
    for r in (0, 1, 511, 512, 777, 1023):         # rows at each thread's edges
        x[r, :4] = [big, big, -big, -big]         # exact sum unchanged; a partial sum overflows
    x[300, 0], x[300, 1] = np.inf, -np.inf        # NaN by the rule
    with np.errstate(all="ignore"):
        want = x.sum(axis=1)
    for r in (0, 1, 511, 512, 777, 1023):
        want[r] = x[r, 4:].sum()                  # small integers: exact in any order
    want[300] = np.nan
    before = parallel.num_threads()
    try:
        parallel.set_num_threads(threads)
        got = symdl.compile(lambda a: symdl.sum(a * 1.0, axis=1), x)(x)
    finally:
        parallel.set_num_threads(before)
    np.testing.assert_array_equal(np.asarray(got), want)


# ---------------------------------------------------------------- contractions
# The sums of products of dot_general follow the rule too: products rounded
# as IEEE rounds them (here all exact), then the overflow-safe sum.

def _exact_matmul(a: np.ndarray, b: np.ndarray, dtype: str) -> np.ndarray:
    out = np.empty((a.shape[0], b.shape[1]))
    for i in range(a.shape[0]):
        for j in range(b.shape[1]):
            with np.errstate(all="ignore"):
                products = a[i] * b[:, j]                       # rounded in the dtype, as IEEE does
            out[i, j] = exact_sum(products, dtype)
    return out


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 5, 2), (40, 70, 33), (130, 140, 150)])   # loop nest, generated kernel, BLAS size
@pytest.mark.parametrize("blas", ["auto", "0", "always"])
def test_contractions_whose_partial_sums_overflow(dtype, shape, blas, monkeypatch):
    monkeypatch.setenv("SYMDL_BLAS", blas)
    m, k, n = shape
    rng = np.random.default_rng(m + k)
    big = _big(dtype)
    a = (rng.integers(-2, 3, (m, k)) * big).astype(dtype)
    b = rng.integers(1, 3, (k, n)).astype(dtype)                # products: small integers times big (or inf)
    # (no product overflows: a fused multiply-add, BLAS's or the generated
    # kernel's, would carry it exactly; docs/ieee.md)
    b[:8] = 2
    plus = min(4, k - 2)
    a[0] = 0.0
    a[0, :plus] = 48 * big                                      # partial sums of 384 big (288 for k = 5) overflow
    a[0, plus:plus + 2] = -48 * big                             # the exact sum is finite
    a[m - 1, :2] = [np.inf, -np.inf]                            # NaN by the rule
    if m > 2:
        a[1] = 0.0
        a[1, :5] = 64 * big                                      # overflows truly: 64 * (2 + 2 + 2 + 2 + 2) big
    want = _exact_matmul(a, b, dtype)
    f = lambda x, y: x @ y  # noqa: E731
    interpreted = symdl.extractdata(dlfeval(f, dlarray(a), dlarray(b)))
    compiled = np.asarray(symdl.compile(f, a, b)(a, b))
    strict = np.asarray(symdl.compile(f, a, b, ieee=True)(a, b))
    for got in (interpreted, compiled, strict):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want.astype(dtype))


def test_contraction_with_batch_axes_and_transposes():
    """A batched contraction with the contracted axis first in one operand
    (a transposed layout) and an overflowing partial sum in one batch."""
    big = _big("float64")
    rng = np.random.default_rng(3)
    a = rng.integers(-2, 3, (2, 6, 5)) * big                    # batch, k, m
    b = rng.integers(1, 3, (2, 6, 4)) * 1.0                     # batch, k, n
    a[1, :6, 2] = [64 * big, 64 * big, 64 * big, 64 * big, -64 * big, -64 * big]
    b[1, :6] = 2.0                                              # partial sums of 512 big overflow; products do not
    import symdl.numpy as snp
    f = lambda x, y: snp.einsum("pkm,pkn->pmn", x, y)  # noqa: E731
    want = np.stack([_exact_matmul(a[p].T, b[p], "float64") for p in range(2)])
    np.testing.assert_array_equal(symdl.extractdata(dlfeval(f, dlarray(a), dlarray(b))), want)
    np.testing.assert_array_equal(np.asarray(symdl.compile(f, a, b)(a, b)), want)
