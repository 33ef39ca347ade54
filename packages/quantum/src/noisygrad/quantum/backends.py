"""Where the circuits run: a batched torch statevector for small circuits, Qiskit Aer for the rest.

Both give, for a batch of parameter sets and a :class:`~noisygrad.quantum.measurement.MeasurementPlan`,
the exact outcome probabilities of every measurement group and shot counts of every group, drawn from those
distributions (multinomial, from the caller's generator). With ``sampler=True`` the Aer backend instead lets
Aer measure the circuits and sample the shots itself (``AerSimulator.run`` with ``shots`` and a fresh
``seed_simulator`` drawn from the caller's generator for every call, so successive calls differ and a seeded
run reproduces); the statistics are the same, and it was measured about 10x slower (Aer builds every shot's
outcome string). Every point of a call goes to the simulator in one call (one batch of parameter bindings).

``device="GPU"`` runs the torch simulator on a CUDA GPU when torch sees one (any circuit it supports), else
Aer's GPU build (``qiskit-aer-gpu``); where neither is present it warns with a
:class:`DeviceFallbackWarning` that says what to install, and runs on the CPU.
"""

from __future__ import annotations

import warnings
from typing import Protocol

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile

from ._statevector import TorchStatevector, unsupported
from .measurement import MeasurementPlan

TORCH_MAX_QUBITS = 12  # measured: from about 12 qubits Aer is faster than the einsum simulator on CPU
SMALL_CIRCUIT_QUBITS = 14
_SEED_RANGE = 2**31 - 1


class Backend(Protocol):
    name: str

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray: ...

    def counts(self, values: np.ndarray, plan: MeasurementPlan, shots: int, rng: np.random.Generator) -> np.ndarray: ...


class DeviceFallbackWarning(UserWarning):
    """``device="GPU"`` was asked for but no GPU simulator is installed; the circuits run on the CPU."""


class TorchBackend:
    """Exact probabilities from :class:`TorchStatevector`; counts drawn from them (multinomial).

    Args:
        circuit: the ansatz (no measurements).
        device: ``"CPU"`` or ``"GPU"`` (the current CUDA device of torch).
    """

    name = "torch"

    def __init__(self, circuit: QuantumCircuit, device: str = "CPU") -> None:
        check_backend("torch", device)
        self.device = device
        self.simulator = TorchStatevector(circuit, "cuda" if device == "GPU" else "cpu")

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray:
        return plan.probabilities(self.simulator.states(values))

    def counts(self, values: np.ndarray, plan: MeasurementPlan, shots: int, rng: np.random.Generator) -> np.ndarray:
        return plan.sample_counts(self.probabilities(values, plan), shots, rng)


def gpu_available() -> bool:
    """Whether the installed Qiskit Aer can simulate on a GPU (the ``qiskit-aer-gpu`` build)."""
    from qiskit_aer import AerSimulator

    return "GPU" in AerSimulator().available_devices()


class AerBackend:
    """Qiskit Aer: measured circuits sampled by Aer, exact probabilities by ``save_probabilities``.

    Args:
        circuit: the ansatz (no measurements).
        device: ``"CPU"`` or ``"GPU"`` (needs ``qiskit-aer-gpu`` in place of ``qiskit-aer``).
        sampler: let Aer sample the shots of measured circuits (else: multinomial draws from Aer's exact
            outcome probabilities, the same statistics).
    """

    name = "aer"

    def __init__(self, circuit: QuantumCircuit, device: str = "CPU", *, sampler: bool = False) -> None:
        from qiskit_aer import AerSimulator

        if device not in ("CPU", "GPU"):
            raise ValueError(f"device must be 'CPU' or 'GPU', got {device!r}")
        if device == "GPU" and not gpu_available():
            raise RuntimeError(f"device='GPU': {_NO_AER_GPU}; use make_backend, which falls back to the CPU")
        self.device = device
        # For small circuits on a CPU, Aer's thread start-up costs more than the simulation (measured 6x here).
        threads = {"max_parallel_threads": 1} if device == "CPU" and circuit.num_qubits < SMALL_CIRCUIT_QUBITS else {}
        self.simulator = AerSimulator(method="statevector", device=device, **threads)
        self.circuit = circuit
        self.sampler = bool(sampler)
        self._cache: dict[tuple[str, bool], QuantumCircuit] = {}

    def _measured(self, basis: str, sample: bool) -> QuantumCircuit:
        key = (basis, sample)
        if key not in self._cache:
            from qiskit_aer.library import SaveProbabilities

            qc = self.circuit.copy()
            n = qc.num_qubits
            for i, ch in enumerate(basis):
                q = n - 1 - i
                if ch == "Y":
                    qc.sdg(q)
                if ch in "XY":
                    qc.h(q)
            if sample:
                qc.measure_all()
            else:
                qc.append(SaveProbabilities(n), qc.qubits)
            self._cache[key] = transpile(qc, self.simulator, optimization_level=0)
        return self._cache[key]

    def _run(self, values: np.ndarray, plan: MeasurementPlan, sample: bool, **options: object) -> list[object]:
        circuits = [self._measured(g.basis, sample) for g in plan.groups]
        if not circuits:
            return []
        params = list(self.circuit.parameters)
        binds = [{p: values[:, i] for i, p in enumerate(params)}] * len(circuits) if params else None
        if params:
            result = self.simulator.run(circuits, parameter_binds=binds, **options).result()
        else:
            # group-major, as the readers below index results (experiment j * k + i)
            result = self.simulator.run([c for c in circuits for _ in range(len(values))], **options).result()
        return [result.results[i] for i in range(len(circuits) * len(values))]

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray:
        k, n = len(values), plan.num_qubits
        out = np.empty((k, plan.num_groups, 2**n))
        experiments = self._run(values, plan, sample=False, shots=1)
        for j in range(plan.num_groups):
            for i in range(k):
                out[i, j] = experiments[j * k + i].data.probabilities  # type: ignore[attr-defined]
        return out

    def counts(self, values: np.ndarray, plan: MeasurementPlan, shots: int, rng: np.random.Generator) -> np.ndarray:
        if not self.sampler:
            return plan.sample_counts(self.probabilities(values, plan), shots, rng)
        k, n = len(values), plan.num_qubits
        out = np.zeros((k, plan.num_groups, 2**n), dtype=np.int64)
        seed = int(rng.integers(_SEED_RANGE))
        experiments = self._run(values, plan, sample=True, shots=shots, seed_simulator=seed)
        for j in range(plan.num_groups):
            for i in range(k):
                hex_counts = experiments[j * k + i].data.counts  # type: ignore[attr-defined]
                for outcome, c in hex_counts.items():
                    out[i, j, int(outcome, 16)] = c
        return out


