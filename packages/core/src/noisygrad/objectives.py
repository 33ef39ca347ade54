"""Objectives: what is minimised, and what kind of thing it is.

The kind decides which gradient estimates are honest:

* :class:`FiniteSum` -- a mean over examples, ``f(x) = (1/N) sum_i l(x, z_i)``. A uniformly drawn
  mini-batch gives an unbiased gradient, so mini-batching is allowed.
* :class:`NoisyBlackBox` -- only noisy evaluations, each with a cost (shots, simulations, experiments).
  Gradients must be estimated from evaluations (finite differences, SPSA, ...).
* :class:`Energy` -- a holistic deterministic function (a molecule's energy, a PDE residual norm taken
  as a whole). Splitting it into "examples" would optimise a different system, so mini-batching is
  refused with :class:`BatchingNotAllowedError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence

import torch

from ._validation import check_finite, check_positive


class Kind(enum.Enum):
    """What kind of objective an object is; estimators check it before they run."""

    FINITE_SUM = "finite sum"
    BLACK_BOX = "noisy black box"
    ENERGY = "holistic energy"


class BatchingNotAllowedError(ValueError):
    """Mini-batching was asked of an objective whose mini-batches would be biased."""


def require_kind(name: str, objective: object, allowed: tuple[Kind, ...]) -> None:
    """Raise ``TypeError`` unless ``objective`` is of one of the ``allowed`` kinds (``name`` is the caller)."""
    kind = getattr(objective, "kind", None)
    if kind not in allowed:
        names = ", ".join(k.value for k in allowed)
        got = kind.value if isinstance(kind, Kind) else type(objective).__name__
        raise TypeError(f"{name} needs an objective of kind {names}; got {got}")


LossFn = Callable[..., torch.Tensor]


class FiniteSum:
    """A mean of per-example losses over a fixed data set.

    Args:
        loss: ``loss(params, *batch) -> scalar tensor``, the *mean* loss over the examples in ``batch``
            (each tensor of ``batch`` has the examples along dimension 0). It must be differentiable in
            ``params`` with torch autograd and, for per-example gradients, work under ``torch.func.vmap``.
        data: the tensors holding the examples, all with the same length ``N`` along dimension 0.

    Example:
        >>> X, y = torch.randn(100, 3, dtype=torch.float64), torch.randn(100, dtype=torch.float64)
        >>> obj = FiniteSum(lambda w, X, y: ((X @ w - y) ** 2).mean() / 2, (X, y))
        >>> obj.n_examples
        100
    """

    kind = Kind.FINITE_SUM

    def __init__(self, loss: LossFn, data: Sequence[torch.Tensor] | torch.Tensor) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be callable as loss(params, *batch), got {type(loss).__name__}")
        tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError("data must be a tensor or a non-empty sequence of tensors")
        sizes = {t.shape[0] if t.ndim else -1 for t in tensors}
        if len(sizes) != 1 or -1 in sizes:
            shapes = [tuple(t.shape) for t in tensors]
            raise ValueError(f"data tensors must share their length along dimension 0, got shapes {shapes}")
        (n,) = sizes
        if n == 0:
            raise ValueError("data must hold at least one example, got N = 0")
        self.loss = loss
        self.data = tensors
        self.n_examples: int = n

    def batch(self, indices: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The examples at ``indices`` (all of them for ``None``)."""
        if indices is None:
            return self.data
        return tuple(t[indices] for t in self.data)

    def value(self, params: torch.Tensor, indices: torch.Tensor | None = None) -> float:
        """Mean loss over the examples at ``indices`` (all examples for ``None``)."""
        with torch.no_grad():
            return float(self.loss(params, *self.batch(indices)))

    def value_and_grad(self, params: torch.Tensor, indices: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """Mean loss and its gradient over the examples at ``indices``."""
        x = params.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = self.loss(x, *self.batch(indices))
            (grad,) = torch.autograd.grad(loss, x)
        return float(loss.detach()), grad

    def per_example_values_and_grads(
        self, params: torch.Tensor, indices: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's loss, shape ``(B,)``, and gradient, shape ``(B, *params.shape)``, in one vmap."""

        def one(p: torch.Tensor, *example: torch.Tensor) -> torch.Tensor:
            return self.loss(p, *(e.unsqueeze(0) for e in example))

        fn = torch.func.vmap(torch.func.grad_and_value(one), in_dims=(None, *([0] * len(self.data))))
        grads, values = fn(params.detach(), *self.batch(indices))
        return values, grads

    def per_example_grads(self, params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Gradients of each example's loss, shape ``(len(indices), *params.shape)`` (torch.func.vmap)."""
        return self.per_example_values_and_grads(params, indices)[1]


class NoisyBlackBox:
    """A function known only through noisy evaluations, each with a cost.

    Args:
        fn: ``fn(points, generator) -> values``: ``points`` has shape ``(K, d)`` and ``values`` shape
            ``(K,)``. All ``K`` points of one estimate arrive in one call so that simulators can batch
            them. The ``torch.Generator`` is the only source of randomness ``fn`` may use.
        cost_per_evaluation: what one evaluation costs, in ``cost_unit`` (e.g. 1000 shots).
        cost_unit: the name of the cost (``"evaluations"``, ``"shots"``).
    """

    kind = Kind.BLACK_BOX

    def __init__(
        self,
        fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
        *,
        cost_per_evaluation: float = 1.0,
        cost_unit: str = "evaluations",
    ) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(points, generator), got {type(fn).__name__}")
        self.fn = fn
        self.cost_per_evaluation = check_positive("cost_per_evaluation", cost_per_evaluation)
        self.cost_unit = cost_unit

    def evaluate(self, points: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Noisy values at ``points`` (shape ``(K, d)``), checked for shape and finiteness."""
        if points.ndim != 2:
            raise ValueError(f"points must have shape (K, d), got {tuple(points.shape)}")
        values = torch.as_tensor(self.fn(points, generator), dtype=points.dtype)
        if values.shape != (points.shape[0],):
            raise ValueError(
                f"fn returned shape {tuple(values.shape)} for {points.shape[0]} points; "
                f"it must return one value per point, shape ({points.shape[0]},)"
            )
        return check_finite("black-box values", values)


class Energy:
    """A holistic deterministic objective ``fn(params) -> scalar tensor`` (differentiable by autograd).

    Mini-batching it is refused: there are no exchangeable examples whose mean is the energy.
    """

    kind = Kind.ENERGY

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        if not callable(fn):
            raise TypeError(f"fn must be callable as fn(params), got {type(fn).__name__}")
        self.fn = fn

    def value(self, params: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.fn(params))

    def value_and_grad(self, params: torch.Tensor) -> tuple[float, torch.Tensor]:
        x = params.detach().requires_grad_(True)
        with torch.enable_grad():
            energy = self.fn(x)
            (grad,) = torch.autograd.grad(energy, x)
        return float(energy.detach()), grad


Objective = FiniteSum | NoisyBlackBox | Energy
