"""Exact tests of noisygrad.quantum's shot estimator, measurement plans, energy objective and adaptive shots: the
behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

Every check is exact or to float64 rounding. Shot noise is never judged statistically here: each noisy number is
recomputed from a twin of the generator (same seed, same draws) through the documented pipeline (probabilities,
multinomial counts, the plan's estimate), and closed forms are used where the state is a one-qubit ``RY`` rotation
(``<Z> = cos t``, ``<X> = sin t``). The adaptive-shots controller is checked against an independent transcription
of its documented rule, fed scripted gradient estimates, so no Monte-Carlo tolerance appears anywhere.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import math
import re
import warnings
from typing import ClassVar

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.providers import JobStatus
from qiskit.quantum_info import PauliList, SparsePauliOp

import noisygrad as ng
from noisygrad.estimators.base import Cost, Estimate
from noisygrad.quantum import AdaptiveShots, EnergyObjective, ParameterShift, ShotEstimator, shot_estimator
from noisygrad.quantum.allocation import ShotAllocator, group_variances, optimal_shots
from noisygrad.quantum.backends import DeviceFallbackWarning, make_backend
from noisygrad.quantum.estimator import (
    CACHE_SIZE,
    VARIANCE_DECAY,
    VARIANCE_MIN_SHOTS,
    DoneJob,
    _Cache,
    _zero_observable,
)
from noisygrad.quantum.measurement import (
    DENSE_ROTATION_QUBITS,
    MAX_SHOTS,
    MULTINOMIAL_MAX_OUTCOMES,
    Group,
    MeasurementPlan,
    _draw_one,
    as_observable,
)
from noisygrad.quantum.objective import check_ansatz
from noisygrad.quantum.sampling import sample_energies
from noisygrad.quantum.sharding import make_sharding
from noisygrad.rng import numpy_from_torch

T = Parameter("t")


def _ry() -> QuantumCircuit:
    """One qubit, ``RY(t)|0> = cos(t/2)|0> + sin(t/2)|1>``: ``<Z> = cos t``, ``<X> = sin t``."""
    qc = QuantumCircuit(1)
    qc.ry(T, 0)
    return qc


def _ry2() -> QuantumCircuit:
    """Two qubits, ``RY(a)`` on qubit 0 and ``RY(b)`` on qubit 1 (two parameters, a product state)."""
    qc = QuantumCircuit(2)
    qc.ry(Parameter("a"), 0)
    qc.ry(Parameter("b"), 1)
    return qc


H1 = SparsePauliOp(["Z", "X"], [1.0, 0.5])  # two groups, {Z} and {X}: exact cos t + 0.5 sin t
POINTS = np.array([[0.3], [1.1], [-0.7]])


def _twin(circuit, observable, values, shots, seed, noise="shots", precision=None):
    """What one serial call draws: the torch simulator, the plan of ``observable``, a generator seeded ``seed``."""
    plan = MeasurementPlan(SparsePauliOp(observable), circuit.num_qubits)
    backend = make_backend(circuit, "torch", "CPU")
    rng = np.random.default_rng(seed)
    return sample_energies(backend, plan, np.asarray(values, float), shots, rng, noise, precision)


# ================================================================================================== estimator.py


def test_shot_estimator_documented_defaults():
    for est in (shot_estimator(), ShotEstimator()):
        assert est.shots == 1000
        assert est.noise == "shots"
        assert est.backend == "auto"
        assert est.device == "CPU"
        assert est.default_precision is None
        assert est.point_streams is False
        assert est.allocation == "bound"
        assert (est.shots_used, est.evaluations, est.calls) == (0, 0, 0)
    assert CACHE_SIZE == 64
    assert _Cache().size == 64
    assert (VARIANCE_MIN_SHOTS, VARIANCE_DECAY) == (16, 0.5)


def test_shot_estimator_passes_every_setting_on():
    est = shot_estimator(7, 3, noise="gaussian-precision", backend="torch", default_precision=0.25, allocation="bound")
    assert (est.shots, est.noise, est.backend, est.default_precision) == (7, "gaussian-precision", "torch", 0.25)
    # the seed: the first call draws what a generator seeded 3 draws
    evs = est.run([(_ry(), H1, POINTS)]).result()[0].data.evs
    expected, _ = _twin(_ry(), H1, POINTS, np.array([1, 1]), 3, "gaussian-precision", 0.25)
    np.testing.assert_array_equal(evs, expected)
    streams = shot_estimator(point_streams=True, executor="serial", workers=1)
    assert streams.point_streams is True
    assert (streams._sharding.executor, streams._sharding.workers) == ("serial", 1)
    with pytest.raises(ValueError, match="workers"):  # workers reaches the sharding: 2 is refused for serial
        shot_estimator(point_streams=True, workers=2)
    pool = cf.ThreadPoolExecutor(1)  # an executor the caller owns reaches the sharding, with the workers given
    try:
        sharded = shot_estimator(point_streams=True, executor=pool, workers=3)
        assert sharded._sharding.executor is pool
        assert sharded._sharding.workers == 3
    finally:
        pool.shutdown()
    assert shot_estimator(allocation="variance").allocation == "variance"
    assert ShotEstimator(point_streams=True).point_streams is True  # the default executor "serial" is valid
    if torch.cuda.is_available():
        assert shot_estimator(device="GPU", backend="torch").device == "GPU"
    else:
        with pytest.warns(DeviceFallbackWarning):
            assert shot_estimator(device="GPU", backend="torch").device == "CPU"


def test_done_job_is_finished_and_returns_its_result():
    est = shot_estimator(10, seed=0)
    job = est.run([(_ry(), "Z", [0.2])])
    assert isinstance(job, DoneJob)
    assert job.status() == JobStatus.DONE
    assert job.done() is True
    assert job.in_final_state() is True
    assert job.running() is False
    assert job.cancelled() is False
    assert job.cancel() is None
    assert job.result() is job.result()
    assert job.result().metadata == {"version": 2}
    other = DoneJob(job.result())
    assert other.result() is job.result()
    assert other.job_id() != job.job_id()


def test_cache_keeps_its_size_most_recently_used_entries():
    cache: _Cache[str, int] = _Cache(2)
    assert cache.get("a") is None
    assert cache.put("a", 1) == 1
    cache.put("b", 2)
    assert list(cache._items) == ["a", "b"]  # exactly `size` entries are kept
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None  # the least recently used went
    assert (cache.get("a"), cache.get("c")) == (1, 3)
    assert len(cache._items) == 2


def test_zero_observable_placeholder_and_non_zero_inputs():
    for zero in ({"ZZ": 0.0}, SparsePauliOp("ZZ", 0.0), SparsePauliOp(["ZZ", "ZZ"], [1.0, -1.0])):
        placeholder = _zero_observable(zero)
        assert placeholder is not None
        assert placeholder.num_qubits == 2
        assert list(placeholder.coeffs) == [0.0]
        assert len(placeholder) == 1
        assert list(placeholder.bit_terms) == []
    for not_zero in ({"ZZ": 1.0}, SparsePauliOp("Z", 1e-10), "ZZ", 3, {"QQ": 0.0}):
        assert _zero_observable(not_zero) is None


def test_zero_observables_in_every_pub_form_are_exactly_zero_and_free():
    est = shot_estimator(100, seed=0)
    pubs = [
        (_ry(), {"Z": 0.0}, [0.4]),  # a mapping
        (_ry(), SparsePauliOp("Z", 0.0), [0.4], 0.1),  # four entries: with a precision
        (_ry().assign_parameters([0.4]), SparsePauliOp("Z", 0.0)),  # two entries: a bound circuit
        [_ry(), [SparsePauliOp("X", 0.0), "Z"], [[0.4], [0.9]]],  # a list, broadcast (2,) x (2, 1) -> (2,)
    ]
    results = est.run(pubs).result()
    for result in results[:3]:
        assert float(result.data.evs) == 0.0
        assert float(result.data.stds) == 0.0
        assert result.metadata["shots"] == 0
        assert result.metadata["shots_per_group"] == [[]]
    last = results[3]
    assert last.data.evs.shape == (2,)
    assert last.data.evs[0] == 0.0
    assert last.data.stds[0] == 0.0
    assert last.metadata["shots_per_group"] == [[], [100]]
    assert est.calls == 1
    assert est.shots_used == 100
    assert est.evaluations == 5
    # an EstimatorPub itself is taken as it is
    pub = EstimatorPub.coerce((_ry(), SparsePauliOp("Z"), [0.4]))
    assert shot_estimator(10, seed=0, noise="exact").run([pub]).result()[0].data.evs == pytest.approx(math.cos(0.4))
    # a PauliList is a list of observables, one result each
    exact = shot_estimator(noise="exact").run([(_ry(), PauliList(["Z", "X"]), [0.4])]).result()[0]
    np.testing.assert_allclose(exact.data.evs, [math.cos(0.4), math.sin(0.4)], rtol=0, atol=1e-14)
    with pytest.raises(ValueError):  # observables on different numbers of qubits
        shot_estimator(noise="exact").run([(_ry2(), [SparsePauliOp("ZZ"), SparsePauliOp("Z", 0.0)], [0.1, 0.2])])


def test_run_samples_every_observable_from_the_seed_stream_with_exact_counters_and_metadata():
    est = shot_estimator(50, seed=11, backend="torch")
    observables = [[H1], [SparsePauliOp("Z")]]  # (2, 1) against (3,) points: (2, 3)
    values = POINTS[:, 0]
    result = est.run([(_ry(), observables, POINTS)]).result()[0]
    assert result.data.evs.shape == (2, 3)
    assert result.data.stds.shape == (2, 3)
    assert result.data.shape == (2, 3)
    rng = np.random.default_rng(11)
    backend = make_backend(_ry(), "torch", "CPU")
    first = sample_energies(backend, MeasurementPlan(H1, 1), POINTS, np.array([50, 50]), rng)
    second = sample_energies(backend, MeasurementPlan(SparsePauliOp("Z"), 1), POINTS, np.array([50]), rng)
    np.testing.assert_array_equal(result.data.evs, [first[0], second[0]])
    np.testing.assert_array_equal(result.data.stds, [first[1], second[1]])
    assert result.metadata == {
        "shots": 50,
        "shots_per_group": [[50, 50], [50]],
        "groups": [["Z", "X"], ["Z"]],
        "target_precision": None,
        "noise": "shots",
    }
    assert (est.calls, est.evaluations, est.shots_used) == (2, 6, 3 * 100 + 3 * 50)
    assert values.shape == (3,)
    # successive calls continue the stream
    again = est.run([(_ry(), "Z", [[0.5], [0.6]])]).result()[0].data.evs
    np.testing.assert_array_equal(
        again, sample_energies(backend, MeasurementPlan(SparsePauliOp("Z"), 1), [[0.5], [0.6]], np.array([50]), rng)[0]
    )
    # two parameters, one point: the (1, P) row is used as it is (not its P columns)
    two = shot_estimator(noise="exact").run([(_ry2(), SparsePauliOp("ZZ"), [0.3, 1.2])]).result()[0]
    assert float(two.data.evs) == pytest.approx(math.cos(0.3) * math.cos(1.2), abs=1e-14)
    # a circuit with no parameters: one row of no values
    bound = shot_estimator(noise="exact").run([(_ry().assign_parameters([0.8]), "X")]).result()[0]
    assert float(bound.data.evs) == pytest.approx(math.sin(0.8), abs=1e-14)


def test_precision_sizes_the_shots_of_each_group_from_every_source():
    # 7 Z + 3 X: b = (7, 3), sum 10; precision p: m_g = ceil(b_g * 10 / p**2)
    op = SparsePauliOp(["Z", "X"], [7.0, 3.0])
    est = ShotEstimator(seed=1, default_precision=1.0)
    assert est.default_precision == 1.0
    res = est.run([(_ry(), op, [0.3])]).result()[0]  # the default precision
    assert res.metadata["shots_per_group"] == [[70, 30]]
    assert res.metadata["target_precision"] == 1.0
    res = est.run([(_ry(), op, [0.3])], precision=2.0).result()[0]  # the call's
    assert res.metadata["shots_per_group"] == [[18, 8]]
    assert res.metadata["target_precision"] == 2.0
    res = est.run([(_ry(), op, [0.3], 0.5)], precision=2.0).result()[0]  # the PUB's comes first
    assert res.metadata["shots_per_group"] == [[280, 120]]
    assert res.metadata["shots"] == 280
    assert est.shots_used == 100 + 26 + 400
    plain = shot_estimator(5, seed=1).run([(_ry(), op, [0.3])]).result()[0]  # none: `shots` per group
    assert plain.metadata["shots_per_group"] == [[5, 5]]
    assert plain.metadata["target_precision"] is None
    # noise="exact" uses no precision: `shots` per group whatever is asked
    exact = shot_estimator(5, noise="exact").run([(_ry(), op, [0.3], 0.5)]).result()[0]
    assert exact.metadata["shots_per_group"] == [[5, 5]]
    assert exact.metadata["noise"] == "exact"
    assert float(exact.data.evs) == pytest.approx(7 * math.cos(0.3) + 3 * math.sin(0.3), abs=1e-13)
    # an identity-only observable with a precision: no groups, no shots, under either allocation
    for allocation in ("bound", "variance"):
        free = shot_estimator(seed=0, allocation=allocation).run([(_ry(), SparsePauliOp("I", 2.0), [0.3], 0.1)])
        assert free.result()[0].metadata["shots_per_group"] == [[]]
        assert float(free.result()[0].data.evs) == 2.0
    with pytest.raises(ValueError, match="precision"):
        est.run([(_ry(), op, [0.3])], precision=-1.0)


def test_gaussian_precision_noise_has_the_precision_asked_or_one_over_root_shots():
    est = shot_estimator(16, seed=4, noise="gaussian-precision")
    res = est.run([(_ry(), H1, POINTS)]).result()[0]
    expected, stds = _twin(_ry(), H1, POINTS, 16, 4, "gaussian-precision", 0.25)
    np.testing.assert_array_equal(res.data.evs, expected)
    np.testing.assert_array_equal(res.data.stds, [0.25] * 3)
    precise = shot_estimator(16, seed=4, noise="gaussian-precision").run([(_ry(), H1, POINTS, 0.1)]).result()[0]
    expected, _ = _twin(_ry(), H1, POINTS, 16, 4, "gaussian-precision", 0.1)
    np.testing.assert_array_equal(precise.data.evs, expected)
    np.testing.assert_array_equal(precise.data.stds, [0.1] * 3)
    assert precise.metadata["shots_per_group"] == [[150, 75]]  # ceil(b * 1.5 / 0.01), b = (1, 0.5)
    assert stds.tolist() == [0.25] * 3


def test_point_streams_sample_through_the_sharding_from_the_stream():
    est = shot_estimator(40, seed=9, point_streams=True)
    res = est.run([(_ry(), H1, POINTS)]).result()[0]
    circuit = _ry()
    sharding = make_sharding(True, "serial", None, "torch")
    expected = sharding.sample(
        make_backend(circuit, "torch", "CPU"),
        circuit,
        MeasurementPlan(H1, 1),
        POINTS,
        np.array([40, 40]),
        np.random.default_rng(9),
        "shots",
        None,
    )
    np.testing.assert_array_equal(res.data.evs, expected[0])
    np.testing.assert_array_equal(res.data.stds, expected[1])
    assert (est.calls, est.evaluations, est.shots_used) == (1, 3, 240)
    plain = shot_estimator(40, seed=9).run([(_ry(), H1, POINTS)]).result()[0]
    assert not np.array_equal(plain.data.evs, res.data.evs)  # other numbers than the single stream
    with shot_estimator(point_streams=True) as inside:
        assert inside.point_streams is True
    inside.close()  # closing twice is fine
    shot_estimator().close()  # no sharding: a no-op


def test_variance_allocation_uses_the_bound_first_then_the_measured_sigmas():
    """Z + X at t = 0: Z is certain (sigma 0), X is +-1 with equal odds (sigma 1). Precision 0.1: the bound gives
    200 shots per group; then the running sigmas give Z the floor of 16 and X about 100, never above the bound."""
    op, precision, seed = SparsePauliOp(["Z", "X"], [1.0, 1.0]), 0.1, 5
    values = np.zeros((2, 1))
    est = shot_estimator(seed=seed, allocation="variance")
    unsized = est.run([(_ry(), op, values)]).result()[0]  # no precision: `shots`, and no variance recorded
    first = est.run([(_ry(), op, values, precision)]).result()[0]
    second = est.run([(_ry(), op, values, precision)]).result()[0]
    third = est.run([(_ry(), op, values, precision)]).result()[0]
    # the twin: the same generator, the documented steps
    plan, backend, rng = MeasurementPlan(op, 1), make_backend(_ry(), "torch", "CPU"), np.random.default_rng(seed)
    expected = [sample_energies(backend, plan, values, np.array([1000, 1000]), rng)]
    tracker = ShotAllocator(2, precision=1.0, min_shots=16, decay=0.5)
    bound = plan.shots_for_precision(precision)
    assert bound.tolist() == [200, 200]
    shots = [bound]
    for _ in range(3):
        counts = backend.counts(values, plan, shots[-1], rng)
        expected.append(plan.estimate(counts, shots[-1]))
        tracker.update(group_variances(plan, counts, shots[-1]), shots[-1])
        shots.append(np.minimum(optimal_shots(tracker.sigmas, precision=precision, min_shots=16), bound))
    for got, want in zip((unsized, first, second, third), expected, strict=True):
        np.testing.assert_array_equal(got.data.evs, want[0])
        np.testing.assert_array_equal(got.data.stds, want[1])
    assert [r.metadata["shots_per_group"][0] for r in (first, second, third)] == [s.tolist() for s in shots[:3]]
    assert shots[1][0] == 16  # the floor binds for the certain group
    assert est.calls == 4
    assert est.shots_used == 2 * (2000 + sum(int(s.sum()) for s in shots[:3]))


def test_state_dict_continues_the_stream_and_the_counters():
    a = shot_estimator(30, seed=2)
    a.run([(_ry(), H1, POINTS)])
    state = a.state_dict()
    assert set(state) == {"rng", "shots_used", "evaluations", "calls"}
    assert (state["shots_used"], state["evaluations"], state["calls"]) == (180, 3, 1)
    b = shot_estimator(30, seed=99)
    b.load_state_dict(state)
    assert (b.shots_used, b.evaluations, b.calls) == (180, 3, 1)
    np.testing.assert_array_equal(
        b.run([(_ry(), H1, POINTS)]).result()[0].data.evs, a.run([(_ry(), H1, POINTS)]).result()[0].data.evs
    )
    fresh = shot_estimator(seed=1).state_dict()  # zero counters are a valid state
    c = shot_estimator(30, seed=5)
    c.load_state_dict(fresh)
    assert (c.shots_used, c.evaluations, c.calls) == (0, 0, 0)
    np.testing.assert_array_equal(
        c.run([(_ry(), "Z", [0.3])]).result()[0].data.evs,
        shot_estimator(30, seed=1).run([(_ry(), "Z", [0.3])]).result()[0].data.evs,
    )
    before = c.state_dict()
    bad_states = [
        [1, 2],
        {k: v for k, v in state.items() if k != "calls"},
        {**state, "extra": 1},
        {**state, "calls": -1},
        {**state, "shots_used": 1.5},
        {**state, "shots_used": 7, "rng": {"bit_generator": "MT19937"}},
    ]
    for bad in bad_states:
        with pytest.raises((ValueError, TypeError), match="state"):
            c.load_state_dict(bad)
        assert c.state_dict() == before  # checked before anything changes


def test_the_circuit_backend_and_plan_caches_are_reused_and_checked_by_identity():
    est = shot_estimator(20, seed=0, noise="exact")
    circuit = _ry()
    est.run([(circuit, "Z", [0.1])])
    stripped, backend = est._circuits.get(id(circuit))[1], est._backends.get(id(est._circuits.get(id(circuit))[1]))
    plan = next(iter(est._plans._items.values()))
    est.run([(circuit, "Z", [0.2])])
    assert est._circuits.get(id(circuit))[1] is stripped  # not rebuilt
    assert est._backends.get(id(stripped))[1] is backend[1]
    assert len(est._plans._items) == 1
    assert next(iter(est._plans._items.values())) is plan
    # a stale entry under the same id (an old circuit's id reused) is not taken for this circuit
    other = QuantumCircuit(1)
    other.x(0)
    est._circuits.put(id(circuit), (other, other))
    est._backends.put(id(stripped), (other, make_backend(other, "torch", "CPU")))
    assert float(est.run([(circuit, "Z", [0.3])]).result()[0].data.evs) == pytest.approx(math.cos(0.3), abs=1e-14)
    # different observables get different plans
    assert float(est.run([(circuit, "X", [0.3])]).result()[0].data.evs) == pytest.approx(math.sin(0.3), abs=1e-14)
    assert len(est._plans._items) == 2


def test_variance_tracker_is_kept_per_plan_and_checked_by_identity():
    est = shot_estimator(seed=0, allocation="variance")
    op = SparsePauliOp(["Z", "X"], [1.0, 1.0])
    est.run([(_ry(), op, [0.0], 0.1)])
    plan = next(iter(est._plans._items.values()))
    tracker = est._tracker(plan)
    assert tracker is est._tracker(plan)
    assert tracker.sigmas is not None
    assert (tracker.min_shots, tracker.decay, tracker.num_groups) == (16, 0.5, 2)
    other = MeasurementPlan(op, 1)
    est._noise.put(id(other), (plan, tracker))  # a stale entry under another plan's id
    assert est._tracker(other) is not tracker
    assert est._tracker(other).sigmas is None


def test_estimator_refuses_bad_settings_before_any_work():
    with pytest.raises(ValueError, match="allocation"):
        shot_estimator(allocation="optimal")
    for kwargs in ({"noise": "exact"}, {"noise": "gaussian-precision"}, {"point_streams": True}):
        with pytest.raises(ValueError, match="allocation='variance'"):
            shot_estimator(allocation="variance", **kwargs)
    shot_estimator(allocation="bound", noise="exact")
    shot_estimator(allocation="bound", point_streams=True)
    with pytest.raises(ValueError, match="NaN"):
        shot_estimator().run([(_ry(), "Z", [np.inf])])


# ================================================================================================ measurement.py


def _states(*amplitudes) -> torch.Tensor:
    return torch.tensor(np.array(amplitudes, dtype=complex))


def test_probabilities_rotate_each_group_into_its_basis():
    """|0>, |+> and |+i> = (|0> + i|1>)/sqrt 2 measured in the Z, X and Y bases (one group each)."""
    plan = MeasurementPlan(SparsePauliOp(["Z", "X", "Y"], [1.0, 1.0, 1.0]), 1)
    assert [g.basis for g in plan.groups] == ["Z", "X", "Y"]
    r = 1 / math.sqrt(2)
    probs = plan.probabilities(_states([1, 0], [r, r], [r, 1j * r]))
    expected = [
        [[1, 0], [0.5, 0.5], [0.5, 0.5]],  # |0>
        [[0.5, 0.5], [1, 0], [0.5, 0.5]],  # |+>
        [[0.5, 0.5], [0.5, 0.5], [1, 0]],  # |+i>
    ]
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(plan.exact(probs), [1.0, 1.0, 1.0], rtol=0, atol=1e-15)


def test_z_only_groups_keep_complex_amplitudes():
    """Diagonal groups (Z and I only) need no rotation; complex amplitudes still give |amplitude|^2."""
    plan = MeasurementPlan(SparsePauliOp(["ZI", "IZ"], [1.0, 0.5]), 2)
    assert [g.basis for g in plan.groups] == ["ZZ"]
    amplitudes = np.array([0.5j, -0.5, 0.5 + 0.0j, 0.5j * 1j])
    probs = plan.probabilities(torch.tensor(amplitudes)[None])
    np.testing.assert_allclose(probs, [[[0.25, 0.25, 0.25, 0.25]]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(plan.exact(probs), [0.0], rtol=0, atol=1e-15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gate_by_gate_rotations_run_on_the_states_device():
    """Beyond 6 qubits the basis rotations are applied gate by gate on the device the states live on."""
    n = DENSE_ROTATION_QUBITS + 1
    plan = MeasurementPlan(SparsePauliOp(["X" * n, "Y" * n], [1.0, 1.0]), n)
    state = _random_state(n, 1)
    np.testing.assert_allclose(plan.probabilities(state.to("cuda")), plan.probabilities(state), rtol=0, atol=1e-12)


def _random_state(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return torch.tensor(psi / np.linalg.norm(psi))[None]


@pytest.mark.parametrize("n", [DENSE_ROTATION_QUBITS, DENSE_ROTATION_QUBITS + 1])
def test_dense_and_gate_by_gate_rotations_agree_with_the_expectation(n):
    """Up to 6 qubits one dense rotation per group, beyond gate by gate: both give <psi|H|psi> exactly."""
    labels = ["X" * n, "Y" + "Z" * (n - 1), "I" * (n - 1) + "Y", "Z" * n, "I" * n]
    op = SparsePauliOp(labels, [0.3, -0.7, 0.2, 0.5, 1.5])
    plan = MeasurementPlan(op, n)
    assert (plan._rotations is not None) == (n <= 6)
    state = _random_state(n, n)
    psi = state[0].numpy()
    exact = float(np.real(psi.conj() @ op.to_matrix() @ psi))
    probs = plan.probabilities(state)
    assert probs.shape == (1, plan.num_groups, 2**n)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=0, atol=1e-13)
    assert plan.exact(probs)[0] == pytest.approx(exact, abs=1e-12)
    assert plan.constant == 1.5


def test_groups_are_qubit_wise_commuting_with_their_values():
    plan = MeasurementPlan(SparsePauliOp(["ZI", "ZZ", "XX", "YY", "IX"], [1.0, 2.0, 3.0, 4.0, 5.0]), 2)
    # XX and YY commute but not qubit-wise: three groups {ZI, ZZ}, {XX, IX}, {YY}
    assert plan.num_groups == 3
    by_basis = {g.basis: g for g in plan.groups}
    assert set(by_basis) == {"ZZ", "XX", "YY"}
    zz = by_basis["ZZ"]
    assert set(zz.paulis) == {"ZI", "ZZ"}
    # outcome b = (q1 q0): ZI is (-1)^q1, ZZ is (-1)^(q1 + q0)
    np.testing.assert_array_equal(zz.values, [3.0, -1.0, -3.0, 1.0])
    np.testing.assert_array_equal(by_basis["XX"].values, [8.0, -8.0, 2.0, -2.0])  # XX + 5 IX (IX = (-1)^q0)
    np.testing.assert_array_equal(by_basis["YY"].values, [4.0, -4.0, -4.0, 4.0])
    np.testing.assert_array_equal(plan.bounds[[plan.groups.index(by_basis[b]) for b in ("ZZ", "XX", "YY")]], [3, 8, 4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        zz.basis = "XX"  # type: ignore[misc]
    one = MeasurementPlan(SparsePauliOp(["IZ"], [2.0]))  # num_qubits not given: taken from the observable
    assert one.num_qubits == 2
    assert one.groups[0].basis == "IZ"
    np.testing.assert_array_equal(one.groups[0].values, [2.0, -2.0, 2.0, -2.0])
    assert isinstance(one.groups[0], Group)
    with pytest.raises(ValueError, match="2 qubits but the ansatz has 3"):
        MeasurementPlan(SparsePauliOp("ZZ"), 3)


def test_identity_and_zero_terms_are_constants_without_groups():
    plan = MeasurementPlan(SparsePauliOp(["III", "ZZZ", "III"], [1.5, 0.0, 0.25]), 3)
    assert plan.constant == 1.75
    assert plan.num_groups == 0
    assert plan._rotations is None
    assert plan.shots_for_precision(0.1).dtype == np.int64
    assert plan.shots_for_precision(0.1).shape == (0,)
    assert plan.bounds.shape == (0,)
    np.testing.assert_array_equal(plan.exact(np.zeros((2, 0, 8))), [1.75, 1.75])
    np.testing.assert_array_equal(plan.variance(np.zeros((2, 0, 8))), [0.0, 0.0])
    zero = MeasurementPlan(SparsePauliOp(["ZZ"], [0.0]), 2)
    assert zero.num_groups == 0
    assert zero.constant == 0.0
    mixed = MeasurementPlan(SparsePauliOp(["ZZ", "XI"], [0.0, 2.0]), 2)  # the zero term needs no group
    assert mixed.num_groups == 1
    assert mixed.groups[0].paulis == ("XI",)


def test_exact_and_variance_closed_forms():
    """Z + 0.5 X on RY(t)|0>: <Z> = cos t, Var Z = sin^2 t; <0.5 X> = 0.5 sin t, Var = 0.25 cos^2 t."""
    plan = MeasurementPlan(SparsePauliOp(["Z", "X", "I"], [1.0, 0.5, -0.25]), 1)
    t = np.array([0.3, 1.1, -0.7])
    c, s = np.cos(t / 2), np.sin(t / 2)
    probs = plan.probabilities(torch.tensor(np.stack([c, s], 1).astype(complex)))
    np.testing.assert_allclose(plan.exact(probs), np.cos(t) + 0.5 * np.sin(t) - 0.25, rtol=0, atol=1e-14)
    np.testing.assert_allclose(plan.variance(probs), np.sin(t) ** 2 + 0.25 * np.cos(t) ** 2, rtol=0, atol=1e-14)
    certain = np.zeros((1, 2, 2))
    certain[0, :, 0] = 1.0
    np.testing.assert_array_equal(plan.variance(certain), [0.0])  # never negative, exactly 0 when certain


def test_estimate_from_hand_made_counts():
    plan = MeasurementPlan(SparsePauliOp(["Z", "X", "I"], [1.0, 0.5, 2.0]), 1)  # groups Z (+-1), X (+-0.5)
    counts = np.array([[[3, 1], [2, 2]], [[1, 0], [0, 1]]], dtype=float)
    energies, stds = plan.estimate(counts, np.array([4, 4]))
    # point 0: Z mean 0.5, s^2 = (4/3)(1 - 0.25) = 1; X mean 0, s^2 = (4/3) 0.25 = 1/3; se = sqrt(1/4 + 1/12)
    assert energies[0] == pytest.approx(2.5, abs=1e-15)
    assert stds[0] == pytest.approx(math.sqrt(1 / 4 + 1 / 12), abs=1e-15)
    # point 1: one shot each (counts of 1 with shots 4 given per group would be wrong: use shots 1)
    energies, stds = plan.estimate(counts[1:], 1)
    assert energies[0] == pytest.approx(2.0 + 1.0 - 0.5, abs=1e-15)
    assert stds[0] == 0.0  # one shot: no variance estimate
    energies, stds = plan.estimate(np.array([[[2, 0], [1, 1]]]), np.array([2, 2]))
    assert energies[0] == pytest.approx(3.0, abs=1e-15)
    assert stds[0] == pytest.approx(math.sqrt(0.0 / 2 + 0.5 / 2), abs=1e-15)  # X: values 0.5, -0.5: s^2 = 0.5


def test_sample_counts_normalises_clips_and_draws_from_the_generator():
    plan = MeasurementPlan(SparsePauliOp(["Z", "X"], [1.0, 1.0]), 1)
    probs = np.array([[[2.0, 2.0], [3.0, -1e-18]], [[0.25, 0.75], [1.0, 0.0]]])
    counts = plan.sample_counts(probs, np.array([10, 7]), np.random.default_rng(3))
    expected = np.random.default_rng(3).multinomial([10, 7], [[[0.5, 0.5], [1.0, 0.0]], [[0.25, 0.75], [1.0, 0.0]]])
    np.testing.assert_array_equal(counts, expected)
    assert counts.dtype == np.int64
    for bad in (np.array([[[0.0, 0.0], [1.0, 0.0]]]), np.array([[[np.nan, 1.0], [1.0, 0.0]]])):
        with pytest.raises(ValueError, match="positive sum"):
            plan.sample_counts(bad, 5, np.random.default_rng(0))


def _inverse_cdf_counts(p: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Counts of ``shots`` draws: each uniform ``u`` picks the first outcome whose cumulative probability exceeds it."""
    cdf = np.cumsum(p)
    out = np.zeros(len(p), dtype=np.int64)
    for u in rng.random(shots) * cdf[-1]:
        out[min(int(np.argmax(cdf > u)), len(p) - 1)] += 1
    return out


