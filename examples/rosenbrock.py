"""Gradient descent on the toy function of the MATLAB blog post (seed 002).

    y = (x2 - x1^2)^2 + (1 - x1)^2        minimum 0 at (x1, x2) = (1, 1)

Two learnables x1, x2 start at (2, 2) as dlarrays.  Each of the 100 iterations
evaluates the loss and its gradients with ``dlfeval`` (the model function calls
``dlgradient``) and takes the step ``x = x - learn_rate * dydx``.  Three runs,
as in the blog post:

* learning rate 0.1: converges towards (1, 1);
* learning rate 0.2: too large, does not converge;
* time-based decay ``0.2 / (1 + 0.01 * iteration)``: converges.

The verdict printed for each run is computed from its numbers.  With
matplotlib installed, one PNG shows the three paths over the contours of y and
the field of the negative gradient (also computed with symdl).

Run from the repository root:

    python examples/rosenbrock.py [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import symdl
from symdl import dlarray, dlfeval, dlgradient, extractdata

START = (2.0, 2.0)
MINIMUM = (1.0, 1.0)
ITERATIONS = 100
DEFAULT_OUT = Path(__file__).resolve().parent / "rosenbrock_paths.png"

# The plotted window; a path that leaves it is clipped to it.
VIEW_X1 = (-2.0, 2.6)
VIEW_X2 = (-0.6, 3.4)

# A run converged when it ends this close to the minimum and its last step is this short.
CONVERGED_DISTANCE = 0.05
CONVERGED_STEP = 1e-2


def toy(x1, x2):
    """The seed's Rosenbrock-type function (dlarrays in, dlarray out)."""
    return (x2 - x1**2) ** 2 + (1 - x1) ** 2


def model_loss(x1, x2):
    """The model gradients function of the blog: loss and dloss/dx1, dloss/dx2."""
    y = toy(x1, x2)
    dydx1, dydx2 = dlgradient(y, x1, x2)
    return y, dydx1, dydx2


@dataclass
class Run:
    label: str
    path: np.ndarray            # (n + 1, 2): the start and the point after each iteration
    losses: np.ndarray          # loss at the start of each iteration
    final_loss: float           # loss at the end point
    diverged_at: int | None     # first iteration whose result is not finite


def descend(label: str, learn_rate: Callable[[int], float], gradients=model_loss) -> Run:
    """The blog's custom training loop, ``learn_rate(iteration)`` for iterations 1..ITERATIONS.
    ``gradients`` is the model gradients function (or its dlaccelerate'd version)."""
    x1, x2 = dlarray(START[0]), dlarray(START[1])
    path = [START]
    losses = []
    diverged_at = None
    with np.errstate(over="ignore", invalid="ignore"):
        for iteration in range(1, ITERATIONS + 1):
            loss, dydx1, dydx2 = dlfeval(gradients, x1, x2)
            lr = learn_rate(iteration)
            x1 = x1 - lr * dydx1
            x2 = x2 - lr * dydx2
            losses.append(float(loss))
            path.append((float(extractdata(x1)), float(extractdata(x2))))
            if not (math.isfinite(path[-1][0]) and math.isfinite(path[-1][1])):
                diverged_at = iteration  # further steps would only carry inf/nan along
                break
        final_loss = float(toy(x1, x2))
    return Run(label, np.array(path), np.array(losses), final_loss, diverged_at)


def verdict(run: Run) -> str:
    """Classify a run from its numbers only."""
    if run.diverged_at is not None:
        return f"diverges: the iterate is no longer finite after iteration {run.diverged_at}"
    end = run.path[-1]
    distance = float(np.hypot(*(end - MINIMUM)))
    step = float(np.hypot(*(run.path[-1] - run.path[-2])))
    if distance < CONVERGED_DISTANCE and step < CONVERGED_STEP:
        return (f"converges: ends {distance:.3f} from the minimum (1, 1), "
                f"last step {step:.1e}, loss {run.final_loss:.1e}")
    two_step = float(np.hypot(*(run.path[-1] - run.path[-3])))
    if two_step < 0.01 * step:
        a, b = run.path[-2], run.path[-1]
        return (f"does not converge: jumps back and forth between ({a[0]:.3f}, {a[1]:.3f}) and "
                f"({b[0]:.3f}, {b[1]:.3f}), a step of {step:.2f} every iteration")
    return f"does not converge: ends {distance:.3f} from the minimum, last step {step:.2e}"


