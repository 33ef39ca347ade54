"""Where the torch statevector stops beating Aer on the CPU: the figures behind ``backend="auto"``.

Side by side in one process, on the same circuit, Hamiltonian, parameter sets and shot budget, this times the
two CPU simulators of :mod:`noisygrad.quantum.backends` on one batched call (exact outcome probabilities of every
measurement group at ``K`` points, then ``shots`` multinomial shots per group: the work of one
``ShotEstimator.run``): :class:`TorchBackend` as the library runs it (one torch thread below
``SMALL_CIRCUIT_QUBITS`` qubits), the same with torch's default thread count (``torch.get_num_threads()``, the
behaviour before the one-thread rule), and :class:`AerBackend` (``backend="aer"``). The circuits are
``efficient_su2(n, reps)`` on the transverse-field Ising chain ``tfim(n)`` (2 measurement groups). Repeats are
interleaved (the order rotates every repeat) so that a load change on a shared machine hits all three; each cell
is the median of the repeats after one warm-up call each. ``aer/torch`` is ``aer time / torch time``: above 1
torch is faster. ``auto`` is what ``backend="auto"`` picks for that call (:func:`make_backend`, and
:meth:`AutoBackend.pick` from 14 qubits); at the end every row where it picked the slower one is listed::

    .venv/bin/python benchmarks/quantum_backend_crossover.py [--qubits 2 4 ... 14] [--points 1 2 50] [--reps 2]
        [--repeats 9] [--torch-threads 1]

``--torch-threads 1`` keeps the "torch" column on one thread at every size (the library uses one thread below
``SMALL_CIRCUIT_QUBITS`` only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import qiskit_aer
import torch
from qiskit.circuit.library import efficient_su2

from noisygrad.quantum import tfim
from noisygrad.quantum.backends import AerBackend, AutoBackend, TorchBackend, make_backend
from noisygrad.quantum.measurement import MeasurementPlan


def _seconds(backend: TorchBackend | AerBackend, plan: MeasurementPlan, points: np.ndarray, shots: int) -> float:
    """Wall time of one batched call: probabilities of every group at every point, then the shots."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    backend.counts(points, plan, shots, rng)
    return time.perf_counter() - start


NAMES = ("torch", "torch-threads", "aer")


def measure(n: int, reps: int, k: int, repeats: int, shots: int, torch_threads: int | None) -> dict[str, float]:
    """Median seconds per call of each of :data:`NAMES` for ``efficient_su2(n, reps)`` at ``k`` points."""
    ansatz = efficient_su2(n, reps=reps)
    plan = MeasurementPlan(tfim(n), n)
    points = np.random.default_rng(n * 1000 + k).uniform(-np.pi, np.pi, (k, ansatz.num_parameters))
    ours, threaded = TorchBackend(ansatz), TorchBackend(ansatz)
    threaded.threads = None  # torch's own thread count
    if torch_threads is not None:
        ours.threads = torch_threads
    backends = {"torch": ours, "torch-threads": threaded, "aer": AerBackend(ansatz)}
    for backend in backends.values():  # warm-up: transpilation, caches, thread pools
        backend.counts(points, plan, shots, np.random.default_rng(0))
    times: dict[str, list[float]] = {name: [] for name in NAMES}
    for r in range(repeats):
        for i in range(len(NAMES)):
            name = NAMES[(r + i) % len(NAMES)]
            times[name].append(_seconds(backends[name], plan, points, shots))
    return {name: statistics.median(t) for name, t in times.items()}


def auto_choice(n: int, reps: int, k: int) -> str:
    """The simulator ``backend="auto"`` uses on the CPU for a call of ``k`` points (``"torch"`` or ``"aer"``)."""
    chosen = make_backend(efficient_su2(n, reps=reps))
    return (chosen.pick(k) if isinstance(chosen, AutoBackend) else chosen).name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, nargs="+", default=list(range(2, 15, 2)))
    parser.add_argument("--points", type=int, nargs="+", default=[1, 2, 50])
    parser.add_argument("--reps", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument(
        "--torch-threads", type=int, default=None, help="threads of the 'torch' column (default: the library's rule)"
    )
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"qiskit-aer {qiskit_aer.__version__}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"efficient_su2(n, reps) on tfim(n), {args.shots} shots per group; median of {args.repeats} interleaved")
    threads = f"torch {torch.get_num_threads()}t ms"
    header = f"{'reps':>4} {'qubits':>6} {'K':>4} {'torch ms':>10} {threads:>13} {'aer ms':>10}"
    print(f"{header} {'aer/torch':>10} {'aer/torch ' + str(torch.get_num_threads()) + 't':>12} {'auto':>6}")
    misses = []
    for reps in args.reps:
        for n in args.qubits:
            for k in args.points:
                t = measure(n, reps, k, args.repeats, args.shots, args.torch_threads)
                ratio, choice = t["aer"] / t["torch"], auto_choice(n, reps, k)
                if (ratio > 1) != (choice == "torch"):
                    misses.append(f"reps {reps}, {n} qubits, K {k}: auto picks {choice}, aer/torch {ratio:.2f}")
                cells = f"{1e3 * t['torch']:>10.3f} {1e3 * t['torch-threads']:>13.3f} {1e3 * t['aer']:>10.3f}"
                ratios = f"{ratio:>10.2f} {t['aer'] / t['torch-threads']:>12.2f}"
                print(f"{reps:>4} {n:>6} {k:>4} {cells} {ratios} {choice:>6}", flush=True)
    print(f"\nrows where backend='auto' picked the slower simulator: {len(misses)}")
    for miss in misses:
        print("  " + miss)


if __name__ == "__main__":
    main()
