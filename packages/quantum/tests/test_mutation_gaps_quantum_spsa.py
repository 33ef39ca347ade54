"""Tests that close the mutation-testing gaps of the quantum SPSA optimizer, its checkpoints and ``vqe`` (issue 18).

Covers ``spsa.py`` (gains, calibration, the divergence guard, trust region, bounds, blocking, callbacks, 2-SPSA's
smoothed Hessian, grouping and counting, settings and refusals), ``_spsa_checkpoint.py`` and ``_vqe_checkpoint.py``
(stamping, every refusal by name, the boundaries of ``k``, ``a`` and the counters, plain/unplain round trips) and
``vqe.py`` (documented defaults, accounting, history, the default optimizer and averaging, the settings a checkpoint
holds, the objective's settings passed through). Checks are exact (the same bits, closed-form gains and counts, a
one-dimensional linear ``f`` whose SPSA gradient is the same float whatever the direction) or to float64 rounding
where a value goes through a difference of squares (rel 1e-9/1e-12, stated at each); the 12-qubit reference energy
is compared to Lanczos' convergence tolerance. No statistical claim is made, so there is no Monte-Carlo tolerance.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import math
import time
import warnings

import numpy as np
import pytest
import torch
from qiskit_algorithms.utils import algorithm_globals

import noisygrad as ng
import noisygrad.quantum as nq
import noisygrad.quantum.spsa as spsa_module
from noisygrad.loop_checkpoint import CheckpointError, checkpoint_checksum
from noisygrad.quantum import _spsa_checkpoint, _vqe_checkpoint
from noisygrad.rng import numpy_from_torch

vqe_module = importlib.import_module("noisygrad.quantum.vqe")  # the package's ``vqe`` is the function

# ------------------------------------------------------------------------------------------- _spsa_checkpoint


def _quadratic(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.sum((x - 1.0) ** 2))


def _spsa_checkpoint_of(maxiter=3, **settings):
    """A real SPSA checkpoint (given gains unless ``settings`` say otherwise) on a noiseless quadratic."""
    settings = {"learning_rate": 0.1, "perturbation": 0.1, **settings}
    return nq.SPSA(maxiter=maxiter, seed=0, **settings).minimize(_quadratic, np.array([0.3, -0.2])).checkpoint


def _settings(checkpoint):
    return dict(checkpoint["settings"])


def test_spsa_checkpoint_formats_and_versions_are_the_documented_ones():
    assert _spsa_checkpoint.SPSA_CHECKPOINT_FORMAT == "noisygrad.quantum.SPSA"
    assert _spsa_checkpoint.QNSPSA_CHECKPOINT_FORMAT == "noisygrad.quantum.QNSPSA"
    assert _spsa_checkpoint.SPSA_CHECKPOINT_VERSION == 1 == _spsa_checkpoint.QNSPSA_CHECKPOINT_VERSION
    checkpoint = _spsa_checkpoint_of()
    assert (checkpoint["format"], checkpoint["version"]) == ("noisygrad.quantum.SPSA", 1)
    assert set(checkpoint) == {"format", "version", "checksum", *_spsa_checkpoint.STATE_KEYS}
    assert _spsa_checkpoint.STATE_KEYS == (
        "settings", "k", "x", "tail", "best_x", "rng", "a", "fx", "allowed_increase", "hessian", "guard", "nfev",
        "nfev_total", "rejected", "learning_rate", "perturbation",
    )  # fmt: skip
    assert _spsa_checkpoint.EXTRA_KEYS == {
        "noisygrad.quantum.SPSA": (),
        "noisygrad.quantum.QNSPSA": ("fidelity_evaluations",),
    }
    qn = _spsa_checkpoint.stamp({**checkpoint, "fidelity_evaluations": 0}, "noisygrad.quantum.QNSPSA")
    assert (qn["format"], qn["version"]) == ("noisygrad.quantum.QNSPSA", 1)


def test_spsa_checkpoint_stamp_replaces_the_schema_and_leaves_the_state_alone():
    checkpoint = _spsa_checkpoint_of()
    state = {**checkpoint, "format": "old", "version": 7, "checksum": "sha256:0"}
    before = dict(state)
    stamped = _spsa_checkpoint.stamp(state)
    assert state == before  # not changed in place
    assert (stamped["format"], stamped["version"]) == ("noisygrad.quantum.SPSA", 1)
    assert stamped["checksum"] == checkpoint_checksum(stamped) == checkpoint["checksum"]
    assert list(stamped)[:2] == ["format", "version"]
    assert list(stamped)[-1] == "checksum"
    for bad in ("noisygrad.quantum.vqe", "SPSA"):
        with pytest.raises(ValueError, match="fmt"):
            _spsa_checkpoint.stamp(checkpoint, bad)
        with pytest.raises(ValueError, match="fmt"):
            _spsa_checkpoint.check(checkpoint, _settings(checkpoint), 3, bad)


def test_spsa_checkpoint_check_accepts_a_good_one_and_each_boundary():
    checkpoint = _spsa_checkpoint_of(maxiter=3)
    settings = _settings(checkpoint)
    assert _spsa_checkpoint.check(checkpoint, settings, 3) is checkpoint  # k == maxiter
    assert _spsa_checkpoint.check(checkpoint, settings, 4) is checkpoint
    assert checkpoint["a"] is None  # given gains
    for k in (0, 1):
        ok = _spsa_checkpoint.stamp({**checkpoint, "k": k})
        assert _spsa_checkpoint.check(ok, settings, 3) is ok
    calibrated = nq.SPSA(maxiter=2, seed=0, calibration_samples=2).minimize(_quadratic, np.array([0.3, -0.2]))
    calibrated = calibrated.checkpoint
    assert isinstance(calibrated["a"], float)
    assert _spsa_checkpoint.check(calibrated, _settings(calibrated), 2) is calibrated
    qn = _spsa_checkpoint.stamp({**checkpoint, "fidelity_evaluations": 0}, "noisygrad.quantum.QNSPSA")
    assert _spsa_checkpoint.check(qn, settings, 3, "noisygrad.quantum.QNSPSA") is qn


def test_spsa_checkpoint_check_refuses_each_bad_entry_by_name():
    checkpoint = _spsa_checkpoint_of(maxiter=3)
    settings = _settings(checkpoint)

    def refused(state, match, maxiter=3, fmt="noisygrad.quantum.SPSA", restamp=True):
        if restamp:
            state = _spsa_checkpoint.stamp(state, fmt)
        with pytest.raises(CheckpointError, match=match):
            _spsa_checkpoint.check(state, settings, maxiter, fmt)

    with pytest.raises(TypeError, match=r"SPSA\.state_dict\(\)\) \(load a saved one with torch\.load"):
        _spsa_checkpoint.check("run.pt", settings, 3)
    with pytest.raises(TypeError, match=r"QNSPSA\.state_dict\(\)\), got list$"):
        _spsa_checkpoint.check([], settings, 3, "noisygrad.quantum.QNSPSA")
    refused(checkpoint, r"^resume: k \(iterations done\) is 3; .*maxiter=2", maxiter=2)
    refused({**checkpoint, "k": -1}, r"^resume: k \(iterations done\) is -1")
    refused({**checkpoint, "k": 2.0}, r"^resume: k \(iterations done\) is 2.0")
    refused({**checkpoint, "x": checkpoint["x"].float()}, "^resume: x must be a 1-D float64 tensor")
    refused({**checkpoint, "x": checkpoint["x"].reshape(1, 2)}, "^resume: x must be a 1-D float64 tensor")
    refused({**checkpoint, "x": checkpoint["x"].numpy()}, "^resume: x must be a 1-D float64 tensor")
    refused({**checkpoint, "x": torch.tensor([0.0, float("nan")], dtype=torch.float64)}, "^resume: the .* diverged")
    guard = {**checkpoint["guard"], "reason": "a value estimate or an iterate became NaN or Inf"}
    refused({**checkpoint, "guard": guard}, "^resume: the checkpointed run diverged")
    for a in (1, float("inf"), float("nan")):
        refused({**checkpoint, "a": a}, r"^resume: a \(the calibrated gain\) must be a finite float or None")
    for count in (-1, True, 1.0):
        qn = {**checkpoint, "fidelity_evaluations": count}
        refused(qn, "^resume: fidelity_evaluations is", fmt="noisygrad.quantum.QNSPSA")
    refused({**checkpoint, "version": 2}, "^resume: version 2 is not 1", restamp=False)
    refused({**checkpoint, "checksum": "sha256:0"}, "^resume: checksum", restamp=False)
    other = _spsa_checkpoint.stamp({**checkpoint, "settings": {**settings, "dim": 3}})
    with pytest.raises(CheckpointError, match=r"^resume: settings\['dim'\] is 3 .* but 2 here; resume with the opt"):
        _spsa_checkpoint.check(other, settings, 3)
    for key in _spsa_checkpoint.STATE_KEYS:
        truncated = _spsa_checkpoint.stamp({k: v for k, v in checkpoint.items() if k != key})
        with pytest.raises(CheckpointError, match=rf"^resume: the checkpoint is truncated: \['{key}'\] missing"):
            _spsa_checkpoint.check(truncated, settings, 3)
    refused(
        checkpoint, r"^resume: the checkpoint is truncated: \['fidelity_evaluations'\]", fmt="noisygrad.quantum.QNSPSA"
    )
    refused(
        checkpoint,
        r"^resume: format is 'noisygrad.quantum.SPSA', not 'noisygrad.quantum.QNSPSA': this is not a checkpoint of "
        r"noisygrad.quantum.QNSPSA \(resume it with noisygrad.quantum.SPSA\)$",
        fmt="noisygrad.quantum.QNSPSA",
        restamp=False,
    )
    for found in (None, "noisygrad.quantum.vqe", ["noisygrad.quantum.SPSA"]):  # a list too: a CheckpointError
        refused(
            {**checkpoint, "format": found},
            r"not a checkpoint of noisygrad.quantum.SPSA \(vqe's and minimize's checkpoints resume through",
            restamp=False,
        )


def test_spsa_checkpoint_plain_keeps_a_generator_state_and_unplain_restores_it():
    rng = np.random.default_rng(5)
    rng.random(3)
    saved = _spsa_checkpoint.plain(rng.bit_generator.state)
    again = np.random.default_rng(0)
    again.bit_generator.state = _spsa_checkpoint.unplain(saved)
    np.testing.assert_array_equal(again.random(4), rng.random(4))
    mt = np.random.Generator(np.random.MT19937(3))
    state = _spsa_checkpoint.plain(mt.bit_generator.state)
    assert state["state"]["key"]["dtype"] == "<u4"
    assert len(state["state"]["key"]["ndarray"]) == 624
    back = _spsa_checkpoint.unplain(state)
    assert back["state"]["key"].dtype == np.uint32
    # a dict that only resembles an array (other keys too) stays a dict
    assert _spsa_checkpoint.unplain({"ndarray": [1], "dtype": "<f8", "x": 1}) == {
        "ndarray": [1],
        "dtype": "<f8",
        "x": 1,
    }


def test_plain_and_unplain_round_trip_arrays_scalars_and_nesting():
    state = {"a": np.arange(3, dtype=np.uint32), "b": [np.float64(1.5), (np.int64(2), "s")], "c": None}
    out = _spsa_checkpoint.plain(state)
    assert out == {"a": {"ndarray": [0, 1, 2], "dtype": "<u4"}, "b": [1.5, [2, "s"]], "c": None}
    assert type(out["b"][0]) is float
    assert type(out["b"][1][0]) is int
    back = _spsa_checkpoint.unplain(out)
    assert back["a"].dtype == np.uint32
    np.testing.assert_array_equal(back["a"], [0, 1, 2])
    assert back["b"] == [1.5, [2, "s"]]


# ------------------------------------------------------------------------------------------------------- spsa

TARGET = 2 * math.pi / 10  # qiskit's calibration target


def _linear(x):
    """``f(x) = x_0``: every SPSA gradient sample is ``((x + c) - (x - c)) / (2c)`` whatever the direction's sign."""
    return float(np.asarray(x, dtype=np.float64).reshape(-1)[0])


