"""padasip's filter family against ours: the same signals through both, outputs and weights to 1e-10.

padasip's source distribution carries no tests, so these are the mapping: every padasip filter that is not LMS,
NLMS or RLS (those are in ``test_filters.py``) runs beside its counterpart here on white, coloured (AR(1), pole
0.9) and non-Gaussian (Laplace input, Student-t noise) signals, at two settings and two filter lengths. padasip's
``run(d, X)`` takes a regressor matrix; ``tapped_delay_line`` builds it from the signal, and its ``W`` is the
a-priori weight history, our ``history``. Argument names map ``n -> taps``, ``w -> w0``, ``ro -> rho``,
``ifc -> eps`` (AP); the rest are padasip's.

Also here, for every new filter: the state dict continues a run bit for bit, a batch equals its channels run
alone (also through the parallel kernels), streaming equals one call, float32 on request, NaN/Inf and bad
arguments refused by name, and padasip's argument order refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import padasip as pa
import pytest
import torch
from scipy.signal import lfilter

from noisygrad.dsp import _kernels, tapped_delay_line
from noisygrad.dsp.adapted_step import GNGD, VSLMSAng, VSLMSBenveniste, VSLMSMathews
from noisygrad.dsp.affine_projection import AP
from noisygrad.dsp.lms_family import GMCC, LMF, NLMF, NSSLMS, SSLMS, Llncosh
from noisygrad.dsp.online_centred import OCNLMS

N = 800
RENAME = {"ro": "rho", "ifc": "eps", "w": "w0"}

# padasip name -> (padasip's class, ours, two settings in padasip's keywords). The adapted-step filters have no
# safeguard on the step (in padasip or here): these settings keep padasip's own run bounded on every signal.
FAMILY: dict[str, tuple[type, type, list[dict[str, Any]]]] = {
    "LMF": (pa.filters.FilterLMF, LMF, [{"mu": 0.002}, {"mu": 0.02}]),
    "NLMF": (pa.filters.FilterNLMF, NLMF, [{"mu": 0.05, "eps": 0.001}, {"mu": 0.3, "eps": 0.1}]),
    "SSLMS": (pa.filters.FilterSSLMS, SSLMS, [{"mu": 0.001}, {"mu": 0.01}]),
    "NSSLMS": (pa.filters.FilterNSSLMS, NSSLMS, [{"mu": 0.02, "eps": 0.001}, {"mu": 0.1, "eps": 1.0}]),
    "Llncosh": (pa.filters.FilterLlncosh, Llncosh, [{"mu": 0.01, "lambd": 3.0}, {"mu": 0.05, "lambd": 0.5}]),
    "GMCC": (
        pa.filters.FilterGMCC,
        GMCC,
        [{"mu": 0.05, "lambd": 0.03, "alpha": 2.0}, {"mu": 0.1, "lambd": 0.5, "alpha": 1.5}],
    ),
    "GNGD": (pa.filters.FilterGNGD, GNGD, [{"mu": 1.0, "eps": 1.0, "ro": 0.1}, {"mu": 0.3, "eps": 0.5, "ro": 0.01}]),
    "VSLMS_Mathews": (
        pa.filters.FilterVSLMS_Mathews,
        VSLMSMathews,
        [{"mu": 0.01, "ro": 0.001}, {"mu": 0.03, "ro": 0.005}],
    ),
    "VSLMS_Benveniste": (
        pa.filters.FilterVSLMS_Benveniste,
        VSLMSBenveniste,
        [{"mu": 0.03, "ro": 0.0001}, {"mu": 0.05, "ro": 0.0002}],
    ),
    "VSLMS_Ang": (
        pa.filters.FilterVSLMS_Ang,
        VSLMSAng,
        [{"mu": 0.05, "ro": 0.0001, "a": 0.9}, {"mu": 0.03, "ro": 0.0005, "a": 0.5}],
    ),
    "AP": (pa.filters.FilterAP, AP, [{"mu": 0.5, "order": 2, "ifc": 0.001}, {"mu": 0.1, "order": 5, "ifc": 0.01}]),
    "OCNLMS": (
        pa.filters.FilterOCNLMS,
        OCNLMS,
        [{"mu": 0.1, "eps": 1.0, "mem": 10}, {"mu": 0.5, "eps": 0.1, "mem": 7}],
    ),
}


def ours(name: str, taps: int, setting: dict[str, Any], **extra: Any) -> Any:
    cls = FAMILY[name][1]
    return cls(taps, **{RENAME.get(k, k): v for k, v in setting.items()}, **extra)


def theirs(name: str, taps: int, setting: dict[str, Any], w: Any = "zeros") -> Any:
    return FAMILY[name][0](taps, w=w, **setting)


def signal(kind: str, taps: int, seed: int = 0, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Input ``x`` and desired ``d = h * x + v`` of unit-order size (``|h| = 0.5``)."""
    rng = np.random.default_rng([seed, taps, len(kind)])
    h = rng.standard_normal(taps)
    h *= 0.5 / np.linalg.norm(h)
    if kind == "white":
        x, v = rng.standard_normal(n), 0.05 * rng.standard_normal(n)
    elif kind == "ar1":  # unit power, pole 0.9: eigenvalue spread ~ 19 at 4 taps
        x, v = lfilter([np.sqrt(1 - 0.81)], [1.0, -0.9], rng.standard_normal(n)), 0.05 * rng.standard_normal(n)
    else:  # Laplace input of unit variance, Student-t (3 dof) noise: heavy tails on both
        x, v = rng.laplace(size=n) / np.sqrt(2.0), 0.03 * rng.standard_t(3, n)
    return x, lfilter(h, 1.0, x) + v


