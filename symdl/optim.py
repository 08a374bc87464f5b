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

from collections.abc import Callable
from numbers import Real
from typing import Any

import numpy as np

from . import functions as F
from .array import dlarray
from .tree import tree_flatten, tree_unflatten

__all__ = ["sgdmupdate", "adamupdate", "rmspropupdate", "dlupdate"]


def _leaves(tree, like, name: str, where: str) -> list:
    """The leaves of ``tree`` (``None``: zeros like ``like``'s), checked
    against the parameters' structure and shapes."""
    params, pdef = like
    if tree is None and name == "grad":
        raise TypeError(f"{where}: grad must have the structure of the parameters, got None")
    if tree is None:
        return [None] * len(params)
    leaves, tdef = tree_flatten(tree)
    if tdef != pdef:
        raise ValueError(f"{where}: {name} must have the structure of the parameters "
                         f"({len(params)} arrays), got {type(tree).__name__} with {len(leaves)}")
    for k, (p, t) in enumerate(zip(params, leaves)):
        shape = np.shape(t._value if isinstance(t, dlarray) else t)
        if shape != np.shape(p._value if isinstance(p, dlarray) else p):
            raise ValueError(f"{where}: {name} array {k} has shape {shape}, the parameter has shape "
                             f"{np.shape(p._value if isinstance(p, dlarray) else p)}")
    return leaves


def _number(value, name: str, where: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: {name} must be a real number, got {value!r}")
    value = float(value)
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        raise ValueError(f"{where}: {name} must be in [{low}, {high}], got {value!r}")
    return value


def _zeros_like(p):
    return p * 0.0


def sgdmupdate(params, grad, vel=None, learn_rate: float = 0.01, momentum: float = 0.9):
    """Stochastic gradient descent with momentum:
    ``vel = momentum * vel - learn_rate * grad``, ``params = params + vel``.
    Returns ``(params, vel)``.

    Example:
        >>> import symdl
        >>> p, v = symdl.sgdmupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None)
        >>> float(p[0]), float(v[0])
        (0.98, -0.02)
    """
    where = "sgdmupdate"
    lr = _number(learn_rate, "learn_rate", where, 0.0)
    mu = _number(momentum, "momentum", where, 0.0, 1.0)
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, (ps, pdef), "grad", where)
    vs = _leaves(vel, (ps, pdef), "vel", where)
    new_p, new_v = [], []
    for p, g, v in zip(ps, gs, vs):
        v = g * -lr if v is None else v * mu - g * lr
        new_p.append(p + v)
        new_v.append(v)
    return tree_unflatten(pdef, new_p), tree_unflatten(pdef, new_v)


def adamupdate(params, grad, avg_g=None, avg_sq_g=None, iteration: int = 1, learn_rate: float = 0.001,
               grad_decay: float = 0.9, sq_grad_decay: float = 0.999, epsilon: float = 1e-8):
    """Adam: moving averages of the gradient and its square with bias
    correction for ``iteration`` (counted from 1), then
    ``params - learn_rate * m / (sqrt(v) + epsilon)``.
    Returns ``(params, avg_g, avg_sq_g)``.

    Example:
        >>> import symdl
        >>> p, m, v = symdl.adamupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None, None, 1)
        >>> round(float(p[0]), 6)   # the first step moves by learn_rate
        0.999
    """
    where = "adamupdate"
    if isinstance(iteration, bool) or not isinstance(iteration, (int, np.integer)) or iteration < 1:
        raise ValueError(f"{where}: iteration must be a positive integer (counted from 1), got {iteration!r}")
    lr = _number(learn_rate, "learn_rate", where, 0.0)
    b1 = _number(grad_decay, "grad_decay", where, 0.0, 1.0)
    b2 = _number(sq_grad_decay, "sq_grad_decay", where, 0.0, 1.0)
    eps = _number(epsilon, "epsilon", where, 0.0)
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, (ps, pdef), "grad", where)
    ms = _leaves(avg_g, (ps, pdef), "avg_g", where)
    vs = _leaves(avg_sq_g, (ps, pdef), "avg_sq_g", where)
    c1, c2 = 1.0 - b1 ** int(iteration), 1.0 - b2 ** int(iteration)
    new_p, new_m, new_v = [], [], []
    for p, g, m, v in zip(ps, gs, ms, vs):
        m = g * (1.0 - b1) if m is None else m * b1 + g * (1.0 - b1)
        v = g * g * (1.0 - b2) if v is None else v * b2 + g * g * (1.0 - b2)
        step = (m * (lr / c1)) / (F.sqrt(v * (1.0 / c2)) + eps)
        new_p.append(p - step)
        new_m.append(m)
        new_v.append(v)
    return tree_unflatten(pdef, new_p), tree_unflatten(pdef, new_m), tree_unflatten(pdef, new_v)


def rmspropupdate(params, grad, avg_sq_g=None, learn_rate: float = 0.001, sq_grad_decay: float = 0.9,
                  epsilon: float = 1e-8):
    """RMSProp: ``v = decay * v + (1 - decay) * grad^2``,
    ``params - learn_rate * grad / (sqrt(v) + epsilon)``.  Returns ``(params, avg_sq_g)``.

    Example:
        >>> import symdl
        >>> p, v = symdl.rmspropupdate(symdl.dlarray([1.0]), symdl.dlarray([2.0]), None)
        >>> round(float(p[0]), 6), round(float(v[0]), 6)   # 1 - 0.001 * 2 / sqrt(0.4)
        (0.996838, 0.4)
    """
    where = "rmspropupdate"
    lr = _number(learn_rate, "learn_rate", where, 0.0)
    b = _number(sq_grad_decay, "sq_grad_decay", where, 0.0, 1.0)
    eps = _number(epsilon, "epsilon", where, 0.0)
    ps, pdef = tree_flatten(params)
    gs = _leaves(grad, (ps, pdef), "grad", where)
    vs = _leaves(avg_sq_g, (ps, pdef), "avg_sq_g", where)
    new_p, new_v = [], []
    for p, g, v in zip(ps, gs, vs):
        v = g * g * (1.0 - b) if v is None else v * b + g * g * (1.0 - b)
        new_p.append(p - (g * lr) / (F.sqrt(v) + eps))
        new_v.append(v)
    return tree_unflatten(pdef, new_p), tree_unflatten(pdef, new_v)


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
    ps, pdef = tree_flatten(params)
    others = [_leaves(m, (ps, pdef), f"argument {k + 2}", "dlupdate") for k, m in enumerate(more)]
    results = [fun(p, *rest) for p, *rest in zip(ps, *others)]
    if results and all(isinstance(r, tuple) for r in results):
        return tuple(tree_unflatten(pdef, list(col)) for col in zip(*results))
    return tree_unflatten(pdef, results)
