"""Shots to chemical accuracy on H2: noisygrad's SPSA vs qiskit-algorithms' SPSA, same problem and shot model.

Both optimizers drive ``qiskit_algorithms.VQE`` on the same estimator (``shot_estimator``: real shot
sampling, 1000 shots per measurement group), from the same random initial points, for a ladder of iteration
budgets; the native ``noisygrad.quantum.vqe`` runs beside them. For every budget: the median over seeds of the
exact error of the returned parameters (statevector), how many runs end within chemical accuracy (1.6 mHa),
and the shots each run spent (the estimator's own counter: calibration and final evaluations included).
"Shots to chemical accuracy" is the spend of the smallest budget whose median error is below 1.6 mHa.

    .venv/bin/python benchmarks/quantum_spsa_h2.py [--seeds 10] [--budgets 100 200 300 500 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit_algorithms import VQE
from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
from qiskit_algorithms.utils import algorithm_globals

from noisygrad.quantum import CHEMICAL_ACCURACY, SPSA, EnergyObjective, exact_ground_energy, h2, shot_estimator, vqe

SHOTS = 1000


def run_qiskit_vqe(optimizer, seed: int, x0: np.ndarray, hamiltonian, ansatz) -> tuple[np.ndarray, int]:
    estimator = shot_estimator(shots=SHOTS, seed=seed)
    result = VQE(estimator, ansatz, optimizer, initial_point=x0).compute_minimum_eigenvalue(hamiltonian)
    return result.optimal_point, estimator.shots_used


def native(maxiter: int, seed: int, x0: np.ndarray, hamiltonian, ansatz) -> tuple[np.ndarray, int]:
    # final_shots=SHOTS: one final evaluation at the same shot count, as qiskit-algorithms spends
    r = vqe(
        hamiltonian,
        ansatz,
        shots=SHOTS,
        maxiter=maxiter,
        seed=seed,
        initial_point=x0,
        final_shots=SHOTS,
        track_exact=False,
    )
    return r.parameters, r.shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budgets", type=int, nargs="+", default=[100, 200, 300, 500, 1000])
    args = parser.parse_args()
    hamiltonian, ansatz = h2(), efficient_su2(2, reps=1)
    exact = EnergyObjective(hamiltonian, ansatz, noise="exact")
    e0 = exact_ground_energy(hamiltonian)
    methods = {
        "qiskit-algorithms SPSA": lambda n, s, x0: run_qiskit_vqe(QiskitSPSA(maxiter=n), s, x0, hamiltonian, ansatz),
        "noisygrad SPSA (in qiskit VQE)": lambda n, s, x0: run_qiskit_vqe(
            SPSA(maxiter=n, seed=s), s, x0, hamiltonian, ansatz
        ),
        "noisygrad.quantum.vqe": lambda n, s, x0: native(n, s, x0, hamiltonian, ansatz),
    }
    print(f"H2 (efficient_su2 reps=1), {SHOTS} shots/group, real shot sampling, {args.seeds} seeds; errors in mHa")
    reached: dict[str, tuple[int, float]] = {}
    for name, method in methods.items():
        for budget in args.budgets:
            errors, shots, start = [], [], time.perf_counter()
            for seed in range(args.seeds):
                x0 = np.random.default_rng(1000 + seed).uniform(-np.pi, np.pi, 8)
                algorithm_globals.random_seed = seed  # qiskit-algorithms draws its perturbations here
                point, spent = method(budget, seed, x0)
                errors.append(float(exact.exact(point)[0]) - e0)
                shots.append(spent)
            errs = np.array(errors) * 1e3
            median = float(np.median(errs))
            wall = (time.perf_counter() - start) / args.seeds
            print(
                f"{name:32} iters {budget:5}  median {median:7.3f}  within CA {int((errs < 1.6).sum()):2}/{args.seeds}"
                f"  shots/run {int(np.median(shots)):>9}  wall/run {wall:5.2f} s  errors {np.round(errs, 2).tolist()}",
                flush=True,
            )
            if median < CHEMICAL_ACCURACY * 1e3 and name not in reached:
                reached[name] = (int(np.median(shots)), wall)
    print("\nshots (and wall time per run) at the smallest budget whose median error is below 1.6 mHa:")
    base = reached.get("qiskit-algorithms SPSA")
    for name, (shots, wall) in reached.items():
        ratio = f"  shots ratio vs qiskit-algorithms {base[0] / shots:.2f}x, wall {base[1] / wall:.2f}x" if base else ""
        print(f"  {name:32} {shots:>10} shots  {wall:5.2f} s{ratio}")
    for name in methods:
        if name not in reached:
            print(f"  {name:32} did not reach a median below 1.6 mHa within {max(args.budgets)} iterations")


if __name__ == "__main__":
    main()
