"""Test-session setup: compiled-code caches go to a temporary directory, never
to the user's ~/.cache/symdl."""

import os
import tempfile

# Before symdl is imported by any test module: the disk cache reads this on use.
if "SYMDL_CACHE_DIR" not in os.environ or os.environ.get("SYMDL_TEST_KEEP_CACHE") != "1":
    os.environ["SYMDL_CACHE_DIR"] = tempfile.mkdtemp(prefix="symdl-test-cache-")

import pytest  # noqa: E402


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A disk cache of this test's own (tests that count disk hits use it)."""
    monkeypatch.setenv("SYMDL_CACHE_DIR", str(tmp_path / "symdl-cache"))
    return tmp_path / "symdl-cache"
