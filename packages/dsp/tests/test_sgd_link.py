"""LMS is the core's SGD on a streaming least-squares objective; its gradient noise predicts its noise ball."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import noisygrad as ng
from noisygrad.dsp import LMS, StreamingLeastSquares, sgd_lms, tapped_delay_line
from noisygrad.dsp import experiments as dsp_experiments
from noisygrad.tour.registry import experiments


def test_sgd_on_the_streaming_objective_is_lms():
    rng = np.random.default_rng(0)
    taps, n, mu = 8, 1500, 0.02
    x = rng.standard_normal(n)
    d = lfilter(rng.standard_normal(taps), 1.0, x) + 0.1 * rng.standard_normal(n)
    lms = LMS(taps, mu)
    lms.run(x, d=d)
    w_sgd = sgd_lms(tapped_delay_line(x, taps), d, mu)
    np.testing.assert_allclose(w_sgd, lms.weights, rtol=0, atol=1e-12)


def test_streaming_estimator_reports_the_lms_error_and_resumes():
    rng = np.random.default_rng(1)
    u, d = rng.standard_normal((40, 3)), rng.standard_normal(40)
    est = StreamingLeastSquares(u, d)
    first = ng.minimize(est, ng.SGD(0.05), torch.zeros(3, dtype=torch.float64), steps=25)
    rest = ng.minimize(est, ng.SGD(0.05), steps=15, resume=first.checkpoint)
    lms = LMS(3, 0.05)
    _, e = lms.run_regressors(u, d=d)
    np.testing.assert_allclose(rest.x.numpy(), lms.weights, rtol=0, atol=1e-13)
    est2 = StreamingLeastSquares(u, d)
    w = torch.zeros(3, dtype=torch.float64)
    estimate = est2.estimate(w, torch.Generator())
    assert estimate.stats["error"] == pytest.approx(e[0])
    np.testing.assert_allclose(estimate.grad.numpy(), -e[0] * u[0], rtol=1e-14)
    with pytest.raises(IndexError, match="exhausted after 40 samples"):
        ng.minimize(est, ng.SGD(0.05), steps=1, resume=rest.checkpoint)
    with pytest.raises(ValueError, match="same number of samples"):
        StreamingLeastSquares(u, d[:-1])


def _check_quick(name: str) -> None:
    findings = experiments()[f"dsp.{name}"].run(seed=0, quick=True)
    assert findings
    for f in findings:
        assert f.passed, (name, f.claim, f.predicted, f.measured, f.tolerance)
        assert f.experiment == f"dsp.{name}"


@pytest.mark.parametrize("name", ["rls-kalman", "lms-noise-ball"])
def test_experiments_pass_at_their_quick_size(name):
    _check_quick(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lms-misadjustment", "rls-tracking"])
def test_statistical_experiments_pass_at_their_quick_size(name):
    """Their code paths are tested by default in test_misadjustment.py; the tour runs them."""
    _check_quick(name)


def test_plugin_declares_the_experiments():
    from noisygrad.plugins import get

    declared = get("dsp").experiments
    assert set(declared) == {"dsp.lms-misadjustment", "dsp.rls-kalman", "dsp.lms-noise-ball", "dsp.rls-tracking"}
    for name, target in declared.items():
        module, _, func = target.partition(":")
        assert module == "noisygrad.dsp.experiments"
        assert name == f"dsp.{func.replace('_', '-')}"
        assert callable(getattr(dsp_experiments, func))
