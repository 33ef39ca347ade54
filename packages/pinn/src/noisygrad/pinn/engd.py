"""Energy natural gradient (Gauss-Newton, Levenberg-Marquardt damped) for DeepXDE models, with per-point Jacobians.

The core's :class:`noisygrad.optim.natural_gradient.EnergyNaturalGradient` needs the residual vector ``r`` with
``|r|^2`` equal to the training loss, and its Jacobian ``J = dr/dtheta``. Here both come from the model itself:

* **Residuals.** DeepXDE's own loss code (``data.losses_train``) runs with a loss function that records each
  term's error (PDE residuals, boundary and initial-condition errors) instead of averaging it; term ``k`` with
  ``n_k`` entries and loss weight ``w_k`` contributes ``sqrt(w_k / n_k) * error_k``, so ``|r|^2`` is DeepXDE's
  ``MSE`` training loss exactly (checked on the first step: another ``loss`` is refused).
* **Jacobian, per point.** Reverse mode needs one pass per residual; but a PINN's residual at a collocation point
  depends on the weights only through that point's forward pass (and its input derivatives). So every
  ``torch.nn.Linear`` of the network gets a zero per-point weight offset ``delta[n]`` for row ``n`` (its output
  becomes ``x W^T + b + x_n delta_W[n]^T + delta_b[n]``, the same values); one backward pass of
  ``sum_i r_i`` then gives each row's gradient in ``delta[n]``, which is the Jacobian row of the residual
  computed from row ``n``. Terms that share rows (several PDE equations, several output columns) take one pass
  each. A boundary term whose entries pair two rows (``PeriodicBC``) adds both rows' gradients. External
  trainable variables (inverse problems) get their columns from two more backward passes each.

Supported: ``dde.data.PDE`` / ``TimePDE`` data with networks whose parameters all belong to ``torch.nn.Linear``
layers (``dde.nn.FNN`` and friends, with input/output transforms), the ``MSE`` loss, any loss weights, external
trainable variables. Anything else is refused by name before training starts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from noisygrad.optim.natural_gradient import EnergyNaturalGradient

from ._deepxde import deepxde

__all__ = ["PinnEnergyNaturalGradient", "pinn_residuals"]


def _linears(net: torch.nn.Module) -> list[torch.nn.Linear]:
    """The network's Linear layers, checked to hold every parameter of the network."""
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    held = {id(p) for m in linears for p in m.parameters(recurse=False)}
    other = [name for name, p in net.named_parameters() if id(p) not in held]
    if other:
        raise ValueError(
            f"the energy natural gradient's per-point Jacobian supports networks whose parameters all belong to "
            f"torch.nn.Linear layers (dde.nn.FNN); this network also has {other[:3]}"
        )
    return linears


@contextlib.contextmanager
def _per_point_weights(net: torch.nn.Module, rows: int) -> Iterator[dict[int, torch.Tensor]]:
    """Give each Linear layer a zero per-row weight offset; yields ``{id(parameter): offset}``."""
    offsets: dict[int, torch.Tensor] = {}
    patched = []
    for layer in _linears(net):
        weight = layer.weight
        d_weight = torch.zeros(rows, *weight.shape, dtype=weight.dtype, device=weight.device, requires_grad=True)
        offsets[id(weight)] = d_weight
        d_bias = None
        if layer.bias is not None:
            d_bias = torch.zeros(rows, *layer.bias.shape, dtype=weight.dtype, device=weight.device, requires_grad=True)
            offsets[id(layer.bias)] = d_bias

        def forward(
            x: torch.Tensor,
            layer: torch.nn.Linear = layer,
            d_weight: torch.Tensor = d_weight,
            d_bias: torch.Tensor | None = d_bias,
        ) -> torch.Tensor:
            if x.ndim != 2 or x.shape[0] != rows:
                raise ValueError(
                    f"the per-point Jacobian expects layer inputs of shape ({rows}, features), got {tuple(x.shape)}"
                )
            out = torch.nn.functional.linear(x, layer.weight, layer.bias) + torch.einsum("ni,noi->no", x, d_weight)
            return out if d_bias is None else out + d_bias

        layer.forward = forward  # type: ignore[method-assign,assignment]
        patched.append(layer)
    try:
        yield offsets
    finally:
        for layer in patched:
            del layer.forward


