"""Kalman filter and RTS smoother: behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

Exact comparisons throughout (fixed seeds, tolerances at rounding level; no statistics).
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from kalman_models import model

from noisygrad import LegacyCheckpointWarning
from noisygrad.dsp import RLS, Kalman
from noisygrad.dsp._state import SCHEMA_KEYS
from noisygrad.dsp.kalman import kalman_to_rls, rls_to_kalman
from noisygrad.dsp.kalman_smoother import rts_smoother


def _model(seed: int = 0):
    """The shared model without its control input: ``(rng, F, H, Q, R, x0, P0)``."""
    rng, F, H, Q, R, _, x0, P0 = model(seed)
    return rng, F, H, Q, R, x0, P0


# ---------------------------------------------------------------- smoother


def test_rts_smoother_default_inflation_is_one_and_a_fading_memory_is_recomputed_exactly():
    """Recomputed predictions use ``inflation F P F^T + Q``: with the filter's inflation they are the filter's own."""
    rng, F, H, Q, R, x0, P0 = _model(4)
    zs = rng.standard_normal((15, 2))
    plain = Kalman(F, H, Q, R, x0, P0)
    res = plain.batch_filter(zs)
    default = rts_smoother(res.means, res.covariances, F, Q=Q)
    exact = plain.smooth(res)
    for a, b in zip(default, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    fading = Kalman(F, H, Q, R, x0, P0, inflation=1.3)
    res = fading.batch_filter(zs)
    recomputed = rts_smoother(res.means, res.covariances, F, Q=Q, inflation=1.3)
    for a, b in zip(recomputed, fading.smooth(res), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert np.abs(recomputed.means - default.means).max() > 1e-6  # the inflation mattered
    for bad in (0.9, np.inf, np.nan):
        with pytest.raises(ValueError, match="inflation"):
            rts_smoother(res.means, res.covariances, F, Q=Q, inflation=bad)


def test_rts_smoother_keeps_float32_and_takes_integers_as_float64():
    rng, F, H, Q, R, x0, P0 = _model(5)
    kf = Kalman(F, H, Q, R, x0, P0, dtype=np.float32)
    res = kf.batch_filter(rng.standard_normal((10, 2)))
    sm = kf.smooth(res)
    assert all(a.dtype == np.float32 for a in sm)
    ints = rts_smoother(np.zeros((4, 3), int), np.tile(np.eye(3, dtype=int), (4, 1, 1)), np.eye(3), Q=np.eye(3))
    assert all(a.dtype == np.float64 for a in ints)


def test_smoothed_and_used_prior_covariances_are_exactly_symmetric_on_a_batch():
    """Priors given with a rounding-size asymmetry: the smoother uses (and returns) their symmetric part."""
    rng, F, H, Q, R, x0, P0 = _model(6)
    kf = Kalman(F, H, Q, R, np.tile(x0, (2, 1)), P0)
    res = kf.batch_filter(rng.standard_normal((8, 2, 2)))
    skew = 1e-9 * np.array([[0.0, 1.0, -2.0], [-1.0, 0.0, 0.5], [2.0, -0.5, 0.0]])
    priors = res.prior_covariances + skew
    sm = rts_smoother(res.means, res.covariances, F, prior_means=res.prior_means, prior_covariances=priors)
    np.testing.assert_array_equal(sm.covariances, np.swapaxes(sm.covariances, -1, -2))
    np.testing.assert_array_equal(sm.prior_covariances[:-1], np.swapaxes(sm.prior_covariances[:-1], -1, -2))
    np.testing.assert_allclose(sm.prior_covariances[:-1], res.prior_covariances[1:], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(sm.prior_covariances[-1], res.covariances[-1])  # the last: the filtered one
    np.testing.assert_array_equal(sm.gains[-1], 0.0)


def test_rts_smoother_shapes_are_checked_naming_the_argument():
    rng, F, H, Q, R, x0, P0 = _model(7)
    kf = Kalman(F, H, Q, R, x0, P0)
    res = kf.batch_filter(rng.standard_normal((5, 2)))
    m, c = res.means, res.covariances
    with pytest.raises(ValueError, match=r"^F must have shape \(3, 3\) or \(5, 3, 3\)"):
        rts_smoother(m, c, np.tile(F, (6, 1, 1)), Q=Q)
    with pytest.raises(ValueError, match=r"^Q must have shape \(3, 3\) or \(5, 3, 3\)"):
        rts_smoother(m, c, F, Q=np.tile(Q, (4, 1, 1)))
    with pytest.raises(ValueError, match=r"\bF must have 2 or 3 dimensions"):
        rts_smoother(m, c, np.ones(3), Q=Q)
    with pytest.raises(ValueError, match=r"\bF must have 2 or 3 dimensions"):
        rts_smoother(m, c, np.ones((1, 5, 3, 3)), Q=Q)
    with pytest.raises(ValueError, match=r"\bmeans must have 2 or 3 dimensions"):
        rts_smoother(m[0], c, F, Q=Q)
    with pytest.raises(ValueError, match=r"\bcovariances must have 3 dimensions"):
        rts_smoother(m, c[..., 0], F, Q=Q)
    with pytest.raises(ValueError, match="prior_means and prior_covariances must have shapes"):
        rts_smoother(m, c, F, prior_means=res.prior_means[:-1], prior_covariances=res.prior_covariances)
    with pytest.raises(ValueError, match="prior_means and prior_covariances must have shapes"):
        rts_smoother(m, c, F, prior_means=res.prior_means, prior_covariances=res.prior_covariances[:-1])
    with pytest.raises(ValueError, match=r"\bprior_means must have 2 dimensions"):
        rts_smoother(m, c, F, prior_means=res.prior_means[..., None], prior_covariances=res.prior_covariances)
    with pytest.raises(ValueError, match=r"\bprior_covariances must have 3 dimensions"):
        rts_smoother(m, c, F, prior_means=res.prior_means, prior_covariances=res.prior_covariances[..., 0])
    with pytest.raises(ValueError, match="give both"):
        rts_smoother(m, c, F, prior_covariances=res.prior_covariances)
    # per-step F of the right length is taken (F[k] moves step k - 1 to k)
    per_step = rts_smoother(m, c, np.tile(F, (5, 1, 1)), Q=np.tile(Q, (5, 1, 1)))
    np.testing.assert_allclose(per_step.means, rts_smoother(m, c, F, Q=Q).means, rtol=0, atol=1e-15)


# ---------------------------------------------------------------- filter


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_per_call_F_Q_H_R_equal_a_filter_built_with_them_and_last_one_call(form):
    rng, F, H, Q, R, x0, P0 = _model(8)
    F2, Q2 = 0.9 * F, 2.0 * Q + 0.01 * np.eye(3)
    H2, R2 = H[:1], np.array([[0.3]])
    z = rng.standard_normal(2)
    kf = Kalman(F, H, Q, R, x0, P0, form=form)
    kf.predict(F=F2, Q=Q2)
    twin = Kalman(F2, H, Q2, R, x0, P0, form=form)
    twin.predict()
    np.testing.assert_allclose(kf.x, twin.x, rtol=0, atol=1e-14)
    np.testing.assert_allclose(kf.P, twin.P, rtol=0, atol=1e-14)
    ll = kf.update(z[:1], H=H2, R=R2)
    one = Kalman(F2, H2, Q2, R2, x0, P0, form=form)
    one.predict()
    assert ll == pytest.approx(one.update(z[:1]), rel=1e-13)
    np.testing.assert_allclose(kf.x, one.x, rtol=0, atol=1e-14)
    assert kf.K.shape == (3, 1)
    np.testing.assert_array_equal(kf.F, F)  # the filter's own model is untouched
    np.testing.assert_array_equal(kf.Q, Q)
    np.testing.assert_array_equal(kf.H, H)
    kf.predict()  # and used again next step
    plain = Kalman(F, H, Q, R, one.x, one.P, form=form)
    plain.predict()
    np.testing.assert_allclose(kf.P, plain.P, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="pass an R to match the H of this call"):
        kf.update(z[:1], H=H2)


def test_repr_names_dimensions_batch_form_dtype_and_inflation():
    _, F, H, Q, R, x0, P0 = _model()
    assert repr(Kalman(F, H, Q, R, x0, P0)) == (
        "Kalman(dim_x=3, dim_z=2, dim_u=0, form='joseph', dtype=float64, inflation=1)"
    )
    kf = Kalman(F, H, Q, R, np.tile(x0, (4, 1)), P0, B=np.ones((3, 2)), form="sqrt", dtype=np.float32, inflation=1.5)
    assert repr(kf) == "Kalman(dim_x=3, dim_z=2, dim_u=2, batch=4, form='sqrt', dtype=float32, inflation=1.5)"
    assert kf.batch_shape == (4,)
    assert kf.dim_x == 3


def test_result_log_likelihood_is_a_float_for_one_filter_and_an_array_for_a_batch():
    rng, F, H, Q, R, x0, P0 = _model(9)
    zs = rng.standard_normal((6, 2, 2))
    one = Kalman(F, H, Q, R, x0, P0).batch_filter(zs[:, 0])
    assert isinstance(one.log_likelihood, float)
    assert one.log_likelihood == pytest.approx(one.log_likelihoods.sum(), rel=1e-15)
    batch = Kalman(F, H, Q, R, np.tile(x0, (2, 1)), P0).batch_filter(zs)
    assert batch.log_likelihood.shape == (2,)
    assert batch.log_likelihood[0] == pytest.approx(one.log_likelihood, rel=1e-13)


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_batch_filter_time_varying_Qs_equal_step_by_step(form):
    rng, F, H, Q, R, x0, P0 = _model(10)
    n = 6
    zs = rng.standard_normal((n, 2))
    Qs = np.stack([Q * (1 + 0.3 * k) for k in range(n)])
    Qs[2] = 0.0  # a noiseless step in between
    kf = Kalman(F, H, Q, R, x0, P0, form=form)
    res = kf.batch_filter(zs, Qs=Qs)
    ref = Kalman(F, H, Q, R, x0, P0, form=form)
    for k in range(n):
        ref.predict(Q=Qs[k])
        ref.update(zs[k])
        np.testing.assert_allclose(res.means[k], ref.x, rtol=0, atol=1e-12)
        np.testing.assert_allclose(res.covariances[k], ref.P, rtol=0, atol=1e-12)
    zero = Kalman(F, H, Q, R, x0, P0, form=form).batch_filter(zs, Qs=np.zeros((3, 3)))
    step = Kalman(F, H, np.zeros((3, 3)), R, x0, P0, form=form).batch_filter(zs)
    np.testing.assert_allclose(zero.covariances, step.covariances, rtol=0, atol=1e-13)


# ---------------------------------------------------------------- state dict


def _entries(kf: Kalman) -> dict:
    """A state's entries without its schema: what a user assembles by hand (loads with a warning)."""
    return {k: v for k, v in kf.state_dict().items() if k not in SCHEMA_KEYS}


