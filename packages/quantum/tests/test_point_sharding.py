"""Point sharding: per-point shot streams, the points of a batch sampled over workers, bit-identical to serial.

The default path (one stream per call) must keep its numbers: the values below were recorded before point
streams existed. Sharded runs are compared with their serial twins with ``np.array_equal`` / ``==`` (bit for bit):
a thread pool checks every shard layout cheaply, spawned processes and Ray check the real thing (slow: a spawned
worker imports torch, qiskit and Aer, about 12 s for two on a loaded 2-core machine).
"""

import concurrent.futures as cf
import copy
import math
import pickle
import sys

import numpy as np
import pytest
import torch
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

from noisygrad.quantum import EnergyObjective, ParameterShift, h2, shot_estimator, tfim, tfim_ansatz, vqe
from noisygrad.quantum.backends import make_backend
from noisygrad.quantum.measurement import MeasurementPlan
from noisygrad.quantum.sharding import PointSharding, draw_key, point_generator, sample_points

TFIM_ANSATZ = tfim_ansatz(4, 2)  # 4 qubits, 14 parameters
TFIM = tfim(4)


def _points(k, p=14, seed=1):
    return np.random.default_rng(seed).uniform(-np.pi, np.pi, (k, p))


# ------------------------------------------------------------------------- the default path keeps its numbers


def test_default_objective_and_parameter_shift_keep_their_recorded_numbers():
    # Recorded before point streams existed (same calls, same seeds): the one-stream path must not move a bit.
    objective = EnergyObjective(TFIM, TFIM_ANSATZ, shots=200)
    points = np.linspace(-1, 1, 3 * 14).reshape(3, -1)
    assert objective.sample(points, np.random.default_rng(3)).tolist() == [
        -3.1999999999999997,
        -3.6399999999999997,
        -3.61,
    ]
    estimate = ParameterShift(objective).estimate(
        torch.linspace(-0.5, 0.5, 14, dtype=torch.float64), torch.Generator().manual_seed(5)
    )
    assert estimate.grad[:4].tolist() == [
        -0.9600000000000002,
        -0.9249999999999998,
        -0.8049999999999999,
        0.4549999999999996,
    ]
    assert estimate.stats["grad_variance"] == 0.17945213567839194
    evs = shot_estimator(shots=300, seed=7).run([(TFIM_ANSATZ, TFIM, points)]).result()[0].data.evs
    assert evs.tolist() == [-3.1333333333333337, -3.7666666666666666, -2.8266666666666667]


def test_default_vqe_keeps_its_recorded_numbers():
    run = vqe(TFIM, TFIM_ANSATZ, gradient="parameter-shift", shots=100, maxiter=5, seed=1)
    assert (run.energy, run.energy_estimate, run.shots) == (-3.8474168212178865, -3.822, 30000)
    run = vqe(h2(), efficient_su2(2, reps=1), gradient="spsa", shots=100, maxiter=5, seed=2, resamplings=2)
    assert (run.energy, run.energy_estimate, run.shots) == (-1.2994145493692526, -1.2971148103472463, 16000)


# ------------------------------------------------------------------------- what a point stream is


@pytest.mark.parametrize("backend", ["torch", "aer"])
def test_a_points_probabilities_do_not_depend_on_its_batch(backend):
    # What sharding relies on: row i of a batch's probabilities is the same bits as row i computed alone.
    simulator = make_backend(TFIM_ANSATZ, backend)
    plan = MeasurementPlan(TFIM, 4)
    points = _points(13)
    whole = simulator.probabilities(points, plan)
    alone = np.concatenate([simulator.probabilities(points[i : i + 1], plan) for i in range(13)])
    assert np.array_equal(whole, alone)


def test_a_point_is_a_function_of_the_key_its_index_and_its_parameters():
    objective = EnergyObjective(TFIM, TFIM_ANSATZ, shots=200, point_streams=True)
    points = _points(4)
    key = draw_key(np.random.default_rng(11))  # what the call draws first from its generator
    batch = objective.sample(points[:3], np.random.default_rng(11))
    other = objective.sample(points[[0, 3]], np.random.default_rng(11))
    assert batch[0] == other[0]  # point 0 of both batches: same key, same index, same parameters
    alone = sample_points(objective.backend, objective.plan, points[2:3], 200, key, first=2)[0]
    assert batch[2] == alone[0]  # point 2 sampled on its own, knowing only the key and its index
    assert (
        point_generator(key, 2).random() == np.random.default_rng(np.random.SeedSequence(key, spawn_key=(2,))).random()
    )


