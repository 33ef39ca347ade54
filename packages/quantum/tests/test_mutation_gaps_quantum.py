"""Exact tests of noisygrad.quantum's stopping rule, vqe's SPSA gains, the gradient estimators, the noise models and
the shot allocation: the behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

The energies come from ``noise="gaussian-precision"`` (the exact statevector energy plus ``N(0, 1/shots)`` drawn
from the caller's generator) or ``noise="exact"``, so every check is recomputed from a twin of the generator and
compared to rounding, never to a Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from qiskit.circuit import Parameter, QuantumCircuit
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp

import noisygrad as ng
from noisygrad.quantum import EnergyObjective, ParameterShift, finite_difference, h2
from noisygrad.quantum._gains import SPSAGains, spsa_shorthand
from noisygrad.quantum.allocation import (
    ShotAllocator,
    equal_shots,
    exact_group_sigmas,
    group_variances,
    optimal_shots,
    saving,
)
from noisygrad.quantum.gradients import SHIFT_RULE_GATES
from noisygrad.quantum.measurement import MAX_SHOTS, MeasurementPlan
from noisygrad.quantum.sampling import (
    MIN_PRECISION,
    NOISE_MODELS,
    check_noise,
    check_precision,
    check_seed,
    check_shots,
    sample_energies,
)
from noisygrad.quantum.spsa import SPALL_GAMMA
from noisygrad.quantum.stopping import ShotAwareStopping
from noisygrad.rng import numpy_from_torch

X0 = np.linspace(-0.7, 0.9, 8)  # a point of efficient_su2(2, reps=1) (8 parameters), away from symmetric angles


def _objective(shots: int = 100, noise: str = "gaussian-precision") -> EnergyObjective:
    return EnergyObjective(h2(), efficient_su2(2, reps=1), shots=shots, noise=noise)


def _gaussian_energies(objective: EnergyObjective, rng: np.random.Generator, xs: list, shots: int) -> list[float]:
    """What ``noise="gaussian-precision"`` draws at each point of ``xs`` in turn, one call per point."""
    return [float(objective.exact(x)[0] + rng.normal(0.0, 1 / math.sqrt(shots), size=1)[0]) for x in xs]


# -- ShotAwareStopping --------------------------------------------------------------------------------------------


def test_stopping_defaults_and_the_seed_stream():
    objective = _objective(shots=100)
    rule = ShotAwareStopping(objective)
    assert (rule.window, rule.every, rule.z, rule.shots) == (3, 10, 1.0, 100)
    assert isinstance(rule.z, float)
    assert rule.state_dict()["calls"] == 0
    assert rule.state_dict()["quiet"] == 0
    assert rule.stopped is False
    assert rule.history == []
    assert rule.energy is None
    assert rule.stderr is None
    assert rule.objective is objective
    # the default seed is 0: the check draws what default_rng(0) draws
    expected = _gaussian_energies(_objective(), np.random.default_rng(0), [X0], 100)[0]
    assert rule.check(X0, 7) is False
    assert rule.energy == expected
    assert ShotAwareStopping(_objective(), seed=0).check(X0, 7) is False
    # an explicit int seed, and a Generator used as is (the caller's stream goes on)
    gen = np.random.default_rng(5)
    twin = np.random.default_rng(5)
    rule = ShotAwareStopping(_objective(), seed=gen)
    rule.check(X0, 1)
    assert rule.energy == _gaussian_energies(objective, twin, [X0], 100)[0]
    assert gen.bit_generator.state == twin.bit_generator.state
    with pytest.raises(ValueError, match="seed"):
        ShotAwareStopping(_objective(), seed=-1)


def test_stopping_check_records_each_entry_exactly():
    objective = _objective(shots=100)
    rule = ShotAwareStopping(objective, seed=4, window=5, shots=10000, z=2.5)
    assert rule.shots == 10000
    xs = [X0, X0 + 0.3, X0 + 0.31]
    energies = _gaussian_energies(objective, np.random.default_rng(4), xs, 10000)
    se = 1 / math.sqrt(10000)  # gaussian-precision: the standard error is 1/sqrt(shots), the rule's shots
    groups = objective.plan.num_groups
    for i, (x, e) in enumerate(zip(xs, energies, strict=True)):
        rule.check(x, 10 * i + 3)
        entry = rule.history[-1]
        assert entry["step"] == 10 * i + 3
        assert entry["energy"] == e
        assert entry["stderr"] == pytest.approx(se, rel=1e-15)
        assert entry["shots"] == (i + 1) * 10000 * groups == objective.shots_used
        assert rule.energy == e
        assert rule.stderr == entry["stderr"]
        if i == 0:
            assert set(entry) == {"step", "energy", "stderr", "shots"}
            continue
        assert set(entry) == {"step", "energy", "stderr", "shots", "change", "bound", "quiet"}
        assert entry["change"] == pytest.approx(e - energies[i - 1], rel=1e-14)
        assert entry["bound"] == pytest.approx(2.5 * math.sqrt(2) * se, rel=1e-14)
        expected_quiet = 1 if abs(e - energies[i - 1]) < entry["bound"] else 0
        assert entry["quiet"] == expected_quiet
    # a move of 0.3 radians changes the energy by 0.13, far more than 2.5 combined standard errors (0.035);
    # a move of 0.01 by 0.004
    assert [h["quiet"] for h in rule.history[1:]] == [0, 1]
    assert rule.energy == energies[-1] != rule.history[1]["energy"]


def test_stopping_reports_the_last_checks_energy_and_stderr():
    # real shot noise: each check's standard error comes from its own samples, so the three differ
    objective = _objective(shots=100, noise="shots")
    rule = ShotAwareStopping(objective, seed=5, every=1)
    for k, x in enumerate([X0, X0 + 0.5, X0 - 0.8]):
        rule.check(x, k)
    stderrs = [h["stderr"] for h in rule.history]
    assert len(set(stderrs)) == 3
    assert rule.stderr == stderrs[-1]
    assert rule.energy == rule.history[-1]["energy"]
    assert rule.history[-1]["bound"] == pytest.approx(math.hypot(stderrs[2], stderrs[1]), rel=1e-15)


def test_stopping_counts_quiet_checks_and_stops_at_exactly_window():
    # z so large that every change is "no change": quiet counts 1, 2, 3, ... and the rule stops when it reaches window
    rule = ShotAwareStopping(_objective(), seed=1, window=2, z=1e6)
    assert [rule.check(X0, k) for k in range(3)] == [False, False, True]
    assert [h.get("quiet") for h in rule.history] == [None, 1, 2]
    assert rule.stopped is True
    # a large change resets the count to zero
    rule = ShotAwareStopping(_objective(), seed=1, window=2, z=1e-3)
    assert [rule.check(X0 + 0.5 * k, k) for k in range(3)] == [False, False, False]
    assert [h.get("quiet") for h in rule.history] == [None, 0, 0]
    # window=1: the first check has nothing to compare, the second stops
    rule = ShotAwareStopping(_objective(), seed=1, window=1, z=1e6)
    assert rule.check(X0, 0) is False
    assert rule.stopped is False
    assert rule.check(X0, 1) is True


def test_stopping_change_equal_to_the_bound_is_not_quiet():
    # noise="exact": the same point gives the same energy with standard error 0, so |change| = bound = 0, which is
    # not strictly below the bound: the rule never stops on a noise-free plateau it cannot resolve
    rule = ShotAwareStopping(_objective(noise="exact"), window=1)
    assert [rule.check(X0, k) for k in range(3)] == [False, False, False]
    assert [h.get("quiet") for h in rule.history] == [None, 0, 0]
    assert rule.history[1]["change"] == 0.0
    assert rule.history[1]["bound"] == 0.0


def test_stopping_callback_checks_every_every_steps():
    objective = _objective()
    rule = ShotAwareStopping(objective, seed=2, every=3, window=1, z=1e6)
    results = [rule(SimpleNamespace(x=X0, step=100 + i)) for i in range(6)]
    assert results == [False, False, False, False, False, True]
    assert [h["step"] for h in rule.history] == [102, 105]
    assert rule.state_dict()["calls"] == 6
    expected = _gaussian_energies(objective, np.random.default_rng(2), [X0, X0], 100)
    assert [h["energy"] for h in rule.history] == expected


def test_stopping_termination_checker_checks_accepted_steps_every_every_calls():
    rule = ShotAwareStopping(_objective(), seed=2, every=2, window=1, z=1e6)
    calls = [(1, True), (2, True), (3, True), (4, False), (5, True), (6, True)]
    out = [rule.termination_checker(n, X0, 0.0, 0.1, accepted) for n, accepted in calls]
    # call 2 is checked; call 4 is rejected (not checked); call 6 is checked and is quiet against call 2
    assert out == [False, False, False, False, False, True]
    assert [h["step"] for h in rule.history] == [2, 6]
    assert rule.state_dict()["calls"] == 6


def test_stopping_refuses_a_non_finite_check():
    class NaNStderr(EnergyObjective):
        """The real objective whose reported standard error is made NaN (a simulator cannot produce one)."""

        def sample(self, values, rng, shots=None):
            out = super().sample(values, rng, shots=shots)
            self.last_stds = np.full_like(self.last_stds, np.nan)
            return out

    objective = NaNStderr(h2(), efficient_su2(2, reps=1), shots=100, noise="gaussian-precision")
    with pytest.raises(ValueError, match="the energy check at step 4 gave a non-finite value"):
        ShotAwareStopping(objective).check(X0, 4)


@pytest.mark.parametrize("z", [0, 0.0, -1.0, float("inf"), float("nan"), "1", True])  # True is not 1.0
def test_stopping_refuses_a_bad_z(z):
    with pytest.raises(ValueError, match="z must be a finite number > 0"):
        ShotAwareStopping(_objective(), z=z)


def test_stopping_accepts_small_positive_z_and_refuses_bad_counts():
    assert ShotAwareStopping(_objective(), z=0.5).z == 0.5
    assert ShotAwareStopping(_objective(), z=2).z == 2.0
    for name in ("window", "every", "shots"):
        with pytest.raises(ValueError, match=name):
            ShotAwareStopping(_objective(), **{name: 0})
    with pytest.raises(TypeError, match="objective must be an EnergyObjective"):
        ShotAwareStopping(None)  # type: ignore[arg-type]


def test_stopping_state_round_trip_continues_bit_for_bit():
    objective = _objective()
    fresh = ShotAwareStopping(objective, seed=3, every=2, window=2, z=1e6)
    assert set(fresh.state_dict()) == {"rng", "history", "calls", "quiet", "stopped"}
    infos = [SimpleNamespace(x=X0 + 0.01 * i, step=i) for i in range(8)]
    full = ShotAwareStopping(_objective(), seed=3, every=2, window=2, z=1e6)
    full_out = [full(info) for info in infos]
    part = ShotAwareStopping(_objective(), seed=3, every=2, window=2, z=1e6)
    for info in infos[:5]:
        part(info)
    state = part.state_dict()
    assert state["calls"] == 5
    assert state["quiet"] == 1
    assert state["stopped"] is False
    assert len(state["history"]) == 2
    rest = ShotAwareStopping(part.objective, seed=99, every=2, window=2, z=1e6)  # the run's objective goes on
    rest.load_state_dict(state)
    assert rest.state_dict() == state
    rest_out = [rest(info) for info in infos[5:]]
    assert rest_out == full_out[5:] == [True, False, True]
    assert rest.history == full.history
    assert rest.state_dict() == full.state_dict()
    # a stopped rule's flag comes back too, and history entries are copies
    done = ShotAwareStopping(_objective(), seed=1)
    done.load_state_dict(full.state_dict())
    assert done.stopped is True
    assert done.state_dict()["quiet"] == 3
    done.history[0]["energy"] = 0.0
    assert full.history[0]["energy"] != 0.0
    # a fresh rule's state (zero counters) loads
    other = ShotAwareStopping(_objective(), seed=8)
    other.load_state_dict(fresh.state_dict())
    assert other.state_dict() == fresh.state_dict()


@pytest.mark.parametrize(
    "change",
    [
        lambda s: [s],
        lambda s: {k: v for k, v in s.items() if k != "stopped"},
        lambda s: {**s, "extra": 1},
        lambda s: {**s, "calls": -1},
        lambda s: {**s, "quiet": -1},
        lambda s: {**s, "rng": {"bit_generator": "PCG64"}},
    ],
    ids=["not-a-mapping", "missing-key", "extra-key", "negative-calls", "negative-quiet", "bad-rng"],
)
def test_stopping_refuses_a_bad_state_before_changing_anything(change):
    rule = ShotAwareStopping(_objective(), seed=3, every=1, z=1e6)
    rule.check(X0, 0)
    rule.check(X0, 1)
    before = rule.state_dict()
    with pytest.raises(ValueError, match="state"):
        rule.load_state_dict(change(before))
    assert rule.state_dict() == before


# -- vqe's SPSA set-up (_gains) -----------------------------------------------------------------------------------


def test_spsa_shorthand_defaults_and_given_settings():
    made = spsa_shorthand(None, None, None)
    assert made.func is ng.SPSA
    assert made.keywords == {"c": 0.2, "gamma": SPALL_GAMMA, "resamplings": 1}
    assert SPALL_GAMMA == 0.101
    made = spsa_shorthand(0.35, 0.25, 4)
    assert made.keywords == {"c": 0.35, "gamma": 0.25, "resamplings": 4}
    # perturbation_decay's interval is [0, 1], closed at both ends
    assert spsa_shorthand(None, 0.0, None).keywords["gamma"] == 0.0
    assert spsa_shorthand(None, 1.0, None).keywords["gamma"] == 1.0
    for bad in (-0.01, 1.01, 1.5):
        with pytest.raises(ValueError, match=r"perturbation_decay must lie in \[0.0, 1.0\]"):
            spsa_shorthand(None, bad, None)
    with pytest.raises(ValueError, match="perturbation"):
        spsa_shorthand(0.0, None, None)
    with pytest.raises(ValueError, match="resamplings"):
        spsa_shorthand(None, None, 0)
    # the partial builds the core's estimator with those settings
    estimator = spsa_shorthand(0.35, 0.25, 4)(_objective())
    assert (estimator.c, estimator.gamma, estimator.resamplings) == (0.35, 0.25, 4)


def test_spsa_gains_defaults_checks_and_frozen():
    gains = SPSAGains()
    assert gains.stability == 0.0
    assert isinstance(gains.stability, float)
    assert gains.target_step == 2 * math.pi / 10
    assert gains.calibration_samples == 25
    with pytest.raises(dataclasses.FrozenInstanceError):
        gains.target_step = 1.0  # type: ignore[misc]
    given = SPSAGains(stability=0, target_step=0.5, calibration_samples=3)
    assert (given.stability, given.target_step, given.calibration_samples) == (0.0, 0.5, 3)
    assert SPSAGains(stability=12).stability == 12.0
    # the settings are stored as checked: plain floats and an int, whatever numeric types were given
    typed = SPSAGains(stability=np.float32(2.5), target_step=1, calibration_samples=np.int64(4))
    assert [type(v) for v in (typed.stability, typed.target_step, typed.calibration_samples)] == [float, float, int]
    assert (typed.stability, typed.target_step, typed.calibration_samples) == (2.5, 1.0, 4)
    for kwargs, name in (
        ({"stability": -1.0}, "stability"),
        ({"target_step": 0.0}, "target_step"),
        ({"calibration_samples": 0}, "calibration_samples"),
    ):
        with pytest.raises(ValueError, match=name):
            SPSAGains(**kwargs)


@pytest.mark.parametrize("stability", [None, 7.0], ids=["default-stability", "stability-7"])
def test_spsa_gains_calibrate_is_spsa_calibrate_with_spalls_exponent(stability):
    x0 = torch.as_tensor(X0, dtype=torch.float64)
    gains = SPSAGains(stability=stability, target_step=0.4, calibration_samples=3)
    objective = _objective(shots=100)
    generator = torch.Generator().manual_seed(6)
    twin = torch.Generator().manual_seed(6)
    schedule, info = gains.calibrate(objective, x0, generator, 0.37)
    reference = ng.spsa_calibrate(
        _objective(shots=100),
        x0,
        generator=twin,
        c=0.37,
        target_step=0.4,
        alpha=0.602,
        stability=0.0 if stability is None else stability,
        samples=3,
    )
    a = reference.a
    assert info == {
        "a": a,
        "stability": 0.0 if stability is None else 7.0,
        "evaluations": 6.0,  # 2 * calibration_samples
        "shots": 6.0 * objective.shots_per_evaluation,
    }
    big_a = 0.0 if stability is None else 7.0
    for k in range(4):
        assert schedule(k) == pytest.approx(a / (big_a + k + 1) ** 0.602, rel=1e-14)
    assert torch.equal(generator.get_state(), twin.get_state())  # the perturbations came from the run's generator
    assert objective.shots_used == 6 * objective.shots_per_evaluation


# -- gradients: ParameterShift, finite_difference, the shift-rule check --------------------------------------------


def _one_gate_circuit(gate: str, angle: object = None, *, reuse: bool = False) -> QuantumCircuit:
    """Two qubits, ``ry(a)``, ``ry(b)``, then ``gate`` driven by its own parameter ``t`` (or by ``angle``, or by
    ``a`` again with ``reuse``)."""
    a, b, t = Parameter("a"), Parameter("b"), Parameter("t")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.ry(b, 1)
    theta = a if reuse else t if angle is None else angle
    if gate in ("rx", "ry", "rz", "p"):
        getattr(qc, gate)(theta, 0)
    else:
        getattr(qc, gate)(theta, 0, 1)
    qc.rx(0.4, 1)  # a fixed angle: not a parameter
    return qc


@pytest.mark.parametrize("gate", ["rx", "ry", "rz", "p", "rxx", "ryy", "rzz", "rzx"])
def test_parameter_shift_accepts_each_rotation_gate_and_is_exact_there(gate):
    assert SHIFT_RULE_GATES == ("rx", "ry", "rz", "p", "rxx", "ryy", "rzz", "rzx")
    qc = _one_gate_circuit(gate)
    objective = EnergyObjective(h2(), qc, noise="exact")
    assert ParameterShift(objective).objective is objective
    if gate in ("rxx", "ryy", "rzx"):
        return  # simulated by Aer here (seconds per call): accepted, the rule's exactness is checked on the others
    x = torch.tensor([0.3, -0.8, 0.6], dtype=torch.float64)
    grad = ParameterShift(objective).estimate(x, torch.Generator().manual_seed(0)).grad
    h = 1e-5
    numeric = [
        float((objective.exact(x.numpy() + h * e)[0] - objective.exact(x.numpy() - h * e)[0]) / (2 * h))
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(grad.numpy(), numeric, atol=1e-8)


@pytest.mark.parametrize(
    "build",
    [
        lambda: _one_gate_circuit("rx", 2 * Parameter("t")),  # an expression of the parameter
        lambda: _one_gate_circuit("crx"),  # a controlled rotation: four eigenvalues, no two-term rule
        lambda: _one_gate_circuit("rzz", reuse=True),  # parameter a drives two gates, ry and rzz
    ],
    ids=["expression", "controlled", "used-twice-by-rotations"],
)
def test_parameter_shift_refuses_a_parameter_outside_the_shift_rule(build):
    # the used-twice case: both uses are rotation gates, so only the count refuses it
    with pytest.raises(ValueError, match=r"parameter shift needs each parameter to be the plain angle of exactly one"):
        ParameterShift(EnergyObjective(h2(), build(), noise="exact"))


def test_parameter_shift_shift_range_and_objective_type():
    objective = _objective()
    assert ParameterShift(objective).shift == math.pi / 2
    assert ParameterShift(objective).objective is objective
    assert ParameterShift(objective, shift=3.0).shift == 3.0  # just inside (0, pi)
    for bad in (math.pi, 4.0):
        with pytest.raises(ValueError, match=r"shift must lie in \(0, pi\)"):
            ParameterShift(objective, shift=bad)
    with pytest.raises(ValueError, match="shift"):
        ParameterShift(objective, shift=0.0)
    with pytest.raises(TypeError, match="objective must be an EnergyObjective"):
        ParameterShift(ng.Energy(lambda v: float((v**2).sum())))  # type: ignore[arg-type]


@pytest.mark.parametrize("shift", [math.pi / 2, 1.1], ids=["default", "shift-1.1"])
def test_parameter_shift_estimate_is_its_closed_form_from_the_runs_generator(shift):
    shots = 400
    objective = _objective(shots=shots)
    estimator = ParameterShift(objective) if shift == math.pi / 2 else ParameterShift(objective, shift=shift)
    x = torch.as_tensor(X0, dtype=torch.float64)
    generator = torch.Generator().manual_seed(3)
    twin = torch.Generator().manual_seed(3)
    out = estimator.estimate(x, generator)
    points = np.concatenate([X0 + shift * np.eye(8), X0 - shift * np.eye(8)])
    values = objective.exact(points) + numpy_from_torch(twin).normal(0.0, 1 / math.sqrt(shots), size=16)
    scale = 2 * math.sin(shift)
    assert out.grad.dtype == torch.float64
    assert out.grad.shape == (8,)
    np.testing.assert_allclose(out.grad.numpy(), (values[:8] - values[8:]) / scale, rtol=1e-12, atol=1e-13)
    assert out.value is None
    # every point has standard error 1/sqrt(shots): the trace is 8 * 2 / (shots * scale**2)
    assert out.stats == {"grad_variance": pytest.approx(16 / (shots * scale**2), rel=1e-13)}
    assert out.cost == ng.Cost(evaluations=16, shots=16 * 2 * shots)  # 2 measurement groups
    assert torch.equal(generator.get_state(), twin.get_state())


def test_parameter_shift_keeps_the_parameters_dtype_and_shape():
    objective = _objective(noise="exact")
    grad64 = ParameterShift(objective).estimate(torch.as_tensor(X0), torch.Generator()).grad
    x32 = torch.as_tensor(X0, dtype=torch.float32).reshape(2, 4)
    grad32 = ParameterShift(objective).estimate(x32, torch.Generator()).grad
    assert grad32.dtype == torch.float32
    assert grad32.shape == (2, 4)
    np.testing.assert_allclose(grad32.reshape(-1).numpy(), grad64.numpy(), rtol=1e-4, atol=1e-5)
    assert x32.shape == (2, 4)  # the input is left as it was


def test_finite_difference_default_and_given_step():
    objective = _objective(noise="exact")
    assert isinstance(finite_difference(objective), ng.CentralDifference)
    assert finite_difference(objective).step == 0.1
    assert finite_difference(objective, step=0.25).step == 0.25
    out = finite_difference(objective, step=0.25).estimate(torch.as_tensor(X0), torch.Generator())
    points = np.concatenate([X0 + 0.25 * np.eye(8), X0 - 0.25 * np.eye(8)])
    values = objective.exact(points)
    np.testing.assert_allclose(out.grad.numpy(), (values[:8] - values[8:]) / 0.5, rtol=1e-12, atol=1e-13)


# -- sampling: the noise models and the checks of their inputs -----------------------------------------------------


def test_noise_models_are_the_three_documented_ones():
    assert NOISE_MODELS == ("shots", "gaussian-precision", "exact")
    for noise in NOISE_MODELS:
        assert check_noise(noise) == noise
    with pytest.raises(ValueError, match="noise must be one of"):
        check_noise("statevector")


def test_check_shots_boundaries():
    assert check_shots("shots", 1) == 1
    assert check_shots("shots", MAX_SHOTS) == MAX_SHOTS == 2**63 - 1
    with pytest.raises(ValueError, match=r"group_shots must be at most 9223372036854775807"):
        check_shots("group_shots", MAX_SHOTS + 1)
    with pytest.raises(ValueError, match="group_shots"):
        check_shots("group_shots", 0)


def test_check_seed_accepts_none_ints_from_zero_and_generators():
    gen = np.random.default_rng(4)
    assert check_seed(gen) is gen  # used as is: the caller's stream goes on
    fresh = check_seed(None)
    assert isinstance(fresh, np.random.Generator)
    assert fresh is not check_seed(None)
    assert check_seed(0).random() == np.random.default_rng(0).random()
    assert check_seed(np.int64(7)).random() == np.random.default_rng(7).random()
    with pytest.raises(ValueError, match=r"seed must be None, an int >= 0 or a numpy.random.Generator, got -1"):
        check_seed(-1)
    for bad in (True, 1.0, "3", [1]):
        with pytest.raises(TypeError, match=r"seed must be None, an int >= 0 or a numpy.random.Generator"):
            check_seed(bad)


def test_min_precision_is_one_over_the_root_of_max_shots():
    assert 1.0 / math.sqrt(MAX_SHOTS) == MIN_PRECISION
    assert 3.29e-10 < MIN_PRECISION < 3.30e-10


@pytest.mark.parametrize(
    ("precision", "noise", "expected"),
    [
        (0.5, "shots", 0.5),
        (1, "shots", 1.0),  # an int is a real number; 1 is not refused as if it were 0
        (1.0, "gaussian-precision", 1.0),
        (MIN_PRECISION, "shots", MIN_PRECISION),  # the smallest allowed: the boundary itself
        (0, "exact", 0.0),  # the precision is not used without noise, so 0 is allowed there
        (0.0, "exact", 0.0),
        (1e-12, "exact", 1e-12),  # below MIN_PRECISION is fine without noise
        (0.5, "exact", 0.5),
    ],
)
def test_check_precision_accepts(precision, noise, expected):
    value = check_precision("precision", precision, noise)
    assert value == expected
    assert type(value) is float


@pytest.mark.parametrize(
    ("precision", "noise", "error", "match"),
    [
        (True, "shots", TypeError, "precision must be a real number > 0, got bool"),
        ("0.1", "shots", TypeError, "precision must be a real number > 0, got str"),
        (None, "exact", TypeError, "precision must be a real number > 0, got NoneType"),
        (float("nan"), "shots", ValueError, "precision must be a finite number > 0"),
        (float("nan"), "exact", ValueError, "precision must be a finite number > 0"),
        (float("inf"), "shots", ValueError, "precision must be a finite number > 0"),
        (-0.5, "exact", ValueError, "precision must be a finite number > 0"),
        (0.0, "shots", ValueError, "precision=0 with noise='shots' would need infinitely many shots"),
        (0, "gaussian-precision", ValueError, "precision=0 with noise='gaussian-precision' would need"),
        (1e-12, "shots", ValueError, "precision=1e-12 asks for about"),
        (MIN_PRECISION * (1 - 1e-9), "gaussian-precision", ValueError, "the smallest precision allowed"),
    ],
)
def test_check_precision_refuses(precision, noise, error, match):
    with pytest.raises(error, match=match):
        check_precision("precision", precision, noise)


def test_sample_energies_of_a_constant_observable_are_exact_and_free():
    objective = _objective(noise="exact")
    plan = MeasurementPlan(SparsePauliOp(["II"], [2.5]), 2)
    assert plan.num_groups == 0
    energies, stds = sample_energies(objective.backend, plan, np.stack([X0, X0 + 1, X0 - 1]), 100, None)
    np.testing.assert_array_equal(energies, [2.5, 2.5, 2.5])
    np.testing.assert_array_equal(stds, [0.0, 0.0, 0.0])


def test_sample_energies_of_each_noise_model_from_the_callers_generator():
    objective = _objective(noise="exact")
    plan = MeasurementPlan(SparsePauliOp(["ZZ", "ZI", "XX"], [0.7, -0.3, 0.4]), 2)  # two groups: {ZZ, ZI}, {XX}
    assert plan.num_groups == 2
    one_group = MeasurementPlan(SparsePauliOp(["ZZ", "ZI", "II"], [0.7, -0.3, 0.25]), 2)
    assert one_group.num_groups == 1
    values = np.stack([X0, X0 + 0.4, X0 - 0.9])
    for p in (plan, one_group):
        exact = p.exact(objective.backend.probabilities(values, p))
        # exact: no draw, zero standard errors
        energies, stds = sample_energies(objective.backend, p, values, 100, None, "exact")
        np.testing.assert_array_equal(energies, exact)
        np.testing.assert_array_equal(stds, np.zeros(3))
        # shots (the default model): counts drawn from the caller's generator, estimated by the plan
        twin = np.random.default_rng(9)
        counts = objective.backend.counts(values, p, 50, twin)
        expected = p.estimate(counts, 50)
        energies, stds = sample_energies(objective.backend, p, values, 50, np.random.default_rng(9))
        np.testing.assert_array_equal(energies, expected[0])
        np.testing.assert_array_equal(stds, expected[1])
        # gaussian-precision: exact + N(0, precision) per point, precision 1/sqrt(shots) unless given
        for shots, precision, sd in ((64, None, 0.125), (64, 0.03, 0.03), (np.array([10] * p.num_groups), 0.2, 0.2)):
            rng = np.random.default_rng(2)
            energies, stds = sample_energies(objective.backend, p, values, shots, rng, "gaussian-precision", precision)
            noise = np.random.default_rng(2).normal(0.0, sd, size=3)
            np.testing.assert_allclose(energies, exact + noise, rtol=0, atol=1e-15)
            np.testing.assert_array_equal(stds, [sd] * 3)
    with pytest.raises(ValueError, match="noise='gaussian-precision' with shots per group needs the precision"):
        sample_energies(
            objective.backend, plan, values, np.array([10, 20]), np.random.default_rng(0), "gaussian-precision"
        )


# -- allocation: optimal and equal shots, group variances, the running allocator ----------------------------------


def test_check_sigmas_accepts_one_or_more_finite_non_negative_values():
    assert optimal_shots([2.0], precision=1.0).tolist() == [4]  # one group: ceil(2 * 2 / 1)
    assert optimal_shots([0.0, 1.0], precision=1.0).tolist() == [1, 1]  # a zero sigma is allowed; the floor is 1
    for bad in ([], [[1.0, 2.0]], 1.0, [1.0, np.nan], [np.inf], [-1.0, 2.0], [-0.5]):
        with pytest.raises(ValueError, match="sigmas must be"):
            optimal_shots(bad, precision=0.1)
    # integers are converted to floats before any arithmetic (their squares would overflow int64)
    assert saving([4_000_000_000, 4_000_000_000]) == 1.0
    assert saving([4_000_000_000, 0]) == 0.5


def test_check_target_needs_exactly_one_valid_target():
    assert optimal_shots([1.0], total=5).tolist() == [5]
    assert optimal_shots([1.0], precision=0.5).tolist() == [4]
    for kwargs in ({}, {"precision": 0.1, "total": 10}):
        with pytest.raises(ValueError, match="give exactly one of precision"):
            optimal_shots([1.0], **kwargs)
    for bad in (0, 0.0, -0.1, float("nan"), float("inf"), "0.1", True):  # a boolean is not a precision
        with pytest.raises(ValueError, match="precision must be a finite number > 0"):
            optimal_shots([1.0], precision=bad)


def test_optimal_shots_for_a_precision_is_its_closed_form():
    # m_g = max(ceil(sigma_g * sum(sigma) / eps**2), min_shots), all numbers exact in binary
    shots = optimal_shots([0.25, 1.5, 0.0], precision=0.5, min_shots=3)
    assert shots.dtype == np.int64
    assert shots.tolist() == [3, 11, 3]  # ceil(1.75) = 2 -> the floor 3, ceil(10.5) = 11, 0 -> 3
    assert optimal_shots([0.25, 1.5, 0.0], precision=0.5).tolist() == [2, 11, 1]  # default floor 1
    assert optimal_shots([0.25, 1.5], precision=0.25).tolist() == [7, 42]  # ceil(0.4375 * 16), ceil(2.625 * 16)
    # sigma * sum(sigma) / eps**2 of exactly 2**63 (one more than the int64 maximum) is refused
    with pytest.raises(ValueError, match=r"precision=1 needs more than 9223372036854775807 shots"):
        optimal_shots([2.0**31, 2.0**31], precision=1.0)
    assert optimal_shots([2.0**30, 2.0**30], precision=1.0).tolist() == [2**61, 2**61]


def test_optimal_shots_for_a_budget_splits_by_largest_remainders():
    # 10 each is the floor; the spare 70 split 1:2:4 is 10 | 20 | 40
    assert optimal_shots([1.0, 2.0, 4.0], total=100, min_shots=10).tolist() == [20, 30, 50]
    # sigmas summing below 1 are still split in proportion: spare 8 as 2 | 6
    assert optimal_shots([0.1, 0.3], total=10).tolist() == [3, 7]
    # the budget equal to G * min_shots is allowed (nothing spare); one shot less is refused
    assert optimal_shots([1.0, 3.0], total=8, min_shots=4).tolist() == [4, 4]
    with pytest.raises(ValueError, match=r"total must be at least G \* min_shots = 8 shots, got 7"):
        optimal_shots([1.0, 3.0], total=7, min_shots=4)
    # all sigmas zero: the spare split equally, the leftover shot to the first group
    assert optimal_shots([0.0, 0.0, 0.0], total=10).tolist() == [4, 3, 3]
    # spare 4 as 2.4 | 0.8 | 0.8: floors 2 | 0 | 0, the two leftover shots to the largest remainders (0.8, 0.8)
    assert optimal_shots([3.0, 1.0, 1.0], total=7, min_shots=1).tolist() == [3, 2, 2]
    # spare 3 as 0.6 | 0.6 | 1.8: floors 0 | 0 | 1, leftovers to 0.8 and then the first of the tied 0.6
    assert optimal_shots([1.0, 1.0, 3.0], total=6, min_shots=1).tolist() == [2, 1, 3]


def test_optimal_shots_ties_go_to_the_earlier_group_among_many():
    # 17 groups (past numpy's insertion-sort cutoff, where a non-stable sort reorders ties): sigmas 1/4 | 1/2 | 1/2
    # repeating, a spare of 3 shots: the three largest remainders tie at 1/2 between groups 1, 2, 4, 5, ...
    sig = [0.25 if i % 3 == 0 else 0.5 for i in range(17)]
    shots = optimal_shots(sig, total=20, min_shots=1)
    expected = [1] * 17
    for i in (1, 2, 4):
        expected[i] += 1
    assert shots.tolist() == expected
    assert shots.sum() == 20


def test_saving_and_equal_shots_closed_forms():
    assert saving([1.0, 2.0, 4.0]) == pytest.approx(49 / 63, rel=1e-15)  # (1 + 2 + 4)**2 / (3 * 21)
    assert saving([1.0, 0.0]) == 0.5  # sum of squares exactly 1
    assert saving([0.0, 0.0]) == 1.0  # no noise anywhere: no saving
    eq = equal_shots([0.5, 1.0], 0.5)  # ceil(1.25 / 0.25) = 5 each
    assert eq.tolist() == [5, 5]
    assert eq.dtype == np.int64
    assert equal_shots([0.5, 1.0], 0.25).tolist() == [20, 20]  # ceil(1.25 / 0.0625)
    assert equal_shots([0.0, 0.0], 0.5).tolist() == [1, 1]  # at least one shot
    assert equal_shots([3.0], 2.0).tolist() == [3]  # ceil(9 / 4)
    with pytest.raises(ValueError, match="precision"):
        equal_shots([1.0], 0.0)


def _pauli_plan() -> MeasurementPlan:
    """One qubit, two groups: ``0.5 Z`` (values +-0.5) and ``2 X`` (values +-2)."""
    plan = MeasurementPlan(SparsePauliOp(["Z", "X"], [0.5, 2.0]), 1)
    values = sorted(tuple(np.abs(g.values)) for g in plan.groups)
    assert plan.num_groups == 2
    assert values == [(0.5, 0.5), (2.0, 2.0)]
    return plan


def test_group_variances_and_exact_sigmas_from_hand_made_counts():
    plan = _pauli_plan()
    z = next(i for i, g in enumerate(plan.groups) if abs(g.values[0]) == 0.5)
    x = 1 - z
    zv, xv = plan.groups[z].values, plan.groups[x].values
    counts = np.zeros((2, 2, 2))
    counts[0, z], counts[0, x] = [3, 1], [1, 1]  # point 0: 4 shots of Z, 2 of X
    counts[1, z], counts[1, x] = [4, 0], [0, 2]  # point 1: every shot agrees: sample variance 0
    shots = np.zeros(2, dtype=np.int64)
    shots[z], shots[x] = 4, 2

    def unbiased(c, v, m):
        mean = (c * v).sum() / m
        return ((c * (v - mean) ** 2).sum() / (m - 1)) if m > 1 else 0.0

    out = group_variances(plan, counts, shots)
    assert out.shape == (2, 2)
    expected = np.zeros((2, 2))
    for k in range(2):
        expected[k, z] = unbiased(counts[k, z], zv, 4)
        expected[k, x] = unbiased(counts[k, x], xv, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-15)
    assert out[0, z] == pytest.approx(0.25, rel=1e-14)  # values 0.5, 0.5, 0.5, -0.5: mean 0.25, s**2 = 0.25
    assert out[0, x] == pytest.approx(8.0, rel=1e-14)  # values 2, -2: s**2 = 8
    # one shot per group: no variance can be estimated, 0
    one = np.zeros((1, 2, 2))
    one[0, :, 0] = 1
    np.testing.assert_array_equal(group_variances(plan, one, 1), [[0.0, 0.0]])
    # the same shots for every group as an int
    same = np.zeros((1, 2, 2))
    same[0, z], same[0, x] = [3, 1], [2, 2]
    out = group_variances(plan, same, 4)
    assert out[0, z] == pytest.approx(0.25, rel=1e-14)
    assert out[0, x] == pytest.approx(16 / 3, rel=1e-14)
    # exact sigmas from probabilities: the population standard deviations
    prob = np.zeros((1, 2, 2))
    prob[0, z], prob[0, x] = [0.75, 0.25], [0.5, 0.5]
    sig = exact_group_sigmas(plan, prob)
    assert sig[0, z] == pytest.approx(math.sqrt(0.1875), rel=1e-14)  # 0.25 - 0.25**2
    assert sig[0, x] == pytest.approx(2.0, rel=1e-14)
    prob[0, z] = [1.0, 0.0]
    assert exact_group_sigmas(plan, prob)[0, z] == 0.0


def test_allocator_defaults_and_checks():
    alloc = ShotAllocator(3, precision=1)
    assert (alloc.min_shots, alloc.pilot_shots, alloc.decay) == (16, 256, 0.5)
    assert alloc.precision == 1.0
    assert type(alloc.precision) is float
    assert alloc.total is None
    assert alloc.num_groups == 3
    assert ShotAllocator(3, total=60).total == 60
    assert ShotAllocator(3, total=60).precision is None
    # the boundaries: two shots each, decay 0, a budget of exactly num_groups * min_shots
    edge = ShotAllocator(3, total=6, min_shots=2, pilot_shots=2, decay=0)
    assert (edge.min_shots, edge.pilot_shots, edge.decay, edge.total) == (2, 2, 0.0, 6)
    assert edge.shots().tolist() == [2, 2, 2]
    assert ShotAllocator(2, precision=0.1, decay=0.999).decay == 0.999
    for kwargs in ({"pilot_shots": 1}, {"min_shots": 1}, {"min_shots": 1, "pilot_shots": 1}):
        with pytest.raises(ValueError, match="min_shots and pilot_shots must be >= 2"):
            ShotAllocator(2, precision=0.1, **kwargs)
    with pytest.raises(ValueError, match=r"total must be at least num_groups \* min_shots = 6, got 5"):
        ShotAllocator(3, total=5, min_shots=2)
    for bad in (1.0, 1.5, -0.1, "0.5", None):
        with pytest.raises(ValueError, match=r"decay must be a number in \[0, 1\)"):
            ShotAllocator(2, precision=0.1, decay=bad)
    for kwargs in ({}, {"precision": 0.0}):
        with pytest.raises(ValueError, match="precision"):
            ShotAllocator(2, **kwargs)


def test_allocator_pilot_then_running_estimates_exactly():
    # before any update: pilot_shots each (precision), or the budget split equally (total)
    assert ShotAllocator(3, precision=0.1, pilot_shots=40).shots().tolist() == [40, 40, 40]
    assert ShotAllocator(3, precision=0.1).shots().dtype == np.int64
    assert ShotAllocator(3, total=100, min_shots=4).shots().tolist() == [34, 33, 33]
    alloc = ShotAllocator(3, precision=0.5, min_shots=5, decay=0.25)
    assert alloc.sigmas is None
    # one call at two points with (10, 20, 30) shots: weights 2 m, weighted variances m * (v_0 + v_1)
    alloc.update(np.array([[0.5, 1.0, 0.0], [1.5, 3.0, 0.0]]), np.array([10, 20, 30]))
    state = alloc.state_dict()
    assert state["weight"] == [20.0, 40.0, 60.0]
    assert state["weighted_var"] == [20.0, 80.0, 0.0]
    np.testing.assert_allclose(alloc.sigmas, [1.0, math.sqrt(2.0), 0.0], rtol=1e-15)
    # sigmas (1, sqrt 2, 0), eps 0.5: ceil(sigma_g * (1 + sqrt 2) * 4), at least 5
    assert alloc.shots().tolist() == [10, 14, 5]
    # a second call at one point (a 1-D row): older weights decay by 0.25
    alloc.update(np.array([4.0, 2.0, 1.0]), np.array([8, 8, 8]))
    state = alloc.state_dict()
    np.testing.assert_allclose(state["weight"], [0.25 * 20 + 8, 0.25 * 40 + 8, 0.25 * 60 + 8], rtol=1e-15)
    np.testing.assert_allclose(state["weighted_var"], [0.25 * 20 + 32, 0.25 * 80 + 16, 8.0], rtol=1e-15)
    np.testing.assert_allclose(alloc.sigmas, np.sqrt([37 / 13, 36 / 18, 8 / 23]), rtol=1e-15)
    assert state["history"] == [[10, 20, 30], [8, 8, 8]]
    # a budget allocator after an update: the spare split by the running sigmas, the floor kept
    budget = ShotAllocator(2, total=40, min_shots=4, decay=0)
    budget.update(np.array([[0.0, 9.0]]), np.array([1, 1]))  # one shot each is enough for a (weight > 0) estimate
    np.testing.assert_array_equal(budget.sigmas, [0.0, 3.0])
    assert budget.shots().tolist() == [4, 36]


def test_allocator_update_converts_integers_before_any_arithmetic():
    # a group may take up to MAX_SHOTS shots: 2**62 shots at two points (or integer variances summing past the
    # int64 maximum) must not wrap around in int64 arithmetic
    alloc = ShotAllocator(2, precision=0.1, decay=0)
    alloc.update(np.array([[1.0, 1.0], [1.0, 1.0]]), np.array([2**62, 2**62]))
    assert alloc.state_dict()["weight"] == [2.0**63, 2.0**63]
    alloc.update(np.array([[2**62, 1], [2**62, 1]]), np.array([1, 1]))
    assert alloc.state_dict()["weighted_var"] == [2.0**63, 2.0]


def test_allocator_update_refuses_bad_variances_and_round_trips():
    alloc = ShotAllocator(2, precision=0.1)
    alloc.update(np.array([[0.0, 0.5]]), np.array([4, 4]))  # a zero variance is allowed
    before = alloc.state_dict()
    for bad in ([[1.0, 2.0, 3.0]], [[np.nan, 1.0]], [[1.0, np.inf]], [[-0.1, 1.0]], [[1.0, -1e-9]]):
        with pytest.raises(ValueError, match="variances must be finite, >= 0, with 2 groups"):
            alloc.update(np.array(bad), np.array([4, 4]))
    assert alloc.state_dict() == before
    assert set(before) == {"weight", "weighted_var", "history"}
    clone = ShotAllocator(2, precision=0.1)
    clone.load_state_dict(before)
    assert clone.state_dict() == before
    np.testing.assert_array_equal(clone.sigmas, alloc.sigmas)
    clone.update(np.array([[1.0, 1.0]]), np.array([2, 2]))
    assert alloc.state_dict() == before  # the loaded lists are copies
    # a state written with integer weights is read back as floats
    ints = ShotAllocator(2, precision=0.1)
    ints.load_state_dict({"weight": [4, 8], "weighted_var": [2, 8], "history": [[4, 8]]})
    assert [type(v) for v in ints.state_dict()["weight"] + ints.state_dict()["weighted_var"]] == [float] * 4
    np.testing.assert_array_equal(ints.sigmas, [math.sqrt(0.5), 1.0])
    for bad_state in (
        {**before, "weight": [1.0]},
        {**before, "weighted_var": [1.0, 2.0, 3.0]},
        {**before, "weight": [1.0, 2.0, 3.0], "weighted_var": [1.0]},
    ):
        with pytest.raises(ValueError, match="state must hold 2 groups"):
            clone.load_state_dict(bad_state)
