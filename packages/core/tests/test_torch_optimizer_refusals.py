"""What ``torch.optim`` accepts and ``TorchOptimizer`` refuses is refused by name, and the adapter's
promises for rules without a torch twin: settings they lack refused, ``lr = 0``, pickle and deepcopy.

Each refusal case first checks that torch's own optimizer accepts the same call, so the list stays honest as
torch changes; the runs are deterministic (fixed generators), so equalities are exact.
"""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import pytest
import torch

import noisygrad as ng
from noisygrad.adapters.torch_optim import TorchAdam, TorchAdamW, TorchSGD


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g, dtype=torch.float64))]


# (our drop-in, torch's class, the setting, a value torch accepts that the noisygrad rule cannot honour)
ACCEPTED_BY_TORCH_REFUSED_HERE = [
    (TorchSGD, torch.optim.SGD, {"momentum": 1.0}, "momentum"),  # no decay of the buffer: diverges
    (TorchSGD, torch.optim.SGD, {"momentum": 2.0}, "momentum"),
    (TorchSGD, torch.optim.SGD, {"momentum": 0.5, "dampening": 1.0}, "dampening"),
    (TorchSGD, torch.optim.SGD, {"momentum": 0.5, "dampening": -0.5}, "dampening"),
    (TorchSGD, torch.optim.SGD, {"lr": math.inf}, "lr"),
    (TorchAdam, torch.optim.Adam, {"eps": 0.0}, "eps"),
    (TorchAdamW, torch.optim.AdamW, {"eps": 0.0}, "eps"),
    (TorchAdam, torch.optim.Adam, {"fused": True}, "fused"),
    (TorchSGD, torch.optim.SGD, {"differentiable": True}, "differentiable"),
]


@pytest.mark.parametrize(
    ("ours", "twin", "kwargs", "setting"),
    ACCEPTED_BY_TORCH_REFUSED_HERE,
    ids=[f"{case[0].__name__}-{case[2]}" for case in ACCEPTED_BY_TORCH_REFUSED_HERE],
)
def test_what_torch_accepts_and_we_refuse_is_refused_by_name(
    ours: type, twin: type, kwargs: dict[str, Any], setting: str
) -> None:
    twin(_params(), **kwargs)  # torch takes it
    with pytest.raises(ValueError, match=setting):
        ours(_params(), **kwargs)
    opt = ours(_params())  # and per group: the group is refused whole, nothing is added
    with pytest.raises(ValueError, match=rf"param group 1: .*{setting}"):
        opt.add_param_group({"params": _params(1), **kwargs})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("setting", [{"weight_decay": 0.1}, {"momentum": 0.9}, {"betas": (0.8, 0.9)}, {"eps": 1e-8}])
def test_a_rule_without_a_twin_refuses_torch_settings_it_lacks(setting: dict[str, Any]) -> None:
    """SGLD has none of torch's settings: a group that sets one is refused naming it, not run without it."""
    (name,) = setting
    with pytest.raises(ValueError, match=rf"param group 0: {name}=.* noisygrad.SGLD does not have"):
        ng.TorchOptimizer([{"params": _params(), **setting}], ng.SGLD(1e-3))
    opt = ng.TorchOptimizer(_params(), ng.SGLD(1e-3))
    with pytest.raises(ValueError, match=rf"param group 1: {name}="):
        opt.add_param_group({"params": _params(1), **setting})
    assert len(opt.param_groups) == 1


def test_a_rule_without_a_twin_takes_neutral_values_and_keys_of_ones_own() -> None:
    """0 / False / None change nothing, so they pass; a key that is no torch setting is kept, as torch keeps it."""
    opt = ng.TorchOptimizer(
        [{"params": _params(), "weight_decay": 0.0, "nesterov": False, "name": "encoder"}], ng.SGLD(1e-3)
    )
    assert opt.param_groups[0]["name"] == "encoder"


@pytest.mark.parametrize(
    "rule",
    [lambda: ng.SGLD(0.0), lambda: ng.BAOAB(0.0), lambda: ng.SGD(0.0), lambda: ng.Adam(0.0)],
    ids=["SGLD", "BAOAB", "SGD", "Adam"],
)
def test_lr_zero_leaves_parameters_as_they_are_for_every_rule(rule: Any) -> None:
    """torch.optim allows lr = 0; every rule takes it, samplers included (their noise scales with the step)."""
    params = _params()
    before = [p.detach().clone() for p in params]
    opt = ng.TorchOptimizer(params, rule())
    for _ in range(3):
        opt.zero_grad()
        (params[0] ** 2).sum().backward()
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_keep_a_stochastic_rule_and_its_noise_stream(how: str) -> None:
    """A copy taken mid-run continues exactly as the original does: the rule and the sampler's generator travel."""
    params = _params()
    opt = ng.TorchOptimizer(params, ng.SGLD(1e-3, temperature=0.5))

    def steps(optimizer: torch.optim.Optimizer, tensors: list[torch.Tensor], n: int) -> None:
        for _ in range(n):
            optimizer.zero_grad()
            (tensors[0] ** 2).sum().backward()
            optimizer.step()

    steps(opt, params, 3)
    bundle = (opt, params)
    opt2, params2 = pickle.loads(pickle.dumps(bundle)) if how == "pickle" else copy.deepcopy(bundle)
    assert repr(opt2.rule) == repr(opt.rule)
    steps(opt, params, 4)
    steps(opt2, params2, 4)
    assert torch.equal(params[0], params2[0])
