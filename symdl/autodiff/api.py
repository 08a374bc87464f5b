"""dlfeval, dlgradient and the derivative operators of physics-informed
networks (dljacobian, dldivergence, dllaplacian)."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable

import numpy as np

from ..array import dlarray
from ..core import is_traced
from ..ir import build as B
from ..ir.node import Node
from ..tracing import TraceContext, active_root, current, run_traced
from ..tree import tree_flatten, tree_map, tree_unflatten
from .reverse import jvp, vjp
from ..ir.shapes import dtype_name

__all__ = ["dlfeval", "dlgradient", "dljacobian", "dldivergence", "dllaplacian", "gradient_nodes"]


def _wrap_input(a: dlarray, ctx: TraceContext) -> dlarray:
    if is_traced(a):
        return a  # nested dlfeval: stays connected to the outer trace
    node = ctx.new_input(a._value)
    return dlarray._wrap(a._value, node, ctx.root, a._fmt)


def _strip(a):
    return dlarray._wrap(a._value, None, None, a._fmt) if isinstance(a, dlarray) else a


def dlfeval(fun: Callable, *args: Any, **kwargs: Any) -> Any:
    """Evaluate ``fun(*args, **kwargs)`` with automatic differentiation on.

    Every dlarray among the arguments, at any depth of tuples, lists, dicts
    and dataclasses, is traced; ``dlgradient`` may be called inside ``fun``.
    Returns what ``fun`` returns, with dlarrays untraced again (inside an outer
    ``dlfeval`` they stay traced, so the outer call can differentiate through).

    Example:
        >>> import symdl
        >>> def f(x):
        ...     y = symdl.sum(x ** 2)
        ...     return y, symdl.dlgradient(y, x)
        >>> y, g = symdl.dlfeval(f, symdl.dlarray([1.0, 2.0]))
        >>> symdl.extractdata(g)
        array([2., 4.])
    """
    if not callable(fun):
        raise TypeError(f"dlfeval: fun must be callable, got {type(fun).__name__}")
    direct = getattr(type(fun), "_dlfeval_call", None)
    if direct is not None and active_root() is None:
        # dlfeval(accfun, ...): the accelerated trace differentiates inside itself
        return direct(fun, args, kwargs)
    ctx, out = run_traced(fun, args, kwargs, _wrap_input)
    if ctx.parent is not None:
        return out
    return tree_map(_strip, out)


def _check_y(y, where: str, name: str = "y") -> TraceContext:
    root, here = active_root(), current()
    if root is None or not here.gradients_allowed:
        raise RuntimeError(f"{where} must be called inside a function evaluated with dlfeval")
    if not isinstance(y, dlarray):
        raise ValueError(f"{where}: {name} must be a traced dlarray, got {type(y).__name__}")
    if not is_traced(y) or _cut_by_stop_gradient(y._node):
        raise ValueError(f"{where}: {name} is not traced; it must be computed from dlarray inputs of dlfeval "
                         "(a gradient taken without enable_higher_derivatives=True is not traced)")
    return root


def _check_flag(value, name: str, where: str) -> bool:
    """A MATLAB logical option: True/False (numpy bools, 0 and 1 too), never a
    truthy string such as 'no'."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{where}: {name} must be True or False, got {type(value).__name__} {value!r}")


def _cut_by_stop_gradient(node: Node) -> bool:
    """Whether ``node`` was computed only from gradients taken without
    enable_higher_derivatives (MATLAB's untraced values): it reaches such a
    gradient but no graph input.  A traced value that folded to a constant is
    still traced (its derivatives are zero)."""
    stack, seen, cut = [node], set(), False
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n.op == "stop_gradient":
            cut = True
            continue
        if n.op == "input" and not n.attr("name").startswith("__rng__"):
            return False
        stack.extend(n.inputs)
    return cut


