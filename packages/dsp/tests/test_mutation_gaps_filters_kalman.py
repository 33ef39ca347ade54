"""LMS, NLMS, RLS (filters.py) and the Kalman filter (kalman.py): behaviours a full mutation run found unchecked.

tools/mutation.py (issue 18) ran every mutant of both modules; each test here states one behaviour that a
surviving mutant changed: the filter's name in its divergence error, the dtype of a given ``P0``, documented
defaults, ... Exact comparisons throughout (fixed inputs, tolerances at rounding level; no statistics).
"""

from __future__ import annotations

import numpy as np
import pytest
from kalman_models import model

from noisygrad.dsp import LMS, NLMS, RLS, Kalman, StabilityWarning
from noisygrad.dsp import _kalman_kernels as kern

# ---------------------------------------------------------------- filters.py


@pytest.mark.parametrize(
    ("make", "x", "d", "match"),
    [
        # float32 overflow of the desired signal: the first step's weights are ~1e38, the next error Inf
        (lambda: NLMS(2, 1.9, dtype=np.float32), np.ones(10), np.full(10, 3e38), r"^NLMS weights became NaN"),
        # an input that never excites the filter: P grows like lam^-n until it overflows (0 * Inf: NaN weights)
        (lambda: RLS(2, 0.01), np.zeros(400), np.zeros(400), r"^RLS weights became NaN"),
    ],
)
def test_a_divergence_error_names_the_filter_and_the_state_that_overflowed(make, x, d, match):
    with pytest.raises(FloatingPointError, match=match):
        make().run(x, d=d)


def test_an_lms_divergence_error_names_lms():
    # one tap, unit input, mu = 3: w <- 3 - 2 w doubles |w| each sample and overflows float64 within ~1030
    with pytest.warns(StabilityWarning), pytest.raises(FloatingPointError, match=r"^LMS weights became NaN"):
        LMS(1, 3.0).run(np.ones(1100), d=np.ones(1100))


def test_nlms_keeps_no_history_by_default():
    f = NLMS(3)
    assert f.record_history is False
    f.run(np.ones(5), d=np.ones(5))
    assert f.history is None


def test_rls_holds_a_given_p0_in_its_own_dtype():
    p0 = np.array([[2.0, 0.5], [0.5, 1.0]])
    f = RLS(2, 0.9, P0=p0, dtype=np.float32)
    assert f.P.dtype == np.float32  # before any run: the stored P0 itself
    np.testing.assert_array_equal(f.P, p0.astype(np.float32))
    f.run(np.ones(3, np.float32), d=np.ones(3, np.float32))
    assert f.P.dtype == np.float32


def test_rls_default_p0_is_in_the_filter_dtype_before_any_run():
    f = RLS(3, dtype=np.float32)
    assert f.P.dtype == np.float32
    np.testing.assert_array_equal(f.P, np.eye(3, dtype=np.float32) / np.float32(1e-2))


def test_a_per_channel_p0_must_be_symmetric_in_each_channel():
    p0 = np.stack([np.eye(2), np.array([[1.0, 0.2], [0.0, 1.0]])])
    with pytest.raises(ValueError, match="P0 must be symmetric"):
        RLS(2, 0.9, P0=p0)


# ---------------------------------------------------------------- kalman.py


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_steady_state_steps_with_a_control_input_and_a_missing_component_are_their_closed_forms(dtype):
    """``predict_steadystate(u)``: ``x <- F x + B u`` only; ``update_steadystate(z)``: ``x <- x + K y`` with the
    latest full update's gain, ``y = z - H x`` and 0 where ``z`` is NaN; ``P`` stays, in the filter's dtype."""
    rng, F, H, Q, R, B, x0, P0 = model(7)
    kf = Kalman(F, H, Q, R, x0, P0, B=B, dtype=dtype)
    kf.predict(u=[0.3])
    kf.update(rng.standard_normal(2))
    K, SI, P = kf.K.astype(np.float64), kf.SI.astype(np.float64), kf.P
    x = kf.x.astype(np.float64)
    kf.predict_steadystate(np.array([2.0]))
    expected = F @ x + B[:, 0] * 2.0
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(kf.x, expected, rtol=tol, atol=tol)
    np.testing.assert_array_equal(kf.x_prior, kf.x)
    assert kf.x.dtype == dtype
    z = np.array([0.7, np.nan])
    x_before = kf.x.astype(np.float64)
    kf.update_steadystate(z)
    y = np.array([0.7 - H[0] @ x_before, 0.0])
    np.testing.assert_allclose(kf.y, y, rtol=tol, atol=tol)
    np.testing.assert_allclose(kf.x, x_before + K @ y, rtol=tol, atol=tol)
    np.testing.assert_array_equal(kf.x_post, kf.x)
    assert kf.mahalanobis == pytest.approx(float(np.sqrt(y @ SI @ y)), rel=tol)
    assert kf.x.dtype == kf.y.dtype == dtype
    np.testing.assert_array_equal(kf.P, P)


