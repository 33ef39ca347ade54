"""GradientNoiseHook and the two-batch estimates behind it.

The spawned tests run real gloo process groups (2 and 4 ranks, each run on its own free port) on the README
regression, whose exact statistics at ``w = 0`` come from all 1000 per-example gradients: ``tr(S) = 174.76396``,
``|g|^2 = 27.35870``, ``B_simple = 6.38787`` (``noisygrad.gradient_noise``). Averages over draws at that fixed point
must lie within 5% of them and within 4 standard errors (s.e., measured from the draws themselves).
"""

from __future__ import annotations

import datetime
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

import noisygrad as ng
from noisygrad.distributed import GradientNoiseHook, SmoothedNoiseScale, adascale_gain, two_batch_estimates
from noisygrad.distributed.hook import gradient_noise_hook
from noisygrad.noise.statistics import gradient_noise

sys.path.insert(0, str(Path(__file__).parent))  # the spawned workers import the helper module by name
import _distributed_workers as workers

BATCH = 32
ADASCALE_S2 = 1.1664  # AdaScale's gain for S = 2 against b0 = 16 at the exact B_simple (scaleout.md, T6)


@pytest.fixture(scope="module")
def exact() -> ng.NoiseStats:
    return gradient_noise(workers.regression_objective(), torch.zeros(workers.DIM, dtype=torch.float64))


def test_importing_starts_no_process_group() -> None:
    assert not dist.is_initialized()  # noisygrad.distributed was imported above


def test_two_batch_estimates_agree_with_noise_scale_meter() -> None:
    gen = torch.Generator().manual_seed(0)
    small, big = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(7, generator=gen, dtype=torch.float64)
    for n in (None, 500):
        meter = ng.NoiseScaleMeter(8, 32, n_examples=n)
        meter.update(small, big)
        est = two_batch_estimates(float(small.pow(2).sum()), float(big.pow(2).sum()), 8, 32, n)
        assert est.trace_cov == pytest.approx(meter.trace_cov, rel=1e-13)
        assert est.grad_sq == pytest.approx(meter.grad_norm_sq, rel=1e-13)


def test_two_batch_estimates_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="b_big must be larger"):
        two_batch_estimates(1.0, 0.5, 8, 8)
    with pytest.raises(ValueError, match="small_sq"):
        two_batch_estimates(-1.0, 0.5, 8, 16)
    with pytest.raises(ValueError, match="big_sq"):
        two_batch_estimates(1.0, math.nan, 8, 16)
    with pytest.raises(ValueError, match="n_examples"):
        two_batch_estimates(1.0, 0.5, 8, 16, n_examples=10)


def test_smoothed_noise_scale_keeps_parts_apart_and_round_trips() -> None:
    s = SmoothedNoiseScale(ema=None)
    for trace, grad_sq in ((10.0, 2.0), (14.0, -1.0), (12.0, 2.0)):
        s.update(trace, grad_sq)
    assert (s.trace_cov, s.grad_sq) == pytest.approx((12.0, 1.0))
    assert s.noise_scale == pytest.approx(12.0)  # the ratio of the means, not the mean of the ratios
    s.update(0.0, -10.0)
    assert s.noise_scale == math.inf  # a non-positive |G|^2 estimate: larger than anything measurable
    e = SmoothedNoiseScale(ema=0.5)
    e.update(4.0, 1.0)
    assert (e.trace_cov, e.grad_sq) == (4.0, 1.0)  # bias-corrected: the first update counts fully
    copy = SmoothedNoiseScale(ema=0.5)
    copy.load_state_dict(e.state_dict())
    e.update(2.0, 3.0)
    copy.update(2.0, 3.0)
    assert copy.state_dict() == e.state_dict()
    with pytest.raises(ValueError, match="finite"):
        e.update(math.inf, 1.0)
    with pytest.raises(RuntimeError, match="no noise estimates"):
        _ = SmoothedNoiseScale().noise_scale