def gradient_nodes(y: Node, wrt: list[Node]) -> list[Node | None]:
    """Symbolic gradients of scalar ``y`` with respect to ``wrt``.

    A single scalar ``x`` uses forward mode: it builds the derivative bottom-up,
    so repeated derivatives keep the Leibniz structure and stay small; anything
    else uses reverse mode (one pass for all inputs).
    """
    if len(wrt) == 1 and wrt[0].size == 1:
        (t,) = jvp([y], wrt, [B.fill(1.0, wrt[0])])
        if t is None:
            return [None]
        return [B.reshape(t, wrt[0].shape) if t.shape != wrt[0].shape else t]
    return vjp([y], [B.fill(1.0, y)], wrt)


def dlgradient(y: dlarray, *xs: Any, retain_data: bool = False,
               enable_higher_derivatives: bool = False):
    """Gradients of the traced real scalar ``y`` with respect to each ``x``.

    Each ``x`` is a traced dlarray or a container of them; its gradient has
    the same structure, shape, labels and dtype.  An ``x`` that ``y`` does not
    depend on gets zeros.  With one ``x`` the gradient itself is returned,
    with several a tuple.  ``enable_higher_derivatives=True`` returns traced
    gradients that can be differentiated again, to any order.
    ``retain_data`` is accepted for MATLAB compatibility: the trace is always
    kept for the whole ``dlfeval`` call, so results never depend on it.

    Example:
        >>> import symdl
        >>> def f(x):
        ...     y = symdl.sin(x) * x
        ...     return symdl.dlgradient(y, x)
        >>> float(symdl.dlfeval(f, symdl.dlarray(0.0)))
        0.0
    """
    root = _check_y(y, "dlgradient")
    _check_flag(retain_data, "retain_data", "dlgradient")
    enable_higher_derivatives = _check_flag(enable_higher_derivatives, "enable_higher_derivatives", "dlgradient")
    if not xs:
        raise ValueError("dlgradient: give at least one x to differentiate with respect to")
    if y.size != 1:
        raise ValueError(f"dlgradient: y must be a scalar (one element), got shape {y.shape}")
    if y.dtype.kind != "f":
        raise ValueError(f"dlgradient: y must be real floating point, got dtype {y.dtype}")
    # a dlnetwork target is differentiated with respect to its learnables
    # (the gradient is shaped like net.learnables, SPEC §8)
    xs = tree_map(lambda x: x.__symdl_gradient_target__() if hasattr(type(x), "__symdl_gradient_target__") else x,
                  xs, is_leaf=lambda x: hasattr(type(x), "__symdl_gradient_target__"))
    leaves, treedef = tree_flatten(xs)
    for leaf in leaves:
        if not isinstance(leaf, dlarray):
            raise ValueError(f"dlgradient: every x must be a dlarray (or a container of dlarrays); "
                             f"found {type(leaf).__name__}")
        if not is_traced(leaf):
            raise ValueError("dlgradient: x is not traced; differentiate with respect to dlfeval inputs "
                             "or values computed from them")
    # An input of the call is differentiated directly; any value computed in
    # the call by replaying the user's operations, even when its node is an
    # input's (z = x * 1.0 is x's node, but d/dz holds x fixed)
    direct = [leaf for leaf in leaves if _is_input_itself(leaf)]
    wrt = list(dict.fromkeys(leaf._node for leaf in direct))
    ynode = B.reshape(y._node, ()) if y.shape != () else y._node
    by_node = dict(zip(wrt, gradient_nodes(ynode, wrt))) if wrt else {}
    grads = [by_node[leaf._node] if _is_input_itself(leaf) else _intermediate_gradient(root, y, leaf)
             for leaf in leaves]
    nodes = []
    for leaf, g in zip(leaves, grads):
        g = B.fill(0.0, leaf._node) if g is None else B.convert(g, leaf._node.dtype)
        nodes.append(g)
    if not enable_higher_derivatives:
        # Still traced (compiled functions need the derivative graph), but
        # constant to any later differentiation, as MATLAB's untraced gradients.
        nodes = [B.emit("stop_gradient", (n,)) for n in nodes]
    values = root.values(nodes)
    # each gradient remembers how it was made, so that a later gradient with
    # respect to a value computed in the call can replay it (see _replay)
    outs = [dlarray._wrap(v, n, root, leaf._fmt, ("gradient", y, leaf, enable_higher_derivatives))
            for v, n, leaf in zip(values, nodes, leaves)]
    result = tree_unflatten(treedef, outs)
    return result[0] if len(xs) == 1 else result


