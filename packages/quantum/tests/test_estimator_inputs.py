"""Inputs Qiskit's estimators take and ``shot_estimator`` used to get wrong: identity and zero observables,
measured circuits, ``precision`` for any coefficients, bad ``precision`` / ``seed`` / ``shots``."""

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import efficient_su2
from qiskit.quantum_info import SparsePauliOp, Statevector

from noisygrad.quantum import ShotEstimator, shot_estimator, tfim
from noisygrad.quantum.measurement import MAX_SHOTS


def _exact(circuit, observable, theta=None):
    bound = circuit if theta is None else circuit.assign_parameters(theta)
    return Statevector(bound).expectation_value(observable).real


# --- identity terms and the zero operator --------------------------------------------------------------------


@pytest.mark.parametrize("noise", ["shots", "gaussian-precision", "exact"])
def test_identity_only_and_zero_observables_are_exact_and_cost_no_shots(ansatz, theta, noise):
    """Qiskit raised "Input Pauli list is empty" (identity only) or "Empty observable" (zero) from inside."""
    estimator = shot_estimator(shots=100, seed=0, noise=noise)
    observables = [
        SparsePauliOp("II", 2.0),
        SparsePauliOp(["II", "II"], [0.5, 0.25]),
        SparsePauliOp("II", 0.0),
        SparsePauliOp(["II", "ZZ"], [0.0, 0.0]),
    ]
    result = estimator.run([(ansatz, observables, theta)]).result()[0]
    np.testing.assert_array_equal(result.data.evs, [2.0, 0.75, 0.0, 0.0])  # exactly: no noise on a constant
    np.testing.assert_array_equal(result.data.stds, 0.0)
    assert result.metadata["shots_per_group"] == [[], [], [], []]
    assert estimator.shots_used == 0
    assert estimator.calls == 0  # no simulator call at all
    assert estimator.evaluations == 4


def test_identity_terms_among_others_are_added_exactly_and_cost_no_shots(ansatz, theta):
    observable = SparsePauliOp(["II", "ZZ", "XI"], [3.0, 0.5, -0.25])
    estimator = shot_estimator(shots=400, seed=1)
    exact = shot_estimator(noise="exact").run([(ansatz, observable, theta)]).result()[0].data.evs
    assert float(exact) == pytest.approx(_exact(ansatz, observable, theta), abs=1e-12)
    result = estimator.run([(ansatz, [observable, SparsePauliOp("II", 0.0)], theta)]).result()[0]
    assert result.metadata["shots_per_group"] == [[400, 400], []]  # {ZZ}, {XI}: the identity needs no group
    assert estimator.shots_used == 800
    # |estimate - exact| within 5 standard errors (the std of 400 shots of |c| <= 0.5 terms is <= 0.028)
    assert abs(result.data.evs[0] - exact) <= 5 * result.data.stds[0]
    assert result.data.evs[1] == 0.0


# --- circuits with measurements ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "aer", "aer-sampler"])
def test_final_measurements_are_removed(hamiltonian, ansatz, theta, backend):
    measured = ansatz.copy()
    measured.measure_all()
    exact = shot_estimator(noise="exact", backend=backend).run([(measured, hamiltonian, theta)]).result()[0]
    assert float(exact.data.evs) == pytest.approx(_exact(ansatz, hamiltonian, theta), abs=1e-10)
    noisy = shot_estimator(shots=2000, seed=2, backend=backend).run([(measured, hamiltonian, theta)]).result()[0]
    assert abs(float(noisy.data.evs) - float(exact.data.evs)) <= 5 * float(noisy.data.stds)  # 5 standard errors


def _mid_measure() -> QuantumCircuit:
    qc = QuantumCircuit(2, 1, name="mid_measure")
    qc.h(0)
    qc.measure(0, 0)  # collapses qubit 0: the state after it is a random branch
    qc.cx(0, 1)
    return qc


def _late_reset() -> QuantumCircuit:
    qc = QuantumCircuit(2, name="late_reset")
    qc.h(0)
    qc.cx(0, 1)
    qc.reset(0)
    return qc


def _conditioned() -> QuantumCircuit:
    qc = QuantumCircuit(2, 1, name="conditioned")
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    return qc


@pytest.mark.parametrize("make", [_mid_measure, _late_reset, _conditioned])
@pytest.mark.parametrize("backend", ["auto", "torch", "aer", "aer-sampler"])
def test_mid_circuit_measurements_resets_and_conditions_are_refused_before_any_work(make, backend):
    """Before, Aer simulated one collapsed branch and it was reported as the exact state's energy."""
    circuit = make()
    estimator = shot_estimator(shots=100, seed=3, backend=backend)
    good = (efficient_su2(2, reps=1), SparsePauliOp("ZZ"), np.zeros(8))
    with pytest.raises(ValueError, match=rf"pubs\[1\] {circuit.name!r}.*(mid-circuit|resets)"):
        estimator.run([good, (circuit, SparsePauliOp("ZZ"))])
    assert (estimator.shots_used, estimator.evaluations, estimator.calls) == (0, 0, 0)  # the good PUB did not run
    # ... and the seed stream was not touched: the next call draws what a fresh estimator draws
    after = estimator.run([good]).result()[0].data.evs
    fresh = shot_estimator(shots=100, seed=3, backend=backend).run([good]).result()[0].data.evs
    np.testing.assert_array_equal(after, fresh)


