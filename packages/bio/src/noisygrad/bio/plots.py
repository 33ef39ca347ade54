"""Figures a biologist would want, written as PNG files.

matplotlib is imported only when a figure is drawn, and through ``matplotlib.figure.Figure`` with the Agg
canvas, so no global pyplot state or display backend is touched. From a shell (the two are the same)::

    noisygrad-bio-figures OUT_DIR [--seed 0]
    python -m noisygrad.bio.plots OUT_DIR [--seed 0]

The tour's report (``noisygrad run bio.bicoid-optimum --out report/``) draws the same curves from the
experiments' findings.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .morphogen import GREGOR_2007, ErrorCurve, error_curve_around_optimum
from .pruning import PruningModel


def _figure(width: float = 6.0, height: float = 4.0) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _target(out_dir: str | Path, filename: str) -> Path:
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / filename


def plot_passage_times(
    model: PruningModel, times: np.ndarray, out_dir: str | Path, *, filename: str = "pruning_passage_times.png"
) -> Path:
    """Histogram of elimination times against the inverse-Gaussian density of the diffusion."""
    t = np.asarray(times, dtype=np.float64)
    t = t[np.isfinite(t)]
    if t.size == 0:
        raise ValueError("times must contain at least one finite passage time")
    law = model.passage_time_distribution()
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(t, bins=80, density=True, color="0.75", label=f"simulated ({t.size:,} synapses)")
    grid = np.linspace(max(t.min(), 1e-9), np.quantile(t, 0.999), 400)
    ax.plot(grid, law.pdf(grid), color="C0", lw=2, label="inverse Gaussian (diffusion)")
    ax.axvline(
        model.mean_passage_time(), color="C1", ls="--", label=f"mean (w0-θ)/(ηκ) = {model.mean_passage_time():g}"
    )
    ax.set_xlabel("elimination time (steps)")
    ax.set_ylabel("probability density (1/step)")
    ax.set_title(f"Synaptic pruning as first passage, σ = {model.sigma:g}")
    ax.legend(frameon=False)
    path = _target(out_dir, filename)
    fig.savefig(path, dpi=120)
    return path


def plot_error_curve(
    curve: ErrorCurve,
    predicted_optimum: float,
    out_dir: str | Path,
    *,
    constraint: str = "amplitude",
    filename: str = "bicoid_error_curve.png",
) -> Path:
    """Positional error against decay length: simulation, delta-method curve, fitted and predicted optimum."""
    fig = _figure()
    ax = fig.add_subplot()
    lam = curve.decay_lengths
    ax.errorbar(lam, curve.error, yerr=curve.error_se, fmt="o", ms=3, color="0.3", label="simulated nuclei")
    ax.plot(lam, curve.predicted, color="C0", label="σ_c / |dc/dx| (Poisson)")
    ax.axvline(predicted_optimum, color="C1", ls="--", label=f"predicted λ* = {predicted_optimum:.3f} EL")
    ax.axvline(curve.fitted_optimum(), color="C2", ls=":", label=f"quartic fit λ* = {curve.fitted_optimum():.3f} EL")
    gregor = GREGOR_2007["decay_length_EL"]
    if lam.min() <= gregor <= lam.max():
        ax.axvline(gregor, color="0.5", lw=1, label=f"Gregor et al. 2007: λ ≈ {gregor:g} EL")
    ax.set_xlabel("decay length λ (egg lengths)")
    ax.set_ylabel("positional error σ_x (egg lengths)")
    ax.set_title(f"Bicoid read at the boundary, {constraint} fixed")
    ax.legend(frameon=False, fontsize="small")
    path = _target(out_dir, filename)
    fig.savefig(path, dpi=120)
    return path


def write_figures(out_dir: str | Path, *, seed: int = 0) -> list[Path]:
    """Simulate and draw every figure into ``out_dir``; returns the files written."""
    rng = np.random.default_rng(seed)
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
    paths = [plot_passage_times(model, model.simulate_sde(100_000, rng, method="bridge"), out_dir)]
    for constraint in ("amplitude", "total", "flux"):
        best, curve = error_curve_around_optimum(
            0.48, constraint, count_at_reference=700.0, reference_decay_length=0.2, n_nuclei=200_000, rng=rng
        )
        paths.append(
            plot_error_curve(curve, best, out_dir, constraint=constraint, filename=f"bicoid_error_{constraint}.png")
        )
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="noisygrad-bio-figures", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="folder for the PNG files (created if missing)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    args = parser.parse_args(argv)
    for path in write_figures(args.out_dir, seed=args.seed):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
