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

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ControlFlowOp

from noisygrad.checks import warn

from ._statevector import TorchStatevector, unsupported
from .measurement import MeasurementPlan

# The CPU rule of backend="auto", from benchmarks/quantum_backend_crossover.py (figures in the README). Up to 14
# qubits Aer simulates on one thread (below SMALL_CIRCUIT_QUBITS we ask it to: thread start-up costs more than the
# simulation; at 14 its statevector_parallel_threshold still keeps the gates serial), and so does torch here, and
# torch was 1.2-19x faster at every batch size (1-200 points) and depth measured: torch at any batch. From 15
# qubits Aer parallelises every gate and the balance turns with the batch: torch stayed 1.1-2.4x faster while a
# call held at most TORCH_MAX_AMPLITUDES amplitudes (K points x 2**n; 15-20 qubits), Aer 1.2-2.2x faster above
# (15 qubits at 64 points, 16 at 32, 17 at 8, 20 at 2), with misses of at most 1.3x next to the line.
SMALL_CIRCUIT_QUBITS = 14  # Aer runs on one thread below this
TORCH_MAX_QUBITS = 14  # torch for every batch, on one thread, up to here
TORCH_MAX_AMPLITUDES = 2**20  # above: torch while K * 2**n <= this (so never above 20 qubits), else Aer
_SEED_RANGE = 2**31 - 1
_NO_STATE_CHANGE = {"barrier", "delay"}


def non_unitary(circuit: QuantumCircuit) -> str | None:
    """Why ``circuit`` does not prepare one pure state deterministically (``None`` if it does).

    Refused: measurements, instructions on classical bits or variables, control flow, and resets (or
    ``initialize``, which starts with one) of a qubit a gate has already acted on. On a simulator these collapse
    the state to a random branch, which an estimator would then report as if it were the state. A reset of a
    fresh qubit leaves ``|0>`` as it is and is accepted.
    """
    touched: set[int] = set()
    for index, inst in enumerate(circuit.data):
        op = inst.operation
        qubits = {circuit.find_bit(q).index for q in inst.qubits}
        if isinstance(op, ControlFlowOp) or inst.clbits or op.name in ("measure", "store"):
            rest = circuit.data[index:]
            if all(later.operation.name in ("measure", "barrier") for later in rest):  # only measurements follow
                return (
                    f"has final measurements (a {op.name!r} at instruction {index}); the energy is taken from the "
                    "state before any measurement: pass circuit.remove_final_measurements(inplace=False)"
                )
            return f"has a mid-circuit {op.name!r} (instruction {index}): measurements, classical bits and control flow"
        if op.name in ("reset", "initialize") and touched & qubits:
            return (
                f"resets qubits {sorted(touched & qubits)} after gates acted on them ({op.name!r}, instruction {index})"
            )
        if op.name not in _NO_STATE_CHANGE:
            touched |= qubits
    return None


def without_final_measurements(circuit: QuantumCircuit, name: str = "circuit") -> QuantumCircuit:
    """``circuit`` with its final measurements removed (a copy; ``circuit`` itself when it has none), as Qiskit's
    estimators expect; a ``ValueError`` naming ``name`` and the circuit if anything non-unitary is left
    (:func:`non_unitary`)."""
    has_measurements = any(inst.operation.name == "measure" for inst in circuit.data)
    stripped = circuit.remove_final_measurements(inplace=False) if has_measurements else circuit
    reason = non_unitary(stripped)
    if reason is not None:
        raise ValueError(
            f"{name} {circuit.name!r} {reason}. An estimator needs the state before any measurement: only final "
            "measurements are allowed (they are removed), no mid-circuit measurement, reset or classical condition"
        )
    return stripped