def _ran(form: str = "joseph", batch: int | None = None, **kwargs) -> Kalman:
    rng, F, H, Q, R, x0, P0 = _model(11)
    x = x0 if batch is None else np.tile(x0, (batch, 1))
    kf = Kalman(F, H, Q, R, x, P0, form=form, **kwargs)
    shape = (5, 2) if batch is None else (5, batch, 2)
    kf.batch_filter(rng.standard_normal(shape))
    return kf


def test_a_hand_assembled_state_continues_and_the_loaded_arrays_are_copies():
    kf = _ran(B=np.ones((3, 1)), inflation=1.2)
    entries = {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in _entries(kf).items()}
    other = _ran(B=np.ones((3, 1)))
    with pytest.warns(LegacyCheckpointWarning, match="assembled by hand"):
        other.load_state_dict(entries)
    assert other.inflation == 1.2
    for value in entries.values():  # the caller's arrays written to after loading: the filter keeps its own
        if isinstance(value, np.ndarray):
            value[...] = 0
    for key, value in kf.state_dict().items():
        if key not in SCHEMA_KEYS:
            np.testing.assert_array_equal(np.asarray(other.state_dict()[key]), np.asarray(value), err_msg=key)
    z = np.array([0.3, -0.1])
    kf.predict([0.5])
    other.predict([0.5])
    assert other.update(z) == kf.update(z)
    for key, value in kf.state_dict().items():
        if key not in SCHEMA_KEYS:
            np.testing.assert_array_equal(np.asarray(other.state_dict()[key]), np.asarray(value), err_msg=key)


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_from_state_dict_keeps_form_dtype_control_and_inflation(form):
    kf = _ran(form, batch=2, B=np.ones((3, 1)), inflation=1.1, dtype=np.float32)
    twin = Kalman.from_state_dict(kf.state_dict())
    assert (twin.form, twin.dtype, twin.batch_shape, twin.dim_u, twin.inflation) == (form, np.float32, (2,), 1, 1.1)
    z = np.array([[0.3, -0.1], [0.2, 0.4]])
    kf.predict([0.5])
    twin.predict([0.5])
    np.testing.assert_array_equal(twin.update(z), kf.update(z))
    np.testing.assert_array_equal(twin.P, kf.P)


