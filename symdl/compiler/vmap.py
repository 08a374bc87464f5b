"""``vmap``: a function of one example mapped over a batch axis, as JAX's.

The function is traced once per input signature on *one example's* shapes:
every batched argument leaf is replaced by a stand-in input node of the
example shape, and the graph the function builds from the stand-ins is
batched with :func:`symdl.autodiff.batching.batch_graph` (every primitive
carries a batching rule), the stand-ins replaced by the batched arguments.
The batched graph is compiled like any transform's; called inside another
trace (``grad``, ``jacobian``, another ``vmap``, ``dlfeval``, ``compile``)
it is built symbolically in that trace, so transforms compose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..autodiff.batching import batch_graph
from ..ir import build as B
from ..ir.node import Node
from ..ir.shapes import dtype_name
from ..tracing import active_root
from ..tree import Treedef, tree_flatten, tree_unflatten
from ..core import is_traced
from ..tree import flatten_call
from .dispatch import calls_through_entry
from .standins import call_in_trace, depends_on, leaf_node, stand_in
from .trace import is_numeric_leaf, leaf_array
from .transforms import _Transform, _wrap

__all__ = ["vmap"]


class BatchedControlFlowError(TypeError):
    """Python control flow read the value of a batched array inside ``vmap``
    (JAX's ``ConcretizationTypeError``): one branch per example cannot be
    batched."""


# ---------------------------------------------------------------- shared by vmap, jvp and vjp

@calls_through_entry
class InlineTransform(_Transform):
    """A transform that, called while another trace is active, is built in
    that trace whenever its function closes over values of it, even with no
    traced argument (``grad(lambda w: ... vjp(lambda x: f(x, w), x0) ...)``):
    a separately compiled trace would take them for constants.  See
    :func:`symdl.compiler.standins.call_in_trace`."""

    __slots__ = ()

    def _call(self, *args: Any) -> Any:
        if active_root() is None:
            return super()._call(*args)
        leaves, treedef = flatten_call(args, {})
        if any(is_traced(x) for x in leaves):
            return self._cache.function(*args)   # the function uses stand-ins itself
        return call_in_trace(self._cache, args, leaves, treedef, self.ieee)


def output_nodes(out, root, where: str) -> tuple[list[Node], list, Treedef]:
    """``fun``'s result as graph nodes (numbers become constants), its label
    formats and structure."""
    leaves, treedef = tree_flatten(out)
    if not leaves:
        raise TypeError(f"{where}: fun must return an array or a container of arrays, got an empty "
                        f"{type(out).__name__}")
    nodes, fmts = [], []
    for leaf in leaves:
        if not (isinstance(leaf, dlarray) or is_numeric_leaf(leaf)):
            raise TypeError(f"{where}: fun must return arrays or floats (or containers of them), got "
                            f"{type(leaf).__name__}")
        nodes.append(leaf_node(leaf, root, where, "a result"))
        fmts.append(getattr(leaf, "_fmt", None))
    return nodes, fmts, treedef


# ---------------------------------------------------------------- axes

def _is_axis(spec) -> bool:
    return spec is None or (isinstance(spec, (int, np.integer)) and not isinstance(spec, bool))


def _broadcast_axes(spec, tree, where: str, name: str) -> list:
    """One axis (or None) per leaf of ``tree`` (in ``tree_flatten``'s order),
    from ``spec``: an int or None for the whole subtree, or a container of
    ``tree``'s structure (a prefix of it), as JAX's ``in_axes``."""
    if _is_axis(spec):
        return [None if spec is None else int(spec)] * len(tree_flatten(tree)[0])
    children, shallow = tree_flatten(tree, is_leaf=lambda s: s is not tree)
    if shallow.kind == "leaf":
        what = f"an array of shape {np.shape(tree._value if isinstance(tree, dlarray) else tree)}" \
            if isinstance(tree, (dlarray, np.ndarray)) else f"a {type(tree).__name__}"
        raise ValueError(f"{where}: {name} is a {type(spec).__name__} but the value it describes is {what}, "
                         f"not a container; give an int or None")
    if isinstance(tree, dict) and isinstance(spec, dict) and set(spec) == set(tree):
        specs = [spec[k] for k in tree]
    else:
        specs, spec_shallow = tree_flatten(spec, is_leaf=lambda s: s is not spec)
        sequences = isinstance(tree, (list, tuple)) and isinstance(spec, (list, tuple))
        if not (spec_shallow == shallow or (sequences and len(spec) == len(tree))):
            raise ValueError(f"{where}: {name} must be an int, None, or a container with the structure of the "
                             f"value it describes; got {spec!r} for a {type(tree).__name__} of {len(children)} "
                             f"entries")
    keys = list(tree) if isinstance(tree, dict) else range(len(children))
    axes = []
    for key, child_spec, child in zip(keys, specs, children):
        axes += _broadcast_axes(child_spec, child, where, f"{name}[{key!r}]")
    return axes


def _normalise(axis: int, ndim: int, where: str, what: str) -> int:
    """``axis`` in ``range(ndim)`` (negative counts from the end)."""
    if not -ndim <= axis < ndim:
        raise ValueError(f"{where}: {what} is out of range: the axis must be in [{-ndim}, {ndim - 1}]")
    return axis % ndim


# ---------------------------------------------------------------- vmap

def vmap(fun: Callable, in_axes: Any = 0, out_axes: Any = 0, axis_size: int | None = None, *,
         ieee: bool = False) -> InlineTransform:
    """``fun`` mapped over an axis of its arguments, as JAX's ``vmap``: the
    result stacks ``fun``'s results for each example along ``out_axes``.

    ``in_axes``: an int (the batch axis of every argument), ``None`` (not
    batched: passed whole to every example), or a tuple with one entry per
    positional argument, each an int, ``None`` or a container of them with
    the argument's structure (dict, list, tuple, dataclass).  ``out_axes``
    likewise for the result.  Arguments and results may be containers of
    arrays.  Every batched argument must have the same batch size;
    ``axis_size`` gives it when no argument is mapped (and is checked
    against the arguments otherwise).  ``ieee=True``: step-by-step IEEE
    semantics, as the other transforms (docs/ieee.md).

    ``fun`` is traced once per input signature on one example's shapes, its
    graph batched symbolically and compiled.  Python control flow that reads
    a batched value (``float(x)``, ``if x > 0:``) cannot be batched and is a
    ``TypeError`` (JAX's ``ConcretizationTypeError``); use ``symdl.where``.
    Composes with ``grad``, ``jacobian``, ``hessian``, ``jvp``, ``vjp`` and
    itself.

    Example:
        >>> import numpy as np, symdl
        >>> dot = symdl.vmap(lambda a, b: np.sum(a * b))
        >>> dot(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 1.0], [2.0, 0.5]]))
        array([3., 8.])
        >>> symdl.vmap(lambda a, w: a @ w, in_axes=(1, None))(np.eye(2), np.array([[1.0], [2.0]]))
        array([[1.],
               [2.]])
    """
    if not callable(fun):
        raise TypeError(f"vmap: fun must be callable, got {type(fun).__name__}")
    _check_axes_spec(in_axes, "in_axes")
    _check_axes_spec(out_axes, "out_axes")
    if axis_size is not None and (isinstance(axis_size, bool) or not isinstance(axis_size, (int, np.integer))
                                  or axis_size < 0):
        raise TypeError(f"vmap: axis_size must be None or a non-negative int, got {axis_size!r}")

    def traced(*args):
        root = active_root()
        if not args and axis_size is None:
            raise TypeError("vmap: the mapped function needs at least one positional argument to map over "
                            "(or give axis_size)")
        if isinstance(in_axes, (tuple, list)):
            if len(in_axes) != len(args):
                raise ValueError(f"vmap: in_axes has {len(in_axes)} entries but the function was called with "
                                 f"{len(args)} positional arguments; give one entry (int or None) per argument")
            axes = [a for spec, arg, k in zip(in_axes, args, range(len(args)))
                    for a in _broadcast_axes(spec, arg, "vmap", f"in_axes[{k}]")]
        else:
            axes = [a for k, arg in enumerate(args) for a in _broadcast_axes(in_axes, arg, "vmap", "in_axes")]
        leaves, treedef = tree_flatten(args)
        paths = [p for k, arg in enumerate(args) for p in _leaf_paths(arg, f"argument {k}")]
        n, sized = (None, None) if axis_size is None else (int(axis_size), ("axis_size", None, None))
        new_leaves, replacements = [], {}
        for leaf, axis, path in zip(leaves, axes, paths):
            if axis is None:
                new_leaves.append(leaf)
                continue
            if not (isinstance(leaf, dlarray) or is_numeric_leaf(leaf)):
                raise TypeError(f"vmap: {path} is a {type(leaf).__name__}, which cannot be mapped over; "
                                f"give it in_axes None")
            node = leaf_node(leaf, root, "vmap", path)
            if node.ndim == 0:
                raise ValueError(f"vmap: in_axes {axis} for {path}: a 0-d value (shape ()) has no axis to map "
                                 f"over; give it in_axes None")
            a = _normalise(axis, node.ndim, "vmap", f"in_axes {axis} for {path} (shape {node.shape})")
            size = node.shape[a]
            if n is None:
                n, sized = size, (path, node.shape, a)
            elif size != n and sized[1] is None:
                raise ValueError(f"vmap: axis_size is {n} but {path} has size {size} along its mapped axis {a} "
                                 f"(shape {node.shape})")
            elif size != n:
                raise ValueError(f"vmap: batched arguments have different sizes along their mapped axes: {sized[0]} "
                                 f"has size {n} along axis {sized[2]} (shape {sized[1]}), {path} has size {size} "
                                 f"along axis {a} (shape {node.shape})")
            perm = (a,) + tuple(i for i in range(node.ndim) if i != a)
            batched = B.transpose(node, perm) if a != 0 else node
            example_shape = batched.shape[1:]
            # the tracer computes with the first example (values read by
            # Python are refused below, so which example does not matter)
            data = leaf._value if isinstance(leaf, dlarray) else leaf_array(leaf)
            value = np.take(np.asarray(data), 0, axis=a) if size > 0 else None
            s = stand_in(root, example_shape, dtype_name(node.dtype), value)
            replacements[s._node] = batched
            new_leaves.append(s)
        if n is None:
            raise ValueError("vmap: no argument is mapped over (in_axes is None for every argument leaf); "
                             "at least one must have an int axis, or give axis_size")
        start = len(root.guards)
        out = fun(*tree_unflatten(treedef, new_leaves))
        _refuse_batched_guards(root, start, set(replacements))
        outs, fmts, out_def = output_nodes(out, root, "vmap")
        out_specs = _broadcast_axes(out_axes, out, "vmap", "out_axes") if not _is_axis(out_axes) \
            else [out_axes] * len(outs)
        dep = depends_on(outs, set(replacements))
        batched = batch_graph(outs, replacements, n)
        results = []
        for k, (o, b, spec) in enumerate(zip(outs, batched, out_specs)):
            if spec is None:
                if o in dep:
                    raise ValueError(f"vmap: out_axes is None for result leaf {k}, but that result depends on "
                                     f"the mapped arguments; give it an int axis")
                results.append(_wrap(o, fmts[k]))
                continue
            a = _normalise(int(spec), o.ndim + 1, "vmap", f"out_axes {spec} for result leaf {k} (shape {o.shape})")
            if a != 0:
                perm = list(range(1, o.ndim + 1))
                perm.insert(a, 0)
                b = B.transpose(b, tuple(perm))
            results.append(_wrap(b))
        return tree_unflatten(out_def, results)

    return InlineTransform(traced, "vmap", fun, ieee,
                           (vmap, (fun, in_axes, out_axes, axis_size), {"ieee": ieee}))


def _check_axes_spec(spec, name: str) -> None:
    bad = [s for s in tree_flatten(spec, is_leaf=lambda s: s is None)[0] if not _is_axis(s)]
    if bad:
        raise TypeError(f"vmap: {name} must be an int, None, or a container of ints and None, got {spec!r}")


def _leaf_paths(tree, prefix: str) -> list[str]:
    """A readable name per leaf of ``tree``, in ``tree_flatten``'s order."""
    leaves, treedef = tree_flatten(tree)
    if treedef.kind == "leaf":
        return [prefix]
    children = tree_flatten(tree, is_leaf=lambda s: s is not tree)[0]
    keys = treedef.aux if treedef.kind == "dict" else \
        treedef.aux[1] if treedef.kind == "dataclass" else range(len(children))
    out = []
    for key, child in zip(keys, children):
        sub = f".{key}" if treedef.kind == "dataclass" else f"[{key!r}]"
        out += _leaf_paths(child, prefix + sub)
    return out


def _refuse_batched_guards(root, start: int, stand_ins: set[Node]) -> None:
    """Guards recorded by ``fun`` on values of a batched argument: Python
    branched on one example's value, which would be a stale branch for the
    others.  Refused, never compiled."""
    new = root.guards[start:]
    if not new:
        return
    dep = depends_on([g for g, _ in new], stand_ins)
    if any(g in dep for g, _ in new):
        del root.guards[start:]
        raise BatchedControlFlowError(
            "vmap: fun reads the value of a batched array in Python (float(), int(), bool(), `if` on a "
            "comparison, .any()/.all(), an index made from it, extractdata): each example could take another "
            "branch, which cannot be batched (JAX's ConcretizationTypeError). Write the choice with symdl.where / "
            "maximum / minimum instead, or give that argument in_axes None")