# ---------------------------------------------------------------- PINN operators

def _coordinate_axis(x: dlarray, dim, where: str) -> int:
    if isinstance(dim, str):
        axes = [i for i, c in enumerate(x.fmt) if c == dim.upper()]
        if len(axes) != 1:
            raise ValueError(f"{where}: dim {dim!r} must name exactly one dimension of x (fmt {x.fmt!r})")
        return axes[0]
    if not isinstance(dim, (int, np.integer)) or not -x.ndim <= dim < x.ndim:
        raise ValueError(f"{where}: dim must be an axis of x (0..{x.ndim - 1}) or a label, got {dim!r}")
    return int(dim) % x.ndim


def _laplacian_component_axis(u: dlarray, x: dlarray, dim, ax_x: int, rest: list) -> int | None:
    """The axis of ``u`` that holds its components, or None when ``u`` is one
    scalar field per position (shaped like ``x`` without its coordinate axis,
    e.g. ``sum(x ** 2, 0)``): SPEC's ``dim`` names an axis of ``x`` only."""
    if list(u.shape) == rest and u.ndim == x.ndim - 1:
        return None
    ax_u = _coordinate_axis(u, dim, "dllaplacian")
    if u.ndim != x.ndim or [d for k, d in enumerate(u.shape) if k != ax_u] != rest:
        raise ValueError(f"dllaplacian: u of shape {u.shape} must be shaped like x {x.shape} without its "
                         f"coordinate axis {ax_x} ({tuple(rest)}), or with components along that axis")
    return ax_u


def _component(u: dlarray, axis: int, i: int) -> Node:
    sl = [slice(None)] * u.ndim
    sl[axis] = slice(i, i + 1)
    return B.reduce_sum(B.slice_(u._node, sl), range(u.ndim))


def _check_pair(u, x, where, higher):
    root = _check_y(u, where, "u")
    _check_flag(higher, "enable_higher_derivatives", where)
    if not isinstance(x, dlarray) or not is_traced(x):
        raise ValueError(f"{where}: x must be a traced dlarray")
    return root


def _jacobian_nodes(u: dlarray, x: dlarray, ax_u: int, ax_x: int, where: str) -> Node:
    """J[i, j, rest...] = d u[i, rest] / d x[j, rest] (each position independent)."""
    rest_u = [d for k, d in enumerate(u.shape) if k != ax_u]
    rest_x = [d for k, d in enumerate(x.shape) if k != ax_x]
    if rest_u != rest_x:
        raise ValueError(f"{where}: u of shape {u.shape} and x of shape {x.shape} must agree off the "
                         f"coordinate axis ({ax_u} of u, {ax_x} of x)")
    rows = []
    for i in range(u.shape[ax_u]):
        (g,) = vjp([_component(u, ax_u, i)], [B.const(1.0, (), dtype_name(u.dtype))], [x._node])
        g = B.fill(0.0, x._node) if g is None else g
        perm = [ax_x] + [k for k in range(x.ndim) if k != ax_x]
        rows.append(B.reshape(B.transpose(g, perm), (1, *g.shape[ax_x:ax_x + 1], *rest_x)))
    return B.concatenate(rows, 0)


def _result(root, node: Node, higher: bool, fmt: str | None) -> dlarray:
    if not higher:
        node = B.emit("stop_gradient", (node,))
    (value,) = root.values([node])
    return dlarray._wrap(value, node, root, fmt)


