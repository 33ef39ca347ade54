"""AdaptiveBatch: grow-only batches in multiples of the world, learning-rate gains, and tracking of a moving noise
scale on a simulated data-parallel run.

The simulated run is the README regression (``X = randn(1000, 5)``, generator seed 0, float64) trained by SGD with
learning rate 0.02 from ``w = 0`` on a global batch of 32 cut into 8 shards (8 virtual ranks of 4 examples, one
process). Its exact ``B_simple`` (from all 1000 per-example gradients at each step) is 6.4 at the start, 11 by step
200 and about 30, 150 and 4400 at steps 250, 300 and 400. The stated window is steps 25-200: with ``ema = 0.9`` the
smoothed estimate stayed within [0.72, 1.23] of the exact value there over seeds 0-7 (measured); afterwards it lags
the 5-fold rise every 50 steps (down to 0.38 of it at step 300) while the batch follows it up.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import noisygrad as ng
from noisygrad.distributed import AdaptiveBatch, DataParallelMiniBatch, adascale_gain
from noisygrad.noise.statistics import gradient_noise

sys.path.insert(0, str(Path(__file__).parent))  # the spawned workers import the helper module by name
import _distributed_workers as workers

B_SIMPLE = 6.3878742452  # exact at w = 0 (scaleout.md)
WINDOW = (25, 200)


@pytest.fixture(scope="module")
def objective() -> ng.FiniteSum:
    return workers.regression_objective()


def test_adascale_gain_reference_values() -> None:
    assert adascale_gain(B_SIMPLE, 16, 32) == pytest.approx(1.1664, abs=5e-5)
    assert adascale_gain(B_SIMPLE, 16, 64) == pytest.approx(1.2723, abs=5e-5)
    assert adascale_gain(math.inf, 16, 64) == 4.0  # noise only: linear scaling
    assert adascale_gain(-3.0, 16, 64) == 1.0  # no measurable noise: no gain
    with pytest.raises(ValueError, match="NaN"):
        adascale_gain(math.nan, 16, 32)


def test_grows_in_multiples_never_shrinks_and_caps_each_step() -> None:
    ctrl = AdaptiveBatch(32, 1020, multiple_of=8, warmup=1, ema=None, lr_rule="sqrt")
    assert ctrl.update(600.0, 2.0) == (64, pytest.approx(math.sqrt(2)))  # wants 300: at most 2x per decision
    assert ctrl.update(600.0, 2.0)[0] == 128
    assert ctrl.update(600.0, 2.0)[0] == 256
    assert ctrl.update(600.0, 2.0)[0] == 304  # ceil(300 / 8) * 8
    sizes = [ctrl.update(1.0, 50.0)[0] for _ in range(50)]  # the noise scale collapses: the batch stays
    assert sizes == [304] * 50
    ctrl.update(10.0, -1e6)  # the |G|^2 average goes negative: inf, read as "above any batch allowed"
    assert ctrl.noise_scale == math.inf
    assert ctrl.batch_size == 608
    for _ in range(5):
        ctrl.update(10.0, -1e6)
    assert ctrl.batch_size == 1016  # the largest multiple of 8 within max_batch_size
    assert ctrl.lr_gain == pytest.approx(math.sqrt(1016 / 32))


def test_lr_rules_and_lr_only_mode() -> None:
    linear = AdaptiveBatch(16, 64, multiple_of=16, warmup=0, ema=None, lr_rule="linear")
    assert linear.update(600.0, 2.0) == (32, 2.0)
    fixed = AdaptiveBatch(32, 32, base_batch_size=16, ema=None, lr_rule="adascale")  # AdaScale: the lr adapts only
    for _ in range(3):
        size, gain = fixed.update(B_SIMPLE, 1.0)
    assert size == 32
    assert gain == pytest.approx(1.1664, abs=5e-5)
    assert fixed.progress == pytest.approx(3 * gain)  # scale-invariant iterations


def test_state_dict_round_trip() -> None:
    a = AdaptiveBatch(32, 512, multiple_of=8, warmup=2, lr_rule="adascale")
    feed = [(600.0 / (1 + k), 2.0 - 0.1 * k) for k in range(20)]
    for item in feed[:10]:
        a.update(*item)
    b = AdaptiveBatch(32, 512, multiple_of=8, warmup=2, lr_rule="adascale")
    b.load_state_dict(a.state_dict())
    assert [a.update(*item) for item in feed[10:]] == [b.update(*item) for item in feed[10:]]
    assert a.state_dict() == b.state_dict()
    with pytest.raises(ValueError, match="multiple of 8"):
        b.load_state_dict({**a.state_dict(), "batch_size": 36})


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of multiple_of"):
        AdaptiveBatch(30, 64, multiple_of=8)
    with pytest.raises(ValueError, match="max_batch_size must be >= batch_size"):
        AdaptiveBatch(32, 16)
    with pytest.raises(ValueError, match="lr_rule"):
        AdaptiveBatch(32, 64, lr_rule="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target"):
        AdaptiveBatch(32, 64, target=0.0)
    with pytest.raises(ValueError, match="max_growth"):
        AdaptiveBatch(32, 64, max_growth=1.0)
    with pytest.raises(ValueError, match="base_batch_size"):
        AdaptiveBatch(32, 64, base_batch_size=64)
    with pytest.raises(TypeError, match="batch_size"):
        AdaptiveBatch(32, 64, estimator=object())
    ctrl = AdaptiveBatch(32, 64)
    with pytest.raises(ValueError, match="finite"):
        ctrl.update(math.nan, 1.0)


def _simulate(objective: ng.FiniteSum, seed: int, steps: int) -> tuple[list[float], list[int]]:
    est = DataParallelMiniBatch(objective, 32, shards=8, distributed=False)
    ctrl = AdaptiveBatch(32, 512, estimator=est, ema=0.9)
    ratios: list[float] = []
    sizes: list[int] = []

    def record(info: ng.StepInfo) -> None:
        ctrl(info)
        ratios.append(ctrl.noise_scale / gradient_noise(objective, info.x).rho)
        sizes.append(est.batch_size)

    ng.minimize(
        est, ng.SGD(0.02), torch.zeros(workers.DIM, dtype=torch.float64), steps=steps, seed=seed, callbacks=[record]
    )
    return ratios, sizes


@pytest.mark.parametrize("seed", [0, 1])
def test_simulated_run_tracks_the_noise_scale_and_only_grows(objective: ng.FiniteSum, seed: int) -> None:
    ratios, sizes = _simulate(objective, seed, 300)
    window = ratios[WINDOW[0] - 1 : WINDOW[1]]
    assert min(window) >= 0.7, min(window)
    assert max(window) <= 1.3, max(window)
    assert all(b <= c for b, c in itertools.pairwise(sizes))  # never shrinks
    assert all(b % 8 == 0 for b in sizes)
    assert sizes[-1] > 32  # and it grew once the noise scale passed the batch


def test_one_process_minibatch_noise_stats_feed_it(objective: ng.FiniteSum) -> None:
    """``MiniBatch(noise_stats=True)`` reports tr(S) and the estimate's variance: ``|G|^2 = |g_B|^2 - variance``."""
    est = ng.MiniBatch(objective, 32, noise_stats=True)
    ctrl = AdaptiveBatch(32, 32, ema=None)
    gen, w = torch.Generator().manual_seed(2), torch.zeros(workers.DIM, dtype=torch.float64)
    for _ in range(1000):
        ctrl(ng.StepInfo(0, w, est.estimate(w, gen), 0.0, ng.Cost()))
    # the running means of 1000 draws: tr(S) within ~1% (s.e.), |G|^2 within ~2%
    assert ctrl.noise_scale == pytest.approx(B_SIMPLE, rel=0.05)
    with pytest.raises(ValueError, match="noise statistics"):
        ctrl(ng.StepInfo(0, w, ng.MiniBatch(objective, 32).estimate(w, gen), 0.0, ng.Cost()))


