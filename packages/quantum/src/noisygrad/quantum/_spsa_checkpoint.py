"""Checkpoints of :class:`~noisygrad.quantum.SPSA` runs: what a run must carry to continue bit for bit.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so ``torch.save`` writes it and
``torch.load(path, weights_only=True)`` reads it back (no pickled objects). It holds the iterate, the iteration
count, the direction generator's state, the calibrated gain, the averaging window's iterates, the 2-SPSA Hessian,
blocking's reference value, the divergence guard and the counters; a format name, a version and a checksum let
``resume=`` refuse a truncated, corrupted or foreign checkpoint with a clear :class:`CheckpointError` before any
evaluation. The objective's own noise stream is the caller's (for :class:`~noisygrad.quantum.ShotEstimator`,
its ``state_dict``).

:class:`~noisygrad.quantum.QNSPSA` writes the same entries (its ``hessian`` is the smoothed Fubini-Study metric)
plus ``fidelity_evaluations`` under a format of its own, so neither optimizer continues the other's run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from noisygrad.loop_checkpoint import CheckpointError, check_stamped, checkpoint_checksum

SPSA_CHECKPOINT_FORMAT = "noisygrad.quantum.SPSA"
SPSA_CHECKPOINT_VERSION = 1
QNSPSA_CHECKPOINT_FORMAT = "noisygrad.quantum.QNSPSA"
QNSPSA_CHECKPOINT_VERSION = 1
#: What each format's checkpoints hold beyond :data:`STATE_KEYS` (QNSPSA's fidelity calls are counted apart
#: from ``fun``'s ``nfev_total``).
EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    SPSA_CHECKPOINT_FORMAT: (),
    QNSPSA_CHECKPOINT_FORMAT: ("fidelity_evaluations",),
}
_VERSIONS = {SPSA_CHECKPOINT_FORMAT: SPSA_CHECKPOINT_VERSION, QNSPSA_CHECKPOINT_FORMAT: QNSPSA_CHECKPOINT_VERSION}
_OWNERS = {SPSA_CHECKPOINT_FORMAT: "SPSA", QNSPSA_CHECKPOINT_FORMAT: "QNSPSA"}
#: Entries every checkpoint has (beyond the schema's ``format``, ``version`` and ``checksum``).
STATE_KEYS = (
    "settings",
    "k",
    "x",
    "tail",
    "best_x",
    "rng",
    "a",
    "fx",
    "allowed_increase",
    "hessian",
    "guard",
    "nfev",
    "nfev_total",
    "rejected",
    "learning_rate",
    "perturbation",
)


def plain(value: Any) -> Any:
    """``value`` with numpy arrays and scalars turned into lists and Python numbers (``weights_only``-loadable)."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def unplain(value: Any) -> Any:
    """The inverse of :func:`plain` (a generator state as numpy's ``bit_generator.state`` setter takes it)."""
    if isinstance(value, Mapping):
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray(value["ndarray"], dtype=np.dtype(value["dtype"]))
        return {key: unplain(item) for key, item in value.items()}
    return value


def stamp(state: Mapping[str, Any], fmt: str = SPSA_CHECKPOINT_FORMAT) -> dict[str, Any]:
    """``state`` with the format ``fmt`` (SPSA's or QNSPSA's), its version and the checksum added.

    A ``format``, ``version`` or ``checksum`` already in ``state`` is replaced (so a checkpoint can be re-stamped
    in the other format after :func:`check` has verified it); ``state`` itself is not changed.
    """
    if fmt not in _VERSIONS:
        raise ValueError(f"fmt must be one of {sorted(_VERSIONS)}, got {fmt!r}")
    body = {key: value for key, value in state.items() if key not in ("format", "version", "checksum")}
    stamped = {"format": fmt, "version": _VERSIONS[fmt], **body}
    stamped["checksum"] = checkpoint_checksum(stamped)
    return stamped


def _fail(message: str) -> CheckpointError:
    return CheckpointError(f"resume: {message}")


def check(
    resume: object, settings: Mapping[str, Any], maxiter: int, fmt: str = SPSA_CHECKPOINT_FORMAT
) -> Mapping[str, Any]:
    """``resume`` if it is a checkpoint (of format ``fmt``) this optimizer (``settings``, ``maxiter``) can continue,
    else an error.

    ``TypeError`` for something that is not a checkpoint dict (a path, say); :class:`CheckpointError` (a
    ``ValueError``) naming the entry at fault for a foreign, truncated, corrupted, mismatched or diverged one.
    """
    if fmt not in _VERSIONS:
        raise ValueError(f"fmt must be one of {sorted(_VERSIONS)}, got {fmt!r}")
    owner = _OWNERS[fmt]
    if not isinstance(resume, Mapping):
        hint = " (load a saved one with torch.load(path, weights_only=True) first)" if isinstance(resume, str) else ""
        raise TypeError(
            f"resume must be a checkpoint dict (result.checkpoint or {owner}.state_dict()){hint}, "
            f"got {type(resume).__name__}"
        )
    found = resume.get("format")
    if found != fmt:
        where = (
            f"resume it with noisygrad.quantum.{_OWNERS[found]}"
            if isinstance(found, str) and found in _OWNERS
            else "vqe's and minimize's checkpoints resume through vqe and minimize"
        )
        raise _fail(
            f"format is {found!r}, not {fmt!r}: this is not a checkpoint of noisygrad.quantum.{owner} ({where})"
        )
    if resume.get("version") != _VERSIONS[fmt]:
        raise _fail(f"version {resume.get('version')!r} is not {_VERSIONS[fmt]}, the one this code reads")
    check_stamped(
        resume,
        keys=(*STATE_KEYS, *EXTRA_KEYS[fmt]),
        settings=settings,
        hint="resume with the optimizer settings of the run that wrote it",
    )
    x = resume["x"]
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float64 or x.ndim != 1:
        raise _fail("x must be a 1-D float64 tensor")
    if not bool(torch.isfinite(x).all()) or resume["guard"].get("reason"):
        raise _fail(
            "the checkpointed run diverged (NaN/Inf or a runaway value); start again from its best iterate "
            "with a smaller learning_rate instead"
        )
    k = resume["k"]
    if not isinstance(k, int) or k < 0 or k > maxiter:
        raise _fail(f"k (iterations done) is {k!r}; it must be an int in [0, maxiter={maxiter}]")
    if resume["a"] is not None and not (isinstance(resume["a"], float) and math.isfinite(resume["a"])):
        raise _fail(f"a (the calibrated gain) must be a finite float or None, got {resume['a']!r}")
    for key in EXTRA_KEYS[fmt]:  # counters
        value = resume[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _fail(f"{key} is {value!r}; it must be an int >= 0")
    return resume
