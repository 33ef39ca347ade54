"""TorchOptimizer against PyTorch's own optimizer descriptions: a user swaps it in and nothing else changes.

Run by ``.ci/peer-tests`` in a pytest process of its own (``make peer-tests``): importing
``torch.testing._internal`` changes torch's global state (``torch.backends.disable_global_flags()``), which the
rest of the suite must not inherit.

PyTorch describes each optimizer in ``torch.testing._internal.common_optimizers.optim_db``: the configurations
its own tests run (``optim_inputs_func``), the schedulers (``scheduler_inputs``), the inputs that must fail
(``optim_error_inputs_func``) and the ``supports_*`` flags. The test bodies of PyTorch's ``test/test_optim.py``
are not shipped with torch, so the checks here are written for this battery; they cover what that file checks:
steps equal to torch's own optimizer of the same configuration (bit for bit), state-dict round trips and
loading into a fresh optimizer (ours and torch's, both ways), parameter groups, ``add_param_group``, the
schedulers, closures, complex parameters, pickle and deepcopy, step hooks and ``lr = 0``.

Each drop-in (``TorchSGD``, ``TorchAdam``, ``TorchAdamW``) gets an ``OptimizerInfo`` of its own below, built
from torch's entry for its twin: every CPU configuration of torch is supported; the CUDA-only ``capturable``
configurations and the ``fused``/``differentiable`` implementations are refused by name (checked too).
"""

from __future__ import annotations

import copy
import importlib
import pickle
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch

from noisygrad import TorchOptimizer
from noisygrad.adapters.torch_optim import TorchAdam, TorchAdamW, TorchSGD

with warnings.catch_warnings():  # torch's test utilities warn that hypothesis is missing: it is not needed here
    warnings.simplefilter("ignore", ImportWarning)
    common_optimizers = importlib.import_module("torch.testing._internal.common_optimizers")  # needs expecttest
OptimizerInfo = common_optimizers.OptimizerInfo
ErrorOptimizerInput = common_optimizers.ErrorOptimizerInput
OptimizerErrorEnum = common_optimizers.OptimizerErrorEnum


def _torch_info(twin: type[torch.optim.Optimizer]) -> Any:
    return next(info for info in common_optimizers.optim_db if info.optim_cls is twin)


def _our_info(ours: type[TorchOptimizer], twin: type[torch.optim.Optimizer]) -> Any:
    """Our OptimizerInfo: torch's configurations and schedulers for the twin; what TorchOptimizer supports."""
    theirs = _torch_info(twin)
    return OptimizerInfo(
        ours,
        optim_inputs_func=theirs.optim_inputs_func,
        scheduler_inputs=theirs.scheduler_inputs,
        optim_error_inputs_func=theirs.optim_error_inputs_func,
        supported_impls=("foreach",),  # fused and differentiable are refused by name
        has_capturable_arg=theirs.has_capturable_arg,  # accepted as False, refused as True
        supports_sparse=False,
        supports_complex=True,
        supports_param_groups=True,
        step_requires_closure=False,
    )


PAIRS = [(TorchSGD, torch.optim.SGD), (TorchAdam, torch.optim.Adam), (TorchAdamW, torch.optim.AdamW)]


INFOS = {ours.__name__: (_our_info(ours, twin), twin) for ours, twin in PAIRS}
DTYPES = [torch.float32, torch.float64]
REFUSED_FLAGS = ("capturable", "fused", "differentiable")


def _refused_flag(kwargs: dict[str, Any]) -> str | None:
    return next((flag for flag in REFUSED_FLAGS if kwargs.get(flag)), None)


def _configurations(device: str) -> list[tuple[str, dict[str, Any], str]]:
    """(drop-in name, kwargs, description) for every configuration torch lists for the twin on ``device``."""
    cases = []
    for name, (info, _) in INFOS.items():
        for dtype in DTYPES:
            for config in info.optim_inputs_func(device, dtype):
                cases.append((name, {**config.kwargs, "_dtype": dtype}, config.desc))
    return cases


CPU_CASES = _configurations("cpu")
CUDA_ONLY_CASES = [case for case in _configurations("cuda") if _refused_flag(case[1])]


# ---------------------------------------------------------------------------------------------------- helpers