def test_layout_defaults_at_world_64() -> None:
    """The rounding logic at a world of 64 (a fake process group: the collectives do nothing, the layout is real)."""
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=3, world_size=64)
    try:
        est = DataParallelMiniBatch(workers.regression_objective(), 128)
        assert (est.world, est.rank, est.shards) == (64, 3, 64)
        assert AdaptiveBatch(128, 1024).multiple_of == 64
        ctrl = AdaptiveBatch(128, 1000, estimator=est, warmup=0, ema=None)
        assert ctrl.multiple_of == 64
        ctrl.update(300.0, 1.0)
        assert est.batch_size == ctrl.batch_size == 256  # 2x cap
        ctrl.update(300.0, 1.0)
        assert est.batch_size == 320  # ceil(300 / 64) * 64
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_under_ddp_every_rank_decides_alike(tmp_path: Path) -> None:
    results = workers.run(workers.adaptive_ddp, 2, tmp_path, 120)
    sizes = results[0]["sizes"]
    assert results[1]["sizes"] == sizes
    assert results[1]["gains"] == results[0]["gains"]
    assert results[0]["multiple_of"] == 2
    assert all(b % 2 == 0 for b in sizes)
    assert all(b <= c for b, c in itertools.pairwise(sizes))
    assert sizes[-1] > sizes[0]
    assert all(1.0 <= g <= s / sizes[0] for g, s in zip(results[0]["gains"], sizes, strict=True))
