"""``symdl.elementwise``: user-defined elementwise functions from SymPy."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


from .ir.ops import functions as E

__all__ = ["elementwise"]


def elementwise(f, name: str | None = None, partials: Callable | None = None) -> Callable:
    """Define a differentiable elementwise function from a SymPy expression.

    ``f`` is a ``sympy.Lambda`` or a Python callable mapping SymPy symbols to an
    expression.  The function is one graph node; its derivatives of every
    order are ``sympy.diff`` of ``f``, unless ``partials`` declares them:
    a callable taking the same symbols and returning one SymPy expression per
    argument (use it where ``sympy.diff`` gives a formula that overflows).

    Example:
        >>> import sympy, symdl
        >>> softplus = symdl.elementwise(lambda x: sympy.log(1 + sympy.exp(x)),
        ...                              partials=lambda x: [1 / (1 + sympy.exp(-x))])
        >>> float(softplus(symdl.dlarray(0.0)))  # log 2
        0.6931471805599453
        >>> def g(x):
        ...     y = softplus(x)
        ...     return symdl.dlgradient(y, x)
        >>> float(symdl.dlfeval(g, symdl.dlarray(800.0)))  # sympy.diff's exp(x)/(1+exp(x)) is NaN here
        1.0
    """
    import sympy
    if isinstance(f, sympy.Lambda):
        params = tuple(sympy.Symbol(f"x{k}", real=True) for k in range(len(f.variables)))
        expr = f(*params)
    elif callable(f):
        import inspect
        try:
            arity = len(inspect.signature(f).parameters)
        except (TypeError, ValueError):
            arity = 1
        params = tuple(sympy.Symbol(f"x{k}", real=True) for k in range(arity))
        expr = sympy.sympify(f(*params))
    else:
        raise TypeError(f"elementwise: f must be a sympy.Lambda or a callable, got {type(f).__name__}")
    if not isinstance(expr, sympy.Expr):
        raise TypeError(f"elementwise: f must return a SymPy expression, got {type(expr).__name__}")
    extra = expr.free_symbols - set(params)
    if extra:
        raise ValueError(f"elementwise: the expression uses symbols {sorted(map(str, extra))} "
                         "that are not its arguments")
    declared = _declared_partials(partials, params) if partials is not None else None
    key = sympy.srepr(expr) + ("" if declared is None else "|" + sympy.srepr(tuple(declared)))
    digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
    op = f"ew_{name or getattr(f, '__name__', 'fn')}_{digest}".replace("<lambda>", "lambda")
    if op not in E.FUNCTIONS:
        E.define(op, expr, params, partials=None if declared is None else _partials_rule(declared, params))

    from .functions import _elementwise

    def apply_fn(*args):
        if len(args) != len(params):
            raise TypeError(f"{op}: takes {len(params)} arguments, got {len(args)}")
        return _elementwise(op, list(args))

    apply_fn.__name__ = name or getattr(f, "__name__", "elementwise_fn")
    apply_fn.__doc__ = f"Elementwise {expr} (defined with symdl.elementwise)."
    apply_fn.sympy_expr = expr
    apply_fn.op = op
    return apply_fn


def _declared_partials(partials: Callable, params: tuple) -> list:
    import sympy
    if not callable(partials):
        raise TypeError(f"elementwise: partials must be a callable, got {type(partials).__name__}")
    exprs = partials(*params)
    if isinstance(exprs, sympy.Basic):
        exprs = [exprs]
    exprs = [sympy.sympify(e) for e in exprs]
    if len(exprs) != len(params):
        raise ValueError(f"elementwise: partials must give one expression per argument ({len(params)}), "
                         f"got {len(exprs)}")
    for e in exprs:
        extra = e.free_symbols - set(params)
        if extra:
            raise ValueError(f"elementwise: a partial uses symbols {sorted(map(str, extra))} "
                             "that are not the function's arguments")
    return exprs


def _partials_rule(exprs: list, params: tuple) -> Callable:
    """Declared partials (SymPy expressions) as graph nodes of the operands."""
    def rule(node):
        from .ir.sympy_bridge import from_sympy
        env = dict(zip(params, node.inputs))
        return [None if e == 0 else from_sympy(e, env, node.dtype) for e in exprs]
    return rule