class DeviceFallbackWarning(UserWarning):
    """``device="GPU"`` was asked for but no GPU simulator is installed; the circuits run on the CPU."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch's intra-op thread count set to ``threads`` (``None``: leave it), then restore it."""
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TorchBackend:
    """Exact probabilities from :class:`TorchStatevector`; counts drawn from them (multinomial).

    On the CPU, circuits of up to :data:`TORCH_MAX_QUBITS` qubits run on one torch thread (:attr:`threads`), as
    Aer's do: with another process busy on a 2-core machine, torch's OpenMP kernels on these small states were
    measured 10-25x slower with 2 threads than with one (a thread of the team waits for a busy core at every
    kernel); on the same machine idle, 2 threads gained at most 2.2x (50 points at 10-14 qubits).

    Args:
        circuit: the ansatz (no measurements).
        device: ``"CPU"`` or ``"GPU"`` (the current CUDA device of torch).
    """

    name = "torch"

    def __init__(self, circuit: QuantumCircuit, device: str = "CPU") -> None:
        check_backend("torch", device)
        self.device = device
        self.simulator = TorchStatevector(circuit, "cuda" if device == "GPU" else "cpu")
        self.threads: int | None = 1 if device == "CPU" and circuit.num_qubits <= TORCH_MAX_QUBITS else None

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray:
        with torch_threads(self.threads):
            return plan.probabilities(self.simulator.states(values))

    def counts(
        self, values: np.ndarray, plan: MeasurementPlan, shots: int | np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Outcome counts ``(K, G, 2**n)`` with ``shots`` (an int or one per group) shots of every group."""
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

        reason = non_unitary(circuit)
        if reason is not None:
            raise ValueError(f"circuit {circuit.name!r} {reason}; remove them (Aer would sample a collapsed branch)")
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

    def _run(self, values: np.ndarray, bases: list[str], sample: bool, **options: object) -> list[object]:
        """Aer's results for the groups measured in ``bases`` at every row of ``values``, group-major
        (experiment ``j * K + i`` is group ``j`` at point ``i``)."""
        circuits = [self._measured(basis, sample) for basis in bases]
        if not circuits:
            return []
        params = list(self.circuit.parameters)
        binds = [{p: values[:, i] for i, p in enumerate(params)}] * len(circuits) if params else None
        if params:
            result = self.simulator.run(circuits, parameter_binds=binds, **options).result()
        else:
            result = self.simulator.run([c for c in circuits for _ in range(len(values))], **options).result()
        return [result.results[i] for i in range(len(circuits) * len(values))]

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray:
        k, n = len(values), plan.num_qubits
        out = np.empty((k, plan.num_groups, 2**n))
        experiments = self._run(values, [g.basis for g in plan.groups], sample=False, shots=1)
        for j in range(plan.num_groups):
            for i in range(k):
                out[i, j] = experiments[j * k + i].data.probabilities  # type: ignore[attr-defined]
        return out

    def counts(
        self, values: np.ndarray, plan: MeasurementPlan, shots: int | np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Outcome counts ``(K, G, 2**n)`` with ``shots`` (an int or one per group) shots of every group."""
        if not self.sampler:
            return plan.sample_counts(self.probabilities(values, plan), shots, rng)
        k, n = len(values), plan.num_qubits
        per_group = np.broadcast_to(np.asarray(shots, dtype=np.int64), (plan.num_groups,))
        out = np.zeros((k, plan.num_groups, 2**n), dtype=np.int64)
        offset = self.circuit.num_clbits  # measure_all writes after the circuit's own (idle) classical bits
        for m in np.unique(per_group):  # one Aer call per distinct shot count: one when every group has the same
            groups = np.flatnonzero(per_group == m)
            seed = int(rng.integers(_SEED_RANGE))
            bases = [plan.groups[j].basis for j in groups]
            experiments = self._run(values, bases, sample=True, shots=int(m), seed_simulator=seed)
            for jj, j in enumerate(groups):
                for i in range(k):
                    hex_counts = experiments[jj * k + i].data.counts  # type: ignore[attr-defined]
                    for outcome, c in hex_counts.items():
                        out[i, j, (int(outcome, 16) >> offset) & (2**n - 1)] = c
        return out


class AutoBackend:
    """``backend="auto"`` on the CPU for 15-20 qubits: each call goes to torch when it holds at most
    :data:`TORCH_MAX_AMPLITUDES` amplitudes (``K * 2**n``), else to Aer (the measured crossover; each simulator
    is built on its first call). Both give the same exact probabilities, to rounding.

    Args:
        circuit: the ansatz (no measurements), one that :class:`TorchStatevector` supports.
    """

    name = "auto"

    def __init__(self, circuit: QuantumCircuit) -> None:
        self.circuit = circuit
        self.device = "CPU"
        self._torch: TorchBackend | None = None
        self._aer: AerBackend | None = None

    def pick(self, points: int) -> TorchBackend | AerBackend:
        """The simulator for a call with ``points`` parameter sets."""
        if points * 2**self.circuit.num_qubits <= TORCH_MAX_AMPLITUDES:
            self._torch = self._torch or TorchBackend(self.circuit)
            return self._torch
        self._aer = self._aer or AerBackend(self.circuit)
        return self._aer

    def probabilities(self, values: np.ndarray, plan: MeasurementPlan) -> np.ndarray:
        return self.pick(len(values)).probabilities(values, plan)

    def counts(
        self, values: np.ndarray, plan: MeasurementPlan, shots: int | np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Outcome counts ``(K, G, 2**n)`` with ``shots`` (an int or one per group) shots of every group."""
        return self.pick(len(values)).counts(values, plan, shots, rng)


SimulatorBackend = TorchBackend | AerBackend | AutoBackend

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
    warn(  # attributed to the user's line, through however many of our calls it came
        f"device='GPU' with backend={backend!r}: {'; and '.join(missing)}. Running on the CPU.",
        DeviceFallbackWarning,
    )
    return "CPU"


def _cpu_choice(circuit: QuantumCircuit, reason: str | None) -> str:
    """``"torch"``, ``"auto"`` (per call, :class:`AutoBackend`) or ``"aer"`` for ``circuit`` on the CPU."""
    if reason is not None or 2**circuit.num_qubits > TORCH_MAX_AMPLITUDES:
        return "aer"
    return "torch" if circuit.num_qubits <= TORCH_MAX_QUBITS else "auto"


def make_backend(circuit: QuantumCircuit, backend: str = "auto", device: str = "CPU") -> SimulatorBackend:
    """The simulator for ``circuit``: ``"auto"``, ``"torch"``, ``"aer"``, or ``"aer-sampler"`` (Aer samples the
    shots itself), on ``device`` (``"CPU"`` or ``"GPU"``; see :func:`resolve_device` for the fallback).

    ``"auto"`` on the CPU follows the crossover measured by ``benchmarks/quantum_backend_crossover.py`` (see
    :data:`TORCH_MAX_AMPLITUDES`) for circuits the torch simulator supports: torch up to :data:`TORCH_MAX_QUBITS`
    (14) qubits, an :class:`AutoBackend` that picks torch or Aer per call by the batch size from 15 to 20 qubits,
    Aer above (and for circuits torch cannot run). On the GPU it takes torch (CUDA) for every supported circuit,
    else Aer's GPU build, else Aer on the CPU. A circuit that measures, resets or branches mid-way is refused with a
    ``ValueError`` (:func:`non_unitary`).
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
                warn(
                    f"device='GPU': the torch simulator cannot run this circuit ({reason}) and {_NO_AER_GPU}. "
                    "Running on the CPU with Aer.",
                    DeviceFallbackWarning,
                )
                backend, device = "aer", "CPU"
        else:
            backend = _cpu_choice(circuit, reason)
    if backend == "auto":
        return AutoBackend(circuit)
    if backend == "torch":
        return TorchBackend(circuit, device)
    return AerBackend(circuit, device, sampler=backend == "aer-sampler")
