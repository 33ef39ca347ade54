"""Objectives: what is minimised, and what kind of thing it is.

The kind decides which gradient estimates are honest:

* :class:`FiniteSum` -- a mean over examples, ``f(x) = (1/N) sum_i l(x, z_i)``. A uniformly drawn
  mini-batch gives an unbiased gradient, so mini-batching is allowed. It may also know each example's loss
  (:meth:`FiniteSum.from_example_losses`) or the ``torch.nn.Module`` it evaluates
  (:meth:`FiniteSum.from_module`, through :class:`ModuleLoss`): cheaper noise statistics use them
  (:mod:`noisygrad.noise.per_example`).
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

from noisygrad.checks import check_finite, check_positive, check_torch_generator


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


def _one_loss_per_example(name: str, losses: object, n: int) -> torch.Tensor:
    """``losses`` if it is a tensor of shape ``(n,)``; else a ``ValueError`` naming ``name``."""
    if not isinstance(losses, torch.Tensor) or losses.shape != (n,):
        got = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(f"{name} must return one loss per example, shape ({n},); got {got}")
    return losses


class ModuleLoss:
    """The loss of a ``torch.nn.Module`` as a function of one flat parameter vector.

    ``loss(params, inputs, *targets)`` is the mean over the batch of ``example_loss(module(inputs), *targets)``
    with the module's parameters read from ``params`` (``torch.func.functional_call``: the module itself is
    never changed). ``params`` is laid out as ``torch.nn.utils.parameters_to_vector(module.parameters())``;
    ``torch.nn.utils.vector_to_parameters(x, module.parameters())`` writes a result back. Buffers are the
    module's own. The module must treat examples independently (no BatchNorm in training mode) and run
    under ``torch.func.vmap`` for per-example gradients.

    Args:
        module: the model; it must have at least one parameter.
        example_loss: ``example_loss(outputs, *targets) -> (B,)`` tensor, one loss per example (e.g.
            ``torch.nn.functional.mse_loss(..., reduction="none")`` summed over the output dimensions).
    """

    def __init__(self, module: torch.nn.Module, example_loss: Callable[..., torch.Tensor]) -> None:
        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        if not callable(example_loss):
            raise TypeError(f"example_loss must be callable as example_loss(outputs, *targets), got {example_loss!r}")
        named = list(module.named_parameters())
        if not named:
            raise ValueError(f"module {type(module).__name__} has no parameters to optimise")
        self.module = module
        self.example_loss = example_loss
        self.names = tuple(name for name, _ in named)
        self.shapes = tuple(p.shape for _, p in named)
        self.sizes = tuple(p.numel() for _, p in named)
        self.n_params = sum(self.sizes)

    def parameters(self, params: torch.Tensor) -> dict[str, torch.Tensor]:
        """The module's parameters as views of the flat vector ``params``, by name."""
        if params.shape != (self.n_params,):
            raise ValueError(
                f"params must be a flat vector of the module's {self.n_params} parameters "
                f"(torch.nn.utils.parameters_to_vector(module.parameters())), got shape {tuple(params.shape)}"
            )
        views = params.split_with_sizes(self.sizes)
        return {name: v.view(shape) for name, v, shape in zip(self.names, views, self.shapes, strict=True)}

    def example_losses(self, params: torch.Tensor, inputs: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        """Each example's loss, shape ``(B,)``, differentiable in ``params``."""
        outputs = torch.func.functional_call(self.module, self.parameters(params), (inputs,))
        return _one_loss_per_example("example_loss", self.example_loss(outputs, *targets), inputs.shape[0])

    def __call__(self, params: torch.Tensor, inputs: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        return self.example_losses(params, inputs, *targets).mean()


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

    :meth:`from_example_losses` and :meth:`from_module` build one that also knows each example's loss
    (``example_losses`` is then set); the noise statistics of :mod:`noisygrad.noise.per_example` use it.
    """

    kind = Kind.FINITE_SUM

    def __init__(self, loss: LossFn, data: Sequence[torch.Tensor] | torch.Tensor) -> None:
        if not callable(loss):
            raise TypeError(f"loss must be callable as loss(params, *batch), got {type(loss).__name__}")
        if not isinstance(data, torch.Tensor | Sequence):
            raise TypeError(f"data must be a tensor or a non-empty sequence of tensors, got {type(data).__name__}")
        tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
        if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
            got = ", ".join(type(t).__name__ for t in tensors) or "nothing"
            raise TypeError(f"data must be a tensor or a non-empty sequence of tensors, got {got}")
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
        self.example_losses: LossFn | None = loss.example_losses if isinstance(loss, ModuleLoss) else None
        """``example_losses(params, *batch) -> (B,)`` when the per-example losses are known, else ``None``."""

    @classmethod
    def from_example_losses(cls, example_losses: LossFn, data: Sequence[torch.Tensor] | torch.Tensor) -> FiniteSum:
        """A finite sum given each example's loss: ``example_losses(params, *batch) -> (B,)`` tensor.

        The objective's ``loss`` is their mean. Knowing the per-example losses spares the random-sign probe
        of :mod:`noisygrad.noise.per_example` a ``vmap`` over the forward pass.
        """
        if not callable(example_losses):
            raise TypeError(
                f"example_losses must be callable as example_losses(params, *batch), got {example_losses!r}"
            )

        def checked(params: torch.Tensor, *batch: torch.Tensor) -> torch.Tensor:
            return _one_loss_per_example("example_losses", example_losses(params, *batch), batch[0].shape[0])

        def loss(params: torch.Tensor, *batch: torch.Tensor) -> torch.Tensor:
            return checked(params, *batch).mean()

        objective = cls(loss, data)
        objective.example_losses = checked
        return objective

    @classmethod
    def from_module(
        cls,
        module: torch.nn.Module,
        example_loss: Callable[..., torch.Tensor],
        data: Sequence[torch.Tensor] | torch.Tensor,
    ) -> FiniteSum:
        """A finite sum over ``data = (inputs, *targets)`` of ``example_loss(module(inputs), *targets)``.

        The parameters are one flat vector (see :class:`ModuleLoss`); start from
        ``torch.nn.utils.parameters_to_vector(module.parameters()).detach()``. A module made of ``nn.Linear``
        layers and parameter-free elementwise functions admits exact per-example gradient norms from one
        forward and backward pass (``MiniBatch(..., noise_stats="norms")``).

        Example:
            >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
            >>> X, y = torch.randn(64, 3), torch.randn(64)
            >>> obj = FiniteSum.from_module(net, lambda out, y: 0.5 * (out.squeeze(-1) - y) ** 2, (X, y))
            >>> x0 = torch.nn.utils.parameters_to_vector(net.parameters()).detach()
            >>> obj.value(x0) > 0
            True
        """
        return cls(ModuleLoss(module, example_loss), data)

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

    def _one_example(self, params: torch.Tensor, *example: torch.Tensor) -> torch.Tensor:
        """The loss of one example (a batch of one), for ``torch.func.vmap`` over the examples."""
        return self.loss(params, *(e.unsqueeze(0) for e in example))

    def per_example_values_and_grads(
        self, params: torch.Tensor, indices: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's loss, shape ``(B,)``, and gradient, shape ``(B, *params.shape)``, in one vmap."""
        fn = torch.func.vmap(torch.func.grad_and_value(self._one_example), in_dims=(None, *([0] * len(self.data))))
        grads, values = fn(params.detach(), *self.batch(indices))
        return values, grads

    def per_example_values(self, params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Each example's loss, shape ``(B,)``, differentiable in ``params`` (autograd follows ``params``).

        Uses ``example_losses`` when known, else a ``torch.func.vmap`` of the loss over the examples.
        """
        batch = self.batch(indices)
        if self.example_losses is not None:
            return self.example_losses(params, *batch)
        return torch.func.vmap(self._one_example, in_dims=(None, *([0] * len(batch))))(params, *batch)

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
        """Noisy values at ``points`` (shape ``(K, d)``), checked for shape and finiteness.

        ``generator`` must be a ``torch.Generator``: ``None`` is refused, as ``fn`` would then draw its noise from
        torch's global generator and the run would not be reproducible from its seed.
        """
        if not isinstance(points, torch.Tensor) or points.ndim != 2:
            raise ValueError(f"points must have shape (K, d), got {getattr(points, 'shape', type(points).__name__)}")
        check_torch_generator("generator", generator)
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
