"""Compiled function transforms in the style of JAX: grad, value_and_grad,
jacobian, hessian, hvp, derivative.  Each traces once per input signature,
differentiates symbolically, and runs native code from then on.  Each takes
``ieee=True`` for step-by-step IEEE semantics instead of real-number
simplification (docs/ieee.md)."""

from __future__ import annotations

import inspect
from typing import Any
from collections.abc import Callable, Sequence

import numpy as np

from ..array import dlarray
from ..autodiff.api import dlgradient
from ..autodiff.batching import batch_graph
from ..autodiff.reverse import jvp, vjp
from ..autodiff.taylor import taylor_derivatives
from ..ir import build as B
from ..ir.node import Node
from ..ir.rewrite import ieee_semantics
from ..tracing import active_root
from ..tree import Treedef, flatten_call, tree_flatten, tree_unflatten
from .dispatch import MISS, CacheAttributes, SignatureCache, calls_through_entry
from .pipeline import check_ieee
from .standins import call_in_trace
from .trace import is_numeric_leaf

__all__ = ["grad", "value_and_grad", "jacobian", "hessian", "hvp", "derivative"]


def _argnums(argnums, nargs: int, where: str) -> tuple[tuple[int, ...], bool]:
    single = isinstance(argnums, int) and not isinstance(argnums, bool)
    if not single and not isinstance(argnums, (tuple, list)):
        raise TypeError(f"{where}: argnums must be an int or a tuple of ints, got {argnums!r}")
    nums = (argnums,) if single else tuple(argnums)
    if not nums or not all(isinstance(a, int) and not isinstance(a, bool) for a in nums):
        raise TypeError(f"{where}: argnums must be an int or a tuple of ints, got {argnums!r}")
    for a in nums:
        if not -nargs <= a < nargs:
            raise ValueError(f"{where}: argnums {a} is out of range for {nargs} positional arguments")
    return tuple(a % nargs for a in nums), single


def _traced_array(x, where: str, k: int) -> dlarray:
    if not isinstance(x, dlarray) or x._node is None:
        raise TypeError(f"{where}: argument {k} (differentiated) must be a float array or a float, "
                        f"got {type(x).__name__}")
    return x


def _traced_result(y, where: str, expected: str = "a real array or number") -> dlarray:
    """A result of ``fun`` as a traced dlarray.  One that does not depend on
    the arguments (``lambda x: 0.0``) becomes a constant of the trace, so its
    derivatives are zeros, as in JAX."""
    if isinstance(y, dlarray) and y._node is not None:
        return y
    value = np.asarray(y._value if isinstance(y, dlarray) else y) \
        if isinstance(y, (dlarray, int, float, np.number, np.ndarray)) and not isinstance(y, bool) else None
    if value is None or value.dtype.kind not in "fiu":
        raise TypeError(f"{where}: fun must return {expected}, got "
                        f"{type(y).__name__}{'' if value is None else ' of dtype ' + str(value.dtype)}")
    value = value if value.dtype.kind == "f" else value.astype(np.float64)
    root = active_root()
    return dlarray._wrap(value, root.const(value), root, None)


def _scalar_output(y, where: str) -> dlarray:
    y = _traced_result(y, where)
    if y.size != 1:
        raise ValueError(f"{where}: fun must return a scalar, got shape {y.shape}")
    return y


def _wrap(node: Node, fmt=None) -> dlarray:
    """A transform's traced result.  Its value is never looked at (the
    transform returns it straight to the tracer, and native code computes the
    real one), so no time is spent interpreting the derivative graph: the
    placeholder is a read-only zero-stride array of the right shape."""
    root = active_root()
    if not root.lazy_values:  # inlined in a trace whose code may look at values
        return dlarray._wrap(root.value(node), node, root, fmt)
    placeholder = np.broadcast_to(np.zeros((), dtype=node.dtype), node.shape)
    return dlarray._wrap(placeholder, node, root, fmt)


