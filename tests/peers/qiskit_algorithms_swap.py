"""pytest plugin: run qiskit-algorithms' own tests against ``noisygrad.quantum`` by swapping imports only.

Loaded by ``.ci/peer-tests`` with ``-p qiskit_algorithms_swap``, before pytest imports any of the peer's test
modules, so their ``from qiskit_algorithms.optimizers import SPSA, QNSPSA`` (and, with
``NOISYGRAD_SWAP_ESTIMATOR=1``, ``from qiskit.primitives import StatevectorEstimator``) bind our classes.
Nothing else of the peer's tests changes: their files come unmodified from the qiskit-algorithms sdist on
the package index. Qiskit's own modules that imported the names before the swap (``QNSPSA``'s base class,
``VQE``'s batching helper) keep qiskit's classes, as they would in a user's process.

The documented, deliberate differences (at most two cases) are marked ``xfail`` below with their reason;
``xfail_strict`` makes an unexpected pass fail the run too.
"""

from __future__ import annotations

import functools
import os

import pytest

# node-id suffix -> why our component differs on purpose. Keep this list at two entries at most.
DELIBERATE_DIFFERENCES: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    import qiskit.primitives
    import qiskit_algorithms.optimizers

    import noisygrad.quantum as ngq

    config.addinivalue_line("markers", "noisygrad_deliberate: a documented difference from qiskit-algorithms")
    # NOISYGRAD_SWAP: "0" runs the peer's tests on the peer's own classes (the baseline); "estimator" swaps only
    # the estimator; unset swaps the optimizers, and the estimator where NOISYGRAD_SWAP_ESTIMATOR=1.
    swap = os.environ.get("NOISYGRAD_SWAP", "")
    if swap == "0":
        return
    if swap != "estimator":
        qiskit_algorithms.optimizers.SPSA = ngq.SPSA  # type: ignore[misc]
        qiskit_algorithms.optimizers.QNSPSA = ngq.QNSPSA  # type: ignore[misc]
    if swap == "estimator" or os.environ.get("NOISYGRAD_SWAP_ESTIMATOR") == "1":
        qiskit.primitives.StatevectorEstimator = functools.partial(ngq.shot_estimator, noise="exact")  # type: ignore[misc]


def pytest_report_header(config: pytest.Config) -> list[str]:
    import qiskit.primitives
    import qiskit_algorithms.optimizers

    return [
        f"swapped: qiskit_algorithms.optimizers.SPSA -> {qiskit_algorithms.optimizers.SPSA.__module__}",
        f"swapped: qiskit_algorithms.optimizers.QNSPSA -> {qiskit_algorithms.optimizers.QNSPSA.__module__}",
        f"StatevectorEstimator -> {qiskit.primitives.StatevectorEstimator!r}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for suffix, reason in DELIBERATE_DIFFERENCES.items():
            if item.nodeid.endswith(suffix):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
