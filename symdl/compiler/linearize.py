"""``jvp`` and ``vjp``, as JAX's: forward- and reverse-mode products of a
function's derivative with a tangent or a cotangent, compiled and cached.

Both trace ``fun`` on stand-in input nodes (one per differentiated leaf, see
:func:`symdl.compiler.vmap.stand_in`), take the symbolic JVP or VJP with
respect to the stand-ins (:mod:`symdl.autodiff.reverse`), then substitute the
real arguments for them.  The stand-ins keep every argument a variable of
its own even when two arguments are one array, or an argument is a constant
that the function also uses.  Called inside another trace (``grad``,
``vmap``, ``dlfeval``, ``compile``), everything is built in that trace, so
``jvp`` of ``grad`` is a Hessian-vector product and ``grad`` of a function
that calls ``vjp`` differentiates through the pullback.

The compiled transforms are kept per function (the most recent
``_KEEP`` functions), so calling ``jvp(f, ...)`` again with the same ``f``
and signature runs cached native code without tracing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..array import dlarray
from ..autodiff import reverse
from ..ir import build as B
from ..ir.node import Node
from ..tracing import active_root
from ..tree import tree_flatten, tree_unflatten
from .trace import is_numeric_leaf
from .transforms import _wrap
from .keys import ByIdentity
from .pipeline import check_ieee
from .standins import leaf_node, stand_in
from .vmap import InlineTransform, output_nodes

__all__ = ["jvp", "vjp"]

_KEEP = 64
_TRANSFORMS: OrderedDict[tuple, tuple[Callable, dict]] = OrderedDict()
_LOCK = threading.Lock()


def _transform(fun: Callable, kind: tuple, make: Callable[[Callable], InlineTransform]) -> InlineTransform:
    """The compiled transform ``kind`` of ``fun``, made once and kept (least
    recently used out).  A bound method is keyed by its object and function:
    ``obj.method`` is a new object on every attribute access."""
    owner, func = getattr(fun, "__self__", None), getattr(fun, "__func__", None)
    key = ("method", ByIdentity(owner), ByIdentity(func)) if owner is not None and func is not None \
        else ("fun", ByIdentity(fun))
    with _LOCK:
        entry = _TRANSFORMS.get(key)
        if entry is None:
            entry = _TRANSFORMS[key] = (fun, {})
            while len(_TRANSFORMS) > _KEEP:
                _TRANSFORMS.popitem(last=False)
        _TRANSFORMS.move_to_end(key)
        made = entry[1].get(kind)
        if made is None:
            made = entry[1][kind] = make(fun)
        return made


def _primal_leaves(primals, where: str, name: str) -> tuple[list, Any]:
    """The leaves of the differentiated arguments, each a float array or a
    float (in a container at any depth)."""
    leaves, treedef = tree_flatten(primals)
    for k, leaf in enumerate(leaves):
        if isinstance(leaf, dlarray):
            if leaf.dtype.kind != "f":
                raise TypeError(f"{where}: {name} must hold float arrays, got dtype {leaf.dtype} at leaf {k}")
        elif not is_numeric_leaf(leaf):  # integer numpy arrays compute in float64 (SPEC §1)
            raise TypeError(f"{where}: {name} must be float arrays or floats (or containers of them), got "
                            f"{type(leaf).__name__} at leaf {k}")
    return leaves, treedef


def _is_python_float(leaf, root) -> bool:
    """A Python float argument: weakly typed, as in JAX (it takes the dtype of
    the array it goes with)."""
    if type(leaf) is float:
        return True
    floats = getattr(root, "float_inputs", None)
    return bool(floats) and isinstance(leaf, dlarray) and leaf._node in floats


def _matching(leaves, like: list[Node], root, where: str, name: str, against: str) -> list[Node]:
    """Nodes of tangent/cotangent ``leaves``, each of its partner's shape and
    dtype (a Python float takes its partner's dtype)."""
    nodes = []
    for k, (leaf, ref) in enumerate(zip(leaves, like)):
        node = leaf_node(leaf, root, where, f"{name} leaf {k}")
        if node.shape != ref.shape:
            raise ValueError(f"{where}: {name} leaf {k} has shape {node.shape}, but its {against} has shape "
                             f"{ref.shape}; they must be equal")
        if node.dtype != ref.dtype:
            if not _is_python_float(leaf, root):
                raise TypeError(f"{where}: {name} leaf {k} has dtype {node.dtype}, but its {against} has dtype "
                                f"{ref.dtype}; they must be equal")
            node = B.convert(node, ref.dtype)
        nodes.append(node)
    return nodes


class _Slot:
    def __repr__(self) -> str:
        return "x"


def describe(treedef) -> str:
    """A container structure as Python shows it, each leaf an ``x``."""
    return repr(tree_unflatten(treedef, [_Slot()] * _count(treedef)))


def _count(treedef) -> int:
    return 1 if treedef.kind == "leaf" else sum(_count(c) for c in treedef.children)


def _split_aux(out, has_aux: bool, where: str):
    """``(output, aux)`` of a ``has_aux`` function (JAX's convention), or
    ``(out, None)``."""
    if not has_aux:
        return out, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{where}: with has_aux=True, fun must return a pair (output, aux), got "
                        f"{type(out).__name__}{f' of {len(out)}' if isinstance(out, (tuple, list)) else ''}")
    return out[0], out[1]


