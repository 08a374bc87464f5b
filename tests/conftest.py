"""Fixtures shared by the tests (the cache directory is set in ../conftest.py)."""

import pytest


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A disk cache of this test's own (tests that count disk hits use it)."""
    monkeypatch.setenv("SYMDL_CACHE_DIR", str(tmp_path / "symdl-cache"))
    return tmp_path / "symdl-cache"
