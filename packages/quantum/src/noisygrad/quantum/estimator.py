"""A Qiskit ``EstimatorV2`` that samples shots for real, with a seed stream and a shot counter.

Drop it in wherever Qiskit takes an estimator (``qiskit_algorithms.VQE``, your own loops)::

    estimator = shot_estimator(shots=1000, seed=7)
    job = estimator.run([(ansatz, hamiltonian, thetas)])   # thetas of shape (K, P): one batched call
    job.result()[0].data.evs, estimator.shots_used

What differs from the stock estimators (measured in ``../shared/research/quantum.md``): Aer's ``EstimatorV2``
never samples shots (it adds Gaussian noise of std ``precision``) and an integer seed makes every call return
the same offset. Here every measurement group is measured ``shots`` times, the variance of an estimate is the
state-dependent ``sum_g Var_g / shots``, and one generator seeded once feeds every call, so calls differ and a
run reproduces. ``stds`` are estimated from the samples. The job is computed when ``run`` is called (in call
order), which keeps the seed stream deterministic.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.base.base_primitive_job import BasePrimitiveJob
from qiskit.primitives.containers import DataBin, EstimatorPubLike, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp

from noisygrad._validation import check_positive_int

from .backends import AerBackend, TorchBackend, make_backend, resolve_device
from .measurement import MeasurementPlan
from .sampling import check_noise, sample_energies


class DoneJob(BasePrimitiveJob[PrimitiveResult[PubResult], JobStatus]):
    """A job whose result was computed when it was created (no worker thread: under a busy CPU, starting
    ``PrimitiveJob``'s thread was measured to cost more than a small circuit's whole evaluation)."""

    def __init__(self, result: PrimitiveResult[PubResult]) -> None:
        super().__init__(str(uuid.uuid4()))
        self._result = result

    def result(self) -> PrimitiveResult[PubResult]:
        return self._result

    def status(self) -> JobStatus:
        return JobStatus.DONE

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def in_final_state(self) -> bool:
        return True

    def cancel(self) -> None:
        return None


class ShotEstimator(BaseEstimatorV2):
    """Qiskit ``BaseEstimatorV2`` with real shot sampling per measurement group (see :func:`shot_estimator`).

    Attributes:
        shots_used: shots spent by every call so far (all groups, all points).
        evaluations: energy estimates made so far (one per parameter set and observable).
        calls: backend calls so far (one per distinct observable in a PUB).
    """

    def __init__(
        self,
        *,
        shots: int = 1000,
        seed: int | np.random.Generator | None = None,
        noise: str = "shots",
        backend: str = "auto",
        device: str = "CPU",
    ) -> None:
        self.shots = check_positive_int("shots", shots)
        self.noise = check_noise(noise)
        self.backend = backend
        self.device = resolve_device(backend, device)  # "CPU", with a DeviceFallbackWarning, if no GPU is here
        self._rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._backends: dict[int, tuple[QuantumCircuit, TorchBackend | AerBackend]] = {}
        self._plans: dict[tuple[tuple[str, float], ...], MeasurementPlan] = {}
        self.shots_used = 0
        self.evaluations = 0
        self.calls = 0

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> DoneJob:
        """Estimate every PUB ``(circuit, observables, parameter_values[, precision])``.

        A PUB's ``precision`` (or the call's) asks for ``ceil(1 / precision**2)`` shots per group, as in
        Qiskit's ``BackendEstimatorV2``; without one, the estimator's ``shots`` are used.
        """
        coerced = [EstimatorPub.coerce(pub, precision) for pub in pubs]
        for pub in coerced:
            pub.validate()
        return DoneJob(PrimitiveResult([self._run_pub(pub) for pub in coerced], metadata={"version": 2}))

    def _backend(self, circuit: QuantumCircuit) -> TorchBackend | AerBackend:
        entry = self._backends.get(id(circuit))
        if entry is None or entry[0] is not circuit:
            entry = (circuit, make_backend(circuit, self.backend, self.device))
            self._backends[id(circuit)] = entry
        return entry[1]

    def _plan(self, observable: dict[str, float], num_qubits: int) -> MeasurementPlan:
        key = tuple(sorted(observable.items()))
        if key not in self._plans:
            self._plans[key] = MeasurementPlan(SparsePauliOp.from_list(list(observable.items())), num_qubits)
        return self._plans[key]

    def _run_pub(self, pub: EstimatorPub) -> PubResult:
        shots = self.shots if pub.precision is None else math.ceil(1.0 / pub.precision**2)
        circuit = pub.circuit
        backend = self._backend(circuit)
        p_shape, o_shape = pub.parameter_values.shape, pub.observables.shape
        shape = np.broadcast_shapes(p_shape, o_shape)
        values = pub.parameter_values.as_array(circuit.parameters).reshape(
            int(np.prod(p_shape)), circuit.num_parameters
        )
        if not np.all(np.isfinite(values)):
            raise ValueError("parameter_values contain NaN or Inf; every parameter of the PUB must be a finite number")
        p_index = np.broadcast_to(np.arange(max(values.shape[0], 1)).reshape(p_shape), shape).ravel()
        o_index = np.broadcast_to(np.arange(int(np.prod(o_shape))).reshape(o_shape), shape).ravel()
        observables = [pub.observables[idx] for idx in np.ndindex(o_shape)]
        evs = np.empty(len(p_index))
        stds = np.empty(len(p_index))
        for j in np.unique(o_index):
            rows = np.flatnonzero(o_index == j)
            plan = self._plan(observables[j], circuit.num_qubits)
            points = values[p_index[rows]] if circuit.num_parameters else np.zeros((len(rows), 0))
            evs[rows], stds[rows] = sample_energies(backend, plan, points, shots, self._rng, self.noise)
            self.calls += 1
            self.evaluations += len(rows)
            self.shots_used += len(rows) * shots * plan.num_groups
        data = DataBin(evs=evs.reshape(shape), stds=stds.reshape(shape), shape=shape)
        return PubResult(data, metadata={"shots": shots, "target_precision": pub.precision, "noise": self.noise})


def shot_estimator(
    shots: int = 1000,
    seed: int | np.random.Generator | None = None,
    *,
    noise: str = "shots",
    backend: str = "auto",
    device: str = "CPU",
) -> ShotEstimator:
    """A Qiskit ``EstimatorV2`` that samples ``shots`` shots of every measurement group for real.

    Args:
        shots: shots per qubit-wise-commuting measurement group per energy estimate (> 0).
        seed: seeds ONE generator that feeds every call (a stream: successive calls differ, runs reproduce).
        noise: ``"shots"`` (real multinomial sampling, the default), ``"gaussian-precision"`` (exact value plus
            ``N(0, 1/shots)``, the model of Aer's ``EstimatorV2``; named so nobody mistakes it for shots) or
            ``"exact"``.
        backend: ``"auto"`` (a batched torch statevector for supported circuits of up to 12 qubits on the CPU and
            of any size on a GPU, else Aer; see :func:`~noisygrad.quantum.backends.make_backend`), ``"torch"``,
            ``"aer"`` (shots drawn from Aer's exact outcome probabilities) or ``"aer-sampler"`` (Aer measures the
            circuits and samples the shots itself: same statistics, slower).
        device: ``"CPU"`` or ``"GPU"``; ``"GPU"`` runs the torch simulator on a CUDA GPU, or Aer's GPU build, and
            falls back to the CPU with a :class:`~noisygrad.quantum.backends.DeviceFallbackWarning` saying what to
            install when neither is present.
    """
    return ShotEstimator(shots=shots, seed=seed, noise=noise, backend=backend, device=device)
