"""What every headline experiment (the core's and each plugin's) shares: findings, the tolerance rule, streams,
parameter declarations.

An experiment is ``fn(seed: int = 0, quick: bool = True, **params) -> list[Finding]``; it is declared as a
``noisygrad.experiments`` entry point, and its own parameters with :func:`takes` (``noisygrad run NAME -p
NAME=VALUE`` sets them, ``noisygrad list --describe`` shows them). A claim that is a bound is built with
:meth:`Finding.at_most` or :meth:`Finding.at_least`. Its Monte-Carlo tolerances are :data:`TOLERANCE_Z` standard
errors, and its random draws come from the run's seed through :func:`~noisygrad.rng.substream` and friends: one
stream per use, keyed (``torch_stream(seed, k)``, ``substream_seed(seed, k)`` for a function that takes an int
seed), never ``seed + k``, so runs ``seed=0`` and ``seed=1`` share no stream.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch

from noisygrad.rng import numpy_from_torch, numpy_stream, substream, substream_seed, torch_from_torch, torch_stream
from noisygrad.tour.findings import Curve, Finding
from noisygrad.tour.parameters import Parameter, ParameterError, takes

__all__ = [
    "FALSE_ALARM",
    "TOLERANCE_Z",
    "Curve",
    "Finding",
    "Parameter",
    "ParameterError",
    "numpy_from_torch",
    "numpy_stream",
    "one_thread",
    "substream",
    "substream_seed",
    "takes",
    "torch_from_torch",
    "torch_stream",
]

#: Tolerances are this many standard errors of the measurement: a correct implementation fails a two-sided
#: check with probability 6.3e-5 (about 1 run in 15,000).
TOLERANCE_Z = 4.0

#: The probability with which a correct implementation fails one two-sided :data:`TOLERANCE_Z` check,
#: ``erfc(4 / sqrt(2))`` = 6.3e-5: the level for claims judged by a test statistic's critical value instead of
#: standard errors (a KS distance, say), so that they are as reliable across seeds as the others.
FALSE_ALARM = math.erfc(TOLERANCE_Z / math.sqrt(2.0))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block (or, as a decorator, the experiment) on one torch thread and one BLAS thread, restored
    afterwards: the experiments' many small kernels and dense solves ran 15-80x slower on two threads of a busy
    2-core machine (measured in the escape, momentum and line-search experiments)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits  # installed with the tour (scikit-learn's dependency)

        limits: Any = threadpool_limits(1)
    except ImportError:  # pragma: no cover - without scikit-learn, torch alone is pinned
        limits = contextlib.nullcontext()
    try:
        with limits:
            yield
    finally:
        torch.set_num_threads(threads)