def test_point_streams_have_the_shot_noise_of_the_default_and_are_independent(hamiltonian, ansatz, theta):
    # 2000 copies of one point in one batch: 2000 estimates from 2000 streams. Their mean is within 4 standard
    # errors of the exact energy, and their variance within 4 relative standard errors (sqrt(2/(n-1)) = 3.2%)
    # of sum_g Var_g / S; copies drawn from a shared or repeated stream would show a smaller variance.
    n, shots = 2000, 1000
    objective = EnergyObjective(hamiltonian, ansatz, shots=shots, point_streams=True)
    values = objective.sample(np.repeat(theta[None], n, 0), np.random.default_rng(5))
    predicted = objective.predicted_std(theta)[0] ** 2
    assert values.var(ddof=1) == pytest.approx(predicted, rel=4 * math.sqrt(2 / (n - 1)))
    assert values.mean() == pytest.approx(objective.exact(theta)[0], abs=4 * math.sqrt(predicted / n))
    assert len(set(values.tolist())) > n // 10


# ------------------------------------------------------------------------- every shard layout, bit for bit


@pytest.mark.parametrize("noise", ["shots", "gaussian-precision", "exact"])
def test_every_shard_layout_gives_the_serial_numbers(noise):
    points = _points(7)
    serial = EnergyObjective(TFIM, TFIM_ANSATZ, shots=200, noise=noise, point_streams=True)
    expected = serial.sample(points, np.random.default_rng(3))
    stds = serial.last_stds
    with cf.ThreadPoolExecutor(max_workers=3) as pool:
        for workers in (1, 2, 3, 5, 7, 9):
            sharded = EnergyObjective(
                TFIM, TFIM_ANSATZ, shots=200, noise=noise, point_streams=True, executor=pool, workers=workers
            )
            assert np.array_equal(sharded.sample(points, np.random.default_rng(3)), expected)
            assert np.array_equal(sharded.last_stds, stds)
            assert sharded.shots_used == serial.shots_used


def test_point_streams_are_opt_in_because_they_change_the_numbers():
    points = _points(7)
    default = EnergyObjective(TFIM, TFIM_ANSATZ, shots=200).sample(points, np.random.default_rng(3))
    streams = EnergyObjective(TFIM, TFIM_ANSATZ, shots=200, point_streams=True).sample(points, np.random.default_rng(3))
    assert not np.array_equal(default, streams)


def test_shot_estimator_pubs_with_precision_and_several_observables_shard_bit_identically():
    points = _points(6, p=8)
    ansatz = efficient_su2(2, reps=1)
    pubs = [(ansatz, [[h2()], [SparsePauliOp("ZZ")]], points), (ansatz, h2(), points[:2], 0.05)]

    def run(**options):
        estimator = shot_estimator(shots=300, seed=7, point_streams=True, **options)
        results = [estimator.run(pubs).result() for _ in range(2)]  # two calls: the stream moves on
        return [(r.data.evs, r.data.stds) for result in results for r in result], estimator

    expected, serial = run()
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        got, sharded = run(executor=pool, workers=4)
    for (evs, stds), (evs_s, stds_s) in zip(got, expected, strict=True):
        assert np.array_equal(evs, evs_s)
        assert np.array_equal(stds, stds_s)
    assert (sharded.shots_used, sharded.evaluations, sharded.calls) == (
        serial.shots_used,
        serial.evaluations,
        serial.calls,
    )
    assert not np.array_equal(expected[0][0], expected[3][0])  # the second call drew new keys


def test_auto_backend_runs_every_shard_on_the_simulator_of_the_whole_batch():
    # 15 qubits: backend="auto" takes Aer for a batch of 40 points (40 * 2**15 amplitudes > 2**20) and torch for
    # 20. Exact energies show any switch (the two simulators differ in rounding): shards of 20 must still run on Aer.
    ansatz = tfim_ansatz(15, 1)
    points = _points(40, p=ansatz.num_parameters, seed=2)
    serial = EnergyObjective(tfim(15), ansatz, noise="exact", point_streams=True)
    expected = serial.sample(points, np.random.default_rng(0))
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        sharded = EnergyObjective(tfim(15), ansatz, noise="exact", point_streams=True, executor=pool, workers=2)
        assert np.array_equal(sharded.sample(points, np.random.default_rng(0)), expected)


def test_vqe_with_point_streams_is_the_same_run_on_any_number_of_shards():
    options = {"gradient": "parameter-shift", "shots": 100, "maxiter": 4, "seed": 1, "point_streams": True}
    serial = vqe(TFIM, TFIM_ANSATZ, **options)
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        sharded = vqe(TFIM, TFIM_ANSATZ, executor=pool, workers=3, **options)
    assert np.array_equal(sharded.parameters, serial.parameters)
    assert (sharded.energy_estimate, sharded.shots) == (serial.energy_estimate, serial.shots)
    assert [h["estimate"] for h in sharded.history] == [h["estimate"] for h in serial.history]


# ------------------------------------------------------------------------- processes and Ray (slow)


