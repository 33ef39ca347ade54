"""The schema of a filter's ``state_dict``: what makes it load with ``torch.load(weights_only=True)`` and be checked.

A state is a plain dict of torch tensors, tuples, strings and numbers (what ``torch.load(..., weights_only=True)``
restores without trusting the file; numpy arrays would need unsafe globals), with beside the recursion's own
entries:

* ``format``: ``"noisygrad.dsp"``, and ``version``: :data:`STATE_VERSION` (a later version is refused: written
  by a newer noisygrad);
* ``kind``: the class that wrote it (an RLS state given to an LMS is refused, not half-loaded);
* ``settings``: the constructor's settings that shape the recursion (``taps``, ``mu``, ``dtype``, ...). A state
  continues bit for bit only under the settings that wrote it, so another filter's settings are refused with
  the differing ones named;
* ``checksum``: the core's SHA-256 (:func:`noisygrad.loop_checkpoint.checkpoint_checksum`) over every other
  entry, with numpy arrays hashed as the tensors they are stored as. A flipped bit, an edited entry or a state
  assembled from two filters is refused.

Each filter checks its own entries (shapes, dtypes, finiteness, invariants such as a symmetric ``P``) first, so
an entry that is wrong is named; the checksum is checked last. A dict without the schema (assembled by hand) is
accepted with the core's :class:`~noisygrad.loop_checkpoint.LegacyCheckpointWarning` after the same entry checks.
torch is imported only here, on the first ``state_dict`` or ``load_state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

STATE_FORMAT = "noisygrad.dsp"
STATE_VERSION = 1
SCHEMA_KEYS = ("format", "version", "kind", "settings", "checksum")


def _as_tensors(entries: Mapping[str, Any]) -> dict[str, Any]:
    """``entries`` with every numpy array as a torch tensor (a copy), so they hash and pickle alike."""
    import torch

    out: dict[str, Any] = {}
    for key, value in entries.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.array(value, copy=True))
        elif isinstance(value, Mapping):
            value = _as_tensors(value)
        out[key] = value
    return out


def _checksum(state: Mapping[str, Any]) -> str:
    from noisygrad.loop_checkpoint import checkpoint_checksum

    return checkpoint_checksum(_as_tensors(state))


def pack(kind: str, settings: Mapping[str, Any], entries: Mapping[str, Any]) -> dict[str, Any]:
    """A state of ``kind`` with ``settings``: ``entries`` (numpy arrays become tensors) plus the schema."""
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "kind": kind,
        "settings": dict(settings),
        **_as_tensors(entries),
    }
    state["checksum"] = _checksum(state)
    return state


def _error(message: str) -> Exception:
    from noisygrad.loop_checkpoint import CheckpointError

    return CheckpointError(f"state: {message}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b) and type(a) is type(b)


def unpack(state: object, kind: str, settings: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The entries of ``state`` (tensors as numpy arrays, copies) and whether it carries the schema.

    Refuses, before anything is taken: a non-dict (``TypeError``), another format, a newer version, another
    kind or other settings (:class:`~noisygrad.loop_checkpoint.CheckpointError`, a ``ValueError``). The
    checksum is left to :func:`verify`, after the caller's entry checks.
    """
    if isinstance(state, (str, bytes)) or not isinstance(state, Mapping):
        raise TypeError(
            f"state must be a dict from state_dict() (or torch.load(path, weights_only=True) of a saved one), "
            f"got {type(state).__name__}"
        )
    present = [k for k in SCHEMA_KEYS if k in state]
    if present and len(present) < len(SCHEMA_KEYS):
        lost = [k for k in SCHEMA_KEYS if k not in state]
        raise _error(f"lacks {', '.join(map(repr, lost))}: a truncated state; pass state_dict()'s dict whole")
    if present:
        if state["format"] != STATE_FORMAT:
            raise _error(f"format is {state['format']!r}, not {STATE_FORMAT!r}: not a noisygrad.dsp filter state")
        version = state["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _error(f"version must be an integer >= 1, got {version!r}")
        if version > STATE_VERSION:
            raise _error(
                f"format version {version} was written by a newer noisygrad; this one reads versions up to "
                f"{STATE_VERSION}"
            )
        if state["kind"] != kind:
            raise _error(f"was written by a {state['kind']!r} filter, this one is a {kind!r}")
        saved = state["settings"]
        if not isinstance(saved, Mapping):
            raise _error(f"settings must be a dict, got {type(saved).__name__}")
        changed = {k for k in settings if k in saved and not _same(saved[k], settings[k])}
        differ = sorted(set(saved) ^ set(settings) | changed)
        if differ:
            pairs = ", ".join(f"{k}: saved {saved.get(k, '-')!r}, here {settings.get(k, '-')!r}" for k in differ)
            raise _error(
                f"was written by a {kind} with other settings ({pairs}); it continues bit for bit only under "
                "its own settings: build the filter with those"
            )
    entries = {k: _to_numpy(v) for k, v in state.items() if k not in SCHEMA_KEYS}
    return entries, bool(present)


def _to_numpy(value: Any) -> Any:
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        return value.detach().cpu().numpy().copy()
    return value


def verify(state: Mapping[str, Any], schema: bool) -> None:
    """Refuse a state whose checksum does not match its entries; warn for one without the schema."""
    if not schema:
        from noisygrad.checks import warn
        from noisygrad.loop_checkpoint import LegacyCheckpointWarning

        warn(
            "state has no format, kind, settings or checksum (assembled by hand, not by state_dict()); its "
            "entries were checked, but not that they belong together",
            LegacyCheckpointWarning,
        )
        return
    stored, computed = state["checksum"], _checksum(state)
    if stored != computed:
        raise _error(
            f"checksum mismatch (stored {str(stored)[:23]}..., computed {computed[:23]}...): the state was changed "
            "after state_dict() wrote it (a flipped bit in the file, an edited entry, or entries of two filters)"
        )
