"""A phase of ``ngp.train`` continues bit for bit from ``TrainResult.state`` (issue 17: mini-batch training used to
land 1.2e-3 away), through ``torch.save``/``torch.load(weights_only=True)``; bad states are refused before any work.

All on the tiny Poisson problem (24 + 2 points), a few dozen steps each: exact comparisons, no tolerances.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad import CheckpointError
from noisygrad.pinn import Plateau, problems

from .conftest import params_of, same, tiny_poisson

STEPS = 12


def _saved(state: dict[str, Any]) -> dict[str, Any]:
    """The state after a round trip through a file, loaded with weights only."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "adam", "lr": 1e-2, "batch_size": 8, "batch_every": 5},  # resumed in the middle of a batch
        {"optimizer": "sgd", "lr": 1e-2, "batch_size": 6, "noise_every": 4, "noise_groups": 2},
        {"optimizer": "lbfgs", "batch_size": 8},  # the noise-robust L-BFGS: curvature memory restored
        {"optimizer": "adam", "lr": 1e-2, "decay": ("step", 5, 0.5)},  # full set, with a learning-rate decay
    ],
    ids=["adam-batches", "sgd-noise", "robust-lbfgs", "adam-decay"],
)
def test_a_resumed_phase_continues_bit_for_bit(settings: dict[str, Any]) -> None:
    straight = tiny_poisson(0)
    whole = ngp.train(straight, iterations=2 * STEPS, seed=3, verbose=0, **settings)

    first_model = tiny_poisson(0)
    first = ngp.train(first_model, iterations=STEPS, seed=3, verbose=0, **settings)
    assert first.state is not None
    fresh = tiny_poisson(1)  # another start: every weight must come from the state
    second = ngp.train(fresh, iterations=STEPS, seed=99, resume=_saved(first.state), verbose=0, **settings)

    assert same(params_of(fresh), params_of(straight))
    assert torch.equal(torch.as_tensor(list(first.losses) + list(second.losses)), torch.as_tensor(whole.losses))
    assert second.batch_draws + first.batch_draws == whole.batch_draws
    assert fresh.train_state.step == straight.train_state.step == 2 * STEPS
    if "noise_every" in settings:
        assert [n.trace_cov for _, n in first.noise + second.noise] == [n.trace_cov for _, n in whole.noise]
    assert second.state is not None
    assert whole.state is not None
    assert torch.equal(second.state["generator"], whole.state["generator"])


@pytest.mark.parametrize("optimizer", ["lbfgs", "ssbroyden"])
def test_full_set_quasi_newton_methods_resume_their_memory(optimizer: str) -> None:
    """torch's L-BFGS (history, last direction and step) and the dense SSBroyden matrix, in float64, chunks of 4."""
    with problems.default_float("float64"):
        straight, first_model, fresh = tiny_poisson(0), tiny_poisson(0), tiny_poisson(1)
    settings = {"lbfgs_chunk": 4, "verbose": 0}
    ngp.train(straight, optimizer, iterations=16, **settings)
    first = ngp.train(first_model, optimizer, iterations=8, **settings)
    assert first.state is not None
    ngp.train(fresh, optimizer, iterations=8, resume=_saved(first.state), **settings)
    assert same(params_of(fresh), params_of(straight))


def test_a_generator_seed_is_set_to_the_saved_state_and_goes_on() -> None:
    model = tiny_poisson(0)
    first = ngp.train(model, "adam", iterations=STEPS, batch_size=8, verbose=0)
    generator = torch.Generator().manual_seed(123)
    ngp.train(model, "adam", iterations=1, batch_size=8, seed=generator, resume=first.state, verbose=0)
    assert not torch.equal(generator.get_state(), first.state["generator"])  # it went on from the saved state


def test_a_stop_rule_looks_back_over_the_resumed_run() -> None:
    rule = Plateau(window=4, rel_tol=0.9)  # stops at the first whole pair of windows
    model = tiny_poisson(0)
    first = ngp.train(model, "adam", lr=1e-3, iterations=6, batch_size=8, stop=rule, verbose=0)
    assert first.stopped == "iterations"
    second = ngp.train(model, "adam", lr=1e-3, iterations=20, batch_size=8, stop=rule, resume=first.state, verbose=0)
    assert second.stopped == "plateau"
    assert second.iterations == 2


def _state() -> tuple[Any, dict[str, Any]]:
    model = tiny_poisson(0)
    result = ngp.train(model, "adam", iterations=4, batch_size=8, verbose=0)
    assert result.state is not None
    return model, result.state


def _edited(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``state`` with entries changed and its checksum brought up to date (what only a deliberate edit gives)."""
    from noisygrad.loop_checkpoint import checkpoint_checksum

    out = {**state, **changes}
    out["checksum"] = checkpoint_checksum(out)
    return out


def _bad_states(state: dict[str, Any]) -> list[tuple[str, object, str]]:
    net = dict(state["net"])
    first = next(iter(net))
    flipped = {**state, "net": {**net, first: net[first].clone().add_(1e-3)}}  # checksum now stale
    return [
        ("path", "run.pt", "load it first"),
        ("list", [1, 2], "must be the dict"),
        ("truncated", {k: v for k, v in state.items() if k != "optimizer"}, "missing \\['optimizer'\\]"),
        ("format", _edited(state, format="noisygrad.minimize"), "'format'"),
        ("version", _edited(state, version=2), "'version'"),
        ("flipped", flipped, "'checksum'"),
        ("optimizer", _edited(state, kinds={"optimizer": "SGD", "name": "sgd"}), "'kinds'"),
        ("batch", _edited(state, batch={"batch_size": 4, "batch_every": 1}), "'batch'"),
        ("shape", _edited(state, net={**net, first: torch.zeros(3, 3, dtype=net[first].dtype)}), "'net'"),
        ("nan", _edited(state, net={**net, first: torch.full_like(net[first], float("nan"))}), "NaN"),
        ("index", _edited(state, batches={**state["batches"], "index": torch.arange(3)}), "'index'"),
    ]


@pytest.mark.parametrize("case", range(11))
def test_bad_states_are_refused_before_any_work(case: int) -> None:
    model, state = _state()
    name, bad, message = _bad_states(state)[case]
    before = params_of(model)
    optimizer = model.opt
    generator = torch.Generator().manual_seed(5)
    generator_before = generator.get_state()
    with pytest.raises(CheckpointError, match=message):
        ngp.train(model, "adam", iterations=4, batch_size=8, seed=generator, resume=bad, verbose=0)  # type: ignore[arg-type]
    assert same(params_of(model), before), name
    assert model.opt is optimizer, name  # not even recompiled
    assert torch.equal(generator.get_state(), generator_before), name


def test_adam_then_lbfgs_takes_no_resume() -> None:
    model, state = _state()
    with pytest.raises(TypeError, match="resume"):
        ngp.adam_then_lbfgs(model, iterations=2, lbfgs_iterations=2, resume=state)
