"""Acceptance runs of the issue (slow): accuracy of Adam then L-BFGS, and L-BFGS on resampled mini-batches.

Full-size accuracy over three seeds is in ``benchmarks/pinn_accuracy.py`` (Burgers takes minutes per seed);
here Poisson runs three seeds and Helmholtz and Burgers one seed each. Their times are measured by the benchmark,
not asserted here.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

import noisygrad as ng
import noisygrad.pinn as ngp
from noisygrad.pinn import problems

pytestmark = pytest.mark.slow


def test_poisson_median_of_three_seeds():
    errors = [problems.solve("poisson1d", seed=s).error for s in (0, 1, 2)]
    # measured 3.95e-6 on one machine and 2.4e-5 in a fresh environment on another (float32 L-BFGS at this level
    # follows the CPU's kernels): the bound holds both
    assert statistics.median(errors) <= 3e-5


@pytest.mark.parametrize(("name", "bound"), [("helmholtz2d", 1e-3), ("burgers", 4e-2)])
def test_one_seed_reaches_the_bound(name, bound):
    assert problems.solve(name, seed=0).error <= bound


def test_noise_robust_lbfgs_on_resampled_batches_is_finite_and_no_worse_than_torch_lbfgs():
    """Batches of 32 of poisson1d's 66 points, a fresh batch every step, 300 L-BFGS iterations after 1000 Adam
    steps, 3 seeds: the core's L-BFGS never yields NaN, reports its pairs, and its median error is within 2x of
    torch's L-BFGS (strong-Wolfe, max_eval 25) at the same batch size."""
    robust, plain, skipped = [], [], {"robust": [], "plain": []}
    for seed in (0, 1, 2):
        for errors, make in ((robust, "lbfgs"), (plain, None)):
            problem = problems.build("poisson1d", seed=seed)
            ngp.train(problem.model, "adam", lr=1e-3, iterations=1000, seed=seed)
            if make is None:
                opt = ngp.lbfgs(list(problem.model.net.parameters()), max_iter=1, history_size=10)
                with pytest.warns(ngp.PinnWarning, match="float32"):
                    result = ngp.train(problem.model, opt, iterations=300, batch_size=32, seed=seed)
                skipped["plain"].append(result.skipped_pairs / result.pairs_tried)
            else:
                result = ngp.train(problem.model, make, iterations=300, batch_size=32, seed=seed)
                assert isinstance(problem.model.opt, ng.LBFGS)
                assert result.pairs_tried == 300
                skipped["robust"].append(result.skipped_pairs / result.pairs_tried)
            assert np.isfinite(result.losses).all()
            assert math.isfinite(result.final_loss)
            errors.append(problem.error())
    # measured: below torch's on one machine; 1.18e-3 against 7.6e-4 (1.55x) in a fresh environment on another
    assert statistics.median(robust) <= 2 * statistics.median(plain)
    # measured: the core's L-BFGS skipped 0 of 300 pairs, torch's 23-32 of 299 (8-11%)
    assert max(skipped["robust"]) < 0.01
    assert min(skipped["plain"]) > 0.03