@calls_through_entry
class _Transform(CacheAttributes):
    """A compiled transform: call it like the transformed function.

    It runs from a :class:`~symdl.compiler.dispatch.SignatureCache` (the same
    cache as ``dlaccelerate``, with numpy arrays and Python floats as inputs).
    A call goes to the cache's ``entry``: the Python path :meth:`_call`, or,
    once an all-float signature has been seen twice, a native dispatcher that
    handles those calls in about a tenth of a microsecond and hands anything
    else to :meth:`_call`.  Attributes as ``dlaccelerate``'s: ``cache_size``,
    ``hit_rate``, ``occupancy``, ``clear_cache()``; ``ieee`` (read it, set
    it when building): traced, differentiated and compiled with step-by-step
    IEEE semantics (docs/ieee.md).
    """

    __slots__ = ("_cache", "__dict__", "__weakref__")
    #: Arguments of a call after the transformed function's own (hvp's v).
    _trailing = 0

    def __init__(self, traced: Callable, name: str, doc_fun: Callable, ieee: bool = False,
                 recipe: tuple | None = None):
        if not callable(doc_fun):
            raise TypeError(f"{name}: fun must be callable, got {type(doc_fun).__name__}")
        self.ieee = check_ieee(ieee, name)
        self._cache = SignatureCache(traced, is_input=is_numeric_leaf, out_wrap="match", gradients=True,
                                     where=name, python_entry=self._call)
        self.__name__ = name
        self.__wrapped__ = doc_fun
        # (public factory, args, kwargs) that made this transform: pickling
        # rebuilds it so (the traced closure and the cache's Python entry are
        # not state that travels), then restores the compiled traces
        self._recipe = recipe

    def __reduce__(self):
        if self._recipe is None:
            raise TypeError(f"a {self.__name__} transform made inside symdl cannot be pickled; pickle the "
                            "public transform (symdl.grad(f), symdl.vmap(f), ...) instead")
        state = self._cache.__getstate__()
        return _rebuild_transform, (self._recipe, state["traces"], state["calls"], state["hits"])

    def _call(self, *args: Any) -> Any:
        cache = self._cache
        result = cache.fast_positional(args)
        if result is not MISS:
            return result
        inside = active_root() is not None
        if not inside:  # containers, dlarrays: the last signature's generated matcher
            result = cache.call_fast(args, {}, True)
            if result is not MISS:
                return result
        leaves, treedef = flatten_call(args, {})
        if inside:
            # Inside another trace (grad of grad, dlfeval, compile): build the
            # derivative symbolically there, so the outer trace sees through it
            # (on stand-ins for the arguments; compiler/standins.py).
            return call_in_trace(cache, args, leaves, treedef, self.ieee)
        with ieee_semantics(self.ieee):
            return cache.call(args, {}, leaves, treedef, traced=True)

    def _call_keywords(self, *args: Any, **kwargs: Any) -> Any:
        """A call with keyword arguments (as JAX allows): they are bound to
        the function's parameters by its signature and passed by position,
        so they are inputs like any other argument (differentiated only if
        ``argnums`` names their position)."""
        fun = self.__wrapped__
        try:
            sig = inspect.signature(fun)
        except (TypeError, ValueError):
            raise TypeError(f"{self.__name__}: keyword arguments {sorted(kwargs)} need a function whose "
                            "signature Python can read; pass them by position") from None
        cut = len(args) - self._trailing
        head, tail = args[:cut], args[cut:]
        try:
            bound = sig.bind(*head, **kwargs)
        except TypeError as err:
            raise TypeError(f"{self.__name__}: {err}") from None
        bound.apply_defaults()
        named = [k for k in bound.kwargs if k in kwargs]
        if named:
            raise TypeError(f"{self.__name__}: keyword-only arguments ({', '.join(named)}) are not supported; "
                            "make them positional or bind them with functools.partial")
        return self(*bound.args, *tail)

    def __repr__(self) -> str:
        return f"<symdl {self.__name__} of {getattr(self.__wrapped__, '__name__', self.__wrapped__)}>"


def _rebuild_transform(recipe: tuple, traces: list, calls: int, hits: int) -> _Transform:
    """Unpickling: the transform made again by its public factory, with the
    compiled traces it had (no retracing or recompiling on the worker)."""
    factory, args, kwargs = recipe
    made = factory(*args, **kwargs)
    made._cache.restore(traces, calls, hits)
    return made


