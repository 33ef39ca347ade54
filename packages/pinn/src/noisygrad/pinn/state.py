"""The state of a :func:`noisygrad.pinn.train` phase, so that a run continues bit for bit from a saved one.

A phase ends with ``TrainResult.state``, a plain dict (``torch.save`` stores it, ``torch.load(...,
weights_only=True)`` restores it); ``train(model, ..., resume=state)`` continues from it, on the same model or on a
freshly built one of the same shape, and ``train(..., iterations=a)`` then ``train(..., iterations=b,
resume=state)`` gives the very parameters of ``train(..., iterations=a + b)``, mini-batches included. It holds:

* the network's ``state_dict`` and the external trainable variables (the unknowns of an inverse problem);
* the optimizer's ``state_dict`` (Adam's moments and step count, L-BFGS's memory, a dense BFGS matrix);
* the run generator's state and the noise-estimate generator's (a resumed phase spawns no new sub-stream, which
  would move the batch stream);
* where the collocation batches stand (:meth:`CollocationBatches.state_dict`: the current batch, its steps left);
* the losses so far (stop rules such as :class:`Plateau` look back over them), the steps so far (``noise_every``
  counts them), the learning-rate decay's state and DeepXDE's step counter;
* a schema: ``format``, ``version``, the optimizer's kind (class and name), the batch settings, and a SHA-256
  ``checksum`` over the rest (the core's :func:`noisygrad.loop_checkpoint.checkpoint_checksum`).

:func:`check_resume` refuses, before any work and with a :class:`noisygrad.CheckpointError` naming the entry at
fault, a non-dict, another format or a later version, a missing entry, a checksum that does not match (a flipped
bit, a state assembled from two runs), another optimizer (Adam's moments would be dropped without a word), other
batch settings, a network or unknowns of another shape or dtype, and NaN/Inf in the parameters.

What is not saved: the data set (the model's points are the caller's; a ``PDEPointResampler`` that redrew them
is not replayed) and DeepXDE's ``losshistory``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from noisygrad import CheckpointError
from noisygrad.loop_checkpoint import checkpoint_checksum

STATE_FORMAT = "noisygrad.pinn.train"
STATE_VERSION = 1
_KEYS = (
    "format",
    "version",
    "kinds",
    "batch",
    "net",
    "external",
    "optimizer",
    "generator",
    "noise_generator",
    "batches",
    "losses",
    "steps",
    "lr_scheduler",
    "deepxde_step",
    "checksum",
)


def kinds_of(optimizer: torch.optim.Optimizer, name: str) -> dict[str, str]:
    """The optimizer's class and the plugin's name for it: what a resumed phase must use again."""
    return {"optimizer": type(optimizer).__qualname__, "name": name}


def capture(
    model: Any,
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    batch: dict[str, Any],
    generator: torch.Generator,
    noise_generator: torch.Generator,
    batches: Any,
    losses: list[float],
    steps: int,
) -> dict[str, Any]:
    """The phase's state now, as a checksummed dict of copies (nothing in it aliases the live objects)."""
    scheduler = model.lr_scheduler
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "kinds": kinds_of(optimizer, name),
        "batch": dict(batch),
        "net": {k: v.detach().clone() for k, v in model.net.state_dict().items()},
        "external": [v.detach().clone() for v in model.external_trainable_variables or []],
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "generator": generator.get_state().clone(),
        "noise_generator": noise_generator.get_state().clone(),
        "batches": None if batches is None else batches.state_dict(),
        "losses": torch.tensor(losses, dtype=torch.float64),
        "steps": int(steps),
        "lr_scheduler": None if scheduler is None else copy.deepcopy(scheduler.state_dict()),
        "deepxde_step": int(model.train_state.step),
    }
    state["checksum"] = checkpoint_checksum(state)
    return state


def _fail(message: str) -> CheckpointError:
    return CheckpointError(f"resume: {message}")