def _replay(y: dlarray, stand_ins: dict[int, Node]) -> Node:
    """Rebuild ``y`` from the operations the user's code performed (each
    traced dlarray's ``_origin``), with some dlarrays replaced by stand-in
    nodes.  Iterative, over the user's own operation DAG."""
    built: dict[int, Node] = {}
    stack = [y]
    keep = []  # the dlarrays whose ids are keys of ``built``
    while stack:
        d = stack[-1]
        key = id(d)
        if key in built:
            stack.pop()
            continue
        if key in stand_ins:
            built[key] = stand_ins[key]
            keep.append(d)
            stack.pop()
            continue
        origin = d._origin if isinstance(d, dlarray) else None
        if origin is None:
            built[key] = d._node if isinstance(d, dlarray) and d._node is not None else \
                B.const(np.asarray(d._value if isinstance(d, dlarray) else d), None,
                        dtype_name(np.asarray(d._value if isinstance(d, dlarray) else d).dtype))
            keep.append(d)
            stack.pop()
            continue
        if origin[0] == "gradient":
            built[key] = _replay_gradient(origin, stand_ins, built)
            keep.append(d)
            stack.pop()
            continue
        parts = [origin[1]] if origin[0] == "alias" else list(origin[2])
        pending = [p for p in parts if id(p) not in built]
        if pending:
            stack.extend(pending)
            continue
        if origin[0] == "alias":
            built[key] = built[id(parts[0])]
        else:
            op, attrs, _ = origin
            built[key] = B.emit(op, [built[id(p)] for p in parts], **attrs)
        keep.append(d)
        stack.pop()
    return built[id(y)]


def _replay_gradient(origin: tuple, stand_ins: dict[int, Node], built: dict[int, Node]) -> Node:
    """A gradient ``dlgradient(y, x)`` made earlier in the call, rebuilt with
    the replay's stand-ins, so that paths through it are differentiated too
    (the gradient of a gradient with respect to an intermediate).  Its own x
    gets a fresh stand-in, replaced afterwards by x as the replay sees it."""
    _, y, x, higher = origin
    x_node = _replay(x, stand_ins) if id(x) not in built else built[id(x)]
    inner = B.input_node(active_root().fresh_name("__wrt__"), x.shape, dtype_name(x.dtype))
    ynode = _replay(y, {**stand_ins, id(x): inner})
    ynode = B.reshape(ynode, ()) if ynode.shape != () else ynode
    (g,) = gradient_nodes(ynode, [inner])
    g = B.fill(0.0, inner) if g is None else B.convert(g, inner.dtype)
    g = B.substitute([g], {inner: x_node})[0]
    return g if higher else B.emit("stop_gradient", (g,))


def _is_input_itself(x: dlarray) -> bool:
    """Whether ``x`` is an input of the trace (or a relabelling of one), not a
    value computed from inputs."""
    while x._origin is not None and x._origin[0] == "alias":
        x = x._origin[1]
    return x._origin is None and x._node.op == "input"


def _intermediate_gradient(root: TraceContext, y: dlarray, x: dlarray) -> Node | None:
    """The gradient with respect to a value computed inside the call (MATLAB
    allows any traced x).  Canonical forms may have merged x into y's graph,
    so y is rebuilt from the recorded operations with x as a stand-in input;
    the stand-in is then replaced by x's own node in the result.  Other x's
    are not cut: each intermediate gets its own replay."""
    stand_in = B.input_node(root.fresh_name("__wrt__"), x.shape, dtype_name(x.dtype))
    root.memo[stand_in] = x._value
    ynode = _replay(y, {id(x): stand_in})
    ynode = B.reshape(ynode, ()) if ynode.shape != () else ynode
    (g,) = gradient_nodes(ynode, [stand_in])
    return None if g is None else B.substitute([g], {stand_in: x._node})[0]


def dljacobian(u: dlarray, x: dlarray, dim, *, enable_higher_derivatives: bool = True) -> dlarray:
    """Jacobian of the vector field ``u`` with respect to ``x``; ``dim`` is the
    axis (or label) holding the coordinates of both.  The result has the
    components of ``u`` first, then those of ``x``, then the other axes.

    Example:
        >>> import numpy as np, symdl
        >>> def f(x):
        ...     return symdl.dljacobian(x ** 2, x, 0)
        >>> symdl.extractdata(symdl.dlfeval(f, symdl.dlarray(np.array([[1.0], [2.0]]))))[:, :, 0]
        array([[2., 0.],
               [0., 4.]])
    """
    root = _check_pair(u, x, "dljacobian", enable_higher_derivatives)
    ax_x = _coordinate_axis(x, dim, "dljacobian")
    ax_u = _coordinate_axis(u, dim, "dljacobian")
    return _result(root, _jacobian_nodes(u, x, ax_u, ax_x, "dljacobian"), enable_higher_derivatives, None)