def grad(fun: Callable, argnums: int | Sequence[int] = 0, *, ieee: bool = False) -> _Transform:
    """The gradient of scalar ``fun`` with respect to argument(s) ``argnums``.

    Example:
        >>> import numpy as np, symdl
        >>> g = symdl.grad(lambda x: np.sum(x ** 3))
        >>> g(np.array([1.0, 2.0]))
        array([ 3., 12.])
    """
    return _Transform(_gradient_fn(fun, argnums, with_value=False), "grad", fun, ieee,
                      (grad, (fun, argnums), {"ieee": ieee}))


def value_and_grad(fun: Callable, argnums: int | Sequence[int] = 0, *, ieee: bool = False) -> _Transform:
    """``(fun(*args), grad(fun)(*args))`` in one native call.

    Example:
        >>> import symdl
        >>> symdl.value_and_grad(lambda x1, x2: (x2 - x1 ** 2) ** 2 + (1 - x1) ** 2, argnums=(0, 1))(2.0, 2.0)
        (5.0, (18.0, -4.0))
    """
    return _Transform(_gradient_fn(fun, argnums, with_value=True), "value_and_grad", fun, ieee,
                      (value_and_grad, (fun, argnums), {"ieee": ieee}))


def _gradient_fn(fun, argnums, with_value):
    where = "value_and_grad" if with_value else "grad"

    def traced(*args):
        nums, single = _argnums(argnums, len(args), where)
        for a in nums:
            _check_differentiable(args[a], where, a)
        y = _scalar_output(fun(*args), where)
        xs = [args[a] for a in nums]
        g = dlgradient(y, *xs, enable_higher_derivatives=True)
        g = g if single else tuple(g) if len(xs) > 1 else (g,)
        _mark_float_gradients(args, nums, g if not single else (g,))
        return (y, g) if with_value else g
    return traced


def _check_differentiable(arg, where: str, k: int) -> None:
    """A differentiated argument: a float array or float, or a container
    (dict, list, tuple, dataclass) of them at any depth."""
    leaves, _ = tree_flatten(arg)
    if not leaves:
        raise TypeError(f"{where}: argument {k} (differentiated) must be a float array or a float, "
                        f"or a container of them; got an empty {type(arg).__name__}")
    for path, leaf in _paths(arg):
        if not isinstance(leaf, dlarray) or leaf._node is None:
            inside = f" at argument {k}{path}" if path else ""
            raise TypeError(f"{where}: argument {k} (differentiated) must be a float array or a float, or a "
                            f"container of them; got {type(leaf).__name__}{inside}")


def _paths(tree, prefix: str = ""):
    """(path, leaf) pairs of a container, paths written as indexing."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, f"{prefix}[{key!r}]")
    elif isinstance(tree, (list, tuple)):
        for k, value in enumerate(tree):
            yield from _paths(value, f"{prefix}[{k}]")
    elif hasattr(tree, "__dataclass_fields__") and not isinstance(tree, type):
        for name in tree.__dataclass_fields__:
            yield from _paths(getattr(tree, name), f"{prefix}.{name}")
    else:
        yield prefix, tree


def _mark_float_gradients(args, nums, grads) -> None:
    """A gradient leaf whose argument leaf was a Python float comes back as a
    Python float (``{"w": array, "b": float}`` for ``{"w": array, "b": 0.5}``);
    see ``trace_program``."""
    root = active_root()
    floats, marks = getattr(root, "float_inputs", None), getattr(root, "float_results", None)
    if not floats or marks is None:
        return
    for a, g in zip(nums, grads):
        for x, gx in zip(tree_flatten(args[a])[0], tree_flatten(g)[0]):
            if x._node in floats and isinstance(gx, dlarray) and gx._node is not None:
                marks.add(gx._node)


def _jacobian_node(y: Node, x: Node) -> Node:
    """d y / d x with y's axes first, then x's, from one batched VJP or JVP."""
    m, n = y.size, x.size
    if m <= n:
        cot = B.input_node("__cotangent__", y.shape, y.dtype)
        (g,) = vjp([y], [cot], [x])
        if g is None:
            return B.const(0.0, y.shape + x.shape, x.dtype)
        basis = B.reshape(B.eye(m, y.dtype), (m,) + y.shape)
        (jac,) = batch_graph([g], {cot: basis}, m)
        return B.reshape(jac, y.shape + x.shape)
    tan = B.input_node("__tangent__", x.shape, x.dtype)
    (t,) = jvp([y], [x], [tan])
    if t is None:
        return B.const(0.0, y.shape + x.shape, y.dtype)
    basis = B.reshape(B.eye(n, x.dtype), (n,) + x.shape)
    (cols,) = batch_graph([t], {tan: basis}, n)          # (n, *y.shape)
    cols = B.reshape(cols, (n, m))
    return B.reshape(B.transpose(cols, (1, 0)), y.shape + x.shape)


def _leaf_nodes(arg, where: str, k: int) -> tuple[list[Node], Treedef]:
    """The graph nodes of a differentiated argument's leaves, and its structure."""
    _check_differentiable(arg, where, k)
    leaves, treedef = tree_flatten(arg)
    return [leaf._node for leaf in leaves], treedef


