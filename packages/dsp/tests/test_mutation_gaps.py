"""LMS, NLMS and RLS: the behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

Documented defaults, the closed forms of one NLMS step and of the RLS solution, every batched shape the
filters document (per-channel ``w0`` and ``P0``, ``(B, N)`` signals), copies of the caller's inputs, the
LMS warning threshold at its exact value, and finite histories past the kernels' block sizes. Exact
comparisons throughout (fixed seeds, tolerances at rounding level).
"""

from __future__ import annotations

import numpy as np
import pytest

from noisygrad.dsp import LMS, NLMS, RLS, StabilityWarning, tapped_delay_line


def _signals(n: int, channels: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (n,) if channels is None else (channels, n)
    return rng.standard_normal(shape), rng.standard_normal(shape)


def test_tapped_delay_line_dtypes_and_shapes():
    assert tapped_delay_line(np.ones(5, np.float32), 3).dtype == np.float32
    u = tapped_delay_line(np.arange(4), 2)
    assert u.dtype == np.float64
    np.testing.assert_array_equal(u, [[0, 0], [1, 0], [2, 1], [3, 2]])
    np.testing.assert_array_equal(tapped_delay_line([1.0, 2.0], 1), [[1.0], [2.0]])
    batched = tapped_delay_line(np.arange(6.0).reshape(2, 3), 2)
    np.testing.assert_array_equal(batched[1], [[3, 0], [4, 3], [5, 4]])


def test_nlms_one_step_is_its_closed_form_with_eps():
    f = NLMS(3, 0.8, eps=0.5)
    assert f.eps == 0.5
    assert f.mu == 0.8
    y, e = f.run([2.0, 0.0], d=[3.0, 0.0])
    # sample 0: u = [2, 0, 0], y = 0, e = 3, w = mu e u / (eps + |u|^2)
    np.testing.assert_allclose(f.weights, [0.8 * 3.0 * 2.0 / 4.5, 0.0, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(y[:1], [0.0])
    np.testing.assert_array_equal(e[:1], [3.0])
    assert NLMS(3).mu == 0.5
    assert NLMS(3).eps == 1e-6


def test_nlms_keeps_w0_dtype_and_history():
    w0 = np.array([1.0, -2.0, 0.5])
    f = NLMS(3, 0.5, w0=w0, dtype=np.float32, history=True)
    w0[0] = 100.0  # the filter holds its own copy
    np.testing.assert_array_equal(f.weights, [1.0, -2.0, 0.5])
    assert f.weights.dtype == np.float32
    y, e = f.run(np.array([1.0, 0.0, 0.0]), d=np.zeros(3))
    assert y.dtype == np.float32
    assert e.dtype == np.float32
    assert f.history.dtype == np.float32
    assert y[0] == 1.0  # the a-priori output uses w0
    np.testing.assert_array_equal(f.history[0], [1.0, -2.0, 0.5])


@pytest.mark.parametrize("mu", [0.0, 2.0, -0.5])
def test_nlms_step_outside_its_stability_range_is_refused(mu):
    with pytest.raises(ValueError, match="mu"):
        NLMS(4, mu)


def test_nlms_never_warns_at_a_step_lms_would_warn_at():
    x, d = _signals(2000)
    NLMS(16, 1.5).run(x, d=d)  # warnings are errors in this suite


def test_lms_warning_threshold_is_exactly_two_over_taps_plus_two_times_power():
    x = np.ones(200)  # power 1 per sample: the bound is 2 / (taps + 2) = 1/3 for 4 taps
    with pytest.warns(StabilityWarning):
        LMS(4, 1.0 / 3.0).run(x, d=np.zeros(200))
    LMS(4, 0.333).run(x, d=np.zeros(200))  # just inside: no warning
    x2 = 2.0 * np.ones(200)  # power 4: bound 1/12
    with pytest.warns(StabilityWarning):
        LMS(4, 1.0 / 12.0).run(x2, d=np.zeros(200))
    LMS(4, 0.083).run(x2, d=np.zeros(200))
    x3 = 0.5 * np.ones(200)  # power 1/4 (a trace below 1 for 2 taps): bound 2 / (4 * 0.25) = 2
    with pytest.warns(StabilityWarning):
        LMS(2, 2.0).run(x3, d=np.zeros(200))
    LMS(2, 1.99).run(x3, d=np.zeros(200))


def test_lms_on_an_all_zero_input_neither_warns_nor_divides_by_zero():
    f = LMS(4, 0.5)
    _y, e = f.run(np.zeros(30), d=np.ones(30))
    np.testing.assert_array_equal(f.weights, 0.0)
    np.testing.assert_array_equal(e, 1.0)
    f.run_regressors(np.zeros((10, 4)), d=np.ones(10))


def test_stability_warning_is_a_user_warning():
    assert issubclass(StabilityWarning, UserWarning)


def test_rls_weights_are_the_exponentially_weighted_least_squares_solution():
    taps, lam, delta, n = 3, 0.9, 0.5, 40
    x, d = _signals(n, seed=3)
    f = RLS(taps, lam, delta=delta)
    f.run(x, d=d)
    u = tapped_delay_line(x, taps)
    weights = lam ** (n - 1 - np.arange(n))
    A = lam**n * delta * np.eye(taps) + (u.T * weights) @ u
    np.testing.assert_allclose(f.weights, np.linalg.solve(A, (u.T * weights) @ d), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(f.P, np.linalg.inv(A), rtol=1e-7, atol=1e-10)


def test_rls_defaults():
    f = RLS(2)
    assert f.lam == 0.99
    assert f.delta == 1e-2
    np.testing.assert_array_equal(f.P, 100.0 * np.eye(2))
    assert RLS(2, 1.0).lam == 1.0
    with pytest.raises(ValueError, match="lam"):
        RLS(2, 0.0)


def test_rls_keeps_a_copy_of_p0_and_returns_copies():
    p0 = np.array([[2.0, 0.5], [0.5, 1.0]])
    f = RLS(2, 0.9, P0=p0)
    p0[0, 0] = 50.0
    np.testing.assert_array_equal(f.P, [[2.0, 0.5], [0.5, 1.0]])
    f.P[0, 0] = 7.0
    np.testing.assert_array_equal(f.P, [[2.0, 0.5], [0.5, 1.0]])
    x, d = _signals(20, seed=1)
    f.run(x, d=d)
    after = f.P
    after[:] = 0.0
    assert not np.array_equal(f.P, after)
    np.testing.assert_array_equal(p0, [[50.0, 0.5], [0.5, 1.0]])  # the caller's array is left as it was
    f.reset()
    np.testing.assert_array_equal(f.P, [[2.0, 0.5], [0.5, 1.0]])


@pytest.mark.parametrize(
    "P0",
    [
        np.eye(3),  # wrong size
        np.array([[1.0, 0.5], [0.4, 1.0]]),  # not symmetric
        np.array([[1.0, 2.0], [2.0, 1.0]]),  # not positive definite
        np.zeros((2, 2)),
    ],
)
def test_rls_refuses_a_bad_p0(P0):
    with pytest.raises(ValueError, match="P0"):
        RLS(2, 0.9, P0=P0)


def test_per_channel_w0_and_p0_give_each_channel_its_own_filter():
    x, d = _signals(300, channels=2, seed=5)
    w0 = np.array([[0.5, -0.5, 1.0], [0.0, 2.0, 0.0]])
    p0 = np.stack([np.eye(3) * 3.0, np.array([[2.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 0.5]])])
    for batch, single in (
        (RLS(3, 0.95, P0=p0, w0=w0), lambda c: RLS(3, 0.95, P0=p0[c], w0=w0[c])),
        (LMS(3, 0.05, w0=w0), lambda c: LMS(3, 0.05, w0=w0[c])),
        (NLMS(3, 0.4, w0=w0), lambda c: NLMS(3, 0.4, w0=w0[c])),
    ):
        np.testing.assert_array_equal(batch.weights, w0)
        y, e = batch.run(x, d=d)
        assert y.shape == e.shape == (2, 300)
        assert batch.weights.shape == (2, 3)
        for c in range(2):
            one = single(c)
            y1, e1 = one.run(x[c], d=d[c])
            np.testing.assert_array_equal(y1, y[c])
            np.testing.assert_array_equal(e1, e[c])
            np.testing.assert_array_equal(one.weights, batch.weights[c])
    assert batch.P.shape == (2, 3, 3) if isinstance(batch, RLS) else True


def test_batched_regressors_and_a_shared_p0():
    rng = np.random.default_rng(2)
    u, d = rng.standard_normal((2, 50, 3)), rng.standard_normal((2, 50))
    p0 = np.eye(3) * 4.0
    batch = RLS(3, 0.97, P0=p0)
    y, _ = batch.run_regressors(u, d=d)
    assert batch.P.shape == (2, 3, 3)
    for c in range(2):
        one = RLS(3, 0.97, P0=p0)
        np.testing.assert_array_equal(one.run_regressors(u[c], d=d[c])[0], y[c])
        np.testing.assert_array_equal(one.P, batch.P[c])


def test_p0_with_other_channels_than_the_data_is_refused():
    f = RLS(2, 0.9, P0=np.stack([np.eye(2)] * 3))
    x, d = _signals(10, channels=2)
    with pytest.raises(ValueError, match="P0 has 3 channels"):
        f.run(x, d=d)


def test_rls_history_past_the_kernel_blocks_is_finite_and_is_the_weights_so_far():
    x, d = _signals(9000, seed=8)
    f = RLS(4, 0.995, history=True)
    f.run(x, d=d)
    assert f.history.shape == (9000, 4)
    assert np.isfinite(f.history).all()  # (NaN == NaN passes assert_array_equal: check finiteness itself)
    assert np.isfinite(f.P).all()
    assert np.isfinite(f.weights).all()
    for n in (4096, 5000, 8999):
        prefix = RLS(4, 0.995)
        prefix.run(x[:n], d=d[:n])
        np.testing.assert_allclose(f.history[n], prefix.weights, rtol=1e-12, atol=1e-12)