def test_beyond_twelve_qubits_few_shots_are_drawn_by_inverse_cdf():
    assert MULTINOMIAL_MAX_OUTCOMES == 4096
    rng = np.random.default_rng(0)
    plan12 = MeasurementPlan(SparsePauliOp("Z" * 12), 12)
    plan13 = MeasurementPlan(SparsePauliOp("Z" * 13), 13)
    p12 = rng.random((1, 1, 2**12))
    p13 = rng.random((1, 1, 2**13))
    # 12 qubits: numpy's multinomial, even for few shots
    got = plan12.sample_counts(p12, 100, np.random.default_rng(1))
    np.testing.assert_array_equal(got[0, 0], np.random.default_rng(1).multinomial(100, p12[0, 0] / p12.sum()))
    # 13 qubits and fewer shots than outcomes: uniforms looked up in the cumulative distribution
    got = plan13.sample_counts(p13, 100, np.random.default_rng(1))
    np.testing.assert_array_equal(got[0, 0], _inverse_cdf_counts(p13[0, 0] / p13.sum(), 100, np.random.default_rng(1)))
    assert got.dtype == np.int64
    assert got.sum() == 100
    # ... and as many shots as outcomes: multinomial again
    got = plan13.sample_counts(p13, 2**13, np.random.default_rng(1))
    np.testing.assert_array_equal(got[0, 0], np.random.default_rng(1).multinomial(2**13, p13[0, 0] / p13.sum()))