def _reference_1d(x0, rates, perturbations):
    """The iterates of SPSA on :func:`_linear` in one dimension, step by step with the optimizer's float ops."""
    x, out = np.array([x0], dtype=np.float64), []
    for eta, eps in zip(rates, perturbations, strict=True):
        gradient = ((x[0] + eps) - (x[0] - eps)) / (2 * eps) * np.ones(1)
        x = np.clip(x - gradient * eta, -np.inf, np.inf)
        out.append(x)
    return out


def test_powerseries_defaults_and_offset():
    series = spsa_module.powerseries()
    assert [next(series) for _ in range(3)] == [0.01 / 1.0**2, 0.01 / 2.0**2, 0.01 / 3.0**2]
    series = spsa_module.powerseries(0.5, 0.602, 2.0)
    assert [next(series) for _ in range(2)] == [0.5 / 3.0**0.602, 0.5 / 4.0**0.602]
    assert (spsa_module.SPALL_ALPHA, spsa_module.SPALL_GAMMA) == (0.602, 0.101)
    assert spsa_module.DEFAULT_TARGET_MAGNITUDE == TARGET
    assert (spsa_module.DEFAULT_LEARNING_RATE_DECAY, spsa_module.DEFAULT_PERTURBATION_DECAY) == (0.5, 0.05)
    assert spsa_module.DEFAULT_AVERAGE_FRACTION == 0.25
    assert (spsa_module.DIVERGENCE_FACTOR, spsa_module.DIVERGENCE_PATIENCE) == (1e3, 5)


def test_calibrate_gives_target_over_the_mean_slope_with_qiskits_defaults():
    calls = []

    def loss(x):
        calls.append(np.shape(x))
        return 2.0 * float(np.asarray(x)[0])  # slope 2 along every direction's first entry: magnitude 2 exactly

    rng = np.random.default_rng(1)
    eta, eps = nq.SPSA.calibrate(loss, np.zeros(2), rng=rng)
    assert calls == [(2,)] * 50  # 25 samples, one point per call
    rates, perts = eta(), eps()
    assert [next(rates) for _ in range(2)] == [TARGET / 2 / 1.0**0.602, TARGET / 2 / 2.0**0.602]
    assert [next(perts) for _ in range(2)] == [0.2 / 1.0**0.101, 0.2 / 2.0**0.101]
    calls.clear()
    eta, eps = nq.SPSA.calibrate(
        loss, np.zeros(2), c=0.5, stability_constant=3, target_magnitude=1.0, alpha=0.5, gamma=0.25,
        modelspace=True, rng=rng, samples=4,
    )  # fmt: skip
    assert calls == [(2,)] * 8
    assert next(eta()) == 1.0 / 2.0**2 / (1 + 3) ** 0.5  # modelspace: target / magnitude^2
    assert next(eps()) == 0.5
    calls.clear()

    def batched(x):
        calls.append(np.shape(x))
        return 2.0 * np.asarray(x)[:, 0]

    nq.SPSA.calibrate(batched, np.zeros(2), max_evals_grouped=10, rng=rng)
    assert calls == [(10, 2)] * 5