BACKENDS = ("auto", "torch", "aer", "aer-sampler")
DEVICES = ("CPU", "GPU")
_NO_AER_GPU = (
    "this qiskit-aer has no GPU support (install the GPU build, which replaces it: "
    "pip uninstall -y qiskit-aer && pip install qiskit-aer-gpu; CUDA 12, x86_64 Linux)"
)
_NO_TORCH_GPU = "torch sees no CUDA GPU (torch.cuda.is_available() is False)"


def check_backend(backend: str, device: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")


def resolve_device(backend: str, device: str) -> str:
    """The device the circuits of ``backend`` will run on: ``device``, or ``"CPU"`` with a warning.

    ``"GPU"`` is kept when a GPU simulator for ``backend`` is installed: torch with CUDA for ``"torch"``, Aer's
    GPU build for ``"aer"`` and ``"aer-sampler"``, either for ``"auto"``. Otherwise a
    :class:`DeviceFallbackWarning` says what is missing and how to get it, and ``"CPU"`` is returned.
    """
    check_backend(backend, device)
    if device == "CPU":
        return "CPU"
    missing = []  # the GPU simulators this backend could use, when none of them is installed
    if backend in ("torch", "auto") and not torch.cuda.is_available():
        missing.append(_NO_TORCH_GPU)
    if backend != "torch" and not gpu_available():
        missing.append(_NO_AER_GPU)
    if len(missing) < (2 if backend == "auto" else 1):
        return "GPU"
    warnings.warn(
        f"device='GPU' with backend={backend!r}: {'; and '.join(missing)}. Running on the CPU.",
        DeviceFallbackWarning,
        stacklevel=3,
    )
    return "CPU"


def make_backend(circuit: QuantumCircuit, backend: str = "auto", device: str = "CPU") -> TorchBackend | AerBackend:
    """The simulator for ``circuit``: ``"auto"``, ``"torch"``, ``"aer"``, or ``"aer-sampler"`` (Aer samples the
    shots itself), on ``device`` (``"CPU"`` or ``"GPU"``; see :func:`resolve_device` for the fallback).

    ``"auto"`` on the CPU takes torch for supported circuits up to :data:`TORCH_MAX_QUBITS` qubits, else Aer. On
    the GPU it takes torch (CUDA) for every supported circuit, else Aer's GPU build, else Aer on the CPU.
    """
    device = resolve_device(backend, device)
    if backend == "auto":
        reason = unsupported(circuit)
        if device == "GPU":
            if reason is None and torch.cuda.is_available():
                backend = "torch"
            elif gpu_available():
                backend = "aer"
            else:
                warnings.warn(
                    f"device='GPU': the torch simulator cannot run this circuit ({reason}) and {_NO_AER_GPU}. "
                    "Running on the CPU with Aer.",
                    DeviceFallbackWarning,
                    stacklevel=2,
                )
                backend, device = "aer", "CPU"
        else:
            backend = "torch" if reason is None and circuit.num_qubits <= TORCH_MAX_QUBITS else "aer"
    if backend == "torch":
        return TorchBackend(circuit, device)
    return AerBackend(circuit, device, sampler=backend == "aer-sampler")
