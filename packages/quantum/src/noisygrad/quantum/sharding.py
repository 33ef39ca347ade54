"""Point sharding: the points of one batched energy evaluation spread over processes, Ray or Dask workers.

By default an estimator draws every shot of a call from ONE generator stream: the shots of point ``k`` follow
those of point ``k - 1``, so the points of a call can only be sampled in order, in one process. With
``point_streams=True`` each batch (one call of :meth:`EnergyObjective.sample`, one observable of one PUB of
:meth:`ShotEstimator.run`) draws a single key from that stream (:func:`draw_key`), and point ``k`` of the batch
samples its shots from its own stream ``SeedSequence(key, spawn_key=(k,))`` (:func:`point_generator`). A point's
estimate is then a function of its parameters, the key and ``k`` alone, so the batch can be cut into contiguous
shards, sampled anywhere and put back together: the serial run and a run sharded over any number of workers give
the same numbers, bit for bit, and so do runs with different ``workers``.

That needs a point's outcome probabilities not to depend on the other points of its batch. It holds for the torch
statevector and for Aer on the CPU (each row is its own arithmetic; the tests compare every shard layout bit for
bit); ``benchmarks/gpu_scaleout.py`` checks it for the CUDA statevector. ``backend="auto"`` chooses its simulator
(torch or Aer) from the size of the whole batch, once, so every shard runs on the same one. Every shard runs with
one torch thread, in this process as in a worker (a spawned worker also starts with one OpenMP and BLAS thread);
the numpy arithmetic of the estimates does not call BLAS, and Aer runs circuits below 14 qubits on one thread.
Across machines the bits agree where the workers run the same builds on the same instruction set.

Point streams change which random numbers a point gets, so they are opt-in: without them the estimators keep their
single stream and every recorded figure. ``backend="aer-sampler"`` cannot take them (Aer seeds its own sampler per
call, not per point).

What a worker costs: a spawned process imports torch, qiskit and Aer once (a few seconds; the pool of
``executor="process"`` lives as long as its estimator, so that is paid once, not per batch), then every batch
pickles the circuit, the measurement plan and the points of each shard (milliseconds for small circuits; the plan
holds ``2**n`` values per measurement group). Sharding pays off when one batch takes well over that: many points of
16-20 qubit circuits, or a parameter scan.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib.util
import math
import multiprocessing
import os
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from numbers import Integral
from typing import Any

import numpy as np
from qiskit import QuantumCircuit

from noisygrad.checks import check_positive_int
from noisygrad.rng import numpy_stream

from .backends import AerBackend, AutoBackend, SimulatorBackend, TorchBackend, make_backend, torch_threads
from .measurement import MeasurementPlan

__all__ = [
    "EXECUTORS",
    "PointSharding",
    "Shard",
    "draw_key",
    "evaluate_shard",
    "make_sharding",
    "point_generator",
    "sample_points",
]

#: The executors named by a string; an instance of ``concurrent.futures.Executor`` is also accepted.
EXECUTORS = ("serial", "process", "ray", "dask")

_EXTRAS = {"ray": "pip install 'noisygrad-core[ray]'", "dask": "pip install 'noisygrad-core[dask]'"}
_MODULES = {"ray": "ray", "dask": "distributed"}
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_KEY_RANGE = 2**63  # keys are in [0, 2**63): what SeedSequence takes and an int64 holds
_WORKER_CACHE_SIZE = 8  # simulators a worker keeps (one per circuit, backend and device)


def draw_key(rng: np.random.Generator) -> int:
    """The key of one batch's point streams: one draw from the caller's stream, which advances by that draw."""
    return int(rng.integers(0, _KEY_RANGE, dtype=np.int64))


def point_generator(key: int, index: int) -> np.random.Generator:
    """The shot stream of point ``index`` of the batch with ``key``: ``SeedSequence(key, spawn_key=(index,))``."""
    return numpy_stream(key, index)


def sample_points(
    backend: SimulatorBackend,
    plan: MeasurementPlan,
    values: np.ndarray,
    shots: int | np.ndarray,
    key: int,
    first: int = 0,
    noise: str = "shots",
    precision: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Energy estimates ``(k,)`` and standard errors ``(k,)`` at the rows of ``values``, row ``i`` being point
    ``first + i`` of the batch with ``key``; what :func:`~noisygrad.quantum.sampling.sample_energies` gives, with
    each point's draws from its own :func:`point_generator` instead of one shared stream.

    The probabilities of all rows come from one simulator call; the shots of each row are drawn from its stream.
    """
    k = len(values)
    if plan.num_groups == 0:  # a constant observable: no measurement, no draws
        return np.full(k, plan.constant), np.zeros(k)
    probabilities = backend.probabilities(values, plan)
    if noise == "exact":
        return plan.exact(probabilities), np.zeros(k)
    streams = [point_generator(key, first + i) for i in range(k)]
    if noise == "gaussian-precision":
        if precision is None:
            if not isinstance(shots, Integral):
                raise ValueError(
                    "noise='gaussian-precision' with shots per group needs the precision they were sized for"
                )
            precision = 1.0 / math.sqrt(int(shots))
        offsets = np.array([stream.normal(0.0, precision) for stream in streams])
        return plan.exact(probabilities) + offsets, np.full(k, precision)
    if k == 0:  # an empty batch: no draws (np.concatenate refuses an empty list)
        return np.zeros(0), np.zeros(0)
    counts = np.concatenate([plan.sample_counts(probabilities[i : i + 1], shots, s) for i, s in enumerate(streams)])
    return plan.estimate(counts, shots)