def _check_tensors(entry: str, saved: Mapping[str, Any], live: Mapping[str, torch.Tensor]) -> None:
    if not isinstance(saved, Mapping) or set(saved) != set(live):
        raise _fail(f"'{entry}' holds the tensors {sorted(saved) if isinstance(saved, Mapping) else saved!r}, but the "
                    f"model has {sorted(live)}; was it saved from another network?")  # fmt: skip
    for key, tensor in live.items():
        value = saved[key]
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape or value.dtype != tensor.dtype:
            got = f"{tuple(value.shape)} {value.dtype}" if isinstance(value, torch.Tensor) else type(value).__name__
            raise _fail(f"'{entry}' tensor {key!r} is {got}, the model's is {tuple(tensor.shape)} {tensor.dtype}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise _fail(f"'{entry}' tensor {key!r} holds NaN/Inf: the saved run had diverged")


def check_resume(
    resume: object, model: Any, optimizer: torch.optim.Optimizer, name: str, *, batch: dict[str, Any], decay: bool
) -> Mapping[str, Any]:
    """``resume`` if it can continue this phase (see the module docs for what is refused), before any work."""
    if isinstance(resume, str | bytes) or hasattr(resume, "__fspath__"):
        raise _fail("got a path; load it first: train(..., resume=torch.load(path, weights_only=True))")
    if not isinstance(resume, Mapping):
        raise _fail(f"must be the dict TrainResult.state gives, got {type(resume).__name__}")
    missing = [k for k in _KEYS if k not in resume]
    if missing:
        raise _fail(f"the state is missing {missing} (truncated, or not a TrainResult.state)")
    if resume["format"] != STATE_FORMAT:
        raise _fail(f"'format' is {resume['format']!r}, not {STATE_FORMAT!r}")
    version = resume["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version > STATE_VERSION or version < 1:
        raise _fail(f"'version' is {version!r}; this noisygrad reads versions 1 to {STATE_VERSION}")
    if resume["checksum"] != checkpoint_checksum(resume):
        raise _fail("'checksum' does not match the contents: the state was changed or corrupted after it was saved")
    kinds = kinds_of(optimizer, name)
    if resume["kinds"] != kinds:
        raise _fail(f"'kinds' is {resume['kinds']!r}, but this phase runs {kinds!r}; resume with the same optimizer")
    if resume["batch"] != batch:
        raise _fail(f"'batch' is {resume['batch']!r}, but this phase has {batch!r}; resume with the same settings")
    _check_tensors("net", resume["net"], dict(model.net.state_dict()))
    live_external = {str(i): v for i, v in enumerate(model.external_trainable_variables or [])}
    saved_external = resume["external"]
    if not isinstance(saved_external, list | tuple):
        raise _fail(f"'external' must be a list of tensors, got {type(saved_external).__name__}")
    _check_tensors("external", {str(i): v for i, v in enumerate(saved_external)}, live_external)
    for key in ("generator", "noise_generator"):
        value = resume[key]
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8:
            raise _fail(f"'{key}' must be a torch.Generator state (a uint8 tensor)")
    losses = resume["losses"]
    if not isinstance(losses, torch.Tensor) or losses.ndim != 1:
        raise _fail("'losses' must be a 1-D tensor")
    for key in ("steps", "deepxde_step"):
        value = resume[key]
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise _fail(f"'{key}' must be an integer >= 0, got {value!r}")
    if (resume["batches"] is None) != (batch["batch_size"] is None):
        raise _fail("'batches' must be present exactly when the phase trains on mini-batches")
    if (resume["lr_scheduler"] is not None) != decay:
        raise _fail(
            "'lr_scheduler' holds a learning-rate decay's state; pass the same decay=... to train()"
            if decay is False
            else "the state has no learning-rate decay, but decay=... was given; resume with the same settings"
        )
    return resume


def restore_run(
    resume: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    *,
    generator: torch.Generator,
    noise_generator: torch.Generator,
    batches: Any,
) -> tuple[list[float], int]:
    """Put a checked state into the phase's optimizer, generators and batches (before the model is compiled, so
    that a state that does not fit them leaves the model untouched); returns the losses and the steps so far."""
    if batches is not None:
        try:
            batches.load_state_dict(resume["batches"])
        except ValueError as error:
            raise _fail(str(error)) from error
    for key in ("generator", "noise_generator"):  # tried on a scratch generator: a bad state changes no one's
        try:
            torch.Generator().set_state(resume[key].clone())
        except RuntimeError as error:
            raise _fail(f"'{key}' is a state torch cannot restore: {error}") from error
    try:
        optimizer.load_state_dict(copy.deepcopy(resume["optimizer"]))
    except (KeyError, ValueError, TypeError, RuntimeError) as error:
        raise _fail(f"'optimizer' does not fit this optimizer: {error}") from error
    generator.set_state(resume["generator"].clone())
    noise_generator.set_state(resume["noise_generator"].clone())
    return [float(v) for v in resume["losses"].tolist()], int(resume["steps"])


def restore_model(resume: Mapping[str, Any], model: Any) -> None:
    """Put a checked state's weights, unknowns, decay state and step counter into the compiled model."""
    with torch.no_grad():
        model.net.load_state_dict(resume["net"])
        for variable, value in zip(model.external_trainable_variables or [], resume["external"], strict=True):
            variable.copy_(value)
    if resume["lr_scheduler"] is not None:
        model.lr_scheduler.load_state_dict(copy.deepcopy(resume["lr_scheduler"]))
    model.train_state.step = model.train_state.iteration = int(resume["deepxde_step"])
