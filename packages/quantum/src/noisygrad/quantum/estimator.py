"""A Qiskit ``EstimatorV2`` that samples shots for real, with a seed stream and a shot counter.

Drop it in wherever Qiskit takes an estimator (``qiskit_algorithms.VQE``, your own loops)::

    estimator = shot_estimator(shots=1000, seed=7)
    job = estimator.run([(ansatz, hamiltonian, thetas)])   # thetas of shape (K, P): one batched call
    job.result()[0].data.evs, estimator.shots_used

What differs from the stock estimators: Aer's ``EstimatorV2``
never samples shots (it adds Gaussian noise of std ``precision``) and an integer seed makes every call return
the same offset. Here every measurement group is measured ``shots`` times, the variance of an estimate is the
state-dependent ``sum_g Var_g / shots``, and one generator seeded once feeds every call, so calls differ and a
run reproduces. ``stds`` are estimated from the samples. The job is computed when ``run`` is called (in call
order), which keeps the seed stream deterministic.

A ``precision`` (of a PUB, of the call, or the estimator's ``default_precision``) is the standard deviation asked
of each energy estimate, whatever the coefficients: the shots are split over the groups so that even the worst
state meets it (:meth:`~noisygrad.quantum.measurement.MeasurementPlan.shots_for_precision`). Qiskit's
``BackendEstimatorV2`` instead measures ``ceil(1 / precision**2)`` shots per group, which meets the precision only
for unit-norm Paulis (measured on ``tfim(6)`` at a random point of ``efficient_su2(6, reps=1)``: 0.037 where 0.01
was asked; 0.004 with the allocation, whose bound is for the worst state).

Inputs Qiskit's estimators take are taken here too: identity terms are added exactly and cost no shots (an
observable of identity terms only, or the zero operator, costs none at all), final measurements are removed.
A circuit that measures, resets or branches mid-way is refused, as are bad ``precision``, ``seed`` and ``shots``,
before anything runs.

``point_streams=True`` gives every point of a batch its own shot stream, and ``executor=`` / ``workers=`` spread
the points of each batch (a ``(K, P)`` PUB: SPSA's resamplings, a parameter scan) over processes, Ray or Dask
workers, bit-identical to the serial run (:mod:`noisygrad.quantum.sharding`)::

    with shot_estimator(shots=1000, seed=7, point_streams=True, executor="process", workers=2) as estimator:
        estimator.run([(ansatz, hamiltonian, thetas)])
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np
from qiskit import QuantumCircuit
from qiskit.primitives import BaseEstimatorV2
from qiskit.primitives.base.base_primitive_job import BasePrimitiveJob
from qiskit.primitives.containers import DataBin, EstimatorPubLike, PrimitiveResult, PubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.object_array import object_array
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.providers import JobStatus
from qiskit.quantum_info import Pauli, PauliList, SparseObservable, SparsePauliOp

from noisygrad.checks import check_positive_int

from ._spsa_checkpoint import plain, unplain
from .allocation import ShotAllocator, group_variances, optimal_shots
from .backends import SimulatorBackend, make_backend, resolve_device, without_final_measurements
from .measurement import MeasurementPlan
from .sampling import check_noise, check_precision, check_seed, check_shots, sample_energies
from .sharding import make_sharding

CACHE_SIZE = 64  # circuits (and observables) whose simulator (measurement plan) is kept between calls
ALLOCATIONS = ("bound", "variance")
VARIANCE_MIN_SHOTS = 16  # allocation="variance": the floor of shots per group (no group starves)
VARIANCE_DECAY = 0.5  # allocation="variance": the forgetting factor of the running variances (the state moves)


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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """A dict that keeps its ``size`` most recently used entries (a long run that builds a new circuit per call
    must not keep every simulator alive)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: K, value: V) -> V:
        self._items[key] = value
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


def _zero_observable(observable: object) -> SparseObservable | None:
    """A zero-coefficient identity on the observable's qubits if ``observable`` is the zero operator, else None.

    Qiskit refuses a zero observable ("Empty observable was detected"); its value is exactly 0 and it costs no
    shots, so it is kept as this placeholder (one term, so the PUB's qubit-count check still sees its width).
    """
    try:
        if isinstance(observable, Mapping):
            op = SparsePauliOp.from_list([(str(label), coeff) for label, coeff in observable.items()])
        elif isinstance(observable, (SparsePauliOp, Pauli, str)):
            op = SparsePauliOp(observable)
        else:
            return None
    except Exception:  # not a Pauli sum: qiskit's own error stands
        return None
    if np.any(op.simplify(atol=0.0).coeffs != 0):
        return None
    return SparseObservable.from_raw_parts(op.num_qubits, [0.0], [], [], [0, 0])