def test_calibrate_draws_from_qiskits_global_generator_by_default():
    points = []

    def loss(x):
        points.append(np.array(x))
        return float(np.sum(x))

    algorithm_globals.random_seed = 7
    nq.SPSA.calibrate(loss, np.zeros(3), samples=3)
    algorithm_globals.random_seed = None
    default = list(points)
    points.clear()
    nq.SPSA.calibrate(loss, np.zeros(3), samples=3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(default, points)


def test_calibrated_gain_at_its_lower_bound_is_kept_not_replaced():
    """``a`` is accepted on ``1e-10 <= a < inf``: a slope of 1 and a target of 1e-10 give ``a = 1e-10`` exactly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eta, _ = nq.SPSA.calibrate(_linear, np.zeros(1), target_magnitude=1e-10, rng=np.random.default_rng(0))
    assert next(eta()) == 1e-10
    with pytest.warns(RuntimeWarning, match="calibration failed"):
        eta, _ = nq.SPSA.calibrate(_linear, np.zeros(1), target_magnitude=0.9e-10, rng=np.random.default_rng(0))
    assert next(eta()) == 0.9e-10


def test_estimate_stddev_is_the_population_std_of_avg_evaluations():
    values = iter(range(100))
    calls = []

    def loss(x):
        calls.append(np.shape(x))
        return float(next(values))

    assert nq.SPSA.estimate_stddev(loss, np.zeros(2)) == float(np.std(np.arange(25.0)))
    assert calls == [(2,)] * 25
    calls.clear()

    def batched(x):
        calls.append(np.shape(x))
        return np.array([float(next(values)) for _ in range(len(x))])

    assert nq.SPSA.estimate_stddev(batched, np.zeros(2), avg=4, max_evals_grouped=2) == float(
        np.std([25.0, 26, 27, 28])
    )
    assert calls == [(2, 2)] * 2


def test_support_level_is_qiskits():
    from qiskit_algorithms.optimizers import OptimizerSupportLevel as Level

    assert nq.SPSA().get_support_level() == {
        "gradient": Level.ignored,
        "bounds": Level.supported,
        "initial_point": Level.required,
    }


def test_bernoulli_perturbation_draws_as_qiskit_with_a_sparse_support():
    rng, twin = np.random.default_rng(4), np.random.default_rng(4)
    full = spsa_module.bernoulli_perturbation(5, rng=rng)
    np.testing.assert_array_equal(full, 1 - 2 * twin.binomial(1, 0.5, size=5))
    sparse = spsa_module.bernoulli_perturbation(6, 2, rng=rng)
    signs = 1 - 2 * twin.binomial(1, 0.5, size=2)
    support = twin.choice(list(range(6)), size=2, replace=False)
    expected = np.zeros(6)
    expected[support] = signs
    np.testing.assert_array_equal(sparse, expected)
    assert np.count_nonzero(sparse) == 2
    algorithm_globals.random_seed = 3
    a = spsa_module.bernoulli_perturbation(8)
    algorithm_globals.random_seed = None
    np.testing.assert_array_equal(a, 1 - 2 * np.random.default_rng(3).binomial(1, 0.5, size=8))


def test_default_run_is_the_calibrated_half_power_series_averaged_over_the_last_quarter():
    """1-D ``f(x) = x`` from 0: calibration's slope is 1 exactly, so ``a = 2 pi / 10``; rates ``a / k^0.5``,
    perturbations ``0.2 / k^0.05``; the result is the mean of the last ``ceil(0.25 * 9) = 3`` iterates, at one
    final evaluation."""
    calls = []

    def fun(x):
        calls.append(1)
        return _linear(x)

    result = nq.SPSA(maxiter=9, seed=0).minimize(fun, [0.0])
    k = np.arange(1, 10)
    rates, perts = [TARGET / kk**0.5 for kk in k], [0.2 / kk**0.05 for kk in k]
    np.testing.assert_array_equal(result.learning_rate, rates)
    np.testing.assert_array_equal(result.perturbation, perts)
    iterates = _reference_1d(0.0, rates, perts)
    np.testing.assert_array_equal(result.x, np.mean(np.asarray(iterates[-3:]), axis=0))
    assert result.fun == _linear(result.x)
    assert result.fun_stderr is None
    assert (result.nit, result.nfev, result.nfev_total, len(calls)) == (9, 18, 50 + 18 + 1, 50 + 18 + 1)
    assert result.success
    assert result.message == "9 SPSA iterations, 0 steps rejected"
    assert result.checkpoint["a"] == TARGET
    assert result.checkpoint["k"] == 9
    np.testing.assert_array_equal(result.checkpoint["x"].numpy(), iterates[-1])
    last = nq.SPSA(maxiter=9, seed=0, last_avg=1).minimize(fun, [0.0])
    np.testing.assert_array_equal(last.x, iterates[-1])


def test_given_gains_constant_array_and_callable_take_those_steps():
    for rate, pert in ((0.1, 0.05), (np.linspace(0.3, 0.1, 4), [0.1, 0.2, 0.3, 0.4]), (lambda: iter([0.2] * 4), 0.1)):
        result = nq.SPSA(maxiter=4, seed=1, learning_rate=rate, perturbation=pert, last_avg=1).minimize(_linear, [0.0])
        rates = [next(r) for r in [iter(rate() if callable(rate) else np.broadcast_to(rate, 4))] for _ in range(4)]
        perts = list(np.broadcast_to(np.asarray(pert, dtype=np.float64), 4))
        np.testing.assert_array_equal(result.learning_rate, rates)
        np.testing.assert_array_equal(result.perturbation, perts)
        np.testing.assert_array_equal(result.x, _reference_1d(0.0, rates, perts)[-1])
        assert result.nfev_total == 2 * 4 + 1  # given gains: no calibration
        assert result.checkpoint["a"] is None


def test_final_evaluations_average_with_their_standard_error():
    values = iter([1.0, 2.0, 4.0])

    calls: list[int] = []

    def fun(x):  # 0 at the 8 gradient points of the 4 steps, then 1, 2, 4 at the returned point
        calls.append(1)
        return 0.0 if len(calls) <= 8 else next(values)

    result = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, final_evaluations=3).minimize(fun, [0.0])
    assert result.fun == 7.0 / 3.0
    assert result.fun_stderr == float(np.std([1.0, 2.0, 4.0], ddof=1) / math.sqrt(3))
    assert result.nfev_total == 8 + 3
    assert result.nfev == 8


def test_blocking_rejects_a_step_that_rises_by_the_allowed_increase_or_more():
    """``f`` constant: every candidate equals ``f(x)``, so with ``allowed_increase=0`` every step is rejected
    (qiskit's ``fx + allowed <= fx_next``) and the run stays at ``x0``."""
    seen = []
    spsa = nq.SPSA(
        maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, blocking=True, allowed_increase=0.0, last_avg=1,
        callback=lambda nfev, x, fx, step, accepted: seen.append((nfev, float(x[0]), fx, step, accepted)),
    )  # fmt: skip
    result = spsa.minimize(lambda x: 1.0, [0.25])
    assert result.rejected == 4
    assert result.message == "4 SPSA iterations, 4 steps rejected"
    np.testing.assert_array_equal(result.x, [0.25])
    assert seen == [(1 + 3 * k, 0.25, 1.0, 0.0, False) for k in range(1, 5)]  # a flat f gives a zero gradient
    rising = iter([0.0] + [0.0, 0.0, 1.0] * 4)  # f(x0), then each step: two gradient points and a candidate of 1.0
    spsa = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, blocking=True, allowed_increase=1.0)
    assert spsa.minimize(lambda x: next(rising, 0.0), [0.0]).rejected == 4
    rising = iter([0.0] + [0.0, 0.0, 0.5] * 4)
    spsa = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, blocking=True, allowed_increase=1.0)
    assert spsa.minimize(lambda x: next(rising, 0.0), [0.0]).rejected == 0