def _trace_on_stand_ins(fun, primals: tuple, root, where: str, check=None, has_aux: bool = False):
    """Run ``fun`` on stand-ins of the primal leaves.  Returns the stand-in
    nodes, the real nodes they stand for, the primal leaves and structure,
    the output nodes/formats/structure, the index of the first guard ``fun``
    recorded, and its aux result (``has_aux``)."""
    leaves, treedef = _primal_leaves(primals, where, "primals")
    actual = [leaf_node(leaf, root, where, f"primal leaf {k}") for k, leaf in enumerate(leaves)]
    if check is not None:
        check(leaves, treedef, actual)
    standins = [stand_in(root, x.shape, x.dtype, _value(leaf)) for x, leaf in zip(actual, leaves)]
    start = len(root.guards)
    out, aux = _split_aux(fun(*tree_unflatten(treedef, standins)), has_aux, where)
    outs, fmts, out_def = output_nodes(out, root, where)
    return [s._node for s in standins], actual, leaves, treedef, outs, fmts, out_def, start, aux


def _substitute_aux(aux, standins: list[Node], actual: list[Node], root):
    """The aux result with the real arguments in place of their stand-ins
    (its leaves that are not arrays pass through, as static values)."""
    leaves, treedef = tree_flatten(aux)
    traced = [k for k, leaf in enumerate(leaves) if isinstance(leaf, dlarray) and leaf._node is not None
              and leaf._trace is root]
    nodes = B.substitute([leaves[k]._node for k in traced], dict(zip(standins, actual)))
    for k, node in zip(traced, nodes):
        leaves[k] = _wrap(node, leaves[k]._fmt)
    return tree_unflatten(treedef, leaves)


def _value(leaf):
    return leaf._value if isinstance(leaf, dlarray) else np.asarray(leaf, dtype=np.float64) \
        if type(leaf) is float else np.asarray(leaf)


def _substitute(nodes: list[Node], standins: list[Node], actual: list[Node], root, start: int) -> list[Node]:
    """``nodes`` with the real arguments in place of their stand-ins; the
    guards ``fun`` recorded (Python control flow on values) too, so that the
    trace they guard checks the real arguments."""
    mapping = dict(zip(standins, actual))
    guards = root.guards[start:]
    both = B.substitute(list(nodes) + [g for g, _ in guards], mapping)
    root.guards[start:] = [(g, v) for g, (_, v) in zip(both[len(nodes):], guards)]
    return both[:len(nodes)]


def _mark_floats(leaves, grads: list[Node], root) -> None:
    """A Python float argument's gradient comes back as a Python float (as
    ``grad``'s; see ``trace_program``)."""
    marks = getattr(root, "float_results", None)
    if marks is None:
        return
    for leaf, g in zip(leaves, grads):
        if _is_python_float(leaf, root):
            marks.add(g)


# ---------------------------------------------------------------- jvp