@dataclass(frozen=True)
class Shard:
    """A contiguous piece of one batch, with everything a worker needs to sample it (it pickles).

    Attributes:
        token: names the simulator of ``circuit`` on ``backend`` and ``device``, so that a worker builds it once.
        circuit: the circuit (no measurements).
        backend: ``"torch"`` or ``"aer"``: the simulator the whole batch runs on.
        device: ``"CPU"`` or ``"GPU"``.
        plan: the observable's measurement plan.
        values: ``(k, P)``, the shard's parameter values.
        shots: shots of every group, or one count per group ``(G,)``.
        noise: the noise model (:data:`~noisygrad.quantum.sampling.NOISE_MODELS`).
        precision: the standard deviation of ``noise="gaussian-precision"`` (``None``: ``1/sqrt(shots)``).
        key: the batch's key (:func:`draw_key`).
        first: the index in the batch of ``values[0]``.
    """

    token: str
    circuit: QuantumCircuit
    backend: str
    device: str
    plan: MeasurementPlan
    values: np.ndarray
    shots: int | np.ndarray
    noise: str
    precision: float | None
    key: int
    first: int


_worker_backends: OrderedDict[tuple[str, str, str], SimulatorBackend] = OrderedDict()
_worker_lock = threading.Lock()  # a thread pool shares this process's cache


def _worker_backend(shard: Shard) -> SimulatorBackend:
    """The simulator of ``shard``, built on first use in this process and kept (least recently used out)."""
    name = (shard.token, shard.backend, shard.device)
    with _worker_lock:
        backend = _worker_backends.get(name)
        if backend is None:
            backend = make_backend(shard.circuit, shard.backend, shard.device)
            _worker_backends[name] = backend
            if len(_worker_backends) > _WORKER_CACHE_SIZE:
                _worker_backends.popitem(last=False)
        _worker_backends.move_to_end(name)
        return backend


