"""``python -m symdl cache info`` shows the disk cache of compiled code
(directory, entries, size, limit); ``python -m symdl cache clear`` empties it."""

from __future__ import annotations

import argparse
import sys


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n / 1024:.1f} KB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m symdl", description="symdl utilities")
    sub = parser.add_subparsers(dest="command", required=True)
    cache = sub.add_parser("cache", help="the disk cache of compiled code")
    cache.add_argument("action", choices=["info", "clear"], help="info: show it; clear: remove its entries")
    args = parser.parse_args(argv)

    from .cache import cache_clear, cache_info
    try:
        info = cache_info()
    except ValueError as err:  # a bad SYMDL_CACHE_MAX_MB
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.action == "clear":
        removed, freed = cache_clear()
        print(f"removed {removed} entries ({_mb(freed)}) from {info['directory']}")
        return 0
    if not info["enabled"]:
        print("disk cache: disabled (SYMDL_CACHE_DIR is 0, off, none or empty)")
        return 0
    print(f"directory: {info['directory']}")
    print(f"entries:   {info['entries']}")
    print(f"size:      {_mb(info['bytes'])}")
    print(f"limit:     {_mb(info['limit_bytes'])} (SYMDL_CACHE_MAX_MB)")
    if info["temporary_files"]:
        print(f"temporary: {info['temporary_files']} files (removed once older than 10 minutes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
