"""First-passage trajectories per second: the vectorised pruning walk against a naive Python loop.

Both simulate the same walk, w_{n+1} = w_n - eta kappa + eta sigma xi_n from w0 = 1 down to theta = 0.2
(eta = 0.01, kappa = 1, sigma = 2: 81.4 steps on average), in the same process; the ratio of their rates
is printed, and the means are printed beside the Wald-corrected prediction as a check that both simulate
the same thing. The diffusion samplers (direct inverse Gaussian, and the grid with the exact
Brownian-bridge crossing) are timed too. Wall-clock and CPU time are both shown: on a shared machine the
CPU-time ratio is the steadier one.

    .venv/bin/python benchmarks/bio_first_passage.py [--synapses 1000000] [--naive 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from noisygrad.bio import PruningModel


def naive_walk(model: PruningModel, n: int, rng: np.random.Generator) -> np.ndarray:
    """One synapse at a time, one step at a time: what a first script would do."""
    out = np.empty(n)
    drift, noise = -model.eta * model.kappa, model.eta * model.sigma
    for i in range(n):
        w, steps = model.w0, 0
        while w >= model.theta:
            w += drift + noise * rng.standard_normal()
            steps += 1
        out[i] = steps
    return out


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synapses", type=int, default=1_000_000, help="synapses for the vectorised samplers")
    parser.add_argument("--naive", type=int, default=2000, help="synapses for the naive loop")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
    rows = [
        ("naive Python loop (walk)", args.naive, lambda rng: naive_walk(model, args.naive, rng)),
        ("vectorised walk", args.synapses, lambda rng: model.simulate_walk(args.synapses, rng)),
        (
            "diffusion, grid dt=1 + exact bridge",
            args.synapses,
            lambda rng: model.simulate_sde(args.synapses, rng, method="bridge", dt=1.0),
        ),
        (
            "diffusion, direct inverse Gaussian",
            args.synapses,
            lambda rng: model.simulate_sde(args.synapses, rng, method="exact"),
        ),
    ]
    print(
        f"walk prediction (Wald) {model.discrete_mean_passage_time():.3f} steps; "
        f"diffusion {model.mean_passage_time():.3f} steps"
    )
    print(f"{'sampler':38s} {'synapses':>9s} {'mean':>8s} {'wall/s':>12s} {'cpu/s':>12s}")
    rates = {}
    for name, n, fn in rows:
        times, wall, cpu = timed(lambda fn=fn: fn(np.random.default_rng(args.seed)))
        rates[name] = (n / wall, n / cpu)
        print(f"{name:38s} {n:9d} {times.mean():8.3f} {n / wall:12.4g} {n / cpu:12.4g}")
    naive, fast = rates["naive Python loop (walk)"], rates["vectorised walk"]
    print(f"vectorised / naive walk: {fast[0] / naive[0]:.0f}x wall-clock, {fast[1] / naive[1]:.0f}x CPU time")


if __name__ == "__main__":
    main()