def gradient_field(x1: np.ndarray, x2: np.ndarray):
    """y and its gradient at every grid point, with symdl.

    The sum over the grid is a scalar whose gradient holds, at each point, the
    gradient of y there (the points do not interact).
    """
    def field(x1, x2):
        y = toy(x1, x2)
        return y, *dlgradient(symdl.sum(y), x1, x2)

    y, g1, g2 = dlfeval(field, dlarray(x1), dlarray(x2))
    return extractdata(y), extractdata(g1), extractdata(g2)


def print_results(runs: list[Run]) -> None:
    print("symdl: gradient descent on y = (x2 - x1^2)^2 + (1 - x1)^2  (seed 002)")
    print(f"start ({START[0]:g}, {START[1]:g}), {ITERATIONS} iterations, minimum y = 0 at (1, 1)\n")
    y, dydx1, dydx2 = dlfeval(model_loss, dlarray(START[0]), dlarray(START[1]))
    print(f"at the start: y = {float(y):g}, dy/dx1 = {float(dydx1):g}, dy/dx2 = {float(dydx2):g}\n")
    width = max(len(r.label) for r in runs)
    print(f"{'run':<{width}}  {'end point (x1, x2)':<24}  {'final loss':>10}  {'distance to (1, 1)':>18}")
    for r in runs:
        x1, x2 = r.path[-1]
        distance = math.hypot(x1 - MINIMUM[0], x2 - MINIMUM[1])
        point = f"({x1:.6f}, {x2:.6f})"
        print(f"{r.label:<{width}}  {point:<24}  {r.final_loss:>10.3e}  {distance:>18.4f}")
    print()
    for r in runs:
        print(f"{r.label}: {verdict(r)}")


ZOOM_X1 = (0.55, 1.35)
ZOOM_X2 = (0.5, 1.6)

STYLES = [dict(color="tab:green", marker="o", linestyle="-", linewidth=2.2, markersize=3.5),
          dict(color="tab:red", marker="x", linestyle="--", linewidth=1.3, markersize=5),
          dict(color="tab:purple", marker="^", linestyle="-", linewidth=1.6, markersize=3.5)]


def _background(ax, view_x1, view_x2, arrows: int, levels: np.ndarray):
    """Contours of y (log levels) and unit arrows along -grad y, both computed by symdl."""
    from matplotlib.colors import LogNorm

    a1, a2 = np.meshgrid(np.linspace(*view_x1, 201), np.linspace(*view_x2, 201))
    y, _, _ = gradient_field(a1, a2)
    y = np.clip(y, levels[0], levels[-1])
    filled = ax.contourf(a1, a2, y, levels=levels, norm=LogNorm(), cmap="Greys_r", alpha=0.55)
    ax.contour(a1, a2, y, levels=levels, norm=LogNorm(), colors="0.35", linewidths=0.5)
    q1, q2 = np.meshgrid(np.linspace(*view_x1, arrows), np.linspace(*view_x2, arrows))
    _, g1, g2 = gradient_field(q1, q2)
    norm = np.hypot(g1, g2)
    norm[norm == 0] = 1.0
    ax.quiver(q1, q2, -g1 / norm, -g2 / norm, color="tab:blue", alpha=0.45, width=0.0025,
              scale=1.6 * arrows, label="direction of -grad y (unit arrows)")
    return filled


def _paths(ax, runs: list[Run]) -> None:
    for r, style in zip(runs, STYLES):
        finite = r.path[np.all(np.isfinite(r.path), axis=1)]  # a diverged run is cut where it left the reals
        end = finite[-1]
        ax.plot(finite[:, 0], finite[:, 1], label=f"{r.label}: ends ({end[0]:.3f}, {end[1]:.3f})",
                alpha=0.9, **style)
        ax.plot(*end, marker="s", color=style["color"], markersize=8, markeredgecolor="black", zorder=5)
    ax.plot(*START, marker="o", color="orange", markersize=12, markeredgecolor="black", zorder=5,
            linestyle="none", label=f"start ({START[0]:g}, {START[1]:g})")
    ax.plot(*MINIMUM, marker="*", color="gold", markersize=13, markeredgecolor="black", zorder=6,
            linestyle="none", label="minimum (1, 1)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")


