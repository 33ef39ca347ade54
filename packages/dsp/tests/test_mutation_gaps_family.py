"""padasip's filter family (LMF ... GMCC, the adapted-step filters, AP, OCNLMS): behaviours mutation testing found
unchecked (tools/mutation.py, issue 18).

Documented defaults (padasip's, run beside padasip's own default filter), ``history`` off unless asked, the
divergence error naming the filter, the state dict's key names (a saved checkpoint's format), the closed
ranges of ``rho``, ``a``, ``mu`` and ``mem`` at their ends, the adapted step as a per-channel copy, and
OCNLMS's checked memory position. All comparisons are exact or at rounding level (fixed seeds, no statistics).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import padasip as pa
import pytest

from noisygrad.dsp import LMS, NLMS, tapped_delay_line
from noisygrad.dsp._state import SCHEMA_KEYS
from noisygrad.dsp.adapted_step import GNGD, VSLMSAng, VSLMSBenveniste, VSLMSMathews
from noisygrad.dsp.affine_projection import AP
from noisygrad.dsp.lms_family import GMCC, LMF, NLMF, NSSLMS, SSLMS, Llncosh
from noisygrad.dsp.online_centred import OCNLMS

TAPS = 4


def _signal(n: int = 300, seed: int = 0, scale: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Small input (power ``scale^2``): padasip's default steps (``mu = 1`` for VSLMS and GNGD) stay stable."""
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal(n)
    h = np.array([0.5, -0.3, 0.2, 0.1])
    d = np.convolve(x, h)[:n] + 0.01 * scale * rng.standard_normal(n)
    return x, d


# ours built with nothing but its required arguments, beside padasip's default filter (zero start)
DEFAULTS: dict[str, tuple[Any, Any]] = {
    "NLMF": (lambda: NLMF(TAPS), lambda: pa.filters.FilterNLMF(TAPS, w="zeros")),
    "NSSLMS": (lambda: NSSLMS(TAPS), lambda: pa.filters.FilterNSSLMS(TAPS, w="zeros")),
    "Llncosh": (lambda: Llncosh(TAPS), lambda: pa.filters.FilterLlncosh(TAPS, w="zeros")),
    "GMCC": (lambda: GMCC(TAPS), lambda: pa.filters.FilterGMCC(TAPS, w="zeros")),
    "GNGD": (lambda: GNGD(TAPS), lambda: pa.filters.FilterGNGD(TAPS, w="zeros")),
    "VSLMS_Mathews": (lambda: VSLMSMathews(TAPS), lambda: pa.filters.FilterVSLMS_Mathews(TAPS, w="zeros")),
    "VSLMS_Benveniste": (
        lambda: VSLMSBenveniste(TAPS),
        lambda: pa.filters.FilterVSLMS_Benveniste(TAPS, w="zeros"),
    ),
    "VSLMS_Ang": (lambda: VSLMSAng(TAPS), lambda: pa.filters.FilterVSLMS_Ang(TAPS, w="zeros")),
    "AP": (lambda: AP(TAPS, 0.5), lambda: pa.filters.FilterAP(TAPS, mu=0.5, w="zeros")),
    "OCNLMS": (lambda: OCNLMS(TAPS), lambda: pa.filters.FilterOCNLMS(TAPS, w="zeros")),
}


