"""noisygrad.quantum.SPSA / QNSPSA against qiskit-algorithms' own SPSA / QNSPSA: same steps, honest costs.

qiskit-algorithms' own test files run against these classes in ``.ci/peer-tests``; here the two are held to
each other iterate by iterate, and our additions (seed, nfev_total, divergence, grouping) are checked.
"""

import numpy as np
import pytest
from qiskit.circuit.library import pauli_two_design
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit_algorithms.optimizers import QNSPSA as QiskitQNSPSA
from qiskit_algorithms.optimizers import SPSA as QiskitSPSA
from qiskit_algorithms.utils import algorithm_globals

from noisygrad.quantum import QNSPSA, SPSA


def _rosen_like(x):
    x = np.asarray(x, dtype=float)
    return float(np.sum((x - 1.0) ** 2) + 0.3 * np.sum(np.sin(3 * x)))


def _trace(optimizer, fun, x0, seed=12):
    """The iterates (through the 5-argument callback) and the result, with qiskit's global generator seeded."""
    points = []
    optimizer.callback = lambda nfev, x, fx, step, accepted: points.append((nfev, x.copy(), fx, step, accepted))
    algorithm_globals.random_seed = seed
    result = optimizer.minimize(fun, x0)
    algorithm_globals.random_seed = None
    return points, result


QISKIT_GAINS = {"learning_rate_decay": 0.602, "perturbation_decay": 0.101}
QISKIT_SETTINGS = [
    {"maxiter": 30, "last_avg": 1},  # calibrated gains
    {"maxiter": 30, "last_avg": 4, "blocking": True, "allowed_increase": 0.0},
    {"maxiter": 30, "last_avg": 1, "blocking": True},  # allowed increase from 25 evaluations
    {"maxiter": 20, "last_avg": 1, "second_order": True, "regularization": 0.05, "hessian_delay": 3},
    {"maxiter": 25, "last_avg": 1, "resamplings": {1: 3, 4: 2}, "perturbation_dims": 2, "trust_region": True},
    {"maxiter": 25, "last_avg": 1, "learning_rate": 0.05, "perturbation": 0.1},
    {"maxiter": 25, "last_avg": 1, "learning_rate": np.linspace(0.2, 0.01, 25), "perturbation": np.full(25, 0.1)},
]


@pytest.mark.parametrize("settings", QISKIT_SETTINGS, ids=lambda s: ",".join(sorted(s)))
def test_same_iterates_as_qiskit_algorithms(settings):
    """With qiskit's settings and its global seed, every iterate, value, step and count equals qiskit's exactly."""
    x0 = np.array([0.3, -0.2, 0.5, 0.1])
    ours, ours_result = _trace(SPSA(**settings, **QISKIT_GAINS), _rosen_like, x0)
    theirs, their_result = _trace(QiskitSPSA(**settings), _rosen_like, x0)
    assert len(ours) == len(theirs) > 0
    for (n1, x1, f1, s1, a1), (n2, x2, f2, s2, a2) in zip(ours, theirs, strict=True):
        assert (n1, a1) == (n2, a2)
        np.testing.assert_array_equal(x1, x2)
        assert f1 == f2
        assert s1 == s2
    np.testing.assert_array_equal(ours_result.x, their_result.x)
    assert ours_result.fun == their_result.fun
    assert (ours_result.nfev, ours_result.nit) == (their_result.nfev, their_result.nit)