def _params(dtype: torch.dtype, *, complex_: bool = False, seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(4, 3, generator=g, dtype=torch.float64)
    bias = torch.randn(4, generator=g, dtype=torch.float64)
    if complex_:
        weight = torch.complex(weight, torch.randn(4, 3, generator=g, dtype=torch.float64))
        bias = torch.complex(bias, torch.randn(4, generator=g, dtype=torch.float64))
        dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return [torch.nn.Parameter(weight.to(dtype)), torch.nn.Parameter(bias.to(dtype))]


def _loss(params: list[torch.Tensor], step: int) -> torch.Tensor:
    weight, bias = params[0], params[1]
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64).to(weight.dtype)
    out = x @ weight.T + bias
    return (out.abs() ** 2).sum() + (out.real if out.is_complex() else out).sin().sum()


def _closure(opt: torch.optim.Optimizer, params: list[torch.Tensor], step: int) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _loss(params, step)
        loss.backward()
        return loss

    return closure


def _train(
    opt: torch.optim.Optimizer, params: list[torch.Tensor], steps: int, schedulers: list[Any] = (), start: int = 0
) -> list[float]:
    losses = []
    for t in range(start, start + steps):
        loss = opt.step(_closure(opt, params, t))
        losses.append(float(loss.detach()))
        for scheduler in schedulers:
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(loss.detach())
            else:
                scheduler.step()
    return losses


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], torch.dtype]:
    kwargs = dict(kwargs)
    return kwargs, kwargs.pop("_dtype")


def _pair(name: str, kwargs: dict[str, Any], dtype: torch.dtype, *, complex_: bool = False) -> tuple[Any, ...]:
    """Ours and torch's optimizer of the same configuration, each over its own copy of the same parameters."""
    ours_cls = next(ours for ours, _ in PAIRS if ours.__name__ == name)
    _, twin = INFOS[name]
    ours_params, torch_params = _params(dtype, complex_=complex_), _params(dtype, complex_=complex_)
    return ours_cls(ours_params, **kwargs), ours_params, twin(torch_params, **kwargs), torch_params


def _assert_same(ours: torch.optim.Optimizer, ours_params: list, theirs: torch.optim.Optimizer, their_params: list):
    for p, q in zip(ours_params, their_params, strict=True):
        assert torch.equal(p, q), f"parameters differ by {float((p - q).abs().max()):.3g}"
        their_state = theirs.state[q]
        for key, value in their_state.items():
            mine = ours.state[p][key]
            if isinstance(value, torch.Tensor):
                assert isinstance(mine, torch.Tensor), key
                assert mine.dtype == value.dtype, key
                assert torch.equal(mine, value), f"state {key!r} differs"
            else:
                assert mine == value, key
    for group, their_group in zip(ours.param_groups, theirs.param_groups, strict=True):
        assert group["lr"] == their_group["lr"]


# ------------------------------------------------------------------------------------- torch's configurations


@pytest.mark.parametrize(
    ("name", "kwargs", "desc"), CPU_CASES, ids=[f"{c[0]}-{c[2]}-{c[1]['_dtype']}" for c in CPU_CASES]
)
def test_steps_equal_torch(name: str, kwargs: dict[str, Any], desc: str) -> None:
    """Every CPU configuration torch tests: 12 closure steps bit-identical to torch's optimizer, state included."""
    kwargs, dtype = _split(kwargs)
    ours, p, theirs, q = _pair(name, kwargs, dtype)
    assert _train(ours, p, 12) == _train(theirs, q, 12)
    _assert_same(ours, p, theirs, q)


@pytest.mark.parametrize(
    ("name", "kwargs", "desc"), CUDA_ONLY_CASES, ids=[f"{c[0]}-{c[2]}-{c[1]['_dtype']}" for c in CUDA_ONLY_CASES]
)
def test_cuda_only_configurations_refused_by_name(name: str, kwargs: dict[str, Any], desc: str) -> None:
    kwargs, dtype = _split(kwargs)
    flag = _refused_flag(kwargs)
    with pytest.raises(ValueError, match=flag):
        _pair(name, kwargs, dtype)


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        (name, flag)
        for name, (info, _) in INFOS.items()
        for flag in REFUSED_FLAGS
        if flag != "capturable" or info.has_capturable_arg
    ],
)
def test_unsupported_implementations_refused_by_name(name: str, flag: str) -> None:
    ours_cls = INFOS[name][0].optim_cls
    with pytest.raises(ValueError, match=flag):
        ours_cls(_params(torch.float32), **{flag: True})
    opt = ours_cls(_params(torch.float32))  # also per group, as a group added later
    with pytest.raises(ValueError, match=flag):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], flag: True})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("name", list(INFOS))
