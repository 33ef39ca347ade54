"""What every filter promises, each test parametrized over all of them (padasip's family, LMS, NLMS, RLS, Kalman):

* its state through ``torch.save`` / ``torch.load(weights_only=True)`` continues bit for bit; a corrupted,
  truncated or mismatched state is refused clearly, leaving the filter as it was;
* bad data for ``run`` and ``run_regressors`` is refused before any work with an error naming the argument; the
  filter's state and the caller's arrays are left as they were.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

from noisygrad.dsp import (
    AP,
    GMCC,
    GNGD,
    LMF,
    LMS,
    NLMF,
    NLMS,
    NSSLMS,
    OCNLMS,
    RLS,
    SSLMS,
    Kalman,
    Llncosh,
    VSLMSAng,
    VSLMSBenveniste,
    VSLMSMathews,
    tapped_delay_line,
)
from noisygrad.loop_checkpoint import CheckpointError, LegacyCheckpointWarning

TAPS = 5


def _kalman(**changes: Any) -> Kalman:
    dt = 0.1
    settings = {
        "F": np.array([[1.0, dt], [0.0, 1.0]]),
        "H": np.array([[1.0, 0.0]]),
        "Q": 1e-3 * np.eye(2),
        "R": np.array([[0.5]]),
        "x0": np.zeros((2, 2)),
        "P0": np.eye(2),
        **changes,
    }
    return Kalman(**settings)


FILTERS: dict[str, Callable[[], Any]] = {
    "LMS": lambda: LMS(TAPS, 0.02),
    "NLMS": lambda: NLMS(TAPS, 0.3),
    "RLS": lambda: RLS(TAPS, 0.995),
    "LMF": lambda: LMF(TAPS, 0.01),
    "NLMF": lambda: NLMF(TAPS, 0.05),
    "SSLMS": lambda: SSLMS(TAPS, 0.001),
    "NSSLMS": lambda: NSSLMS(TAPS, 0.01),
    "Llncosh": lambda: Llncosh(TAPS, 0.02),
    "GMCC": lambda: GMCC(TAPS, 0.02),
    "GNGD": lambda: GNGD(TAPS, 0.5),
    "VSLMSMathews": lambda: VSLMSMathews(TAPS, 0.005, rho=1e-6),
    "VSLMSBenveniste": lambda: VSLMSBenveniste(TAPS, 0.005, rho=1e-6),
    "VSLMSAng": lambda: VSLMSAng(TAPS, 0.005, rho=1e-6),
    "AP": lambda: AP(TAPS, 0.3, order=3),
    "OCNLMS": lambda: OCNLMS(TAPS, 0.3, mem=7),
    "Kalman": _kalman,
}


def _signals(seed: int = 0, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = lfilter([1.0], [1.0, -0.5], rng.standard_normal((2, n)), axis=1)  # coloured, two channels
    d = lfilter([0.5, -0.3, 0.2, 0.1, 0.05], 1.0, x, axis=1) + 0.05 * rng.standard_normal((2, n))
    return x, d


def _advance(f: Any, x: np.ndarray, d: np.ndarray) -> list[np.ndarray]:
    """Run ``f`` on a piece of the signals; what it returns and the state it ends in, for comparing bits."""
    if isinstance(f, Kalman):
        res = f.batch_filter(d.T[:, :, None])  # (N, 2 filters, 1 measurement)
        return [res.means, res.covariances, res.log_likelihoods, np.asarray(f.log_likelihood)]
    y, e = f.run(x, d=d)
    return [y, e, f.weights]


def _through_torch(state: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _snapshot(f: Any) -> dict[str, Any]:
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in f.state_dict().items()}


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("name", FILTERS)
def test_state_survives_torch_load_weights_only_and_continues_bit_for_bit(name):
    make = FILTERS[name]
    x, d = _signals()
    whole = make()
    _advance(whole, x[:, :600], d[:, :600])
    saved = _through_torch(whole.state_dict())
    expected = _advance(whole, x[:, 600:], d[:, 600:])
    loaded = make()
    _advance(loaded, x[:, :50], d[:, :50])  # a filter elsewhere in its run: loading replaces all of it
    loaded.load_state_dict(saved)
    got = _advance(loaded, x[:, 600:], d[:, 600:])
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(b, a)
    _assert_same_state(loaded.state_dict(), whole.state_dict())
    if name == "Kalman":
        twin = Kalman.from_state_dict(saved)
        np.testing.assert_array_equal(_advance(twin, x[:, 600:], d[:, 600:])[0], expected[0])


@pytest.mark.parametrize("name", FILTERS)
def test_corrupted_truncated_and_mismatched_states_are_refused_leaving_the_filter_as_it_was(name):
    make = FILTERS[name]
    x, d = _signals(seed=1, n=300)
    f = make()
    _advance(f, x, d)
    good = f.state_dict()
    before = _snapshot(f)
    array_key = next(k for k, v in good.items() if isinstance(v, torch.Tensor) and v.numel() and v.is_floating_point())

    flipped = _snapshot(f)  # one flipped bit in the lowest place of a float: still finite, still the same shape
    flat = flipped[array_key].view(-1)
    bits = flat.view(torch.int64) if flat.dtype == torch.float64 else flat.view(torch.int32)
    bits[0] ^= 1
    truncated = {k: v for k, v in good.items() if k != array_key}
    no_checksum = {k: v for k, v in good.items() if k != "checksum"}
    other_kind = FILTERS["RLS" if name != "RLS" else "LMS"]().state_dict()
    newer = {**good, "version": 99}
    cases: list[tuple[Any, type[Exception], str]] = [
        (flipped, CheckpointError, "checksum mismatch"),
        (truncated, ValueError, array_key if name != "Kalman" else "missing"),
        (no_checksum, CheckpointError, "lacks 'checksum'.*truncated"),
        (other_kind, CheckpointError, "written by a '(RLS|LMS)' filter"),
        (newer, CheckpointError, "newer noisygrad"),
        ({**good, "format": "noisygrad.minimize"}, CheckpointError, "not a noisygrad.dsp filter state"),
        ("state.pt", TypeError, "torch.load"),
        ([("batch", None)], TypeError, "state must be a dict"),
    ]
    for state, error, match in cases:
        with pytest.raises(error, match=match):
            f.load_state_dict(state)
        _assert_same_state(f.state_dict(), before)


@pytest.mark.parametrize("name", [n for n in FILTERS if n != "Kalman"])
def test_a_state_of_other_settings_is_refused_naming_them(name):
    f = FILTERS[name]()
    x, d = _signals(seed=2, n=100)
    f.run(x, d=d)
    state = f.state_dict()
    other = type(f)(TAPS + 1, **{k: v for k, v in state["settings"].items() if k not in ("taps", "dtype")})
    with pytest.raises(CheckpointError, match=r"other settings \(taps: saved 5, here 6\)"):
        other.load_state_dict(state)
    f32 = type(f)(TAPS, **{k: v for k, v in state["settings"].items() if k not in ("taps", "dtype")}, dtype="float32")
    with pytest.raises(CheckpointError, match=r"dtype: saved 'float64', here 'float32'"):
        f32.load_state_dict(state)


def test_kalman_state_of_another_batch_or_form_is_refused():
    x, d = _signals(seed=3, n=50)
    f = _kalman()
    _advance(f, x, d)
    with pytest.raises(ValueError, match=r"\(form, dtype, batch\)"):
        _kalman(x0=np.zeros(2)).load_state_dict(f.state_dict())
    with pytest.raises(ValueError, match=r"\(form, dtype, batch\)"):
        _kalman(form="sqrt").load_state_dict(f.state_dict())


def test_a_hand_assembled_state_loads_with_a_warning_after_the_entry_checks():
    f = LMS(TAPS, 0.02)
    x, d = _signals(seed=4, n=100)
    f.run(x, d=d)
    state = {"batch": (2,), "weights": np.ones((2, TAPS)), "tail": np.zeros((2, TAPS - 1))}
    with pytest.warns(LegacyCheckpointWarning, match="assembled by hand"):
        f.load_state_dict(state)
    np.testing.assert_array_equal(f.weights, np.ones((2, TAPS)))
    with pytest.raises(ValueError, match=r"state\['weights'\] has 1 non-finite"):
        f.load_state_dict({**state, "weights": np.array([[np.nan] + [0.0] * (TAPS - 1)] * 1 + [[0.0] * TAPS])})
    with pytest.raises(TypeError, match=r"state\['weights'\] must have dtype float64"):
        f.load_state_dict({**state, "weights": np.ones((2, TAPS), np.float32)})


# ---------------------------------------------------------------- bad data

ADAPTIVE = {name: make for name, make in FILTERS.items() if name != "Kalman"}
N = 64
NAN, INF = float("nan"), float("inf")


def _data(channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((channels, N)), rng.standard_normal((channels, N))


def _with(a: np.ndarray, index: tuple[int, ...], value: float) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


x0, d0 = _data()
u0 = tapped_delay_line(x0, TAPS)

# (id, call, error, the argument the message must name)
CASES: list[tuple[str, Callable[[Any], Any], type[Exception], str]] = [
    ("x-nan", lambda f: f.run(_with(x0, (1, 5), NAN), d=d0), ValueError, r"\bx has 1 non-finite"),
    ("x-inf", lambda f: f.run(_with(x0, (0, 0), -INF), d=d0), ValueError, r"\bx has 1 non-finite"),
    ("d-nan", lambda f: f.run(x0, d=_with(d0, (0, 63), NAN)), ValueError, r"\bd has 1 non-finite"),
    ("d-short", lambda f: f.run(x0, d=d0[:, :-1]), ValueError, r"x and d must have the same shape"),
    ("x-3d", lambda f: f.run(x0[None], d=d0[None]), ValueError, r"\bx must have 1 or 2 dimensions"),
    ("x-text", lambda f: f.run("signal", d=d0), TypeError, r"\bx\b"),
    ("x-complex", lambda f: f.run(x0 + 1j, d=d0), TypeError, r"\bx must hold real numbers"),
    ("x-empty", lambda f: f.run(x0[:, :0], d=d0[:, :0]), ValueError, r"x and d must hold at least one sample"),
    ("d-positional", lambda f: f.run(d0, x0), TypeError, r"run\(x, d=d\).*padasip"),
    ("d-missing", lambda f: f.run(x0), TypeError, r"desired signal as a keyword"),
    ("u-nan", lambda f: f.run_regressors(_with(u0, (0, 3, 1), NAN), d=d0), ValueError, r"\bu has 1 non-finite"),
    ("u-taps", lambda f: f.run_regressors(u0[..., :-1], d=d0), ValueError, r"\bu must have shape d.shape \+ \(taps,\)"),
    ("u-d-inf", lambda f: f.run_regressors(u0, d=_with(d0, (1, 1), INF)), ValueError, r"\bd has 1 non-finite"),
    ("batch-changed", lambda f: f.run(x0[:1], d=d0[:1]), ValueError, r"batch shape \(2,\).*reset\(\)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("name", ADAPTIVE)
def test_bad_data_is_refused_naming_the_argument_before_any_work(name, case):
    _, call, error, match = case
    f = ADAPTIVE[name]()
    f.run(x0[:, :10], d=d0[:, :10])  # a started filter: a refused call must not move it
    before = f.state_dict()
    inputs = {k: v.copy() for k, v in (("x", x0), ("d", d0), ("u", u0))}
    with pytest.raises(error, match=match):
        call(f)
    after = f.state_dict()
    for key, value in before.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(after[key], value), key
        else:
            assert after[key] == value, key
    for key, value in (("x", x0), ("d", d0), ("u", u0)):
        np.testing.assert_array_equal(value, inputs[key])


# ---------------------------------------------------------------- float32 channels

GRADIENT = ["LMS", "NLMS", "LMF", "NLMF", "SSLMS", "NSSLMS", "Llncosh", "GMCC"]


@pytest.mark.parametrize("name", GRADIENT)
def test_float32_channels_give_the_same_bits_alone_in_any_batch_and_in_threads(name):
    """A float32 channel's results must not depend on its place in the batch (first or second of a pair, the
    lone last channel), the batch size or the threads."""
    import numba

    from noisygrad.dsp import _kernels

    settings = FILTERS[name]().state_dict()["settings"]
    make = lambda: type(FILTERS[name]())(**{**settings, "dtype": "float32"})  # noqa: E731
    channels = 11  # one group of 8 and a partial group of 3
    n = _kernels.PARALLEL_WORK // (channels * TAPS) + 50  # enough work for the parallel kernel
    rng = np.random.default_rng(7)
    x = (0.5 * rng.standard_normal((channels, n))).astype(np.float32)
    d = (0.5 * rng.standard_normal((channels, n))).astype(np.float32)
    alone = []
    for c in range(channels):
        f = make()
        alone.append(f.run(x[c], d=d[c])[0])
    previous = numba.get_num_threads()
    try:
        for threads in {1, numba.config.NUMBA_NUM_THREADS}:
            numba.set_num_threads(threads)
            batch = make()
            y, _ = batch.run(x, d=d)
            for c in (0, 7, 8, 10):
                np.testing.assert_array_equal(y[c], alone[c], err_msg=f"channel {c}, {threads} threads")
    finally:
        numba.set_num_threads(previous)
