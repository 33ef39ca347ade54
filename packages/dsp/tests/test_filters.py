"""LMS, NLMS and RLS: agreement with padasip, streaming, batching, dtypes, and bad input."""

from __future__ import annotations

import numpy as np
import padasip as pa
import pytest
from scipy.signal import lfilter

from noisygrad.dsp import LMS, NLMS, RLS, StabilityWarning, _filter_base, _kernels, tapped_delay_line, theory
from noisygrad.dsp.lms_family import GMCC, LMF, NSSLMS, Llncosh

TAPS = 8


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(4000)
    d = lfilter(rng.standard_normal(TAPS), 1.0, x) + 0.1 * rng.standard_normal(4000)
    return x, d


def test_tapped_delay_line_is_a_causal_fir_with_zero_initial_state(data):
    x, _ = data
    w = np.arange(1.0, TAPS + 1)
    u = tapped_delay_line(x, TAPS)
    assert u.shape == (x.size, TAPS)
    np.testing.assert_allclose(u @ w, lfilter(w, 1.0, x), rtol=0, atol=1e-12)
    assert tapped_delay_line(np.stack([x, 2 * x]), TAPS).shape == (2, x.size, TAPS)


# padasip's run(d, X) takes the regressor matrix, returns (y, e, W) with W the weights *before* each update:
# our a-priori convention. Its regressors are ours when built by tapped_delay_line.
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: LMS(TAPS, 0.01, history=True), lambda: pa.filters.FilterLMS(TAPS, mu=0.01, w="zeros")),
        (
            lambda: NLMS(TAPS, 0.5, eps=1e-3, history=True),
            lambda: pa.filters.FilterNLMS(TAPS, mu=0.5, eps=1e-3, w="zeros"),
        ),
        (
            lambda: RLS(TAPS, 0.99, delta=0.01, history=True),
            lambda: pa.filters.FilterRLS(TAPS, mu=0.99, eps=0.01, w="zeros"),
        ),
    ],
    ids=["LMS", "NLMS", "RLS"],
)
def test_agrees_with_padasip(data, ours, theirs):
    x, d = data
    f, ref = ours(), theirs()
    y, e = f.run(x, d=d)
    y_ref, e_ref, w_ref = ref.run(d, tapped_delay_line(x, TAPS))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(e, e_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.history, w_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.weights, ref.w, rtol=0, atol=1e-10)
    # explicit regressors give the same recursion
    g = ours()
    y2, _ = g.run_regressors(tapped_delay_line(x, TAPS), d=d)
    np.testing.assert_allclose(y2, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: LMS(TAPS, 0.02), lambda: NLMS(TAPS, 0.3), lambda: RLS(TAPS, 0.995)])
def test_streaming_equals_one_call_and_batch_equals_channels(data, make):
    x, d = data
    whole = make()
    y, e = whole.run(x, d=d)
    pieces = make()
    outs = [pieces.run(x[a:b], d=d[a:b]) for a, b in ((0, 1), (1, 7), (7, 1500), (1500, x.size))]
    # equal to rounding: the LMS kernel fuses each update with the next output, so the first output of a
    # call is summed in another order than inside a call
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs]), y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([o[1] for o in outs]), e, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pieces.weights, whole.weights, rtol=0, atol=1e-12)
    # three channels at once: channel 1 is the same data, the others are different
    rng = np.random.default_rng(1)
    xb = np.stack([rng.standard_normal(x.size), x, rng.standard_normal(x.size)])
    db = np.stack([rng.standard_normal(x.size), d, rng.standard_normal(x.size)])
    batch = make()
    yb, eb = batch.run(xb, d=db)
    assert yb.shape == eb.shape == xb.shape
    assert batch.weights.shape == (3, TAPS)
    np.testing.assert_array_equal(yb[1], y)
    np.testing.assert_array_equal(batch.weights[1], whole.weights)
    single = make()
    np.testing.assert_array_equal(single.run(xb[2], d=db[2])[1], eb[2])


def test_input_is_neither_mutated_nor_aliased_and_history_is_off_by_default(data):
    x, d = data
    x0, d0 = x.copy(), d.copy()
    w0 = np.ones(TAPS)
    p0 = np.eye(TAPS)
    for f in (LMS(TAPS, 0.01, w0=w0), RLS(TAPS, 0.99, w0=w0, P0=p0)):
        f.run(x, d=d)
        f.run_regressors(tapped_delay_line(x, TAPS), d=d)
        assert f.history is None
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(d, d0)
    np.testing.assert_array_equal(w0, 1.0)
    np.testing.assert_array_equal(p0, np.eye(TAPS))
    g = LMS(TAPS, 0.01, w0=w0)
    w0[0] = 5.0  # the filter keeps its own copy
    assert g.weights[0] == 1.0


