"""Shared helpers: small real DeepXDE models (pytorch backend, float32).

The machine the default tests must fit on is shared and slow, so most tests use a tiny Poisson problem
(24 + 2 collocation points, FNN [1, 10, 10, 1]); the benchmark problems run at full size in the slow tests.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad.pinn._deepxde import deepxde, quiet


def tiny_poisson(seed: int = 0, *, num_domain: int = 24, external: object = None, distribution: str = "Hammersley"):
    """-C u'' = pi^2 sin(pi x) on [0, 1] with u(0) = u(1) = 0 (C = 1 unless ``external`` is a dde.Variable).

    Tests are a run entry, so seeding DeepXDE's global generators here is allowed.
    """
    dde = deepxde()
    with quiet():
        dde.config.set_random_seed(seed)
    geom = dde.geometry.Interval(0.0, 1.0)
    coef = 1.0 if external is None else external

    def pde(x, u):
        return -coef * dde.grad.hessian(u, x) - math.pi**2 * torch.sin(math.pi * x)

    bc = dde.icbc.DirichletBC(geom, lambda x: np.zeros((len(x), 1)), lambda _, on_boundary: on_boundary)
    data = dde.data.PDE(geom, pde, bc, num_domain=num_domain, num_boundary=2, train_distribution=distribution)
    net = dde.nn.FNN([1, 10, 10, 1], "tanh", "Glorot uniform")
    return dde.Model(data, net)


@pytest.fixture
def model():
    return tiny_poisson(0)


def params_of(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