@pytest.mark.parametrize("foreach", [None, False, True])
def test_foreach_is_accepted_and_changes_nothing(name: str, foreach: bool | None) -> None:
    ours, p, theirs, q = _pair(name, {"foreach": foreach}, torch.float64)
    _, twin = INFOS[name]
    theirs = twin(q, foreach=False)
    _train(ours, p, 6), _train(theirs, q, 6)
    _assert_same(ours, p, theirs, q)


# torch's error inputs that are limits of torch's own foreach/capturable kernels, not invalid values: the
# per-tensor steps here take tensor lr and betas in any mix (as one-element numbers), so these run.
LIFTED_LIMITS = (
    "lr as Tensor doesn't work with foreach",
    "betas must be either both floats",
    "as a Tensor is not supported",
)


@pytest.mark.parametrize("name", list(INFOS))
def test_error_inputs_as_torch(name: str) -> None:
    """torch's error inputs: the same error type (a warning for duplicate parameters), or a lifted limit that runs."""
    info, _ = INFOS[name]
    ours_cls = info.optim_cls
    for error_input in info.optim_error_inputs_func("cpu", torch.float32):
        config = error_input.optimizer_error_input
        params = config.params if config.params is not None else _params(torch.float32)
        assert error_input.error_on == OptimizerErrorEnum.CONSTRUCTION_ERROR  # torch's CPU step errors: none
        if config.desc.startswith(LIFTED_LIMITS) or any(limit in config.desc for limit in LIFTED_LIMITS):
            _train(ours_cls(params, **config.kwargs), params, 2)
        elif issubclass(error_input.error_type, Warning):
            with pytest.warns(error_input.error_type):
                ours_cls(params, **config.kwargs)
        else:
            with pytest.raises(error_input.error_type):
                ours_cls(params, **config.kwargs)


@pytest.mark.parametrize("name", list(INFOS))
def test_bad_settings_name_the_argument(name: str) -> None:
    ours_cls = INFOS[name][0].optim_cls
    with pytest.raises(ValueError, match="lr"):
        ours_cls(_params(torch.float32), lr=-1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        ours_cls(_params(torch.float32), weight_decay=-1.0)
    with pytest.raises(TypeError, match="nonsense"):
        ours_cls(_params(torch.float32), nonsense=1.0)
    with pytest.raises(ValueError, match="lr"):
        ours_cls(_params(torch.float32), lr=torch.tensor([1e-3, 1e-3]))


# ---------------------------------------------------------------------------------- schedulers and lr = 0


def _scheduler_cases() -> list[tuple[str, int]]:
    return [(name, k) for name, (info, _) in INFOS.items() for k in range(len(info.scheduler_inputs))]


@pytest.mark.parametrize(("name", "index"), _scheduler_cases())
def test_torch_schedulers_as_torch(name: str, index: int) -> None:
    """torch's scheduler combinations for the twin: 20 steps, rates and parameters equal to torch's."""
    info, _ = INFOS[name]
    ours, p, theirs, q = _pair(name, {"lr": 0.05}, torch.float64)
    make = info.scheduler_inputs[index]
    _train(ours, p, 20, [m(ours) for m in make]), _train(theirs, q, 20, [m(theirs) for m in make])
    _assert_same(ours, p, theirs, q)


CYCLIC: list[Callable[[torch.optim.Optimizer], Any]] = [
    lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=30),
    lambda opt: torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.001, max_lr=0.05, step_size_up=5),
    lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, t / 5)),  # warm-up from lr 0
    lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10, eta_min=0.0),  # down to lr 0
    lambda opt: torch.optim.lr_scheduler.PolynomialLR(opt, total_iters=8, power=1.0),  # ends at lr 0
]


