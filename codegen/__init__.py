"""The LLVM back end of symdl (lowering the graph IR through llvmlite).

Not built yet: the native compiler is tracked by its own issue.  Until then
every symdl result comes from the numpy reference interpreter.
"""