def evaluate_shard(shard: Shard, backend: SimulatorBackend | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Energies and standard errors of one shard: the task a worker runs (``backend``: the caller's own simulator,
    for a shard sampled in the process that owns it)."""
    simulator = _worker_backend(shard) if backend is None else backend
    # Ray hands a task its arrays read-only (zero-copy), which torch.as_tensor warns about: a writable copy
    values = shard.values if shard.values.flags.writeable else shard.values.copy()
    with torch_threads(1):  # the same thread count wherever a shard runs
        return sample_points(
            simulator, shard.plan, values, shard.shots, shard.key, shard.first, shard.noise, shard.precision
        )


def _start_worker() -> None:
    """Initializer of a spawned worker: one thread per library, set before torch and numpy load."""
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"


def _shut(pool: cf.Executor) -> None:
    pool.shutdown(wait=True, cancel_futures=True)


def _check_executor(executor: object) -> None:
    if isinstance(executor, cf.Executor):
        return
    if not isinstance(executor, str):
        raise TypeError(
            f"executor must be one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor, "
            f"got {type(executor).__name__}"
        )
    if executor not in EXECUTORS:
        raise ValueError(
            f"executor must be one of {', '.join(EXECUTORS)} or a concurrent.futures.Executor, got {executor!r}"
        )
    if executor in _MODULES and importlib.util.find_spec(_MODULES[executor]) is None:
        raise ImportError(
            f"executor={executor!r} needs {_MODULES[executor]}, which is not installed: {_EXTRAS[executor]}"
        )


class PointSharding:
    """Runs the batches of one estimator with per-point shot streams, cut into shards over ``executor``.

    Args:
        executor: ``"serial"`` (this process, the whole batch in one simulator call), ``"process"`` (a pool of
            ``workers`` spawned processes, started on first use and kept until :meth:`close`), ``"ray"`` (one Ray
            task per shard on the running Ray instance, see :func:`noisygrad.sweep`), ``"dask"`` (the current
            ``distributed`` client; start one first, or each batch starts a local cluster) or a
            ``concurrent.futures.Executor`` you own (never shut down here).
        workers: shards per batch (at most one per point), and the size of the ``"process"`` pool. Default: this
            machine's CPU count, or an Executor's ``_max_workers`` where it has one. Must be ``None`` or 1 for
            ``"serial"``. The numbers do not depend on it.

    Attributes:
        batches: batches sampled so far.
    """

    def __init__(self, executor: str | cf.Executor = "serial", workers: int | None = None) -> None:
        _check_executor(executor)
        if workers is not None:
            workers = check_positive_int("workers", workers)
        if executor == "serial" and workers not in (None, 1):
            raise ValueError(f"workers must be None or 1 for executor='serial' (one batch, one call), got {workers}")
        self.executor = executor
        default = getattr(executor, "_max_workers", None) if isinstance(executor, cf.Executor) else None
        self.workers = 1 if executor == "serial" else workers or default or os.cpu_count() or 1
        self.batches = 0
        self._pool: cf.ProcessPoolExecutor | None = None
        self._tokens: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def _token(self, backend: TorchBackend | AerBackend) -> str:
        """A name for ``backend``'s simulator that no other simulator ever gets (a worker caches it by this name)."""
        token = self._tokens.get(backend)
        if token is None:
            token = self._tokens[backend] = uuid.uuid4().hex
        return token

    def _engine(self) -> str | cf.Executor:
        """What :func:`noisygrad.sweep` runs the shards on (the ``"process"`` pool is started here, once)."""
        if self.executor != "process":
            return self.executor
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # fresh interpreters: forking torch's threads hangs
                initializer=_start_worker,
            )
            weakref.finalize(self, _shut, self._pool)  # closed with its estimator, at the latest at exit
        return self._pool

    def sample(
        self,
        backend: SimulatorBackend,
        circuit: QuantumCircuit,
        plan: MeasurementPlan,
        values: np.ndarray,
        shots: int | np.ndarray,
        rng: np.random.Generator,
        noise: str,
        precision: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Energies ``(K,)`` and standard errors ``(K,)`` at the ``K`` rows of ``values``, one batch: one key drawn
        from ``rng``, then the shards sampled by the executor and put back in order."""
        from noisygrad import sweep

        key = draw_key(rng)
        self.batches += 1
        k = len(values)
        if k == 0 or plan.num_groups == 0:
            return sample_points(backend, plan, values, shots, key, 0, noise, precision)
        concrete = backend.pick(k) if isinstance(backend, AutoBackend) else backend  # one simulator for all shards
        if isinstance(concrete, AerBackend) and concrete.sampler:
            raise ValueError("point streams cannot run on backend='aer-sampler' (Aer seeds its sampler per call)")
        name = "torch" if isinstance(concrete, TorchBackend) else "aer"
        token = self._token(concrete)
        shards = [
            Shard(token, circuit, name, concrete.device, plan, values[a:b], shots, noise, precision, key, a)
            for a, b in _bounds(k, self.workers)
        ]
        # threads=None: evaluate_shard pins torch's threads itself (threadpoolctl's pinning, sweep's default, was
        # measured at about 6 ms a call here, more than a small batch's whole evaluation)
        if self.executor == "serial":
            results = sweep(partial(evaluate_shard, backend=concrete), shards, "serial", threads=None)
        else:
            engine = self._engine()
            workers = self.workers if engine in ("ray", "dask") else None
            results = sweep(evaluate_shard, shards, engine, workers, threads=None)
        return _join(results)

    def close(self) -> None:
        """Shut the ``"process"`` pool down (a later batch starts a new one); a no-op for the other executors."""
        pool, self._pool = self._pool, None
        if pool is not None:
            _shut(pool)

    def __getstate__(self) -> dict[str, Any]:  # a copy or a pickle carries the settings, not the pool
        return {"executor": self.executor, "workers": self.workers, "batches": self.batches}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.executor, self.workers, self.batches = state["executor"], state["workers"], state["batches"]
        self._pool = None
        self._tokens = weakref.WeakKeyDictionary()


def _bounds(k: int, shards: int) -> list[tuple[int, int]]:
    """``min(shards, k)`` contiguous ``(start, stop)`` ranges covering ``range(k)``, sizes differing by at most 1."""
    n = min(shards, k)
    sizes = [k // n + (1 if i < k % n else 0) for i in range(n)]
    stops = np.cumsum(sizes).tolist()
    return list(zip([0, *stops[:-1]], stops, strict=True))


def _join(results: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def make_sharding(
    point_streams: object, executor: str | cf.Executor, workers: int | None, backend: str
) -> PointSharding | None:
    """The :class:`PointSharding` an estimator's ``point_streams``, ``executor`` and ``workers`` ask for, ``None``
    for the default single stream; every refusal names the argument, before any work."""
    if not isinstance(point_streams, bool):
        raise TypeError(f"point_streams must be True or False, got {type(point_streams).__name__} {point_streams!r}")
    if not point_streams:
        _check_executor(executor)
        if executor != "serial" or workers is not None:
            raise ValueError(
                f"executor={executor!r}, workers={workers!r} shard the points of a batch, which needs "
                "point_streams=True: with one stream per call the shots of point k follow those of point k-1 "
                "(point streams change the numbers, so they are opt-in)"
            )
        return None
    if backend == "aer-sampler":
        raise ValueError(
            "point_streams=True cannot run on backend='aer-sampler' (Aer seeds its own sampler per call, not per "
            "point); use backend='aer', which draws the same statistics from Aer's exact probabilities"
        )
    return PointSharding(executor, workers)
