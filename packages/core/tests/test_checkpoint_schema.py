"""``minimize``'s checkpoint schema: what ``resume=`` refuses, with which message, and what it still resumes.

Every refusal is raised before any work: the checkpoint, the optimizer and the estimator are left as they were
(checked by comparing them with copies taken before the call).
"""

from __future__ import annotations

import copy
import io
import warnings

import pytest
import torch

import noisygrad as ng
from noisygrad.loop_checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointError,
    LegacyCheckpointWarning,
    checkpoint_checksum,
)

D = 4


def _least_squares(d: int = D, n: int = 120, seed: int = 0) -> ng.GLM:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = X @ torch.arange(1.0, d + 1, dtype=torch.float64) + 0.3 * torch.randn(n, generator=gen, dtype=torch.float64)
    return ng.GLM(X, y, loss="squared")


def _run(optimizer=None, estimator=None, steps: int = 6, **kwargs):
    objective = _least_squares()
    estimator = ng.MiniBatch(objective, 8) if estimator is None else estimator
    optimizer = ng.Adam(0.05) if optimizer is None else optimizer
    return ng.minimize(estimator, optimizer, torch.zeros(D, dtype=torch.float64), steps=steps, seed=3, **kwargs)


def _saved(checkpoint: dict) -> dict:
    """``checkpoint`` through ``torch.save`` and ``torch.load(weights_only=True)``."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _same(a: object, b: object) -> bool:
    """Deep equality of checkpoint-like values, tensors compared bit for bit (NaN equal to the same NaN)."""
    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        return torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _restamp(checkpoint: dict) -> dict:
    """``checkpoint`` with its checksum recomputed: a state edited consistently, to reach the checks after it."""
    checkpoint["checksum"] = checkpoint_checksum(checkpoint)
    return checkpoint


def _refused(checkpoint: object, error: type[Exception], match: str, *, optimizer=None, estimator=None) -> None:
    """``resume=checkpoint`` raises ``error`` matching ``match``; nothing passed in was changed."""
    optimizer = ng.Adam(0.05) if optimizer is None else optimizer
    estimator = ng.MiniBatch(_least_squares(), 8) if estimator is None else estimator
    before = copy.deepcopy(checkpoint)
    estimator_before = estimator.state_dict()
    with pytest.raises(error, match=match):
        ng.minimize(estimator, optimizer, steps=2, resume=checkpoint)
    assert _same(checkpoint, before)
    assert _same(estimator.state_dict(), estimator_before)


# ---------------------------------------------------------------- the schema and a clean resume


def test_the_checkpoint_records_its_schema_and_loads_with_weights_only():
    checkpoint = _saved(_run().checkpoint)
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert checkpoint["version"] == CHECKPOINT_VERSION == 1
    assert checkpoint["kinds"] == {"optimizer": "Adam", "estimator": "MiniBatch"}
    assert checkpoint["params"] == {"shape": [D], "dtype": "float64"}
    assert checkpoint["checksum"].startswith("sha256:")
    assert checkpoint["checksum"] == checkpoint_checksum(checkpoint)


@pytest.mark.parametrize(
    "make",
    [
        lambda: (ng.Adam(0.05), ng.MiniBatch(_least_squares(), 8)),
        lambda: (ng.SGD(0.05, momentum=0.9), ng.MiniBatch(_least_squares(), 8)),
        lambda: (ng.SGLD(0.01, temperature=0.1), ng.MiniBatch(_least_squares(), 8)),
        lambda: (ng.SGD(0.05), ng.SAGA(_least_squares(), 8)),
        lambda: (ng.SGD(0.05), ng.SVRG(_least_squares(), 8)),
    ],
    ids=["adam", "sgd-momentum", "sgld", "saga", "svrg"],
)
def test_a_saved_checkpoint_resumes_bit_identically(make):
    optimizer, estimator = make()
    whole = ng.minimize(estimator, optimizer, torch.zeros(D, dtype=torch.float64), steps=20, seed=5)
    optimizer, estimator = make()
    first = ng.minimize(estimator, optimizer, torch.zeros(D, dtype=torch.float64), steps=8, seed=5)
    optimizer, estimator = make()
    rest = ng.minimize(estimator, optimizer, steps=12, resume=_saved(first.checkpoint))
    assert torch.equal(rest.x, whole.x)
    assert rest.checkpoint["checksum"] == whole.checkpoint["checksum"]  # the same state, bit for bit


# ---------------------------------------------------------------- what resume= refuses


def test_an_empty_dict_is_refused_as_empty():
    _refused({}, CheckpointError, r"resume: the checkpoint is empty")


@pytest.mark.parametrize(
    "path", ["run.pt", b"run.pt", __import__("pathlib").Path("run.pt")], ids=["str", "bytes", "path"]
)
def test_a_path_is_refused_saying_to_load_it_first(path):
    _refused(path, TypeError, r"resume must be a checkpoint dict .*torch\.load\(path, weights_only=True\)")


@pytest.mark.parametrize("value", [42, [1, 2], None.__class__, torch.zeros(3)], ids=["int", "list", "type", "tensor"])
def test_anything_else_that_is_not_a_dict_is_refused(value):
    _refused(value, TypeError, r"resume must be a checkpoint dict")


def test_a_checkpoint_of_another_optimizer_is_refused_instead_of_dropping_its_moments():
    checkpoint = _run(ng.Adam(0.05)).checkpoint
    _refused(
        checkpoint,
        CheckpointError,
        r"written by the optimizer Adam, but the optimizer passed is SGD",
        optimizer=ng.SGD(0.1),
    )


def test_a_checkpoint_of_another_estimator_is_refused():
    checkpoint = _run().checkpoint
    _refused(
        checkpoint,
        CheckpointError,
        r"written by the estimator MiniBatch, but the estimator passed is FullBatch",
        estimator=ng.FullBatch(_least_squares()),
    )


def test_a_flipped_bit_is_refused_by_the_checksum():
    checkpoint = _saved(_run().checkpoint)
    flipped = copy.deepcopy(checkpoint)
    flipped["optimizer"]["exp_avg"].view(torch.int64)[1] ^= 1 << 20  # one bit of Adam's first moment
    _refused(flipped, CheckpointError, r"checksum mismatch")


def test_a_flipped_bit_in_the_saved_file_is_refused():
    """A bit flipped in the file's bytes (inside the parameters' storage) loads, then fails the checksum."""
    checkpoint = _run().checkpoint
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = bytearray(buffer.getvalue())
    x_bytes = checkpoint["x"].numpy().tobytes()
    at = bytes(data).find(x_bytes)
    assert at > 0
    data[at + 3] ^= 0x10
    loaded = torch.load(io.BytesIO(bytes(data)), weights_only=True)
    _refused(loaded, CheckpointError, r"checksum mismatch")


def test_an_inconsistent_saga_table_mean_is_refused_by_the_checksum():
    checkpoint = _run(ng.SGD(0.05), ng.SAGA(_least_squares(), 8)).checkpoint
    edited = copy.deepcopy(checkpoint)
    edited["estimator"]["table_mean"] = edited["estimator"]["table_mean"] + 1e-3  # no longer the table's mean
    _refused(
        edited, CheckpointError, r"checksum mismatch", optimizer=ng.SGD(0.05), estimator=ng.SAGA(_least_squares(), 8)
    )


def test_state_spliced_from_another_run_is_refused_by_the_checksum():
    one, other = _run().checkpoint, _run(steps=9).checkpoint
    spliced = {**one, "optimizer": other["optimizer"]}
    _refused(spliced, CheckpointError, r"checksum mismatch")


@pytest.mark.parametrize(
    "key",
    ["x", "optimizer", "estimator", "generator", "step", "cost", "format", "version", "kinds", "params", "checksum"],
)
def test_a_truncated_checkpoint_is_refused_naming_what_is_missing(key):
    checkpoint = _run().checkpoint
    truncated = {k: v for k, v in checkpoint.items() if k != key}
    if key in ("format", "version", "kinds", "params", "checksum"):
        _refused(truncated, CheckpointError, rf"the checkpoint lacks '{key}'")
    else:
        _refused(truncated, CheckpointError, rf"the checkpoint lacks '{key}'.*truncated")


def test_a_checkpoint_of_another_size_is_refused_naming_the_shapes():
    small = ng.minimize(
        ng.MiniBatch(_least_squares(d=3), 8), ng.Adam(0.05), torch.zeros(3, dtype=torch.float64), steps=3
    )
    _refused(small.checkpoint, CheckpointError, r"resume\['x'\] has 3 entries but the objective takes 4")


def test_an_optimizer_state_of_another_shape_is_refused():
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["optimizer"]["exp_avg"] = torch.zeros(D + 1, dtype=torch.float64)
    _refused(_restamp(checkpoint), CheckpointError, r"resume\['optimizer'\]\['exp_avg'\] has shape \(5,\)")


def test_params_that_disagree_with_x_are_refused():
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["params"] = {"shape": [D], "dtype": "float32"}
    _refused(_restamp(checkpoint), CheckpointError, r"params records shape \[4\] and dtype float32")


def test_a_diverged_checkpoint_is_refused_saying_so():
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["x"][0] = float("nan")
    checkpoint["params"] = {"shape": [D], "dtype": "float64"}
    _refused(_restamp(checkpoint), CheckpointError, r"resume\['x'\] has 1 non-finite entry .*diverged")
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["optimizer"]["exp_avg_sq"][1] = float("inf")
    _refused(_restamp(checkpoint), CheckpointError, r"resume\['optimizer'\]\['exp_avg_sq'\] holds NaN or Inf")


def test_a_newer_format_version_is_refused():
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["version"] = CHECKPOINT_VERSION + 1
    _refused(_restamp(checkpoint), CheckpointError, r"format version 2, written by a newer noisygrad")


def test_another_format_is_refused():
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint["format"] = "something.else"
    _refused(_restamp(checkpoint), CheckpointError, r"format is 'something.else'")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("generator", torch.zeros(7, dtype=torch.uint8), r"resume\['generator'\] is not a state torch can restore"),
        ("generator", torch.zeros(5056, dtype=torch.float32), r"resume\['generator'\] must be a torch.Generator state"),
        ("step", -1, r"resume\['step'\] must be an integer >= 0"),
        ("step", 2.5, r"resume\['step'\] must be an integer >= 0"),
        ("cost", {"examples": 1}, r"resume\['cost'\] must be a dict with keys examples, evaluations, shots"),
        ("value_and_grad_calls", -3, r"resume\['value_and_grad_calls'\] must be an integer >= 0"),
        ("estimator", [1, 2], r"resume\['estimator'\] must be the estimator's state dict"),
        ("optimizer", "adam", r"resume\['optimizer'\] must be the optimizer's state dict"),
        ("x", [0.0, 0.0, 0.0, 0.0], r"resume\['x'\] must be a tensor"),
    ],
)
def test_a_malformed_entry_is_refused_naming_it(key, value, match):
    checkpoint = copy.deepcopy(_run().checkpoint)
    checkpoint[key] = value
    if key == "x":
        _refused(_restamp(checkpoint), CheckpointError, r"params must be a dict|resume\['x'\] must be a tensor")
        return
    _refused(_restamp(checkpoint), CheckpointError, match)


def test_an_estimator_state_that_does_not_fit_leaves_the_estimator_unchanged():
    checkpoint = copy.deepcopy(_run(ng.SGD(0.05), ng.SAGA(_least_squares(), 8)).checkpoint)
    checkpoint["estimator"]["table"] = torch.zeros(7, dtype=torch.float64)  # a table of 7 examples, not 120
    estimator = ng.SAGA(_least_squares(), 8)
    ng.minimize(estimator, ng.SGD(0.05), torch.zeros(D, dtype=torch.float64), steps=3, seed=1)  # some memory
    _refused(
        _restamp(checkpoint),
        CheckpointError,
        r"resume\['estimator'\] does not fit the SAGA",
        optimizer=ng.SGD(0.05),
        estimator=estimator,
    )


# ---------------------------------------------------------------- checkpoints written before the schema


def _legacy(checkpoint: dict) -> dict:
    return {k: v for k, v in checkpoint.items() if k not in ("format", "version", "kinds", "params", "checksum")}


def test_a_checkpoint_without_the_schema_resumes_with_a_warning():
    whole = _run(steps=14)
    first = _run(steps=6)
    with pytest.warns(LegacyCheckpointWarning, match="no format version, kinds or checksum"):
        rest = ng.minimize(ng.MiniBatch(_least_squares(), 8), ng.Adam(0.05), steps=8, resume=_legacy(first.checkpoint))
    assert torch.equal(rest.x, whole.x)
    assert "checksum" in rest.checkpoint  # the continued run writes the schema


def test_a_checkpoint_without_the_schema_is_still_checked_for_structure():
    legacy = _legacy(_run(ng.Adam(0.05)).checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyCheckpointWarning)
        _refused(legacy, CheckpointError, r"has the keys .*exp_avg.* but SGD keeps", optimizer=ng.SGD(0.1))
        _refused(legacy, CheckpointError, r"has the keys .* but Adam keeps", optimizer=ng.Adam(0.05, amsgrad=True))


def test_a_warning_made_an_error_refuses_checkpoints_without_the_schema():
    legacy = _legacy(_run().checkpoint)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegacyCheckpointWarning)
        with pytest.raises(LegacyCheckpointWarning):
            ng.minimize(ng.MiniBatch(_least_squares(), 8), ng.Adam(0.05), steps=2, resume=legacy)