def test_a_reset_of_a_fresh_qubit_is_accepted():
    qc = QuantumCircuit(2, 2)  # idle classical bits do not matter either
    qc.reset(0)
    qc.x(0)
    for backend in ("auto", "aer", "aer-sampler"):
        result = shot_estimator(shots=50, seed=0, backend=backend).run([(qc, SparsePauliOp("IZ"))]).result()[0]
        assert float(result.data.evs) == -1.0  # |01>: every shot gives Z_0 = -1


# --- precision: the standard deviation of each estimate, for any coefficients ------------------------------


def _worst_case_circuit() -> QuantumCircuit:
    """|+> on qubit 1 at t = pi/2, |0> on qubit 0: Z_1 and X_1 X_0 (two measurement groups: they do not commute
    qubit-wise) each give +-1 with probability 1/2, the largest variance a unit Pauli can have."""
    qc = QuantumCircuit(2)
    qc.ry(Parameter("t"), 1)
    return qc


@pytest.mark.parametrize(("backend", "repeats"), [("torch", 2000), ("aer-sampler", 600)])
def test_precision_is_met_exactly_in_the_worst_case(backend, repeats):
    """7 Z_1 + 3 X_1 X_0 on the state where both groups have their largest variance (b_g^2 = 49 and 9): with
    m_g = ceil(b_g * 10 / p^2) shots the estimate's variance is 49 p^2/70 + 9 p^2/30 = p^2, so its std is the
    precision asked, not below it. The sample std of n draws has relative standard error 1/sqrt(2(n-1)); held to
    4 of them."""
    observable, precision = SparsePauliOp(["ZI", "XX"], [7.0, 3.0]), 0.5
    estimator = shot_estimator(seed=4, backend=backend)
    points = np.full((repeats, 1), np.pi / 2)
    result = estimator.run([(_worst_case_circuit(), observable, points, precision)]).result()[0]
    shots = dict(zip(result.metadata["groups"][0], result.metadata["shots_per_group"][0], strict=True))
    assert shots == {"ZI": 280, "XX": 120}  # ceil(7 * 10 / 0.25), ceil(3 * 10 / 0.25)
    assert result.data.evs.std(ddof=1) == pytest.approx(precision, rel=4 / math.sqrt(2 * (repeats - 1)))
    assert result.data.evs.mean() == pytest.approx(0.0, abs=4 * precision / math.sqrt(repeats))


def test_precision_holds_for_large_coefficients():
    """5 x tfim(6) (coefficients of 5): Qiskit's rule, 1/precision^2 = 400 shots per group, gives a std of 0.86 here
    where 0.05 is asked (measured); the allocation gives 0.021 (the bound is for the worst state). Held: the measured
    std over 300 estimates is at most the precision, with 4 relative standard errors (4 / sqrt(2 * 299)) of
    Monte-Carlo slack."""
    observable, ansatz, precision, repeats = 5 * tfim(6), efficient_su2(6, reps=1), 0.05, 300
    theta = np.random.default_rng(5).uniform(-np.pi, np.pi, ansatz.num_parameters)
    points = np.repeat(theta[None], repeats, 0)
    estimator = shot_estimator(seed=6)
    result = estimator.run([(ansatz, observable, points)], precision=precision).result()[0]
    b = np.array([25.0, 30.0])  # 5 ZZ bonds and 6 X fields, |c| = 5 each
    assert sorted(result.metadata["shots_per_group"][0]) == np.ceil(b * b.sum() / precision**2).astype(int).tolist()
    assert estimator.shots_used == repeats * sum(result.metadata["shots_per_group"][0])  # ~ (55 / 0.05)^2 each
    assert result.data.evs.std(ddof=1) <= precision * (1 + 4 / math.sqrt(2 * (repeats - 1)))
    assert result.data.evs.mean() == pytest.approx(_exact(ansatz, observable, theta), abs=4 * precision / 17)
    old_rule = shot_estimator(shots=400, seed=6).run([(ansatz, observable, points[:100])]).result()[0]
    assert old_rule.data.evs.std(ddof=1) > 3 * precision  # what the fix is about