def _nest(outer: Treedef, inner: Treedef, blocks: list[list[Node]]):
    """``blocks[i][j]`` (a block per outer leaf i and inner leaf j) as the outer
    structure holding, at each leaf, the inner structure (JAX's layout)."""
    return tree_unflatten(outer, [tree_unflatten(inner, [_wrap(b) for b in row]) for row in blocks])


def jacobian(fun: Callable, argnums: int | Sequence[int] = 0, *, ieee: bool = False) -> _Transform:
    """The Jacobian of ``fun``: output dimensions first, then input dimensions
    (as JAX).  Reverse or forward mode, whichever needs fewer basis vectors.
    A container argument (or result) gives a container of blocks, the
    result's structure outside, the argument's inside.

    Example:
        >>> import numpy as np, symdl
        >>> J = symdl.jacobian(lambda x: x ** 2)(np.array([1.0, 3.0]))
        >>> J
        array([[2., 0.],
               [0., 6.]])
        >>> J = symdl.jacobian(lambda p: p["a"] * p["b"])({"a": np.array([1.0, 2.0]), "b": 3.0})
        >>> J["b"]
        array([1., 2.])
    """
    def traced(*args):
        nums, single = _argnums(argnums, len(args), "jacobian")
        flat = [_leaf_nodes(args[a], "jacobian", a) for a in nums]
        outs, out_def = tree_flatten(fun(*args))
        if not outs:
            raise TypeError("jacobian: fun must return an array or a container of arrays, got nothing")
        ys = [_traced_result(y, "jacobian", "an array or a container of arrays")._node for y in outs]
        result = []
        for xs, in_def in flat:
            result.append(_nest(out_def, in_def, [[_jacobian_node(y, x) for x in xs] for y in ys]))
        return result[0] if single else tuple(result)
    return _Transform(traced, "jacobian", fun, ieee, (jacobian, (fun, argnums), {"ieee": ieee}))


def hessian(fun: Callable, argnums: int | Sequence[int] = 0, *, ieee: bool = False) -> _Transform:
    """The Hessian of scalar ``fun``, shaped ``x.shape + x.shape`` (for a tuple
    of argnums, a tuple of tuples of blocks; for a container argument, the
    container of containers of blocks, as JAX).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.hessian(lambda x: np.sum(x ** 3))(np.array([1.0, 2.0]))
        array([[ 6.,  0.],
               [ 0., 12.]])
        >>> H = symdl.hessian(lambda p: p["a"] ** 2 * p["b"])({"a": 2.0, "b": 3.0})
        >>> float(H["a"]["b"]), float(H["a"]["a"])
        (4.0, 6.0)
    """
    def traced(*args):
        nums, single = _argnums(argnums, len(args), "hessian")
        flat = [_leaf_nodes(args[a], "hessian", a) for a in nums]
        y = _scalar_output(fun(*args), "hessian")
        ynode = B.reshape(y._node, ())
        xs = [x for leaves, _ in flat for x in leaves]
        grads = vjp([ynode], [B.fill(1.0, ynode)], xs)
        grads = [B.fill(0.0, x) if g is None else g for g, x in zip(grads, xs)]
        blocks, start = [], 0
        for leaves_i, def_i in flat:          # one row of argnums per differentiated argument
            g_i = grads[start:start + len(leaves_i)]
            start += len(leaves_i)
            blocks.append(tuple(_nest(def_i, def_j, [[_jacobian_node(g, x) for x in leaves_j] for g in g_i])
                                for leaves_j, def_j in flat))
        return blocks[0][0] if single else tuple(blocks)
    return _Transform(traced, "hessian", fun, ieee, (hessian, (fun, argnums), {"ieee": ieee}))