@pytest.mark.parametrize("name", DEFAULTS)
def test_documented_defaults_are_padasips(name):
    make, make_ref = DEFAULTS[name]
    x, d = _signal(seed=1)
    f, ref = make(), make_ref()
    y, e = f.run(x, d=d)
    y_ref, e_ref, _ = ref.run(d, tapped_delay_line(x, TAPS))
    assert np.isfinite(y_ref).all()
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(e, e_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(f.weights, ref.w, rtol=0, atol=1e-12)
    assert np.abs(f.weights).max() > 1e-6  # the filter moved: its settings mattered


# one of each class, with settings where the recursion runs away on unit-size data (``scale`` it up)
DIVERGING: dict[str, tuple[Any, float]] = {
    "LMF": (lambda: LMF(TAPS, 1e300), 1.0),
    "NLMF": (lambda: NLMF(TAPS, 1e300), 1.0),
    "SSLMS": (lambda: SSLMS(TAPS, 1e308), 1.0),
    "NSSLMS": (lambda: NSSLMS(TAPS, 1e308, eps=1e-300), 1.0),
    "Llncosh": (lambda: Llncosh(TAPS, 1e308), 1.0),
    "GMCC": (lambda: GMCC(TAPS, 1e300, lambd=1e-300, alpha=2.0), 1e150),
    "VSLMS_Mathews": (lambda: VSLMSMathews(TAPS, 0.1, rho=1e300), 1.0),
    "VSLMS_Benveniste": (lambda: VSLMSBenveniste(TAPS, 0.1, rho=1e300), 1.0),
    "VSLMS_Ang": (lambda: VSLMSAng(TAPS, 0.1, rho=1e300), 1.0),
    "GNGD": (lambda: GNGD(TAPS, 1.0, rho=1e300), 1e10),
    "AP": (lambda: AP(TAPS, 1.0, eps=1e-300), 1.0),
    "OCNLMS": (lambda: OCNLMS(TAPS, 1e308, eps=1e-300), 1.0),
}


@pytest.mark.parametrize("name", DIVERGING)
def test_a_divergence_names_the_filter(name):
    make, scale = DIVERGING[name]
    rng = np.random.default_rng(0)
    x, d = scale * rng.standard_normal(64), scale * rng.standard_normal(64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warnings on the way to Inf
        with pytest.raises(FloatingPointError, match=rf"^{name} weights became NaN or Inf"):
            make().run(x, d=d)


ALL = {**{k: v[0] for k, v in DEFAULTS.items()}, "LMF": lambda: LMF(TAPS, 0.01), "SSLMS": lambda: SSLMS(TAPS, 0.01)}


@pytest.mark.parametrize("name", ALL)
def test_history_is_kept_only_when_asked(name):
    x, d = _signal(n=20)
    f = ALL[name]()
    f.run(x, d=d)
    assert f.history is None
    assert f.record_history is False


# the state dict's keys beyond LMS's ``batch``, ``weights`` and ``tail``: a saved checkpoint's format
STATE_KEYS = {
    "LMF": set(),
    "SSLMS": set(),
    "NLMF": set(),
    "NSSLMS": set(),
    "Llncosh": set(),
    "GMCC": set(),
    "GNGD": {"last_e", "last_u", "step", "fi"},
    "VSLMS_Mathews": {"last_e", "last_u", "step", "fi"},
    "VSLMS_Benveniste": {"last_e", "last_u", "step", "fi"},
    "VSLMS_Ang": {"last_e", "last_u", "step", "fi"},
    "AP": {"regressors", "desired"},
    "OCNLMS": {"memory_u", "memory_d", "sum_u", "sum_d", "position"},
}


@pytest.mark.parametrize("name", STATE_KEYS)
def test_state_dict_keys_are_the_documented_ones(name):
    x, d = _signal(n=20)
    f = ALL[name]()
    f.run(x, d=d)
    keys = set(f.state_dict()) - set(SCHEMA_KEYS)
    assert keys == {"batch", "weights", "tail"} | STATE_KEYS[name]


@pytest.mark.parametrize("cls", [VSLMSMathews, VSLMSBenveniste, VSLMSAng])
def test_rho_zero_is_lms_with_the_initial_step(cls):
    """``rho = 0`` is allowed (the closed end of ``rho >= 0``) and is LMS: the step never moves."""
    x, d = _signal(seed=2, scale=1.0)
    f, ref = cls(TAPS, 0.05, rho=0.0), LMS(TAPS, 0.05)
    y, _ = f.run(x, d=d)
    y_ref, _ = ref.run(x, d=d)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(f.step, 0.05)


def test_gngd_with_rho_zero_is_nlms_with_its_eps():
    x, d = _signal(seed=3, scale=1.0)
    f, ref = GNGD(TAPS, 0.5, eps=0.3, rho=0.0), NLMS(TAPS, 0.5, eps=0.3)
    y, _ = f.run(x, d=d)
    np.testing.assert_allclose(y, ref.run(x, d=d)[0], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(f.step, 0.3)


@pytest.mark.parametrize("cls", [VSLMSMathews, VSLMSBenveniste, VSLMSAng, GNGD])
def test_the_adapted_step_is_a_per_channel_copy(cls):
    f = cls(TAPS, 0.05, rho=1e-5)
    initial = f.step  # before any run: the initial step (GNGD: eps, default 1)
    assert initial.shape == ()
    assert initial == (1.0 if cls is GNGD else 0.05)
    x, d = _signal(seed=4, scale=1.0)
    f.run(x, d=d)
    after = f.step
    assert after.shape == ()
    assert after != initial  # it adapted
    after[...] = 7.0  # a copy: writing into it changes nothing
    assert f.step != 7.0
    batch = cls(TAPS, 0.05, rho=1e-5)
    batch.run(np.stack([x, 2 * x, x]), d=np.stack([d, d, d]))
    steps = batch.step
    assert steps.shape == (3,)
    np.testing.assert_allclose(steps[0], f.step, rtol=0, atol=1e-15)
    assert steps[0] == steps[2] != steps[1]


def test_ang_memory_a_zero_is_allowed_and_differs_from_the_default():
    """``a`` lies in ``[0, 1)``: 0 (no memory: Benveniste's derivative replaced by the last ``e u``) is allowed."""
    x, d = _signal(seed=5, scale=1.0)
    y0, _ = VSLMSAng(TAPS, 0.03, rho=1e-4, a=0.0).run(x, d=d)
    y_ref, _, _ = pa.filters.FilterVSLMS_Ang(TAPS, mu=0.03, ro=1e-4, a=0.0, w="zeros").run(
        d, tapped_delay_line(x, TAPS)
    )
    np.testing.assert_allclose(y0, y_ref, rtol=0, atol=1e-12)
    y95, _ = VSLMSAng(TAPS, 0.03, rho=1e-4).run(x, d=d)
    assert np.abs(y95 - y0).max() > 1e-6


def test_ap_mu_range_is_open_at_both_ends():
    for mu in (0.0, 2.0, -0.1):
        with pytest.raises(ValueError, match=r"mu must lie in \(0.0, 2.0\)"):
            AP(TAPS, mu)
    for mu in (1e-9, 1.999):
        assert AP(TAPS, mu).mu == mu


def test_ocnlms_smallest_memory_of_two_is_padasips():
    x, d = _signal(seed=6, scale=1.0)
    f = OCNLMS(TAPS, 0.1, eps=1.0, mem=2)
    y, _ = f.run(x, d=d)
    y_ref, _, _ = pa.filters.FilterOCNLMS(TAPS, mu=0.1, eps=1.0, mem=2, w="zeros").run(d, tapped_delay_line(x, TAPS))
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-12)


def _hand_made(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The state's entries without its schema (as a user assembles one), with ``changes``."""
    out = {k: v for k, v in state.items() if k not in SCHEMA_KEYS}
    out.update(changes)
    return out


def test_ocnlms_position_is_index_and_filled_flag_and_both_ends_are_checked():
    mem = 3
    f = OCNLMS(TAPS, 0.1, mem=mem)
    x, d = _signal(n=1, seed=7)
    f.run(x, d=d)
    # two reads of the means per sample, each advancing the write position; not yet filled
    assert f.state_dict()["position"].tolist() == [2, 0]
    f.run(x, d=d)
    assert f.state_dict()["position"].tolist() == [1, 1]
    state = f.state_dict()
    for pos in ([0, 0], [0, 1], [mem - 1, 1], [mem - 1, 0]):
        g = OCNLMS(TAPS, 0.1, mem=mem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hand-assembled state (no checksum) loads with a warning
            g.load_state_dict(_hand_made(state, position=np.array(pos)))
        assert g.state_dict()["position"].tolist() == pos
    for pos in ([mem, 0], [-1, 1], [0, 2], [0, -1], [mem, 2]):
        g = OCNLMS(TAPS, 0.1, mem=mem)
        with pytest.raises(ValueError, match=r"state\['position'\] must be"):
            g.load_state_dict(_hand_made(state, position=np.array(pos)))
