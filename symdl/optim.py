"""The optimisers of a custom training loop, as MATLAB's: sgdmupdate,
adamupdate, rmspropupdate, and dlupdate (any function on every learnable).

Each takes the parameters as a dlarray or a container of them (dict, list,
tuple, dataclass, at any depth), the gradients in the same structure, and
its state in the same structure or ``None`` (MATLAB's ``[]``: zeros); it
returns the updated parameters and state in that structure.  They are
written with symdl's arithmetic, so they run inside ``dlaccelerate``d and
compiled functions too (one native call per training step).
"""

from __future__ import annotations

import copy

from collections.abc import Callable
from typing import Any

import numpy as np

from . import functions as F
from .array import dlarray
from .ops.args import integer, numeric, real_number
from .tree import _children as tree_children
from .tree import tree_flatten, tree_unflatten

__all__ = ["sgdmupdate", "adamupdate", "rmspropupdate", "dlupdate"]


def _children(tree) -> tuple[str, Any, list] | None:
    """(kind, keys, children) of a container, None for a leaf."""
    kind, children = tree_children(tree)
    if kind is None:
        return None
    name, aux = kind
    if name == "dict":
        return "dict", aux, children
    if name in ("list", "tuple"):
        return "sequence", len(children), children
    return name, aux, children          # namedtuple, dataclass, registered (a dlnetwork): the same type


def _shape_name(kind: str, keys) -> str:
    if kind == "dict":
        return f"a dict with keys {sorted(keys, key=str)}"
    if kind == "sequence":
        return f"a list or tuple of {keys} items"
    return f"a {kind} {keys!r}"


def _aligned(params, tree, name: str, where: str, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, parameter, leaf of ``tree``) for each parameter: ``tree`` must
    have the parameters' structure (dict keys in any order) and shapes."""
    p_node, t_node = _children(params), _children(tree)
    if p_node is None:
        if t_node is not None:
            raise ValueError(f"{where}: {name}{path} must be an array like params{path} (shape "
                             f"{np.shape(_value(params, 'params' + path, where))}), got a {type(tree).__name__}")
        p = _value(params, "params" + path, where)
        t = _value(tree, name + path, where)
        if np.shape(t) != np.shape(p):
            raise ValueError(f"{where}: {name}{path} has shape {np.shape(t)}, expected the shape of "
                             f"params{path}, {np.shape(p)} (nothing is broadcast)")
        return [(path, params, tree)]
    p_kind, p_keys, p_children = p_node
    expected = _shape_name(p_kind, p_keys)
    if t_node is None:
        raise ValueError(f"{where}: {name} must have the structure of params: {name}{path or ''} must be "
                         f"{expected}, got {type(tree).__name__}")
    t_kind, t_keys, t_children = t_node
    same = p_kind == t_kind and (set(p_keys) == set(t_keys) if p_kind == "dict" else p_keys == t_keys)
    if not same:
        raise ValueError(f"{where}: {name} must have the structure of params: {name}{path or ''} must be "
                         f"{expected}, got {_shape_name(t_kind, t_keys)}")
    if p_kind == "dict":
        by_key = dict(zip(t_keys, t_children))
        pairs = [(f"[{k!r}]", c, by_key[k]) for k, c in zip(p_keys, p_children)]
    else:
        pairs = [(f"[{k}]", c, t) for k, (c, t) in enumerate(zip(p_children, t_children))]
    out = []
    for step, p, t in pairs:
        out.extend(_aligned(p, t, name, where, path + step))
    return out


def _value(leaf, name: str, where: str):
    """A leaf's numeric value (a dlarray's or a real number's or array's)."""
    if isinstance(leaf, dlarray):
        return leaf._value
    if isinstance(leaf, (bool, np.bool_)):
        raise TypeError(f"{where}: {name} must be a dlarray or a real number or array, got {leaf!r}")
    return numeric(leaf, name, where)


def _leaves(tree, params, name: str, where: str) -> list:
    """The leaves of ``tree`` in the order of ``tree_flatten(params)``
    (``None``: a list of ``None``, zeros of the parameters' shapes)."""
    if tree is None:
        if name == "grad":
            raise TypeError(f"{where}: grad must have the structure of params, got None")
        return [None] * len(tree_flatten(params)[0])
    return [_in_dtype_of_param(t, p) for _, p, t in _aligned(params, tree, name, where)]