def test_divergence_guard_thresholds_patience_and_state():
    guard = spsa_module._DivergenceGuard()
    assert not guard.diverged()  # nothing observed
    assert guard.observe(1.0, 0.5, np.zeros(1))
    assert (guard.reference, guard.scale) == (1.0, 1.0)  # max(|value|, spread, 1e-12)
    for _ in range(4):
        guard.observe(1001.0, 0.0, np.zeros(1))
    assert not guard.diverged()  # five values, but the first is not above 1 + 1e3 * 1
    guard.observe(1001.0, 0.0, np.zeros(1))
    assert not guard.diverged()  # all five exactly at the threshold: not above it
    state = guard.state_dict()
    assert state == {"reference": 1.0, "scale": 1.0, "recent": [1001.0] * 5, "best_value": math.inf, "reason": ""}
    twin = spsa_module._DivergenceGuard()
    twin.load_state_dict(state)
    assert twin.state_dict() == state
    assert twin.recent.maxlen == 5
    guard.observe(1001.5, 0.0, np.zeros(1))
    assert not guard.diverged()
    for _ in range(4):
        guard.observe(1001.5, 0.0, np.zeros(1))
    assert guard.diverged()
    assert "last 5 value estimates" in guard.reason
    assert guard.message(7).startswith("SPSA diverged by iteration 7: its last 5")
    spread = spsa_module._DivergenceGuard()
    spread.observe(0.5, 2.0, np.zeros(1))
    assert spread.scale == 2.0
    for _ in range(5):
        spread.observe(2000.4, 0.0, np.zeros(1))
    assert not spread.diverged()  # the threshold is 0.5 + 1e3 * 2 = 2000.5 (the spread, not |0.5|, is the scale)
    for _ in range(5):
        spread.observe(2000.6, 0.0, np.zeros(1))
    assert spread.diverged()
    tiny = spsa_module._DivergenceGuard()
    tiny.observe(0.0, 0.0, np.zeros(1))
    assert tiny.scale == 1e-12
    for bad in ((math.nan, 0.0, np.zeros(1)), (0.0, math.inf, np.zeros(1)), (0.0, 0.0, np.array([0.0, math.nan]))):
        g = spsa_module._DivergenceGuard()
        assert not g.observe(*bad)
        assert g.diverged()
        assert g.reason == "a value estimate or an iterate became NaN or Inf"
    empty = spsa_module._DivergenceGuard()
    empty.load_state_dict({**empty.state_dict(), "reference": None})
    assert empty.reference is None


def test_trust_region_clips_the_update_to_unit_norm_and_bounds_clip_the_iterates():
    """``f(x) = 3 x``: the gradient samples are 3, so a trust region makes each step exactly the learning rate."""

    def steep(x):
        return 3.0 * _linear(x)

    kw = {"maxiter": 2, "seed": 0, "learning_rate": 0.1, "perturbation": 0.1, "last_avg": 1}
    clipped = nq.SPSA(trust_region=True, **kw).minimize(steep, [0.0])
    np.testing.assert_array_equal(clipped.x, [-0.2])
    gentle = nq.SPSA(trust_region=True, **kw).minimize(lambda x: 1.5 * _linear(x), [0.0])
    np.testing.assert_array_equal(gentle.x, [-0.2])  # a norm of 1.5 is clipped too: anything above 1
    free = nq.SPSA(**kw).minimize(steep, [0.0])
    assert free.x[0] == pytest.approx(-0.6, rel=1e-12)
    boxed = nq.SPSA(**kw).minimize(steep, [0.0], bounds=[(-0.45, 1.0)])
    np.testing.assert_array_equal(boxed.x, [-0.45])
    start = nq.SPSA(**{**kw, "maxiter": 1}).minimize(steep, [2.0], bounds=[(-1.0, 1.0)])  # x0 clipped into the box
    assert start.x[0] == pytest.approx(1.0 - 0.3, rel=1e-12)


def test_callback_and_termination_checker_see_each_step():
    seen, checked = [], []

    def fun(x):
        return _linear(x)

    def checker(nfev, x, fx, step, accepted):
        checked.append((nfev, float(x[0]), fx, step, accepted))
        return len(checked) == 2

    spsa = nq.SPSA(
        maxiter=5, seed=0, learning_rate=0.25, perturbation=0.5, last_avg=1, termination_checker=checker,
        callback=lambda nfev, x, fx, step, accepted: seen.append((nfev, float(x[0]), fx, step, accepted)),
    )  # fmt: skip
    result = spsa.minimize(fun, [0.0])
    assert seen == [(3, -0.25, -0.25, 0.25, True), (6, -0.5, -0.5, 0.25, True)]  # f(x_next) costs one evaluation
    assert checked == seen  # with a callback, the checker gets f(x_next) too
    assert result.nit == 2
    assert result.message == "stopped by the termination checker at iteration 2"
    assert (result.nfev, result.nfev_total) == (6, 7)
    checked.clear()
    plain = nq.SPSA(maxiter=5, seed=0, learning_rate=0.25, perturbation=0.5, termination_checker=checker)
    assert plain.minimize(fun, [0.0]).nfev == 4  # no callback: no extra evaluation
    assert checked == [(2, -0.25, 0.0, 0.25, True), (4, -0.5, -0.25, 0.25, True)]  # the value estimate at x


def test_a_nan_stops_the_run_and_returns_the_best_iterate_by_its_value():
    def fun(x):
        value = _linear(x)
        return value if value > -0.25 else math.nan

    result = nq.SPSA(maxiter=10, seed=0, learning_rate=0.1, perturbation=0.01).minimize(fun, [0.0])
    assert not result.success
    assert result.nit == 4
    assert "NaN or Inf" in result.message
    assert result.message.startswith("SPSA diverged by iteration 4")
    assert result.x[0] == pytest.approx(-0.2, rel=1e-12)  # the last point whose estimate was finite and lowest
    assert result.checkpoint["guard"]["reason"]


def test_resamplings_per_iteration_and_the_average_fraction():
    counts = []

    def fun(x):
        counts.append(1)
        return _linear(x)

    spsa = nq.SPSA(maxiter=3, seed=0, learning_rate=0.1, perturbation=0.1, resamplings={1: 3, 3: 2})
    assert spsa.minimize(fun, [0.0]).nfev == 2 * (3 + 1 + 2)
    result = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, average_fraction=0.5).minimize(fun, [0.0])
    rates, perts = [0.1] * 4, [0.1] * 4
    np.testing.assert_array_equal(result.x, np.mean(np.asarray(_reference_1d(0.0, rates, perts)[-2:]), axis=0))
    result = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, resamplings=2).minimize(fun, [0.0])
    assert result.nfev == 16


def test_settings_list_noisygrad_options_that_differ_and_expand_callable_gains():
    default = nq.SPSA().settings
    assert set(default) == {
        "maxiter", "learning_rate", "perturbation", "trust_region", "blocking", "allowed_increase", "resamplings",
        "perturbation_dims", "second_order", "hessian_delay", "regularization", "lse_solver", "initial_hessian",
        "callback", "termination_checker",
    }  # fmt: skip
    assert default["regularization"] == 0.01
    assert default["maxiter"] == 100
    options = {
        "last_avg": 2, "seed": 1, "stability": 2.0, "learning_rate_decay": 0.6, "perturbation_decay": 0.1,
        "average_fraction": 0.5, "calibration_samples": 3, "target_magnitude": 0.5, "final_evaluations": 2,
        "batch": False,
    }  # fmt: skip
    assert tuple(options) == spsa_module.NOISYGRAD_OPTIONS
    settings = nq.SPSA(**options).settings
    assert {name: settings[name] for name in options} == options
    series = nq.SPSA(maxiter=3, learning_rate=lambda: spsa_module.powerseries(1.0, 1.0), perturbation=0.1).settings
    np.testing.assert_array_equal(series["learning_rate"], [1.0, 0.5, 1.0 / 3.0])
    assert series["perturbation"] == 0.1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"hessian_delay": -1}, ValueError, "hessian_delay"),
        ({"regularization": -0.1}, ValueError, "regularization"),
        ({"perturbation_dims": 0}, ValueError, "perturbation_dims"),
        ({"resamplings": {2: 0}}, ValueError, r"resamplings\[2\]"),
        ({"learning_rate_decay": 1.5}, ValueError, "learning_rate_decay"),
        ({"perturbation_decay": -0.1}, ValueError, "perturbation_decay"),
        ({"average_fraction": 1.5}, ValueError, "average_fraction"),
        ({"calibration_samples": 0}, ValueError, "calibration_samples"),
        ({"target_magnitude": 0.0}, ValueError, "target_magnitude"),
        ({"final_evaluations": 0}, ValueError, "final_evaluations"),
        ({"stability": -1.0}, ValueError, "stability"),
        ({"lse_solver": 1}, TypeError, "lse_solver"),
        ({"termination_checker": "stop"}, TypeError, "termination_checker"),
        ({"learning_rate": True, "perturbation": 0.1}, TypeError, "learning_rate"),
        ({"learning_rate": 0.1, "perturbation": [[0.1]] * 100}, ValueError, "perturbation"),
        ({"learning_rate": 0.1, "perturbation": [0.1] * 99 + [math.inf]}, ValueError, "perturbation must contain"),
        ({"learning_rate": 0.1, "perturbation": math.inf}, ValueError, "perturbation must be finite"),
    ],
)
def test_each_bad_setting_is_refused_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        nq.SPSA(**kwargs)