def assert_same(f: Any, ref: Any, y: np.ndarray, e: np.ndarray, out: tuple[np.ndarray, ...]) -> None:
    y_ref, e_ref, w_ref = out
    assert np.isfinite(y_ref).all(), "padasip itself must stay finite here"
    assert np.abs(ref.w).max() < 10, "padasip itself must stay bounded here"
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(e, e_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.history, w_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(f.weights, ref.w, rtol=0, atol=1e-10)


CASES = [
    pytest.param(name, k, taps, kind, id=f"{name}-s{k}-L{taps}-{kind}")
    for name in FAMILY
    for k in range(2)
    for taps in (4, 12)
    for kind in ("white", "ar1", "nongauss")
]


@pytest.mark.parametrize(("name", "k", "taps", "kind"), CASES)
def test_equals_padasip(name, k, taps, kind):
    setting = FAMILY[name][2][k]
    x, d = signal(kind, taps)
    f, ref = ours(name, taps, setting, history=True), theirs(name, taps, setting)
    y, e = f.run(x, d=d)
    assert_same(f, ref, y, e, ref.run(d, tapped_delay_line(x, taps)))


@pytest.mark.parametrize("name", FAMILY)
def test_equals_padasip_on_iid_regressors_from_given_weights(name):
    """Regressors that are not a delay line (padasip's general ``x`` matrix), and a nonzero start."""
    rng = np.random.default_rng(5)
    taps, setting = 6, FAMILY[name][2][0]
    u = rng.standard_normal((N, taps))
    d = u @ (0.3 * rng.standard_normal(taps)) + 0.05 * rng.standard_normal(N)
    w0 = 0.1 * rng.standard_normal(taps)
    f, ref = ours(name, taps, setting, history=True, w0=w0), theirs(name, taps, setting, w=w0.copy())
    y, e = f.run_regressors(u, d=d)
    assert_same(f, ref, y, e, ref.run(d, u))


@pytest.mark.parametrize("name", FAMILY)
def test_state_dict_continues_bit_for_bit_and_both_continue_padasip(name):
    taps, setting = 5, FAMILY[name][2][1]
    x, d = signal("ar1", taps, seed=2)
    whole = ours(name, taps, setting)
    y1, _ = whole.run(x[:333], d=d[:333])
    state = whole.state_dict()
    y2, e2 = whole.run(x[333:], d=d[333:])
    loaded = ours(name, taps, setting)
    loaded.load_state_dict(state)
    y3, e3 = loaded.run(x[333:], d=d[333:])
    np.testing.assert_array_equal(y3, y2)
    np.testing.assert_array_equal(e3, e2)
    for key, value in whole.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[key], value, err_msg=key)
    ref = theirs(name, taps, setting)
    y_ref, _, _ = ref.run(d, tapped_delay_line(x, taps))
    np.testing.assert_allclose(np.concatenate([y1, y2]), y_ref, rtol=0, atol=1e-10)
    # the saved state is a copy: neither running on nor mutating it touches the other
    state["weights"][...] = 99.0
    assert np.abs(loaded.weights).max() < 10
    fresh = ours(name, taps, setting)
    fresh.load_state_dict(ours(name, taps, setting).state_dict())  # {"batch": None}: a fresh filter
    assert fresh.state_dict()["batch"] is None


