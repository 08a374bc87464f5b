"""The native dispatcher of transform calls with numpy arrays
(codegen/pyentry.py ArrayDispatcher): the Python path's answers bit for bit,
fresh result arrays, anything it cannot check handed to the Python path,
every change of the function noticed, no leaked references."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import symdl
from codegen import pyentry

pytestmark = pytest.mark.skipif(not pyentry.arrays_available(),
                                reason="this numpy's object layout is not one the dispatcher knows")


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_grad(x):
    """Hand-written gradient (the reference)."""
    g = np.zeros_like(x)
    r = x[1:] - x[:-1] ** 2
    g[:-1] = -400.0 * x[:-1] * r - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * r
    return g


def rosen_hvp(x, v):
    """Hand-written Hessian-vector product (tridiagonal Hessian)."""
    d = np.zeros_like(x)
    d[:-1] = 1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0
    d[1:] += 200.0
    off = -400.0 * x[:-1]
    hv = d * v
    hv[:-1] += off * v[1:]
    hv[1:] += off * v[:-1]
    return hv


def point(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-2.0, 2.0, n)


def native_hits(transform) -> int:
    """Calls answered by native dispatchers of this transform, counted in
    native code."""
    return sum(made[1].value for made in transform._cache._made.values() if made is not None)


def is_native(transform) -> bool:
    cache = transform._cache
    return cache._native is not None and cache.entry is not cache._python_entry


def python_path(transform, *args):
    """The same call answered by the Python path of the same cache."""
    return transform._cache._python_entry(*args)


def assert_same(got, want) -> None:
    """Same tree, same types, same dtypes, same bits."""
    assert type(got) is type(want)
    if isinstance(got, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w)
    elif isinstance(got, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
    else:
        assert got == want or (np.isnan(got) and np.isnan(want))


def warm(transform, *args):
    """Two calls: the second of a signature installs the dispatcher."""
    transform(*args)
    transform(*args)
    assert is_native(transform)


# ---------------------------------------------------------------- same answers

def test_hvp_goes_native_with_the_python_paths_bits():
    h = symdl.hvp(rosen)
    x, v = point(50, 1), point(50, 2)
    h(x, v)
    assert not is_native(h)             # built on the second call of the signature
    h(x, v)
    assert is_native(h)
    before = native_hits(h)
    for seed in range(20):
        x, v = point(50, seed), point(50, seed + 100)
        got = h(x, v)
        np.testing.assert_allclose(got, rosen_hvp(x, v), rtol=1e-12, atol=1e-9)
        assert_same(got, python_path(h, x, v))
    assert native_hits(h) - before == 20


def test_grad_value_and_grad_jacobian_same_as_python_path():
    x = point(10, 3)
    g = symdl.grad(rosen)
    warm(g, x)
    got = g(x)
    np.testing.assert_allclose(got, rosen_grad(x), rtol=1e-13, atol=1e-12)
    assert_same(got, python_path(g, x))

    vg = symdl.value_and_grad(rosen)
    warm(vg, x)
    got = vg(x)
    assert isinstance(got, tuple) and isinstance(got[0], np.ndarray) and got[0].shape == ()
    np.testing.assert_allclose(got[0], rosen(x), rtol=1e-13)
    np.testing.assert_allclose(got[1], rosen_grad(x), rtol=1e-13, atol=1e-12)
    assert_same(got, python_path(vg, x))

    def two(a, b):
        return np.sum(a * np.sin(b))
    vg2 = symdl.value_and_grad(two, argnums=(0, 1))
    a, b = point(4, 5), point(4, 6)
    warm(vg2, a, b)
    got = vg2(a, b)
    np.testing.assert_allclose(got[1][0], np.sin(b), rtol=1e-14)
    np.testing.assert_allclose(got[1][1], a * np.cos(b), rtol=1e-14)
    assert_same(got, python_path(vg2, a, b))

    j = symdl.jacobian(lambda x: np.sin(x) * x[0])
    warm(j, x)
    got = j(x)
    want = np.diag(np.cos(x) * x[0])
    want[:, 0] += np.sin(x)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)
    assert_same(got, python_path(j, x))


def test_float32_and_matrices():
    w = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    g = symdl.grad(lambda w, x: np.sum(np.tanh(w @ x)))
    x = np.linspace(-1, 1, 4).astype(np.float32)
    warm(g, w, x)
    got = g(w, x)
    assert got.dtype == np.float32 and got.shape == (3, 4)
    want = (1 - np.tanh(w.astype(np.float64) @ x) ** 2)[:, None] * x[None, :]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert_same(got, python_path(g, w, x))
    before = native_hits(g)
    fortran = np.asfortranarray(w)      # same shape and dtype, not C-contiguous
    assert_same(g(fortran, x), got)
    assert native_hits(g) == before


def test_zero_dimensional_arrays():
    g = symdl.grad(lambda x: x ** 3)
    x = np.array(2.0)
    warm(g, x)
    got = g(np.array(-1.5))
    assert type(got) is np.ndarray and got.shape == () and float(got) == 3 * 1.5 ** 2
    assert_same(got, python_path(g, np.array(-1.5)))


def test_read_only_inputs_are_read_natively():
    h = symdl.hvp(rosen)
    x, v = point(20, 1), point(20, 2)
    warm(h, x, v)
    x.flags.writeable = False
    before = native_hits(h)
    np.testing.assert_allclose(h(x, v), rosen_hvp(x, v), rtol=1e-12, atol=1e-9)
    assert native_hits(h) == before + 1


# ---------------------------------------------------------------- the slow path

class Sub(np.ndarray):
    pass


def slow_cases(x):
    """(what, argument) pairs the dispatcher compiled for ``x`` hands to the
    Python path (float64, shape (8,), C-contiguous, native order)."""
    wide = np.empty(16)
    wide[::2] = x
    raw = np.zeros(8 * 8 + 1, dtype=np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float64, count=8, offset=1)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    return [("float32", x.astype(np.float32)), ("shape", np.concatenate([x, x])), ("ndim", x.reshape(2, 4)),
            ("non-contiguous", wide[::2]), ("big-endian", x.astype(">f8")), ("subclass", x.view(Sub)),
            ("unaligned", unaligned), ("Fortran order", np.asfortranarray(x.reshape(2, 4)))]


def wave(x):
    return np.sum(np.sin(x) * x)


def wave_grad(x):
    return np.sin(x) + x * np.cos(x)


@pytest.mark.parametrize("case", [c[0] for c in slow_cases(np.zeros(8))])
def test_arguments_it_cannot_check_take_the_python_path(case):
    x = point(8, 7)
    g = symdl.grad(wave)
    warm(g, point(8, 8))
    arg = dict(slow_cases(x))[case]
    before = native_hits(g)
    got = g(arg)
    assert native_hits(g) == before     # not answered natively
    want = wave_grad(np.asarray(arg, dtype=np.float64))
    tol = dict(rtol=1e-6, atol=1e-6) if case == "float32" else dict(rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, **tol)
    if case in ("big-endian", "non-contiguous", "unaligned"):
        assert_same(got, g(np.ascontiguousarray(x)))  # same signature: same answer as a plain array
    # and the dispatcher still answers plain arrays
    np.testing.assert_allclose(g(x), wave_grad(x), rtol=1e-14, atol=1e-15)


def test_a_list_instead_of_an_array():
    g = symdl.grad(lambda x: x[0] * x[1] ** 2)
    x = np.array([1.5, -2.0])
    warm(g, x)
    before = native_hits(g)
    got = g([1.5, -2.0])                # a container of floats: the Python path's tree of floats
    assert native_hits(g) == before
    assert got == [4.0, -6.0] and all(type(v) is float for v in got)
    np.testing.assert_array_equal(g(x), [4.0, -6.0])


def test_a_float_where_an_array_was_compiled():
    g = symdl.grad(lambda x, s: s * np.sum(x ** 2))
    x = point(5, 1)
    warm(g, x, np.array(3.0))
    before = native_hits(g)
    got = g(x, 3.0)                     # a Python float where a 0-d array was compiled
    np.testing.assert_allclose(got, 6.0 * x, rtol=1e-15)
    got = g(x, 2.5)
    np.testing.assert_allclose(got, 5.0 * x, rtol=1e-15)
    assert native_hits(g) == before
    assert_same(g(x, np.array(3.0)), python_path(g, x, np.array(3.0)))


def test_mixed_signatures_go_native_with_float_results():
    def f(x, s, t):
        return s * np.sum(x ** 2) + np.sin(t) * s
    g = symdl.grad(f, argnums=(0, 1, 2))
    x = point(4, 3)
    warm(g, x, 0.5, 2.0)
    before = native_hits(g)
    for s, t in [(3.0, 0.25), (-1.5, 4.0), (0.0, -2.0)]:
        got = g(x, s, t)
        assert type(got) is tuple and type(got[1]) is float and type(got[2]) is float
        np.testing.assert_allclose(got[0], 2 * s * x, rtol=1e-15)
        assert got[1] == pytest.approx(np.sum(x ** 2) + np.sin(t), rel=1e-14)
        assert got[2] == pytest.approx(np.cos(t) * s, rel=1e-14, abs=1e-300)
        assert_same(got, python_path(g, x, s, t))
    assert native_hits(g) == before + 3
    got = g(x, np.array(3.0), 0.25)     # an array where a float was compiled: the Python path
    assert isinstance(got[1], np.ndarray) and float(got[1]) == pytest.approx(np.sum(x ** 2) + np.sin(0.25))
    assert native_hits(g) == before + 3
    vg = symdl.value_and_grad(lambda x, s: s * np.sum(x ** 2))
    warm(vg, x, 2.0)
    got = vg(x, 2.5)
    np.testing.assert_allclose(got[0], 2.5 * np.sum(x ** 2), rtol=1e-15)
    assert_same(got, python_path(vg, x, 2.5))


def test_wrong_argument_count_is_the_python_paths_error():
    g = symdl.grad(rosen)
    warm(g, point(4))
    with pytest.raises(TypeError):
        g(point(4), point(4))
    with pytest.raises(ValueError, match="argnums 0"):
        g()


def test_edits_of_the_function_are_noticed():
    scale = 2.0

    def f(x):
        return scale * np.sum(x ** 2)

    g = symdl.grad(f)
    x = point(6, 2)
    warm(g, x)
    np.testing.assert_allclose(g(x), 4.0 * x, rtol=1e-15)
    scale = 5.0                         # the closure cell now holds another value
    np.testing.assert_allclose(g(x), 10.0 * x, rtol=1e-15)

    def other(x):
        return scale * np.sum(x ** 4)
    f.__code__ = other.__code__
    np.testing.assert_allclose(g(x), 20.0 * x ** 3, rtol=1e-14)
    np.testing.assert_allclose(g(x), 20.0 * x ** 3, rtol=1e-14)


def test_alternating_signatures_reuse_their_dispatchers():
    g = symdl.grad(rosen)
    a, b = point(6, 1), point(9, 2)
    for _ in range(3):
        warm(g, a)
        warm(g, b)
    assert len(g._cache._made) == 2     # one per signature, each built once
    np.testing.assert_allclose(g(a), rosen_grad(a), rtol=1e-13)
    np.testing.assert_allclose(g(b), rosen_grad(b), rtol=1e-13)


def test_clear_cache_drops_the_dispatcher():
    g = symdl.grad(rosen)
    x = point(5)
    warm(g, x)
    g.clear_cache()
    assert not is_native(g) and not g._cache._made and g.n_traces == 0
    np.testing.assert_allclose(g(x), rosen_grad(x), rtol=1e-13)
    warm(g, x)                          # a miss, then two hits (the second installs)
    g(x)                                # a native hit
    assert g.hit_rate == 75.0           # the statistics restarted; native hits count


# ---------------------------------------------------------------- results and resources

def test_results_are_fresh_arrays():
    vg = symdl.value_and_grad(lambda a, b: np.sum(a * b), argnums=(0, 1))
    a, b = point(7, 1), point(7, 2)
    warm(vg, a, b)
    first = vg(a, b)
    second = vg(a, b)
    arrays = [first[0], *first[1], second[0], *second[1]]
    for i, p in enumerate(arrays):
        assert p.flags.owndata and p.flags.writeable and p.base is None
        assert not np.shares_memory(p, a) and not np.shares_memory(p, b)
        for q in arrays[i + 1:]:
            assert not np.shares_memory(p, q)
    first[1][0][:] = 0.0                # mutating a result changes no later one
    np.testing.assert_array_equal(vg(a, b)[1][0], b)


def test_threads_get_their_own_results():
    h = symdl.hvp(rosen)
    warm(h, point(30, 0), point(30, 1))
    bad = []

    def work(seed):
        for k in range(300):
            x, v = point(30, seed * 1000 + k), point(30, seed * 1000 + k + 500)
            if seed % 2:  # strided copies: the Python path, whose native call releases the GIL
                wide = np.empty((30, 2))
                wide[:, 0] = x
                x = wide[:, 0]
            if not np.allclose(h(x, v), rosen_hvp(x, v), rtol=1e-12, atol=1e-9):
                bad.append((seed, k))
    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    assert native_hits(h) >= 600


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_no_reference_or_memory_leaks():
    vg = symdl.value_and_grad(rosen)
    x = point(100, 3)
    warm(vg, x)
    result = vg(x)
    assert sys.getrefcount(result) == 2 and sys.getrefcount(result[1]) == 3  # container, name, argument
    del result
    refs = sys.getrefcount(x)
    for _ in range(1000):
        vg(x)
    assert sys.getrefcount(x) == refs
    for _ in range(1000):               # settle the allocator before measuring
        vg(x)
    before = resident_bytes()
    for _ in range(100_000):
        vg(x)
    grown = resident_bytes() - before
    # 100 000 leaked results would be over 80 MB (each an 800-byte array and more)
    assert grown < 4 * 2 ** 20, grown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_no_leak_on_the_slow_path():
    g = symdl.grad(rosen)
    x = point(200, 3)
    warm(g, x)
    wide = np.empty(400)
    wide[::2] = x
    strided = wide[::2]                 # the dispatcher makes outputs, then gives them back
    for _ in range(500):
        g(strided)
    before = resident_bytes()
    refs = sys.getrefcount(strided)
    for _ in range(20_000):
        g(strided)
    assert sys.getrefcount(strided) == refs
    assert resident_bytes() - before < 4 * 2 ** 20


def test_no_dispatcher_when_numpy_is_not_understood(monkeypatch):
    pyentry._array_layout.cache_clear()
    monkeypatch.setattr(pyentry, "_numpy_api", lambda: None)
    try:
        assert not pyentry.arrays_available()
        g = symdl.grad(rosen)
        x = point(5)
        for _ in range(3):
            np.testing.assert_allclose(g(x), rosen_grad(x), rtol=1e-13)
        assert not is_native(g)
    finally:
        monkeypatch.undo()
        pyentry._array_layout.cache_clear()
    assert pyentry.arrays_available()


def test_inside_dlaccelerate_and_nested_transforms():
    g = symdl.grad(rosen)
    x = point(6, 4)
    warm(g, x)
    before = native_hits(g)
    # a traced dlarray is not an ndarray: the Python path builds g in the outer trace
    acc = symdl.dlaccelerate(lambda y: 2.0 * g(y))
    for _ in range(3):
        got = symdl.dlfeval(acc, symdl.dlarray(x))
        np.testing.assert_allclose(symdl.extractdata(got), 2.0 * rosen_grad(x), rtol=1e-13, atol=1e-12)
    gg = symdl.grad(lambda w: np.sum(w * g(w)))   # g of the traced argument: differentiated through
    w = point(6, 5)
    want = rosen_grad(w) + rosen_hvp(w, w)
    for _ in range(3):
        np.testing.assert_allclose(gg(w), want, rtol=1e-12, atol=1e-9)
    assert native_hits(g) == before
    # a constant numpy argument inside another trace: the same constant either way
    cg = symdl.grad(lambda w: np.sum(w * g(x)))
    for _ in range(3):
        np.testing.assert_allclose(cg(w), rosen_grad(x), rtol=1e-13, atol=1e-12)


def test_float_and_array_signatures_on_one_transform():
    g = symdl.grad(lambda x: np.sum(x ** 3))
    x = point(3, 9)
    for _ in range(3):
        assert g(2.0) == 12.0 and type(g(2.0)) is float
        got = g(x)
        assert type(got) is np.ndarray
        np.testing.assert_allclose(got, 3 * x ** 2, rtol=1e-15)
    kinds = sorted(type(made[0]).__name__ for made in g._cache._made.values())
    assert kinds == ["ArrayDispatcher", "ScalarDispatcher"]


def test_an_evicted_trace_takes_its_dispatcher_along():
    g = symdl.grad(rosen)
    g.cache_size = 1
    a, b = point(5, 1), point(7, 2)
    warm(g, a)
    warm(g, b)                          # a's trace is evicted, and its dispatcher with it
    assert g.n_traces == 1 and len(g._cache._made) == 1
    assert g._cache._native[1] in g._cache._made
    np.testing.assert_allclose(g(a), rosen_grad(a), rtol=1e-13)
    np.testing.assert_allclose(g(b), rosen_grad(b), rtol=1e-13)
