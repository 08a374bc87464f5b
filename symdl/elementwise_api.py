"""``symdl.elementwise``: user-defined elementwise functions from SymPy."""

from __future__ import annotations

import hashlib
from collections.abc import Callable


from .ir.ops import functions as E

__all__ = ["elementwise"]


def elementwise(f, name: str | None = None) -> Callable:
    """Define a differentiable elementwise function from a SymPy expression.

    ``f`` is a ``sympy.Lambda`` or a Python callable mapping SymPy symbols to an
    expression.  The function is one graph node; its derivatives of every
    order are ``sympy.diff`` of ``f``.

    Example:
        >>> import sympy, symdl
        >>> softplus = symdl.elementwise(lambda x: sympy.log(1 + sympy.exp(x)))
        >>> float(softplus(symdl.dlarray(0.0)))  # log 2
        0.6931471805599453
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
    digest = hashlib.blake2b(sympy.srepr(expr).encode(), digest_size=6).hexdigest()
    op = f"ew_{name or getattr(f, '__name__', 'fn')}_{digest}".replace("<lambda>", "lambda")
    if op not in E.FUNCTIONS:
        E.define(op, expr, params)

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