@pytest.mark.parametrize("name", list(INFOS))
@pytest.mark.parametrize("make", CYCLIC, ids=["OneCycleLR", "CyclicLR", "LambdaLR-from-0", "Cosine-to-0", "Poly-to-0"])
def test_cyclic_and_zero_rate_schedulers(name: str, make: Callable[[torch.optim.Optimizer], Any]) -> None:
    """Cyclic schedulers cycle momentum/betas (cycle_momentum=True by default); others pass through lr = 0."""
    kwargs = {"momentum": 0.9} if name == "TorchSGD" else {}
    ours, p, theirs, q = _pair(name, kwargs, torch.float64)
    _train(ours, p, 25, [make(ours)]), _train(theirs, q, 25, [make(theirs)])
    _assert_same(ours, p, theirs, q)
    assert ours.param_groups[0].get("momentum", ours.param_groups[0].get("betas")) is not None


@pytest.mark.parametrize("name", list(INFOS))
def test_lr_zero_freezes_a_group(name: str) -> None:
    ours_cls = INFOS[name][0].optim_cls
    frozen, moving = _params(torch.float64), _params(torch.float64, seed=1)
    before = [t.detach().clone() for t in frozen]
    opt = ours_cls([{"params": frozen, "lr": 0.0}, {"params": moving, "lr": 0.01}])
    for t in range(3):
        opt.zero_grad()
        (_loss(frozen, t) + _loss(moving, t)).backward()
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(frozen, before, strict=True))
    assert not torch.equal(moving[0], _params(torch.float64, seed=1)[0])


# ------------------------------------------------------------------------------ groups, state, copies, hooks


@pytest.mark.parametrize("name", list(INFOS))
def test_param_groups_with_their_own_settings(name: str) -> None:
    """Two groups differing in every setting the twin has: equal to torch with the same groups."""
    second = {"momentum": 0.5, "dampening": 0.1, "weight_decay": 0.2} if name == "TorchSGD" else {}
    if name != "TorchSGD":
        second = {"betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.3, "amsgrad": True}
    ours_cls = INFOS[name][0].optim_cls
    twin = INFOS[name][1]
    p, q = _params(torch.float64), _params(torch.float64)
    ours = ours_cls([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.02, "maximize": True, **second}], lr=0.01)
    theirs = twin([{"params": [q[0]]}, {"params": [q[1]], "lr": 0.02, "maximize": True, **second}], lr=0.01)
    _train(ours, p, 8), _train(theirs, q, 8)
    _assert_same(ours, p, theirs, q)


@pytest.mark.parametrize("name", list(INFOS))
def test_add_param_group_mid_run(name: str) -> None:
    ours, p, theirs, q = _pair(name, {"lr": 0.01}, torch.float64)
    extra_p, extra_q = _params(torch.float64, seed=3), _params(torch.float64, seed=3)
    _train(ours, p, 3), _train(theirs, q, 3)
    ours.add_param_group({"params": extra_p, "lr": 0.03})
    theirs.add_param_group({"params": extra_q, "lr": 0.03})
    for t in range(3, 8):
        for opt, first, extra in ((ours, p, extra_p), (theirs, q, extra_q)):
            opt.zero_grad()
            (_loss(first, t) + _loss(extra, t)).backward()
            opt.step()
    _assert_same(ours, p + extra_p, theirs, q + extra_q)


@pytest.mark.parametrize("name", list(INFOS))
@pytest.mark.parametrize("direction", ["ours-to-ours", "torch-to-ours", "ours-to-torch"])
def test_state_dict_round_trips(name: str, direction: str) -> None:
    """5 steps, a state dict into a fresh optimizer, 5 more: equal to 10 uninterrupted steps of torch's."""
    kwargs = {"lr": 0.01, "weight_decay": 0.1, **({"momentum": 0.9} if name == "TorchSGD" else {"amsgrad": True})}
    ours_cls, twin = INFOS[name][0].optim_cls, INFOS[name][1]
    reference = _params(torch.float64)
    reference_opt = twin(reference, **kwargs)
    _train(reference_opt, reference, 10)
    first_cls, second_cls = {
        "ours-to-ours": (ours_cls, ours_cls),
        "torch-to-ours": (twin, ours_cls),
        "ours-to-torch": (ours_cls, twin),
    }[direction]
    params = _params(torch.float64)
    first = first_cls(params, **kwargs)
    _train(first, params, 5)
    saved = copy.deepcopy(first.state_dict())
    second = second_cls(params, **kwargs)
    second.load_state_dict(saved)
    _train(second, params, 5, start=5)
    _assert_same(second, params, reference_opt, reference) if second_cls is ours_cls else None
    assert all(torch.equal(a, b) for a, b in zip(params, reference, strict=True))


