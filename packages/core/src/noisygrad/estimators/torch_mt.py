"""The CPU ``torch.Generator``'s Mersenne Twister, compiled: ``torch.randperm(n, generator=g)[:b]`` in a kernel.

SVRG and SAGA draw each mini-batch as ``torch.randperm(N, generator=g)[:b]`` (a uniform subset of ``b`` distinct
examples). A compiled epoch (:mod:`noisygrad.estimators.glm_epochs`) must draw the same batches and leave the
generator in the same state, or its iterates and checkpoints would not be those of the step-by-step path. This
module reproduces the draw exactly:

* torch's CPU generator is ``at::mt19937`` (the reference MT19937 with Cokus's layout: ``left`` counts down the
  words before the next twist, ``next`` indexes the next word); :func:`read_state` and :func:`write_state` move its
  624 words and two counters between a ``torch.Generator`` and numpy arrays (the byte layout of
  ``Generator.get_state()``: seed, ``left``, ``seeded``, ``next``, then the words as 64-bit integers);
* ``randperm`` on the CPU (``n < 2**32 / 20``) is a Fisher-Yates shuffle of ``0..n-1``: for ``i`` in
  ``0..n-2`` it swaps entries ``i`` and ``i + (random() % (n - i))``. The first ``b`` entries are final after the
  first ``b`` swaps, so :func:`draw_subset` does those on a scratch identity permutation (undone afterwards:
  ``O(b)``), then skips the remaining ``n - 1 - b`` 32-bit draws without tempering them: the generator still
  advances ``n - 1`` draws per batch, as torch's does, but a skipped draw costs one word of a twist (about
  0.4 ns) instead of torch's draw, modulo and swap (about 10 ns).

The layout is torch's, not a public contract: :func:`layout_matches` checks it against the installed torch once
(draws and states compared after several ``randperm`` calls) and the compiled path is off if it differs.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import torch

from noisygrad.compiled import compiled

__all__ = ["MAX_N", "draw_subset", "layout_matches", "read_state", "skip", "write_state"]

WORDS = 624
_SHIFT = 397
_STATE_BYTES = 5056  # sizeof(CPUGeneratorImplState)
_LEFT, _NEXT, _WORDS = 8, 16, 24  # byte offsets of left (int32), next (uint64) and the words (uint64 each)

MAX_N = (2**32 - 1) // 20
"""torch's randperm draws 32-bit numbers for ``n`` below this (64-bit ones above, not reproduced here)."""

UInt32s = npt.NDArray[np.uint32]
Int64s = npt.NDArray[np.int64]


def read_state(generator: torch.Generator) -> tuple[UInt32s, Int64s]:
    """The generator's 624 words and its counters ``[left, next]`` (new arrays; the generator is unchanged)."""
    raw = generator.get_state().numpy()
    if raw.size != _STATE_BYTES:
        raise ValueError(f"generator state must be {_STATE_BYTES} bytes (a CPU torch.Generator), got {raw.size}")
    words = raw[_WORDS : _WORDS + 8 * WORDS].view(np.uint64).astype(np.uint32)
    counters = np.array([raw[_LEFT : _LEFT + 4].view(np.int32)[0], raw[_NEXT : _NEXT + 8].view(np.uint64)[0]])
    return words, counters.astype(np.int64)


def write_state(generator: torch.Generator, words: UInt32s, counters: Int64s) -> None:
    """Set the generator to the words and counters (its seed and cached normal samples are kept)."""
    raw = generator.get_state().numpy().copy()
    raw[_WORDS : _WORDS + 8 * WORDS] = words.astype(np.uint64).view(np.uint8)
    raw[_LEFT : _LEFT + 4] = np.array([counters[0]], dtype=np.int32).view(np.uint8)
    raw[_NEXT : _NEXT + 8] = np.array([counters[1]], dtype=np.uint64).view(np.uint8)
    generator.set_state(torch.from_numpy(raw))


