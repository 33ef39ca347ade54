"""The schema of a :func:`~noisygrad.minimize` checkpoint, and the checks ``resume=`` runs before any work.

A checkpoint is a plain dict (``torch.save`` stores it, ``torch.load(..., weights_only=True)`` restores it) with
the run's state (``x``, ``optimizer``, ``estimator``, ``generator``, ``step``, ``cost``, ``value_and_grad_calls``
and the parts' states) and, beside it, the schema that lets a resumed run refuse what would continue wrongly:

* ``format``: ``"noisygrad.minimize"``, and ``version``: :data:`CHECKPOINT_VERSION` (a later version is refused:
  it was written by a newer noisygrad);
* ``kinds``: the class names of the optimizer and the estimator that wrote it. Resuming with another class is
  refused: an Adam checkpoint continued under SGD would drop Adam's moments without a word;
* ``params``: the parameters' shape and dtype;
* ``checksum``: SHA-256 over every other entry (tensors by dtype, shape and bytes; numbers exactly), so a flipped
  bit, an edited tensor or a state assembled from two runs is refused instead of continued.

:func:`check_checkpoint` also refuses, each with a message naming the entry of ``resume`` at fault: a path or a
string (load it with ``torch.load`` first), anything that is not a dict, a truncated dict (the missing keys
named), parameters whose length, dtype or device the objective does not take, an optimizer state of another
structure or shape, NaN/Inf in the parameters or the optimizer's state (the run had diverged), and a generator
state torch cannot restore.

Beside the optimizer and the estimator, a run may change *companions*: objects with ``state_dict`` /
``load_state_dict`` that serve as the optimizer's learning-rate schedule or as a callback (a
:class:`~noisygrad.Thermostat` is both: it moves the rate, or the estimator's batch size, from what it measured).
Their states are in ``companions``, a list of ``{"kind": class name, "state": state_dict}`` in a fixed order
(:func:`companions_of`), written only when there are any (so a run without them writes the same checkpoint as
before); ``resume=`` refuses a checkpoint whose companions are not those of the run (missing, extra, or of
another kind) and loads them all or none (:func:`load_companion_states`).

Checkpoints without the schema (written before it existed, or assembled by hand) are *accepted with a*
:class:`LegacyCheckpointWarning`: every structural check above still runs (keys, shapes, dtypes, finiteness,
the optimizer state's keys against the optimizer's own), only the kinds and the checksum cannot be checked. The
choice keeps the runs saved before the schema resumable; ``warnings.simplefilter("error",
LegacyCheckpointWarning)`` turns it into a refusal.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from noisygrad.checks import warn
from noisygrad.loop_checks import stated_dimension, stated_dtype_and_device

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "LegacyCheckpointWarning",
    "check_checkpoint",
    "check_stamped",
    "checkpoint_checksum",
    "companion_states",
    "companions_of",
    "load_companion_states",
    "stamp_checkpoint",
]

#: The ``format`` entry of every checkpoint :func:`~noisygrad.minimize` writes.
CHECKPOINT_FORMAT = "noisygrad.minimize"
#: The schema's version: 1, the first with kinds, shapes and a checksum. Later versions are refused.
CHECKPOINT_VERSION = 1

_STATE_KEYS = ("x", "optimizer", "estimator", "generator", "step", "cost")
_SCHEMA_KEYS = ("format", "version", "kinds", "params", "checksum")
_COST_KEYS = ("examples", "evaluations", "shots")


class CheckpointError(ValueError):
    """A ``resume=`` checkpoint that cannot continue the run: truncated, corrupted, or of another run's kind."""


class LegacyCheckpointWarning(UserWarning):
    """A checkpoint without the schema (no kinds, no checksum) was resumed after its structural checks."""


def kind_of(obj: object) -> str:
    """The name recorded for an optimizer or estimator: its class's qualified name."""
    return type(obj).__qualname__


# ---------------------------------------------------------------- the checksum