def plot(runs: list[Run], out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, (left, right) = plt.subplots(1, 2, figsize=(15, 6.6), dpi=100,
                                      gridspec_kw=dict(width_ratios=[1.25, 1]))
    corners = np.array([[x1, x2] for x1 in VIEW_X1 for x2 in VIEW_X2])
    top = max(float(toy(a, b)) for a, b in corners)  # y is largest at a corner of the window
    levels = np.logspace(-3, math.log10(top), 21)   # one scale for both panels
    filled = _background(left, VIEW_X1, VIEW_X2, arrows=22, levels=levels)
    _background(right, ZOOM_X1, ZOOM_X2, arrows=16, levels=levels)
    for ax, (v1, v2) in ((left, (VIEW_X1, VIEW_X2)), (right, (ZOOM_X1, ZOOM_X2))):
        _paths(ax, runs)
        ax.set_xlim(*v1)  # paths that leave the window are clipped to it
        ax.set_ylim(*v2)
    left.add_patch(Rectangle((ZOOM_X1[0], ZOOM_X2[0]), ZOOM_X1[1] - ZOOM_X1[0], ZOOM_X2[1] - ZOOM_X2[0],
                             fill=False, edgecolor="black", linestyle=":", linewidth=1.2))
    left.set_title("the three paths (dotted box: zoomed on the right)")
    right.set_title("near the minimum (squares: end points)")
    left.legend(loc="lower left", fontsize=9, framealpha=0.92)
    fig.colorbar(filled, ax=[left, right], label="y (log scale)", format="%.2g", fraction=0.03, pad=0.02)
    fig.suptitle("symdl: gradient descent on y = (x2 - x1²)² + (1 - x1)², 100 iterations from (2, 2); "
                 "gradients and arrow field by dlgradient", fontsize=12)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)


def engine_tour(eager: Run) -> None:
    """What symdl made of model_loss: the traced and differentiated graph, and
    the same loop with dlaccelerate running it as native code."""
    graph = symdl.trace(model_loss, START[0], START[1])
    y, dydx1, dydx2 = graph.to_sympy()
    print("\nthe engine: model_loss traced, differentiated symbolically, simplified")
    print(f"  graph of y and both gradients: {len(graph)} nodes (inputs x1, x2 included)")
    print(f"  dy/dx1 = {dydx1}")
    print(f"  dy/dx2 = {dydx2}")

    accelerated = symdl.dlaccelerate(model_loss)
    run = descend("lr = 0.1, dlaccelerate", lambda iteration: 0.1, accelerated)  # traces and compiles once
    start = time.perf_counter()
    descend("lr = 0.1, dlaccelerate", lambda iteration: 0.1, accelerated)
    native = (time.perf_counter() - start) / ITERATIONS
    start = time.perf_counter()
    descend("lr = 0.1", lambda iteration: 0.1)
    interpreted = (time.perf_counter() - start) / ITERATIONS
    gap = float(np.max(np.abs(run.path - eager.path)))
    print("  the lr = 0.1 loop again, with dlaccelerate(model_loss) compiled to native code by LLVM:")
    print(f"    end point ({run.path[-1][0]:.6f}, {run.path[-1][1]:.6f}), largest difference from the "
          f"interpreted run {gap:.1e}")
    print(f"    cache after two such loops: hit rate {accelerated.hit_rate:g} %, occupancy "
          f"{accelerated.occupancy:g} % (one trace of {accelerated.cache_size})")
    print(f"    per iteration (dlfeval, update, bookkeeping): {interpreted * 1e6:.0f} µs traced and "
          f"interpreted, {native * 1e6:.0f} µs with the cached native trace")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write the PNG (default: {DEFAULT_OUT.name} next to this script)")
    args = parser.parse_args(argv)

    runs = [
        descend("lr = 0.1", lambda iteration: 0.1),
        descend("lr = 0.2", lambda iteration: 0.2),
        descend("lr = 0.2 / (1 + 0.01 * iteration)", lambda iteration: 0.2 / (1 + 0.01 * iteration)),
    ]
    print_results(runs)
    engine_tour(runs[0])

    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("\nmatplotlib is not installed: plot skipped (pip install '.[examples]' to get it)")
        return
    plot(runs, args.out)
    print(f"\nplot written to {args.out}")


if __name__ == "__main__":
    main()
