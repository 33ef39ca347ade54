"""The path users already have: qiskit_algorithms.VQE with our estimator and our SPSA as `optimizer=`."""

import numpy as np
from qiskit_algorithms import VQE

from noisygrad.quantum import CHEMICAL_ACCURACY, SPSA, EnergyObjective, shot_estimator


def test_qiskit_algorithms_vqe_reaches_chemical_accuracy_with_honest_nfev(hamiltonian, ansatz):
    """The README's snippet as written, with VQE's random initial point seeded. Measured over 20 seeds of the same
    snippet (benchmarks/quantum_spsa_h2.py's method): 18/20 within 1.6 mHa, median 0.26 mHa."""
    from qiskit_algorithms.utils import algorithm_globals

    algorithm_globals.random_seed = 7  # VQE draws its initial point from this global generator
    estimator = shot_estimator(shots=1000, seed=7)
    vqe = VQE(estimator, ansatz, optimizer=SPSA(maxiter=300, resamplings=2, seed=7))
    result = vqe.compute_minimum_eigenvalue(hamiltonian)
    exact = EnergyObjective(hamiltonian, ansatz, noise="exact").exact(result.optimal_point)[0]
    assert exact - (-1.857275030202) < CHEMICAL_ACCURACY
    # nfev is qiskit's count (300 x 2 x 2); nfev_total every energy the estimator computed (+ 50 calibration, 1 final)
    assert result.cost_function_evals == result.optimizer_result.nfev == 1200
    assert result.optimizer_result.nfev_total == estimator.evaluations == 1251
    assert estimator.shots_used == 1251 * 2 * 1000
    assert estimator.calls == 1 + 300 + 1  # one batched call for calibration, one per step, one final


def test_minimizer_batches_resamplings_and_blocking_counts():
    calls = []

    def fun(x):
        x = np.atleast_2d(x)
        calls.append(len(x))
        return ((x - 1.0) ** 2).sum(1) if len(x) > 1 else float(((x - 1.0) ** 2).sum())

    result = SPSA(maxiter=40, seed=0, resamplings=3, blocking=True, final_evaluations=4)(fun, np.zeros(5))
    assert calls[:3] == [50, 1, 25]  # calibration, the value at x0, blocking's noise estimate: one call each
    assert calls[3:5] == [6, 1]  # per step: 2 x 3 resamplings in one call, then the candidate
    assert calls[-1] == 4  # the final evaluations, together
    assert result.nfev == 1 + 40 * 7  # qiskit's count
    assert result.nfev_total == sum(calls) == 50 + 1 + 25 + 40 * 7 + 4
    assert result.fun_stderr is not None
    assert np.abs(result.x - 1.0).max() < 0.05