@pytest.mark.parametrize("name", FAMILY)
def test_a_channel_gives_the_same_bits_alone_in_a_batch_and_in_parallel_threads(name):
    taps, setting = 8, dict(FAMILY[name][2][0])
    if "ro" in setting:  # a long run on coloured input: keep the adapted steps from running away
        setting.update(mu=min(setting["mu"], 0.01), ro=1e-6)
    n = _kernels.PARALLEL_WORK // (8 * taps) + 64  # 8 channels: enough work for the parallel kernels
    pairs = [signal(kind, taps, seed=s, n=n) for s in range(4) for kind in ("white", "ar1")]
    x, d = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    batch = ours(name, taps, setting)
    yb, eb = batch.run(x, d=d)
    assert yb.shape == eb.shape == x.shape
    assert batch.weights.shape == (8, taps)
    for c in (0, 5, 7):
        single = ours(name, taps, setting)
        y, e = single.run(x[c], d=d[c])
        np.testing.assert_array_equal(y, yb[c])
        np.testing.assert_array_equal(e, eb[c])
        np.testing.assert_array_equal(single.weights, batch.weights[c])
    small = ours(name, taps, setting)  # 3 channels, short: the serial kernels, a lone last channel
    ys, _ = small.run(x[5:8, :300], d=d[5:8, :300])
    alone = ours(name, taps, setting)
    np.testing.assert_array_equal(alone.run(x[7, :300], d=d[7, :300])[0], ys[2])


@pytest.mark.parametrize("name", FAMILY)
def test_streaming_equals_one_call_and_delay_line_equals_regressors(name):
    taps, setting = 6, FAMILY[name][2][0]
    x, d = signal("white", taps, seed=4)
    whole = ours(name, taps, setting)
    y, _ = whole.run(x, d=d)
    pieces = ours(name, taps, setting)
    outs = [pieces.run(x[a:b], d=d[a:b]) for a, b in ((0, 1), (1, 9), (9, 400), (400, N))]
    # to rounding: the LMS-family kernel fuses an update with the next output, so a call's first output is
    # summed in another order than inside a call; the other filters give the same bits
    np.testing.assert_allclose(np.concatenate([o[0] for o in outs]), y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pieces.weights, whole.weights, rtol=0, atol=1e-12)
    regress = ours(name, taps, setting)
    y2, _ = regress.run_regressors(tapped_delay_line(x, taps), d=d)
    np.testing.assert_allclose(y2, y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FAMILY)
def test_float32_on_request_follows_float64(name):
    taps, setting = 6, FAMILY[name][2][0]
    x, d = signal("white", taps, seed=6)
    f32, f64 = ours(name, taps, setting, dtype="float32"), ours(name, taps, setting)
    y32, _ = f32.run(x, d=d)
    y64, _ = f64.run(x, d=d)
    assert y32.dtype == np.float32
    assert f32.weights.dtype == np.float32
    tensors = [v for v in f32.state_dict().values() if isinstance(v, torch.Tensor)]
    assert tensors
    assert all(v.dtype in (torch.float32, torch.int64) for v in tensors)
    np.testing.assert_allclose(y32, y64, rtol=0, atol=2e-3)


@pytest.mark.parametrize("name", FAMILY)
def test_padasip_argument_order_is_refused_loudly(name):
    taps, setting = 4, FAMILY[name][2][0]
    x, d = signal("white", taps)
    f = ours(name, taps, setting)
    with pytest.raises(TypeError, match=r"run\(x, d=d\).*padasip's run\(d, x\)"):
        f.run(d, x)  # padasip's order: two signals of one shape, formerly accepted and learned wrongly
    with pytest.raises(TypeError, match=r"run_regressors\(u, d=d\).*padasip"):
        f.run_regressors(tapped_delay_line(x, taps), d)
    with pytest.raises(TypeError, match="needs the desired signal as a keyword"):
        f.run(x)
    assert f.state_dict()["batch"] is None  # refused before any work


