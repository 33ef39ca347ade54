"""Batched energy evaluation: one primitive call with a (K, P) parameter array vs K separate calls.

Side by side, in one process, on the same circuits and parameter sets (2 contended cores: read the ratios):

* ``ours, batched``: :func:`noisygrad.quantum.shot_estimator` (real shots) with one PUB of K parameter sets;
* ``ours, separate``: the same estimator called K times with one parameter set each;
* ``ours (aer), batched``: the same with ``backend="aer"`` (Aer samples the shots);
* ``Aer EstimatorV2``: the anchor, one PUB of K sets (Gaussian precision model: no shots sampled);
* ``BackendEstimatorV2``: Qiskit's real-shot estimator on ``AerSimulator``, one PUB of K sets.

Then whole VQE runs on H2 (300 SPSA iterations, 1000 shots per group) through qiskit-algorithms:
its SPSA on the stock real-shot estimator, its SPSA on ours, our SPSA on ours, and the native ``vqe``.

    .venv/bin/python benchmarks/quantum_batching.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit.primitives import BackendEstimatorV2
from qiskit_aer import AerSimulator
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2

from noisygrad.quantum import SPSA, h2, shot_estimator, tfim, vqe


def _rate(evaluations: int, repeat: int, fn, *args) -> float:
    fn(*args)  # warm-up (transpilation, caches)
    start = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return evaluations * repeat / (time.perf_counter() - start)


def _batched(estimator, ansatz, hamiltonian, points) -> None:
    estimator.run([(ansatz, hamiltonian, points)]).result()


def _separate(estimator, ansatz, hamiltonian, points) -> None:
    for p in points:
        estimator.run([(ansatz, hamiltonian, p)]).result()


def throughput(quick: bool) -> None:
    shots = 1000
    problems = [
        ("H2, 2 qubits", h2(), efficient_su2(2, reps=1)),
        ("TFIM, 4 qubits", tfim(4), efficient_su2(4, reps=2)),
    ]
    sizes = (2, 50) if quick else (2, 16, 50, 500)
    print(f"energy evaluations per second ({shots} shots per group), higher is better")
    columns = ("ours batched", "ours separate", "ours aer", "Aer EstV2", "BackendEstV2")
    print(f"{'problem':16} {'K':>4} " + " ".join(f"{c:>13}" for c in columns) + "  batched/separate  ours/AerEstV2")
    for name, hamiltonian, ansatz in problems:
        for k in sizes:
            points = np.random.default_rng(k).uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
            problem = (ansatz, hamiltonian, points)
            precision = {"default_precision": 1 / np.sqrt(shots)}
            repeat = max(1, (40 if quick else 200) // k)
            rates = [
                _rate(k, repeat, _batched, shot_estimator(shots=shots, seed=0), *problem),
                _rate(k, repeat, _separate, shot_estimator(shots=shots, seed=0), *problem),
                _rate(k, repeat, _batched, shot_estimator(shots=shots, seed=0, backend="aer"), *problem),
                _rate(k, repeat, _batched, AerEstimatorV2(options=precision), *problem),
                _rate(
                    k,
                    max(1, repeat // 4),
                    _batched,
                    BackendEstimatorV2(backend=AerSimulator(), options=precision),
                    *problem,
                ),
            ]
            print(
                f"{name:16} {k:>4} "
                + " ".join(f"{r:>13.0f}" for r in rates)
                + f"  {rates[0] / rates[1]:>16.1f}  {rates[0] / rates[3]:>13.1f}",
                flush=True,
            )


def _qiskit_vqe(estimator, optimizer, x0, hamiltonian, ansatz) -> None:
    from qiskit_algorithms import VQE

    VQE(estimator, ansatz, optimizer, initial_point=x0).compute_minimum_eigenvalue(hamiltonian)


def vqe_runs(quick: bool) -> None:
    from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
    from qiskit_algorithms.utils import algorithm_globals

    hamiltonian, ansatz, shots, maxiter = h2(), efficient_su2(2, reps=1), 1000, 300
    seeds = range(2 if quick else 3)
    rows: dict[str, list[float]] = {}
    precision = {"default_precision": 1 / np.sqrt(shots)}
    for seed in seeds:
        x0 = np.random.default_rng(seed).uniform(-np.pi, np.pi, 8)
        runs = {
            "qiskit SPSA + BackendEstimatorV2": (
                _qiskit_vqe,
                BackendEstimatorV2(backend=AerSimulator(), options=precision),
                QiskitSPSA(maxiter=maxiter),
                x0,
                hamiltonian,
                ansatz,
            ),
            "qiskit SPSA + shot_estimator": (
                _qiskit_vqe,
                shot_estimator(shots, seed),
                QiskitSPSA(maxiter=maxiter),
                x0,
                hamiltonian,
                ansatz,
            ),
            "noisygrad SPSA + shot_estimator": (
                _qiskit_vqe,
                shot_estimator(shots, seed),
                SPSA(maxiter=maxiter, seed=seed),
                x0,
                hamiltonian,
                ansatz,
            ),
        }
        for label, (fn, *args) in runs.items():
            algorithm_globals.random_seed = seed
            start = time.perf_counter()
            fn(*args)
            rows.setdefault(label, []).append(time.perf_counter() - start)
        start = time.perf_counter()
        vqe(hamiltonian, ansatz, shots=shots, maxiter=maxiter, seed=seed, initial_point=x0, track_exact=False)
        rows.setdefault("noisygrad.quantum.vqe", []).append(time.perf_counter() - start)
    base = np.median(rows["qiskit SPSA + BackendEstimatorV2"])
    print(f"\nH2 VQE, {maxiter} SPSA iterations, {shots} shots/group, real shots; median wall over {len(seeds)} seeds")
    for label, times in rows.items():
        print(f"  {label:36} {np.median(times):7.2f} s   speed-up vs stock {base / np.median(times):6.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    throughput(args.quick)
    vqe_runs(args.quick)