def _coerce_observable(observable: object) -> SparseObservable:
    """Qiskit's coercion of one observable, except that the zero operator is accepted (:func:`_zero_observable`)."""
    try:
        return ObservablesArray.coerce_observable(observable)
    except ValueError:
        zero = _zero_observable(observable)
        if zero is None:
            raise
        return zero


def coerce_observables(observables: object) -> ObservablesArray:
    """The observables of a PUB as an :class:`ObservablesArray`, as Qiskit coerces them, zero operators included."""
    if isinstance(observables, ObservablesArray):
        return observables
    array = object_array(observables, list_types=(PauliList,))
    for index, observable in np.ndenumerate(array):
        array[index] = _coerce_observable(observable)
    coerced = ObservablesArray(array, copy=False, validate=False)
    coerced.validate()  # every observable on the same number of qubits
    return coerced


def coerce_pub(pub: EstimatorPubLike, precision: float | None) -> EstimatorPub:
    """``pub`` as a validated :class:`EstimatorPub` (``precision`` where it gives none), zero observables allowed."""
    if isinstance(pub, (tuple, list)) and 2 <= len(pub) <= 4:
        pub = (pub[0], coerce_observables(pub[1]), *pub[2:])  # type: ignore[assignment]
    coerced = EstimatorPub.coerce(pub, precision)
    coerced.validate()
    return coerced


@dataclass(frozen=True)
class _Observable:
    """One observable of a PUB: its plan, the shots of each of its groups, the result entries it fills."""

    plan: MeasurementPlan
    shots: np.ndarray  # (G,) int64
    rows: np.ndarray  # flat indices into the PUB's broadcast result


