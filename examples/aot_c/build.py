"""Export the gradient of the seed's toy function to C and call it from C.

    y = (x2 - x1^2)^2 + (1 - x1)^2        (seed 002)

Steps:

1. ``symdl.export(toy_grad, 2.0, 2.0, path=BUILD/libtoy.so, name="toy_grad")``
   traces ``toy_grad`` (it calls ``dlgradient``), differentiates it
   symbolically, compiles it through LLVM and writes ``libtoy.so`` plus the
   header ``libtoy.h``;
2. the system C compiler builds ``main.c`` against them, with an rpath
   (``$ORIGIN``) so that the program finds the library wherever the build
   directory goes;
3. the program runs (no Python involved) and its output is printed.

Run from the repository root:

    python examples/aot_c/build.py [--build-dir DIR] [--at X1 X2]

The exit status is the C program's (0 on success).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import symdl

HERE = Path(__file__).resolve().parent
DEFAULT_BUILD = HERE / "build"
START = (2.0, 2.0)


def toy_grad(x1, x2):
    """The seed's toy loss and its two gradient components."""
    y = (x2 - x1 ** 2) ** 2 + (1 - x1) ** 2
    dydx1, dydx2 = symdl.dlgradient(y, x1, x2)
    return y, dydx1, dydx2


def c_compiler() -> str | None:
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD,
                        help=f"where the library, header and program go (default: {DEFAULT_BUILD})")
    parser.add_argument("--at", nargs=2, type=float, metavar=("X1", "X2"), default=None,
                        help="also run the program at this point")
    args = parser.parse_args(argv)

    cc = c_compiler()
    if cc is None:
        print("build.py: no C compiler (cc, gcc or clang) found; cannot build the C example", file=sys.stderr)
        return 2

    build = args.build_dir.resolve()
    build.mkdir(parents=True, exist_ok=True)
    library = symdl.export(toy_grad, *START, path=build / "libtoy.so", name="toy_grad")
    header = library.with_suffix(".h")
    print(f"exported {library}")
    print(f"header   {header}")
    declaration = next(line for line in header.read_text().splitlines() if line.startswith("int toy_grad("))
    print(f"         {declaration}")

    program = build / "toy_main"
    rpath = "@loader_path" if sys.platform == "darwin" else "$ORIGIN"
    command = [cc, "-O2", "-o", str(program), str(HERE / "main.c"), f"-I{build}", f"-L{build}", "-ltoy",
               f"-Wl,-rpath,{rpath}", "-lm"]
    print("compile  " + " ".join(command))
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode != 0:
        print(built.stdout + built.stderr, file=sys.stderr)
        return built.returncode

    rc = 0
    points = [None] if args.at is None else [None, tuple(args.at)]
    for point in points:
        cmd = [str(program)] + ([] if point is None else [repr(v) for v in point])
        print("run      " + " ".join(cmd))
        ran = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())  # any directory
        sys.stdout.write(ran.stdout)
        sys.stderr.write(ran.stderr)
        rc = rc or ran.returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
