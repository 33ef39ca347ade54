"""The pinn plugin's headline experiments for ``noisygrad tour`` (each returns a list of Findings).

* ``pinn.adam-identity``: Adam through noisygrad inside DeepXDE gives the same weights, bit for bit, as
  DeepXDE's ``compile("adam")``.
* ``pinn.collocation-noise``: the predicted cosine ``(1 + rho/b (1 - b/N))^(-1/2)`` between a collocation
  mini-batch gradient and the full one, against its Monte-Carlo value.
* ``pinn.poisson1d``, ``pinn.helmholtz2d``, ``pinn.burgers``: Adam then L-BFGS reaches the issue's relative
  L2 error bound (the quick size uses smaller problems and budgets, see :mod:`noisygrad.pinn.problems`).

The problem experiments call :func:`noisygrad.pinn.problems.build`, which seeds DeepXDE's global random
state with ``seed`` (the documented entry); the draws of an experiment's own run come from
:func:`noisygrad.rng.torch_stream` ``(seed)``.
"""

from __future__ import annotations

import math
import time

import numpy as np

from noisygrad import Adam, TorchOptimizer
from noisygrad.noise.statistics import noise_stats_from_grads
from noisygrad.tour.kit import TOLERANCE_Z, Finding, Parameter, one_thread, takes, torch_stream

from . import problems
from ._deepxde import quiet
from .batches import CollocationBatches
from .noise import _flat_grad, _params, group_gradients, predicted_cosine
from .training import train

# Relative L2 bounds (full size, quick size). Full size: the floors. Quick size (`noisygrad run pinn.<name>`),
# measured for seeds 0, 1, 2: poisson1d 4.8e-6, 1.2e-6, 2.9e-5; helmholtz2d 5.4e-5, 2.1e-4, 2.5e-4;
# burgers 1.1e-2, 1.5e-2, 1.0e-2. Each quick bound is about 2-4x the worst of the three. Remeasured in the tour
# (seeds 0, 1, 2, 5, then 10): helmholtz2d 5.0e-5, 1.3e-4, 2.4e-4, 6.3e-5, 1.1e-4; burgers 1.1e-2, 1.1e-2, 1.3e-2,
# 5.3e-3, 3.3e-2 (seed 10 used 83% of the bound: not yet shown to hold for every seed; open). poisson1d, seeds 0-10:
# 1.2e-5, 2.3e-6, 3.5e-6, 3.0e-5, 5.3e-6, 1.1e-5, 6.9e-5, 3.2e-6, 9.6e-6, 2.2e-6, 3.8e-5. Its L-BFGS phase stops on
# its own float32 tolerance after 66-408 of its 500 iterations (a larger budget changed nothing, measured), so the
# error is the spread of the float32 optimum over initialisations, 30x wide; the quick bound was 6e-5, which seed 6
# missed, and is now 2e-4, about 3x the worst of the eleven (a deterministic run per seed: no Monte-Carlo error).
BOUNDS = {
    "poisson1d": (1e-5, 2e-4),
    "helmholtz2d": (1e-3, 1e-3),
    "burgers": (4e-2, 4e-2),
}


@takes(Parameter("steps", int, 200, "Adam steps of both runs", full=2000, low=1, high=100_000))
@one_thread()
def adam_identity(seed: int = 0, quick: bool = True, *, steps: int) -> list[Finding]:
    """``max |w_noisygrad - w_deepxde|`` after Adam steps on poisson1d: exactly 0."""
    start = time.perf_counter()
    ref = problems.build("poisson1d", seed=seed).model
    with quiet():
        ref.compile("adam", lr=1e-3, verbose=0)
        ref.train(iterations=steps, verbose=0)
    ours = problems.build("poisson1d", seed=seed).model
    with quiet():
        ours.compile(TorchOptimizer(ours.net.parameters(), Adam(lr=1e-3)), verbose=0)
        ours.train(iterations=steps, verbose=0)
    pairs = zip(ref.net.parameters(), ours.net.parameters(), strict=True)
    gap = max(float((a - b).detach().abs().max()) for a, b in pairs)
    return [
        Finding(
            experiment="pinn.adam-identity",
            claim="noisygrad Adam in DeepXDE's compile() gives the weights of compile('adam'), bit for bit",
            predicted=0.0,
            measured=gap,
            uncertainty=0.0,
            tolerance=0.0,
            details={"steps": steps, "problem": "poisson1d", "seconds": round(time.perf_counter() - start, 2)},
        )
    ]