@dataclass(frozen=True)
class _Task:
    """A PUB checked and planned, ready to sample (everything that can fail has been checked)."""

    pub: EstimatorPub
    circuit: QuantumCircuit  # final measurements removed
    values: np.ndarray  # (rows, P): the parameter values, one row per broadcast result entry
    observables: tuple[_Observable, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(self.pub.parameter_values.shape, self.pub.observables.shape)


class ShotEstimator(BaseEstimatorV2):
    """Qiskit ``BaseEstimatorV2`` with real shot sampling per measurement group (see :func:`shot_estimator`).

    Attributes:
        shots_used: shots spent by every call so far (all groups, all points).
        evaluations: energy estimates made so far (one per parameter set and observable).
        calls: backend calls so far (one per distinct observable with measurement groups in a PUB).
    """

    def __init__(
        self,
        *,
        shots: int = 1000,
        seed: int | np.random.Generator | None = None,
        noise: str = "shots",
        backend: str = "auto",
        device: str = "CPU",
        default_precision: float | None = None,
        point_streams: bool = False,
        executor: str | cf.Executor = "serial",
        workers: int | None = None,
        allocation: str = "bound",
    ) -> None:
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
        if allocation == "variance" and (noise != "shots" or point_streams):
            raise ValueError("allocation='variance' needs noise='shots' and point_streams=False")
        self.allocation = allocation
        self._sharding = make_sharding(point_streams, executor, workers, backend)
        self.shots = check_shots("shots", shots)
        self.noise = check_noise(noise)
        self._rng = check_seed(seed)
        self.default_precision = (
            None if default_precision is None else check_precision("default_precision", default_precision, noise)
        )
        self.backend = backend
        self.device = resolve_device(backend, device)  # "CPU", with a DeviceFallbackWarning, if no GPU is here
        self._circuits: _Cache[int, tuple[QuantumCircuit, QuantumCircuit]] = _Cache()
        self._backends: _Cache[int, tuple[QuantumCircuit, SimulatorBackend]] = _Cache()
        self._plans: _Cache[tuple[int, tuple[tuple[str, float], ...]], MeasurementPlan] = _Cache()
        self._noise: _Cache[int, tuple[MeasurementPlan, ShotAllocator]] = _Cache()  # running sigmas per plan
        self.shots_used = 0
        self.evaluations = 0
        self.calls = 0

    def run(self, pubs: Iterable[EstimatorPubLike], *, precision: float | None = None) -> DoneJob:
        """Estimate every PUB ``(circuit, observables, parameter_values[, precision])``.

        A PUB's ``precision`` (else the call's, else ``default_precision``) is the standard deviation asked of
        each estimate: group ``g`` gets ``m_g = ceil(b_g * sum(b) / precision**2)`` shots with ``b_g`` the sum of
        ``|coefficient|`` over its terms, about ``(sum(b) / precision)**2`` shots in all per estimate. Without
        any, every group gets the estimator's ``shots``. With ``noise="exact"`` the precision is not used.
        Every PUB is checked before any is run. ``metadata["shots_per_group"]`` of each result lists, per
        observable (in the flattened observables' order), the shots of each of its groups, and
        ``metadata["groups"]`` their measurement bases (Pauli labels, ``I``: qubit not needed);
        ``metadata["shots"]`` is the most shots any group got (the shots per measured circuit of
        ``BackendEstimatorV2``).
        """
        if precision is not None:
            precision = check_precision("precision", precision, self.noise)
        default = precision if precision is not None else self.default_precision
        tasks = [self._prepare(coerce_pub(pub, default), i) for i, pub in enumerate(pubs)]
        return DoneJob(PrimitiveResult([self._execute(task) for task in tasks], metadata={"version": 2}))

    def state_dict(self) -> dict[str, object]:
        """The shot stream's state and the counters, as plain numbers (``torch.load(weights_only=True)`` reads
        them back): with :meth:`load_state_dict` an estimator continues another's stream bit for bit, which a
        resumed optimizer run needs (its ``fun`` must draw the shots the uninterrupted run would have drawn)."""
        return {
            "rng": plain(self._rng.bit_generator.state),
            "shots_used": int(self.shots_used),
            "evaluations": int(self.evaluations),
            "calls": int(self.calls),
        }

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        """Continue the stream and counters of :meth:`state_dict` (checked before anything changes)."""
        if not isinstance(state, Mapping) or set(state) != {"rng", "shots_used", "evaluations", "calls"}:
            raise ValueError(
                "state must be a ShotEstimator.state_dict() (keys rng, shots_used, evaluations, calls), got "
                + (repr(sorted(state)) if isinstance(state, Mapping) else type(state).__name__)
            )
        counters = {name: state[name] for name in ("shots_used", "evaluations", "calls")}
        for name, value in counters.items():
            check_positive_int(f"state[{name!r}]", value, allow_zero=True)
        trial = np.random.Generator(type(self._rng.bit_generator)())
        try:
            trial.bit_generator.state = unplain(state["rng"])  # type: ignore[assignment]
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"state['rng'] is not a state of this estimator's generator: {exc}") from None
        self._rng.bit_generator.state = trial.bit_generator.state
        self.shots_used, self.evaluations, self.calls = (int(v) for v in counters.values())  # type: ignore[call-overload]

    @property
    def point_streams(self) -> bool:
        """Whether each point samples its shots from its own stream (see :func:`shot_estimator`)."""
        return self._sharding is not None

    def close(self) -> None:
        """Stop the worker processes of ``executor="process"`` (a later call starts new ones); else a no-op."""
        if self._sharding is not None:
            self._sharding.close()

    def __enter__(self) -> ShotEstimator:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _circuit(self, circuit: QuantumCircuit, index: int) -> QuantumCircuit:
        """``circuit`` without its final measurements (checked once per circuit object, then cached)."""
        entry = self._circuits.get(id(circuit))
        if entry is None or entry[0] is not circuit:
            entry = self._circuits.put(id(circuit), (circuit, without_final_measurements(circuit, f"pubs[{index}]")))
        return entry[1]

    def _backend(self, circuit: QuantumCircuit) -> SimulatorBackend:
        entry = self._backends.get(id(circuit))
        if entry is None or entry[0] is not circuit:
            entry = self._backends.put(id(circuit), (circuit, make_backend(circuit, self.backend, self.device)))
        return entry[1]

    def _plan(self, observable: SparseObservable, num_qubits: int) -> MeasurementPlan:
        op = SparsePauliOp.from_sparse_observable(observable.as_paulis())
        key = (num_qubits, tuple(sorted(zip(op.paulis.to_labels(), op.coeffs.real.tolist(), strict=True))))
        plan = self._plans.get(key)
        return plan if plan is not None else self._plans.put(key, MeasurementPlan(op, num_qubits))

    def _tracker(self, plan: MeasurementPlan) -> ShotAllocator:
        """The running noise estimates of ``plan``'s groups (``allocation="variance"``)."""
        entry = self._noise.get(id(plan))
        if entry is None or entry[0] is not plan:
            tracker = ShotAllocator(plan.num_groups, precision=1.0, min_shots=VARIANCE_MIN_SHOTS, decay=VARIANCE_DECAY)
            entry = self._noise.put(id(plan), (plan, tracker))
        return entry[1]

    def _group_shots(self, plan: MeasurementPlan, precision: float | None, index: int) -> np.ndarray:
        """Shots of each group of ``plan``: the estimator's ``shots``, or sized for ``precision``: for every state
        (``allocation="bound"``) or for the groups' measured noise (``"variance"``, capped by the bound's)."""
        if precision is None or self.noise == "exact":
            return np.full(plan.num_groups, self.shots, dtype=np.int64)
        check_precision(f"pubs[{index}] precision", precision, self.noise)
        try:
            bound = plan.shots_for_precision(precision)
        except ValueError as exc:
            raise ValueError(f"pubs[{index}]: {exc}") from None
        if self.allocation == "bound" or not len(bound):
            return bound
        sigmas = self._tracker(plan).sigmas
        if sigmas is None:  # no estimate yet: the bound's allocation, which meets the precision for any state
            return bound
        return np.minimum(optimal_shots(sigmas, precision=precision, min_shots=VARIANCE_MIN_SHOTS), bound)

    def _prepare(self, pub: EstimatorPub, index: int) -> _Task:
        """Check and plan one PUB: its circuit, parameter values, observables and the shots of their groups."""
        circuit = self._circuit(pub.circuit, index)
        p_shape, o_shape = pub.parameter_values.shape, pub.observables.shape
        shape = np.broadcast_shapes(p_shape, o_shape)
        values = pub.parameter_values.as_array(pub.circuit.parameters).reshape(
            int(np.prod(p_shape)), pub.circuit.num_parameters
        )
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"pubs[{index}] parameter_values contain NaN or Inf; every parameter must be a finite number"
            )
        p_index = np.broadcast_to(np.arange(max(values.shape[0], 1)).reshape(p_shape), shape).ravel()
        o_index = np.broadcast_to(np.arange(int(np.prod(o_shape))).reshape(o_shape), shape).ravel()
        observables = []
        for j, idx in enumerate(np.ndindex(o_shape)):
            plan = self._plan(pub.observables.slice(idx), circuit.num_qubits)
            shots = self._group_shots(plan, pub.precision, index)
            observables.append(_Observable(plan, shots, np.flatnonzero(o_index == j)))
        rows = values[p_index] if circuit.num_parameters else np.zeros((len(p_index), 0))
        return _Task(pub, circuit, rows, tuple(observables))

    def _gaussian_std(self, precision: float | None) -> float | None:
        """The noise std of ``noise="gaussian-precision"``: the precision asked, else ``1/sqrt(shots)`` (Aer's)."""
        if self.noise != "gaussian-precision":
            return None
        return precision if precision is not None else 1.0 / math.sqrt(self.shots)

    def _execute(self, task: _Task) -> PubResult:
        """Sample one planned PUB: one backend call per observable that has measurement groups."""
        size = int(np.prod(task.shape))
        evs, stds = np.empty(size), np.empty(size)
        for obs in task.observables:
            if obs.plan.num_groups == 0:  # identity terms only (or zero): exact, no shots, no simulator call
                evs[obs.rows], stds[obs.rows] = obs.plan.constant, 0.0
            elif self.allocation == "variance" and task.pub.precision is not None:
                backend = self._backend(task.circuit)
                counts = backend.counts(task.values[obs.rows], obs.plan, obs.shots, self._rng)
                evs[obs.rows], stds[obs.rows] = obs.plan.estimate(counts, obs.shots)
                self._tracker(obs.plan).update(group_variances(obs.plan, counts, obs.shots), obs.shots)
                self.calls += 1
            elif self._sharding is None:
                evs[obs.rows], stds[obs.rows] = sample_energies(
                    self._backend(task.circuit),
                    obs.plan,
                    task.values[obs.rows],
                    obs.shots,
                    self._rng,
                    self.noise,
                    self._gaussian_std(task.pub.precision),
                )
                self.calls += 1
            else:  # one key from the stream, then a stream per point (sharded over the executor)
                evs[obs.rows], stds[obs.rows] = self._sharding.sample(
                    self._backend(task.circuit),
                    task.circuit,
                    obs.plan,
                    task.values[obs.rows],
                    obs.shots,
                    self._rng,
                    self.noise,
                    self._gaussian_std(task.pub.precision),
                )
                self.calls += 1
            self.evaluations += len(obs.rows)
            self.shots_used += len(obs.rows) * int(obs.shots.sum())
        per_group = [obs.shots.tolist() for obs in task.observables]
        metadata = {
            "shots": max((max(s) for s in per_group if s), default=0),  # per measured circuit, as BackendEstimatorV2
            "shots_per_group": per_group,
            "groups": [[g.basis for g in obs.plan.groups] for obs in task.observables],  # measured bases, same order
            "target_precision": task.pub.precision,
            "noise": self.noise,
        }
        data = DataBin(evs=evs.reshape(task.shape), stds=stds.reshape(task.shape), shape=task.shape)
        return PubResult(data, metadata=metadata)


