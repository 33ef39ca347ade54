"""The plugin's tour experiments (``pinn/experiments.py``, ``pinn/inverse_experiment.py``): behaviours that their
full mutation runs found unchecked (issue 18).

The findings are built from hand-made runs (a ``Fit`` whose trace is written out, a coefficient other than 1, a
solved run whose clock reads a known time) or from real runs cut to a step, so every check is exact: counts,
ratios, units, names and rounding. No statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import dataclasses
import inspect
import types

import numpy as np
import pytest
import torch

from noisygrad.pinn import experiments, problems
from noisygrad.pinn import inverse_experiment as ie
from noisygrad.pinn.inverse import Fit

_COMMON = {"size": "quick", "adam_lr": 1e-2, "budgets": {"adam": 400, "lbfgs": 50, "adam+lbfgs": 100}}


def _fit(method: str, counts: list[float], values: list[float]) -> Fit:
    return Fit(method, values[-1], int(counts[-1]), np.array(counts), np.array(values), 1e-6, 0.1, [])


def _runs(true_value: float) -> dict[tuple[float, str], tuple[object, Fit]]:
    """Exact-data runs towards ``true_value``: L-BFGS within 0.4% from evaluation 10, Adam within 0.8% from 40 and
    0.4% from 80, Adam then L-BFGS within 0.3% from 20."""
    problem = types.SimpleNamespace(true_value=true_value)
    c = true_value
    return {
        (0.0, "lbfgs"): (problem, _fit("lbfgs", [5, 10, 50], [0.5 * c, 1.004 * c, 1.001 * c])),
        (0.0, "adam"): (problem, _fit("adam", [20, 40, 80, 400], [0.5 * c, 1.008 * c, 1.004 * c, 1.002 * c])),
        (0.0, "adam+lbfgs"): (problem, _fit("adam+lbfgs", [10, 20, 100], [0.9 * c, 1.003 * c, 1.0 * c])),
    }


def test_speed_finding_is_the_ratio_of_evaluations_to_settle_within_one_percent_of_c() -> None:
    """Settling means within ``SETTLE`` (1%) of C* = 2, an absolute 0.02: Adam settles at 40 (0.8% off, 0.016), so
    the ratio is 10 / 40."""
    speed = ie._speed(_runs(2.0), _COMMON)
    assert speed.measured == 10 / 40
    assert speed.unit == "evaluations ratio"
    assert speed.details["lbfgs_evaluations_to_settle"] == 10
    assert speed.details["adam_evaluations_to_settle"] == 40
    assert speed.details["adam+lbfgs_evaluations_to_settle"] == 20
    assert speed.details["adam_censored_at_budget"] is False
    assert speed.details["tolerance"].startswith("a bound on deterministic runs (no Monte-Carlo error)")


def test_exact_findings_are_relative_errors_named_by_method() -> None:
    """With C* = 2 the relative error is |C - 2| / 2; each claim names its method and budget."""
    exact = ie._exact(_runs(2.0), _COMMON)
    assert [f.measured for f in exact] == pytest.approx([0.002, 0.001, 0.0], rel=1e-9, abs=1e-15)
    assert [f.claim for f in exact] == [
        "with exact data, Adam recovers C* to relative error <= 0.01 on a budget of 400 evaluations",
        "with exact data, L-BFGS recovers C* to relative error <= 0.001 on a budget of 50 evaluations",
        "with exact data, Adam then L-BFGS recovers C* to relative error <= 0.0001 on a budget of 100 evaluations",
    ]


def test_inverse_experiment_runs_on_one_thread_with_seed_0_and_the_quick_size_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    def recorded(seed: int, size: dict, quick: bool) -> list:
        calls.append((seed, size, quick, torch.get_num_threads()))
        return []

    monkeypatch.setattr(ie, "_findings", recorded)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the test session runs on one thread: start from another count
    try:
        ie.inverse_noisy_data()
        ie.inverse_noisy_data(seed=3, quick=False)
        assert torch.get_num_threads() == 2  # the caller's count is put back
    finally:
        torch.set_num_threads(before)
    assert calls == [(0, ie.QUICK, True, 1), (3, ie.FULL, False, 1)]


def test_adam_identity_needs_at_least_one_step() -> None:
    with pytest.raises(ValueError, match=r"^parameter steps takes an integer in \[1, 100000\], got 0"):
        experiments.adam_identity(steps=0)


def test_accuracy_finding_has_its_unit_and_the_wall_time_to_a_tenth(monkeypatch: pytest.MonkeyPatch) -> None:
    real_solve = problems.solve

    def timed_solve(name: str, *, seed: int, quick: bool) -> problems.Solved:
        solved = real_solve(name, seed=seed, quick=True, iterations=1, lbfgs_iterations=1)
        return dataclasses.replace(solved, seconds=1.2345)

    monkeypatch.setattr(problems, "solve", timed_solve)
    (finding,) = experiments.poisson1d(seed=0, quick=True)
    assert finding.unit == "relative L2"
    assert finding.details["seconds"] == 1.2


@pytest.mark.parametrize("experiment", [experiments.adam_identity, experiments.collocation_noise])
def test_an_experiments_signature_shows_seed_0_and_the_quick_size(experiment) -> None:
    """``help()`` and ``inspect`` show the defaults the tour's wrapper runs with."""
    parameters = inspect.signature(experiment).parameters
    assert parameters["seed"].default == 0
    assert parameters["quick"].default is True
