"""Counter-based random numbers (Philox4x32-10): fresh numbers on every call
of compiled code, because the key input (seed, call counter) is supplied anew
on every call."""

from __future__ import annotations

from .registry import Kind, Primitive, ShapeError, define


def _random_infer(inputs, attrs):
    (key,) = inputs
    if key.dtype != "int64" or key.shape != (2,):
        raise ShapeError(f"random: the key must be int64 of shape (2,), got {key.dtype}{key.shape}")
    if attrs["dist"] not in ("uniform", "normal"):
        raise ShapeError(f"random: dist must be 'uniform' or 'normal', got {attrs['dist']!r}")
    return attrs["shape"], attrs["dtype"]


def _random_impl(values, node):
    import numpy as np

    from .. import philox
    seed, call = (int(v) for v in values[0].astype(np.uint64))
    draw = philox.uniform if node.attr("dist") == "uniform" else philox.normal
    return draw(node.shape, node.dtype, node.attr("stream"), seed, call)


def _random_batch(node, b, n):
    raise TypeError("batching: random numbers with a batched key are not supported")


define(Primitive("random", Kind.RANDOM, _random_infer, _random_impl, batch=_random_batch,
                 differentiable=False, arity=1))
