"""GPU check: one VQE on Aer's GPU device, timed beside the same run on the CPU.

Needs the GPU build of Aer, which replaces qiskit-aer (same import name)::

    pip uninstall -y qiskit-aer && pip install qiskit-aer-gpu    # CUDA 12, x86_64 Linux
    .venv/bin/python benchmarks/quantum_gpu_check.py [--qubits 12] [--iters 50]

Prints what Aer reports as its devices, then evaluations per second for batched energy estimates and the
wall time of a short SPSA VQE on a transverse-field Ising chain, CPU then GPU, and their ratios. Without a
GPU build it says so and exits with status 2 (``shot_estimator(device="GPU")`` raises a RuntimeError).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from qiskit.circuit.library import efficient_su2
from qiskit_aer import AerSimulator

from noisygrad.quantum import gpu_available, shot_estimator, tfim, vqe


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[12, 16, 20])
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--points", type=int, nargs="+", default=[2, 50])
    args = parser.parse_args()
    print("Aer devices:", AerSimulator().available_devices())
    if not gpu_available():
        print("no GPU build of Aer here: install qiskit-aer-gpu (it replaces qiskit-aer) to run this check")
        return 2
    for n in args.qubits:
        hamiltonian, ansatz = tfim(n), efficient_su2(n, reps=2)
        for k in args.points:
            points = np.random.default_rng(0).uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
            rates = {}
            for device in ("CPU", "GPU"):
                estimator = shot_estimator(shots=1000, seed=0, backend="aer", device=device)
                estimator.run([(ansatz, hamiltonian, points)]).result()  # warm-up: transpilation
                start = time.perf_counter()
                for _ in range(3):
                    estimator.run([(ansatz, hamiltonian, points)]).result()
                rates[device] = 3 * k / (time.perf_counter() - start)
            print(
                f"{n:2} qubits, K={k:3}: CPU {rates['CPU']:8.1f} eval/s  GPU {rates['GPU']:8.1f} eval/s  "
                f"GPU/CPU {rates['GPU'] / rates['CPU']:.2f}x",
                flush=True,
            )
        walls = {}
        for device in ("CPU", "GPU"):
            start = time.perf_counter()
            r = vqe(
                hamiltonian,
                ansatz,
                shots=1000,
                maxiter=args.iters,
                seed=0,
                backend="aer",
                device=device,
                track_exact=False,
            )
            walls[device] = time.perf_counter() - start
            print(
                f"{n:2} qubits, SPSA VQE {args.iters} iterations on {device}: {walls[device]:.1f} s, E {r.energy:.4f}"
            )
        print(f"{n:2} qubits, VQE speed-up GPU/CPU: {walls['CPU'] / walls['GPU']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
