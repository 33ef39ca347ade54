"""The compiled Mersenne Twister draws what ``torch.randperm(n, generator)[:b]`` draws and leaves the same state.

Exact comparisons (``array_equal`` / ``torch.equal``): the compiled SAGA and SVRG steps are only the step-by-step
path's if every batch and every generator state are torch's, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisygrad.estimators.torch_mt import draw_subset, layout_matches, read_state, skip, write_state


@pytest.mark.parametrize("n", [1, 2, 5, 623, 624, 625, 1249, 5000])
def test_draw_subset_is_torch_randperm(n: int) -> None:
    # sizes around one twist (624 words) and several twists per draw; subsets of 1, a few and all entries
    for b in sorted({1, min(7, n), n}):
        generator = torch.Generator().manual_seed(1000 * n + b)
        words, counters = read_state(generator)
        scratch = np.arange(n, dtype=np.int64)
        for _ in range(4):  # consecutive draws: the state carries over
            out = np.empty(b, dtype=np.int64)
            draw_subset(words, counters, n, out, scratch)
            assert np.array_equal(out, torch.randperm(n, generator=generator)[:b].numpy())
            torch_words, torch_counters = read_state(generator)
            assert np.array_equal(words, torch_words)
            assert np.array_equal(counters, torch_counters)
            assert np.array_equal(scratch, np.arange(n))  # the scratch permutation is restored


def test_skip_and_write_state_continue_torchs_stream() -> None:
    # skipping k draws is what randperm(k + 1) consumes; a written state draws on as torch's own would
    generator, reference = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    words, counters = read_state(generator)
    for k in (0, 1, 622, 623, 624, 5000):
        skip(words, counters, k)
        torch.randperm(k + 1, generator=reference)
    write_state(generator, words, counters)
    assert torch.equal(generator.get_state(), reference.get_state())
    assert torch.equal(torch.randperm(100, generator=generator), torch.randperm(100, generator=reference))
    assert torch.equal(torch.rand(10, generator=generator), torch.rand(10, generator=reference))


def test_reading_does_not_change_the_generator_and_the_layout_check_passes() -> None:
    generator = torch.Generator().manual_seed(3)
    before = generator.get_state().clone()
    words, counters = read_state(generator)
    assert words.dtype == np.uint32
    assert words.shape == (624,)
    assert counters.tolist() == [1, 0]  # a freshly seeded generator twists at its first draw
    assert torch.equal(generator.get_state(), before)
    assert layout_matches()