@takes(
    Parameter("batch", int, 16, "collocation points per mini-batch b, of the 64", low=2, high=48),
    Parameter("draws", int, 300, "mini-batch gradients drawn", full=3000, low=50, high=100_000),
)
@one_thread()
def collocation_noise(seed: int = 0, quick: bool = True, *, batch: int, draws: int) -> list[Finding]:
    """``E[g_b . g] / sqrt(|g|^2 E|g_b|^2)`` against ``(1 + rho/b (1 - b/N))^(-1/2)``, rho from per-point gradients."""
    b = batch
    problem = problems.build("poisson1d", seed=seed)
    model = problem.model
    run = torch_stream(seed)  # the run's generator: the training phase, then the Monte-Carlo batches
    train(model, "adam", lr=1e-3, iterations=200, seed=run, verbose=0)
    batches = CollocationBatches(model.data, b, generator=run)
    n = batches.pool
    stats = noise_stats_from_grads(group_gradients(model, batches, groups=n, group_size=1).double())
    g, gg, rho = stats.grad, stats.grad_norm_sq, stats.rho
    params = _params(model)
    dots, norms = np.empty(draws), np.empty(draws)
    for k in range(draws):
        rows = batches.rows(batches.indices())
        with batches.installed(rows):
            gb = _flat_grad(model, params, rows).double()
        dots[k], norms[k] = float(gb @ g), float(gb @ gb)
    measured = dots.mean() / math.sqrt(gg * norms.mean())
    cov = np.cov(np.stack([dots / dots.mean(), norms / (2 * norms.mean())]), ddof=1)
    se = measured * math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0) / draws)
    return [
        Finding(
            experiment="pinn.collocation-noise",
            claim="a collocation mini-batch gradient aligns with the full one as (1 + rho/b (1 - b/N))^(-1/2)",
            predicted=predicted_cosine(rho, b, n),
            measured=float(measured),
            uncertainty=se,
            tolerance=TOLERANCE_Z * se,
            details={"b": b, "N": n, "rho": rho, "draws": draws, "tolerance": "4 standard errors"},
        )
    ]


def _accuracy(name: str, seed: int, quick: bool) -> list[Finding]:
    solved = problems.solve(name, seed=seed, quick=quick)
    bound = BOUNDS[name][1 if quick else 0]
    phases = solved.result.phases
    return [
        Finding.at_most(
            f"pinn.{name}",
            f"Adam then L-BFGS reaches relative L2 error <= {bound:g} on {name}",
            bound=bound,
            measured=solved.error,
            unit="relative L2",
            details={
                "size": "quick" if quick else "full",
                "adam_iterations": phases[0].iterations,
                "lbfgs_iterations": phases[1].iterations,
                "seconds": round(solved.seconds, 1),
            },
        )
    ]


@one_thread()
def poisson1d(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Relative L2 error of Adam then L-BFGS on the 1-D Poisson problem."""
    return _accuracy("poisson1d", seed, quick)


@one_thread()
def helmholtz2d(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Relative L2 error of Adam then L-BFGS on the 2-D Helmholtz problem."""
    return _accuracy("helmholtz2d", seed, quick)


@one_thread()
def burgers(seed: int = 0, quick: bool = True) -> list[Finding]:
    """Relative L2 error of Adam then L-BFGS on viscous Burgers (Cole-Hopf reference)."""
    return _accuracy("burgers", seed, quick)
