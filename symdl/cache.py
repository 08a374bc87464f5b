"""The disk cache of compiled object code (SPEC §3 "Disk cache", §9.3).

Key: a content hash of the optimised graph plus the target (triple, CPU,
features, optimisation level) and the versions of symdl, llvmlite, LLVM and
the code generator.  Each entry holds the object code and, in its header,
the graph it computes (JSON, see :func:`stored_graph`) and the argument
layout the code expects.

Layout under the cache directory (``$SYMDL_CACHE_DIR``, default
``$XDG_CACHE_HOME/symdl`` or ``~/.cache/symdl``; without a home directory
``<tmp>/symdl-cache-<uid>``)::

    u<uid>/            this user's part (0700, must be owned by this user)
        key            the per-user secret key (0600, a regular file)
        v2/ab/<key>.o  entries

Trust: an entry is used only if its HMAC-SHA256 under this user's secret key
checks, so an entry planted or copied by anyone who cannot read the key file
is a miss, and is rebuilt.  Header fields (argument layout, workspace size)
are covered by the MAC and are also checked against what the caller is
compiling.  Only regular files owned by this user and of a plausible size are
read, opened without following symlinks and without blocking (a FIFO, a
device, a symlink or a directory entry is a miss, never a hang).

Writes go to a temporary file renamed into place (atomic, so concurrent
processes are safe).  Temporary files left by killed writers are removed
after :data:`STALE_TMP_SECONDS`.  The cache is pruned to
``SYMDL_CACHE_MAX_MB`` (default 1024) by removing the least recently used
entries (a hit touches its entry).  ``python -m symdl cache info|clear``
shows and empties it.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import warnings
from pathlib import Path

__all__ = ["cache_dir", "cache_root", "cache_key", "load_entry", "store_entry", "stored_graph", "cached_artifact",
           "planned_layout", "cache_info", "cache_clear", "max_bytes", "read_exactly", "CACHE_FORMAT"]

CACHE_FORMAT = "v2"
_MAGIC = b"SYMDL-OBJECT-CACHE 2\n"
_MAC_BYTES = 64                        # hex HMAC-SHA256
_HEAD_DIGITS = 16                      # the header length, as decimal digits
MAX_ENTRY_BYTES = 256 << 20            # an entry larger than this is not plausible: never read
MAX_WORKSPACE_BYTES = 1 << 40          # a header claiming more is not plausible
STALE_TMP_SECONDS = 600                # a writer's temporary file older than this was left by a killed writer
_PRUNE_TARGET = 0.8                    # pruning removes entries until the cache is this fraction of its limit
_KEY_BYTES = 32
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

_lock = threading.Lock()
_secret_cache: dict[str, bytes] = {}   # user directory -> its key, once read
_warned: set[str] = set()
_stores_since_scan = {"n": 0, "bytes": 0, "user": None}


def _uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _mine(st: os.stat_result) -> bool:
    """Owned by this user (where the system has file owners)."""
    return not hasattr(os, "geteuid") or st.st_uid == os.geteuid()


def _warn_once(what: str, message: str) -> None:
    if what not in _warned:
        _warned.add(what)
        warnings.warn(f"symdl disk cache disabled: {message}", RuntimeWarning, stacklevel=3)


def _default_base() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "symdl"
    try:
        return Path.home() / ".cache" / "symdl"
    except (RuntimeError, KeyError, OSError):
        # No HOME and no passwd entry (a container running as an unnamed uid):
        # a per-user directory under the temporary directory instead.
        return Path(tempfile.gettempdir()) / f"symdl-cache-{_uid()}"


def cache_root() -> Path | None:
    """The cache directory shared by all users of it (``SYMDL_CACHE_DIR``),
    or None when the cache is disabled (``SYMDL_CACHE_DIR`` set to ``''``,
    ``0``, ``off`` or ``none``)."""
    env = os.environ.get("SYMDL_CACHE_DIR")
    if env is not None and env.strip().lower() in ("", "0", "off", "none"):
        return None
    return Path(env) if env else _default_base()


def cache_dir() -> Path | None:
    """This user's entries (``<root>/u<uid>/v2``), or None when disabled."""
    root = cache_root()
    return None if root is None else root / f"u{_uid()}" / CACHE_FORMAT


def max_bytes() -> int:
    """The size limit from ``SYMDL_CACHE_MAX_MB`` (megabytes, default 1024)."""
    text = os.environ.get("SYMDL_CACHE_MAX_MB", "").strip()
    if not text:
        return 1024 << 20
    try:
        mb = float(text)
    except ValueError:
        mb = float("nan")
    if not (mb > 0 and mb < 1e12):
        raise ValueError(f"SYMDL_CACHE_MAX_MB must be a positive number of megabytes, got {text!r}")
    return int(mb * (1 << 20))