def _hash_into(hasher: Any, value: object) -> None:
    """Feed ``value`` to ``hasher`` with a type tag, so that no two different states hash alike by accident."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        t = t.cpu().contiguous().reshape(-1)
        hasher.update(f"T{t.dtype}{tuple(value.shape)}".encode())
        hasher.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        hasher.update(f"D{len(value)}".encode())
        for key in sorted(value, key=repr):
            hasher.update(f"K{key!r}".encode())
            _hash_into(hasher, value[key])
    elif isinstance(value, list | tuple):
        hasher.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}".encode())
        for item in value:
            _hash_into(hasher, item)
    elif isinstance(value, bool) or value is None:
        hasher.update(f"B{value!r}".encode())
    elif isinstance(value, int | np.integer):
        hasher.update(f"I{int(value)}".encode())
    elif isinstance(value, float | np.floating):
        hasher.update(f"F{float(value).hex()}".encode())
    elif isinstance(value, str):
        hasher.update(f"S{len(value)}:".encode() + value.encode())
    elif isinstance(value, bytes):
        hasher.update(f"Y{len(value)}:".encode() + value)
    elif isinstance(value, np.ndarray):
        hasher.update(f"A{value.dtype.str}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    else:  # anything else a custom estimator keeps: its type and repr
        hasher.update(f"O{type(value).__qualname__}:{value!r}".encode())


def checkpoint_checksum(checkpoint: Mapping[str, Any]) -> str:
    """``"sha256:<hex>"`` over every entry of ``checkpoint`` but ``checksum`` itself."""
    hasher = hashlib.sha256()
    _hash_into(hasher, {k: v for k, v in checkpoint.items() if k != "checksum"})
    return f"sha256:{hasher.hexdigest()}"


def check_stamped(state: Mapping[str, Any], *, keys: Sequence[str], settings: Mapping[str, Any], hint: str) -> None:
    """The checks every stamped checkpoint of a plugin shares, in this order: each of ``keys`` and ``checksum``
    present (else truncated), the checksum over the rest, then each of ``settings`` equal to the saved
    ``state["settings"]`` (a continuation is bit-identical only under the settings that wrote it; ``hint`` says
    what to pass instead). Raises :class:`CheckpointError` prefixed ``resume:``, naming the entry at fault."""
    missing = [key for key in (*keys, "checksum") if key not in state]
    if missing:
        raise CheckpointError(f"resume: the checkpoint is truncated: {missing} missing")
    if state["checksum"] != checkpoint_checksum(state):
        raise CheckpointError("resume: checksum mismatch: the checkpoint was changed or corrupted after it was written")
    saved = state["settings"]
    for name, value in settings.items():
        if saved.get(name) != value:
            raise CheckpointError(
                f"resume: settings[{name!r}] is {saved.get(name)!r} in the checkpoint but {value!r} here; {hint}"
            )


def stamp_checkpoint(state: Mapping[str, Any], *, optimizer: object, estimator: object) -> dict[str, Any]:
    """``state`` (a run's state, as :func:`~noisygrad.minimize` assembles it) with the schema added.

    Args:
        state: the run's state: ``x`` (the parameters), ``optimizer``, ``estimator``, ``generator``, ``step``,
            ``cost`` and any parts' states.
        optimizer: the run's optimizer (its class name is recorded).
        estimator: the run's estimator (its class name is recorded).
    """
    x = state["x"]
    stamped: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kinds": {"optimizer": kind_of(optimizer), "estimator": kind_of(estimator)},
        "params": {"shape": [int(n) for n in x.shape], "dtype": str(x.dtype).removeprefix("torch.")},
        **state,
    }
    stamped["checksum"] = checkpoint_checksum(stamped)
    return stamped


# ---------------------------------------------------------------- the checks


def _fail(message: str) -> CheckpointError:
    return CheckpointError(f"resume: {message}")


def _check_type(resume: object) -> Mapping[str, Any]:
    if isinstance(resume, str | bytes | os.PathLike):
        raise TypeError(
            f"resume must be a checkpoint dict (result.checkpoint), got the {type(resume).__name__} {resume!r}: "
            "load a saved checkpoint first, resume=torch.load(path, weights_only=True)"
        )
    if not isinstance(resume, Mapping):
        raise TypeError(
            f"resume must be a checkpoint dict (result.checkpoint, or torch.load of a saved one), got "
            f"{type(resume).__name__}"
        )
    return resume


def _check_keys(resume: Mapping[str, Any]) -> bool:
    """Whether ``resume`` carries the schema; raises naming the missing keys of a truncated or foreign dict."""
    missing = [k for k in _STATE_KEYS if k not in resume]
    schema = [k for k in _SCHEMA_KEYS if k in resume]
    if not resume:
        raise _fail(
            "the checkpoint is empty ({}); pass the checkpoint of an earlier result, result.checkpoint, or "
            "torch.load of a saved one"
        )
    if missing or (schema and len(schema) < len(_SCHEMA_KEYS)):
        lost = missing + [k for k in _SCHEMA_KEYS if schema and k not in resume]
        raise _fail(
            f"the checkpoint lacks {', '.join(map(repr, lost))} (it has {', '.join(sorted(map(repr, resume)))}): a "
            "truncated checkpoint or a dict that is not a minimize checkpoint; pass result.checkpoint whole"
        )
    return bool(schema)


def _check_schema(resume: Mapping[str, Any], optimizer: object, estimator: object) -> None:
    if resume["format"] != CHECKPOINT_FORMAT:
        raise _fail(f"format is {resume['format']!r}, not {CHECKPOINT_FORMAT!r}: not a minimize checkpoint")
    version = resume["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _fail(f"version must be an integer >= 1, got {version!r}")
    if version > CHECKPOINT_VERSION:
        raise _fail(
            f"the checkpoint has format version {version}, written by a newer noisygrad; this one reads versions "
            f"up to {CHECKPOINT_VERSION}: upgrade noisygrad to resume it"
        )
    stored, computed = resume["checksum"], checkpoint_checksum(resume)
    if stored != computed:
        raise _fail(
            f"checksum mismatch (stored {str(stored)[:23]}..., computed {computed[:23]}...): the checkpoint was "
            "changed after it was written (a flipped bit in the file, an edited tensor, or state taken from "
            "another run); resume from an intact copy"
        )
    kinds = resume["kinds"]
    for role, obj in (("optimizer", optimizer), ("estimator", estimator)):
        saved = kinds.get(role) if isinstance(kinds, Mapping) else None
        if saved != kind_of(obj):
            what = "its moments and step count" if role == "optimizer" else "its memory"
            raise _fail(
                f"the checkpoint was written by the {role} {saved}, but the {role} passed is {kind_of(obj)}: "
                f"continuing would drop or misread {what}; pass {role}={saved}(...) with the run's settings"
            )
    params, x = resume["params"], resume["x"]
    if not isinstance(params, Mapping) or not isinstance(x, torch.Tensor):
        raise _fail(f"params must be a dict of shape and dtype, got {type(params).__name__}")
    shape, dtype = list(x.shape), str(x.dtype).removeprefix("torch.")
    if params.get("shape") != shape or params.get("dtype") != dtype:
        raise _fail(
            f"params records shape {params.get('shape')} and dtype {params.get('dtype')}, but x has shape {shape} "
            f"and dtype {dtype}: an inconsistent checkpoint"
        )


def _check_x(x: object, objective: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise _fail(f"resume['x'] must be a tensor (the parameters), got {type(x).__name__}")
    if x.ndim != 1 or x.numel() == 0 or not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        raise _fail(f"resume['x'] must be a non-empty 1-D float32 or float64 tensor, got {tuple(x.shape)} {x.dtype}")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise _fail(
            f"resume['x'] has {bad} non-finite entr{'y' if bad == 1 else 'ies'} (NaN or Inf) out of {x.numel()}: "
            "the run had diverged before this checkpoint; resume from an earlier one (and lower the learning rate)"
        )
    dimension = stated_dimension(objective)
    if dimension is not None and x.numel() != dimension[0]:
        raise _fail(
            f"resume['x'] has {x.numel()} entries but the objective takes {dimension[0]} ({dimension[1]}): the "
            "checkpoint belongs to another problem (mismatched shapes)"
        )
    fixed = stated_dtype_and_device(objective)
    if fixed is not None and (x.dtype, x.device) != fixed:
        raise _fail(
            f"resume['x'] is {x.dtype} on {x.device} but the objective computes in {fixed[0]} on {fixed[1]}: the "
            "checkpoint belongs to another problem"
        )
    return x


def _reference_state(optimizer: object, x: torch.Tensor) -> Mapping[str, Any] | None:
    """What ``optimizer`` starts from at ``x`` (computed on a copy: the optimizer is not touched), if it can tell."""
    init = getattr(optimizer, "init", None)
    if not callable(init):
        return None
    try:
        state = copy.copy(optimizer).init(x.clone())  # type: ignore[attr-defined]
    except Exception:  # an optimizer whose init needs more than the parameters: nothing to compare with
        return None
    return state if isinstance(state, Mapping) else None


def _check_optimizer_state(state: object, optimizer: object, x: torch.Tensor) -> None:
    from noisygrad.optim.base import Rule

    if not isinstance(state, Mapping):
        raise _fail(f"resume['optimizer'] must be the optimizer's state dict, got {type(state).__name__}")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise _fail(f"resume['optimizer']['step'] must be an integer >= 0, got {step!r}")
    reference = _reference_state(optimizer, x)
    if reference is not None and isinstance(optimizer, Rule) and set(reference) != set(state):
        raise _fail(
            f"resume['optimizer'] has the keys {sorted(state)} but {kind_of(optimizer)} keeps {sorted(reference)}: "
            "the state of another optimizer (or other settings, such as amsgrad); pass the run's optimizer"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        want = None if reference is None else reference.get(key)
        if isinstance(want, torch.Tensor) and (value.shape != want.shape or value.dtype != want.dtype):
            raise _fail(
                f"resume['optimizer'][{key!r}] has shape {tuple(value.shape)} and dtype {value.dtype}, but "
                f"{kind_of(optimizer)} keeps shape {tuple(want.shape)} and dtype {want.dtype} for these parameters "
                "(mismatched shapes)"
            )
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            raise _fail(
                f"resume['optimizer'][{key!r}] holds NaN or Inf: the run had diverged before this checkpoint; "
                "resume from an earlier one"
            )


def _check_generator(state: object) -> None:
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise _fail(
            f"resume['generator'] must be a torch.Generator state (a uint8 tensor from get_state()), got "
            f"{type(state).__name__}{'' if not isinstance(state, torch.Tensor) else ' of ' + str(state.dtype)}"
        )
    try:
        torch.Generator().set_state(state)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise _fail(f"resume['generator'] is not a state torch can restore ({exc})") from exc


def _check_counts(resume: Mapping[str, Any]) -> None:
    def count(name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise _fail(f"{name} must be an integer >= 0, got {value!r}")

    count("resume['step']", resume["step"])
    cost = resume["cost"]
    if not isinstance(cost, Mapping) or set(cost) != set(_COST_KEYS):
        got = sorted(cost) if isinstance(cost, Mapping) else type(cost).__name__
        raise _fail(f"resume['cost'] must be a dict with keys {', '.join(_COST_KEYS)}, got {got}")
    for key in _COST_KEYS:
        count(f"resume['cost'][{key!r}]", cost[key])
    if "value_and_grad_calls" in resume:
        count("resume['value_and_grad_calls']", resume["value_and_grad_calls"])
    if not isinstance(resume["estimator"], Mapping):
        raise _fail(f"resume['estimator'] must be the estimator's state dict, got {type(resume['estimator']).__name__}")


def check_checkpoint(resume: object, *, optimizer: object, estimator: object) -> Mapping[str, Any]:
    """``resume`` if it can continue a run of ``optimizer`` on ``estimator``; a clear error otherwise.

    Nothing is changed: neither ``resume`` nor the optimizer or estimator (the estimator's state is loaded by
    the caller, after these checks).

    Raises:
        TypeError: ``resume`` is a path or string (load it with ``torch.load`` first) or not a dict.
        CheckpointError: (a ``ValueError``) a truncated, corrupted (checksum mismatch), foreign (another
            optimizer or estimator), newer, inconsistent or diverged checkpoint, or one of another shape.

    Warns:
        LegacyCheckpointWarning: the checkpoint has no schema (see the module docstring); it is resumed after the
        structural checks.
    """
    checkpoint = _check_type(resume)
    stamped = _check_keys(checkpoint)
    if stamped:
        _check_schema(checkpoint, optimizer, estimator)
    x = _check_x(checkpoint["x"], getattr(estimator, "objective", None))
    _check_optimizer_state(checkpoint["optimizer"], optimizer, x)
    _check_generator(checkpoint["generator"])
    _check_counts(checkpoint)
    if not stamped:
        warn(
            "resume: the checkpoint has no format version, kinds or checksum (written before noisygrad recorded "
            "them): its structure was checked, but not that it comes from this optimizer and estimator, nor that "
            "it is intact; save the new run's checkpoint to get them",
            LegacyCheckpointWarning,
        )
    return checkpoint


def load_estimator_state(estimator: Any, state: Mapping[str, Any]) -> None:
    """``estimator.load_state_dict(state)``; if it fails, the estimator's earlier state is put back and the error
    names ``resume['estimator']``."""
    before = estimator.state_dict()
    try:
        estimator.load_state_dict(state)
    except Exception as exc:
        try:
            estimator.load_state_dict(before)
        except Exception as restore:  # pragma: no cover - an estimator that cannot take its own state back
            exc.add_note(f"and restoring the estimator's earlier state failed too: {restore}")
        raise _fail(
            f"resume['estimator'] does not fit the {kind_of(estimator)} passed: {exc}; the estimator is unchanged"
        ) from exc


# ---------------------------------------------------------------- companions (stateful schedules and callbacks)


def _stateful(obj: object) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "load_state_dict", None))


def companions_of(optimizer: object, callbacks: Any) -> list[Any]:
    """The stateful objects a run changes beside its optimizer and estimator, each once, in a fixed order.

    First the optimizer's learning-rate schedule (``optimizer.lr``) if it has ``state_dict`` and
    ``load_state_dict``, then for each callback in turn the object it belongs to (a bound method's ``__self__``,
    or the callable itself) if that has them. Why both: a :class:`~noisygrad.Thermostat` is the schedule and its
    ``observe`` the callback; a stateful meter passed as a callback only changes as the run goes too.
    """
    found: list[Any] = []
    owners = [getattr(optimizer, "lr", None)] + [getattr(cb, "__self__", cb) for cb in callbacks]
    for owner in owners:
        if owner is not None and _stateful(owner) and all(owner is not seen for seen in found):
            found.append(owner)
    return found


def companion_states(companions: list[Any]) -> list[dict[str, Any]]:
    """The checkpoint's ``companions`` entry: ``{"kind", "state"}`` for each companion, in order."""
    return [{"kind": kind_of(obj), "state": obj.state_dict()} for obj in companions]


def load_companion_states(companions: list[Any], resume: Mapping[str, Any]) -> None:
    """Load ``resume["companions"]`` into ``companions``: all of them, or (if one refuses its state) none.

    Raises :class:`CheckpointError` naming ``resume['companions']`` when the checkpoint's companions are not
    the run's (another number or kind, e.g. a Thermostat run resumed without it), before anything changes.
    """
    saved = resume.get("companions", [])
    expected = [kind_of(obj) for obj in companions]
    if not isinstance(saved, list) or not all(
        isinstance(entry, Mapping) and set(entry) == {"kind", "state"} and isinstance(entry["state"], Mapping)
        for entry in saved
    ):
        raise _fail("resume['companions'] must be a list of {'kind', 'state'} dicts, as minimize writes it")
    kinds = [entry["kind"] for entry in saved]
    if kinds != expected:
        raise _fail(
            f"resume['companions'] holds the states of {kinds or 'no stateful schedule or callback'}, but this run's "
            f"stateful schedule and callbacks are {expected or 'none'}: pass the same learning-rate schedule and "
            "callbacks (a Thermostat as both lr and callback) as the run that wrote the checkpoint"
        )
    before = [obj.state_dict() for obj in companions]
    for i, (obj, entry) in enumerate(zip(companions, saved, strict=True)):
        try:
            obj.load_state_dict(dict(entry["state"]))
        except Exception as exc:
            for restored, state in zip(companions[: i + 1], before[: i + 1], strict=True):
                restored.load_state_dict(state)
            raise _fail(
                f"resume['companions'][{i}] does not fit the {kind_of(obj)} passed: {exc}; nothing was changed"
            ) from exc