@pytest.mark.parametrize("name", list(INFOS))
@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickle_and_deepcopy_keep_the_rule(name: str, how: str) -> None:
    ours, p, theirs, q = _pair(name, {"lr": 0.01}, torch.float64)
    _train(ours, p, 3), _train(theirs, q, 3)
    bundle = (ours, p)
    ours2, p2 = pickle.loads(pickle.dumps(bundle)) if how == "pickle" else copy.deepcopy(bundle)
    assert ours2.rule == ours.rule or repr(ours2.rule) == repr(ours.rule)
    _train(ours2, p2, 3, start=3), _train(theirs, q, 3, start=3)
    _assert_same(ours2, p2, theirs, q)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("name", list(INFOS))
def test_complex_parameters_as_torch(name: str, weight_decay: float) -> None:
    """Complex parameters step as pairs of reals, as torch.optim does; state stays complex (torch's format)."""
    kwargs = {"lr": 0.01, "weight_decay": weight_decay}
    kwargs.update({"momentum": 0.9} if name == "TorchSGD" else {"amsgrad": True})
    ours, p, theirs, q = _pair(name, kwargs, torch.float64, complex_=True)
    _train(ours, p, 8), _train(theirs, q, 8)
    _assert_same(ours, p, theirs, q)
    assert p[0].is_complex()


@pytest.mark.parametrize("name", list(INFOS))
def test_step_hooks_and_closure(name: str) -> None:
    ours, p, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    calls: list[str] = []
    ours.register_step_pre_hook(lambda opt, args, kwargs: calls.append("pre"))
    ours.register_step_post_hook(lambda opt, args, kwargs: calls.append("post"))
    loss = ours.step(_closure(ours, p, 0))
    assert calls == ["pre", "post"]
    assert float(loss.detach()) == float(
        _loss(_params(torch.float64), 0).detach()
    )  # the closure's loss, before the step


@pytest.mark.parametrize("name", list(INFOS))
def test_sparse_gradients_refused(name: str) -> None:
    embedding = torch.nn.Embedding(5, 3, sparse=True)
    opt = INFOS[name][0].optim_cls(embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    before = embedding.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
    assert torch.equal(embedding.weight, before)


def test_a_rule_schedule_under_a_torch_scheduler_warns() -> None:
    import noisygrad as ng

    params = _params(torch.float64)
    opt = TorchOptimizer(params, ng.SGD(ng.RobbinsMonro(a=0.1)))
    torch.optim.lr_scheduler.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="lr_scheduler"):
        _train(opt, params, 2)
    with warnings.catch_warnings():  # once per optimizer
        warnings.simplefilter("error")
        _train(opt, params, 2, start=2)


def test_rule_schedule_refuses_group_rates() -> None:
    import noisygrad as ng

    with pytest.raises(ValueError, match="own schedule"):
        TorchOptimizer([{"params": _params(torch.float64), "lr": 0.5}], ng.SGD(ng.RobbinsMonro(a=0.1)))


def test_bad_group_settings_are_refused_by_name_and_nothing_is_added() -> None:
    import noisygrad as ng

    opt = TorchOptimizer(_params(torch.float64), ng.SGD(0.1, momentum=0.5))
    with pytest.raises(ValueError, match="param group 1: momentum"):
        opt.add_param_group({"params": _params(torch.float64, seed=1), "momentum": 1.5})
    assert len(opt.param_groups) == 1


# --------------------------------------------------------------------- the rest of what test_optim.py checks


@pytest.mark.parametrize("name", list(INFOS))
def test_step_is_a_noop_without_gradients_and_the_optimizer_prints(name: str) -> None:
    ours, p, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    before = [t.detach().clone() for t in p]
    ours.step()
    assert all(torch.equal(a, b) for a, b in zip(p, before, strict=True))
    assert not ours.state
    assert name in repr(ours)
    assert "lr: 0.01" in repr(ours)


@pytest.mark.parametrize("name", list(INFOS))
def test_older_state_dicts_without_the_newer_flags_load(name: str) -> None:
    """As torch's test_can_load_older_state_dict: groups saved before maximize/foreach/... existed still load."""
    ours, p, theirs, q = _pair(name, {"lr": 0.01}, torch.float64)
    _train(ours, p, 3), _train(theirs, q, 3)
    saved = copy.deepcopy(ours.state_dict())
    for group in saved["param_groups"]:
        for flag in ("maximize", "foreach", "differentiable", "fused", "capturable", "decoupled_weight_decay"):
            group.pop(flag, None)
    fresh = type(ours)(p, lr=0.01)
    fresh.load_state_dict(saved)
    _train(fresh, p, 3, start=3), _train(theirs, q, 3, start=3)
    _assert_same(fresh, p, theirs, q)