def test_qnspsa_same_iterates_as_qiskit_algorithms():
    circuit = pauli_two_design(2, reps=1, seed=2)
    observable = SparsePauliOp("ZZ")

    def energy(x):
        return float(Statevector(circuit.assign_parameters(x)).expectation_value(observable).real)

    def fidelity(x, y):
        a, b = Statevector(circuit.assign_parameters(x)), Statevector(circuit.assign_parameters(y))
        return np.abs(np.vdot(a.data, b.data)) ** 2

    x0 = np.array([0.4, 0.1, -0.3, 0.2])
    settings = {"maxiter": 15, "learning_rate": 0.05, "perturbation": 0.05, "regularization": 0.001}
    ours, ours_result = _trace(QNSPSA(fidelity, **settings, **QISKIT_GAINS), energy, x0)
    theirs, their_result = _trace(QiskitQNSPSA(fidelity, **settings), energy, x0)
    for (n1, x1, _, _, a1), (n2, x2, _, _, a2) in zip(ours, theirs, strict=True):
        assert (n1, a1) == (n2, a2)
        np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(ours_result.x, their_result.x)
    # qiskit counts the 2 loss + 4 fidelity evaluations per step in nfev; nfev_total adds what it leaves out
    assert ours_result.nfev == their_result.nfev == 1 + 15 * 7
    assert ours_result.nfev_total == ours_result.nfev + 25 + 1


def test_nfev_is_qiskits_count_and_nfev_total_counts_everything():
    calls = []

    def fun(x):
        calls.append(1)
        return _rosen_like(x)

    result = SPSA(maxiter=20, blocking=True, last_avg=1, seed=3).minimize(fun, np.zeros(3))
    # qiskit's nfev: 1 initial + 20 x (2 + 1 blocking); left out: 50 calibration, 25 noise estimate, 1 final
    assert result.nfev == 1 + 20 * 3
    assert result.nfev_total == len(calls) == result.nfev + 50 + 25 + 1


def test_seed_gives_a_stream_of_its_own():
    a = SPSA(maxiter=30, seed=5).minimize(_rosen_like, np.zeros(3))
    algorithm_globals.random_seed = 99  # must not matter with seed=
    b = SPSA(maxiter=30, seed=5).minimize(_rosen_like, np.zeros(3))
    algorithm_globals.random_seed = None
    c = SPSA(maxiter=30, seed=6).minimize(_rosen_like, np.zeros(3))
    np.testing.assert_array_equal(a.x, b.x)
    assert not np.array_equal(a.x, c.x)


def test_call_groups_every_point_of_a_step_and_minimize_follows_max_evals_grouped():
    sizes = []

    def batched(x):
        x = np.asarray(x)
        sizes.append(len(x) if x.ndim == 2 else 0)  # 0: a single 1-D point
        return np.sum((np.atleast_2d(x) - 1) ** 2, axis=1) if x.ndim == 2 else float(np.sum((x - 1) ** 2))

    SPSA(maxiter=5, resamplings=3, seed=0)(batched, np.zeros(4))
    assert sizes == [50] + [6] * 5 + [0]  # calibration, one call per step (3 directions x 2 points), final
    sizes.clear()
    SPSA(maxiter=5, resamplings=3, seed=0).minimize(batched, np.zeros(4))
    assert sizes == [0] * (50 + 30 + 1)  # qiskit's default: one point per call
    sizes.clear()
    spsa = SPSA(maxiter=5, resamplings=3, seed=0)
    spsa.set_max_evals_grouped(4)
    spsa.minimize(batched, np.zeros(4))
    assert sizes[:13] == [4] * 11 + [3, 3]
    assert sizes[13:15] == [3, 3]


def test_shape_one_values_and_scalar_functions():
    result = SPSA(maxiter=40, seed=1).minimize(lambda x: np.array([np.sum((x - 2) ** 2)]), np.zeros(2))
    assert result.fun.shape == (1,)  # fun's own value at the end, as qiskit returns it
    assert np.abs(result.x - 2).max() < 0.3


def _noisy_quadratic(dim, seed, noise=0.1):
    rng = np.random.default_rng(seed)
    curvatures = np.logspace(0, 1.5, dim)
    return lambda x: float(0.5 * np.sum(curvatures * np.asarray(x) ** 2) + noise * rng.standard_normal())