def test_float32_on_request(data):
    x, d = data
    f32, f64 = LMS(TAPS, 0.01, dtype="float32"), LMS(TAPS, 0.01)
    y32, _ = f32.run(x, d=d)
    y64, _ = f64.run(x, d=d)
    assert y32.dtype == np.float32
    assert f32.weights.dtype == np.float32
    assert y64.dtype == np.float64
    np.testing.assert_allclose(y32, y64, atol=1e-4)
    r = RLS(TAPS, 0.999, dtype=np.float32)
    r.run(x, d=d)
    assert r.P.dtype == np.float32
    np.testing.assert_array_equal(r.P, r.P.T)
    r64 = RLS(TAPS, 0.999)
    r64.run(x, d=d)
    np.testing.assert_allclose(r.weights, r64.weights, atol=1e-3)


def test_filters_converge_to_the_wiener_solution():
    """64 independent channels identify the same system; their final weights scatter about it, unbiased.

    Given the inputs, each filter's weight error is its decayed start plus a linear function of the zero-mean
    noise, so in steady state (LMS: 60 weight time constants; RLS: 6 memory lengths) its mean over channels is
    0 to within its s.e. (the spread over channels / 8). The spread itself is the closed form's: LMS
    ``M J_min / L`` per weight (Feuer-Weinstein M), RLS ``J_min (1 - lam)/(1 + lam)``; its s.e. is that of the
    mean square over the 64 channels, about 6%. NLMS has no exact closed form for its spread here.
    """
    rng = np.random.default_rng(3)
    h = rng.standard_normal(TAPS)
    channels, n, noise_var = 64, 6000, 1e-4
    x = rng.standard_normal((channels, n))
    d = lfilter(h, 1.0, x, axis=1) + np.sqrt(noise_var) * rng.standard_normal(x.shape)
    spread = {
        "LMS": theory.lms_misadjustment(0.01, np.ones(TAPS)) * noise_var / TAPS,
        "NLMS": None,
        "RLS": noise_var * (1 - 0.999) / (1 + 0.999),
    }
    for f in (LMS(TAPS, 0.01), NLMS(TAPS, 0.5), RLS(TAPS, 0.999)):
        f.run(x, d=d)
        err = f.weights - h  # (channels, taps), independent rows
        se = err.std(axis=0, ddof=1) / np.sqrt(channels)
        assert np.all(np.abs(err.mean(axis=0)) < 4 * se), type(f).__name__
        predicted = spread[type(f).__name__]
        if predicted is not None:
            per_channel = np.mean(err**2, axis=1)
            assert abs(per_channel.mean() - predicted) < 4 * per_channel.std(ddof=1) / np.sqrt(channels)


def test_nlms_all_zero_input_gives_no_nan():
    f = NLMS(4, 1.0)
    _y, e = f.run(np.zeros(50), d=np.ones(50))
    np.testing.assert_array_equal(f.weights, 0.0)
    np.testing.assert_array_equal(e, 1.0)


