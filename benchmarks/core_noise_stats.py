"""Cost of gradient-noise statistics relative to one plain mini-batch gradient, for a small MLP.

One tanh MLP regression, written twice on the same data and parameters: as a loss on a flat parameter vector
(``FiniteSum``, and ``FiniteSum.from_example_losses``) and as an ``nn.Sequential`` (``FiniteSum.from_module``).
Every row is a ``MiniBatch`` estimate on the same batch (a generator seeded alike for each call), timed
round-robin (shuffled each round) in one process so that drifting load on a shared machine hits all rows alike:

* plain: one forward and backward pass (the baseline of its objective);
* ``noise_stats="vmap"`` (``True``): exact, all per-example gradients through ``torch.func.vmap(grad)``;
* ``noise_stats="norms"``: exact per-example gradient norms of the linear layers from one pass (module only);
* ``noise_stats="probe"``: unbiased random-sign probe, two vector-Jacobian products of one forward pass
  (per-example losses from a ``vmap`` of the loss, or known);
* :func:`noisygrad.noise.statistics.gradient_noise` on the batch (all per-example gradients, adds ``tr(S^2)``).

Printed: median CPU times and their ratios to the plain gradient of the same objective (target: <= 1.5x),
and each method's ``tr(S_b)`` on the batch (``vmap`` and ``norms`` agree to rounding; the probe scatters).

    .venv/bin/python benchmarks/core_noise_stats.py [--batch 128] [--hidden 64] [--repeats 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import torch

from noisygrad import FiniteSum, MiniBatch
from noisygrad.noise.statistics import gradient_noise


def mlp_objectives(
    n: int, d_in: int, hidden: int, generator: torch.Generator
) -> tuple[dict[str, FiniteSum], torch.Tensor]:
    """A one-hidden-layer tanh MLP regression: the same model as flat-vector losses and as an nn.Sequential."""
    shapes = [(hidden, d_in), (hidden,), (1, hidden), (1,)]
    sizes = [torch.Size(s).numel() for s in shapes]

    def example_losses(params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = (p.reshape(s) for p, s in zip(params.split(sizes), shapes, strict=True))
        out = torch.tanh(X @ w1.T + b1) @ w2.T + b2
        return 0.5 * (out.squeeze(-1) - y) ** 2

    def loss(params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return example_losses(params, X, y).mean()

    def module_example_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return 0.5 * (out.squeeze(-1) - y) ** 2

    X = torch.randn(n, d_in, generator=generator)
    y = torch.sin(X.sum(1)) + 0.1 * torch.randn(n, generator=generator)
    params = 0.3 * torch.randn(sum(sizes), generator=generator)
    net = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    torch.nn.utils.vector_to_parameters(params, net.parameters())  # same parameters, same layout
    objectives = {
        "flat": FiniteSum(loss, (X, y)),
        "flat, per-example losses": FiniteSum.from_example_losses(example_losses, (X, y)),
        "module": FiniteSum.from_module(net, module_example_loss, (X, y)),
    }
    return objectives, params


def round_robin_cpu(cases: dict[str, Callable[[], object]], repeats: int, seed: int) -> dict[str, float]:
    """Median CPU time of each case: each run once as a warm-up, then every round runs all in a shuffled order."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    order = list(cases)
    shuffler = random.Random(seed)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for name in order:
            start = time.process_time()
            cases[name]()
            times[name].append(time.process_time() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small kernels: thread hand-offs on a shared machine would dominate the timings
    gen = torch.Generator().manual_seed(args.seed)
    objectives, params = mlp_objectives(4096, 16, args.hidden, gen)
    flat, known, module = objectives["flat"], objectives["flat, per-example losses"], objectives["module"]
    b = args.batch
    rows: list[tuple[str, str, MiniBatch]] = [
        ("flat", "plain gradient", MiniBatch(flat, b)),
        ("flat", 'noise_stats="vmap" (exact)', MiniBatch(flat, b, noise_stats="vmap")),
        ("flat", 'noise_stats="probe" (losses by vmap)', MiniBatch(flat, b, noise_stats="probe")),
        ("known", "plain gradient", MiniBatch(known, b)),
        ("known", 'noise_stats="probe" (losses known)', MiniBatch(known, b, noise_stats="probe")),
        ("module", "plain gradient", MiniBatch(module, b)),
        ("module", 'noise_stats="norms" (exact)', MiniBatch(module, b, noise_stats="norms")),
        ("module", 'noise_stats="probe"', MiniBatch(module, b, noise_stats="probe")),
        ("module", 'noise_stats="vmap" (exact)', MiniBatch(module, b, noise_stats="vmap")),
    ]
    cases: dict[str, Callable[[], object]] = {
        f"{obj}: {label}": (lambda est=est: est.estimate(params, torch.Generator().manual_seed(1)))
        for obj, label, est in rows
    }
    idx = MiniBatch(flat, b).sample_indices(torch.Generator().manual_seed(1))  # the batch every row draws
    cases["flat: gradient_noise (adds tr(S^2))"] = lambda: gradient_noise(flat, params, idx)
    medians = round_robin_cpu(cases, args.repeats, args.seed)

    print(f"MLP 16-{args.hidden}-1 ({params.numel()} parameters), batch {b}, median CPU time of {args.repeats} runs")
    print("ratios to the plain gradient of the same objective (target for noise statistics: <= 1.5x)")
    for name, seconds in medians.items():
        base = medians[name.split(":")[0] + ": plain gradient"]
        stat = ""
        if "noise_stats" in name:
            obj, label = name.split(": ", 1)
            est = next(e for o, lab, e in rows if o == obj and lab == label)
            stat = f"   tr(S_b) = {est.estimate(params, torch.Generator().manual_seed(1)).stats['trace_cov']:.5f}"
        print(f"  {name:48s} {seconds * 1e3:8.3f} ms   {seconds / base:5.2f}x{stat}")
    for obj in ("known", "module"):
        ratio = medians[f"{obj}: plain gradient"] / medians["flat: plain gradient"]
        print(f"plain gradient, {obj} / flat: {ratio:.2f}x")


if __name__ == "__main__":
    main()
