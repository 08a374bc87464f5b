"""Minimise the N-dimensional Rosenbrock function with scipy, using symdl's
compiled gradient and Hessian.

    f(x) = sum_{i=1}^{N-1} 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2
                                           minimum 0 at x = (1, ..., 1)

``f`` is ordinary numpy code.  ``symdl.grad(f)`` and ``symdl.hessian(f)``
trace it once, differentiate it symbolically and compile the derivatives to
native code; they take and return numpy arrays, so they go straight into

    scipy.optimize.minimize(f, x0, jac=symdl.grad(f), hess=symdl.hessian(f),
                            method="trust-exact")

The same problem is then solved with scipy's own ``rosen_der`` and
``rosen_hess``, and symdl's derivatives are compared with scipy's at the
solution and at the start point.  Each verdict line ends in PASS or FAIL; the
exit status is 1 if any check fails.

Run from the repository root:

    python examples/scipy_optimize.py [--n N] [--method trust-exact|Newton-CG|trust-ncg|trust-krylov]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy.optimize import minimize, rosen, rosen_der, rosen_hess

import symdl

# the start point of scipy's tutorial, repeated to length N
X0_PATTERN = (1.3, 0.7, 0.8, 1.9, 1.2)
METHODS = ("trust-exact", "Newton-CG", "trust-ncg", "trust-krylov")


def f(x):
    """The N-dimensional Rosenbrock function, written with numpy."""
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def max_abs_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def agree(a, b, rtol: float = 1e-10) -> bool:
    b = np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b))))
    return max_abs_diff(a, b) <= rtol * scale


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="number of variables (default 10, at least 2)")
    parser.add_argument("--method", choices=METHODS, default="trust-exact", help="scipy method")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error(f"--n must be at least 2, got {args.n}")

    n = args.n
    x0 = np.resize(np.array(X0_PATTERN), n)
    np.set_printoptions(precision=6, suppress=True, linewidth=100)
    print(f"N-dimensional Rosenbrock, N = {n}, method {args.method}")
    print(f"x0 = {x0}")
    print()

    start = time.perf_counter()
    jac, hess = symdl.grad(f), symdl.hessian(f)
    ours = minimize(f, x0, jac=jac, hess=hess, method=args.method)
    first_time = time.perf_counter() - start

    start = time.perf_counter()
    again = minimize(f, x0, jac=jac, hess=hess, method=args.method)
    cached_time = time.perf_counter() - start

    start = time.perf_counter()
    theirs = minimize(rosen, x0, jac=rosen_der, hess=rosen_hess, method=args.method)
    scipy_time = time.perf_counter() - start

    def row(label: str, a, b) -> None:
        print(f"{label:<34}{a!s:<26}{b!s}")

    row("", "symdl grad/hessian", "scipy rosen_der/rosen_hess")
    row("success", ours.success, theirs.success)
    row("iterations", ours.nit, theirs.nit)
    row("function evaluations", ours.nfev, theirs.nfev)
    row("gradient evaluations", getattr(ours, "njev", "-"), getattr(theirs, "njev", "-"))
    row("Hessian evaluations", getattr(ours, "nhev", "-"), getattr(theirs, "nhev", "-"))
    row("f(x*)", f"{ours.fun:.3e}", f"{theirs.fun:.3e}")
    row("max |x* - 1|", f"{max_abs_diff(ours.x, 1.0):.3e}", f"{max_abs_diff(theirs.x, 1.0):.3e}")
    row("time, first run (trace + compile)", f"{first_time:.3f} s", f"{scipy_time:.3f} s")
    row("time, second run (cached)", f"{cached_time:.3f} s", "")
    print()
    print(f"solution x* = {ours.x}")
    print(f"iterations: {ours.nit}")
    print()

    checks = []
    # within the default tolerances of every method offered (Newton-CG stops at |x* - 1| ~ 2e-4)
    converged = bool(ours.success) and ours.fun < 1e-6 and max_abs_diff(ours.x, 1.0) < 1e-3
    checks.append(("converged to the minimum (1, ..., 1)", converged))
    diff = max_abs_diff(ours.x, theirs.x)
    checks.append((f"same solution as with rosen_der/rosen_hess (max abs diff {diff:.1e})", diff < 1e-6))
    checks.append(("second run repeats the first", np.array_equal(again.x, ours.x) and again.nit == ours.nit))
    for where, x in (("solution", ours.x), ("x0", x0)):
        g, want_g = jac(x), rosen_der(x)
        h, want_h = hess(x), rosen_hess(x)
        checks.append((f"gradient vs scipy.optimize.rosen_der at {where} (max abs diff {max_abs_diff(g, want_g):.1e})",
                       np.shape(g) == (n,) and agree(g, want_g)))
        checks.append((f"Hessian vs scipy.optimize.rosen_hess at {where} (max abs diff {max_abs_diff(h, want_h):.1e})",
                       np.shape(h) == (n, n) and agree(h, want_h)))
    for label, ok in checks:
        print(f"{label}: {verdict(ok)}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