def shot_estimator(
    shots: int = 1000,
    seed: int | np.random.Generator | None = None,
    *,
    noise: str = "shots",
    backend: str = "auto",
    device: str = "CPU",
    default_precision: float | None = None,
    point_streams: bool = False,
    executor: str | cf.Executor = "serial",
    workers: int | None = None,
    allocation: str = "bound",
) -> ShotEstimator:
    """A Qiskit ``EstimatorV2`` that samples ``shots`` shots of every measurement group for real.

    Args:
        shots: shots per qubit-wise-commuting measurement group per energy estimate (> 0), where no precision is
            asked for.
        seed: ``None``, an int >= 0 or a ``numpy.random.Generator``: seeds ONE generator that feeds every call (a
            stream: successive calls differ, runs reproduce).
        noise: ``"shots"`` (real multinomial sampling, the default), ``"gaussian-precision"`` (exact value plus
            ``N(0, precision**2)``, with ``precision = 1/sqrt(shots)`` where none is asked for: the model of Aer's
            ``EstimatorV2``, named so nobody mistakes it for shots) or ``"exact"``.
        backend: ``"auto"`` (on the CPU a batched torch statevector for supported circuits of up to 14 qubits, and
            up to 20 for calls of at most 2**20 amplitudes, else Aer: the measured crossover; on a GPU torch for any
            size; see :func:`~noisygrad.quantum.backends.make_backend`), ``"torch"``,
            ``"aer"`` (shots drawn from Aer's exact outcome probabilities) or ``"aer-sampler"`` (Aer measures the
            circuits and samples the shots itself: same statistics, slower).
        device: ``"CPU"`` or ``"GPU"``; ``"GPU"`` runs the torch simulator on a CUDA GPU, or Aer's GPU build, and
            falls back to the CPU with a :class:`~noisygrad.quantum.backends.DeviceFallbackWarning` saying what to
            install when neither is present.
        default_precision: the standard deviation asked of each estimate of a PUB that gives no precision (nor
            the call): ``None`` (the default) uses ``shots`` instead. Qiskit's ``StatevectorEstimator`` keyword,
            so ``shot_estimator(noise="exact", seed=42)`` stands in for ``StatevectorEstimator(seed=42)``; with
            ``noise="exact"`` it is not used.
        point_streams: ``False`` (the default): one stream feeds every shot, point after point. ``True``: each
            batch (one observable of one PUB) draws one key from the stream and point ``k`` of it samples from its
            own stream ``SeedSequence(key, spawn_key=(k,))``, so the points can be sharded. Other numbers than the
            default for the same seed; the same numbers whatever ``executor`` and ``workers``. Not with
            ``backend="aer-sampler"``.
        executor: with ``point_streams=True``, where the points of a batch are sampled: ``"serial"``,
            ``"process"`` (a pool of spawned processes, kept until :meth:`ShotEstimator.close` or the end of a
            ``with`` block), ``"ray"``, ``"dask"`` or a ``concurrent.futures.Executor`` (see
            :class:`~noisygrad.quantum.sharding.PointSharding`).
        workers: shards per batch (and the ``"process"`` pool's size); default the CPU count.
        allocation: how a precision is met. ``"bound"`` (the default): shots per group for the worst state
            (:meth:`~noisygrad.quantum.measurement.MeasurementPlan.shots_for_precision`), met whatever the state.
            ``"variance"``: shots per group proportional to each group's running single-shot standard deviation
            (:class:`~noisygrad.quantum.allocation.ShotAllocator`, kept per observable from the shots already
            taken, a floor of 16 shots per group, never more than the bound's), ``(sum sigma)^2 / precision^2`` in
            all: the precision met for states like the ones measured so far (an optimizer's iterates) with the
            fewest shots; the first call of an observable uses the bound. Only with ``noise="shots"``.
    """
    return ShotEstimator(
        shots=shots,
        seed=seed,
        noise=noise,
        backend=backend,
        device=device,
        default_precision=default_precision,
        point_streams=point_streams,
        executor=executor,
        workers=workers,
        allocation=allocation,
    )