def _in_dtype_of_param(leaf, p):
    """A gradient or state leaf in its parameter's dtype: an update never
    turns float32 parameters into float64 ones."""
    if isinstance(p, dlarray):
        dtype = p.dtype
    else:   # a number or numpy array; integers update as float64
        dtype = np.asarray(p).dtype if np.asarray(p).dtype.kind == "f" else np.dtype(np.float64)
    if isinstance(leaf, dlarray):
        return leaf if leaf.dtype == dtype else leaf.astype(dtype)
    return np.asarray(leaf, dtype=dtype)


def _learn_rate(value, where: str):
    """A non-negative finite number, or a scalar dlarray holding one (a
    learning-rate schedule inside a compiled training step: one trace for
    every rate; its value is checked where it is known, when tracing)."""
    if not isinstance(value, dlarray):
        return real_number(value, "learn_rate", where, "non-negative")
    if value.size != 1:
        raise ValueError(f"{where}: learn_rate must be a number or a scalar dlarray, got a dlarray of shape "
                         f"{value.shape}")
    rate = float(value._value.reshape(()))
    if not (np.isfinite(rate) and rate >= 0):
        raise ValueError(f"{where}: learn_rate must be a non-negative finite number, got {rate!r}")
    return F.reshape(value, ())


def _iteration(value, where: str):
    """adamupdate's step count: a positive int, or a scalar dlarray holding
    one (then a compiled training step is one trace for all iterations; its
    value is checked where it is known, when tracing)."""
    if not isinstance(value, dlarray):
        return integer(value, "iteration (counted from 1)", where)
    v = value._value
    if value.size != 1:
        raise ValueError(f"{where}: iteration must be a positive integer or a scalar dlarray holding one, "
                         f"got a dlarray of shape {value.shape}")
    if not (np.isfinite(v).all() and float(v.reshape(())) >= 1 and float(v.reshape(())).is_integer()):
        raise ValueError(f"{where}: iteration must be a positive integer (counted from 1), got "
                         f"{float(v.reshape(()))!r}")
    return F.reshape(value, ())


def _in_dtype_of(factor, p):
    """A traced factor in the parameter's dtype (a float64 iteration must not
    turn float32 parameters into float64 ones)."""
    if isinstance(factor, dlarray) and isinstance(p, dlarray) and factor.dtype != p.dtype:
        return factor.astype(p.dtype)
    return factor


def _learnables_of(params) -> tuple[Any, Callable[[Any], Any]]:
    """``params`` as the tree its gradient has, and how to put updated
    values back: a dlnetwork is updated in its learnables (what
    ``dlgradient(loss, net)`` returns the gradient of), and comes back as a
    new dlnetwork with the same layers and state; the optimiser state stays
    a nested dict shaped like ``net.learnables`` (MATLAB returns tables)."""
    target = getattr(type(params), "__symdl_gradient_target__", None)
    if target is None:
        return params, lambda new: new
    net = params

    def rebuild(new):
        out = copy.copy(net)
        out.learnables = new
        return out
    return target(net), rebuild


def sgdmupdate(params, grad, vel=None, learn_rate: float = 0.01, momentum: float = 0.9):
    """Stochastic gradient descent with momentum:
    ``vel = momentum * vel - learn_rate * grad``, ``params = params + vel``.
    Returns ``(params, vel)``.  ``learn_rate`` may be a scalar dlarray (a
    schedule inside a compiled step: one trace for every rate).

    Example:
        >>> import symdl
        >>> p, v = symdl.sgdmupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None)
        >>> float(p[0]), float(v[0])
        (0.98, -0.02)
    """
    where = "sgdmupdate"
    params, rebuild = _learnables_of(params)
    lr = _learn_rate(learn_rate, where)
    mu = real_number(momentum, "momentum", where, "[0, 1]")
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, params, "grad", where)
    vs = _leaves(vel, params, "vel", where)
    new_p, new_v = [], []
    for p, g, v in zip(ps, gs, vs):
        rate = _in_dtype_of(lr, p)
        v = g * -rate if v is None else v * mu - g * rate
        new_p.append(p + v)
        new_v.append(v)
    return rebuild(tree_unflatten(pdef, new_p)), tree_unflatten(pdef, new_v)