# ---------------------------------------------------------------- the user directory and its key

def _owned_dir(path: Path, create: bool) -> bool:
    """Whether ``path`` is a real directory (not a symlink) owned by this
    user, making it (0700) when ``create``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
        try:
            st = os.lstat(path)
        except OSError:
            return False
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or not _mine(st):
        return False
    if st.st_mode & 0o077:
        try:  # ours but open to others: close it (the MAC protects entries anyway)
            os.chmod(path, 0o700)
        except OSError:
            pass
    return True


def _user_dir(create: bool) -> Path | None:
    """``<root>/u<uid>`` when it is safe to use, else None (with a warning
    when it exists but belongs to someone else)."""
    d = cache_dir()
    if d is None:
        return None
    user = d.parent
    if create and cache_root() == Path(tempfile.gettempdir()) / f"symdl-cache-{_uid()}":
        # the no-home fallback lives in a world-writable directory: its root must be ours too
        if not _owned_dir(user.parent, True):
            _warn_once(str(user.parent), f"{user.parent} is not a directory owned by this user")
            return None
    if _owned_dir(user, create):
        return user
    if user.exists() or user.is_symlink():
        _warn_once(str(user), f"{user} is not a directory owned by this user")
    return None


def _read_key(path: Path) -> bytes | None | bool:
    """The key in ``path``; False when there is no such file; None when the
    file is not to be trusted (not a regular file owned by this user with
    permissions 0600, or not a key)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        private = stat.S_IMODE(st.st_mode) == 0o600 or not hasattr(os, "geteuid")   # no POSIX modes: ACLs
        if not stat.S_ISREG(st.st_mode) or not _mine(st) or not private \
                or st.st_size != 2 * _KEY_BYTES:
            return None
        text = os.read(fd, 2 * _KEY_BYTES + 1)
    finally:
        os.close(fd)
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return key if len(key) == _KEY_BYTES else None


def _create_key(user: Path, path: Path) -> None:
    """Write a new random key, atomically and never over an existing one:
    written 0600 to a temporary file and hard-linked into place (the link
    fails if another process made the key first; then its key is used)."""
    fd, tmp = tempfile.mkstemp(dir=user, prefix=".tmp-key-")   # made 0600
    try:
        os.write(fd, secrets.token_bytes(_KEY_BYTES).hex().encode("ascii"))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.rename(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        if os.path.lexists(tmp):
            os.unlink(tmp)


def _secret(create: bool) -> tuple[Path, bytes] | None:
    """(user directory, key), or None when the cache cannot be trusted or used."""
    user = _user_dir(create)
    if user is None:
        return None
    with _lock:
        known = _secret_cache.get(str(user))
        if known is not None:
            return user, known
        path = user / "key"
        key = _read_key(path)
        if key is False and create:
            try:
                _create_key(user, path)
            except OSError:
                return None
            key = _read_key(path)
        if key is None:
            _warn_once(str(path), f"the key file {path} is not a regular file owned by this user with "
                                  "permissions 0600 holding a symdl key; remove it to start afresh")
        if not isinstance(key, bytes):
            return None
        _secret_cache[str(user)] = key
        return user, key


# ---------------------------------------------------------------- entries

def cache_key(graph_digest: str, target_key: str, versions: str) -> str:
    from codegen.blas import policy_key

    from . import __version__
    h = hashlib.sha256()
    # how contractions are lowered here (BLAS or not) changes the code
    for part in (graph_digest, target_key, versions, f"symdl {__version__}", policy_key()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _entry_path(user: Path, key: str) -> Path:
    return user / CACHE_FORMAT / key[:2] / f"{key}.o"


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, _MAGIC + body, hashlib.sha256).hexdigest().encode()


def _open_below(user: Path, parts: tuple[str, ...]) -> int:
    """Open ``user/parts...`` following no symlink on the way (each
    directory opened with O_NOFOLLOW, the next name relative to it)."""
    dir_flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(user, dir_flags)
    try:
        for name in parts[:-1]:
            next_fd = os.open(name, dir_flags, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(parts[-1], _OPEN_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def read_exactly(fd: int, size: int) -> bytes | None:
    """The contents of the open file ``fd`` if it holds exactly ``size``
    bytes (what ``fstat`` said), else None: one byte more is asked for, so a
    file that grew or shrank since is not the one that was checked."""
    chunks, left = [], size + 1
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    blob = b"".join(chunks)
    return blob if len(blob) == size else None


def _read_regular(user: Path, parts: tuple[str, ...], limit: int) -> bytes | None:
    """The bytes of ``user/parts...`` if it is a regular file owned by this
    user of at most ``limit`` bytes (no symlink followed; never blocks on a
    FIFO); a hit also touches it (least-recently-used pruning)."""
    try:
        fd = _open_below(user, parts)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _mine(st) or not 0 < st.st_size <= limit:
            return None
        blob = read_exactly(fd, st.st_size)
        if blob is None:
            return None
        try:
            os.utime(fd)
        except OSError:
            pass
        return blob
    except OSError:
        return None
    finally:
        os.close(fd)


def _parse(blob: bytes, secret: bytes, key: str) -> tuple[dict, bytes] | None:
    if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _HEAD_DIGITS + _MAC_BYTES:
        return None
    body, mac = blob[len(_MAGIC):-_MAC_BYTES], blob[-_MAC_BYTES:]
    if not hmac.compare_digest(_mac(secret, body), mac):
        return None
    try:
        header_len = int(body[:_HEAD_DIGITS])
        if not 0 <= header_len <= len(body) - _HEAD_DIGITS:
            return None
        header = json.loads(body[_HEAD_DIGITS:_HEAD_DIGITS + header_len].decode())
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    code = body[_HEAD_DIGITS + header_len:]
    if not isinstance(header, dict) or header.get("key") != key or header.get("code_bytes") != len(code):
        return None
    return header, code


def load_entry(key: str) -> tuple[dict, bytes] | None:
    """(header, object code) of a valid entry for ``key`` written by this
    user's symdl, else None."""
    max_bytes()  # a bad SYMDL_CACHE_MAX_MB is an error on a hit as on a miss
    found = _secret(create=False)
    if found is None:
        return None
    user, secret = found
    blob = _read_regular(user, (CACHE_FORMAT, key[:2], f"{key}.o"), MAX_ENTRY_BYTES)
    return None if blob is None else _parse(blob, secret, key)


def _specs(value) -> list[tuple[tuple[int, ...], str]] | None:
    """``[[shape, dtype], ...]`` from a header as ``[(shape tuple, dtype)]``, or None if malformed."""
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], list)
                and isinstance(item[1], str)
                and all(type(d) is int and d >= 0 for d in item[0])):
            return None
        out.append((tuple(item[0]), item[1]))
    return out


