"""The machinery every adaptive filter shares: argument checks, delay line, batch, history, state dict.

:class:`_AdaptiveFilter` holds the weights ``(C, taps)`` of ``C`` channels and each channel's delay line (the
last ``taps - 1`` input samples), checks the data of :meth:`~_AdaptiveFilter.run` and
:meth:`~_AdaptiveFilter.run_regressors` (types, shapes, NaN/Inf; ``d`` keyword-only) before any work, and hands
C-contiguous arrays to a compiled kernel. :class:`_GradientFilter` is the LMS family on the shared LMS kernels.
A filter module subclasses one of them and supplies the kernel call and its settings.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from noisygrad.checks import as_array, as_dtype, check_positive_int

from . import _kernels, _state

_BLOCK_ELEMENTS = 1 << 20  # regressor entries (channels x samples x taps) materialised at a time from a delay line
_SIGNAL_BLOCK = 1 << 16  # samples per channel the LMS family's delay-line kernel runs per call


def _refuse_positional(owner: str, method: str, first: str, swapped: tuple[Any, ...], d: Any) -> None:
    """``d`` is keyword-only; a second positional argument is refused with the reason (padasip's order)."""
    if swapped:
        raise TypeError(
            f"{owner}.{method}() takes the desired signal as a keyword: {method}({first}, d=d). A second positional "
            f"argument is refused because padasip's run(d, x) takes the two in the opposite order, and signals of "
            "the same shape would otherwise be accepted either way and learn a wrong filter"
        )
    if d is None:
        raise TypeError(f"{owner}.{method}() needs the desired signal as a keyword: {method}({first}, d=d)")


def _as_data(name: str, value: Any, dtype: Any, ndim: tuple[int, ...]) -> np.ndarray:
    """``value`` as a C-contiguous ``dtype`` array (the caller's own when it already is one: read only).

    Wrong types or dimensions go to :func:`noisygrad.checks.as_array` for its message; finiteness is left to
    the one pass of :func:`_row_power`, so good data is not scanned twice.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype.kind not in "fiu" or arr.ndim not in ndim:
        return as_array(name, value, dtype, ndim=ndim)  # raises, naming the argument and what is allowed
    return np.ascontiguousarray(arr, dtype=dtype)


def _row_power(name: str, value: np.ndarray, rows: np.ndarray) -> float:
    """The largest sum of squares over the rows of ``rows`` (a reshaped ``value``); NaN or Inf raises, naming
    ``name``. (A non-finite sum of finite values is an overflow of the squares: the power is then infinite.)"""
    largest, finite = _kernels.row_power(rows)
    if not finite:
        as_array(name, value, value.dtype.type, ndim=(value.ndim,))  # raises, counting the non-finite values
    return largest


class _AdaptiveFilter:
    """Shared machinery: weights, delay line, batch shape, history, dtype, state dict, argument checks.

    A subclass sets the kernel: :meth:`_regressor_kernel` (explicit regressors; :meth:`run` then feeds it the
    delay line block by block) and optionally :meth:`_signal_kernel` (the delay line directly). Its recursion
    state beyond the weights and delay line is named in ``_STATE`` (``state_dict`` key -> attribute, arrays
    with a leading channel axis allocated by :meth:`_start_extra`).
    """

    name = "filter"
    _STATE: ClassVar[dict[str, str]] = {"weights": "_w", "tail": "_tail"}

    def __init__(self, taps: int, *, w0: Any = None, dtype: Any = np.float64, history: bool = False) -> None:
        self.taps = check_positive_int("taps", taps)
        self.dtype = as_dtype(dtype)
        self.record_history = bool(history)
        self._w0 = None
        if w0 is not None:
            self._w0 = as_array("w0", w0, self.dtype, ndim=(1, 2), copy=True)
            if self._w0.shape[-1] != self.taps:
                raise ValueError(f"w0 must have {self.taps} (taps) entries on its last axis, got {self._w0.shape}")
        self.reset()

    def reset(self) -> None:
        """Forget everything learned: weights back to ``w0`` (or zeros), empty delay line, no history."""
        self._batch: tuple[int, ...] | None = None
        self._w: np.ndarray | None = None
        self._tail: np.ndarray | None = None
        self.history: np.ndarray | None = None
        """A-priori weights of every sample of the last run, ``(..., N, taps)``; only with ``history=True``."""
        self._reset_extra()

    def _reset_extra(self) -> None:
        pass

    @property
    def weights(self) -> np.ndarray:
        """The current weights, shape ``(taps,)`` or ``(B, taps)`` (a copy)."""
        if self._w is None:
            return np.zeros(self.taps, self.dtype) if self._w0 is None else self._w0.copy()
        return self._w.reshape((*(self._batch or ()), self.taps)).copy()

    def run(self, x: Any, *positional: Any, d: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``x`` towards ``d`` (keyword-only; same shape, ``(N,)`` or ``(B, N)``); returns ``(y, e)``.

        ``y`` (a-priori outputs) and ``e = d - y`` are shaped like ``x``. The delay line continues from the
        previous call, so a signal fed in pieces gives the outputs of feeding it whole.
        """
        _refuse_positional(type(self).__name__, "run", "x", positional, d)
        xa = _as_data("x", x, self.dtype, (1, 2))
        da = _as_data("d", d, self.dtype, (1, 2))
        if xa.shape != da.shape:
            raise ValueError(f"x and d must have the same shape, (N,) or (B, N); got x {xa.shape} and d {da.shape}")
        n = _check_length(xa.shape[-1])
        rows = xa.shape[0] if xa.ndim == 2 else 1
        x2, d2 = xa.reshape(rows, n), da.reshape(rows, n)
        power = _row_power("x", xa, x2)
        _row_power("d", da, d2)
        channels = self._start(xa.shape[:-1])
        if self._has_step_bound:
            self._warn_if_unstable(power * (self.taps / n))
        y, e, hist = self._outputs(channels, n)
        self._signal_kernel(x2, d2, y, e, hist)
        return self._finish(xa.shape, y, e, hist)

    def run_regressors(self, u: Any, *positional: Any, d: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Adapt on explicit regressors ``u`` of shape ``(N, taps)`` or ``(B, N, taps)`` towards ``d``
        (keyword-only, ``(N,)`` or ``(B, N)``).

        For regressors that are not a delay line (array processing, system identification with i.i.d.
        inputs) and for padasip's regressor matrices: padasip's ``f.run(d, X)`` is ``run_regressors(X, d=d)``.
        The filter's own delay line is left untouched.
        """
        _refuse_positional(type(self).__name__, "run_regressors", "u", positional, d)
        u = as_array("u", u, self.dtype, ndim=(2, 3))
        d = as_array("d", d, self.dtype, ndim=(1, 2))
        if u.shape != (*d.shape, self.taps):
            raise ValueError(
                f"u must have shape d.shape + (taps,) = {(*d.shape, self.taps)} (one regressor per sample of d), "
                f"got u {u.shape} and d {d.shape}"
            )
        n = _check_length(d.shape[-1])
        channels = self._start(d.shape[:-1])
        u3 = u.reshape(channels, n, self.taps)
        if self._has_step_bound:
            self._warn_if_unstable(float(np.einsum("bnl,bnl->b", u3, u3).max()) / n)
        y, e, hist = self._outputs(channels, n)
        self._regressor_kernel(u3, d.reshape(channels, n), y, e, hist)
        return self._finish(d.shape, y, e, hist)

    # -- state -----------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything the recursion carries, as copies that ``torch.load(..., weights_only=True)`` restores.

        ``batch`` is ``None`` before the first run, else the batch shape; then one tensor per state
        (``weights`` ``(C, taps)``, ``tail`` ``(C, taps - 1)`` the delay line, and the filter's own, e.g. RLS's
        ``P``), plus the schema of :mod:`~noisygrad.dsp._state` (format, version, kind, settings, checksum).
        Settings (``mu``, ``taps``, ...) are recorded, not restored: load into a filter built with the same ones.
        """
        entries: dict[str, Any] = {"batch": self._batch}
        if self._batch is not None:
            for key, attr in self._STATE.items():
                entries[key] = getattr(self, attr)
        return _state.pack(type(self).__name__, self._settings(), entries)

    def _settings(self) -> dict[str, Any]:
        """The constructor's settings that shape the recursion, as plain Python values."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if key.startswith("_") or key in ("history", "record_history"):
                continue
            if key == "dtype":
                value = np.dtype(value).name
            elif isinstance(value, np.generic):
                value = value.item()
            out[key] = value
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state`` (from :meth:`state_dict`, or ``torch.load`` of a saved one): the next run gives
        the saved filter's results bit for bit. Kind, settings, keys, shapes, dtypes, finiteness, the filter's
        invariants and the checksum are checked before anything is taken (a refused state leaves the filter as
        it was); arrays are copied."""
        entries, schema = _state.unpack(state, type(self).__name__, self._settings())
        if "batch" not in entries:
            raise ValueError(f"state must have a 'batch' entry (from state_dict()), got keys {sorted(entries)}")
        if entries["batch"] is None:
            if set(entries) != {"batch"}:
                raise ValueError(f"state with batch None must have only that entry, got {sorted(entries)}")
            _state.verify(state, schema)
            self.reset()
            return
        keys = {"batch", *self._STATE}
        if set(entries) != keys:
            raise ValueError(f"state must have keys {sorted(keys)} for {type(self).__name__}, got {sorted(entries)}")
        batch = entries["batch"]
        if not isinstance(batch, tuple) or len(batch) > 1 or not all(isinstance(b, Integral) for b in batch):
            raise ValueError(f"state['batch'] must be () or (B,) with B > 0, got {batch!r}")
        batch = tuple(int(b) for b in batch)
        if any(b <= 0 for b in batch):
            raise ValueError(f"state['batch'] must be () or (B,) with B > 0, got {batch!r}")
        fresh = type(self).__new__(type(self))  # shapes and dtypes of a started filter, to check against
        fresh.__dict__.update(self.__dict__)
        fresh.reset()
        fresh._start(batch)
        taken = {}
        for key, attr in self._STATE.items():
            like = getattr(fresh, attr)
            value = np.asarray(entries[key])
            if value.dtype != like.dtype:
                raise TypeError(f"state[{key!r}] must have dtype {like.dtype} (this filter's), got {value.dtype}")
            if like.dtype.kind == "f":
                value = as_array(f"state[{key!r}]", value, like.dtype.type, ndim=(like.ndim,), copy=True)
            elif value.ndim != like.ndim:
                raise ValueError(f"state[{key!r}] must have {like.ndim} dimensions, got shape {value.shape}")
            else:
                value = np.array(value, copy=True)
            if value.shape != like.shape:
                raise ValueError(f"state[{key!r}] must have shape {like.shape} for batch {batch}, got {value.shape}")
            taken[attr] = value
        self._check_state(taken)
        _state.verify(state, schema)
        self.reset()
        self._start(batch)
        for attr, value in taken.items():
            setattr(self, attr, value)

    # -- internals -----------------------------------------------------------------------------------

    def _start(self, batch: tuple[int, ...]) -> int:
        channels = batch[0] if batch else 1
        if self._batch is None:
            if self._w0 is not None and self._w0.ndim == 2 and self._w0.shape[:1] != batch:
                raise ValueError(f"w0 has {self._w0.shape[0]} channels but the data has batch shape {batch}")
            w0 = np.zeros(self.taps, self.dtype) if self._w0 is None else self._w0
            self._w = np.ascontiguousarray(np.broadcast_to(w0, (channels, self.taps)), dtype=self.dtype).copy()
            self._tail = np.zeros((channels, self.taps - 1), self.dtype)
            self._batch = batch
            self._start_extra(channels)
        elif batch != self._batch:
            raise ValueError(
                f"this filter runs batch shape {self._batch} (set by its first run), got {batch}; "
                "call reset() to start over with another number of channels"
            )
        return channels

    def _start_extra(self, channels: int) -> None:
        pass

    def _check_state(self, taken: dict[str, np.ndarray]) -> None:
        """Refuse a loaded state (attribute -> array) that the recursion cannot continue from."""

    def _outputs(self, channels: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = np.empty((channels, n), self.dtype)
        e = np.empty((channels, n), self.dtype)
        hist = np.empty((channels, n if self.record_history else 0, self.taps), self.dtype)
        return y, e, hist

    def _finish(
        self, shape: tuple[int, ...], y: np.ndarray, e: np.ndarray, hist: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        for key, attr in self._STATE.items():
            if key == "tail":  # input samples, already checked finite
                continue
            value = getattr(self, attr)
            # the sum is NaN or Inf when an entry is (or when finite entries overflow: a divergence too)
            if value.dtype.kind == "f" and not np.isfinite(value.sum()):
                raise FloatingPointError(f"{self.name} {key} became NaN or Inf: {self._divergence_hint()}")
        self.history = hist.reshape((*shape, self.taps)) if self.record_history else None
        return y.reshape(shape), e.reshape(shape)

    _has_step_bound = False  # whether the stability of the step depends on the input power

    def _warn_if_unstable(self, trace_r: float) -> None:
        """Warn when the step is past a stability bound for input of the largest channel power ``trace_r``."""

    def _divergence_hint(self) -> str:
        return "the recursion is unstable for this data"

    def _signal_kernel(self, x: np.ndarray, d: np.ndarray, y: np.ndarray, e: np.ndarray, hist: np.ndarray) -> None:
        """Run on the new samples ``x``: (C, N) after the delay line ``self._tail``, and continue the line.

        By default the delay-line regressors are materialised (about ``_BLOCK_ELEMENTS`` entries at a time,
        each block from the line so far and the block's samples: nothing of the size of ``x`` is copied) and
        handed to :meth:`_regressor_kernel`, so ``run`` and ``run_regressors`` share one recursion.
        """
        assert self._tail is not None
        channels, n = d.shape
        block = max(1, _BLOCK_ELEMENTS // (channels * self.taps))
        for a in range(0, n, block):
            b = min(n, a + block)
            xp = np.concatenate([self._tail, x[:, a:b]], axis=1)
            u = np.ascontiguousarray(sliding_window_view(xp, self.taps, axis=1)[:, :, ::-1])  # newest sample first
            self._in_blocks(self._regressor_kernel, (u, _contiguous(d[:, a:b])), y, e, hist, a, b)
            self._tail = np.ascontiguousarray(xp[:, b - a :])

    @staticmethod
    def _in_blocks(kernel: Any, inputs: tuple[np.ndarray, ...], y: np.ndarray, e: np.ndarray, hist: np.ndarray,
                   a: int, b: int) -> None:  # fmt: skip
        """``kernel(*inputs, y, e, hist)`` writing samples ``a:b`` of the outputs: directly into ``y``, ``e``,
        ``hist`` when their slices are contiguous (one channel), else through block-sized buffers."""
        ys, es = y[:, a:b], e[:, a:b]
        hs = hist[:, a:b] if hist.shape[1] else hist
        if ys.flags.c_contiguous and hs.flags.c_contiguous:
            kernel(*inputs, ys, es, hs)
            return
        yb, eb = np.empty_like(ys, order="C"), np.empty_like(es, order="C")
        hb = np.empty_like(hs, order="C")
        kernel(*inputs, yb, eb, hb)
        ys[...], es[...] = yb, eb
        if hist.shape[1]:
            hs[...] = hb

    def _regressor_kernel(self, u: np.ndarray, d: np.ndarray, y: np.ndarray, e: np.ndarray, hist: np.ndarray) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "history"}
        params["dtype"] = np.dtype(self.dtype).name
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a)


def _check_length(n: int) -> int:
    if n == 0:
        raise ValueError("x and d must hold at least one sample, got N = 0")
    return n


class _GradientFilter(_AdaptiveFilter):
    """The LMS family: ``w <- w + mu phi(e_k) s(u_k)``, optionally divided by ``eps + |u_k|^2``.

    ``phi`` is the error nonlinearity (``_PHI``: identity, cube, sign, tanh, correntropy), ``s`` the identity
    or the sign of each regressor entry (``_SIGN_REGRESSOR``). All run the compiled LMS kernels: on a delay line
    directly, two channels per loop (four in float32) and such groups in parallel threads.
    """

    _PHI = _kernels.PHI_LINEAR
    _NORMALIZED = False
    _SIGN_REGRESSOR = False
    mu: float

    def _kernel_args(self) -> tuple[Any, ...]:
        dt = self.dtype
        eps = getattr(self, "eps", 0.0) if self._NORMALIZED else 0.0
        p1, p2 = self._phi_params()
        return dt(self.mu), dt(eps), self._NORMALIZED, self._PHI, dt(p1), dt(p2), self._SIGN_REGRESSOR

    def _phi_params(self) -> tuple[float, float]:
        return 0.0, 0.0

    def _signal_kernel(self, x, d, y, e, hist):  # type: ignore[no-untyped-def]
        """The delay-line kernel over blocks of ``_SIGNAL_BLOCK`` samples per channel: a long signal needs only
        block-sized buffers beside its outputs. The block is the same for any number of channels, so a
        channel's results stay independent of the batch it runs in."""
        channels, n = d.shape
        work = channels * min(n, _SIGNAL_BLOCK) * self.taps
        serial, parallel = _kernels.lms_signal_kernels(self.dtype)
        kernel = _kernels.pick(serial, parallel, channels, work)
        args = self._kernel_args()

        def call(xb, db, yb, eb, hb):  # type: ignore[no-untyped-def]
            kernel(self._w, self._tail, xb, db, *args, yb, eb, hb)

        for a in range(0, n, _SIGNAL_BLOCK):
            b = min(n, a + _SIGNAL_BLOCK)
            self._in_blocks(call, (_contiguous(x[:, a:b]), _contiguous(d[:, a:b])), y, e, hist, a, b)

    def _regressor_kernel(self, u, d, y, e, hist):  # type: ignore[no-untyped-def]
        kernel = _kernels.pick(_kernels.lms_regressors, _kernels.lms_regressors_parallel, d.shape[0], u.size)
        kernel(self._w, u, d, *self._kernel_args(), y, e, hist)
