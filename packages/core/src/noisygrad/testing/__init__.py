"""``noisygrad.testing``: the contract every estimator and optimizer must keep, as a test battery.

In the style of scikit-learn's ``check_estimator`` and optax's shared optimizer tests: one call checks an
object against everything :func:`~noisygrad.minimize`, checkpoints and the other components rely on, so a
plugin author writes one test for all of their classes. Three kinds of object are covered:

* ``"optimizer"``: a :class:`~noisygrad.Optimizer` (``init`` / ``update`` with a plain-dict state);
* ``"torch_optimizer"``: a ``torch.optim.Optimizer`` (:class:`~noisygrad.TorchOptimizer`, :class:`~noisygrad.LBFGS`);
* ``"estimator"``: an :class:`~noisygrad.Estimator` (``estimate`` / ``state_dict`` / ``load_state_dict``).

The checks (see :func:`optimizer_checks`, :func:`torch_optimizer_checks` and :func:`estimator_checks` for what
each asserts and why): an exact state round trip through ``torch.save`` / ``torch.load(weights_only=True)``
(the continuation must be bit-identical), determinism under a seed and independence from the global
generators, dtype, shape and device preservation (CUDA too when torch sees a GPU), refusal of NaN and Inf with
a clear error and without side effects, no mutation of the caller's tensors, and for estimators unbiasedness
within a Monte-Carlo tolerance (family-wise false alarm below 1e-6). Each check returns nothing or raises an
``AssertionError`` that names the object and the property.

Example (a plugin's test module)::

    import pytest
    import noisygrad as ng
    from noisygrad.testing import check_optimizer, iter_checks

    def test_my_rule_keeps_the_contract():
        check_optimizer(lambda: MyRule(lr=0.1, seed=0))  # every check; one AssertionError lists the failures

    CHECKS = iter_checks(lambda objective: MyEstimator(objective), "estimator", objective, x0)

    @pytest.mark.parametrize("check", [c for _, c in CHECKS], ids=[n for n, _ in CHECKS])
    def test_my_estimator(check):
        check()
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from noisygrad import Estimator, Optimizer

from ._common import Check
from .estimators import ESTIMATOR_CHECKS, FAMILY_FALSE_ALARM, estimator_checks, mean_tolerance
from .optimizers import OPTIMIZER_CHECKS, TORCH_OPTIMIZER_CHECKS, optimizer_checks, torch_optimizer_checks

__all__ = [
    "ESTIMATOR_CHECKS",
    "FAMILY_FALSE_ALARM",
    "KINDS",
    "OPTIMIZER_CHECKS",
    "TORCH_OPTIMIZER_CHECKS",
    "Check",
    "check_estimator",
    "check_optimizer",
    "check_torch_optimizer",
    "contract_kind",
    "estimator_checks",
    "iter_checks",
    "mean_tolerance",
    "optimizer_checks",
    "run_checks",
    "torch_optimizer_checks",
]

KINDS = ("optimizer", "torch_optimizer", "estimator")
"""The kinds of object the battery checks (see :func:`contract_kind`)."""

_BUILDERS: dict[str, Callable[..., list[tuple[str, Check]]]] = {
    "optimizer": optimizer_checks,
    "torch_optimizer": torch_optimizer_checks,
    "estimator": estimator_checks,
}


def iter_checks(factory: Any, kind: str, *args: Any, **options: Any) -> list[tuple[str, Check]]:
    """The battery's ``(check_name, check)`` pairs for one object, ready for ``pytest.mark.parametrize``.

    Args:
        factory: builds a fresh object: ``factory()`` for an optimizer, ``factory(params)`` for a torch optimizer,
            ``factory(objective)`` for an estimator.
        kind: one of :data:`KINDS`.
        args: positional arguments after the factory, passed on to :func:`optimizer_checks`,
            :func:`torch_optimizer_checks` or :func:`estimator_checks` (an estimator needs ``objective`` and
            ``params``); ``options``, the keyword arguments, likewise.
    """
    if kind not in _BUILDERS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return _BUILDERS[kind](factory, *args, **options)


def run_checks(factory: Any, kind: str, *args: Any, **options: Any) -> None:
    """Run every check of :func:`iter_checks`; raise one ``AssertionError`` listing each failed check."""
    failures = []
    for _, check in iter_checks(factory, kind, *args, **options):
        try:
            check()
        except AssertionError as exc:
            failures.append(str(exc))
    if failures:
        raise AssertionError(f"{len(failures)} contract check(s) failed:\n" + "\n".join(failures))


def check_optimizer(make_optimizer: Any, **options: Any) -> None:
    """Check a noisygrad :class:`~noisygrad.Optimizer` against the whole contract (see :func:`optimizer_checks`)."""
    run_checks(make_optimizer, "optimizer", **options)


def check_torch_optimizer(make_optimizer: Any, **options: Any) -> None:
    """Check a ``torch.optim.Optimizer`` against the whole contract (see :func:`torch_optimizer_checks`)."""
    run_checks(make_optimizer, "torch_optimizer", **options)


def check_estimator(make_estimator: Any, objective: Any, params: Any, **options: Any) -> None:
    """Check a noisygrad :class:`~noisygrad.Estimator` against the whole contract (see :func:`estimator_checks`)."""
    run_checks(make_estimator, "estimator", objective, params, **options)


def _public_methods(protocol: type) -> frozenset[str]:
    return frozenset(name for name, value in vars(protocol).items() if inspect.isfunction(value) and name[0] != "_")


def contract_kind(obj: object) -> str | None:
    """Which contract a class (or an instance's class) falls under: one of :data:`KINDS`, or ``None``.

    ``noisygrad.Estimator`` and ``noisygrad.Optimizer`` are protocols with data members, which ``issubclass``
    refuses, so a class is matched by the protocol's methods: ``estimate``, ``state_dict`` and
    ``load_state_dict`` make an estimator; ``init`` and ``update`` an optimizer; a subclass of
    ``torch.optim.Optimizer`` is a torch optimizer. The protocols themselves are ``None``.
    """
    cls = obj if isinstance(obj, type) else type(obj)
    if cls in (Estimator, Optimizer) or getattr(cls, "_is_protocol", False):
        return None
    if issubclass(cls, torch.optim.Optimizer):
        return "torch_optimizer"
    for kind, protocol in (("estimator", Estimator), ("optimizer", Optimizer)):
        if all(callable(getattr(cls, method, None)) for method in _public_methods(protocol)):
            return kind
    return None
