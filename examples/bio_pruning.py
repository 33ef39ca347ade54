"""Synaptic pruning as a first-passage problem, in a few seconds.

A synapse's weight w follows noisy SGD on a depressive drift, w <- w - eta kappa + eta sigma xi, and is
eliminated when it falls below theta. Its elimination time has mean (w0 - theta)/(eta kappa) whatever the
noise (for the diffusion; the discrete walk adds the expected overshoot), while its spread grows with sigma.
Then 200 neurons prune their inputs by competition: the correlated inputs survive.

    .venv/bin/python examples/bio_pruning.py [--out figures/]
"""

from __future__ import annotations

import argparse

import numpy as np

from noisygrad.bio import PruningModel, simulate_competition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", help="folder for the passage-time figure (PNG)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print("sigma | diffusion: mean (theory)  sd (theory)  | walk: mean (Wald + overshoot)")
    for sigma in (0.5, 2.0, 4.0):
        model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=sigma)
        sde = model.simulate_sde(40_000, rng, method="bridge")
        walk = model.simulate_walk(40_000, rng)
        print(
            f"{sigma:5.1f} | {sde.mean():7.2f} ({model.mean_passage_time():5.1f})"
            f"  {sde.std():5.2f} ({np.sqrt(model.variance_passage_time()):5.2f})"
            f"  | {walk.mean():7.2f} ({model.discrete_mean_passage_time():6.2f})"
        )

    result = simulate_competition(200, 5, 15, correlation=0.5, steps=800, rng=rng)
    pruned = result.pruned_at[:, ~result.correlated]
    print(
        f"competition: {result.kept_fraction('correlated'):.1%} of correlated inputs kept, "
        f"{1 - result.kept_fraction('uncorrelated'):.1%} of uncorrelated pruned "
        f"(median elimination step {np.median(pruned):.0f})"
    )

    if args.out:
        from noisygrad.bio.plots import plot_passage_times

        model = PruningModel(w0=1.0, theta=0.2, eta=0.01, kappa=1.0, sigma=2.0)
        print("wrote", plot_passage_times(model, model.simulate_sde(40_000, rng), args.out))


if __name__ == "__main__":
    main()
