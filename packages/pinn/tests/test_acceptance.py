"""Acceptance runs of the issue (slow): accuracy of Adam then L-BFGS, and L-BFGS on resampled mini-batches.

Full-size accuracy over three seeds is in ``benchmarks/pinn_accuracy.py`` (Burgers takes minutes per seed);
here Poisson runs three seeds and Helmholtz and Burgers one seed each, with wall-clock budgets sized for the
shared 2-core machine (CPU time is a fraction of it).
"""

from __future__ import annotations

import math
import statistics
import time

import numpy as np
import pytest

import noisygrad as ng
import noisygrad.pinn as ngp
from noisygrad.pinn import problems

pytestmark = pytest.mark.slow


def test_poisson_median_of_three_seeds():
    start = time.perf_counter()
    errors = [problems.solve("poisson1d", seed=s).error for s in (0, 1, 2)]
    assert statistics.median(errors) <= 1e-5
    assert time.perf_counter() - start < 300  # measured 40-55 s per seed on the loaded machine, ~12 s CPU


@pytest.mark.parametrize(("name", "bound", "budget"), [("helmholtz2d", 1e-3, 900), ("burgers", 4e-2, 1500)])
def test_one_seed_reaches_the_bound(name, bound, budget):
    solved = problems.solve(name, seed=0)
    assert solved.error <= bound
    assert solved.seconds < budget


def test_noise_robust_lbfgs_on_resampled_batches_is_finite_and_no_worse_than_torch_lbfgs():
    """Batches of 32 of poisson1d's 66 points, a fresh batch every step, 300 L-BFGS iterations after 1000 Adam
    steps, 3 seeds: the core's L-BFGS never yields NaN, reports its pairs, and its median error is no worse
    than torch's L-BFGS (strong-Wolfe, max_eval 25) at the same batch size."""
    robust, plain = [], []
    for seed in (0, 1, 2):
        for errors, make in ((robust, "lbfgs"), (plain, None)):
            problem = problems.build("poisson1d", seed=seed)
            ngp.train(problem.model, "adam", lr=1e-3, iterations=1000, seed=seed)
            if make is None:
                opt = ngp.lbfgs(list(problem.model.net.parameters()), max_iter=1, history_size=10)
                with pytest.warns(ngp.PinnWarning, match="float32"):
                    result = ngp.train(problem.model, opt, iterations=300, batch_size=32, seed=seed)
            else:
                result = ngp.train(problem.model, make, iterations=300, batch_size=32, seed=seed)
                assert isinstance(problem.model.opt, ng.LBFGS)
                assert result.pairs_tried == 300
                assert result.skipped_pairs is not None
            assert np.isfinite(result.losses).all()
            assert math.isfinite(result.final_loss)
            errors.append(problem.error())
    assert statistics.median(robust) <= statistics.median(plain)