@pytest.mark.parametrize("dim", [2, 10, 50])
def test_no_run_diverges_silently(dim):
    """On noisy quadratics with curvatures up to 30, every run either ends below where it began or says it failed."""
    outcomes = []
    for seed in range(4):
        fun = _noisy_quadratic(dim, seed)
        x0 = np.full(dim, 0.5)
        start = 0.5 * np.sum(np.logspace(0, 1.5, dim) * x0**2)
        result = SPSA(maxiter=300, seed=seed).minimize(fun, x0)
        final = 0.5 * np.sum(np.logspace(0, 1.5, dim) * result.x**2)
        assert np.all(np.isfinite(result.x))
        assert (result.success and final < start) or (not result.success and "diverged" in result.message)
        outcomes.append(result.success)
    assert any(outcomes)


def test_a_run_away_gain_is_reported_not_returned_as_success():
    result = SPSA(maxiter=200, learning_rate=1.0, perturbation=0.1, seed=0).minimize(
        _noisy_quadratic(10, 0), np.full(10, 0.5)
    )
    assert not result.success
    assert "diverged" in result.message
    assert np.all(np.isfinite(result.x))


def test_settings_rebuild_the_optimizer():
    spsa = SPSA(maxiter=50, blocking=True, learning_rate=0.1, perturbation=0.2, seed=4, last_avg=3)
    assert SPSA(**spsa.settings).settings.keys() == spsa.settings.keys()
    assert spsa.settings["seed"] == 4
    assert spsa.settings["last_avg"] == 3
    assert "seed" not in SPSA().settings  # at their defaults, only qiskit's keys


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"maxiter": 0}, "maxiter"),
        ({"learning_rate": float("nan"), "perturbation": 0.1}, "learning_rate"),
        ({"learning_rate": np.ones(3), "perturbation": np.ones(3)}, "learning_rate"),
        ({"learning_rate": "fast", "perturbation": 0.1}, "learning_rate"),
        ({"resamplings": 0}, "resamplings"),
        ({"seed": -1}, "seed"),
        ({"last_avg": 0}, "last_avg"),
        ({"allowed_increase": -1.0}, "allowed_increase"),
        ({"callback": 3}, "callback"),
    ],
)
def test_bad_settings_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SPSA(**kwargs)


def test_bad_calls_named():
    with pytest.raises(ValueError, match="both must be set"):
        SPSA(maxiter=3, learning_rate=0.1).minimize(_rosen_like, np.zeros(2))
    with pytest.raises(ValueError, match="x0"):
        SPSA(maxiter=3).minimize(_rosen_like, [np.nan, 1.0])
    with pytest.raises(TypeError, match="fun"):
        SPSA(maxiter=3).minimize("energy", [0.0])
    with pytest.raises(ValueError, match="batch"):
        SPSA(maxiter=3, seed=0)(lambda x: 0.0, [0.0, 1.0])  # a scalar function called with a batch of points
    with pytest.raises(ValueError, match="bounds"):
        SPSA(maxiter=3)(_rosen_like, [0.0, 1.0], bounds=[(0, 1)])
    with pytest.raises(ValueError, match="NaN or Inf"):
        SPSA(maxiter=3).minimize(lambda x: float("nan"), [0.0, 1.0])
    with pytest.raises(TypeError, match="fidelity"):
        QNSPSA(fidelity=None)


@pytest.mark.parametrize("modelspace", [False, True])
def test_calibration_on_a_flat_function_warns_and_falls_back(modelspace):
    """A constant loss gives no slope to calibrate on: qiskit's fallback ``a = target``, in both modes."""
    with pytest.warns(RuntimeWarning, match="calibration failed"):
        learning_rate, _ = SPSA.calibrate(
            lambda x: 1.0, np.zeros(3), modelspace=modelspace, rng=np.random.default_rng(0)
        )
    assert next(learning_rate()) == pytest.approx(2 * np.pi / 10)
