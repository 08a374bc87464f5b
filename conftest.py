"""pytest set-up for the whole repository (tests/ and the doctests in symdl/):
compiled-code caches go to a temporary directory, never to ~/.cache/symdl."""

import os
import tempfile

# Before symdl is imported: the disk cache reads this when it is used.
if os.environ.get("SYMDL_TEST_KEEP_CACHE") != "1":
    os.environ["SYMDL_CACHE_DIR"] = tempfile.mkdtemp(prefix="symdl-test-cache-")
