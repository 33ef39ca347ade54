"""A holistic energy (the LJ13 cluster of examples/core_lennard_jones.py): refused for mini-batching, and
minimised to its known global minimum by scipy's conjugate gradients with the autograd gradient."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.optimize
import torch

import noisygrad

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "core_lennard_jones.py"


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("core_lennard_jones", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lennard_jones_cluster_refuses_minibatching_and_reaches_the_global_minimum(example) -> None:  # type: ignore[no-untyped-def]
    energy = noisygrad.Energy(example.lennard_jones)
    with pytest.raises(noisygrad.BatchingNotAllowedError, match="holistic Energy"):
        noisygrad.MiniBatch(energy, 4)  # type: ignore[arg-type]
    # a pair energy: the dimer minimum is -1 at r = 2^(1/6)
    dimer = torch.tensor([0.0, 0.0, 0.0, 2 ** (1 / 6), 0.0, 0.0], dtype=torch.float64)
    assert float(example.lennard_jones(dimer)) == pytest.approx(-1.0)
    start = example.icosahedron() + 0.05 * np.random.default_rng(0).standard_normal((13, 3))

    def fun_and_jac(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = energy.value_and_grad(torch.tensor(x))
        return value, grad.numpy()

    result = scipy.optimize.minimize(fun_and_jac, start.ravel(), jac=True, method="CG", options={"gtol": 1e-8})
    assert result.fun == pytest.approx(-44.326801, abs=1e-6)  # Wales and Doye (1997)
