"""Accuracy of Adam then L-BFGS on the three PINN benchmark problems: noisygrad.pinn against DeepXDE's own.

For each problem and seed (median of 3 seeds), the same network and points are trained with

* ``deepxde``: ``compile("adam")``, ``train``, ``compile("L-BFGS")``, ``train`` (DeepXDE's recipe);
* ``noisygrad``: :func:`noisygrad.pinn.adam_then_lbfgs` with the same budgets (full collocation set);
* ``noisygrad-batch``: the same, but the Adam phase on random collocation mini-batches of N/4 points.

It prints relative L2 error, wall and CPU seconds per run and a median table. Runs are sequential in one
process, one torch thread, so anchor and plugin share the machine's state; on a shared machine wall time is
inflated, CPU time less so.

    .venv/bin/python benchmarks/pinn_accuracy.py [--problems poisson1d helmholtz2d burgers] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from noisygrad.pinn import pool_size, problems

BOUNDS = {"poisson1d": 1e-5, "helmholtz2d": 1e-3, "burgers": 4e-2}


def run(name: str, seed: int, method: str) -> dict[str, float | str | int]:
    options: dict[str, object] = {"method": method}
    if method == "noisygrad-batch":  # the pool size needs a build; it is not part of the timed solve
        with problems.default_float("float32"):
            options = {"batch_size": max(pool_size(problems.build(name, seed=seed).model.data) // 4, 1)}
    cpu = time.process_time()
    solved = problems.solve(name, seed=seed, **options)
    return {
        "problem": name,
        "seed": seed,
        "method": method,
        "error": solved.error,
        "wall_s": round(solved.seconds, 1),
        "cpu_s": round(time.process_time() - cpu, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(problems.NAMES), choices=problems.NAMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["deepxde", "noisygrad", "noisygrad-batch"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in args.problems:
        for seed in args.seeds:
            for method in args.methods:
                row = run(name, seed, method)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| problem | method | median rel. L2 | bound | median wall s | median CPU s | seeds |")
    print("|---|---|---|---|---|---|---|")
    for name in args.problems:
        for method in args.methods:
            sel = [r for r in rows if r["problem"] == name and r["method"] == method]
            err = statistics.median(r["error"] for r in sel)
            wall = statistics.median(r["wall_s"] for r in sel)
            cpu = statistics.median(r["cpu_s"] for r in sel)
            print(f"| {name} | {method} | {err:.2e} | {BOUNDS[name]:g} | {wall:.0f} | {cpu:.0f} | {len(sel)} |")


if __name__ == "__main__":
    main()
