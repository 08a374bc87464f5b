"""The LLVM back end of symdl: a graph of ``symdl.ir`` nodes -> kernel plan
(``decompose``, ``plan``, decided by the lowering tables of ``lower``) ->
LLVM IR (``emit``) -> optimised object code
(``llvm``, the only user of ``llvmlite.binding``), driven by the pass table of
``compiler``; ``abi`` and ``pyentry`` call native code from Python, ``export``
writes C libraries.  It depends on ``symdl.ir`` only.
"""

# codegen reads symdl.ir, and importing any part of symdl runs symdl's
# package, which imports codegen's compiler: import symdl first, so that
# ``import codegen.<module>`` works before or after ``import symdl``.
import symdl  # noqa: E402, F401
