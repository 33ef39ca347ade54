"""SGD and Adam against torch.optim's own kernels: the same gradients must give the same iterates, bit for bit."""

import pytest
import torch

import noisygrad as ng

CASES = [
    (lambda: ng.SGD(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (lambda: ng.SGD(0.05, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (
        lambda: ng.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2),
    ),
    (
        lambda: ng.SGD(0.05, momentum=0.5, dampening=0.3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.5, dampening=0.3),
    ),
    (lambda: ng.Adam(1e-2), lambda p: torch.optim.Adam(p, lr=1e-2)),
    (
        lambda: ng.Adam(1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3),
    ),
    (
        lambda: ng.Adam(1e-2, weight_decay=1e-2, decoupled_weight_decay=True),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
    ),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("make_ours", "make_torch"), CASES)
def test_update_matches_torch_optim_bit_for_bit(make_ours, make_torch, dtype):
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(7, generator=gen, dtype=dtype)
    grads = [torch.randn(7, generator=gen, dtype=dtype) for _ in range(25)]

    param = torch.nn.Parameter(x0.clone())
    reference = make_torch([param])
    ours, x = make_ours(), x0.clone()
    state = ours.init(x)
    for g in grads:
        param.grad = g.clone()
        reference.step()
        x, state = ours.update(x, g, state)
        assert torch.equal(x, param.detach())


def test_update_is_pure():
    opt = ng.Adam(0.1)
    x, g = torch.ones(3, dtype=torch.float64), torch.full((3,), 0.5, dtype=torch.float64)
    state = opt.init(x)
    state = opt.update(x, g, state)[1]
    before = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
    x_copy, g_copy = x.clone(), g.clone()
    opt.update(x, g, state)
    assert torch.equal(x, x_copy)
    assert torch.equal(g, g_copy)
    for key, value in before.items():
        assert torch.equal(state[key], value) if isinstance(value, torch.Tensor) else state[key] == value


def test_schedule_drives_the_rate():
    opt = ng.SGD(ng.RobbinsMonro(a=1.0, b=1.0, alpha=1.0))
    x = torch.zeros(1, dtype=torch.float64)
    state = opt.init(x)
    g = torch.ones(1, dtype=torch.float64)
    for _ in range(4):
        x, state = opt.update(x, g, state)
    # steps of 1, 1/2, 1/3, 1/4
    assert float(x) == pytest.approx(-(1 + 1 / 2 + 1 / 3 + 1 / 4), abs=1e-15)


def test_schedules():
    assert ng.RobbinsMonro(a=2.0, b=3.0, alpha=0.75)(5) == pytest.approx(2.0 / 8.0**0.75)
    cosine = ng.Cosine(1.0, steps=10, final=0.1)
    assert cosine(0) == pytest.approx(1.0)
    assert cosine(10) == pytest.approx(0.1)
    assert cosine(50) == pytest.approx(0.1)
    assert ng.StepDecay(1.0, every=3, factor=0.5)(7) == pytest.approx(0.25)
