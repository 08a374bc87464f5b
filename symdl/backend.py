"""Compatibility name of :mod:`symdl.compile.pipeline` (the compile pipeline
and its counters, ``STATS``), kept for code that imports ``symdl.backend``."""

from .compile.pipeline import STATS, build_artifact, debug, gc_paused  # noqa: F401