def planned_layout(inputs, outputs, name: str) -> tuple[list, int]:
    """(output specs, workspace bytes) of the code the back end makes for
    this graph: the decompose and plan passes only (about a millisecond; no
    LLVM), so a header can be checked against them."""
    from codegen.compiler import Build, run_passes
    build = run_passes(Build(list(inputs), list(outputs), name), "plan")
    return [(tuple(n.shape), n.dtype) for n in build.outputs], build.plan.workspace_bytes


def cached_artifact(key: str, inputs, outputs, name: str, target_key: str):
    """The :class:`codegen.compiler.Artifact` of a valid entry for ``key``
    whose header matches what the caller compiles (argument shapes and
    dtypes, entry name, target, and the workspace the planner gives this
    graph), else None: a mismatch is a miss, never a crash."""
    from codegen.compiler import Artifact
    hit = load_entry(key)
    if hit is None:
        return None
    header, code = hit
    got_in, got_out = _specs(header.get("in_specs")), _specs(header.get("out_specs"))
    work = header.get("workspace_bytes")
    want_in = [(tuple(n.shape), n.dtype) for n in inputs]
    want_out = [(tuple(n.shape), n.dtype) for n in outputs]
    if got_in != want_in or got_out != want_out or header.get("name") != name \
            or header.get("target_key") != target_key \
            or type(work) is not int or not 0 <= work <= MAX_WORKSPACE_BYTES:
        return None
    # The MAC says this user's symdl wrote the entry; the plan says it was
    # written for this graph's memory layout (defence in depth: a header that
    # undersized the workspace would make the native code write past it).
    if planned_layout(inputs, outputs, name) != (got_out, work):
        return None
    from codegen.blas import prepare_object
    if not prepare_object(code):  # calls a BLAS this process lacks: a miss, never loaded
        return None
    return Artifact(name, code, got_in, got_out, work, target_key)


def _put_dir(d: Path) -> bool:
    """Make ``d`` (a shard directory) a real directory, replacing a planted
    file or symlink."""
    try:
        st = os.lstat(d)
        if stat.S_ISDIR(st.st_mode):
            return True
        os.unlink(d)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        return stat.S_ISDIR(os.lstat(d).st_mode)
    except OSError:
        return False