def _bad_entries() -> list:
    nb, n, m = 1, 3, 2
    return [
        ("batch", (1, 2), r"state\['batch'\] must be \(\) or \(B,\)"),
        ("batch", (0,), r"state\['batch'\] must be \(\) or \(B,\)"),
        ("batch", (1.0,), r"state\['batch'\] must be \(\) or \(B,\)"),
        ("batch", "1", r"state\['batch'\] must be \(\) or \(B,\)"),
        ("x", np.zeros((nb, n, 1)), r"state\['x'\] must have shape \(B, n\)"),
        ("x", np.zeros((nb, 0)), r"state\['x'\] must have shape \(B, n\)"),
        ("B", np.zeros(n), r"state\['B'\] must have shape \(n, k\)"),
        ("x_prior", np.zeros((nb, n + 1)), r"state\['x_prior'\] must have shape \(1, 3\)"),
        ("x_post", np.zeros((nb, n, 1)), r"state\['x_post'\] must have 2 dimensions"),
        ("p_post", np.zeros((nb, n, n + 1)), r"state\['p_post'\] must have shape \(1, 3, 3\)"),
        ("p_prior", np.zeros((nb, n)), r"state\['p_prior'\] must have 3 dimensions"),
        ("y", np.zeros((nb, m + 1)), "state's y, S, SI and K must have shapes"),
        ("y", np.zeros(m), r"state\['y'\] must have 2 dimensions"),
        ("S", np.zeros((nb, m, m + 1)), "state's y, S, SI and K must have shapes"),
        ("S", np.zeros((m, m)), r"state\['S'\] must have 3 dimensions"),
        ("SI", np.zeros((nb, m + 1, m)), "state's y, S, SI and K must have shapes"),
        ("SI", np.zeros((m, m)), r"state\['SI'\] must have 3 dimensions"),
        ("K", np.zeros((nb, n, m + 1)), "state's y, S, SI and K must have shapes"),
        ("K", np.zeros((n, m)), r"state\['K'\] must have 3 dimensions"),
        ("step_log_likelihood", np.zeros(2), r"state\['step_log_likelihood'\] must have shape \(1,\)"),
        ("step_log_likelihood", np.zeros((1, 1)), r"state\['step_log_likelihood'\] must have 1 dimension"),
        ("mahalanobis", np.zeros(2), r"state\['mahalanobis'\] must have shape \(1,\)"),
        ("mahalanobis", np.zeros((1, 1)), r"state\['mahalanobis'\] must have 1 dimension"),
        ("log_likelihood", np.zeros(3), r"state\['log_likelihood'\] must have shape \(1,\)"),
        ("log_likelihood", np.zeros((1, 1)), r"state\['log_likelihood'\] must have 1 dimension"),
        ("observed", np.zeros(1), r"state\['observed'\] must be 1 counts >= 0 \(integers\)"),
        ("observed", np.array([-1]), r"state\['observed'\] must be 1 counts"),
        ("observed", np.array([2, 2]), r"state\['observed'\] must be 1 counts"),
        ("form", "sqrt", r"state is for \(form, dtype, batch\) = \('sqrt'"),
        ("dtype", "float32", r"state is for \(form, dtype, batch\) = \('joseph', 'float32'"),
    ]