def test_edge_settings_that_are_accepted():
    spsa = nq.SPSA(
        maxiter=2, regularization=0.0, hessian_delay=0, allowed_increase=0.0, learning_rate_decay=1.0,
        perturbation_decay=0.0, average_fraction=1.0, stability=0.0, seed=np.random.default_rng(0),
        learning_rate=[0.1, 0.1], perturbation=(0.1, 0.1),
    )  # fmt: skip
    assert spsa.regularization == 0.0
    assert spsa.average_fraction == 1.0
    assert nq.SPSA(seed=0).seed == 0
    closed = nq.SPSA(perturbation_decay=1.0, learning_rate_decay=0.0, average_fraction=0.5)  # both ends of [0, 1]
    assert (closed.perturbation_decay, closed.learning_rate_decay) == (1.0, 0.0)
    with pytest.raises(ValueError, match="one number per point"):
        nq.SPSA(maxiter=2, seed=0, learning_rate=0.1, perturbation=0.1).minimize(lambda x: np.zeros(2), [0.0])


def test_counter_groups_points_into_calls_and_counts_every_evaluation():
    calls = []

    def fun(x, y=None):
        calls.append((np.shape(x), None if y is None else np.shape(y)))
        x = np.asarray(x, dtype=np.float64)
        return x.sum(axis=-1) if y is None else (x * np.asarray(y)).sum(axis=-1)

    points = [np.full(2, float(i)) for i in range(7)]
    single = spsa_module._Counter(fun, 1)
    assert single(points) == [2.0 * i for i in range(7)]
    assert calls == [((2,), None)] * 7
    assert single.one(points[3]) == 6.0
    assert single.total == 8
    calls.clear()
    grouped = spsa_module._Counter(fun, 3)
    assert [float(v) for v in grouped(points)] == [2.0 * i for i in range(7)]
    assert calls == [((3, 2), None), ((2, 2), None), ((2, 2), None)]  # ceil(7 / 3) = 3 calls, split evenly
    assert grouped.total == 7
    calls.clear()
    pairs = [(points[i], points[1]) for i in range(4)]
    assert [float(v) for v in spsa_module._Counter(fun, 1)(pairs, unpack=True)] == [2.0 * i for i in range(4)]
    assert calls == [((2,), (2,))] * 4
    calls.clear()
    both = spsa_module._Counter(fun, 4)
    assert [float(v) for v in both(pairs, unpack=True)] == [2.0 * i for i in range(4)]
    assert calls == [((4, 2), (4, 2))]  # one call, each side of the pairs as a list
    with pytest.raises(ValueError, match="fun returned 1 values for a batch of 3 points"):
        spsa_module._Counter(lambda x: 0.0, 3)(points[:3])


def test_start_copies_x0_and_refuses_a_missing_or_bad_one():
    x0 = np.array([0.5])
    result = nq.SPSA(maxiter=2, seed=0, learning_rate=0.1, perturbation=0.1).minimize(_linear, x0)
    np.testing.assert_array_equal(x0, [0.5])  # the caller's array is not moved
    assert result.x is not x0
    scalar = nq.SPSA(maxiter=1, seed=0, learning_rate=0.1, perturbation=0.1, last_avg=1).minimize(_linear, 0.5)
    assert scalar.x.shape == (1,)
    spsa = nq.SPSA(maxiter=1, seed=0, learning_rate=0.1, perturbation=0.1)
    with pytest.raises(ValueError, match="x0 is required unless resume"):
        spsa.minimize(_linear)
    for bad in ([], [[0.0, 1.0]], [math.inf]):
        with pytest.raises(ValueError, match="x0 must be a non-empty 1-D array of finite numbers"):
            spsa.minimize(_linear, bad)
    spsa.minimize(_linear, [0.0])
    state = spsa.state_dict()
    state["k"] = 99
    assert spsa.state_dict()["k"] == 1  # a copy


def test_second_order_smooths_the_hessian_from_its_initial_value_and_preconditions():
    """1-D ``f(x) = x^2``: every 2-SPSA Hessian sample is 2 (to rounding), so the smoothed Hessian after ``k``
    iterations is ``(H0 + 2k) / (k + 1)``; the step solves ``(|H| + regularization) d = g`` with ``g = 2x``.
    Tolerances 1e-9 cover the rounding of the differences of squares (divided by ``2 eps^2``)."""

    def square(x):
        return float(np.asarray(x)[0] ** 2)

    kw = {"maxiter": 2, "seed": 0, "learning_rate": 0.1, "perturbation": 0.1, "second_order": True, "last_avg": 1}
    late = nq.SPSA(hessian_delay=5, initial_hessian=np.array([[4.0]]), **kw).minimize(square, [1.0])
    assert late.checkpoint["hessian"].item() == pytest.approx((4.0 + 4.0) / 3, rel=1e-9)
    assert late.nfev == 8
    default = nq.SPSA(hessian_delay=5, **kw).minimize(square, [1.0])
    assert default.checkpoint["hessian"].item() == pytest.approx((1.0 + 4.0) / 3, rel=1e-9)
    solved = []

    def solver(a, b):
        solved.append(a.copy())
        return np.linalg.solve(a, b)

    one = nq.SPSA(**{**kw, "maxiter": 1}, regularization=0.25, lse_solver=solver).minimize(square, [1.0])
    assert len(solved) == 1
    assert solved[0][0, 0] == pytest.approx(1.5 + 0.25, rel=1e-9)  # sqrt(H H) + bias, H = (1 + 2) / 2
    assert one.x[0] == pytest.approx(1.0 - 0.1 * 2.0 / 1.75, rel=1e-9)
    assert nq.SPSA(**{**kw, "maxiter": 1}, hessian_delay=1, lse_solver=solver).minimize(square, [1.0]).x[0] == (
        pytest.approx(1.0 - 0.1 * 2.0, rel=1e-9)
    )  # k = 1 is not past hessian_delay = 1: the plain gradient step
    assert len(solved) == 1


def test_the_guards_scale_is_the_mean_spread_over_the_resamplings():
    """``f(x) = 3 x`` from 0 with ``c = 0.1``: each direction's ``|f(x + c d) - f(x - c d)| = 0.6`` and the value
    estimate is 0, so the scale is the mean spread 0.6 (not the sum over the 3 resamplings), to rounding."""
    result = nq.SPSA(maxiter=1, seed=0, learning_rate=0.01, perturbation=0.1, resamplings=3).minimize(
        lambda x: 3.0 * _linear(x), [0.0]
    )
    guard = result.checkpoint["guard"]
    assert guard["reference"] == 0.0
    assert guard["scale"] == pytest.approx(0.6, rel=1e-12)