@pytest.mark.slow  # two spawned workers import torch, qiskit and Aer: about 12 s here
def test_process_sharded_parameter_shift_scan_and_estimator_are_bit_identical_to_serial():
    theta = torch.linspace(-0.5, 0.5, 14, dtype=torch.float64)

    def work(objective):  # 3 parameter-shift gradients (28 points each) and a parameter scan of 9 points
        generator = torch.Generator().manual_seed(5)
        grads = [ParameterShift(objective).estimate(theta, generator).grad for _ in range(3)]
        scan = objective.sample(_points(9), np.random.default_rng(8))
        return grads, scan, (objective.shots_used, objective.evaluations)

    grads, scan, spent = work(EnergyObjective(TFIM, TFIM_ANSATZ, shots=200, point_streams=True))
    with EnergyObjective(TFIM, TFIM_ANSATZ, shots=200, point_streams=True, executor="process", workers=2) as sharded:
        grads_sharded, scan_sharded, spent_sharded = work(sharded)
        assert sharded.sharding._pool is not None
    assert sharded.sharding._pool is None  # the with block stopped the workers
    assert all(torch.equal(a, b) for a, b in zip(grads_sharded, grads, strict=True))
    assert np.array_equal(scan_sharded, scan)
    assert spent_sharded == spent

    pubs = [(TFIM_ANSATZ, TFIM, _points(5))]
    with shot_estimator(shots=300, seed=7, point_streams=True, executor="process", workers=2) as estimator:
        got = estimator.run(pubs).result()[0].data.evs
    assert np.array_equal(got, shot_estimator(shots=300, seed=7, point_streams=True).run(pubs).result()[0].data.evs)


@pytest.mark.slow  # Ray's start and two workers' imports: 20-30 s on a loaded 2-core machine
def test_ray_sharded_vqe_is_bit_identical_to_serial():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    options = {"gradient": "spsa", "resamplings": 4, "shots": 100, "maxiter": 3, "seed": 2, "point_streams": True}
    serial = vqe(h2(), efficient_su2(2, reps=1), **options)
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        sharded = vqe(h2(), efficient_su2(2, reps=1), executor="ray", workers=2, **options)
    finally:
        ray.shutdown()
    assert np.array_equal(sharded.parameters, serial.parameters)
    assert (sharded.energy_estimate, sharded.shots) == (serial.energy_estimate, serial.shots)


# ------------------------------------------------------------------------- bad arguments, copies


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"point_streams": "yes"}, TypeError, "point_streams must be True or False"),
        ({"executor": "process"}, ValueError, "needs point_streams=True"),
        ({"workers": 2}, ValueError, "needs point_streams=True"),
        ({"point_streams": True, "executor": "threads"}, ValueError, "executor must be one of serial, process"),
        ({"point_streams": True, "executor": 2}, TypeError, "executor must be one of serial, process"),
        ({"point_streams": True, "executor": "process", "workers": 0}, ValueError, "workers must be"),
        ({"point_streams": True, "workers": 2}, ValueError, "workers must be None or 1 for executor='serial'"),
        ({"point_streams": True, "backend": "aer-sampler"}, ValueError, "cannot run on backend='aer-sampler'"),
    ],
)
def test_bad_arguments_are_named_before_any_work(options, error, message):
    with pytest.raises(error, match=message):
        EnergyObjective(TFIM, TFIM_ANSATZ, **options)
    with pytest.raises(error, match=message):
        shot_estimator(**options)
    with pytest.raises(error, match=message):
        vqe(TFIM, TFIM_ANSATZ, maxiter=1, **options)


@pytest.mark.parametrize(("executor", "module", "extra"), [("ray", "ray", "ray"), ("dask", "distributed", "dask")])
def test_a_missing_engine_names_the_extra_to_install(monkeypatch, executor, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # what the import machinery sees when it is not installed
    with pytest.raises(ImportError, match=rf"needs {module}, which is not installed: .*noisygrad-core\[{extra}\]"):
        EnergyObjective(TFIM, TFIM_ANSATZ, point_streams=True, executor=executor)


def test_the_sharding_copies_and_pickles_without_its_pool():
    sharding = PointSharding("process", workers=2)
    sharding._engine()  # starts the pool object (its workers spawn on the first task only)
    for twin in (copy.deepcopy(sharding), pickle.loads(pickle.dumps(sharding))):
        assert (twin.executor, twin.workers, twin._pool) == ("process", 2, None)
    sharding.close()
    assert sharding._pool is None


def test_the_callers_points_are_not_modified():
    points = _points(5)
    before = points.copy()
    with cf.ThreadPoolExecutor(max_workers=2) as pool:
        EnergyObjective(TFIM, TFIM_ANSATZ, point_streams=True, executor=pool, workers=2).sample(
            points, np.random.default_rng(0)
        )
    assert np.array_equal(points, before)
