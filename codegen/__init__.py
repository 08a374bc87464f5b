"""The LLVM back end of symdl: a graph of ``symdl.ir`` nodes -> kernel plan
(``plan``) -> LLVM IR (``emit``, ``emit_ops``) -> optimised object code
(``llvm``, the only user of ``llvmlite.binding``), driven by the pass table of
``compiler``; ``abi`` and ``pyentry`` call native code from Python, ``export``
writes C libraries.  It depends on ``symdl.ir`` only.
"""
