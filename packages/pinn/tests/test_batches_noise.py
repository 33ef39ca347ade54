"""Collocation mini-batches are uniform, fresh and reproducible; their gradient noise matches the formulas.

Statistical checks use fixed seeds and tolerances of 4 standard errors of the Monte-Carlo mean (a correct
implementation fails about 1 run in 15,000).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import noisygrad.pinn as ngp
from noisygrad.pinn.noise import _flat_grad, _params, group_gradients

from .conftest import tiny_poisson

Z = 4.0


def _compiled(seed=0, **kw):
    model = tiny_poisson(seed, **kw)
    ngp.train(model, "adam", lr=1e-3, iterations=30)  # compiles, and moves off the initial weights
    return model


def test_batches_keep_boundary_rows_and_draw_distinct_fresh_pde_rows(model):
    data = model.data
    n_bc = sum(data.num_bcs)
    n = ngp.pool_size(data)
    assert n == 26  # 24 domain + 2 boundary points
    a = ngp.CollocationBatches(data, 8, generator=torch.Generator().manual_seed(3))
    b = ngp.CollocationBatches(data, 8, generator=torch.Generator().manual_seed(3))
    first, second = a.next(), a.next()
    assert np.array_equal(first[0], b.next()[0])  # same seed, same batches
    for x, _, _ in (first, second):
        assert x.shape == (n_bc + 8, 1)
        assert np.array_equal(x[:n_bc], data.train_x[:n_bc])  # every boundary row, first, as DeepXDE lays them out
        assert len(np.unique(x[n_bc:])) == 8  # without replacement
        assert np.isin(x[n_bc:], data.train_x[n_bc:]).all()
    assert not np.array_equal(first[0], second[0])
    held = ngp.CollocationBatches(data, 8, every=3, generator=torch.Generator().manual_seed(0))
    draws = [held.next()[0] for _ in range(6)]
    assert all(d is draws[0] for d in draws[:3])
    assert all(d is draws[3] for d in draws[3:])
    assert held.draws == 2


def test_training_on_batches_restores_the_data_and_counts_draws(model):
    full = model.data.train_x
    result = ngp.train(model, "adam", lr=1e-3, iterations=25, batch_size=8, batch_every=5, seed=1)
    assert model.data.train_x is full
    assert result.batch_draws == 5
    assert result.batch_size == 8
    assert np.isfinite(result.losses).all()
    assert len(result.losses) == 25
    again = tiny_poisson(0)
    repeat = ngp.train(again, "adam", lr=1e-3, iterations=25, batch_size=8, batch_every=5, seed=1)
    assert np.array_equal(result.losses, repeat.losses)  # reproducible from the seed alone


def test_batch_gradient_is_unbiased_with_the_finite_population_variance():
    model = _compiled()
    batches = ngp.CollocationBatches(model.data, 8, generator=torch.Generator().manual_seed(0))
    n, b = batches.pool, 8
    per_point = group_gradients(model, batches, groups=n, group_size=1).double()  # every point once
    g = per_point.mean(0)
    trace_s = float(per_point.var(0, unbiased=True).sum())
    predicted = trace_s * (1 / b - 1 / n)
    draws = 400
    params = _params(model)
    sq = []
    acc = torch.zeros_like(g)
    dots, norms = [], []
    for _ in range(draws):
        rows = batches.rows(batches.indices())
        with batches.installed(rows):
            gb = _flat_grad(model, params, rows).double()
        acc += gb
        sq.append(float((gb - g).pow(2).sum()))
        dots.append(float(gb @ g))
        norms.append(float(gb @ gb))
    sq = np.asarray(sq)
    assert abs(sq.mean() - predicted) <= Z * sq.std(ddof=1) / math.sqrt(draws)
    # the mean of the batch gradients converges to the full gradient: E|mean - g|^2 = predicted / draws
    assert float((acc / draws - g).pow(2).sum()) <= 5 * predicted / draws
    # E[g_b . g] / sqrt(|g|^2 E|g_b|^2) is exactly (1 + rho/b (1 - b/N))^(-1/2), rho = tr(S)/|g|^2
    rho = trace_s / float(g @ g)
    dots, norms = np.asarray(dots), np.asarray(norms)
    gg = float(g @ g)
    measured = dots.mean() / math.sqrt(gg * norms.mean())
    # delta method for the ratio of two Monte-Carlo means
    cov = np.cov(np.stack([dots / dots.mean(), norms / (2 * norms.mean())]), ddof=1)
    se = measured * math.sqrt(max(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], 0.0) / draws)
    assert abs(measured - ngp.predicted_cosine(rho, b, n)) <= Z * se + 1e-12


def test_group_estimate_of_the_noise_is_unbiased():
    model = _compiled(seed=1)
    gen = torch.Generator().manual_seed(5)
    batches = ngp.CollocationBatches(model.data, 8, generator=gen)
    per_point = group_gradients(model, batches, groups=batches.pool, group_size=1).double()
    exact_trace = float(per_point.var(0, unbiased=True).sum())
    exact_norm = float(per_point.mean(0).pow(2).sum())
    reps = 120
    est = [ngp.collocation_noise(model, batch_size=8, groups=4, points=16, generator=gen, lr=1e-3) for _ in range(reps)]
    traces = np.asarray([e.trace_cov for e in est])
    norms = np.asarray([e.grad_norm_sq for e in est])
    assert abs(traces.mean() - exact_trace) <= Z * traces.std(ddof=1) / math.sqrt(reps)
    assert abs(norms.mean() - exact_norm) <= Z * norms.std(ddof=1) / math.sqrt(reps)
    one = est[0]
    assert one.pool == 26
    assert one.points == 16
    assert one.dim == sum(p.numel() for p in model.net.parameters())
    assert one.batch_variance == pytest.approx(one.trace_cov * (1 / 8 - 1 / 26))
    assert one.temperature == pytest.approx(1e-3 * one.batch_variance / (2 * one.dim))


def test_noise_is_measured_during_training(model):
    result = ngp.train(model, "sgd", lr=1e-3, iterations=20, batch_size=8, noise_every=10, noise_groups=4)
    assert [step for step, _ in result.noise] == [10, 20]
    for _, stats in result.noise:
        assert stats.batch_size == 8
        assert stats.trace_cov > 0
        assert 0.0 <= stats.predicted_cosine <= 1.0
        assert stats.temperature == pytest.approx(1e-3 * stats.batch_variance / (2 * stats.dim))
