"""Walks that could not finish are refused before any work; an uncapped walk stops at its horizon."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from noisygrad.bio import PruningModel
from noisygrad.bio.pruning import MAX_WALK_STEPS


def test_the_walk_that_never_ended_is_refused_at_once_naming_max_steps():
    model = PruningModel(w0=1.0, theta=0.0, eta=1e-12, kappa=1e-12, sigma=0.0)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"mean passage time 1e\+24 steps .* pass max_steps="):
        model.simulate_walk(10, np.random.default_rng(0))
    assert time.perf_counter() - start < 1.0  # refused before any work


def test_a_capped_walk_of_that_model_returns_inf_for_the_survivors():
    model = PruningModel(w0=1.0, theta=0.0, eta=1e-12, kappa=1e-12, sigma=0.0)
    t = model.simulate_walk(10, np.random.default_rng(0), max_steps=100)
    assert np.all(np.isinf(t))


def test_a_cap_beyond_the_limit_is_refused():
    model = PruningModel(w0=1.0, theta=0.0, eta=0.1, kappa=1.0, sigma=1.0)
    with pytest.raises(ValueError, match="max_steps must be <= 1e"):
        model.simulate_walk(1, np.random.default_rng(0), max_steps=MAX_WALK_STEPS + 1)


def test_noise_far_larger_than_the_drift_is_refused_too():
    """The passage time's tail, 2 sigma^2 / kappa^2 steps, not only its mean, sets the horizon."""
    model = PruningModel(w0=1.0, theta=0.0, eta=1.0, kappa=1e-4, sigma=10.0)  # mean 1e4, tail 2e10 steps
    with pytest.raises(ValueError, match=r"tail 2 sigma\^2/kappa\^2 = 2e\+10 steps"):
        model.simulate_walk(1, np.random.default_rng(0))


def test_the_bridge_is_guarded_naming_max_time():
    model = PruningModel(w0=1.0, theta=0.0, eta=1e-9, kappa=1e-9, sigma=1e-3)
    with pytest.raises(ValueError, match="pass max_time="):
        model.simulate_sde(5, np.random.default_rng(0), method="bridge")
    with pytest.raises(ValueError, match="max_time / dt must be <= 1e"):
        model.simulate_sde(5, np.random.default_rng(0), method="bridge", max_time=1e12, dt=1.0)
    t = model.simulate_sde(5, np.random.default_rng(0), method="bridge", max_time=100.0)
    assert np.all(np.isinf(t))


def test_the_horizon_covers_the_tail():
    """Every one of 20,000 walks ends well inside the horizon (each beyond it with probability ~1e-26)."""
    model = PruningModel(w0=1.0, theta=0.0, eta=0.05, kappa=0.2, sigma=2.0)
    t = model.simulate_walk(20_000, np.random.default_rng(1))
    assert np.all(np.isfinite(t))
    assert t.max() < model.passage_horizon() / 4
    assert math.isclose(model.passage_horizon(), 100.0 + 60 * 200.0 + 1000.0)
