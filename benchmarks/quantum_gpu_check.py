"""GPU check: batched energy estimates and a short SPSA VQE on the GPU, timed beside the same work on the CPU.

``device="GPU"`` runs the torch statevector simulator on CUDA when torch sees a GPU, else Aer's GPU build
(``qiskit-aer-gpu``, which replaces ``qiskit-aer``). This script times, on a transverse-field Ising chain with an
``efficient_su2`` ansatz (reps 2, 1000 shots per measurement group), energy evaluations per second for each
simulator it finds (torch on the CPU, torch on CUDA, Aer on the CPU, Aer on the GPU), and the wall time of a short
SPSA VQE with ``device="CPU"`` against ``device="GPU"``, with their ratios::

    .venv/bin/python benchmarks/quantum_gpu_check.py [--qubits 4 8 12 16 20] [--points 2 50] [--iters 30]

Without any GPU simulator it says so and exits with status 2. Rates are best of ``--repeats`` calls after a
warm-up call (transpilation, CUDA context); the torch CPU path is skipped above ``--torch-cpu-max`` qubits, where it
is not used by ``backend="auto"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch
from qiskit.circuit.library import efficient_su2
from qiskit_aer import AerSimulator

from noisygrad.quantum import gpu_available, shot_estimator, tfim, vqe


def rate(backend: str, device: str, ansatz, hamiltonian, points: np.ndarray, repeats: int) -> float:
    """Energy evaluations per second of one configuration (best of ``repeats`` batched calls)."""
    estimator = shot_estimator(shots=1000, seed=0, backend=backend, device=device)
    estimator.run([(ansatz, hamiltonian, points)]).result()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.run([(ansatz, hamiltonian, points)]).result()
        best = min(best, time.perf_counter() - start)
    return len(points) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12, 16, 20])
    parser.add_argument("--points", type=int, nargs="+", default=[2, 50])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--vqe-qubits", type=int, nargs="+", default=[12, 16, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torch-cpu-max", type=int, default=16)
    args = parser.parse_args()
    torch_gpu, aer_gpu = torch.cuda.is_available(), gpu_available()
    print(f"python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs")
    print("torch CUDA:", torch.cuda.get_device_name() if torch_gpu else "none")
    print("Aer devices:", AerSimulator().available_devices())
    if not (torch_gpu or aer_gpu):
        print("no GPU simulator here: torch sees no CUDA GPU and this qiskit-aer has no GPU build")
        return 2
    configs = [("torch", "CPU"), ("aer", "CPU")]
    configs += [("torch", "GPU")] if torch_gpu else []
    configs += [("aer", "GPU")] if aer_gpu else []
    for n in args.qubits:
        hamiltonian, ansatz = tfim(n), efficient_su2(n, reps=2)
        for k in args.points:
            points = np.random.default_rng(0).uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
            rates = {}
            for backend, device in configs:
                if backend == "torch" and device == "CPU" and n > args.torch_cpu_max:
                    continue
                rates[f"{backend}/{device}"] = rate(backend, device, ansatz, hamiltonian, points, args.repeats)
            cpu_best = max(v for key, v in rates.items() if key.endswith("CPU"))
            cells = "  ".join(f"{key} {v:9.1f}/s" for key, v in rates.items())
            gpu_best = max((v for key, v in rates.items() if key.endswith("GPU")), default=float("nan"))
            print(f"{n:2} qubits, K={k:3}: {cells}  best GPU / best CPU {gpu_best / cpu_best:6.2f}x", flush=True)
    for n in args.vqe_qubits:
        hamiltonian, ansatz = tfim(n), efficient_su2(n, reps=2)
        walls = {}
        for device in ("CPU", "GPU"):
            start = time.perf_counter()
            result = vqe(hamiltonian, ansatz, shots=1000, maxiter=args.iters, seed=0, device=device, track_exact=False)
            walls[device] = time.perf_counter() - start
            print(
                f"{n:2} qubits, SPSA VQE {args.iters} iterations, device={device}: {walls[device]:7.1f} s, "
                f"E {result.energy:.4f}, {result.evaluations} evaluations",
                flush=True,
            )
        print(f"{n:2} qubits, VQE wall time CPU / GPU: {walls['CPU'] / walls['GPU']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
