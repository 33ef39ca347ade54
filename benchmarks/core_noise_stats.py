"""Cost of gradient-noise statistics relative to one plain mini-batch gradient, for a small MLP.

Both run in the same process on the same batches: a plain mini-batch gradient (``MiniBatch``: one forward and
backward pass), the same estimate with noise statistics (``MiniBatch(noise_stats=True)``: per-example gradients
through ``torch.func.vmap(grad)``, their mean, variance trace and the batch loss), and the full
:func:`noisygrad.noise.gradient_noise` statistics of the batch (adds ``tr(S^2)``). The ratios of the median
CPU times are printed (target: noise statistics <= 1.5x a plain gradient). On a shared machine the CPU-time
ratio is the steadier one.

    .venv/bin/python benchmarks/core_noise_stats.py [--batch 128] [--hidden 64] [--repeats 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from noisygrad import FiniteSum, MiniBatch
from noisygrad.noise import gradient_noise


def mlp_objective(n: int, d_in: int, hidden: int, generator: torch.Generator) -> tuple[FiniteSum, torch.Tensor]:
    """A one-hidden-layer tanh MLP regression as a FiniteSum over a flat parameter vector."""
    shapes = [(hidden, d_in), (hidden,), (1, hidden), (1,)]
    sizes = [torch.Size(s).numel() for s in shapes]

    def loss(params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        w1, b1, w2, b2 = (p.reshape(s) for p, s in zip(params.split(sizes), shapes, strict=True))
        out = torch.tanh(X @ w1.T + b1) @ w2.T + b2
        return 0.5 * ((out.squeeze(-1) - y) ** 2).mean()

    X = torch.randn(n, d_in, generator=generator)
    y = torch.sin(X.sum(1)) + 0.1 * torch.randn(n, generator=generator)
    params = 0.3 * torch.randn(sum(sizes), generator=generator)
    return FiniteSum(loss, (X, y)), params


def median_cpu(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (vmap tracing)
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # small kernels: thread hand-offs on a shared machine would dominate both timings
    gen = torch.Generator().manual_seed(args.seed)
    objective, params = mlp_objective(4096, 16, args.hidden, gen)
    plain = MiniBatch(objective, args.batch)
    with_stats = MiniBatch(objective, args.batch, noise_stats=True)
    idx = torch.randperm(objective.n_examples, generator=gen)[: args.batch]
    base = median_cpu(lambda: plain.estimate(params, torch.Generator().manual_seed(1)), args.repeats)
    stats = median_cpu(lambda: with_stats.estimate(params, torch.Generator().manual_seed(1)), args.repeats)
    full = median_cpu(lambda: gradient_noise(objective, params, idx), args.repeats)
    print(
        f"MLP 16-{args.hidden}-1 ({params.numel()} parameters), batch {args.batch}, median CPU time of {args.repeats}"
    )
    print(f"  plain mini-batch gradient          {base * 1e3:8.3f} ms   1.00x")
    print(f"  MiniBatch(noise_stats=True)        {stats * 1e3:8.3f} ms   {stats / base:.2f}x  (target <= 1.5x)")
    print(f"  gradient_noise (adds tr(S^2))      {full * 1e3:8.3f} ms   {full / base:.2f}x")


if __name__ == "__main__":
    main()
