"""The disk cache of compiled object code.

Key: a content hash of the optimised graph plus the target (triple, CPU,
features, optimisation level) and the versions of symdl, llvmlite, LLVM and
the code generator.  Each entry holds the object code and, in its header,
the graph it computes (JSON, see :func:`stored_graph`).
Entries live under ``$SYMDL_CACHE_DIR/v1/`` (default ``~/.cache/symdl``): a
magic line, a JSON header, the object code, and a SHA-256 checksum of both.
Writes go to a temporary file renamed into place (atomic, so concurrent
processes are safe); a corrupt, truncated or foreign entry is a miss, never
loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

__all__ = ["cache_dir", "cache_key", "load_entry", "store_entry", "stored_graph", "CACHE_FORMAT"]

CACHE_FORMAT = "v1"
_MAGIC = b"SYMDL-OBJECT-CACHE 1\n"


def cache_dir() -> Path | None:
    """The cache directory, or None when disabled (``SYMDL_CACHE_DIR=''``... or '0')."""
    env = os.environ.get("SYMDL_CACHE_DIR")
    if env is not None and env.strip() in ("", "0", "off", "none"):
        return None
    if env:
        base = Path(env)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg) / "symdl" if xdg else Path.home() / ".cache" / "symdl"
    return base / CACHE_FORMAT


def cache_key(graph_digest: str, target_key: str, versions: str) -> str:
    from . import __version__
    h = hashlib.sha256()
    for part in (graph_digest, target_key, versions, f"symdl {__version__}"):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _path(key: str) -> Path | None:
    base = cache_dir()
    return None if base is None else base / key[:2] / f"{key}.o"


def load_entry(key: str) -> tuple[dict, bytes] | None:
    """(header, object code) of a valid entry for ``key``, else None."""
    path = _path(key)
    if path is None:
        return None
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 72:
            return None
        body, checksum = blob[len(_MAGIC):-64], blob[-64:]
        if hashlib.sha256(body).hexdigest().encode() != checksum:
            return None
        header_len = int(body[:16])
        header = json.loads(body[16:16 + header_len].decode())
        code = body[16 + header_len:]
        if header.get("key") != key or header.get("code_bytes") != len(code):
            return None
        return header, code
    except (ValueError, UnicodeDecodeError):
        return None


def store_entry(key: str, header: dict, code: bytes) -> bool:
    """Write an entry atomically; False when the cache is disabled or unwritable."""
    path = _path(key)
    if path is None:
        return False
    header = dict(header, key=key, code_bytes=len(code))
    head = json.dumps(header, sort_keys=True).encode()
    body = b"%016d" % len(head) + head + code
    blob = _MAGIC + body + hashlib.sha256(body).hexdigest().encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".o")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return True
    except OSError:
        return False


def stored_graph(key: str):
    """The graph stored with a cache entry, as ``(inputs, outputs)`` nodes,
    or None when there is no valid entry for ``key``."""
    from .ir.serialize import graph_from_json
    hit = load_entry(key)
    if hit is None or "graph" not in hit[0]:
        return None
    return graph_from_json(hit[0]["graph"])