def test_a_zero_per_step_q_takes_the_noiseless_square_root_path_of_a_zero_q():
    """``Qs`` all zero is a noiseless model, as a filter built with ``Q = 0``: the square-root predict then keeps
    the factor ``sqrt(inflation) F L`` (no triangularisation), so both give the same bits, factor included."""
    rng, F, H, _, R, _, x0, P0 = model(8)
    zs = rng.standard_normal((6, 2))
    built = Kalman(F, H, np.zeros((3, 3)), R, x0, P0, form="sqrt", inflation=1.2)
    per_step = Kalman(F, H, 0.1 * np.eye(3), R, x0, P0, form="sqrt", inflation=1.2)
    a = built.batch_filter(zs)
    b = per_step.batch_filter(zs, Qs=np.zeros((3, 3)))
    np.testing.assert_array_equal(b.covariances, a.covariances)
    np.testing.assert_array_equal(b.means, a.means)
    np.testing.assert_array_equal(per_step.factor, built.factor)
    assert not np.allclose(np.triu(built.factor, 1), 0)  # F L is not triangular: a triangularised factor differs


@pytest.mark.parametrize("x0", [[1.0, -1.0], [0.0, 0.0]])  # mean and covariance overflow, or the covariance alone
def test_a_batch_filter_that_overflows_raises_and_leaves_the_filter_where_it_was(x0):
    """``F = 1e200 I`` overflows the state within two steps while every ``S = R`` stays positive definite (``H = 0``):
    the sequence is refused as a whole and the state goes back to the one before it."""
    kf = Kalman(1e200 * np.eye(2), np.zeros((1, 2)), np.zeros((2, 2)), 1.0, x0, np.eye(2))
    with pytest.raises(FloatingPointError, match=r"^Kalman state became NaN or Inf"):
        kf.batch_filter(np.zeros(3))
    np.testing.assert_array_equal(kf.x, x0)
    np.testing.assert_array_equal(kf.P, np.eye(2))
    assert kf.log_likelihood == 0.0


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_at_the_blas_threshold_batch_filter_and_the_step_loop_give_the_same_bits(form):
    """At ``n = BLAS_MIN`` states both paths switch to the BLAS products together, so a whole-sequence run and
    a user's own predict/update loop stay equal bit for bit (a path switched on one side only changes the
    rounding)."""
    n = kern.BLAS_MIN
    rng = np.random.default_rng(9)
    F = np.eye(n) + 0.1 * rng.standard_normal((n, n))
    H = rng.standard_normal((3, n))
    A = rng.standard_normal((n, n))
    Q = 0.01 * A @ A.T + 0.01 * np.eye(n)
    R = np.diag([0.5, 0.3, 0.2])
    x0, P0 = rng.standard_normal(n), np.eye(n)
    zs = rng.standard_normal((4, 3))
    whole, steps = Kalman(F, H, Q, R, x0, P0, form=form), Kalman(F, H, Q, R, x0, P0, form=form)
    res = whole.batch_filter(zs)
    for t, z in enumerate(zs):
        steps.predict()
        np.testing.assert_array_equal(steps.P, res.prior_covariances[t])
        steps.update(z)
        np.testing.assert_array_equal(steps.x, res.means[t])
        np.testing.assert_array_equal(steps.P, res.covariances[t])


def test_a_per_call_r_must_be_positive_definite_like_the_filter_s_own():
    rng, F, H, Q, R, _, x0, P0 = model(10)
    kf = Kalman(F, H, Q, R, x0, P0)
    kf.predict()
    with pytest.raises(ValueError, match="R"):
        kf.update(rng.standard_normal(2), R=np.diag([1.0, 0.0]))  # semi-definite: S could be singular
    np.testing.assert_array_equal(kf.x, kf.x_prior)  # refused before any work


def test_per_step_fs_replace_the_identity_of_a_random_walk_filter():
    """A filter built with ``F = None`` (the identity's fast path) follows the ``Fs`` given to ``batch_filter``."""
    rng, F, H, Q, R, _, x0, P0 = model(11)
    zs = rng.standard_normal((5, 2))
    walk = Kalman(None, H, Q, R, x0, P0).batch_filter(zs, Fs=F)
    built = Kalman(F, H, Q, R, x0, P0).batch_filter(zs)
    np.testing.assert_array_equal(walk.means, built.means)
    np.testing.assert_array_equal(walk.covariances, built.covariances)
