"""DataParallelMiniBatch: a data-parallel run is bit-identical to its one-process sharded twin, within rounding of
the one-pass mini-batch gradient, and carries unbiased noise statistics.

The problem is the README regression (``X = randn(1000, 5)``, generator seed 0, float64) whose exact statistics at
``w = 0``, from all 1000 per-example gradients, are ``tr(S) = 174.76396``, ``|g|^2 = 27.35870``,
``B_simple = 6.38787``. Monte-Carlo checks use fixed seeds and tolerances stated in standard errors (s.e.).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

import noisygrad as ng
from noisygrad.distributed import DataParallelMiniBatch, reference
from noisygrad.noise.statistics import gradient_noise

sys.path.insert(0, str(Path(__file__).parent))  # the spawned workers import the helper module by name
import _distributed_workers as workers

STEPS, BATCH, LR = 200, 32, 0.05


@pytest.fixture(scope="module")
def objective() -> ng.FiniteSum:
    return workers.regression_objective()


def _run(estimator: DataParallelMiniBatch, steps: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    grads: list[torch.Tensor] = []
    res = ng.minimize(
        estimator,
        ng.SGD(LR),
        torch.zeros(workers.DIM, dtype=torch.float64),
        steps=steps,
        seed=0,
        callbacks=[lambda info: grads.append(info.estimate.grad.clone())],
    )
    return res.x, grads


def _serial_deviation(objective: ng.FiniteSum, shards: int, steps: int) -> float:
    """Largest ``|g_sharded - g_one_pass| / |g_one_pass|`` along an SGD run, both from the same generator state."""
    twin = DataParallelMiniBatch(objective, BATCH, shards=shards, distributed=False)
    serial = ng.MiniBatch(objective, BATCH)
    gen, x, worst = torch.Generator().manual_seed(0), torch.zeros(workers.DIM, dtype=torch.float64), 0.0
    for _ in range(steps):
        state = gen.get_state()
        sharded = twin.estimate(x, gen).grad
        one_pass = serial.estimate(x, torch.Generator().set_state(state)).grad
        worst = max(worst, float((sharded - one_pass).norm() / one_pass.norm()))
        x = x - LR * sharded
    return worst


@pytest.mark.parametrize("shards", [2, 4])
def test_sharded_gradient_is_the_one_pass_gradient_to_rounding(objective: ng.FiniteSum, shards: int) -> None:
    # the same draw, summed in K pieces instead of one: rounding only (measured 4.0e-16 and 4.9e-16 over 200 steps)
    assert _serial_deviation(objective, shards, STEPS) <= 1e-15


def test_shard_noise_statistics_are_unbiased(objective: ng.FiniteSum) -> None:
    exact = gradient_noise(objective, torch.zeros(workers.DIM, dtype=torch.float64))
    est = DataParallelMiniBatch(objective, BATCH, shards=4, distributed=False, ema=None)
    gen, w = torch.Generator().manual_seed(1), torch.zeros(workers.DIM, dtype=torch.float64)
    draws = torch.tensor(
        [[(s := est.estimate(w, gen).stats)["trace_cov"], s["grad_norm_sq"]] for _ in range(1500)],
        dtype=torch.float64,
    )
    mean, se = draws.mean(0), draws.std(0) / math.sqrt(len(draws))
    truth = torch.tensor([exact.trace_cov, exact.grad_norm_sq], dtype=torch.float64)
    z = (mean - truth) / se
    assert bool((z.abs() < 4).all()), z  # unbiased: within 4 s.e. (s.e. ~1.5% of the values here)
    assert bool(((mean / truth - 1).abs() < 0.05).all()), mean / truth
    # the smoothed ratio of the running means: the noise scale, within the 5% the parts hold
    assert est.noise.noise_scale == pytest.approx(exact.rho, rel=0.05)


def test_one_shard_has_no_noise_statistics_and_is_minibatch(objective: ng.FiniteSum) -> None:
    est = DataParallelMiniBatch(objective, BATCH, distributed=False)
    assert est.shards == 1
    w = torch.zeros(workers.DIM, dtype=torch.float64)
    e, m = (
        est.estimate(w, torch.Generator().manual_seed(3)),
        ng.MiniBatch(objective, BATCH).estimate(w, torch.Generator().manual_seed(3)),
    )
    assert e.stats == {}
    assert torch.equal(e.grad, m.grad)  # one shard is one pass over the same draw
    assert e.cost == m.cost


def test_resume_and_batch_size_round_trip(objective: ng.FiniteSum) -> None:
    est = DataParallelMiniBatch(objective, BATCH, shards=4, distributed=False)
    straight = ng.minimize(est, ng.SGD(LR), torch.zeros(workers.DIM, dtype=torch.float64), steps=40, seed=5)
    est2 = DataParallelMiniBatch(objective, BATCH, shards=4, distributed=False)
    half = ng.minimize(est2, ng.SGD(LR), torch.zeros(workers.DIM, dtype=torch.float64), steps=20, seed=5)
    est3 = DataParallelMiniBatch(objective, 64, shards=4, distributed=False)  # the checkpoint restores B = 32
    resumed = ng.minimize(est3, ng.SGD(LR), steps=20, resume=half.checkpoint)
    assert est3.batch_size == BATCH
    assert torch.equal(resumed.x, straight.x)
    assert est3.noise.state_dict() == est.noise.state_dict()


def test_reference_has_the_layout_of_its_world(objective: ng.FiniteSum) -> None:
    one = DataParallelMiniBatch(objective, BATCH, distributed=False)
    assert reference(one, world=4).shards == 4
    two_per_rank = DataParallelMiniBatch(objective, BATCH, shards=2, distributed=False)
    assert reference(two_per_rank, world=4).shards == 8
    assert reference(two_per_rank).shards == 2


def test_bad_input_is_refused(objective: ng.FiniteSum) -> None:
    with pytest.raises(ValueError, match="multiple of shards"):
        DataParallelMiniBatch(objective, 30, shards=4, distributed=False)
    with pytest.raises(ValueError, match="number of examples"):
        DataParallelMiniBatch(objective, 2000, shards=4, distributed=False)
    with pytest.raises(TypeError, match="finite sum"):
        DataParallelMiniBatch(ng.Energy(lambda x: (x**2).sum()), BATCH)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="init_process_group"):
        DataParallelMiniBatch(objective, BATCH, distributed=True)
    with pytest.raises(TypeError, match="DataParallelMiniBatch"):
        reference(ng.MiniBatch(objective, BATCH), world=2)  # type: ignore[arg-type]
    est = DataParallelMiniBatch(objective, BATCH, shards=4, distributed=False)
    with pytest.raises(ValueError, match="multiple of shards"):
        est.batch_size = 34
    assert est.batch_size == BATCH  # a refused size leaves the estimator as it was
    with pytest.raises(ValueError, match="keys"):
        est.load_state_dict({"batch_size": 32})


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_ranks_are_bit_identical_to_the_twin(objective: ng.FiniteSum, world: int, tmp_path: Path) -> None:
    results = workers.run(workers.minibatch_run, world, tmp_path, STEPS, BATCH)
    twin_x, twin_grads = _run(reference(DataParallelMiniBatch(objective, BATCH, distributed=False), world), STEPS)
    for rank, res in enumerate(results):
        assert res["shards"] == world
        assert res["exit_guarded"]  # see test_distributed_exit.py
        assert torch.equal(res["x"], twin_x), rank  # 200 SGD steps, bit for bit
        assert all(torch.equal(a, b) for a, b in zip(res["grads"], twin_grads, strict=True)), rank
        assert res["noise"] == results[0]["noise"]  # the noise statistics too, on every rank
        assert "different batches" in res["diverged"]  # ranks run with different seeds are caught, not mixed