def test_initial_weights_reset_and_repr():
    w0 = np.array([1.0, -1.0, 0.5])
    f = LMS(3, 0.1, w0=w0)
    np.testing.assert_array_equal(f.weights, w0)
    y, _ = f.run([1.0, 0.0, 0.0], d=[0.0, 0.0, 0.0])
    assert y[0] == 1.0
    f.reset()
    np.testing.assert_array_equal(f.weights, w0)
    assert "mu=0.1" in repr(f)
    assert "float64" in repr(f)
    r = RLS(2, 0.9, P0=[[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(r.P, [[2.0, 0.5], [0.5, 1.0]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: LMS(0, 0.1), "taps"),
        (lambda: LMS(2.5, 0.1), "taps"),
        (lambda: LMS(4, 0.0), "mu"),
        (lambda: LMS(4, -1.0), "mu"),
        (lambda: LMS(4, float("nan")), "mu"),
        (lambda: NLMS(4, 2.0), r"mu must lie in \(0.0, 2.0\)"),
        (lambda: NLMS(4, 0.5, eps=0.0), "eps"),
        (lambda: RLS(4, 0.0), r"lam must lie in \(0.0, 1.0\]"),
        (lambda: RLS(4, 1.01), "lam"),
        (lambda: RLS(4, float("nan")), "lam"),
        (lambda: RLS(4, 0.9, delta=0.0), "delta"),
        (lambda: RLS(2, 0.9, P0=[[1.0, 0.2], [0.0, 1.0]]), "P0 must be symmetric"),
        (lambda: LMS(4, 0.1, w0=[1.0, 2.0]), "w0"),
        (lambda: LMS(4, 0.1, dtype="int32"), "dtype"),
        (lambda: LMS(4, 0.1).run(np.ones(10), d=np.ones(9)), "x and d must have the same shape"),
        (lambda: LMS(4, 0.1).run(np.ones((2, 3, 4)), d=np.ones((2, 3, 4))), "x must have 1 or 2 dimensions"),
        (lambda: LMS(4, 0.1).run(np.ones(0), d=np.ones(0)), "at least one sample"),
        (lambda: LMS(4, 0.1).run([1.0, np.nan], d=[1.0, 1.0]), "x has 1 non-finite value"),
        (lambda: LMS(4, 0.1).run([1.0, 1.0], d=[np.inf, 1.0]), "d has 1 non-finite value"),
        (lambda: LMS(4, 0.1).run(["a", "b"], d=[1.0, 1.0]), "x must hold real numbers"),
        (lambda: LMS(4, 0.1).run_regressors(np.ones((5, 3)), d=np.ones(5)), "u must have shape"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_batch_shape_is_fixed_until_reset(data):
    x, d = data
    f = LMS(TAPS, 0.01)
    f.run(x, d=d)
    with pytest.raises(ValueError, match="call reset"):
        f.run(np.stack([x, x]), d=np.stack([d, d]))
    f.reset()
    f.run(np.stack([x, x]), d=np.stack([d, d]))
    assert f.weights.shape == (2, TAPS)


def test_step_past_the_stability_bound_warns_and_divergence_raises():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(5000)
    taps = 16  # white unit-power input: mean-square stable iff mu < 2 / (taps + 2) = 0.111
    with (
        pytest.warns(StabilityWarning, match=r"2 / \(\(taps \+ 2\) \* input power\)"),
        pytest.raises(FloatingPointError, match=r"LMS weights became NaN or Inf.*mu = 0\.3"),
    ):
        LMS(taps, 0.3).run(x, d=x)
    LMS(taps, 0.05).run(x, d=x)  # well inside: no warning (warnings are errors in this suite)


def test_rls_long_batched_runs_with_history_equal_single_channel_runs(monkeypatch):
    """Past a block of regressor entries RLS materialises the delay line in blocks; the result must not
    depend on it (a small block here, so several)."""
    monkeypatch.setattr(_filter_base, "_BLOCK_ELEMENTS", 3 * 4 * 1000)
    rng = np.random.default_rng(7)
    x, d = rng.standard_normal((3, 9000)), rng.standard_normal((3, 9000))
    batch = RLS(4, 0.99, history=True)
    y, _ = batch.run(x, d=d)
    for c in range(3):
        single = RLS(4, 0.99, history=True)
        np.testing.assert_array_equal(single.run(x[c], d=d[c])[0], y[c])
        np.testing.assert_array_equal(single.history, batch.history[c])
        np.testing.assert_array_equal(single.P, batch.P[c])


def test_padasip_argument_order_fails_loudly_instead_of_learning_a_wrong_filter():
    """``LMS.run(x, d)`` once accepted padasip's ``run(d, x)`` order silently (two signals of one shape) and
    learned a wrong filter; ``d`` is keyword-only now, and a second positional argument names the reason."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(3000)
    d = lfilter([0.5, -0.3, 0.2, 0.1], 1.0, x)
    for f in (LMS(4, 0.05), NLMS(4, 0.5), RLS(4, 0.99)):
        with pytest.raises(TypeError, match=r"run\(x, d=d\).*padasip's run\(d, x\) takes the two in the opposite"):
            f.run(d, x)
        with pytest.raises(TypeError, match=r"run_regressors\(u, d=d\)"):
            f.run_regressors(tapped_delay_line(x, 4), d)
        with pytest.raises(TypeError, match="needs the desired signal as a keyword"):
            f.run(x)
        f.run(x, d=d)
        np.testing.assert_allclose(f.weights, [0.5, -0.3, 0.2, 0.1], atol=1e-3)


@pytest.mark.parametrize("make", [lambda: LMS(TAPS, 0.02), lambda: NLMS(TAPS, 0.3), lambda: RLS(TAPS, 0.995)])
def test_state_dict_round_trip_continues_bit_for_bit(data, make):
    x, d = data
    whole = make()
    assert whole.state_dict()["batch"] is None
    whole.run(x[:1234], d=d[:1234])
    state = whole.state_dict()
    assert set(state) >= {"batch", "weights", "tail"}
    y2, e2 = whole.run(x[1234:], d=d[1234:])
    loaded = make()
    loaded.load_state_dict(state)
    y3, e3 = loaded.run(x[1234:], d=d[1234:])
    np.testing.assert_array_equal(y3, y2)
    np.testing.assert_array_equal(e3, e2)
    np.testing.assert_array_equal(loaded.weights, whole.weights)
    if isinstance(whole, RLS):
        np.testing.assert_array_equal(loaded.P, whole.P)
        bad = loaded.state_dict()
        bad["P"] = bad["P"].clone()
        bad["P"][0, 0, 1] += 1.0
        with pytest.raises(ValueError, match=r"state\['P'\] must be symmetric"):
            loaded.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"state\['batch'\] must be"):
        loaded.load_state_dict({**state, "batch": (0,)})
    with pytest.raises(TypeError, match="state must be a dict"):
        loaded.load_state_dict([("batch", None)])  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [lambda: LMS(16, 0.01), lambda: NLMS(16, 0.3), lambda: RLS(16, 0.995)])
def test_parallel_kernels_give_each_channel_the_bits_of_a_serial_run(make):
    """Large batches run channels in parallel threads: the results must not depend on it."""
    channels = 6
    n = _kernels.PARALLEL_WORK // (channels * 16) + 100
    rng = np.random.default_rng(9)
    x = rng.standard_normal((channels, n))
    d = lfilter(rng.standard_normal(16) / 4, 1.0, x, axis=1) + 0.1 * rng.standard_normal(x.shape)
    batch = make()
    yb, _ = batch.run(x, d=d)
    for c in (0, 3, 5):
        single = make()
        np.testing.assert_array_equal(single.run(x[c], d=d[c])[0], yb[c])
        np.testing.assert_array_equal(single.weights, batch.weights[c])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "make",
    [
        lambda dt: LMS(TAPS, 0.02, dtype=dt),
        lambda dt: NLMS(TAPS, 0.3, dtype=dt),
        lambda dt: LMF(TAPS, 1e-3, dtype=dt),
        lambda dt: NSSLMS(TAPS, 0.01, dtype=dt),
        lambda dt: Llncosh(TAPS, 0.02, lambd=2.0, dtype=dt),
        lambda dt: GMCC(TAPS, 0.02, dtype=dt),
    ],
    ids=["LMS", "NLMS", "LMF", "NSSLMS", "Llncosh", "GMCC"],
)
@pytest.mark.parametrize("threads", ["serial", "parallel"])
def test_every_position_of_a_batch_gives_the_bits_of_a_single_run(make, dtype, threads, monkeypatch):
    """The delay-line kernels advance channels in lock-step groups (four in float32, two in float64), the last
    group padded with copies: whichever slot a channel takes, in a serial or a parallel run, its outputs and
    weights are those of the channel run alone."""
    if threads == "parallel":  # every batch large enough for threads
        monkeypatch.setattr(_kernels, "PARALLEL_WORK", 1)
    rng = np.random.default_rng(11)
    channels, n = 7, 300  # groups of 4: 4 + 3 (one padded slot); of 2: 2 + 2 + 2 + 1
    x = rng.standard_normal((channels, n))
    d = lfilter(rng.standard_normal(TAPS) / 2, 1.0, x, axis=1) + 0.1 * rng.standard_normal(x.shape)
    batch = make(dtype)
    yb, eb = batch.run(x, d=d)
    assert yb.dtype == dtype
    for c in range(channels):
        single = make(dtype)
        y, e = single.run(x[c], d=d[c])
        np.testing.assert_array_equal(y, yb[c])
        np.testing.assert_array_equal(e, eb[c])
        np.testing.assert_array_equal(single.weights, batch.weights[c])
    np.testing.assert_allclose(yb, make(np.float64).run(x, d=d)[0], rtol=0, atol=1e-4 if dtype == np.float32 else 0)
    recorded = LMS(TAPS, 0.02, dtype=dtype, history=True)  # the a-priori weights, recorded slot by slot
    recorded.run(x, d=d)
    for c in (0, 5, 6):
        alone = LMS(TAPS, 0.02, dtype=dtype, history=True)
        alone.run(x[c], d=d[c])
        np.testing.assert_array_equal(alone.history, recorded.history[c])