def dldivergence(u: dlarray, x: dlarray, dim, *, enable_higher_derivatives: bool = True) -> dlarray:
    """Divergence ``sum_i d u_i / d x_i`` per position; the coordinate axis is
    kept with size 1 (as MATLAB).

    Example:
        >>> import numpy as np, symdl
        >>> x = symdl.dlarray(np.array([[1.0, 2.0], [3.0, 4.0]]), "CB")  # 2 coordinates, 2 points
        >>> div = symdl.dlfeval(lambda x: symdl.dldivergence(x ** 2, x, "C"), x)
        >>> symdl.extractdata(div)   # 2 x1 + 2 x2 at each point
        array([[ 8., 12.]])
    """
    root = _check_pair(u, x, "dldivergence", enable_higher_derivatives)
    ax_x = _coordinate_axis(x, dim, "dldivergence")
    ax_u = _coordinate_axis(u, dim, "dldivergence")
    if u.shape[ax_u] != x.shape[ax_x]:
        raise ValueError(f"dldivergence: u has {u.shape[ax_u]} components but x has {x.shape[ax_x]} coordinates")
    jac = _jacobian_nodes(u, x, ax_u, ax_x, "dldivergence")
    n = u.shape[ax_u]
    diag = [B.slice_(jac, [slice(i, i + 1), slice(i, i + 1)]) for i in range(n)]
    total = diag[0] if n == 1 else B.add(*diag)
    rest = [d for k, d in enumerate(x.shape) if k != ax_x]
    out_shape = list(rest)
    out_shape.insert(ax_x, 1)
    return _result(root, B.reshape(total, out_shape), enable_higher_derivatives, x._fmt)


def dllaplacian(u: dlarray, x: dlarray, dim, *, enable_higher_derivatives: bool = True) -> dlarray:
    """Laplacian ``sum_j d^2 u_i / d x_j^2`` of each component of ``u``, per
    position; the result has the shape of ``u``.

    Example:
        >>> import numpy as np, symdl
        >>> x = symdl.dlarray(np.array([[1.0, 2.0], [3.0, 4.0]]), "CB")
        >>> u = lambda x: symdl.sum(x ** 3, "C", keepdims=True)   # x1^3 + x2^3
        >>> lap = symdl.dlfeval(lambda x: symdl.dllaplacian(u(x), x, "C"), x)
        >>> symdl.extractdata(lap)   # 6 x1 + 6 x2
        array([[24., 36.]])
    """
    root = _check_pair(u, x, "dllaplacian", enable_higher_derivatives)
    ax_x = _coordinate_axis(x, dim, "dllaplacian")
    rest = [d for k, d in enumerate(x.shape) if k != ax_x]
    ax_u = _laplacian_component_axis(u, x, dim, ax_x, rest)
    comps = []
    for i in range(u.shape[ax_u] if ax_u is not None else 1):
        ui = _component(u, ax_u, i) if ax_u is not None else B.reduce_sum(u._node, range(u.ndim))
        (g,) = vjp([ui], [B.const(1.0, (), dtype_name(u.dtype))], [x._node])
        terms = []
        for j in range(x.shape[ax_x]) if g is not None else ():
            sl = [slice(None)] * x.ndim
            sl[ax_x] = slice(j, j + 1)
            gj = B.slice_(g, sl)
            (h,) = vjp([B.reduce_sum(gj, range(x.ndim))], [B.const(1.0, (), dtype_name(u.dtype))], [x._node])
            if h is not None:
                terms.append(B.slice_(h, sl))
        if not terms:
            shape = list(rest)
            shape.insert(ax_x, 1)
            comps.append(B.const(0.0, shape, dtype_name(u.dtype)))
        else:
            comps.append(terms[0] if len(terms) == 1 else B.add(*terms))
    lap = comps[0] if len(comps) == 1 else B.concatenate(comps, ax_x)
    lap = B.reshape(lap, u.shape) if lap.shape != u.shape else lap
    return _result(root, lap, enable_higher_derivatives, u._fmt)
