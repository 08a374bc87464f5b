"""Symbolic differentiation: one table of VJP/JVP rules and the loops that run it."""