def hvp(fun: Callable, argnums: int = 0, *, ieee: bool = False) -> _Transform:
    """Hessian-vector product without forming the Hessian (forward over
    reverse): ``hvp(fun)(*args, v)``; ``v`` has the structure of the
    differentiated argument (array, float or container), and so has the result.

    Example:
        >>> import numpy as np, symdl
        >>> f = lambda x: np.sum(x ** 3)
        >>> symdl.hvp(f)(np.array([1.0, 2.0]), np.array([1.0, 1.0]))
        array([ 6., 12.])
    """
    if isinstance(argnums, bool) or not isinstance(argnums, int):
        raise TypeError(f"hvp: argnums must be an int, got {argnums!r}")

    def traced(*args_and_v):
        if len(args_and_v) < 2:
            raise TypeError("hvp: call as hvp(fun)(*args, v)")
        *args, v = args_and_v
        (a,), _ = _argnums(argnums, len(args), "hvp")
        xs, x_def = _leaf_nodes(args[a], "hvp", a)
        vs, v_def = _leaf_nodes(v, "hvp", len(args))
        if v_def != x_def or any(t.shape != x.shape for t, x in zip(vs, xs)):
            raise ValueError(f"hvp: v must have the structure and shapes of argument {a} "
                             f"({[x.shape for x in xs]}), got {[t.shape for t in vs]}")
        y = _scalar_output(fun(*args), "hvp")
        ynode = B.reshape(y._node, ())
        grads = vjp([ynode], [B.fill(1.0, ynode)], xs)
        pairs = [(g, x) for g, x in zip(grads, xs) if g is not None]
        tangents = [B.convert(t, x.dtype) for t, x in zip(vs, xs)]
        hvs = jvp([g for g, _ in pairs], xs, tangents) if pairs else []
        # the product's leaf i is the sum over j of H_ij v_j: forward mode through the whole gradient
        out, k = [], 0
        for g, x in zip(grads, xs):
            hv = None
            if g is not None:
                hv = hvs[k]
                k += 1
            out.append(_wrap(B.fill(0.0, x) if hv is None else hv))
        return tree_unflatten(x_def, out)
    made = _Transform(traced, "hvp", fun, ieee, (hvp, (fun, argnums), {"ieee": ieee}))
    made._trailing = 1  # v
    return made


def _check_elementwise(x: Node, y: Node) -> None:
    """Every operation between x and y acts element by element on x's shape
    (otherwise 'the n-th derivative at each point' is not what jvp computes)."""
    from ..ir.ops import primitive
    from ..ir.rewrite import toposort
    depends = {x}
    for node in toposort([y]):
        if node is x or not any(i in depends for i in node.inputs):
            continue
        depends.add(node)
        if primitive(node.op).kind != "elementwise" or node.shape != x.shape:
            raise ValueError(f"derivative: fun must be elementwise, but it applies {node.op!r} "
                             f"(shape {node.shape}) to its input of shape {x.shape}")


def derivative(fun: Callable, order: int = 1, *, ieee: bool = False) -> _Transform:
    """The ``order``-th derivative of an elementwise scalar function, evaluated
    over whole arrays: ``derivative(f, 2)(x)[i] = f''(x[i])``, built by
    Taylor-mode propagation (the graph grows about linearly with the order).

    Example:
        >>> import numpy as np, symdl
        >>> symdl.derivative(np.sin, order=2)(np.array([np.pi / 2]))   # -sin
        array([-1.])
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"derivative: order must be a non-negative int, got {order!r}")

    def traced(x):
        x = _traced_array(x, "derivative", 0)
        y = fun(x)
        if not isinstance(y, dlarray) or y.shape != x.shape:
            raise ValueError("derivative: fun must be elementwise (its output must have the input's shape)")
        _check_elementwise(x._node, y._node)
        # Taylor-mode propagation: O(order^2) work per op, where nested
        # differentiation grows much faster (see autodiff/taylor.py)
        return _wrap(taylor_derivatives(y._node, x._node, order)[order])
    return _Transform(traced, "derivative", fun, ieee, (derivative, (fun, order), {"ieee": ieee}))