def _terms(model: Any, inputs: Any, targets: Any, aux: Any) -> list[torch.Tensor]:
    """Each loss term's error tensor, computed by DeepXDE's own loss code on the given rows."""
    dde = deepxde()
    net = model.net
    net.auxiliary_vars = None if aux is None else torch.as_tensor(aux)
    net.train(mode=True)
    x = torch.as_tensor(inputs)
    x.requires_grad_()
    outputs = net(x)
    captured: list[torch.Tensor] = []

    def capture(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
        captured.append(y_pred - y_true)
        return y_pred.new_zeros(())

    try:
        model.data.losses_train(None if targets is None else torch.as_tensor(targets), outputs, capture, x, model)
    finally:
        dde.grad.clear()
    return captured


def _weights(model: Any, count: int) -> list[float]:
    weights = model.loss_weights
    if weights is None:
        return [1.0] * count
    weights = [float(w) for w in np.asarray(weights, dtype=np.float64).reshape(-1)]
    if len(weights) != count:
        raise ValueError(f"loss_weights has {len(weights)} entries but the model has {count} loss terms")
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError(f"loss_weights must be finite and >= 0 for a least-squares loss, got {weights}")
    return weights


def _row_maps(model: Any, terms: list[torch.Tensor], rows: int) -> list[tuple[int, list[np.ndarray]]]:
    """For each term: its pass key (terms in one pass use disjoint rows) and, per entry, the rows it depends on."""
    data = model.data
    bcs = list(getattr(data, "bcs", []))
    n_pde = len(terms) - len(bcs)
    starts = [int(v) for v in np.cumsum([0, *data.num_bcs])]
    maps: list[tuple[int, list[np.ndarray]]] = []
    for k, term in enumerate(terms):
        n = term.shape[0]
        if k < n_pde:
            beg, end = starts[-1], rows
            key = k
        else:
            beg, end = starts[k - n_pde], starts[k - n_pde + 1]
            key = 0
        span = end - beg
        if n == span:
            maps.append((key, [np.arange(beg, end)]))
        elif 2 * n == span:  # PeriodicBC: entry i compares rows beg + i and beg + n + i
            maps.append((key, [np.arange(beg, beg + n), np.arange(beg + n, end)]))
        else:
            raise ValueError(
                f"loss term {k} has {n} entries on {span} rows; the per-point Jacobian supports terms with one entry "
                "per row (PDE, Dirichlet, Neumann, Robin, IC, PointSetBC) or per pair of rows (PeriodicBC)"
            )
    return maps


def pinn_residuals(model: Any, inputs: Any, targets: Any, aux: Any, *, jacobian: bool = False) -> Any:
    """The weighted residual vector ``r`` of a compiled DeepXDE model (``|r|^2`` is its MSE training loss), and
    with ``jacobian=True`` also ``J = dr/dtheta`` over the network's parameters then the external trainable
    variables (the order :func:`noisygrad.pinn.optimizers.trainable` gives).

    Args:
        model: a compiled ``dde.Model`` with ``dde.data.PDE`` / ``TimePDE`` data.
        inputs, targets, aux: the rows, as DeepXDE's ``train_state`` holds them.
        jacobian: also return the Jacobian.

    Returns:
        ``r`` (1-D), or ``(r, J)``.
    """
    dde = deepxde()
    if not isinstance(model.data, dde.data.PDE):
        raise ValueError(
            f"the energy natural gradient supports dde.data.PDE / TimePDE data, got {type(model.data).__name__}"
        )
    rows = int(np.shape(inputs)[0])
    if not jacobian:
        with torch.enable_grad():
            terms = _terms(model, inputs, targets, aux)
            scales = [math.sqrt(w / max(t.numel(), 1)) for w, t in zip(_weights(model, len(terms)), terms, strict=True)]
            return torch.cat([(t * s).reshape(-1) for t, s in zip(terms, scales, strict=True)]).detach()
    net_params = list(model.net.parameters())
    external = list(model.external_trainable_variables or [])
    with torch.enable_grad(), _per_point_weights(model.net, rows) as offsets:
        terms = _terms(model, inputs, targets, aux)
        scales = [math.sqrt(w / max(t.numel(), 1)) for w, t in zip(_weights(model, len(terms)), terms, strict=True)]
        scaled = [t.reshape(t.shape[0], -1) * s for t, s in zip(terms, scales, strict=True)]
        maps = _row_maps(model, terms, rows)
        deltas = [offsets[id(p)] for p in net_params]
        blocks: list[list[torch.Tensor | None]] = [[None] * t.shape[1] for t in scaled]
        passes = sorted({(key, c) for (key, _), t in zip(maps, scaled, strict=True) for c in range(t.shape[1])})
        for key, c in passes:
            members = [
                k for k, ((kk, _), t) in enumerate(zip(maps, scaled, strict=True)) if kk == key and c < t.shape[1]
            ]
            total = torch.stack([scaled[k][:, c].sum() for k in members]).sum()
            grads = torch.autograd.grad(total, deltas, retain_graph=True, allow_unused=True)
            per_row = torch.cat(
                [
                    (g if g is not None else torch.zeros_like(d)).reshape(rows, -1)
                    for g, d in zip(grads, deltas, strict=True)
                ],
                dim=1,
            )
            for k in members:
                row_sets = maps[k][1]
                block = per_row[torch.as_tensor(row_sets[0])]
                for extra in row_sets[1:]:
                    block = block + per_row[torch.as_tensor(extra)]
                blocks[k][c] = block
        # entry order of r: term by term, row-major over (entry, column), as reshape(-1) of each term
        r = torch.cat([t.reshape(-1) for t in scaled])
        net_jac = torch.cat(
            [torch.stack([b for b in term_blocks if b is not None], dim=1).reshape(-1, per_row.shape[1])
             for term_blocks in blocks],
            dim=0,
        )  # fmt: skip
        columns = [net_jac]
        if external:
            seed = torch.zeros_like(r, requires_grad=True)
            pulled = torch.autograd.grad(r, external, grad_outputs=seed, create_graph=True, allow_unused=True)
            for v, g in zip(external, pulled, strict=True):
                if g is None or not g.requires_grad:
                    columns.append(torch.zeros(r.numel(), v.numel(), dtype=r.dtype))
                    continue
                flat = g.reshape(-1)
                cols = [torch.autograd.grad(flat[j], seed, retain_graph=True)[0] for j in range(flat.numel())]
                columns.append(torch.stack(cols, dim=1))
        J = torch.cat(columns, dim=1)
    return r.detach(), J.detach()


class PinnEnergyNaturalGradient(EnergyNaturalGradient):
    """The core's energy natural gradient on a DeepXDE model's full training set (see the module docs).

    The residuals and per-point Jacobian come from ``model`` on the rows of ``model.train_state`` (the set
    DeepXDE's training loop installs before each step); the closure ``step`` receives (DeepXDE's loss closure)
    is not used. Build it with :func:`noisygrad.pinn.optimizers.build_optimizer` (``optimizer="engd"``) or
    directly over ``trainable(model)``; train with :func:`noisygrad.pinn.train`.
    """

    def __init__(self, model: Any, params: Any, **options: Any) -> None:
        super().__init__(params, **options)
        net_params = list(model.net.parameters())
        external = list(model.external_trainable_variables or [])
        if [id(p) for p in self._params] != [id(p) for p in net_params + external]:
            raise ValueError(
                "PinnEnergyNaturalGradient must hold the network's parameters then the external trainable variables, "
                "in that order (noisygrad.pinn.optimizers.trainable(model))"
            )
        _linears(model.net)  # refuse unsupported networks before training
        self.model = model
        self._checked = False

    def _rows(self) -> tuple[Any, Any, Any]:
        state = self.model.train_state
        if state.X_train is None:
            raise RuntimeError("the model has no training rows yet; train it with noisygrad.pinn.train")
        return state.X_train, state.y_train, state.train_aux_vars

    def residuals(self, closure: Any) -> torch.Tensor:
        return pinn_residuals(self.model, *self._rows())  # type: ignore[no-any-return]

    def residuals_and_jacobian(self, closure: Any) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self._rows()
        r, J = pinn_residuals(self.model, *rows, jacobian=True)
        if not self._checked:  # |r|^2 must be DeepXDE's training loss: true for the MSE loss only
            losses = self.model.outputs_losses_train(*rows)[1]
            expected = float(torch.sum(losses).detach())
            got = float(r @ r)
            if not math.isclose(got, expected, rel_tol=1e3 * torch.finfo(r.dtype).eps, abs_tol=1e-300):
                raise ValueError(
                    f"the squared residuals sum to {got:.6g} but the model's training loss is {expected:.6g}; the "
                    "energy natural gradient needs DeepXDE's 'MSE' loss (compile(..., loss='MSE'))"
                )
            self._checked = True
        return r, J