@pytest.mark.parametrize(("key", "value", "match"), _bad_entries(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_state_entry_is_checked_naming_it_before_anything_is_taken(key, value, match):
    kf = _ran()
    before = kf.state_dict()
    entries = _entries(kf)
    entries[key] = value
    with pytest.raises(ValueError, match=match):
        kf.load_state_dict(entries)
    after = kf.state_dict()
    for k, v in before.items():
        np.testing.assert_array_equal(np.asarray(after[k]), np.asarray(v), err_msg=k)


def test_a_state_with_missing_or_extra_keys_names_them():
    kf = _ran()
    entries = _entries(kf)
    del entries["K"]
    entries["extra"] = 1
    with pytest.raises(ValueError, match=r"missing \['K'\], unexpected \['extra'\]"):
        kf.load_state_dict(entries)
    with pytest.raises(ValueError, match="state is for"):
        kf.load_state_dict(_entries(_ran(batch=2)))


# ---------------------------------------------------------------- RLS map, run, smooth, steady state


def test_rls_to_kalman_scales_only_the_covariance_and_maps_back_exactly():
    rng = np.random.default_rng(12)
    rls = RLS(3, 0.95, delta=0.5)
    rls.run(rng.standard_normal(40), d=rng.standard_normal(40))
    unit = rls_to_kalman(rls)  # default noise_var = 1: P_kalman = P_rls
    np.testing.assert_allclose(unit.P, rls.P, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(unit.x, rls.weights)
    assert unit.inflation == pytest.approx(1 / 0.95, rel=1e-15)
    assert (unit.dim_z, unit.R[0, 0]) == (1, 1.0)
    scaled = rls_to_kalman(rls, 4.0)
    np.testing.assert_allclose(scaled.P, 4.0 * rls.P, rtol=1e-15, atol=0)
    assert scaled.R[0, 0] == 4.0
    back = kalman_to_rls(scaled)  # P0 = P / R, lam = 1 / inflation, w0 = x
    np.testing.assert_allclose(back.P, rls.P, rtol=1e-14, atol=0)
    assert back.lam == pytest.approx(0.95, rel=1e-15)
    np.testing.assert_array_equal(back.weights, rls.weights)
    u, d = rng.standard_normal((20, 3)), rng.standard_normal(20)
    np.testing.assert_allclose(back.run_regressors(u, d=d)[1], rls.run_regressors(u, d=d)[1], rtol=0, atol=1e-12)


def test_kalman_to_rls_refuses_each_non_rls_model():
    def kf(**kw):
        args = {"F": None, "H": np.ones((1, 2)), "Q": np.zeros((2, 2)), "R": 1.0, "x0": np.zeros(2), "P0": np.eye(2)}
        args.update(kw)
        return Kalman(
            args.pop("F"), args.pop("H"), args.pop("Q"), args.pop("R"), args.pop("x0"), args.pop("P0"), **args
        )

    assert kalman_to_rls(kf()).taps == 2
    for bad in (
        kf(x0=np.zeros((2, 2))),
        kf(F=2 * np.eye(2)),
        kf(Q=0.1 * np.eye(2)),
        kf(H=np.eye(2), R=np.eye(2)),
        kf(B=np.ones(2)),
    ):
        with pytest.raises(ValueError, match="F = I, Q = 0"):
            kalman_to_rls(bad)


def test_run_takes_per_step_regressors_and_leaves_covariances_out_by_default():
    rng, F, H, Q, R, x0, P0 = _model(13)
    h1 = rng.standard_normal((6, 3))  # one measurement row per step, (N, n)
    z = rng.standard_normal(6)
    a = Kalman(F, H[:1], Q, R[:1, :1], x0, P0)
    res = a.run(z, h1)
    assert res.covariances is None
    assert res.prior_covariances is None
    b = Kalman(F, H[:1], Q, R[:1, :1], x0, P0)
    full = b.run(z, h1[:, None, :], covariances=True)
    np.testing.assert_array_equal(full.means, res.means)
    assert full.covariances.shape == (6, 3, 3)
    c = Kalman(F, H[:1], Q, R[:1, :1], x0, P0)
    for k in range(6):
        c.predict()
        c.update(z[k], H=h1[k : k + 1])
    np.testing.assert_allclose(c.x, res.means[-1], rtol=0, atol=1e-13)


def test_smooth_with_time_varying_F_and_result_is_frozen():
    rng, F, H, Q, R, x0, P0 = _model(14)
    n = 8
    zs = rng.standard_normal((n, 2))
    Fs = np.stack([F * (1 + 0.05 * k) for k in range(n)])
    kf = Kalman(F, H, Q, R, x0, P0, inflation=1.2)
    res = kf.batch_filter(zs, Fs=Fs)
    sm = kf.smooth(res, Fs)
    ref = rts_smoother(res.means, res.covariances, Fs, Q=Q, inflation=1.2)
    np.testing.assert_allclose(sm.means, ref.means, rtol=0, atol=1e-12)
    via_method = kf.rts_smoother(res.means, res.covariances, Fs)  # the filter's Q and inflation
    np.testing.assert_allclose(via_method.means, ref.means, rtol=0, atol=1e-12)
    assert np.abs(kf.smooth(res).means - sm.means).max() > 1e-6  # Fs mattered
    with pytest.raises(FrozenInstanceError):
        res.means = None


@pytest.mark.parametrize("batch", [None, 2])
def test_steady_state_steps_with_control_and_a_missing_component(batch):
    _, F, H, Q, R, x0, P0 = _model(15)
    B = np.array([[1.0], [0.0], [0.5]])
    x = x0 if batch is None else np.tile(x0, (batch, 1))
    kf = Kalman(F, H, Q, R, x, P0, B=B)
    kf.predict([0.2])
    kf.update(np.zeros(2) if batch is None else np.zeros((batch, 2)))
    K, SI, x_before, p_before = kf.K, kf.SI, kf.x, kf.P
    kf.predict_steadystate([0.7])
    prior = x_before @ F.T + 0.7 * B[:, 0]
    np.testing.assert_allclose(kf.x, prior, rtol=0, atol=1e-15)
    np.testing.assert_allclose(kf.x_prior, prior, rtol=0, atol=1e-15)
    z = np.array([0.4, np.nan]) if batch is None else np.array([[0.4, np.nan]] * batch)
    kf.update_steadystate(z)
    y = np.stack([0.4 - prior @ H[0].T, np.zeros_like(prior[..., 0])], axis=-1)
    np.testing.assert_allclose(kf.y, y, rtol=0, atol=1e-15)
    np.testing.assert_allclose(kf.x, prior + np.einsum("...nm,...m->...n", K, y), rtol=0, atol=1e-15)
    np.testing.assert_allclose(kf.x_post, kf.x, rtol=0, atol=0)
    maha = np.sqrt(np.einsum("...m,...mk,...k->...", y, SI, y))
    np.testing.assert_allclose(kf.mahalanobis, maha, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(kf.P, p_before)
    kf.update(z[..., :1], H=H[:1], R=R[:1, :1])  # a gain for one component; the filter's H has two
    with pytest.raises(ValueError, match="run a full update first"):
        kf.update_steadystate(z)


# ---------------------------------------------------------------- model (kalman_model.py)


def test_x0_and_F_must_agree_and_F_None_is_the_identity():
    _, _, H, Q, R, x0, P0 = _model()
    with pytest.raises(ValueError, match="x0 and F must agree"):
        Kalman(np.eye(2), H, Q, R, x0, P0)
    with pytest.raises(ValueError, match="x0 must hold at least one state"):
        Kalman(None, np.ones((1, 0)), np.zeros((0, 0)), 1.0, np.zeros(0), np.zeros((0, 0)))
    walk = Kalman(None, H, Q, R, x0, P0)
    np.testing.assert_array_equal(walk.F, np.eye(3))
    eye = Kalman(np.eye(3), H, Q, R, x0, P0)
    z = np.array([0.1, 0.2])
    walk.predict()
    eye.predict()
    assert walk.update(z) == eye.update(z)
    np.testing.assert_array_equal(walk.P, eye.P)


def test_H_R_B_and_inflation_setters_check_and_take_effect():
    _, F, H, Q, R, x0, P0 = _model()
    kf = Kalman(F, H, Q, R, x0, P0)
    with pytest.raises(ValueError, match="set both with set_H_R"):
        kf.H = np.ones((3, 3))
    kf.H = 2 * H  # same rows: taken
    np.testing.assert_array_equal(kf.H, 2 * H)
    with pytest.raises(ValueError, match="R must be positive definite"):
        kf.R = np.zeros((2, 2))
    with pytest.raises(ValueError, match="R must be positive definite"):
        kf.set_H_R(H[:1], 0.0)
    kf.set_H_R(H[:1], 0.5)
    assert (kf.dim_z, kf.R.shape, kf.K.shape, kf.y.shape) == (1, (1, 1), (3, 1), (1,))
    assert kf.B is None
    assert kf.dim_u == 0
    kf.B = [1.0, 0.0, 2.0]  # (n,): one control input
    np.testing.assert_array_equal(kf.B, [[1.0], [0.0], [2.0]])
    assert kf.dim_u == 1
    for bad in (np.ones((2, 1)), np.ones((3, 0)), np.ones((3, 1, 1))):
        with pytest.raises(ValueError, match="B must"):
            kf.B = bad
    kf.B = None
    assert kf.B is None
    kf.inflation = 1.0
    with pytest.raises(ValueError, match="inflation must lie in"):
        kf.inflation = np.inf
    with pytest.raises(ValueError, match="inflation must lie in"):
        kf.inflation = 0.99


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_singular_prior_and_noise_keep_their_covariance_in_either_form(form):
    """A rank-deficient ``P0`` (no Cholesky factor) is factored through its eigenvectors in square-root form."""
    _, F, H, Q, R, x0, _ = _model()
    v = np.array([1.0, 2.0, -1.0])
    P0 = np.outer(v, v) + np.diag([0.0, 0.0, 0.0])
    kf = Kalman(F, H, np.zeros((3, 3)), R, x0, P0, form=form)
    np.testing.assert_allclose(kf.P, P0, rtol=0, atol=1e-13)
    assert not kf.P.flags.writeable
    kf.predict()
    np.testing.assert_allclose(kf.P, F @ P0 @ F.T, rtol=0, atol=1e-13)
    kf.Q = Q
    kf.predict()
    np.testing.assert_allclose(kf.P, F @ F @ P0 @ F.T @ F.T + Q, rtol=0, atol=1e-13)


def test_square_root_batch_covariances_equal_the_joseph_forms_for_every_member():
    rng, F, H, Q, R, x0, P0 = _model(16)
    xs = np.tile(x0, (3, 1))
    zs = rng.standard_normal((4, 3, 2))
    sq, jo = Kalman(F, H, Q, R, xs, P0, form="sqrt"), Kalman(F, H, Q, R, xs, P0)
    sq.batch_filter(zs)
    jo.batch_filter(zs)
    np.testing.assert_allclose(sq.P, jo.P, rtol=0, atol=1e-12)
    assert not sq.P.flags.writeable
    np.testing.assert_allclose(sq.factor @ np.swapaxes(sq.factor, -1, -2), jo.P, rtol=0, atol=1e-12)
    with pytest.raises(AttributeError, match="form='sqrt'"):
        _ = jo.factor


def test_a_fresh_float32_filter_holds_float32_step_quantities_and_round_trips():
    _, F, H, Q, R, x0, P0 = _model()
    kf = Kalman(F, H, Q, R, x0, P0, B=np.ones((3, 1)), dtype=np.float32)
    for value in (kf.y, kf.S, kf.SI, kf.K, kf.x, kf.P, kf.B):
        assert value.dtype == np.float32
    assert kf.observed == 0
    assert isinstance(kf.observed, int)
    twin = Kalman.from_state_dict(kf.state_dict())
    assert twin.dtype == np.float32
    kf.predict([1.0])
    twin.predict([1.0])
    np.testing.assert_array_equal(twin.x, kf.x)


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_batch_filter_leaves_every_per_step_quantity_as_a_step_by_step_run(form):
    """After a sequence: the latest prior and posterior, y, S, SI, K, Mahalanobis distance, step and total
    log-likelihoods and observed counts equal those of predict/update per step; the result holds each step's."""
    rng, F, H, Q, R, x0, P0 = _model(17)
    xs = np.stack([x0, -x0])
    zs = rng.standard_normal((5, 2, 2))
    zs[4, 1, 0] = np.nan  # the last step of the second filter sees one component
    seq = Kalman(F, H, Q, R, xs, P0, form=form)
    res = seq.batch_filter(zs)
    ref = Kalman(F, H, Q, R, xs, P0, form=form)
    for k in range(5):
        ref.predict()
        ref.update(zs[k])
        np.testing.assert_allclose(res.innovations[k], ref.y, rtol=0, atol=1e-13)
        np.testing.assert_allclose(res.innovation_covariances[k], ref.S, rtol=0, atol=1e-13)
        np.testing.assert_allclose(res.mahalanobis[k], ref.mahalanobis, rtol=0, atol=1e-13)
        np.testing.assert_array_equal(res.observed[k], ref.observed)
        np.testing.assert_allclose(res.prior_means[k], ref.x_prior, rtol=0, atol=1e-13)
    for name in ("x_prior", "P_prior", "x_post", "P_post", "y", "S", "SI", "K", "x", "P"):
        np.testing.assert_allclose(getattr(seq, name), getattr(ref, name), rtol=0, atol=1e-13, err_msg=name)
    for name in ("mahalanobis", "step_log_likelihood", "log_likelihood"):
        np.testing.assert_allclose(getattr(seq, name), getattr(ref, name), rtol=1e-13, atol=0, err_msg=name)
    np.testing.assert_array_equal(seq.observed, [2, 1])
    assert not np.allclose(seq.x_prior, seq.x_post)


def test_batch_filter_time_varying_noise_is_checked_as_covariances():
    _, F, H, Q, R, x0, P0 = _model()
    kf = Kalman(F, H, Q, R, x0, P0)
    zs = np.zeros((3, 2))
    with pytest.raises(ValueError, match="Qs"):
        kf.batch_filter(zs, Qs=-np.eye(3))
    with pytest.raises(ValueError, match="Qs"):
        kf.batch_filter(zs, Qs=np.array([[0.1, 0.2, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]]))
    with pytest.raises(ValueError, match="Rs"):
        kf.batch_filter(zs, Rs=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="pass Rs to match"):
        kf.batch_filter(zs[:, :1], Hs=H[:1])
    np.testing.assert_array_equal(kf.x, x0)  # refused before any work


@pytest.mark.parametrize("form", ["joseph", "sqrt"])
def test_the_callers_arrays_are_never_written_to(form):
    """The filter keeps copies of everything it is given (constructor and setters), so running it changes none."""
    rng, F, H, Q, R, x0, P0 = _model(18)
    B = np.ones((3, 1))
    given = {"F": F, "H": H, "Q": Q, "R": R, "x0": x0, "P0": P0, "B": B}
    kept = {k: v.copy() for k, v in given.items()}
    kf = Kalman(F, H, Q, R, x0, P0, B=B, form=form)
    x_new, p_new = x0 + 1.0, 2.0 * P0
    kept_new = (x_new.copy(), p_new.copy())
    kf.batch_filter(rng.standard_normal((4, 2)))
    kf.x, kf.P = x_new, p_new
    kf.predict([0.3])
    kf.update(rng.standard_normal(2))
    kf.batch_filter(rng.standard_normal((4, 2)), us=rng.standard_normal((4, 1)))
    for k, v in given.items():
        np.testing.assert_array_equal(v, kept[k], err_msg=k)
    np.testing.assert_array_equal(x_new, kept_new[0])
    np.testing.assert_array_equal(p_new, kept_new[1])


def test_a_one_step_sequence_smooths_to_its_filtered_estimate():
    rng, F, H, Q, R, x0, P0 = _model(19)
    kf = Kalman(F, H, Q, R, x0, P0)
    res = kf.batch_filter(rng.standard_normal((1, 2)))
    for sm in (rts_smoother(res.means, res.covariances, F, Q=Q), kf.smooth(res)):
        np.testing.assert_array_equal(sm.means, res.means)
        np.testing.assert_array_equal(sm.covariances, res.covariances)
        np.testing.assert_array_equal(sm.gains, 0.0)


def test_identity_transition_state_and_measurement_setters_keep_dtype_shape_and_name():
    _, _, H, Q, R, x0, P0 = _model()
    kf = Kalman(None, H, Q, R, np.tile(x0, (2, 1)), P0, dtype=np.float32)
    assert kf.F.dtype == np.float32  # the identity of F=None is in the filter's dtype too
    new = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    kf.x = new  # a batch of two means
    np.testing.assert_array_equal(kf.x, new.astype(np.float32))
    assert kf.x.dtype == np.float32
    with pytest.raises(ValueError, match=r"^x must have shape \(2, 3\)"):
        kf.x = new[:1]
    with pytest.raises(ValueError, match=r"^H must have shape \(m, 3\)"):
        kf.H = np.ones((2, 4))


def test_per_call_and_per_step_model_arguments_are_named_in_their_errors():
    _, F, H, Q, R, x0, P0 = _model()
    kf = Kalman(F, H, Q, R, x0, P0, B=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"^Q must be positive semi-definite"):
        kf.predict(Q=-np.eye(3))
    zs = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"^Hs must be a matrix or a sequence of matrices"):
        kf.batch_filter(zs, Hs=np.ones(3))
    with pytest.raises(ValueError, match=r"^Bs must be one matrix of shape \(3, 1\)"):
        kf.batch_filter(zs, Bs=np.ones((2, 1)), us=np.ones((3, 1)))
