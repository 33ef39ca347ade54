"""The shot estimator's precision contract met with variance-optimal allocation (``allocation="variance"``)."""

from __future__ import annotations

import numpy as np
import pytest

from noisygrad.quantum import EnergyObjective, shot_estimator
from noisygrad.quantum.allocation import equal_shots, exact_group_sigmas
from noisygrad.quantum.problems import problem

REPEATS = 400
# the sample standard deviation of REPEATS estimates scatters by about 1/sqrt(2 * REPEATS) = 3.5% of its value:
# 4 of those (about 1 in 30000 per problem) is the tolerance on "meets the precision"
TOLERANCE = 1 + 4 / np.sqrt(2 * REPEATS)


@pytest.mark.parametrize("name", ["h2", "lih", "tfim_4", "random_3local_3"])
def test_variance_allocation_meets_the_precision_with_fewer_shots_than_the_bound_and_equal_shots(name):
    case = problem(name)
    x, hamiltonian, ansatz = case.initial_point(0), case.hamiltonian, case.ansatz
    plain = EnergyObjective(hamiltonian, ansatz)
    sigmas = exact_group_sigmas(plain.plan, plain.backend.probabilities(x[None], plain.plan))[0]
    precision = float(sigmas.sum()) / np.sqrt(2e4)  # about 2e4 shots per estimate at the optimum
    used = {}
    for allocation in ("bound", "variance"):
        estimator = shot_estimator(seed=1, allocation=allocation)
        estimator.run([(ansatz, hamiltonian, x, precision)])  # the first call: the bound's shots, a first estimate
        result = estimator.run([(ansatz, hamiltonian, np.repeat(x[None], REPEATS, 0), precision)]).result()[0]
        used[allocation] = sum(result.metadata["shots_per_group"][0])
        assert result.data.evs.std(ddof=1) < precision * TOLERANCE
    assert used["variance"] < used["bound"]
    # against the best equal allocation (the TRUE sigmas, which equal allocation would need to know): within 10%
    # of it or below (the floor of 16 shots per group and the estimated sigmas cost a little on even problems)
    assert used["variance"] < 1.1 * equal_shots(sigmas, precision).sum()


def test_variance_allocation_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="allocation"):
        shot_estimator(allocation="optimal")
    with pytest.raises(ValueError, match="noise='shots'"):
        shot_estimator(allocation="variance", noise="exact")
    with pytest.raises(ValueError, match="point_streams"):
        shot_estimator(allocation="variance", point_streams=True)