@pytest.mark.parametrize("name", FAMILY)
def test_non_finite_data_and_state_are_refused_by_name(name):
    taps, setting = 4, FAMILY[name][2][0]
    x, d = signal("white", taps)
    f = ours(name, taps, setting)
    bad = x.copy()
    bad[17] = np.nan
    with pytest.raises(ValueError, match="x has 1 non-finite value"):
        f.run(bad, d=d)
    bad = d.copy()
    bad[3] = np.inf
    with pytest.raises(ValueError, match="d has 1 non-finite value"):
        f.run(x, d=bad)
    u = tapped_delay_line(x, taps)
    u[5, 1] = -np.inf
    with pytest.raises(ValueError, match="u has 1 non-finite value"):
        f.run_regressors(u, d=d)
    assert f.state_dict()["batch"] is None  # nothing started
    f.run(x, d=d)
    state = f.state_dict()
    state["weights"] = state["weights"].clone()
    state["weights"][0, 0] = np.nan
    before = f.state_dict()
    with pytest.raises(ValueError, match=r"state\['weights'\] has 1 non-finite value"):
        f.load_state_dict(state)
    for key, value in f.state_dict().items():  # a refused state leaves the filter as it was
        np.testing.assert_array_equal(value, before[key])
    state = f.state_dict()
    state["tail"] = state["tail"][:, :-1]
    with pytest.raises(ValueError, match=r"state\['tail'\] must have shape"):
        f.load_state_dict(state)
    with pytest.raises(ValueError, match="state must have keys"):
        f.load_state_dict({"batch": (), "weights": np.zeros((1, taps))})


BAD = [
    (lambda: LMF(4, 0.0), "mu"),
    (lambda: LMF(0, 0.1), "taps"),
    (lambda: NLMF(4, eps=0.0), "eps"),
    (lambda: SSLMS(4, -1.0), "mu"),
    (lambda: NSSLMS(4, float("nan")), "mu"),
    (lambda: Llncosh(4, lambd=0.0), "lambd"),
    (lambda: GMCC(4, alpha=0.0), "alpha"),
    (lambda: GMCC(4, lambd=-1.0), "lambd"),
    (lambda: GNGD(4, eps=0.0), "eps"),
    (lambda: GNGD(4, rho=-0.1), "rho"),
    (lambda: VSLMSMathews(4, rho=float("inf")), "rho"),
    (lambda: VSLMSBenveniste(4, mu=0.0), "mu"),
    (lambda: VSLMSAng(4, a=1.0), r"a must lie in \[0.0, 1.0\)"),
    (lambda: AP(4, 2.0), r"mu must lie in \(0.0, 2.0\)"),
    (lambda: AP(4, 0.5, order=0), "order"),
    (lambda: AP(4, 0.5, eps=0.0), "eps"),
    (lambda: OCNLMS(4, mem=1), "mem must be an integer >= 2"),
    (lambda: OCNLMS(4, mem=2.5), "mem must be an integer"),
    (lambda: LMF(4, 0.1, w0=[1.0, 2.0]), "w0"),
    (lambda: AP(4, 0.5, dtype="int8"), "dtype"),
]


@pytest.mark.parametrize(("call", "match"), BAD, ids=[f"{i}-{m[:12]}" for i, (_, m) in enumerate(BAD)])
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_ocnlms_position_in_a_state_is_checked():
    f = OCNLMS(3, mem=4)
    f.run(np.ones(10), d=np.ones(10))
    state = f.state_dict()
    state["position"] = np.array([4, 1])
    with pytest.raises(ValueError, match=r"state\['position'\] must be"):
        f.load_state_dict(state)


def test_divergence_raises_with_the_filter_and_a_hint():
    x, d = signal("white", 8)
    with pytest.raises(FloatingPointError, match=r"LMF weights became NaN or Inf.*lower mu"):
        LMF(8, 5.0).run(x, d=10 * d)
    with pytest.raises(FloatingPointError, match=r"VSLMS_Mathews .* became NaN or Inf.*rho"):
        VSLMSMathews(8, 0.1, rho=50.0).run(x, d=10 * d)


def test_gmcc_at_zero_error_takes_no_step_where_padasip_gives_nan():
    """``|e|^(alpha-1) sign(e)`` at ``e = 0`` with ``alpha < 1``: padasip multiplies inf by 0."""
    f = GMCC(2, 0.1, lambd=1.0, alpha=0.5)
    f.run(np.ones(5), d=np.zeros(5))
    np.testing.assert_array_equal(f.weights, 0.0)
