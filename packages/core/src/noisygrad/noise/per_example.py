"""The gradient noise inside one mini-batch, three ways: exact per-example gradients, exact norms, a probe.

For a batch of ``B`` examples with per-example gradients ``g_i`` (of each example's own loss) and mean
``g_b``, the noise statistics need only ``tr(S_b) = (sum_i |g_i|^2 - B |g_b|^2) / (B - 1)``, the unbiased
(``B - 1``-normalised) trace of the within-batch covariance; with ``|g_b|^2`` it gives the gradient
diversity, the predicted cosine and the temperature (:mod:`noisygrad.noise.statistics`). :func:`batch_noise` returns the
batch's mean loss, mean gradient and ``tr(S_b)`` by one of three methods:

``"vmap"`` -- exact, any :class:`~noisygrad.FiniteSum`.
    All ``B`` per-example gradients through ``torch.func.vmap(grad)`` (the only method that keeps them, so
    also the one behind ``tr(S^2)`` in :func:`noisygrad.noise.statistics.gradient_noise`). Cost: B gradients in one
    batched pass, measured 3.4-4.2x a plain mini-batch gradient for a 16-64-1 MLP at ``B = 128``
    (``benchmarks/core_noise_stats.py``, one CPU thread).

``"norms"`` -- exact, for objectives built with :meth:`~noisygrad.FiniteSum.from_module` whose parameters
    all sit in ``nn.Linear`` layers (any parameter-free elementwise functions between them).
    A linear layer's per-example weight gradient is ``delta_i a_i^T`` (``a_i`` its input, ``delta_i`` the loss
    gradient at its output), so ``|g_i|^2 = sum over layers of (|a_i|^2 + 1) |delta_i|^2`` (the ``+ 1`` is the
    bias), read from one ordinary forward and backward pass through forward hooks (Goodfellow 2015,
    "Efficient per-example gradient computations"; Opacus and BackPACK's ``BatchL2Grad`` do the same).
    Inputs with extra dimensions ``(B, T, in)`` (sequences) use ``|sum_t delta_it a_it^T|^2`` through
    ``T x T`` Gram matrices. Cost: one forward and backward plus ``O(B (in + out))`` per layer: measured
    1.24-1.33x the plain gradient of the same module objective. Assumes the examples do not interact in the
    model (no BatchNorm in training mode); refuses, with an error saying why, a layer called twice in one
    forward, a weight shared by two layers or used outside its layer, and a layer input or output modified
    in place (``ReLU(inplace=True)``). ``sum_i |g_i|^2 - B |g_b|^2`` cancels when the noise is tiny against
    the signal: the relative rounding error of ``tr(S_b)`` is about ``eps (1 + 1 / rho)`` (``eps`` the
    dtype's precision, ``rho`` the gradient diversity).

``"probe"`` -- unbiased, any :class:`~noisygrad.FiniteSum`.
    With per-example losses ``l`` (shape ``(B,)``, Jacobian ``J`` of shape ``(B, d)``), a centred Rademacher
    vector ``u = v - mean(v)`` gives ``E_v |J^T u|^2 = sum_i |g_i - g_b|^2 = (B - 1) tr(S_b)`` exactly. ``J^T u``
    and the gradient ``J^T 1 / B`` are two vector-Jacobian products of the same forward pass, taken together
    (``torch.autograd.grad(..., is_grads_batched=True)``); ``probes = k`` averages ``k`` independent ``u``.
    The per-example losses come from :meth:`~noisygrad.FiniteSum.from_example_losses` or
    :meth:`~noisygrad.FiniteSum.from_module` when known, else from a ``vmap`` of the loss over the examples
    (forward pass only). Extra variance, given the batch: with ``M`` the centred Gram matrix
    ``M_ij = (g_i - g_b).(g_j - g_b)``, ``Var = 2 (sum_ij M_ij^2 - sum_i M_ii^2) / (k (B - 1)^2)``, i.e. a
    relative standard deviation of at most ``sqrt(2 / (k d_b))`` with ``d_b = tr(S_b)^2 / tr(S_b^2)`` the
    batch's effective noise dimension (20% at ``d_b = 50``, ``k = 1``). It draws ``B k`` random signs from the
    caller's generator. Cost: one forward and two backward passes' worth: measured 1.4-1.6x a plain gradient
    with the per-example losses known, about 2x when they come through ``vmap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import torch

from noisygrad.checks import check_positive_int
from noisygrad.objectives import FiniteSum, Kind, ModuleLoss, require_kind

__all__ = [
    "NOISE_METHODS",
    "BatchNoise",
    "NoiseMethod",
    "PerExampleNoise",
    "batch_noise",
    "check_noise_method",
    "linear_layers",
]

NoiseMethod = Literal["vmap", "norms", "probe"]
NOISE_METHODS: tuple[NoiseMethod, ...] = ("vmap", "norms", "probe")


@dataclass(frozen=True)
class BatchNoise:
    """A mini-batch's mean loss, mean gradient and within-batch noise.

    Attributes:
        value: the mean loss of the batch.
        grad: the mean gradient of the batch, shaped like the parameters.
        trace_cov: ``tr(S_b)``, the trace of the batch's ``(B - 1)``-normalised per-example gradient
            covariance: exact (``"vmap"``, ``"norms"``) or an unbiased estimate (``"probe"``). Over uniformly
            drawn batches it is unbiased for ``tr(S)`` without replacement (``S`` normalised by ``N - 1``) and for
            ``tr(S) (N - 1) / N`` with replacement.
        method: how it was computed.
    """

    value: float
    grad: torch.Tensor
    trace_cov: float
    method: NoiseMethod


def linear_layers(module: torch.nn.Module) -> tuple[torch.nn.Linear, ...]:
    """The ``nn.Linear`` layers of ``module``, checked to hold every parameter (each in exactly one layer).

    Raises ``ValueError`` naming the first parameter outside a linear layer, or shared between two.
    """
    layers = tuple(m for m in module.modules() if isinstance(m, torch.nn.Linear))
    owner: dict[int, str] = {}
    names = {id(m): name for name, m in module.named_modules()}
    for layer in layers:
        for p in layer.parameters(recurse=False):
            if id(p) in owner:
                raise ValueError(
                    f"a parameter is shared by the linear layers {owner[id(p)]!r} and {names[id(layer)]!r}: its "
                    "per-example gradient is a sum over both uses, which the 'norms' method does not form; "
                    "use noise_stats='vmap' or 'probe'"
                )
            owner[id(p)] = names[id(layer)]
    for name, p in module.named_parameters():
        if id(p) not in owner:
            kind = type(module.get_submodule(name.rpartition(".")[0])).__name__
            raise ValueError(
                f"parameter {name!r} belongs to a {kind}, not an nn.Linear: the 'norms' method knows the per-example "
                "gradients of linear layers only; use noise_stats='vmap' (exact) or 'probe' (unbiased)"
            )
    return layers


def check_noise_method(objective: FiniteSum, method: object) -> NoiseMethod:
    """``method`` if it is one of :data:`NOISE_METHODS` and ``objective`` allows it; a clear error if not."""
    require_kind("noise statistics", objective, (Kind.FINITE_SUM,))
    if not isinstance(method, str) or method not in NOISE_METHODS:
        raise ValueError(f"method must be one of {', '.join(map(repr, NOISE_METHODS))}, got {method!r}")
    if method == "norms":
        if not isinstance(objective.loss, ModuleLoss):
            raise ValueError(
                "the 'norms' method reads per-example gradient norms from nn.Linear layers, so it needs an objective "
                "built with FiniteSum.from_module(module, example_loss, data); for a loss written on a flat "
                "parameter vector use 'vmap' (exact) or 'probe' (unbiased)"
            )
        linear_layers(objective.loss.module)
    return method


class PerExampleNoise:
    """The within-batch noise of a :class:`~noisygrad.FiniteSum` by one method, checked once.

    ``PerExampleNoise(objective, method)(params, indices, generator)`` is :func:`batch_noise`; build it once
    to measure many batches (the model's structure is checked here, not on every call).
    """

    def __init__(self, objective: FiniteSum, method: NoiseMethod = "vmap", *, probes: int = 1) -> None:
        self.method = check_noise_method(objective, method)
        self.objective = objective
        self.probes = check_positive_int("probes", probes)
        self._layers = linear_layers(cast(ModuleLoss, objective.loss).module) if method == "norms" else ()

    def __call__(
        self, params: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None = None
    ) -> BatchNoise:
        if (
            not isinstance(indices, torch.Tensor)
            or indices.ndim != 1
            or indices.dtype not in (torch.int64, torch.int32)
        ):
            raise ValueError(f"indices must be a 1-D integer tensor, got {getattr(indices, 'shape', type(indices))}")
        b = indices.shape[0]
        if b < 2:
            raise ValueError(f"indices must hold at least 2 examples to estimate a variance, got {b}")
        if self.method == "vmap":
            values, per_example = self.objective.per_example_values_and_grads(params, indices)
            per_example = per_example.reshape(b, -1)
            grad = per_example.mean(0).reshape(params.shape)
            return BatchNoise(float(values.mean()), grad, float(per_example.var(0, unbiased=True).sum()), "vmap")
        if self.method == "norms":
            return _norms(self.objective, self._layers, params, indices)
        if not isinstance(generator, torch.Generator):
            raise TypeError(
                f"the 'probe' method draws random signs: generator must be a torch.Generator, got {generator!r}"
            )
        return _probe(self.objective, params, indices, generator, self.probes)


def batch_noise(
    objective: FiniteSum,
    params: torch.Tensor,
    indices: torch.Tensor,
    *,
    method: NoiseMethod = "vmap",
    generator: torch.Generator | None = None,
    probes: int = 1,
) -> BatchNoise:
    """Mean loss, mean gradient and ``tr(S_b)`` of the examples at ``indices`` (see the module docstring).

    Args:
        objective: a :class:`~noisygrad.FiniteSum` (built with :meth:`~noisygrad.FiniteSum.from_module` for
            ``"norms"``).
        params: the parameters (not modified).
        indices: 1-D integer tensor of at least two example indices.
        method: ``"vmap"`` (exact per-example gradients), ``"norms"`` (exact norms, linear layers) or
            ``"probe"`` (unbiased random-sign probe).
        generator: the source of the probe's random signs (required for ``"probe"``, unused otherwise).
        probes: how many independent sign vectors the probe averages (its variance falls as ``1 / probes``).
    """
    return PerExampleNoise(objective, method, probes=probes)(params, indices, generator)


def _probe(
    objective: FiniteSum, params: torch.Tensor, indices: torch.Tensor, generator: torch.Generator, probes: int
) -> BatchNoise:
    b = indices.shape[0]
    x = params.detach().requires_grad_(True)
    signs = torch.randint(0, 2, (probes, b), generator=generator, device=generator.device)
    v = signs.to(device=params.device, dtype=params.dtype) * 2 - 1
    cotangents = torch.cat([torch.full((1, b), 1.0 / b, dtype=params.dtype, device=params.device), v - v.mean(1, True)])
    with torch.enable_grad():
        losses = objective.per_example_values(x, indices)
        (vjps,) = torch.autograd.grad(losses, x, grad_outputs=cotangents, is_grads_batched=True)
    trace = float(vjps[1:].square().sum()) / (probes * (b - 1))
    return BatchNoise(float(losses.detach().mean()), vjps[0], trace, "probe")


def _norms(
    objective: FiniteSum, layers: tuple[torch.nn.Linear, ...], params: torch.Tensor, indices: torch.Tensor
) -> BatchNoise:
    loss_fn = cast(ModuleLoss, objective.loss)
    records: list[tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, int]] = []

    def record(
        layer: torch.nn.Module, args: tuple[torch.Tensor, ...], kwargs: dict[str, torch.Tensor], out: torch.Tensor
    ) -> None:
        inputs = args[0] if args else kwargs["input"]
        records.append((cast(torch.nn.Linear, layer), inputs, out, inputs._version + out._version))

    handles = [layer.register_forward_hook(record, with_kwargs=True) for layer in layers]
    b = indices.shape[0]
    x = params.detach().requires_grad_(True)
    try:
        with torch.enable_grad():
            loss = loss_fn(x, *objective.batch(indices))
    finally:
        for handle in handles:
            handle.remove()
    calls: dict[int, int] = {}
    for layer, inputs, out, version in records:
        calls[id(layer)] = calls.get(id(layer), 0) + 1
        if calls[id(layer)] > 1:
            raise ValueError(
                f"the linear layer {layer} ran more than once in one forward pass: its per-example gradient is a "
                "sum over the calls, which the 'norms' method does not form; use noise_stats='vmap' or 'probe'"
            )
        if inputs._version + out._version != version:
            raise ValueError(
                f"the input or output of the linear layer {layer} was modified in place (e.g. by ReLU(inplace=True)) "
                "after the layer ran; the 'norms' method needs both as the layer saw them: use inplace=False, or "
                "noise_stats='vmap' or 'probe'"
            )
    with torch.enable_grad():
        grad, *deltas = torch.autograd.grad(loss, [x, *(out for _, _, out, _ in records)], allow_unused=True)
    with torch.no_grad():
        sq_norms = torch.zeros(b, dtype=params.dtype, device=params.device)
        for (layer, inputs, _, _), delta in zip(records, deltas, strict=True):
            if delta is not None:
                sq_norms += _linear_sq_norms(inputs, delta, layer.bias is not None, b)
        # deltas are gradients of the batch *mean*: example i's own gradient is B times its share
        sum_sq = float(sq_norms.sum()) * b * b
        trace = max(sum_sq - b * float(grad.square().sum()), 0.0) / (b - 1)
    _check_all_layers_seen(layers, records, loss_fn, grad)
    return BatchNoise(float(loss.detach()), grad, trace, "norms")


def _linear_sq_norms(inputs: torch.Tensor, delta: torch.Tensor, bias: bool, b: int) -> torch.Tensor:
    """``|grad of a linear layer's weight (and bias)|^2`` for each example, from its input and output gradient."""
    if inputs.ndim < 2 or inputs.shape[0] != b:
        raise ValueError(
            f"a linear layer got input of shape {tuple(inputs.shape)}; the 'norms' method needs the batch's {b} "
            "examples along dimension 0"
        )
    if inputs.ndim == 2:
        a_sq: torch.Tensor = torch.linalg.vecdot(inputs, inputs)
        d_sq: torch.Tensor = torch.linalg.vecdot(delta, delta)
        return (a_sq + float(bias)) * d_sq
    a, d = inputs.flatten(1, -2), delta.flatten(1, -2)  # (B, T, in), (B, T, out)
    t, n_in, n_out = a.shape[1], a.shape[2], d.shape[2]
    if t * t <= n_in * n_out:  # |sum_t d_t a_t^T|^2 = sum_{t,t'} (a_t . a_t')(d_t . d_t')
        weight = ((a @ a.transpose(1, 2)) * (d @ d.transpose(1, 2))).sum((1, 2))
    else:
        weight = (d.transpose(1, 2) @ a).square().sum((1, 2))
    return weight + d.sum(1).square().sum(1) if bias else weight


def _check_all_layers_seen(
    layers: tuple[torch.nn.Linear, ...],
    records: list[tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, int]],
    loss_fn: ModuleLoss,
    grad: torch.Tensor,
) -> None:
    """A linear layer whose hook never fired must have no gradient (its weights used outside its forward)."""
    seen = {id(layer) for layer, _, _, _ in records}
    unseen = [layer for layer in layers if id(layer) not in seen]
    if not unseen:
        return
    by_name = loss_fn.parameters(grad)
    names = {id(p): name for name, p in loss_fn.module.named_parameters()}
    for layer in unseen:
        for p in layer.parameters(recurse=False):
            if bool(by_name[names[id(p)]].any()):
                raise ValueError(
                    f"parameter {names[id(p)]!r} has a gradient but its linear layer never ran (its weights are "
                    "used outside the layer's forward): the 'norms' method cannot see them; use noise_stats='vmap' "
                    "or 'probe'"
                )