def test_hook_is_accepted_by_ddp_and_needs_two_ranks() -> None:
    """One process, a real gloo group of one rank: DDP accepts the hook function; the meter refuses one rank."""
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{workers.free_port()}",
        rank=0,
        world_size=1,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        ddp = DistributedDataParallel(torch.nn.Linear(workers.DIM, 1).double())
        ddp._check_comm_hook(gradient_noise_hook)  # a plain function with DDP's annotations (an object is refused)
        with pytest.raises(ValueError, match="at least 2 ranks"):
            GradientNoiseHook(ddp, micro_batch_size=8)
        with pytest.raises(TypeError, match="DistributedDataParallel"):
            GradientNoiseHook(ddp.module, micro_batch_size=8)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="accumulation"):
            GradientNoiseHook(ddp, accumulation="median")  # type: ignore[arg-type]
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize(("world", "draws"), [(2, 2000), (4, 1000)])
def test_hook_statistics_and_training(world: int, draws: int, exact: ng.NoiseStats, tmp_path: Path) -> None:
    twins, train_steps = 50, 50
    results = workers.run(workers.hook_checks, world, tmp_path, draws, BATCH, twins, train_steps)
    r0 = results[0]
    assert all(res["exit_guarded"] for res in results)  # see test_distributed_exit.py
    # what the hook reads: the rank's own gradient before the all-reduce, the global mean after it
    assert r0["local_hook"] == pytest.approx(r0["local_manual"], rel=1e-14)
    assert float((r0["synced"] - r0["global"]).norm() / r0["global"].norm()) < 1e-15
    # unbiased at a fixed point, every rank holding the same per-step estimates
    for res in results[1:]:
        assert torch.equal(res["one"], r0["one"])
    one = r0["one"]  # s.e. measured: 1.1-1.6% of the values (2 ranks, 2000 draws), 1.5-1.6% (4 ranks, 1000)
    mean, se = one.mean(0), one.std(0) / math.sqrt(len(one))
    truth = torch.tensor([exact.trace_cov, exact.grad_norm_sq], dtype=torch.float64)
    z = (mean - truth) / se
    assert bool((z.abs() < 4).all()), z
    assert bool(((mean / truth - 1).abs() < 0.05).all()), mean / truth
    b_simple = float(mean[0] / mean[1])
    assert b_simple == pytest.approx(exact.rho, rel=0.05)
    # B_simple's s.e. by the delta method for a ratio of means: sd(T_i - B G_i) / sqrt(n) / mean(G); measured
    # 1.8% (2 ranks) and 1.6% (4 ranks) of B_simple, z = 0.62 and -0.03
    b_se = float((one[:, 0] - b_simple * one[:, 1]).std() / math.sqrt(len(one)) / mean[1])
    assert abs(b_simple - exact.rho) < 4 * b_se, (b_simple, exact.rho, b_se)
    assert r0["noise_scale"] == pytest.approx(b_simple, rel=1e-12)  # ema=None: the running means' ratio
    assert adascale_gain(b_simple, 16, 32) == pytest.approx(ADASCALE_S2, rel=0.05)
    # the same examples as two micro-batches under no_sync (A = 2; losses summed or halved), and the loss x 1024
    head = one[:twins]
    for accumulated in ("sum", "mean"):
        assert float(((r0[accumulated] - head) / head).abs().max()) < 1e-12, accumulated
    assert torch.equal(r0["scaled"], head)  # a power-of-two scale divides out exactly
    assert "2 gradient synchronisations" in r0["double_sync"]
    assert r0["overflow_skipped"]
    assert "NaN or Inf" in r0["overflow_raised"]
    assert r0["state_round_trip"]
    # the hook never changes training: 50 SGD steps, bit for bit, alone and around PowerSGD
    for res in results:
        assert all(torch.equal(a, b) for a, b in zip(res["plain"], res["hooked"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(res["powersgd"], res["powersgd_wrapped"], strict=True))
        assert all(torch.equal(a, b) for a, b in zip(res["plain"], res["hooked_every"], strict=True))
        assert res["hooked_estimates"] == r0["hooked_estimates"]
        assert res["hooked_state"]["steps"] == train_steps
    every = r0["hooked_every_estimates"]  # measured on steps 1, 4, 7, ...: the same values as every step's
    assert [e is not None for e in every] == [t % 3 == 0 for t in range(train_steps)]
    assert all(
        a is None or a == pytest.approx(b, rel=1e-12) for a, b in zip(every, r0["hooked_estimates"], strict=True)
    )
