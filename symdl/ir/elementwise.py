"""Former home of the SymPy-defined elementwise functions, now
:mod:`symdl.ir.ops.functions`; kept while callers move over."""

from .ops.functions import (FUNCTIONS, ElementwiseFn, by_sympy_head, define, define_builtin,  # noqa: F401
                            partial_expr, symbols)
