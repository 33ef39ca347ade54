"""``train(..., distributed=True)``: each rank back-propagates its slice of one shared collocation draw, gradients are
gathered and summed in rank order, and the run is bit-identical to its one-process twin ``train(..., shards=K)``,
with the shard noise statistics (``tr(S)``, ``|G|^2``) in the result.

The fast tests run the twin and the checks in this process; the spawned gloo tests (2 and 4 ranks, each on its own
free port, one torch thread per worker; DeepXDE's import costs several seconds per worker) are marked slow.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

import noisygrad.pinn as ngp
from noisygrad.pinn.batches import CollocationBatches
from noisygrad.pinn.distributed import Layout, ShardedGradient

from .conftest import params_of, same, tiny_poisson

sys.path.insert(0, str(Path(__file__).parent))  # the spawned workers import the helper module by name
import _pinn_distributed_workers as workers

ADAM = {k: v for k, v in workers.ADAM.items() if k != "optimizer"}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch thread, as in the spawned workers (kernels may round differently with more)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def twin(case: str, shards: int) -> dict:
    with one_thread():
        return workers.run_case(case, shards=shards)  # as the workers: warnings (L-BFGS in float32) silenced


# ------------------------------------------------------------------------------------------------ one process


def test_one_shard_is_plain_training_bit_for_bit() -> None:
    plain, sharded = tiny_poisson(0), tiny_poisson(0)
    a = ngp.train(plain, "adam", verbose=0, **ADAM)
    b = ngp.train(sharded, "adam", verbose=0, shards=1, **ADAM)
    assert same(params_of(plain), params_of(sharded))
    assert np.array_equal(a.losses, b.losses)
    assert (b.shards, b.world, b.trace_cov.size) == (1, 1, 0)  # one shard: no two batch sizes, no estimates
    assert (a.shards, a.trace_cov.size) == (None, 0)


def test_twin_is_deterministic_and_reports_shard_noise() -> None:
    one, two = twin("adam", 2), twin("adam", 2)
    assert same(one["params"], two["params"])
    assert np.array_equal(one["trace_cov"], two["trace_cov"])
    assert (one["shards"], one["world"]) == (2, 1)
    assert one["trace_cov"].shape == one["grad_norm_sq"].shape == (ADAM["iterations"],)
    assert np.isfinite(one["trace_cov"]).all()
    assert np.isfinite(one["grad_norm_sq"]).all()


def _rows(model, index: np.ndarray):
    data = model.data
    y = None if data.train_y is None else data.train_y[index]
    aux = None if data.train_aux_vars is None else data.train_aux_vars[index]
    return data.train_x[index], y, aux


def _gradient(sharded: ShardedGradient, rows) -> torch.Tensor:
    sharded.evaluate(rows)
    return torch.cat([p.grad.reshape(-1) for p in sharded.params]).double()


@pytest.mark.parametrize("shards", [2, 4])
def test_sharded_gradient_is_the_one_pass_gradient_to_rounding(shards: int) -> None:
    # the same 12 points in K pieces instead of one: float32 rounding only (measured at most 1.2e-7 relative over
    # 50 draws, median 7e-8, for K = 2 and 4)
    model = tiny_poisson(0)
    ngp.train(model, "adam", iterations=1, verbose=0)  # compiled, one step away from the initial weights
    params = list(model.net.parameters())
    one_pass = ShardedGradient(model, params, Layout(1, 0, 1))
    split = ShardedGradient(model, params, Layout(1, 0, shards))
    batches = CollocationBatches(model.data, 12, generator=torch.Generator().manual_seed(0))
    for _ in range(5):
        rows = _rows(model, batches.indices())
        g1, gk = _gradient(one_pass, rows), _gradient(split, rows)
        assert float((gk - g1).norm() / g1.norm()) < 1e-6


def test_shard_noise_statistics_are_unbiased() -> None:
    """At fixed weights, the per-step two-batch ``tr(S)`` and ``|G|^2`` average to the exact values from all N = 26
    per-point gradients (without-replacement draws of B = 12 in K = 2 and 4 shards, 300 draws each, |z| < 4 from
    the empirical standard error)."""
    model = tiny_poisson(0)
    ngp.train(model, "adam", iterations=1, verbose=0)
    params = list(model.net.parameters())
    n_bc, pool = int(sum(model.data.num_bcs)), ngp.pool_size(model.data)
    per_point = ShardedGradient(model, params, Layout(1, 0, 1))
    g = torch.stack([_gradient(per_point, _rows(model, np.r_[np.arange(n_bc), n_bc + i])) for i in range(pool)])
    exact_trace, exact_grad_sq = float(g.var(0, unbiased=True).sum()), float(g.mean(0).pow(2).sum())
    for shards in (2, 4):
        sharded = ShardedGradient(model, params, Layout(1, 0, shards))
        batches = CollocationBatches(model.data, 12, generator=torch.Generator().manual_seed(shards))
        for _ in range(300):
            sharded.begin_step()
            sharded.evaluate(_rows(model, batches.indices()))
        est = np.array(sharded.estimates)  # (draws, 2): tr(S), |G|^2
        mean, se = est.mean(0), est.std(0, ddof=1) / math.sqrt(len(est))
        for got, s, exact in zip(mean, se, (exact_trace, exact_grad_sq), strict=True):
            assert abs(got - exact) < 4 * s, (shards, got, exact, s)


# ------------------------------------------------------------------------------------------------ bad input


def test_distributed_without_a_process_group_is_refused_before_any_work() -> None:
    model = tiny_poisson(0)
    before = params_of(model)
    with pytest.raises(RuntimeError, match="init_process_group"):
        ngp.train(model, "adam", iterations=5, batch_size=12, distributed=True, verbose=0)
    assert model.outputs_losses_train is None
    assert same(before, params_of(model))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 12, "shards": 5}, ValueError, "batch_size must be a multiple of the 5 shards"),
        ({"shards": 4}, ValueError, r"N=26 PDE collocation points does not split into 4 equal shards"),
        ({"batch_size": 12, "shards": 0}, ValueError, "shards"),
        ({"batch_size": 12, "distributed": 1}, TypeError, "distributed must be True or False"),
    ],
)
def test_bad_layouts_are_refused(kwargs: dict, error: type, match: str) -> None:
    model = tiny_poisson(0)
    with pytest.raises(error, match=match):
        ngp.train(model, "adam", iterations=5, verbose=0, **kwargs)
    assert model.outputs_losses_train is None


@pytest.fixture
def fake_world_of_4() -> Iterator[None]:
    """A process group of 4 whose collectives do nothing: enough to check the layout arithmetic, not values."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=4)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.usefixtures("fake_world_of_4")
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 10}, r"batch_size must be a multiple of the 4 shards \(world size\) .*got 10"),
        ({"batch_size": 12, "shards": 6}, "shards must be a multiple of the world size 4, got 6"),
        ({}, r"N=26 PDE collocation points does not split into 4 equal shards \(the world size\)"),
    ],
)
def test_a_world_size_that_does_not_divide_the_draw_is_refused(kwargs: dict, match: str) -> None:
    model = tiny_poisson(0)
    with pytest.raises(ValueError, match=match):
        ngp.train(model, "adam", iterations=5, distributed=True, verbose=0, **kwargs)
    assert model.outputs_losses_train is None