def store_entry(key: str, header: dict, code: bytes) -> bool:
    """Write an entry atomically; False when the cache is disabled or unwritable."""
    found = _secret(create=True)
    if found is None:
        return False
    user, secret = found
    path = _entry_path(user, key)
    header = dict(header, key=key, code_bytes=len(code))
    head = json.dumps(header, sort_keys=True).encode()
    body = b"%016d" % len(head) + head + code
    blob = _MAGIC + body + _mac(secret, body)
    if len(blob) > MAX_ENTRY_BYTES:
        return False
    if not (_put_dir(path.parent.parent) and _put_dir(path.parent)):
        return False
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".o")
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        try:
            os.replace(tmp, path)
        except OSError as err:
            if err.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise
            # a directory where the entry belongs: replace it
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
    except OSError:
        return False
    finally:
        if os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
    _after_store(user, len(blob))
    return True


def stored_graph(key: str):
    """The graph stored with a cache entry, as ``(inputs, outputs)`` nodes,
    or None when there is no valid entry for ``key``."""
    from .ir.serialize import graph_from_json
    hit = load_entry(key)
    if hit is None or "graph" not in hit[0]:
        return None
    return graph_from_json(hit[0]["graph"])


# ---------------------------------------------------------------- size limit, clean-up, info

def _scan(user: Path) -> tuple[list[tuple[float, int, Path]], list[tuple[float, Path]]]:
    """This user's entries as (mtime, size, path) and temporary files as (mtime, path)."""
    entries, temps = [], []
    top = user / CACHE_FORMAT
    try:
        shards = list(os.scandir(top))
    except OSError:
        return entries, temps
    for shard in shards:
        try:
            if not shard.is_dir(follow_symlinks=False):
                continue
            files = list(os.scandir(shard.path))
        except OSError:
            continue
        for f in files:
            try:
                st = f.stat(follow_symlinks=False)
            except OSError:
                continue
            if not _mine(st):
                continue
            if f.name.startswith(".tmp-"):
                temps.append((st.st_mtime, Path(f.path)))
            elif f.name.endswith(".o") and stat.S_ISREG(st.st_mode):
                entries.append((st.st_mtime, st.st_size, Path(f.path)))
    return entries, temps


def _remove(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def _prune(user: Path, limit: int, now: float) -> int:
    """Remove stale temporary files and, over ``limit``, the least recently
    used entries; returns the bytes left."""
    entries, temps = _scan(user)
    try:  # a key writer killed before its link leaves a .tmp-key-* beside the key
        temps += [(e.stat(follow_symlinks=False).st_mtime, Path(e.path)) for e in os.scandir(user)
                  if e.name.startswith(".tmp-")]
    except OSError:
        pass
    for mtime, tmp in temps:
        if now - mtime > STALE_TMP_SECONDS:
            _remove(tmp)
    total = sum(size for _, size, _ in entries)
    if total > limit:
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= limit * _PRUNE_TARGET:
                break
            if _remove(path):
                total -= size
    return total


def _after_store(user: Path, size: int) -> None:
    """Prune after a store: scan the cache at a process's first store into a
    directory, every 64 stores, and whenever what this process wrote since
    the last scan could take the cache over its limit."""
    limit = max_bytes()
    with _lock:
        state = _stores_since_scan
        state["bytes"] += size
        state["n"] += 1
        due = state["user"] != user or state["n"] % 64 == 0 or state["bytes"] > limit * (1 - _PRUNE_TARGET)
        if due:
            state.update(bytes=0, user=user)
    if due:
        _prune(user, limit, time.time())


def cache_info() -> dict:
    """Where the cache is, how many entries and bytes it holds, and its limit."""
    root = cache_root()
    info = {"directory": None if root is None else str(root / f"u{_uid()}"), "enabled": root is not None,
            "entries": 0, "bytes": 0, "limit_bytes": max_bytes(), "temporary_files": 0}
    user = _user_dir(create=False)
    if user is not None:
        entries, temps = _scan(user)
        info.update(entries=len(entries), bytes=sum(s for _, s, _ in entries), temporary_files=len(temps))
    return info


def cache_clear() -> tuple[int, int]:
    """Remove this user's entries and temporary files (the key stays);
    returns (entries removed, bytes freed)."""
    user = _user_dir(create=False)
    if user is None:
        return 0, 0
    entries, temps = _scan(user)
    removed = freed = 0
    for _, size, path in entries:
        if _remove(path):
            removed += 1
            freed += size
    for _, tmp in temps:
        _remove(tmp)
    return removed, freed