def adamupdate(params, grad, avg_g=None, avg_sq_g=None, iteration: int = 1, learn_rate: float = 0.001,
               grad_decay: float = 0.9, sq_grad_decay: float = 0.999, epsilon: float = 1e-8):
    """Adam: moving averages of the gradient and its square with bias
    correction for ``iteration`` (counted from 1), then
    ``params - learn_rate * m / (sqrt(v) + epsilon)``.
    Returns ``(params, avg_g, avg_sq_g)``.

    ``iteration`` is an int, or a scalar dlarray holding one: pass it as a
    dlarray to a ``dlaccelerate``d training step, so that one trace serves
    every iteration (an int is a static argument: a new trace per value).
    ``learn_rate`` may be a scalar dlarray too, for the same reason.

    Example:
        >>> import symdl
        >>> p, m, v = symdl.adamupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None, None, 1)
        >>> round(float(p[0]), 6)   # the first step moves by learn_rate
        0.999
    """
    where = "adamupdate"
    params, rebuild = _learnables_of(params)
    iteration = _iteration(iteration, where)
    lr = _learn_rate(learn_rate, where)
    # below 1: the bias corrections divide by 1 - decay ** iteration
    b1 = real_number(grad_decay, "grad_decay", where, "[0, 1)")
    b2 = real_number(sq_grad_decay, "sq_grad_decay", where, "[0, 1)")
    eps = real_number(epsilon, "epsilon", where, "positive")
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, params, "grad", where)
    ms = _leaves(avg_g, params, "avg_g", where)
    vs = _leaves(avg_sq_g, params, "avg_sq_g", where)
    # with a dlarray iteration the bias corrections are computed in the graph,
    # so a compiled training step serves every iteration with one trace
    c1, c2 = 1.0 - b1 ** iteration, 1.0 - b2 ** iteration
    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(ps, gs, ms, vs):
        m = g * (1.0 - b1) if m is None else m * b1 + g * (1.0 - b1)
        v = g * g * (1.0 - b2) if v is None else v * b2 + g * g * (1.0 - b2)
        step = (m * _in_dtype_of(lr / c1, p)) / (F.sqrt(v * _in_dtype_of(1.0 / c2, p)) + eps)
        new_p.append(p - step)
        new_m.append(m)
        new_v.append(v)
    return rebuild(tree_unflatten(pdef, new_p)), tree_unflatten(pdef, new_m), tree_unflatten(pdef, new_v)


def rmspropupdate(params, grad, avg_sq_g=None, learn_rate: float = 0.001, sq_grad_decay: float = 0.9,
                  epsilon: float = 1e-8):
    """RMSProp: ``v = decay * v + (1 - decay) * grad^2``,
    ``params - learn_rate * grad / (sqrt(v) + epsilon)``.  Returns ``(params, avg_sq_g)``.
    ``learn_rate`` may be a scalar dlarray (one compiled trace for every rate).

    Example:
        >>> import symdl
        >>> p, v = symdl.rmspropupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None)
        >>> round(float(p[0]), 6), round(float(v[0]), 6)   # 1 - 0.001 * 2 / sqrt(0.4)
        (0.996838, 0.4)
    """
    where = "rmspropupdate"
    params, rebuild = _learnables_of(params)
    lr = _learn_rate(learn_rate, where)
    b = real_number(sq_grad_decay, "sq_grad_decay", where, "[0, 1)")
    eps = real_number(epsilon, "epsilon", where, "positive")
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, params, "grad", where)
    vs = _leaves(avg_sq_g, params, "avg_sq_g", where)
    new_p, new_v = [], []
    for p, g, v in zip(ps, gs, vs):
        v = g * g * (1.0 - b) if v is None else v * b + g * g * (1.0 - b)
        new_p.append(p - (g * _in_dtype_of(lr, p)) / (F.sqrt(v) + eps))
        new_v.append(v)
    return rebuild(tree_unflatten(pdef, new_p)), tree_unflatten(pdef, new_v)


def dlupdate(fun: Callable[..., Any], params, *more):
    """``fun`` applied to every learnable (with the matching leaves of
    ``more``, which have the parameters' structure); the results in that
    structure.  When ``fun`` returns a tuple, one structure per element.

    Example:
        >>> import symdl
        >>> symdl.dlupdate(lambda p: p * 0.5, {"w": symdl.dlarray([2.0, 4.0])})
        {'w': dlarray([1., 2.])}
    """
    if not callable(fun):
        raise TypeError(f"dlupdate: fun must be callable, got {type(fun).__name__}")
    params, rebuild = _learnables_of(params)
    ps, pdef = tree_flatten(params)
    others = [_leaves(m, params, f"argument {k + 2}", "dlupdate") for k, m in enumerate(more)]
    results = [fun(p, *rest) for p, *rest in zip(ps, *others)]
    if results and all(isinstance(r, tuple) for r in results):
        first, *rest = (tree_unflatten(pdef, list(col)) for col in zip(*results))
        return (rebuild(first), *rest)
    return rebuild(tree_unflatten(pdef, results))