# ------------------------------------------------------------------------------------------------ spawned ranks


def _assert_twin(ranks: list[dict], reference: dict, world: int) -> None:
    for rank, got in enumerate(ranks):
        assert same(got["params"], reference["params"]), rank  # torch.equal on every tensor, on every rank
        assert np.array_equal(got["losses"], reference["losses"]), rank
        assert np.array_equal(got["trace_cov"], reference["trace_cov"]), rank
        assert np.array_equal(got["grad_norm_sq"], reference["grad_norm_sq"]), rank
        assert got["final_loss"] == reference["final_loss"]
        assert got["iterations"] == reference["iterations"]
        assert (got["shards"], got["world"]) == (world, world)


@pytest.mark.slow
def test_two_ranks_are_bit_identical_to_the_twin(tmp_path: Path) -> None:
    ranks = workers.run(2, tmp_path, ("adam", "lbfgs_full", "mismatch"))
    for case in ("adam", "lbfgs_full"):
        _assert_twin([r[case] for r in ranks], twin(case, 2), 2)
        assert ranks[0][case]["trace_cov"].size == ranks[0][case]["losses"].size > 0
    for r in ranks:  # ranks with their own seeds draw different points: every rank refuses, none hangs
        assert r["mismatch"] is not None
        assert "drew different collocation points" in r["mismatch"]


@pytest.mark.slow
def test_four_ranks_are_bit_identical_to_the_twin(tmp_path: Path) -> None:
    ranks = workers.run(4, tmp_path, ("adam", "lbfgs_full"))
    for case in ("adam", "lbfgs_full"):
        _assert_twin([r[case] for r in ranks], twin(case, 4), 4)
