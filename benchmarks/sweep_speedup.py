"""Speed-up of ``noisygrad.sweep`` over the serial loop, for tasks of about 1 s, 10 s and 60 s.

Each task is a real run: the README regression (``X = randn(1000, 5)``, ``MiniBatch(32)``, SGD with a
Robbins-Monro step) minimised by ``noisygrad.minimize`` with a seed from ``spawn_seeds(2024, n)``, for as many
steps as take the target time here (calibrated in this process, one torch thread). Per size, ``--tasks`` tasks
(default: twice the workers) run

* serially in this process (the reference; its wall time is the baseline),
* with ``executor="process"``: a fresh pool of ``--workers`` spawned processes per sweep, so each worker's start
  (a new interpreter importing torch and noisygrad, 3-4 s on a loaded 2-core machine) is in the figure;
* with ``executor="ray"`` (if installed): a local Ray instance started once (``ray.init(num_cpus=workers)``,
  its start printed apart) whose workers were warmed up by one small sweep, as a long-lived Ray would be.

Printed per size: the wall times, the speed-up ``serial / executor`` (ideal: the worker count) and whether
every result equals the serial one bit for bit (it must). On a shared CPU machine the figures are only
indicative: other load changes them from run to run.

Measured on the shared 2-core machine (``--tasks 2 --workers 2``, load average 3.8-6.4 from other jobs, so both
cores were already taken; 785 s in all; every result bit-identical to the serial one):

    task  serial s  process s speed-up      ray s speed-up
      1s       1.4        4.6    0.30x        2.7    0.50x   (0.7 s per task serially)
     10s      23.3       48.0    0.49x       39.6    0.59x   (11.7 s per task serially)
     60s     210.7      194.9    1.08x      244.7    0.86x   (105.4 s per task serially)

(``ray.init`` 4.7 s and the warm-up sweep 3.2 s, outside the ray column.) On two cores that other jobs keep busy
there is no idle core to gain, so these figures say what a pool costs there (each spawned worker's start, 3-4 s,
in the process column), not what it gains on free cores, where the ideal is the worker count.

    .venv/bin/python benchmarks/sweep_speedup.py [--sizes 1 10 60] [--workers 2] [--tasks 4]
        [--executors process ray]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

import noisygrad as ng
from noisygrad.sweeps import spawn_seeds, sweep

Item = tuple[int, int]  # (seed, steps)


def _loss(w: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((X @ w - y) ** 2).mean()


def regression(item: Item) -> torch.Tensor:
    """One README regression run of ``steps`` SGD steps with ``seed``; returns the final point."""
    seed, steps = item
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(1000, 5, dtype=torch.float64, generator=gen)
    y = X @ torch.arange(5.0, dtype=torch.float64) + 0.1 * torch.randn(1000, dtype=torch.float64, generator=gen)
    estimator = ng.MiniBatch(ng.FiniteSum(_loss, (X, y)), batch_size=32)
    rule = ng.SGD(ng.RobbinsMonro(a=1.0, b=10.0, alpha=1.0))
    x0 = torch.zeros(5, dtype=torch.float64)
    return ng.minimize(estimator, rule, x0, steps=steps, seed=seed, record_every=max(steps // 10, 1)).x


def steps_per_second() -> float:
    """Steps of :func:`regression` per second in this process with one torch thread (what every task gets): the
    median of three timed runs of 2000 steps, after a warm-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        regression((0, 200))
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            regression((0, 2000))
            rates.append(2000 / (time.perf_counter() - start))
        return statistics.median(rates)
    finally:
        torch.set_num_threads(threads)


def timed(items: list[Item], executor: str, workers: int) -> tuple[float, list[torch.Tensor]]:
    """Wall time of one sweep over ``items`` and its results."""
    start = time.perf_counter()
    out = sweep(regression, items, executor=executor, workers=None if executor == "serial" else workers)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 10.0, 60.0], help="task lengths (s)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=None, help="tasks per size (default: 2 x workers)")
    parser.add_argument("--executors", nargs="+", default=["process", "ray"], choices=["process", "ray", "dask"])
    args = parser.parse_args()
    tasks = args.tasks or 2 * args.workers
    rate = steps_per_second()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {rate:.0f} steps/s in one thread")
    print(f"{tasks} tasks per size, {args.workers} workers; speed-up = serial wall time / executor wall time")

    executors = list(args.executors)
    if "ray" in executors:
        try:
            import ray
        except ImportError:
            print("ray is not installed: skipped (pip install 'noisygrad-core[ray]')")
            executors.remove("ray")
        else:
            start = time.perf_counter()
            ray.init(num_cpus=args.workers, include_dashboard=False)
            started = time.perf_counter() - start
            warm, _ = timed([(s, 10) for s in spawn_seeds(1, args.workers)], "ray", args.workers)
            print(f"ray: ray.init {started:.1f} s, first sweep (workers import torch and noisygrad) {warm:.1f} s")

    header = f"{'task':>8} {'serial s':>9}" + "".join(f" {e + ' s':>10} {'speed-up':>8}" for e in executors)
    print(header + "  identical")
    for size in args.sizes:
        steps = max(round(size * rate), 1)
        items = [(seed, steps) for seed in spawn_seeds(2024, tasks)]
        serial_s, reference = timed(items, "serial", args.workers)
        row = f"{size:>7.0f}s {serial_s:>9.1f}"
        identical = []
        for executor in executors:
            seconds, out = timed(items, executor, args.workers)
            row += f" {seconds:>10.1f} {serial_s / seconds:>7.2f}x"
            identical.append(all(torch.equal(a, b) for a, b in zip(out, reference, strict=True)))
        print(row + f"  {all(identical)}  ({steps} steps, {serial_s / tasks:.1f} s per task serially)", flush=True)


if __name__ == "__main__":
    main()
