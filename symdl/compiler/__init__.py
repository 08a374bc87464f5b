"""The compile side of symdl: from a Python function to cached native code.

- ``trace``: a function traced for one input signature (a ``Program``);
- ``pipeline``: the one compile pipeline (simplify, disk cache, the back-end
  passes of ``codegen.compiler``), ``SYMDL_DEBUG`` dumps;
- ``dispatch``: the one signature cache (LRU, guards, fast paths, native
  dispatcher), with ``keys`` (what identifies a call) and ``watch`` (edits of
  the function);
- ``accelerate``: ``dlaccelerate``; ``transforms``: ``grad`` and friends;
  ``aot``: ``compile``, ``load``, ``export``.

Only this package (with ``symdl.inspect``'s helpers) imports ``codegen``.
"""
