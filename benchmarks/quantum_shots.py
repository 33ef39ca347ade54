"""Shot-frugal VQE, part 1: variance-optimal allocation across measurement groups on the benchmark family.

For each problem of ``noisygrad.quantum.problems.family`` at its seed-0 initial point: the shots one energy estimate
needs for a target standard deviation ``eps`` (set so the optimum is about 1e5 shots) with equal shots per group
(``G * sum sigma_g**2 / eps**2``, using the TRUE sigmas: the best equal allocation can do) and with
:class:`~noisygrad.quantum.allocation.ShotAllocator` (from a 20000-shot pilot's estimates), the realised ratio
against the closed form ``(sum sigma)**2 / (G sum sigma**2)``, and the measured std of ``--repeats`` estimates over
``eps``. Shots to chemical accuracy against qiskit-algorithms' SPSA and PennyLane's ``ShotAdaptiveOptimizer``:
``benchmarks/quantum_shot_frugal.py``.

    .venv/bin/python benchmarks/quantum_shots.py [--repeats 2000] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from noisygrad.quantum.allocation import ShotAllocator, equal_shots, exact_group_sigmas, saving
from noisygrad.quantum.objective import EnergyObjective
from noisygrad.quantum.problems import family


def allocation_row(problem: object, repeats: int, seed: int) -> dict[str, float | int | str]:
    x = problem.initial_point(0)  # type: ignore[attr-defined]
    ham, ansatz = problem.hamiltonian, problem.ansatz  # type: ignore[attr-defined]
    plain = EnergyObjective(ham, ansatz)
    sigmas = exact_group_sigmas(plain.plan, plain.backend.probabilities(x[None], plain.plan))[0]
    eps = float(sigmas.sum()) / np.sqrt(1e5)
    objective = EnergyObjective(ham, ansatz, allocation=ShotAllocator(len(sigmas), precision=eps, pilot_shots=20000))
    rng = np.random.default_rng(seed)
    objective.sample(x, rng)
    energies = objective.sample(np.repeat(x[None], repeats, 0), rng)
    shots = objective.last_group_shots
    equal = int(equal_shots(sigmas, eps).sum())
    return {
        "problem": problem.name,  # type: ignore[attr-defined]
        "groups": len(sigmas),
        "equal_shots": equal,
        "allocated_shots": int(shots.sum()),
        "ratio": float(shots.sum() / equal),
        "closed_form": saving(sigmas),
        "std_over_eps": float(energies.std(ddof=1) / eps),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [allocation_row(p, args.repeats, args.seed) for p in family()]
    print(f"{'problem':28s} {'G':>3s} {'equal':>9s} {'allocated':>9s} {'ratio':>6s} {'form':>6s} {'std/eps':>7s}")
    for r in rows:
        print(
            f"{r['problem']:28s} {r['groups']:3d} {r['equal_shots']:9d} {r['allocated_shots']:9d} "
            f"{r['ratio']:6.3f} {r['closed_form']:6.3f} {r['std_over_eps']:7.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