@pytest.mark.parametrize("name", list(INFOS))
def test_state_dict_hooks_and_determinism(name: str) -> None:
    ours, p, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    other, p2, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    _train(ours, p, 4), _train(other, p2, 4)
    first, second = ours.state_dict(), other.state_dict()
    assert first["param_groups"] == second["param_groups"]
    for index, entries in first["state"].items():
        for key, value in entries.items():
            twin_value = second["state"][index][key]
            assert torch.equal(value, twin_value) if isinstance(value, torch.Tensor) else value == twin_value
    seen: list[str] = []
    ours.register_state_dict_pre_hook(lambda opt: seen.append("pre"))
    ours.register_state_dict_post_hook(lambda opt, sd: seen.append("post") or sd)
    ours.register_load_state_dict_pre_hook(lambda opt, sd: seen.append("load-pre") or sd)
    ours.register_load_state_dict_post_hook(lambda opt: seen.append("load-post"))
    ours.load_state_dict(ours.state_dict())
    assert seen == ["pre", "post", "load-pre", "load-post"]


@pytest.mark.parametrize("name", list(INFOS))
def test_named_parameters_as_torch(name: str) -> None:
    """torch.optim takes (name, tensor) pairs and keeps the names in the groups and the state dict."""
    ours_cls, twin = INFOS[name][0].optim_cls, INFOS[name][1]
    p, q = _params(torch.float64), _params(torch.float64)
    ours = ours_cls([("weight", p[0]), ("bias", p[1])], lr=0.01)
    theirs = twin([("weight", q[0]), ("bias", q[1])], lr=0.01)
    _train(ours, p, 4), _train(theirs, q, 4)
    _assert_same(ours, p, theirs, q)
    assert ours.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


@pytest.mark.parametrize("name", list(INFOS))
def test_deepcopy_copies_all_public_attributes(name: str) -> None:
    ours, p, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    _train(ours, p, 2)
    clone = copy.deepcopy(ours)
    public = {k for k in vars(ours) if not k.startswith("_")}
    assert public <= set(vars(clone))
    assert public >= {"defaults", "state", "param_groups", "rule"}


@pytest.mark.parametrize("name", list(INFOS))
def test_our_optimizer_info_states_what_holds(name: str) -> None:
    """Each flag of the drop-in's own OptimizerInfo, checked against the drop-in (and against torch's entry for
    the twin where they differ: torch's supports more, ours refuses that by name)."""
    info, twin = INFOS[name]
    theirs = _torch_info(twin)
    ours_cls = info.optim_cls
    assert ours_cls.__name__ == name
    for dtype in DTYPES:  # the same configurations as torch's entry (test_steps_equal_torch runs each)
        descs = [c.desc for c in info.optim_inputs_func("cpu", dtype)]
        assert descs == [c.desc for c in theirs.optim_inputs_func("cpu", dtype)]
    for impl in ("foreach", "differentiable", "fused"):
        if impl in info.supported_impls:
            opt = ours_cls(_params(torch.float64), **{impl: True})
            _train(opt, opt.param_groups[0]["params"], 1)
        else:
            with pytest.raises(ValueError, match=impl):
                ours_cls(_params(torch.float64), **{impl: True})
    assert set(info.supported_impls) <= set(theirs.supported_impls)
    assert not info.supports_sparse  # refused, even where torch's twin takes them (SGD)
    assert not info.only_supports_sparse_grads
    if info.has_capturable_arg:
        ours_cls(_params(torch.float64), capturable=False)
    assert info.supports_complex
    params = _params(torch.float64, complex_=True)
    _train(ours_cls(params, lr=0.01), params, 1)
    assert info.supports_param_groups
    ours_cls([{"params": _params(torch.float64)}, {"params": _params(torch.float64, seed=1), "lr": 0.0}], lr=0.01)
    assert not info.step_requires_closure
    plain, _, _, _ = _pair(name, {"lr": 0.01}, torch.float64)
    plain.step()  # no closure, no gradients: a no-op, as for torch
