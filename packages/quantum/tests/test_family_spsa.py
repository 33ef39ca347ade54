"""SPSA with its defaults on every problem of the benchmark family: no run diverges silently.

The figures (median errors against qiskit-algorithms' SPSA at equal shots) come from
``benchmarks/quantum_family.py``; here each problem gets one short run through ``qiskit_algorithms.VQE`` on the
real-shot estimator, which must report success and (from a random start) end below where it started.
"""

import numpy as np
import pytest
from qiskit_algorithms import VQE

from noisygrad.quantum import SPSA, shot_estimator
from noisygrad.quantum.problems import family


@pytest.mark.slow
@pytest.mark.parametrize("problem", family(), ids=lambda p: p.name)
def test_default_spsa_descends_and_reports_success(problem):
    x0 = problem.initial_point(seed=3)
    optimizer = SPSA(maxiter=150, seed=3)
    result = VQE(shot_estimator(shots=problem.shots, seed=3), problem.ansatz, optimizer, initial_point=x0)
    outcome = result.compute_minimum_eigenvalue(problem.hamiltonian)
    assert outcome.optimizer_result.success, outcome.optimizer_result.message
    assert np.all(np.isfinite(outcome.optimal_point))
    if problem.start == "uniform":  # a random start: 150 iterations must descend from it
        assert problem.relative_error(outcome.optimal_point) < problem.relative_error(x0)
    else:  # a Hartree-Fock start is already good; the calibrated first step (2 pi / 10 per parameter, as in
        # qiskit) kicks the run away from it, and 150 iterations need not bring it back (the full budgets are in
        # the benchmark): what must hold is that the run stays bounded and says so
        assert problem.relative_error(outcome.optimal_point) < 1.0
