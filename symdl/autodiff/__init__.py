"""Symbolic differentiation: the reverse, forward, Taylor and batching
drivers over the rules each primitive carries (``symdl.ir.ops``), and the
MATLAB API (``dlfeval``, ``dlgradient``, ...)."""