def test_default_precision_and_the_gaussian_model_use_the_same_meaning():
    observable, circuit, half_pi = SparsePauliOp(["ZI", "XX"], [7.0, 3.0]), _worst_case_circuit(), [np.pi / 2]
    estimator = ShotEstimator(default_precision=0.5, seed=7)
    result = estimator.run([(circuit, observable, half_pi)]).result()[0]
    assert sorted(result.metadata["shots_per_group"][0]) == [120, 280]
    precise = estimator.run([(circuit, observable, half_pi, 1.0)]).result()[0]  # the PUB's precision comes first
    assert sorted(precise.metadata["shots_per_group"][0]) == [30, 70]
    gaussian = shot_estimator(seed=8, noise="gaussian-precision")
    evs = gaussian.run([(circuit, observable, np.full((2000, 1), np.pi / 2), 0.5)]).result()[0].data.evs
    # exact value 0 plus N(0, 0.5^2); relative standard error of the std 1/sqrt(2 * 1999), 4 of them
    assert evs.std(ddof=1) == pytest.approx(0.5, rel=4 / math.sqrt(2 * 1999))


def test_bad_precision_and_shots_are_refused_naming_the_argument(hamiltonian, ansatz, theta):
    estimator = shot_estimator(seed=0)
    pub = (ansatz, hamiltonian, theta)
    with pytest.raises(ValueError, match=r"precision=0 with noise='shots'.*infinitely many shots"):
        estimator.run([pub], precision=0.0)
    with pytest.raises(ValueError, match=r"pubs\[0\] precision=0"):
        estimator.run([(*pub, 0.0)])
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="precision"):
            estimator.run([pub], precision=bad)
        with pytest.raises(ValueError, match="precision"):
            estimator.run([(*pub, bad)])
    with pytest.raises(TypeError, match="precision"):
        estimator.run([pub], precision="0.1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"above the maximum of 9223372036854775807.*smallest precision allowed"):
        estimator.run([(ansatz, tfim(2), np.zeros(8))], precision=1e-10)
    with pytest.raises(ValueError, match=f"shots must be at most {MAX_SHOTS}"):
        shot_estimator(shots=10**19)
    with pytest.raises(ValueError, match="default_precision=0"):
        shot_estimator(default_precision=0.0)
    assert estimator.shots_used == 0
    # with noise="exact" the precision is not used: 0 (StatevectorEstimator's default) is fine
    exact = shot_estimator(noise="exact", default_precision=0.0)
    assert float(exact.run([pub], precision=0.0).result()[0].data.evs) == pytest.approx(
        _exact(ansatz, hamiltonian, theta), abs=1e-12
    )


def test_the_largest_shot_count_runs():
    """shots = 2**63 - 1 (int64's maximum) per group: numpy's multinomial takes it; the estimate is exact to 1e-9."""
    pub = (_worst_case_circuit(), SparsePauliOp("ZI"), [np.pi / 2])
    result = shot_estimator(shots=MAX_SHOTS, seed=0).run([pub]).result()[0]
    assert abs(float(result.data.evs)) < 1e-8


# --- seed ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ValueError), (1.5, TypeError), (True, TypeError), ("7", TypeError), ([1], TypeError)]
)
def test_bad_seeds_are_refused_naming_seed(seed, error):
    with pytest.raises(error, match=r"seed must be None, an int >= 0 or a numpy\.random\.Generator"):
        shot_estimator(seed=seed)


def test_seeds_allowed_and_a_generator_stream_goes_on(ansatz, theta, hamiltonian):
    pub = (ansatz, hamiltonian, theta)
    a = shot_estimator(seed=np.int64(3)).run([pub]).result()[0].data.evs
    assert a == shot_estimator(seed=3).run([pub]).result()[0].data.evs
    rng = np.random.default_rng(11)
    shot_estimator(seed=rng).run([pub])
    assert rng.bit_generator.state != np.random.default_rng(11).bit_generator.state  # the caller's stream moved


def test_stands_in_for_statevector_estimator(ansatz, theta, hamiltonian):
    """qiskit.primitives.StatevectorEstimator(seed=42) / (default_precision=0.0): the same keywords."""
    for estimator in (ShotEstimator(noise="exact", seed=42), ShotEstimator(noise="exact", default_precision=0.0)):
        evs = estimator.run([(ansatz, hamiltonian, theta)]).result()[0].data.evs
        assert float(evs) == pytest.approx(_exact(ansatz, hamiltonian, theta), abs=1e-12)


def test_a_new_circuit_per_call_does_not_grow_the_caches(hamiltonian, ansatz):
    from noisygrad.quantum.estimator import CACHE_SIZE

    estimator = shot_estimator(shots=10, seed=0)
    for i in range(CACHE_SIZE + 10):
        estimator.run([(ansatz.assign_parameters(np.full(8, 0.01 * i)), hamiltonian)])
    assert len(estimator._backends._items) == CACHE_SIZE
    assert len(estimator._circuits._items) == CACHE_SIZE
