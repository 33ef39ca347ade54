"""Checkpoints of :func:`~noisygrad.quantum.vqe` runs: the core loop's checkpoint plus what ``vqe`` adds around it.

The core's :func:`noisygrad.minimize` checkpoint holds the iterate, the optimizer's and the estimator's states,
the run's generator (the only source of the perturbations and the shots), blocking's and averaging's states and
the cost. ``vqe`` adds what it builds around the loop: the calibrated gain (so a resumed run does not calibrate
again), the history so far, the objective's shot and evaluation counters, and the settings a continuation must
share (problem size, Hamiltonian, shots, ``maxiter``, averaging window). All plain tensors, numbers, strings,
lists and dicts: ``torch.load(path, weights_only=True)`` reads a saved one. A format name, a version and a
checksum let ``resume=`` refuse a foreign, truncated, corrupted or mismatched checkpoint before any shot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from noisygrad.loop_checkpoint import CheckpointError, check_stamped, checkpoint_checksum

VQE_CHECKPOINT_FORMAT = "noisygrad.quantum.vqe"
VQE_CHECKPOINT_VERSION = 1
STATE_KEYS = ("settings", "minimize", "schedule", "calibration", "history", "counters")


def hamiltonian_fingerprint(labels: list[str], coefficients: list[float]) -> str:
    """A short hash of the Hamiltonian's Pauli terms (labels and coefficients, in order)."""
    text = ";".join(f"{label}:{float(c).hex()}" for label, c in zip(labels, coefficients, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stamp(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with the format, version and checksum added."""
    stamped = {"format": VQE_CHECKPOINT_FORMAT, "version": VQE_CHECKPOINT_VERSION, **state}
    stamped["checksum"] = checkpoint_checksum(stamped)
    return stamped


def _fail(message: str) -> CheckpointError:
    return CheckpointError(f"resume: {message}")


def check(resume: object, settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """``resume`` if a ``vqe`` run with ``settings`` can continue it; else ``TypeError`` (not a dict) or
    :class:`~noisygrad.loop_checkpoint.CheckpointError` naming the entry at fault. The inner ``minimize``
    checkpoint is checked by :func:`noisygrad.minimize` itself (kinds, shapes, generator, checksum)."""
    if not isinstance(resume, Mapping):
        hint = " (load a saved one with torch.load(path, weights_only=True) first)" if isinstance(resume, str) else ""
        raise TypeError(f"resume must be a vqe checkpoint dict (result.checkpoint){hint}, got {type(resume).__name__}")
    if resume.get("format") != VQE_CHECKPOINT_FORMAT:
        raise _fail(f"format is {resume.get('format')!r}, not {VQE_CHECKPOINT_FORMAT!r}: not a checkpoint of vqe")
    if resume.get("version") != VQE_CHECKPOINT_VERSION:
        raise _fail(f"version {resume.get('version')!r} is not {VQE_CHECKPOINT_VERSION}, the one this code reads")
    check_stamped(
        resume,
        keys=STATE_KEYS,
        settings=settings,
        hint="resume with the hamiltonian, ansatz and settings of the run that wrote it",
    )
    return resume