def jvp(fun: Callable, primals: tuple | list, tangents: tuple | list, has_aux: bool = False, *,
        ieee: bool = False) -> tuple:
    """``(fun(*primals), J @ tangents)``: the function's value and its
    directional derivative along ``tangents`` (forward mode), as JAX's
    ``jvp``.

    ``primals`` and ``tangents`` are tuples (or lists) with one entry per
    positional argument of ``fun``, of the same structure; each entry a float
    array, a float or a container of them, each tangent leaf of its primal's
    shape and dtype (a Python float tangent takes the primal's dtype).  The
    tangent result has the structure, shapes and dtypes of ``fun``'s result.
    With ``has_aux=True``, ``fun`` returns ``(output, aux)`` and ``jvp``
    returns ``(output, tangent, aux)`` (``aux`` not differentiated).
    ``ieee=True``: step-by-step IEEE semantics (docs/ieee.md).

    Compiled and cached per function and input signature; inside another
    trace it is built symbolically there (``jvp`` of ``grad`` gives
    Hessian-vector products, ``grad`` of a function using ``jvp`` works).

    Example:
        >>> import numpy as np, symdl
        >>> y, t = symdl.jvp(lambda x: np.sin(x) * x, (np.array([0.0, 1.0]),), (np.array([1.0, 2.0]),))
        >>> y, t    # t = (cos(x) x + sin(x)) * tangent
        (array([0.        , 0.84147098]), array([0.        , 2.76354658]))
    """
    if not callable(fun):
        raise TypeError(f"jvp: fun must be callable, got {type(fun).__name__}")
    for name, value in (("primals", primals), ("tangents", tangents)):
        if not isinstance(value, (tuple, list)):
            raise TypeError(f"jvp: {name} must be a tuple or list with one entry per positional argument of fun, "
                            f"got {type(value).__name__}")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: primals has {len(primals)} entries but tangents has {len(tangents)}; they must "
                         f"have the same structure")
    _check_has_aux(has_aux, "jvp")
    ieee = check_ieee(ieee, "jvp")
    kind = ("jvp", has_aux, ieee)
    return _transform(fun, kind, lambda f: _make_jvp(f, has_aux, ieee))(tuple(primals), tuple(tangents))


def _check_has_aux(has_aux, where: str) -> None:
    if not isinstance(has_aux, bool):
        raise TypeError(f"{where}: has_aux must be True or False, got {has_aux!r}")


def _make_jvp(fun: Callable, has_aux: bool, ieee: bool) -> InlineTransform:
    def traced(primals, tangents):
        root = active_root()
        tans = []

        def check(leaves, treedef, actual):  # before fun runs: a wrong tangent is the likelier mistake
            t_leaves, t_def = tree_flatten(tangents)
            if t_def != treedef:
                raise ValueError(f"jvp: tangents must have the structure of primals, {describe(treedef)}; got "
                                 f"{describe(t_def)}")
            tans.extend(_matching(t_leaves, actual, root, "jvp", "tangent", "primal"))

        standins, actual, leaves, treedef, outs, fmts, out_def, start, aux = \
            _trace_on_stand_ins(fun, primals, root, "jvp", check, has_aux)
        touts = reverse.jvp(outs, standins, tans)
        touts = [B.fill(0.0, o) if t is None else t for t, o in zip(touts, outs)]
        both = _substitute(outs + touts, standins, actual, root, start)
        n = len(outs)
        primal_out = tree_unflatten(out_def, [_wrap(o, f) for o, f in zip(both[:n], fmts)])
        tangent_out = tree_unflatten(out_def, [_wrap(t, f) for t, f in zip(both[n:], fmts)])
        if has_aux:
            return primal_out, tangent_out, _substitute_aux(aux, standins, actual, root)
        return primal_out, tangent_out
    return InlineTransform(traced, "jvp", fun, ieee)


# ---------------------------------------------------------------- vjp