def test_errors_name_the_gain_and_the_function_first():
    with pytest.raises(ValueError, match=r"^learning_rate must be finite"):
        nq.SPSA(learning_rate=math.nan, perturbation=0.1)
    with pytest.raises(ValueError, match=r"^perturbation must be finite"):
        nq.SPSA(learning_rate=0.1, perturbation=math.inf)
    with pytest.raises(ValueError, match=r"^loss must return one number per point, got an array of shape \(2,\)"):
        nq.SPSA.calibrate(lambda x: np.zeros(2), np.zeros(1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^fun must return one number per point"):
        nq.SPSA(maxiter=1, learning_rate=0.1, perturbation=0.1).minimize(lambda x: np.zeros(2), [0.0])


def test_each_resamplings_value_estimate_uses_its_own_two_points():
    """``fun`` returns 1, 2, 3, 4 at the four points of one step with two directions: the value estimate is the mean
    of the directions' own means, (1.5 + 3.5) / 2 = 2.5, and their spread |1 - 2| = |3 - 4| = 1."""
    values = iter([1.0, 2.0, 3.0, 4.0])
    result = nq.SPSA(maxiter=1, seed=0, learning_rate=0.01, perturbation=0.1, resamplings=2).minimize(
        lambda x: next(values, 0.0), [0.0]
    )
    assert result.checkpoint["guard"]["reference"] == 2.5
    assert result.checkpoint["guard"]["scale"] == 2.5  # max(|2.5|, spread 1)
    assert result.checkpoint["guard"]["best_value"] == 2.5


def test_a_finished_run_resumed_takes_no_step_and_returns_the_same_average():
    spsa = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, last_avg=2)
    full = spsa.minimize(_linear, [0.0])
    again = nq.SPSA(maxiter=4, seed=0, learning_rate=0.1, perturbation=0.1, last_avg=2).minimize(
        _linear, resume=full.checkpoint
    )
    np.testing.assert_array_equal(again.x, full.x)  # the mean of the same last two iterates
    assert again.nit == 4
    assert again.nfev == full.nfev


# -------------------------------------------------------------------------------------------- _vqe_checkpoint


def test_vqe_checkpoint_fingerprint_is_sha256_of_the_labelled_hex_coefficients():
    labels, coefficients = ["ZI", "XX"], [0.5, -1.25]
    text = "ZI:" + (0.5).hex() + ";XX:" + (-1.25).hex()
    assert (
        _vqe_checkpoint.hamiltonian_fingerprint(labels, coefficients) == hashlib.sha256(text.encode()).hexdigest()[:16]
    )
    assert len(_vqe_checkpoint.hamiltonian_fingerprint(labels, coefficients)) == 16
    with pytest.raises(ValueError):
        _vqe_checkpoint.hamiltonian_fingerprint(labels, [0.5])


def test_vqe_checkpoint_stamp_and_check():
    assert (_vqe_checkpoint.VQE_CHECKPOINT_FORMAT, _vqe_checkpoint.VQE_CHECKPOINT_VERSION) == (
        "noisygrad.quantum.vqe",
        1,
    )
    keys = ("settings", "minimize", "schedule", "calibration", "history", "counters")
    assert keys == _vqe_checkpoint.STATE_KEYS
    state = {key: {} for key in keys}
    state["settings"] = {"shots": 100}
    stamped = _vqe_checkpoint.stamp(state)
    assert (stamped["format"], stamped["version"]) == ("noisygrad.quantum.vqe", 1)
    assert stamped["checksum"] == checkpoint_checksum(stamped)
    assert _vqe_checkpoint.check(stamped, {"shots": 100}) is stamped
    with pytest.raises(
        CheckpointError,
        match=r"^resume: settings\['shots'\] is 100 in the checkpoint but 200 here; resume with the ham",
    ):
        _vqe_checkpoint.check(stamped, {"shots": 200})
    for key in keys:
        truncated = _vqe_checkpoint.stamp({k: v for k, v in state.items() if k != key})
        with pytest.raises(CheckpointError, match=rf"^resume: the checkpoint is truncated: \['{key}'\] missing"):
            _vqe_checkpoint.check(truncated, {})
    with pytest.raises(CheckpointError, match=r"^resume: checksum"):
        _vqe_checkpoint.check({**stamped, "checksum": "sha256:0"}, {})
    with pytest.raises(CheckpointError, match=r"^resume: format is 'x'"):
        _vqe_checkpoint.check({**stamped, "format": "x"}, {})
    with pytest.raises(CheckpointError, match=r"^resume: version 2 is not 1"):
        _vqe_checkpoint.check({**stamped, "version": 2}, {})
    with pytest.raises(TypeError, match=r"\(result.checkpoint\) \(load a saved one with torch.load"):
        _vqe_checkpoint.check("run.pt", {})
    with pytest.raises(TypeError, match=r"\(result.checkpoint\), got list$"):
        _vqe_checkpoint.check([], {})


# -------------------------------------------------------------------------------------------------------- vqe


def test_vqe_documented_defaults():
    params = inspect.signature(nq.vqe).parameters
    defaults = {name: p.default for name, p in params.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {
        "optimizer": None, "gradient": "spsa", "shots": 1000, "maxiter": 300, "seed": 0, "initial_point": None,
        "noise": "shots", "backend": "auto", "device": "CPU", "perturbation": None, "perturbation_decay": None,
        "stability": None, "target_step": 2 * math.pi / 10, "resamplings": None, "calibration_samples": 25,
        "blocking": False, "average_last": None, "step": None, "final_shots": None, "track_exact": True,
        "point_streams": False, "executor": "serial", "workers": None, "stopping": None, "stop_at": None,
        "resume": None,
    }  # fmt: skip
    assert vqe_module.GRADIENTS == ("spsa", "parameter-shift", "finite-difference")
    assert vqe_module.SHORTHAND_SETTINGS == {
        "spsa": ("perturbation", "perturbation_decay", "resamplings"),
        "parameter-shift": (),
        "finite-difference": ("step",),
    }
    assert vqe_module.STOPPING_STREAM == 0x5707  # the stopping rule's stream: default_rng([seed, 0x5707])
    result = nq.VQEResult(1.0, 0.9, 0.1, 10, np.zeros(2), 3, 30, 1, None)
    assert (result.calibration, result.history, result.checkpoint, result.stopping) == ({}, [], {}, [])
    assert (result.wall_time, result.rejected, result.stopped, result.error) == (0.0, 0, False, None)
    assert "history" not in repr(result)
    assert "checkpoint" not in repr(result)
    assert "stopping" not in repr(result)
    assert nq.VQEResult(1.0, 0.9, 0.1, 10, np.zeros(2), 3, 30, 1, -0.25).error == 1.25


def _h2():
    from qiskit.circuit.library import efficient_su2

    return nq.h2(), efficient_su2(2, reps=1)


def test_vqe_keeps_the_initial_point_and_draws_the_default_one_from_the_seed():
    """With a learning rate of 1e-300 the step is below rounding, so the returned point is ``x0`` itself."""
    hamiltonian, ansatz = _h2()
    run = functools.partial(
        nq.vqe, hamiltonian, ansatz, gradient="parameter-shift", optimizer=ng.SGD(1e-300), shots=10, maxiter=1
    )
    x0 = np.linspace(-1.0, 1.0, 8)
    np.testing.assert_array_equal(run(initial_point=x0).parameters, x0)
    generator = torch.Generator().manual_seed(3)
    expected = ((torch.rand(8, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi).numpy()
    np.testing.assert_array_equal(run(seed=3).parameters, expected)
    generator = torch.Generator().manual_seed(0)
    expected = ((torch.rand(8, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi).numpy()
    np.testing.assert_array_equal(run().parameters, expected)  # seed=0 by default
    with pytest.raises(ValueError, match=r"initial_point must be a 1-D array of 8 parameters, got shape \(1, 8\)"):
        run(initial_point=[x0])


def test_vqe_accounting_history_and_result_of_a_parameter_shift_run():
    """H2 (2 measurement groups), parameter shift: 16 evaluations per step, ``final_shots = 10 * shots``."""
    hamiltonian, ansatz = _h2()
    x0 = np.linspace(-1.0, 1.0, 8)
    start = time.perf_counter()
    result = nq.vqe(
        hamiltonian, ansatz, gradient="parameter-shift", optimizer=ng.SGD(0.05), shots=20, maxiter=2, initial_point=x0
    )
    elapsed = time.perf_counter() - start
    assert 0 < result.wall_time <= elapsed
    assert result.final_shots == 200
    assert result.iterations == 2
    assert result.evaluations == 2 * 16 + 1
    assert result.shots == 2 * 16 * 20 * 2 + 200 * 2
    assert [set(h) for h in result.history] == [
        {"step", "estimate", "grad_norm", "accepted", "evaluations", "shots", "group_shots", "exact"}
    ] * 2
    assert [(h["step"], h["evaluations"], h["shots"], h["group_shots"], h["accepted"]) for h in result.history] == [
        (1, 16, 16 * 20 * 2, 20, True),
        (2, 32, 32 * 20 * 2, 20, True),
    ]
    objective = nq.EnergyObjective(hamiltonian, ansatz, shots=20)
    assert result.energy == float(objective.exact(result.parameters)[0])
    assert result.history[-1]["exact"] == result.energy  # average_last=1 off SPSA: the last iterate
    assert result.reference_energy == nq.exact_ground_energy(objective.plan.observable)
    assert result.error == result.energy - result.reference_energy
    assert result.calibration == {}
    assert result.rejected == 0
    assert not result.stopped
    assert result.stopping == []
    assert result.checkpoint["counters"] == {"evaluations": 32, "shots": 32 * 20 * 2}
    assert result.checkpoint["schedule"] is None
    assert result.checkpoint["settings"] == {
        "num_qubits": 2,
        "num_parameters": 8,
        "hamiltonian": _vqe_checkpoint.hamiltonian_fingerprint(
            objective.plan.observable.paulis.to_labels(), objective.plan.observable.coeffs.real.tolist()
        ),
        "shots": 20,
        "maxiter": 2,
        "average_last": 1,
        "blocking": False,
        "stopping": None,
        "estimator": "ParameterShift",
        "optimizer": "SGD",
    }
    one = nq.vqe(
        hamiltonian, ansatz, gradient="parameter-shift", optimizer=ng.SGD(0.05), shots=20, maxiter=1, initial_point=x0
    )
    step = (x0 - one.parameters) / 0.05  # the first gradient estimate, recovered from the SGD step
    assert one.history[0]["grad_norm"] == pytest.approx(float(np.linalg.norm(step)), rel=1e-9)
    quiet = nq.vqe(
        hamiltonian, ansatz, gradient="parameter-shift", optimizer=ng.SGD(0.05), shots=20, maxiter=1,
        initial_point=x0, track_exact=False, final_shots=30,
    )  # fmt: skip
    assert "exact" not in quiet.history[0]
    assert quiet.final_shots == 30
    assert quiet.shots == 16 * 20 * 2 + 30 * 2


def test_vqe_default_optimizer_and_averaging_by_gradient():
    hamiltonian, ansatz = _h2()
    x0 = np.linspace(-1.0, 1.0, 8)
    kw = {"shots": 20, "maxiter": 3, "initial_point": x0, "track_exact": False}
    default = nq.vqe(hamiltonian, ansatz, gradient="parameter-shift", **kw)
    adam = nq.vqe(hamiltonian, ansatz, gradient="parameter-shift", optimizer=ng.Adam(lr=0.1), **kw)
    np.testing.assert_array_equal(default.parameters, adam.parameters)  # Adam(lr=0.1) without an optimizer
    assert default.checkpoint["settings"]["optimizer"] is None
    assert adam.checkpoint["settings"]["optimizer"] == "Adam"
    for maxiter, window in ((3, 1), (8, 2), (11, 2)):  # SPSA: a quarter of maxiter, at least 1
        spsa = nq.vqe(hamiltonian, ansatz, shots=10, maxiter=maxiter, calibration_samples=1, track_exact=False)
        assert spsa.checkpoint["settings"]["average_last"] == window
        assert spsa.checkpoint["settings"]["estimator"] == "SPSA"
        assert set(spsa.checkpoint["schedule"]) == {"a", "b", "alpha"}
        assert spsa.checkpoint["schedule"]["a"] == spsa.calibration["a"]
    finite = nq.vqe(hamiltonian, ansatz, gradient="finite-difference", optimizer=ng.SGD(0.1), **kw)
    assert finite.checkpoint["settings"]["average_last"] == 1
    assert finite.evaluations == 3 * 16 + 1


def test_vqe_estimator_factory_settings_and_refusals():
    factory = vqe_module._estimator_factory
    none = {"perturbation": None, "perturbation_decay": None, "resamplings": None, "step": None}
    assert factory("parameter-shift", **none) is nq.ParameterShift
    fd = factory("finite-difference", **none)
    assert (fd.func, fd.keywords) == (nq.finite_difference, {"step": 0.1})
    assert factory("finite-difference", **{**none, "step": 0.25}).keywords == {"step": 0.25}
    with pytest.raises(ValueError, match="step"):
        factory("finite-difference", **{**none, "step": 0.0})
    assert factory(nq.ParameterShift, **none) is nq.ParameterShift
    for name in ("perturbation", "perturbation_decay", "resamplings"):
        with pytest.raises(ValueError, match=rf"^{name} is a setting of gradient='spsa', not of gradient='finite"):
            factory("finite-difference", **{**none, name: 1})
        with pytest.raises(ValueError, match=rf"^{name} is a setting of a gradient shorthand"):
            factory(nq.ParameterShift, **{**none, name: 1})
    with pytest.raises(ValueError, match=r"^step is a setting of gradient='finite-difference', not of gradient='spsa'"):
        factory("spsa", **{**none, "step": 0.1})
    with pytest.raises(TypeError, match=r"got 3$"):
        factory(3, **none)
    with pytest.raises(ValueError, match="gradient must be one of"):
        factory("SPSA", **none)


def test_vqe_stopping_settings():
    settings = vqe_module._stopping_settings
    assert settings(None) is None
    assert settings(False) is None
    assert settings(True) == {}
    given = {"window": 2, "every": 5, "shots": 100, "z": 2.0}
    assert settings(given) == given
    assert settings(given) is not given
    with pytest.raises(TypeError, match="got int"):
        settings(1)
    with pytest.raises(ValueError, match=r"unknown settings \['patience'\]"):
        settings({"window": 2, "patience": 3})


def test_vqe_shot_measure_counts_its_own_or_the_objectives_shots():
    hamiltonian, ansatz = _h2()
    objective = nq.EnergyObjective(hamiltonian, ansatz, shots=20)
    points = torch.zeros(3, 8, dtype=torch.float64)
    measured = vqe_module._shot_measure(objective)(points, torch.Generator().manual_seed(0))
    assert (measured.cost.evaluations, measured.cost.shots) == (3, 3 * 20 * 2)
    twin = nq.EnergyObjective(hamiltonian, ansatz, shots=20)
    expected = twin.sample(points, numpy_from_torch(torch.Generator().manual_seed(0)))
    np.testing.assert_array_equal(measured.values.numpy(), expected)
    np.testing.assert_array_equal(measured.stderr.numpy(), twin.last_stds)
    measured = vqe_module._shot_measure(objective, 50)(points[:1], torch.Generator().manual_seed(0))
    assert (measured.cost.evaluations, measured.cost.shots) == (1, 50 * 2)
    assert objective.shots_used == 3 * 20 * 2 + 50 * 2


def test_vqe_stop_at_maxiter_is_allowed_and_resume_needs_one_more_step():
    hamiltonian, ansatz = _h2()
    kw = {"gradient": "parameter-shift", "optimizer": ng.SGD(0.05), "shots": 10, "maxiter": 3, "track_exact": False}
    assert nq.vqe(hamiltonian, ansatz, stop_at=3, **kw).iterations == 3
    part = nq.vqe(hamiltonian, ansatz, stop_at=2, **kw)
    rest = nq.vqe(hamiltonian, ansatz, stop_at=3, resume=part.checkpoint, **kw)
    full = nq.vqe(hamiltonian, ansatz, **kw)
    np.testing.assert_array_equal(rest.parameters, full.parameters)
    assert (rest.evaluations, rest.shots, rest.history) == (full.evaluations, full.shots, full.history)
    with pytest.raises(ValueError, match="already run 2"):
        nq.vqe(hamiltonian, ansatz, stop_at=2, resume=part.checkpoint, **kw)


def test_vqe_hands_its_objective_settings_to_the_objective():
    """Each of ``noise``, ``backend``, ``device``, ``point_streams``, ``executor`` and ``workers`` reaches the
    objective: a bad value is refused there, by name, and ``noise="exact"`` measures exact energies."""
    hamiltonian, ansatz = _h2()
    for kwargs, error, match in (
        ({"noise": "none"}, ValueError, "noise"),
        ({"backend": "qpu"}, ValueError, "backend must be one of"),
        ({"device": "TPU"}, ValueError, "device must be one of"),
        ({"point_streams": 1}, TypeError, "point_streams must be True or False"),
        ({"executor": "threads"}, ValueError, "executor"),
        ({"workers": 2}, ValueError, r"workers=2 shard the points"),
    ):
        with pytest.raises(error, match=match):
            nq.vqe(hamiltonian, ansatz, maxiter=1, **kwargs)
    kw = {"gradient": "parameter-shift", "optimizer": ng.SGD(0.05), "maxiter": 1, "shots": 10, "seed": 1}
    exact = nq.vqe(hamiltonian, ansatz, noise="exact", **kw)
    assert exact.energy_estimate == pytest.approx(exact.energy, abs=1e-12)
    assert exact.energy_std == 0.0
    streams = nq.vqe(hamiltonian, ansatz, point_streams=True, **kw)
    single = nq.vqe(hamiltonian, ansatz, **kw)
    assert streams.energy_estimate != single.energy_estimate  # one stream per point draws other shots


def test_vqe_with_adaptive_shots_records_the_snr_and_calibrates_an_inner_spsa():
    hamiltonian, ansatz = _h2()
    inner = functools.partial(ng.SPSA, c=0.2)
    gradient = functools.partial(nq.AdaptiveShots, inner=inner, min_shots=10)
    result = nq.vqe(hamiltonian, ansatz, gradient=gradient, shots=10, maxiter=8, calibration_samples=1, seed=2)
    assert result.calibration["evaluations"] == 2.0  # the inner SPSA gets Spall's calibrated gains
    assert result.checkpoint["settings"]["average_last"] == 2  # and averages a quarter of maxiter
    assert result.checkpoint["settings"]["estimator"] == "AdaptiveShots"
    assert all(isinstance(h["snr"], float) for h in result.history)
    shift = functools.partial(nq.AdaptiveShots, min_shots=10)
    plain = nq.vqe(hamiltonian, ansatz, gradient=shift, shots=10, maxiter=2, seed=2, track_exact=False)
    assert plain.calibration == {}
    assert plain.checkpoint["settings"]["average_last"] == 1
    assert "snr" in plain.history[0]
    assert "snr" not in nq.vqe(hamiltonian, ansatz, shots=10, maxiter=1, calibration_samples=1).history[0]


def test_vqe_reference_energy_up_to_twelve_qubits_only():
    kw = {"optimizer": ng.SGD(0.01), "shots": 10, "maxiter": 1, "track_exact": False, "final_shots": 10}
    twelve = nq.vqe(nq.tfim(12), nq.tfim_ansatz(12, 1), **kw)
    # Lanczos (scipy's eigsh) starts from a random vector: equal to its convergence tolerance, not bit for bit
    assert twelve.reference_energy == pytest.approx(nq.exact_ground_energy(nq.tfim(12)), rel=1e-9)
    thirteen = nq.vqe(nq.tfim(13), nq.tfim_ansatz(13, 1), **kw)
    assert thirteen.reference_energy is None
    assert thirteen.error is None


@pytest.mark.parametrize(
    ("learning_rate", "perturbation", "calibrated"),
    [(None, None, True), (0.1, 0.1, False)],  # one gain without the other is refused
)
def test_a_checkpoint_records_whether_the_gains_were_calibrated(learning_rate, perturbation, calibrated):
    """Spall's calibration runs when both gains are left to it; a checkpoint says so and continues only in an
    optimizer that agrees (a calibrated run resumed with given gains, or the other way round, is refused)."""
    gains = {"learning_rate": learning_rate, "perturbation": perturbation}
    checkpoint = nq.SPSA(maxiter=2, seed=0, **gains).minimize(_quadratic, np.array([0.3, -0.2])).checkpoint
    assert _settings(checkpoint)["calibrated"] is calibrated
    other = {"learning_rate": 0.1, "perturbation": 0.1} if calibrated else {}
    with pytest.raises(CheckpointError, match=r"settings\['calibrated'\] is"):
        nq.SPSA(maxiter=4, seed=0, **other).minimize(_quadratic, resume=checkpoint)
    nq.SPSA(maxiter=4, seed=0, **gains).minimize(_quadratic, resume=checkpoint)  # the same gains continue it


def test_an_integer_start_runs_as_the_same_floats():
    """``x0`` given as integers is read as float64, with or without fractional (or open) bounds: the run is the
    one from the same floats, bit for bit (integer bounds would be truncated, or refuse an open end)."""
    given = {"maxiter": 3, "seed": 0, "learning_rate": 0.1, "perturbation": 0.1}
    for bounds in (None, [(-0.5, 0.5), (0.5, None)]):
        from_ints = nq.SPSA(**given).minimize(_quadratic, [0, 1], bounds=bounds)
        from_floats = nq.SPSA(**given).minimize(_quadratic, np.array([0.0, 1.0]), bounds=bounds)
        assert from_ints.x.dtype == np.float64
        np.testing.assert_array_equal(from_ints.x, from_floats.x)
        assert from_ints.fun == from_floats.fun
    assert from_ints.x[0] == 0.5  # the quadratic pulls x[0] to its bound


def test_gain_sequences_of_any_real_type_run_in_float64():
    """Gains given as a list of Decimals, or as a callable yielding numpy long doubles, run the same float64 steps
    as the float gains (each gain is read as a float), and a checkpoint's iterates stay float64 tensors."""
    from decimal import Decimal

    given = {"maxiter": 3, "seed": 0, "perturbation": 0.1}
    floats = nq.SPSA(learning_rate=[0.1] * 3, **given).minimize(_quadratic, np.array([0.3, -0.2]))
    decimals = nq.SPSA(learning_rate=[Decimal("0.1")] * 3, **given).minimize(_quadratic, np.array([0.3, -0.2]))
    np.testing.assert_array_equal(decimals.x, floats.x)
    assert decimals.x.dtype == np.float64

    def long_gains():
        while True:
            yield np.longdouble(0.1)

    long = nq.SPSA(learning_rate=long_gains, **given).minimize(_quadratic, np.array([0.3, -0.2]))
    np.testing.assert_array_equal(long.x, floats.x)
    assert long.x.dtype == np.float64
    assert all(row.dtype == torch.float64 for row in long.checkpoint["tail"])


def test_a_run_that_diverges_after_a_resume_returns_the_best_iterate_from_before_it():
    """The checkpoint carries the best iterate: a resumed run that then diverges returns it, as the uninterrupted
    run does (here the start, the only point whose value estimate was not on the way up)."""

    def quartic(x: np.ndarray) -> float:
        return float(np.sum(np.asarray(x) ** 4))

    gains = {"seed": 0, "learning_rate": 1.0, "perturbation": 0.1}  # a gain far too large for x^4
    start = np.array([1.0, -0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the runaway iterates overflow on their way out
        whole = nq.SPSA(maxiter=10, **gains).minimize(quartic, start)
        part = nq.SPSA(maxiter=1, **gains).minimize(quartic, start)
        rest = nq.SPSA(maxiter=10, **gains).minimize(quartic, resume=part.checkpoint)
    assert not whole.success
    assert not rest.success
    np.testing.assert_array_equal(whole.x, start)
    np.testing.assert_array_equal(rest.x, whole.x)


def test_a_fresh_spsa_result_counts_nothing():
    fresh = nq.SPSAResult()
    assert (fresh.nfev_total, fresh.rejected, fresh.success, fresh.message, fresh.fun_stderr) == (0, 0, True, "", None)
    assert fresh.learning_rate.shape == fresh.perturbation.shape == (0,)  # no iteration, no gains
    assert fresh.checkpoint == {}


@pytest.mark.parametrize("grouped", [None, 0])
def test_estimate_stddev_without_a_group_size_evaluates_one_point_at_a_time(grouped):
    """``max_evals_grouped`` of None or 0 means no grouping: ``loss`` gets each of the ``avg`` points alone, as a
    1-D array, and the result is the standard deviation (ddof 0, as qiskit-algorithms' own) of the values it
    returned."""
    points, values = [], [1.0, 2.0, 4.0, 7.0]

    def loss(x):
        points.append(np.shape(x))
        return values[len(points) - 1]

    std = nq.SPSA.estimate_stddev(loss, np.ones(3), avg=4, max_evals_grouped=grouped)
    assert points == [(3,)] * 4
    assert std == pytest.approx(np.std(values), rel=1e-15)