@compiled
def _twist(words: UInt32s) -> None:  # pragma: no cover - compiled
    """MT19937's state transition over the 624 words, in place (``at::mt19937::next_state``)."""
    upper, lower, matrix = np.uint32(0x80000000), np.uint32(0x7FFFFFFF), np.uint32(0x9908B0DF)
    one = np.uint32(1)
    for i in range(WORDS - _SHIFT):
        mixed = (words[i] & upper) | (words[i + 1] & lower)
        words[i] = words[i + _SHIFT] ^ (mixed >> one) ^ (matrix * (words[i + 1] & one))
    for i in range(WORDS - _SHIFT, WORDS - 1):
        mixed = (words[i] & upper) | (words[i + 1] & lower)
        words[i] = words[i + _SHIFT - WORDS] ^ (mixed >> one) ^ (matrix * (words[i + 1] & one))
    mixed = (words[WORDS - 1] & upper) | (words[0] & lower)
    words[WORDS - 1] = words[_SHIFT - 1] ^ (mixed >> one) ^ (matrix * (words[0] & one))


@compiled
def _draw(words: UInt32s, counters: Int64s) -> int:  # pragma: no cover - compiled
    """One 32-bit draw (``at::mt19937::operator()``), as a non-negative integer."""
    left = counters[0] - 1
    if left == 0:
        _twist(words)
        left = WORDS
        counters[1] = 0
    counters[0] = left
    y = words[counters[1]]
    counters[1] += 1
    y ^= y >> np.uint32(11)
    y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
    y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
    y ^= y >> np.uint32(18)
    return int(y)


@compiled
def skip(words: UInt32s, counters: Int64s, count: int) -> None:  # pragma: no cover - compiled
    """Advance the generator by ``count`` draws without computing them (a twist every 624)."""
    left, position = counters[0], counters[1]
    while count > 0:
        if left - 1 >= count:  # no twist among these draws
            left -= count
            position += count
            count = 0
        else:  # the left - 1 draws before the twist, then the draw that twists (and reads word 0)
            count -= left
            _twist(words)
            left, position = WORDS, 1
    counters[0], counters[1] = left, position


@compiled
def draw_subset(
    words: UInt32s, counters: Int64s, n: int, out: Int64s, scratch: Int64s
) -> None:  # pragma: no cover - compiled
    """``out[:] = torch.randperm(n, generator)[:len(out)]``, advancing the generator as torch does.

    ``scratch`` is the identity permutation ``0..n-1`` (int64); it is used and restored.
    """
    b = out.shape[0]
    swaps = min(b, n - 1)
    partner = np.empty(swaps, dtype=np.int64)
    for i in range(swaps):
        j = i + _draw(words, counters) % (n - i)
        partner[i] = j
        scratch[i], scratch[j] = scratch[j], scratch[i]
    for i in range(b):
        out[i] = scratch[i]
    for i in range(swaps - 1, -1, -1):  # undo the swaps, last first: scratch is the identity again
        j = partner[i]
        scratch[i], scratch[j] = scratch[j], scratch[i]
    skip(words, counters, n - 1 - swaps)


@functools.cache
def layout_matches() -> bool:
    """Whether the compiled draws reproduce this torch's ``randperm`` and generator state (checked once).

    Several sizes (below, at and above one twist of 624 words), subsets of several lengths and a generator
    written back and drawn from again: any difference turns the compiled path off.
    """
    generator = torch.Generator().manual_seed(20240607)
    try:
        words, counters = read_state(generator)
        for n, b in ((1, 1), (5, 5), (600, 7), (624, 1), (1300, 64), (3001, 3001)):
            scratch = np.arange(n, dtype=np.int64)
            out = np.empty(b, dtype=np.int64)
            draw_subset(words, counters, n, out, scratch)
            if not np.array_equal(out, torch.randperm(n, generator=generator)[:b].numpy()):
                return False
            torch_words, torch_counters = read_state(generator)
            if not (np.array_equal(words, torch_words) and np.array_equal(counters, torch_counters)):
                return False
        skip(words, counters, 1000)
        write_state(generator, words, counters)
        expected = torch.Generator().manual_seed(20240607)
        for n in (1, 5, 600, 624, 1300, 3001):
            torch.randperm(n, generator=expected)
        torch.randperm(1001, generator=expected)  # 1000 draws of 32 bits, as skipped above
        return bool(torch.equal(torch.randperm(50, generator=generator), torch.randperm(50, generator=expected)))
    except (ValueError, RuntimeError):
        return False