class Pullback:
    """The pullback of :func:`vjp`: ``pullback(cotangent)`` returns a tuple
    with one gradient per primal (each of its primal's structure).  It runs a
    compiled function of (primals, cotangent), cached per function and
    signature: calling it again, or calling the pullback of another ``vjp``
    of the same function, does not trace again."""

    __slots__ = ("_transform", "_primals")

    def __init__(self, transform: InlineTransform, primals: tuple):
        self._transform, self._primals = transform, primals

    def __call__(self, cotangent: Any) -> tuple:
        return self._transform(self._primals, cotangent)

    @property
    def hit_rate(self) -> float:
        """Percent of pullback calls (of this function) that reused a trace."""
        return self._transform.hit_rate

    def __repr__(self) -> str:
        return f"<symdl vjp pullback of {getattr(self._transform.__wrapped__, '__name__', '?')}>"


def vjp(fun: Callable, *primals: Any, has_aux: bool = False, ieee: bool = False) -> tuple:
    """``(fun(*primals), pullback)`` with ``pullback(cotangent) = cotangent @ J``
    (reverse mode), as JAX's ``vjp``.

    Each primal is a float array, a float or a container of them.  The
    cotangent has the structure, shapes and dtypes of ``fun``'s result (a
    Python float takes the result's dtype); the pullback returns a tuple with
    one gradient per primal, each of that primal's structure.  With
    ``has_aux=True``, ``fun`` returns ``(output, aux)`` and ``vjp`` returns
    ``(output, pullback, aux)`` (``aux`` not differentiated).  ``ieee=True``:
    step-by-step IEEE semantics (docs/ieee.md).

    The value and the pullback are compiled and cached per function and
    input signature; inside another trace they are built symbolically there.

    Example:
        >>> import numpy as np, symdl
        >>> y, pullback = symdl.vjp(lambda x, w: x @ w, np.array([1.0, 2.0]), np.array([[1.0, 0.0], [0.0, 3.0]]))
        >>> y
        array([1., 6.])
        >>> gx, gw = pullback(np.array([1.0, 1.0]))
        >>> gx
        array([1., 3.])
        >>> gw
        array([[1., 1.],
               [2., 2.]])
    """
    if not callable(fun):
        raise TypeError(f"vjp: fun must be callable, got {type(fun).__name__}")
    if not primals:
        raise TypeError("vjp: give at least one primal: vjp(fun, *primals)")
    _check_has_aux(has_aux, "vjp")
    ieee = check_ieee(ieee, "vjp")
    out = _transform(fun, ("vjp_value", has_aux, ieee), lambda f: _make_value(f, has_aux, ieee))(*primals)
    pullback = Pullback(_transform(fun, ("vjp_pullback", has_aux, ieee),
                                   lambda f: _make_pullback(f, has_aux, ieee)), primals)
    return (out[0], pullback, out[1]) if has_aux else (out, pullback)


def _make_value(fun: Callable, has_aux: bool, ieee: bool) -> InlineTransform:
    def traced(*primals):
        root = active_root()
        _primal_leaves(primals, "vjp", "primals")
        result = fun(*primals)
        out, _ = _split_aux(result, has_aux, "vjp")
        output_nodes(out, root, "vjp")  # the same checks of the result as the pullback's
        return result
    return InlineTransform(traced, "vjp", fun, ieee)


def _make_pullback(fun: Callable, has_aux: bool, ieee: bool) -> InlineTransform:
    def traced(primals, cotangent):
        root = active_root()
        standins, actual, leaves, treedef, outs, _, out_def, start, _ = \
            _trace_on_stand_ins(fun, primals, root, "vjp", has_aux=has_aux)
        c_leaves, c_def = tree_flatten(cotangent)
        if c_def != out_def:
            raise ValueError(f"vjp pullback: the cotangent must have the structure of fun's result, "
                             f"{describe(out_def)}; got {describe(c_def)}")
        cots = _matching(c_leaves, outs, root, "vjp pullback", "cotangent", "result")
        grads = reverse.vjp(outs, cots, standins)
        grads = [B.fill(0.0, s) if g is None else g for g, s in zip(grads, standins)]
        grads = _substitute(grads, standins, actual, root, start)
        _mark_floats(leaves, grads, root)
        flat = tree_unflatten(treedef, [_wrap(g) for g in grads])
        return tuple(flat)
    return InlineTransform(traced, "vjp pullback", fun, ieee)
