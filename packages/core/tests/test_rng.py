"""``noisygrad.rng``: keyed sub-streams of a run's seed, and sub-streams spawned from a run's torch generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisygrad.rng import (
    draw_seed,
    numpy_from_torch,
    numpy_stream,
    substream,
    substream_seed,
    torch_from_torch,
    torch_stream,
)


def test_keyed_substreams_never_alias_another_seeds_stream() -> None:
    # the point of keys over seed + k: run 0's second stream is not run 1's first
    draws = {
        (seed, keys): tuple(numpy_stream(seed, *keys).integers(2**62, size=4))
        for seed in (0, 1, 2)
        for keys in ((), (0,), (1,), (2,), (1, 0), (0, 1))
    }
    assert len(set(draws.values())) == len(draws)
    assert numpy_stream(3).integers(2**62) == np.random.default_rng(3).integers(2**62)  # no keys: the seed's own
    seeds = {substream_seed(seed, k) for seed in range(4) for k in range(4)}
    assert len(seeds) == 16
    assert all(0 <= s < 2**63 for s in seeds)
    assert len({s % 2**32 for s in seeds}) == 16  # what a CPU torch generator keeps of them: still distinct


def test_streams_reproduce() -> None:
    assert substream(5, 2, 1).generate_state(2).tolist() == substream(5, 2, 1).generate_state(2).tolist()
    assert substream_seed(5, 2) == substream_seed(5, 2)
    a, b = torch_stream(5, 2), torch_stream(5, 2)
    assert torch.equal(torch.randn(3, generator=a), torch.randn(3, generator=b))
    assert not torch.equal(torch.randn(3, generator=torch_stream(5, 2)), torch.randn(3, generator=torch_stream(5, 3)))


def test_spawning_from_a_torch_generator_draws_from_it() -> None:
    run = torch.Generator().manual_seed(7)
    first = draw_seed(run)
    second = draw_seed(run)
    assert first != second
    assert 0 <= first < 2**62
    assert draw_seed(torch.Generator().manual_seed(7)) == first  # and the spawn is fixed by its state
    # numpy_from_torch is that draw as a numpy seed (quantum's conversion kept its numbers)
    expected = np.random.default_rng(first).standard_normal(3)
    assert np.array_equal(numpy_from_torch(torch.Generator().manual_seed(7)).standard_normal(3), expected)
    child = torch_from_torch(torch.Generator().manual_seed(7))
    assert torch.equal(torch.randn(3, generator=child), torch.randn(3, generator=torch_stream(first)))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="seed"):
        substream(-1)
    with pytest.raises(ValueError, match="keys"):
        substream(0, 1, -2)
    with pytest.raises(TypeError, match="generator"):
        draw_seed(np.random.default_rng(0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        numpy_from_torch(0)  # type: ignore[arg-type]
