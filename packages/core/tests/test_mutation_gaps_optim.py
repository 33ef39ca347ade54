"""SGD, Adam and the schedules: the behaviours mutation testing found unchecked (tools/mutation.py, issue 18).

Documented defaults, torch.optim parity in its corners (dampening without momentum, weight decay of 1,
AMSGrad), the validation ranges, and each schedule's closed form. All checks are exact: no randomness
beyond fixed-seed gradients compared bit for bit with torch.optim.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import noisygrad as ng
from noisygrad.schedules import Constant, Cosine, RobbinsMonro, StepDecay, as_schedule, check_rate


def _parity(
    ours: ng.SGD | ng.Adam, theirs: type[torch.optim.Optimizer], steps: int = 12, **torch_kwargs: object
) -> None:
    """``ours`` and ``theirs(**torch_kwargs)`` take the same iterates, bit for bit, on fixed-seed gradients."""
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(5, generator=gen, dtype=torch.float64) for _ in range(steps)]
    param = torch.nn.Parameter(x0.clone())
    reference = theirs([param], **torch_kwargs)
    x, state = x0.clone(), ours.init(x0)
    for g in grads:
        param.grad = g.clone()
        reference.step()
        x, state = ours.update(x, g, state)
        torch.testing.assert_close(x, param.detach(), rtol=0, atol=0)
        # the state keeps torch.optim's keys and values (TorchOptimizer's state dicts load into torch.optim)
        theirs_state = reference.state[param]
        for key, value in state.items():
            if key == "step":
                continue
            if value is None:
                assert theirs_state.get(key) is None
            else:
                torch.testing.assert_close(value, theirs_state[key], rtol=0, atol=0)


def test_sgd_dampening_without_momentum_is_ignored_as_torch_ignores_it():
    _parity(ng.SGD(0.1, dampening=0.5), torch.optim.SGD, lr=0.1, dampening=0.5)


def test_sgd_weight_decay_of_one_matches_torch():
    _parity(ng.SGD(0.1, weight_decay=1.0), torch.optim.SGD, lr=0.1, weight_decay=1.0)
    _parity(ng.SGD(0.1, momentum=0.5, weight_decay=1.0), torch.optim.SGD, lr=0.1, momentum=0.5, weight_decay=1.0)


def test_sgd_and_adam_defaults_are_torchs():
    _parity(ng.SGD(), torch.optim.SGD, lr=1e-2)
    _parity(ng.Adam(), torch.optim.Adam)
    sgd = ng.SGD()
    assert (sgd.momentum, sgd.dampening, sgd.nesterov, sgd.weight_decay) == (0.0, 0.0, False, 0.0)
    assert sgd.lr(0) == 1e-2
    adam = ng.Adam()
    assert (adam.betas, adam.eps, adam.weight_decay, adam.amsgrad, adam.decoupled_weight_decay) == (
        (0.9, 0.999),
        1e-8,
        0.0,
        False,
        False,
    )
    assert adam.lr(0) == 1e-3


@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_amsgrad_matches_torch(decoupled):
    twin = torch.optim.AdamW if decoupled else torch.optim.Adam
    ours = ng.Adam(1e-2, weight_decay=0.1, decoupled_weight_decay=decoupled, amsgrad=True)
    _parity(ours, twin, lr=1e-2, weight_decay=0.1, amsgrad=True)


def test_adam_weight_decay_of_one_and_other_betas_match_torch():
    _parity(
        ng.Adam(1e-2, betas=(0.5, 0.7), weight_decay=1.0), torch.optim.Adam, lr=1e-2, betas=(0.5, 0.7), weight_decay=1.0
    )


def test_adam_amsgrad_state_holds_the_running_maximum():
    rule = ng.Adam(1e-2, amsgrad=True)
    x = torch.zeros(2, dtype=torch.float64)
    state = rule.init(x)
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert set(ng.Adam(1e-2).init(x)) == {"step", "exp_avg", "exp_avg_sq"}
    x, state = rule.update(x, torch.tensor([3.0, 1.0], dtype=torch.float64), state)
    high = state["max_exp_avg_sq"].clone()
    x, state = rule.update(x, torch.tensor([0.0, 0.0], dtype=torch.float64), state)
    torch.testing.assert_close(state["max_exp_avg_sq"], high, rtol=0, atol=0)  # v decayed, the maximum did not
    assert bool((state["exp_avg_sq"] < high).all())


def test_adam_amsgrad_switched_on_midway_starts_its_maximum_at_v():
    x = torch.zeros(2, dtype=torch.float64)
    g = torch.tensor([1.0, -2.0], dtype=torch.float64)
    plain = ng.Adam(1e-2)
    x1, state = plain.update(x, g, plain.init(x))
    amsgrad = plain.replace(amsgrad=True)
    x2, state2 = amsgrad.update(x1, g, state)
    x2_plain, state2_plain = plain.update(x1, g, state)
    torch.testing.assert_close(state2["max_exp_avg_sq"], state2_plain["exp_avg_sq"], rtol=0, atol=0)
    torch.testing.assert_close(x2, x2_plain, rtol=0, atol=0)  # the maximum of v and v is v


def test_rules_name_their_settings_and_torch_twins():
    assert ng.SGD.hyperparameters == ("momentum", "dampening", "weight_decay", "nesterov")
    assert ng.SGD.torch_twin == "SGD"
    assert ng.SGD.complex_as_real is False
    assert ng.Adam.hyperparameters == ("betas", "eps", "weight_decay", "amsgrad", "decoupled_weight_decay")
    assert ng.Adam.torch_twin == "Adam"
    changed = ng.SGD(0.1, momentum=0.5).replace(momentum=0.25, dampening=0.1, weight_decay=0.2)
    assert (changed.momentum, changed.dampening, changed.weight_decay, changed.lr(0)) == (0.25, 0.1, 0.2, 0.1)
    assert ng.Adam(0.1).replace(eps=1e-3, betas=(0.5, 0.6)).eps == 1e-3
    x = torch.zeros(3)
    assert ng.SGD(0.1, momentum=0.9).init(x) == {"step": 0, "momentum_buffer": None}  # torch.optim.SGD's key


@pytest.mark.parametrize(
    "make",
    [
        lambda: ng.SGD(0.1, momentum=1.0),
        lambda: ng.SGD(0.1, momentum=-0.1),
        lambda: ng.SGD(0.1, dampening=1.0),
        lambda: ng.SGD(0.1, weight_decay=-1e-3),
        lambda: ng.SGD(0.1, nesterov=True),
        lambda: ng.SGD(0.1, momentum=0.9, dampening=0.1, nesterov=True),
        lambda: ng.Adam(0.1, betas=(1.0, 0.9)),
        lambda: ng.Adam(0.1, betas=(0.9, 1.0)),
        lambda: ng.Adam(0.1, betas=(0.9, 0.99, 0.9)),
        lambda: ng.Adam(0.1, betas="ab"),
        lambda: ng.Adam(0.1, eps=0.0),
        lambda: ng.Adam(0.1, weight_decay=-1.0),
        lambda: ng.SGD(-0.1),
    ],
)
def test_out_of_range_settings_are_refused(make):
    with pytest.raises((ValueError, TypeError)):
        make()


def test_a_bad_rate_is_refused_by_name():
    with pytest.raises(ValueError, match=r"^lr\b"):
        ng.SGD(-0.1)
    with pytest.raises(ValueError, match=r"^lr\b"):
        ng.Adam(float("nan"))


def test_settings_at_the_edge_of_their_range_are_accepted():
    assert ng.SGD(0.0, momentum=0.0, dampening=0.0).lr(0) == 0.0
    assert ng.SGD(0.1, momentum=0.999, nesterov=True).nesterov is True
    assert ng.Adam(0.1, betas=(0.0, 0.0)).betas == (0.0, 0.0)


def test_cosine_with_its_default_final_decays_to_zero():
    s = Cosine(1.0, steps=10)
    assert s.final == 0.0
    assert s(0) == 1.0
    assert s(5) == pytest.approx(0.5, abs=1e-15)
    assert s(10) == pytest.approx(0.0, abs=1e-15)
    assert s(25) == s(10)
    assert s(2) == pytest.approx(0.5 * (1.0 + math.cos(math.pi * 0.2)), rel=1e-15)


def test_cosine_with_a_final_rate():
    s = Cosine(2.0, steps=4, final=0.5)
    assert [s(t) for t in (0, 4, 9)] == pytest.approx([2.0, 0.5, 0.5], abs=1e-15)
    assert s(1) == pytest.approx(0.5 + 0.75 * (1.0 + math.cos(math.pi / 4)), rel=1e-15)


def test_robbins_monro_defaults_and_closed_form():
    s = RobbinsMonro(2.0)
    assert (s.b, s.alpha) == (1.0, 1.0)
    assert [s(t) for t in (0, 1, 3)] == [2.0, 1.0, 0.5]
    s = RobbinsMonro(1.5, b=3.0, alpha=0.6)
    assert s(2) == pytest.approx(1.5 / 5.0**0.6, rel=1e-15)
    assert RobbinsMonro(1.0, alpha=1.0).alpha == 1.0  # the closed end of (1/2, 1]
    with pytest.raises(ValueError, match="alpha"):
        RobbinsMonro(1.0, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        RobbinsMonro(1.0, alpha=1.01)


def test_step_decay_default_factor_and_its_range():
    s = StepDecay(1.0, every=3)
    assert s.factor == 0.1
    assert [s(t) for t in (0, 2, 3, 6)] == pytest.approx([1.0, 1.0, 0.1, 0.01], rel=1e-15)
    assert StepDecay(1.0, every=2, factor=1.0)(10) == 1.0  # factor 1 (no decay) is allowed
    with pytest.raises(ValueError, match="factor"):
        StepDecay(1.0, every=2, factor=0.0)
    with pytest.raises(ValueError, match="factor"):
        StepDecay(1.0, every=2, factor=1.5)  # a factor above 1 would grow the rate, not decay it
    with pytest.raises(ValueError, match="every"):
        StepDecay(1.0, every=0)


def test_schedules_are_frozen_and_checked():
    for s in (Constant(0.1), RobbinsMonro(1.0), Cosine(1.0, steps=3), StepDecay(1.0, every=2)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            s.value = 2.0  # type: ignore[misc]
    assert Constant(0.0)(7) == 0.0
    with pytest.raises(ValueError, match="value"):
        Constant(-1.0)
    with pytest.raises(ValueError, match="steps"):
        Cosine(1.0, steps=0)
    with pytest.raises(ValueError, match="final"):
        Cosine(1.0, steps=3, final=-0.1)
    assert Cosine(1.0, steps=3, final=0.0)(3) == 0.0


def test_as_schedule_and_check_rate():
    assert as_schedule("lr", 0.5) == Constant(0.5)
    assert as_schedule("lr", 0.0) == Constant(0.0)
    s = RobbinsMonro(1.0)
    assert as_schedule("lr", s) is s
    with pytest.raises(ValueError, match=r"lr\(0\)"):
        as_schedule("lr", lambda t: -1.0)
    with pytest.raises(ValueError, match=r"step\(3\)"):
        check_rate(lambda t: float("nan"), 3, "step")
    assert check_rate(lambda t: 0.0, 5) == 0.0
    with pytest.raises(ValueError, match=r"^lr\(3\)"):  # the default name is lr
        check_rate(lambda t: -1.0, 3)


@pytest.mark.parametrize("betas", ["ab", b"ab", 0.9, None])
def test_adam_betas_that_are_not_a_pair_of_numbers_are_refused_by_name(betas):
    """A string of length 2 and a number without a length both get the documented TypeError naming ``betas``
    (not an error from ``len()`` or from the range check of a character)."""
    with pytest.raises(TypeError, match=r"^betas must be a pair of numbers"):
        ng.Adam(0.1, betas=betas)