class _Uniforms:
    """A stand-in generator whose ``random(n)`` returns given uniforms (values ``rng.random`` can return)."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)

    def random(self, n):
        assert n == len(self.values)
        return self.values


def test_draw_one_switches_at_as_many_shots_as_outcomes_and_never_draws_an_impossible_outcome():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(_draw_one(p, 4, np.random.default_rng(2)), np.random.default_rng(2).multinomial(4, p))
    np.testing.assert_array_equal(
        _draw_one(p, 3, np.random.default_rng(2)), _inverse_cdf_counts(p, 3, np.random.default_rng(2))
    )
    # u = 0 (a possible uniform) must not land on a leading zero-probability outcome
    np.testing.assert_array_equal(
        _draw_one(np.array([0.0, 0.5, 0.5, 0.0, 0.0]), 2, _Uniforms([0.0, 0.5])), [0, 1, 1, 0, 0]
    )
    # p need not be normalised: the uniforms are scaled by its total
    q = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 6.0])
    np.testing.assert_array_equal(
        _draw_one(q, 5, np.random.default_rng(4)), _inverse_cdf_counts(q / 16.0, 5, np.random.default_rng(4))
    )
    np.testing.assert_array_equal(_draw_one(q, 3, _Uniforms([0.0, 0.5, 0.999])), [1, 0, 0, 1, 0, 1])


def test_shots_for_precision_closed_form_and_its_limit():
    plan = MeasurementPlan(SparsePauliOp(["Z", "X"], [7.0, -3.0]), 1)
    np.testing.assert_array_equal(plan.bounds, [7.0, 3.0])
    shots = plan.shots_for_precision(0.5)
    assert shots.tolist() == [280, 120]
    assert shots.dtype == np.int64
    with pytest.raises(ValueError, match=r"smallest precision allowed for it is ([0-9.e+-]+)") as info:
        plan.shots_for_precision(1e-9)
    smallest = float(re.search(r"allowed for it is ([0-9.e+-]+)", str(info.value)).group(1))
    assert plan.shots_for_precision(smallest).max() < MAX_SHOTS  # the value printed is allowed ...
    boundary = math.sqrt(7.0 * 10.0 / MAX_SHOTS)
    assert boundary < smallest < boundary * 1.002  # ... and within 0.2% of the limit (printed to 4 digits)
    with pytest.raises(ValueError, match="above the maximum"):
        plan.shots_for_precision(boundary * 0.999)
    # exactly 2**63 shots (a float equal to MAX_SHOTS) is refused
    exact = MeasurementPlan(SparsePauliOp(["Z", "X"], [2.0, 2.0]), 1)  # 2 * 4 / (2**-30)**2 = 2**63
    assert exact.shots_for_precision(2.0**-29).tolist() == [2**61, 2**61]
    with pytest.raises(ValueError, match="above the maximum"):
        exact.shots_for_precision(2.0**-30)


def test_as_observable_coefficients_checks():
    op = as_observable(SparsePauliOp(["Z", "X"], [1e-10, 1.0 + 0j]))
    assert op.coeffs.tolist() == [1e-10, 1.0]  # a tiny coefficient is kept (simplify with atol=0)
    assert op.coeffs.dtype == complex
    assert as_observable(SparsePauliOp("Z", 1.0 + 1e-12j)).coeffs.tolist() == [1.0]  # at the tolerance: accepted
    with pytest.raises(ValueError, match="Hermitian"):
        as_observable(SparsePauliOp("Z", 0.5 + 1.5e-12j))  # the tolerance is 1e-12 * max(1, |c|)
    as_observable(SparsePauliOp("Z", 4.0 + 3e-12j))
    with pytest.raises(ValueError, match="hamiltonian has non-finite"):
        as_observable(SparsePauliOp("Z", np.nan))
    with pytest.raises(TypeError, match="observable must be a SparsePauliOp"):
        as_observable(3.5, "observable")
    assert as_observable("XY").paulis.to_labels() == ["XY"]


# ================================================================================================== objective.py


def test_check_ansatz_and_the_objectives_documented_defaults():
    with pytest.raises(TypeError, match="ansatz must be a qiskit QuantumCircuit"):
        check_ansatz("ry")
    with pytest.raises(ValueError, match="at least one free parameter"):
        check_ansatz(QuantumCircuit(1))
    measured = _ry()
    measured.measure_all()
    measured.h(0)
    with pytest.raises(ValueError, match="ansatz"):
        check_ansatz(measured)
    assert check_ansatz(_ry()).num_parameters == 1
    obj = EnergyObjective(SparsePauliOp("Z"), _ry())  # one group is enough
    assert (obj.shots, obj.noise, obj.point_streams, obj.allocation) == (1000, "shots", False, None)
    assert obj.backend.name == "torch"
    assert obj.backend.device == "CPU"
    assert (obj.evaluations, obj.shots_used, obj.num_parameters) == (0, 0, 1)
    assert obj.last_stds.shape == (0,)
    assert obj.last_group_shots.tolist() == [1000]
    assert obj.last_group_shots.dtype == np.int64
    assert (obj.cost_per_evaluation, obj.cost_unit, obj.shots_per_evaluation) == (1000, "shots", 1000)
    two = EnergyObjective(H1, _ry(), shots=30)
    assert two.shots_per_evaluation == 60
    assert two.cost_per_evaluation == 60
    assert EnergyObjective(H1, _ry(), point_streams=True).point_streams is True  # the default executor is serial
    with pytest.raises(ValueError, match="only identity terms"):
        EnergyObjective(SparsePauliOp("I", 2.0), _ry())


def test_points_shapes_types_and_refusals():
    obj = EnergyObjective(SparsePauliOp(["ZI", "IX"], [1.0, 1.0]), _ry2(), noise="exact")
    assert obj.points([1, 2]).tolist() == [[1.0, 2.0]]
    assert obj.points([1, 2]).dtype == np.float64
    assert obj.points(torch.tensor([[0.5, 1.0], [2.0, 3.0]], dtype=torch.float32)).shape == (2, 2)
    arr = np.array([[0.1, 0.2]])
    assert obj.points(arr) is not arr
    for bad in ([1.0, 2.0, 3.0], [[1.0], [2.0]], np.zeros((1, 2, 2)), 0.5):
        with pytest.raises(ValueError, match=r"^parameters must have 2 entries per point"):
            obj.points(bad)
    with pytest.raises(ValueError, match="theta must have 2"):
        obj.points([1.0], "theta")
    with pytest.raises(ValueError, match=r"^parameters contain NaN or Inf"):
        obj.points([0.0, np.nan])


def test_sample_draws_from_the_callers_generator_and_counts_every_shot():
    obj = EnergyObjective(H1, _ry(), shots=25)
    energies = obj.sample(POINTS, np.random.default_rng(8))
    expected, stds = _twin(_ry(), H1, POINTS, 25, 8)
    np.testing.assert_array_equal(energies, expected)
    np.testing.assert_array_equal(obj.last_stds, stds)
    assert (obj.evaluations, obj.shots_used) == (3, 3 * 25 * 2)
    energies = obj.sample([0.4], np.random.default_rng(8), shots=7)  # a one-off shot count
    np.testing.assert_array_equal(energies, _twin(_ry(), H1, [[0.4]], 7, 8)[0])
    assert (obj.evaluations, obj.shots_used, obj.shots) == (4, 150 + 14, 25)
    with pytest.raises(ValueError, match="shots"):
        obj.sample([0.4], np.random.default_rng(8), shots=0)
    # through the NoisyBlackBox: a torch generator, the dtype of the points kept
    gen = torch.Generator().manual_seed(4)
    twin = numpy_from_torch(torch.Generator().manual_seed(4))
    out = obj._sample(torch.tensor([[0.2], [0.9]], dtype=torch.float32), gen)
    assert out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), _twin_rng(_ry(), H1, [[0.2], [0.9]], 25, twin).astype(np.float32))


def _twin_rng(circuit, observable, values, shots, rng):
    plan = MeasurementPlan(SparsePauliOp(observable), circuit.num_qubits)
    return sample_energies(make_backend(circuit, "torch", "CPU"), plan, np.asarray(values, float), shots, rng)[0]


def test_sample_with_point_streams_goes_through_the_sharding():
    with EnergyObjective(H1, _ry(), shots=20, point_streams=True) as obj:
        energies = obj.sample(POINTS, np.random.default_rng(6))
        circuit = _ry()
        expected = make_sharding(True, "serial", None, "torch").sample(
            make_backend(circuit, "torch", "CPU"),
            circuit,
            MeasurementPlan(H1, 1),
            POINTS,
            20,
            np.random.default_rng(6),
            "shots",
        )
        np.testing.assert_array_equal(energies, expected[0])
        np.testing.assert_array_equal(obj.last_stds, expected[1])
        assert (obj.evaluations, obj.shots_used) == (3, 120)
    obj.close()
    EnergyObjective(H1, _ry()).close()  # no sharding: a no-op


def test_allocated_sampling_follows_the_allocator_and_feeds_it():
    alloc = ShotAllocator(2, precision=0.1, pilot_shots=30)
    twin = ShotAllocator(2, precision=0.1, pilot_shots=30)
    obj = EnergyObjective(H1, _ry(), shots=5, allocation=alloc)
    assert obj.allocation is alloc
    plan, backend, rng = MeasurementPlan(H1, 1), make_backend(_ry(), "torch", "CPU"), np.random.default_rng(2)
    gen = np.random.default_rng(2)
    for call in range(2):
        energies = obj.sample(POINTS, gen)
        shots = twin.shots()
        counts = backend.counts(POINTS, plan, shots, rng)
        expected, stds = plan.estimate(counts, shots)
        twin.update(group_variances(plan, counts, shots), shots)
        np.testing.assert_array_equal(energies, expected)
        np.testing.assert_array_equal(obj.last_stds, stds)
        np.testing.assert_array_equal(obj.last_group_shots, shots)
        assert obj.cost_per_evaluation == float(shots.sum())
        if call == 0:
            assert shots.tolist() == [30, 30]
            assert obj.shots_used == 3 * 60
            assert obj.evaluations == 3
    assert obj.evaluations == 6
    assert alloc.history == twin.history
    # a given shot count bypasses the allocator
    obj.sample([0.4], np.random.default_rng(0), shots=9)
    assert len(alloc.history) == 2
    assert obj.evaluations == 7


def test_allocation_is_refused_where_it_cannot_apply():
    with pytest.raises(TypeError, match="allocation must be None or a ShotAllocator"):
        EnergyObjective(H1, _ry(), allocation=3)
    with pytest.raises(ValueError, match="allocation has 3 groups but the hamiltonian has 2"):
        EnergyObjective(H1, _ry(), allocation=ShotAllocator(3, precision=0.1))
    for kwargs in ({"noise": "exact"}, {"point_streams": True}):
        with pytest.raises(ValueError, match="allocation needs noise='shots' and point_streams=False"):
            EnergyObjective(H1, _ry(), allocation=ShotAllocator(2, precision=0.1), **kwargs)


def test_exact_variance_and_predicted_std_closed_forms():
    t = POINTS[:, 0]
    exact = np.cos(t) + 0.5 * np.sin(t)
    var = np.sin(t) ** 2 + 0.25 * np.cos(t) ** 2
    obj = EnergyObjective(H1, _ry(), shots=16)
    np.testing.assert_allclose(obj.exact(POINTS), exact, rtol=0, atol=1e-14)
    np.testing.assert_allclose(obj.variance(POINTS), var, rtol=0, atol=1e-14)
    np.testing.assert_allclose(obj.predicted_std(POINTS), np.sqrt(var / 16), rtol=1e-14, atol=0)
    np.testing.assert_allclose(obj.predicted_std(POINTS, shots=4), np.sqrt(var / 4), rtol=1e-14, atol=0)
    assert (obj.evaluations, obj.shots_used) == (0, 0)  # free
    gauss = EnergyObjective(H1, _ry(), shots=16, noise="gaussian-precision")
    np.testing.assert_array_equal(gauss.predicted_std(POINTS), [0.25] * 3)
    np.testing.assert_array_equal(gauss.predicted_std(POINTS, shots=4), [0.5] * 3)
    np.testing.assert_array_equal(EnergyObjective(H1, _ry(), noise="exact").predicted_std(POINTS), [0.0] * 3)


# =================================================================================================== adaptive.py


class _Scripted(ParameterShift):
    """A ParameterShift whose estimates are scripted ``(gradient, grad_variance)`` pairs; it records the shots and
    the cost per evaluation the controller set on the objective before each estimate."""

    script: ClassVar[list[tuple[list[float], float]]] = []

    def __init__(self, objective):
        super().__init__(objective)
        self.seen: list[tuple[int, float]] = []
        self.calls = 0

    def estimate(self, params, generator):
        grad, variance = self.script[self.calls]
        self.calls += 1
        self.seen.append((self.objective.shots, self.objective.cost_per_evaluation))
        g = torch.tensor(grad, dtype=torch.float64)
        return Estimate(g, 0.5, Cost(evaluations=2), {"grad_variance": variance, "tag": 1.0})


def _reference(script, *, snr, min_shots, max_shots, growth, smoothing):
    """The documented rule, transcribed: averages of (power - noise) and noise * shots, bias-corrected; the next
    shots ``snr^2 v / S`` (no limit while S <= 1e-6 v) within [min, max] and a factor ``growth`` of the last."""
    shots, p_avg, n_avg, out = min_shots, 0.0, 0.0, []
    for k, (grad, noise) in enumerate(script, start=1):
        power = float(sum(g * g for g in grad))
        p_avg = smoothing * p_avg + (1 - smoothing) * (power - noise)
        n_avg = smoothing * n_avg + (1 - smoothing) * noise * shots
        signal, per_shot = p_avg / (1 - smoothing**k), n_avg / (1 - smoothing**k)
        wanted = snr**2 * per_shot / signal if signal > 1e-6 * per_shot else math.inf
        lo, hi = max(min_shots, shots / growth), min(max_shots, shots * growth)
        nxt = max(min_shots, min(max_shots, math.ceil(min(max(wanted, lo), hi))))
        ratio = math.sqrt(max(signal, 0.0) * shots / per_shot) if per_shot > 0 else math.inf
        out.append({"shots": float(shots), "power": power, "noise": noise, "snr": ratio, "next_shots": float(nxt)})
        shots = nxt
    return out, shots


ADAPT_H = SparsePauliOp(["ZZ", "XX"], [1.0, 1.0])  # two groups: ZZ and XX do not commute qubit-wise

SCRIPT = [
    ([0.0, 0.0], 0.0),  # nothing measured: no noise, no signal (infinite SNR, the shots grow)
    ([0.3, 0.4], 0.01),  # |g|^2 = 0.25: a clear signal, the shots fall
    ([0.05, 0.0], 0.004),  # signal below the per-shot noise (S < v): finite wanted shots, under the floor
    ([0.0, 0.01], 0.02),  # power below its noise: the averaged signal turns negative
    ([1.0, 1.0], 0.5),
    ([0.2, 0.1], 0.3),
    ([0.02, 0.01], 0.001),
    ([2.0, 0.0], 0.0001),
]


@pytest.mark.parametrize(
    "settings",
    [
        {"snr": 1.0, "min_shots": 10, "max_shots": 100_000, "growth": 2.0, "smoothing": 0.8},
        {"snr": 0.1, "min_shots": 3, "max_shots": 50, "growth": 1.5, "smoothing": 0.5},
        {"snr": 3.0, "min_shots": 2, "max_shots": 40, "growth": 3.0, "smoothing": 0.0},
    ],
)
def test_adaptive_shots_follow_the_documented_rule_exactly(settings):
    _Scripted.script = SCRIPT
    obj = EnergyObjective(ADAPT_H, _ry2(), shots=1)
    adaptive = AdaptiveShots(obj, _Scripted, **settings)
    expected, final = _reference(SCRIPT, **settings)
    x, gen = torch.zeros(2, dtype=torch.float64), torch.Generator().manual_seed(0)
    for k in range(len(SCRIPT)):
        est = adaptive.estimate(x, gen)
        assert est.value == 0.5
        assert est.cost == Cost(evaluations=2)
        np.testing.assert_array_equal(est.grad.numpy(), SCRIPT[k][0])
        assert est.stats == {
            "grad_variance": SCRIPT[k][1],
            "tag": 1.0,
            "shots_per_group": expected[k]["shots"],
            "snr": expected[k]["snr"],
        }
    got = list(adaptive.history)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e)
        for key in e:
            assert g[key] == pytest.approx(e[key], rel=1e-12, abs=1e-300), (key, g, e)
    assert adaptive.shots == final
    # the objective's shots and cost were set before each estimate (2 groups per evaluation)
    assert adaptive.inner.seen == [(int(e["shots"]), 2.0 * e["shots"]) for e in expected]
    assert obj.shots == int(expected[-1]["shots"])
    if settings["snr"] == 0.1:
        # the case the floor of the signal decides: S between 1e-6 v and v, so the wanted count is finite
        assert any(e["next_shots"] < e["shots"] for e in expected[2:])


def test_adaptive_shots_defaults_and_history_bound():
    _Scripted.script = SCRIPT
    obj = EnergyObjective(ADAPT_H, _ry2(), shots=1)
    adaptive = AdaptiveShots(obj, _Scripted)
    assert (adaptive.snr, adaptive.min_shots, adaptive.max_shots) == (1.0, 10, 100_000)
    assert (adaptive.growth, adaptive.smoothing, adaptive.history_size) == (2.0, 0.8, 10_000)
    assert adaptive.shots == 10
    assert adaptive.history.maxlen == 10_000
    assert isinstance(AdaptiveShots(obj).inner, ParameterShift)  # the default inner estimator
    short = AdaptiveShots(obj, _Scripted, history_size=3)
    x, gen = torch.zeros(2, dtype=torch.float64), torch.Generator().manual_seed(0)
    for _ in range(5):
        short.estimate(x, gen)
    expected, _ = _reference(SCRIPT[:5], snr=1.0, min_shots=10, max_shots=100_000, growth=2.0, smoothing=0.8)
    assert [h["shots"] for h in short.history] == [e["shots"] for e in expected[2:]]


def test_adaptive_shots_powers_and_noises_from_the_real_estimators():
    """ParameterShift: |g|^2 and its grad_variance. SPSA with s resamplings: the mean squared entry of g and
    sum_j (se(x + c d_j)^2 + se(x - c d_j)^2) / (4 c^2 s^2), from the objective's per-point standard errors."""
    h = SparsePauliOp(["ZI", "IX", "XZ"], [1.0, 0.7, -0.4])
    x = torch.tensor([0.4, -1.1], dtype=torch.float64)
    obj = EnergyObjective(h, _ry2(), shots=1)
    adaptive = AdaptiveShots(obj, min_shots=12)
    est = adaptive.estimate(x, torch.Generator().manual_seed(3))
    twin_obj = EnergyObjective(h, _ry2(), shots=12)
    twin = ParameterShift(twin_obj).estimate(x, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(est.grad.numpy(), twin.grad.numpy())
    assert adaptive.history[0]["power"] == float(twin.grad.pow(2).sum())
    assert adaptive.history[0]["noise"] == twin.stats["grad_variance"]
    assert est.cost == twin.cost
    for resamplings in (1, 3):
        obj = EnergyObjective(h, _ry2(), shots=1)
        spsa = AdaptiveShots(
            obj, lambda o, r=resamplings: ng.SPSA(o, c=0.3, gamma=0.2, resamplings=r), min_shots=9, smoothing=0.0
        )
        twin_obj = EnergyObjective(h, _ry2(), shots=9)
        inner = ng.SPSA(twin_obj, c=0.3, gamma=0.2, resamplings=resamplings)
        for k in range(2):
            gen, twin_gen = torch.Generator().manual_seed(10 + k), torch.Generator().manual_seed(10 + k)
            spsa.estimate(x, gen)
            twin_obj.shots = int(spsa.history[k]["shots"])
            ref = inner.estimate(x, twin_gen)
            stds, ck, s = twin_obj.last_stds, float(ref.stats["c_k"]), resamplings
            assert ck != 2.0
            assert len(stds) == 2 * s
            power = float(ref.grad.pow(2).sum()) / ref.grad.numel()
            noise = float((stds[:s] ** 2 + stds[s:] ** 2).sum()) / (4 * ck * ck) / (s * s)
            assert spsa.history[k]["power"] == pytest.approx(power, rel=1e-13)
            assert spsa.history[k]["noise"] == pytest.approx(noise, rel=1e-13)


def test_adaptive_state_round_trip_and_refusals():
    _Scripted.script = SCRIPT
    obj = EnergyObjective(ADAPT_H, _ry2(), shots=1)
    a = AdaptiveShots(obj, _Scripted, smoothing=0.5)
    fresh = a.state_dict()
    assert fresh == {"shots": 10, "power": 0.0, "noise": 0.0, "count": 0, "inner": {}}
    x, gen = torch.zeros(2, dtype=torch.float64), torch.Generator().manual_seed(0)
    for _ in range(4):  # the fourth leaves a negative averaged signal
        a.estimate(x, gen)
    state = a.state_dict()
    assert state["count"] == 4
    b = AdaptiveShots(obj, _Scripted, smoothing=0.5)
    b.load_state_dict(state)
    assert b.state_dict() == state
    b.inner.calls = a.inner.calls
    assert b.estimate(x, gen).stats == a.estimate(x, gen).stats
    assert b.state_dict() == a.state_dict()
    c = AdaptiveShots(obj, _Scripted)
    c.load_state_dict(fresh)  # a zero count and zero noise are valid
    assert c.state_dict() == fresh
    bad = [
        {k: v for k, v in state.items() if k != "count"},
        {**state, "shots": 0},
        {**state, "count": -1},
        {**state, "power": float("inf")},
        {**state, "noise": -0.1},
        {**state, "inner": {"shift": 1.0}},
    ]
    for s in bad:
        with pytest.raises(ValueError):
            c.load_state_dict(s)
        assert c.state_dict() == fresh


def test_adaptive_settings_at_their_boundaries():
    obj = EnergyObjective(ADAPT_H, _ry2(), shots=1)
    same = AdaptiveShots(obj, min_shots=7, max_shots=7, growth=1.01, smoothing=0.0)
    assert (same.min_shots, same.max_shots, same.growth, same.smoothing) == (7, 7, 1.01, 0.0)
    for kwargs, match in (
        ({"growth": 1.0}, "growth must be > 1"),
        ({"smoothing": 1.0}, "smoothing"),
        ({"min_shots": 8, "max_shots": 7}, "max_shots must be >= min_shots=8"),
        ({"snr": -1.0}, "snr"),
        ({"history_size": 0}, "history_size"),
    ):
        with pytest.raises(ValueError, match=match):
            AdaptiveShots(obj, **kwargs)
    AdaptiveShots(obj, smoothing=0.999)
    with pytest.raises(TypeError, match="inner must be an estimator factory"):
        AdaptiveShots(obj, inner=ParameterShift(obj))
    with pytest.raises(TypeError, match=r"inner must build a ParameterShift or a noisygrad\.SPSA"):
        AdaptiveShots(obj, inner=lambda o: ng.CentralDifference(o))
    with pytest.raises(TypeError, match="objective must be an EnergyObjective"):
        AdaptiveShots(lambda x: x)
    for objective in (
        EnergyObjective(H1, _ry(), noise="exact"),
        EnergyObjective(H1, _ry(), noise="gaussian-precision"),
        EnergyObjective(H1, _ry(), allocation=ShotAllocator(2, precision=0.1)),
    ):
        with pytest.raises(ValueError, match="AdaptiveShots needs an objective with noise='shots' and no allocation"):
            AdaptiveShots(objective)
    assert isinstance(AdaptiveShots(obj, inner=lambda o: ng.SPSA(o, c=0.2)).inner, ng.SPSA)


def test_no_warnings_from_the_default_paths():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        shot_estimator(5, seed=0).run([(_ry(), H1, POINTS)]).result()


def test_measurement_plan_keeps_its_observable_and_an_identity_only_one_is_its_constant() -> None:
    # the plan keeps the checked observable (vqe reads it for the exact reference energy)
    observable = SparsePauliOp(["ZI", "XX"], [0.5, -0.25])
    assert MeasurementPlan(observable).observable == observable
    # an observable of identity terms alone needs no measurement: zero groups, exact energy its constant, variance 0
    plan = MeasurementPlan(SparsePauliOp(["II", "II"], [0.75, -0.25]), 2)
    assert plan.num_groups == 0
    states = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]], dtype=torch.complex128)
    probabilities = plan.probabilities(states)
    assert probabilities.shape == (2, 0, 4)
    np.testing.assert_array_equal(plan.exact(probabilities), [0.5, 0.5])
    np.testing.assert_array_equal(plan.variance(probabilities), [0.0, 0.0])
