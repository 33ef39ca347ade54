"""The VQE energy as a :class:`noisygrad.NoisyBlackBox`: ``<psi(theta)| H |psi(theta)>`` measured with shots.

Each evaluation costs ``shots`` shots of every measurement group (identity terms need none), so the
objective's ``cost_per_evaluation`` is ``shots * num_groups`` shots, and the core's estimators and loop count
shots correctly. The objective also keeps its own running totals (``evaluations``, ``shots_used``), which
include every evaluation made through it (calibration, blocking, final estimates).

With ``point_streams=True`` every point of a batch samples its shots from its own stream, and ``executor=`` /
``workers=`` spread the points of each batch (parameter shift's ``2P`` points, SPSA's resamplings, a parameter
scan) over processes, Ray or Dask workers, bit-identical to the serial run (:mod:`noisygrad.quantum.sharding`).
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from types import TracebackType

import numpy as np
import torch
from qiskit import QuantumCircuit

from noisygrad import NoisyBlackBox
from noisygrad.checks import check_positive_int
from noisygrad.rng import numpy_from_torch

from .allocation import ShotAllocator, group_variances
from .backends import make_backend, non_unitary
from .measurement import MeasurementPlan
from .sampling import check_noise, sample_energies
from .sharding import make_sharding


def check_ansatz(ansatz: object) -> QuantumCircuit:
    if not isinstance(ansatz, QuantumCircuit):
        raise TypeError(f"ansatz must be a qiskit QuantumCircuit, got {type(ansatz).__name__}")
    if ansatz.num_parameters == 0:
        raise ValueError("ansatz must have at least one free parameter to optimise, got none")
    reason = non_unitary(ansatz)
    if reason is not None:  # a simulator would return the energy of one random collapsed branch
        raise ValueError(f"ansatz {ansatz.name!r} {reason}")
    return ansatz


class EnergyObjective(NoisyBlackBox):
    """The energy of ``hamiltonian`` in the state prepared by ``ansatz``, estimated with shots.

    Args:
        hamiltonian: a Hermitian :class:`~qiskit.quantum_info.SparsePauliOp` on the ansatz's qubits.
        ansatz: a parameterised circuit without measurements; its ``parameters`` (in Qiskit's order) are
            the coordinates of a point.
        shots: shots per measurement group per evaluation, an integer > 0.
        noise: ``"shots"`` (real sampling), ``"gaussian-precision"`` or ``"exact"`` (see
            :mod:`noisygrad.quantum.sampling`).
        backend: ``"auto"`` (torch statevector for small circuits, else Aer), ``"torch"``, ``"aer"`` or
            ``"aer-sampler"`` (see :func:`~noisygrad.quantum.shot_estimator`).
        device: ``"CPU"`` or ``"GPU"`` (torch on a CUDA GPU, else Aer with ``qiskit-aer-gpu``, else the CPU with
            a warning; see :func:`~noisygrad.quantum.backends.make_backend`).
        point_streams: ``False`` (the default): the shots of a call come from one stream, point after point.
            ``True``: each call draws one key from the caller's generator and point ``k`` samples from its own
            stream (:func:`~noisygrad.quantum.sharding.point_generator`), which lets the points be sharded. Other
            numbers than the default, for the same seed; the same numbers whatever ``executor`` and ``workers``.
        executor: where the points of a call are sampled, with ``point_streams=True``: ``"serial"`` (this process,
            one simulator call), ``"process"`` (a pool of spawned processes kept until :meth:`close`), ``"ray"``,
            ``"dask"`` or a ``concurrent.futures.Executor`` (see :class:`~noisygrad.quantum.sharding.PointSharding`).
        workers: shards per call (and the ``"process"`` pool's size); default the CPU count.
        allocation: ``None`` (the default: ``shots`` for every group) or a
            :class:`~noisygrad.quantum.allocation.ShotAllocator` for this Hamiltonian's groups: each call then
            measures group ``g`` with the allocator's ``m_g`` (proportional to the group's running noise estimate,
            for a target precision or a shot budget) and feeds it the groups' sample variances. Only with
            ``noise="shots"`` and without ``point_streams``.

    Use it as a context manager (or call :meth:`close`) to stop a ``"process"`` pool.
    """

    def __init__(
        self,
        hamiltonian: object,
        ansatz: QuantumCircuit,
        *,
        shots: int = 1000,
        noise: str = "shots",
        backend: str = "auto",
        device: str = "CPU",
        point_streams: bool = False,
        executor: str | cf.Executor = "serial",
        workers: int | None = None,
        allocation: ShotAllocator | None = None,
    ) -> None:
        self.sharding = make_sharding(point_streams, executor, workers, backend)
        self.ansatz = check_ansatz(ansatz)
        self.plan = MeasurementPlan(hamiltonian, ansatz.num_qubits)  # type: ignore[arg-type]
        if self.plan.num_groups == 0:
            raise ValueError("hamiltonian has only identity terms: its energy does not depend on the parameters")
        self.shots = check_positive_int("shots", shots)
        self.noise = check_noise(noise)
        self.backend = make_backend(ansatz, backend, device)
        self.num_parameters = ansatz.num_parameters
        self.evaluations = 0
        self.shots_used = 0
        self.last_stds = np.zeros(0)
        self.allocation = self._check_allocation(allocation, noise, point_streams)
        self.last_group_shots = np.full(self.plan.num_groups, self.shots, dtype=np.int64)
        super().__init__(self._sample, cost_per_evaluation=self.shots_per_evaluation, cost_unit="shots")

    def _check_allocation(
        self, allocation: ShotAllocator | None, noise: str, point_streams: bool
    ) -> ShotAllocator | None:
        if allocation is None:
            return None
        if not isinstance(allocation, ShotAllocator):
            raise TypeError(f"allocation must be None or a ShotAllocator, got {type(allocation).__name__}")
        if allocation.num_groups != self.plan.num_groups:
            raise ValueError(
                f"allocation has {allocation.num_groups} groups but the hamiltonian has {self.plan.num_groups}"
            )
        if noise != "shots" or point_streams:
            raise ValueError("allocation needs noise='shots' and point_streams=False")
        return allocation

    @property
    def shots_per_evaluation(self) -> int:
        """Shots one energy estimate costs: ``shots`` per measurement group."""
        return self.shots * self.plan.num_groups

    def points(self, values: object, name: str = "parameters") -> np.ndarray:
        """``values`` as a ``(K, P)`` float array, checked for the parameter count and finiteness."""
        arr = np.array(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, dtype=float)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.num_parameters:
            raise ValueError(
                f"{name} must have {self.num_parameters} entries per point (the ansatz's parameters), "
                f"got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contain NaN or Inf")
        return arr

    def sample(self, values: object, rng: np.random.Generator, shots: int | None = None) -> np.ndarray:
        """Noisy energies at the rows of ``values`` (one backend call); counted in the running totals."""
        points = self.points(values)
        if self.allocation is not None and shots is None:
            return self._sample_allocated(points, rng)
        shots = self.shots if shots is None else check_positive_int("shots", shots)
        if self.sharding is None:
            energies, stds = sample_energies(self.backend, self.plan, points, shots, rng, self.noise)
        else:
            energies, stds = self.sharding.sample(self.backend, self.ansatz, self.plan, points, shots, rng, self.noise)
        self.evaluations += len(points)
        self.shots_used += len(points) * shots * self.plan.num_groups
        self.last_stds = stds
        return energies

    def _sample_allocated(self, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Energies with the allocator's shots per group; the groups' sample variances update the allocator."""
        assert self.allocation is not None
        group_shots = self.allocation.shots()
        counts = self.backend.counts(points, self.plan, group_shots, rng)
        energies, stds = self.plan.estimate(counts, group_shots)
        self.allocation.update(group_variances(self.plan, counts, group_shots), group_shots)
        self.evaluations += len(points)
        self.shots_used += len(points) * int(group_shots.sum())
        self.last_stds = stds
        self.last_group_shots = group_shots
        self.cost_per_evaluation = float(group_shots.sum())
        return energies

    @property
    def point_streams(self) -> bool:
        """Whether each point samples its shots from its own stream (see the class)."""
        return self.sharding is not None

    def close(self) -> None:
        """Stop the worker processes of ``executor="process"`` (a later call starts new ones); else a no-op."""
        if self.sharding is not None:
            self.sharding.close()

    def __enter__(self) -> EnergyObjective:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _sample(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.as_tensor(self.sample(points, numpy_from_torch(generator)), dtype=points.dtype)

    def exact(self, values: object) -> np.ndarray:
        """Noise-free energies (statevector) at the rows of ``values``; free, not counted as shots."""
        points = self.points(values)
        return self.plan.exact(self.backend.probabilities(points, self.plan))

    def variance(self, values: object) -> np.ndarray:
        """The single-shot variance ``sum_g Var_g`` at the rows of ``values``: ``Var[estimate] = this / shots``."""
        points = self.points(values)
        return self.plan.variance(self.backend.probabilities(points, self.plan))

    def predicted_std(self, values: object, shots: int | None = None) -> np.ndarray:
        """The standard deviation of one energy estimate, ``sqrt(sum_g Var_g / shots)``."""
        s = self.shots if shots is None else shots
        if self.noise == "exact":
            return np.zeros(len(self.points(values)))
        if self.noise == "gaussian-precision":
            return np.full(len(self.points(values)), 1.0 / math.sqrt(s))
        return np.sqrt(self.variance(values) / s)
