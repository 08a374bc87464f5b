"""pytest set-up for the whole repository (tests/ and the doctests in symdl/):
compiled-code caches go to a temporary directory, never to ~/.cache/symdl,
and that directory is removed when the run ends."""

import atexit
import os
import shutil
import tempfile

# Before symdl is imported: the disk cache reads this when it is used.
if os.environ.get("SYMDL_TEST_KEEP_CACHE") != "1":
    _CACHE = tempfile.mkdtemp(prefix="symdl-test-cache-")
    os.environ["SYMDL_CACHE_DIR"] = _CACHE
    # atexit rather than a session hook: subprocesses started by tests inherit
    # the variable and may still be writing when the session finishes.
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
