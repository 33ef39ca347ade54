"""Generalised linear models: ``f(w) = (1/N) sum_i l(x_i . w, y_i) + (l2/2) |w|^2`` with a known derivative of ``l``.

One example's gradient is ``l'(x_i . w, y_i) x_i + l2 w``: a single number, the derivative of the loss at the
example's margin ``z_i = x_i . w``, times the example's features, plus the penalty. :class:`GLM` is a
:class:`~noisygrad.FiniteSum` that knows this structure, so

* its gradients are closed forms, two matrix-vector products without autograd (what :class:`~noisygrad.FullBatch`,
  :class:`~noisygrad.MiniBatch` and :class:`~noisygrad.STORM` call), and so are its per-example gradients (no
  ``vmap``; the noise statistics of :mod:`noisygrad.noise.per_example` use them);
* :class:`~noisygrad.SVRG` and :class:`~noisygrad.SAGA` detect it and remember one number per example instead of a
  gradient: SAGA's table holds ``N`` derivatives (as scikit-learn's SAG and SAGA do) and SVRG's snapshot keeps its
  ``N`` derivatives, so an inner step evaluates ``b`` examples instead of ``2 b``. Their steps are ``O(b d)``
  arithmetic in about ten array operations without autograd, on numpy views of the data when the data are on the
  CPU (:class:`GLMKernels`), on the tensors on another device. Under plain ``SGD`` whole stretches of their steps
  also run in one compiled pass (:func:`noisygrad.loop_fused.minimize_fused`, with numba: a few microseconds a step).

The losses (``z`` the margin ``x . w``):

* ``"logistic"``: ``log(1 + exp(-y z))`` with labels ``y`` in ``{-1, +1}``, derivative ``-y sigmoid(-y z)``;
* ``"squared"``: ``(z - y)^2 / 2``, derivative ``z - y`` (least squares; ridge regression with ``l2 > 0``).

There is no separate intercept: append a column of ones to ``X`` for one (it is then penalised like the other
weights, as in scikit-learn's ``fit_intercept=False`` with an explicit column).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from scipy.special import expit

from noisygrad.checks import check_finite, check_positive
from noisygrad.objectives import FiniteSum

__all__ = ["GLM", "GLMKernels", "GLMLoss"]

GLMLoss = Literal["logistic", "squared"]
LOSSES: tuple[str, ...] = get_args(GLMLoss)

Array = npt.NDArray[Any]
Vector = Any
"""A numpy array (data on the CPU) or a torch tensor (data on another device): what :class:`GLMKernels` computes on."""


def _torch_losses(name: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Each example's data loss ``l(z_i, y_i)``, differentiable in ``z`` (logistic through a stable log-sigmoid)."""
    if name == "logistic":
        return -torch.nn.functional.logsigmoid(y * z)
    return 0.5 * (z - y) ** 2


def _torch_derivatives(name: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``l'(z_i, y_i)``, the derivative of each example's data loss with respect to its margin."""
    if name == "logistic":
        return -y * torch.sigmoid(-y * z)
    return z - y


def _data_tensor(name: str, value: object, ndim: int) -> torch.Tensor:
    if not isinstance(value, torch.Tensor | np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a numpy array, got {type(value).__name__}")
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = value.copy()  # torch wraps only writable arrays (the objective never writes to its data)
    tensor = torch.as_tensor(value).detach()
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {tensor.dtype}")
    if tensor.ndim != ndim or tensor.shape[0] == 0 or (ndim == 2 and tensor.shape[1] == 0):
        want = "(N, d) with N, d >= 1" if ndim == 2 else "(N,) with N >= 1"
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")
    return check_finite(name, tensor, hint=f"pass finite numbers as {name}")


class GLMKernels:
    """The per-step arithmetic of SVRG and SAGA on a :class:`GLM`, without autograd.

    On the CPU it works on numpy views of the data (small numpy operations cost a fraction of torch's
    per-call overhead); on another device on the tensors themselves, with the same operations (``backend``
    forces ``"torch"`` or ``"numpy"``; ``None`` chooses by the data's device). Arrays are
    therefore numpy arrays on the CPU and tensors elsewhere (``Vector`` below); :meth:`view` and :meth:`tensor`
    convert to and from the estimators' torch state. Views share memory with the objective's tensors: the data
    are never copied or modified.
    """

    def __init__(self, X: torch.Tensor, y: torch.Tensor, loss: str, l2: float, *, backend: str | None = None) -> None:
        if backend not in (None, "numpy", "torch") or (backend == "numpy" and X.device.type != "cpu"):
            raise ValueError(f"backend must be None, 'torch', or 'numpy' for data on the CPU; got {backend!r}")
        self.on_cpu = backend == "numpy" or (backend is None and X.device.type == "cpu")
        self.X: Vector = X.numpy() if self.on_cpu else X
        self.y: Vector = y.numpy() if self.on_cpu else y
        self.loss, self.l2, self.dtype, self.device = loss, l2, X.dtype, X.device
        self.n_examples, self.n_features = X.shape
        self._contiguous: tuple[Array, Array] | None = None

    def contiguous(self) -> tuple[Array, Array]:
        """``X`` and ``y`` as C-contiguous numpy arrays (rows adjacent in memory), for compiled loops over rows.

        Views when the data already are (the usual case); otherwise copies, made once and kept.
        """
        if not self.on_cpu:
            raise ValueError("contiguous() needs the numpy backend (data on the CPU)")
        if self._contiguous is None:
            self._contiguous = np.ascontiguousarray(self.X), np.ascontiguousarray(self.y)
        return self._contiguous

    def params(self, params: torch.Tensor) -> Vector:
        """``params`` as a ``Vector`` (never written), checked for shape, dtype and device, and for NaN or Inf."""
        if params.shape != (self.n_features,):
            raise ValueError(
                f"params must have shape ({self.n_features},), one weight per column of X; got {tuple(params.shape)}"
            )
        if params.device != self.device or params.dtype != self.dtype:
            raise TypeError(
                f"params must be a tensor of the data's dtype and device ({self.dtype} on {self.device}); "
                f"got {params.dtype} on {params.device}"
            )
        w = check_finite("params", params.detach() if params.requires_grad else params)
        return w.numpy() if self.on_cpu else w

    def view(self, tensor: torch.Tensor) -> Vector:
        """A state tensor (or the batch indices) as a ``Vector`` sharing its memory."""
        return tensor.numpy() if self.on_cpu else tensor.to(self.device)

    def tensor(self, vector: Vector) -> torch.Tensor:
        """A ``Vector`` as a tensor sharing its memory."""
        return torch.from_numpy(vector) if self.on_cpu else vector

    def gradient(self, vector: Vector) -> torch.Tensor:
        """A gradient as a tensor, refused if it holds NaN or Inf (one sum first: cheaper than an entrywise test)."""
        grad = self.tensor(vector)
        if not math.isfinite(float(vector.sum())):
            check_finite("gradient", grad)
        return grad

    def losses_and_derivatives(self, z: Vector, y: Vector) -> tuple[Vector, Vector]:
        """Each example's data loss and its derivative with respect to the margin ``z``."""
        if not self.on_cpu:
            return _torch_losses(self.loss, z, y), _torch_derivatives(self.loss, z, y)
        if self.loss == "logistic":
            minus_margin = -(y * z)
            return np.logaddexp(0.0, minus_margin), -y * expit(minus_margin)
        residual = z - y
        return 0.5 * residual * residual, residual

    def batch(self, w: Vector, idx: Vector) -> tuple[float, Vector, Vector]:
        """The mean loss over the examples ``idx`` (penalty included), their features and their derivatives."""
        Xb = self.X[idx]
        losses, derivatives = self.losses_and_derivatives(Xb @ w, self.y[idx])
        value = float(losses.sum()) / len(idx) + 0.5 * self.l2 * float(w @ w)
        return value, Xb, derivatives

    def full(self, w: Vector) -> tuple[float, Vector, Vector]:
        """The objective at ``w``, every example's derivative (shape ``(N,)``) and the data term's gradient.

        The data term's gradient is ``X^T l'(X w, y) / N``, the full gradient without the penalty's ``l2 w``.
        """
        losses, derivatives = self.losses_and_derivatives(self.X @ w, self.y)
        n = self.n_examples
        value = float(losses.sum()) / n + 0.5 * self.l2 * float(w @ w)
        return value, derivatives, (derivatives @ self.X) / n


class GLM(FiniteSum):
    """The regularised empirical risk of a linear model, ``(1/N) sum_i l(x_i . w, y_i) + (l2/2) |w|^2``.

    A :class:`~noisygrad.FiniteSum` over the rows of ``(X, y)`` (every estimator that takes one takes it) whose
    loss is ``loss(w, X, y)``, the mean data loss plus the penalty, so each example's loss includes the penalty.

    Args:
        X: features, shape ``(N, d)``, a floating tensor or numpy array (wrapped, not copied, unless read-only).
        y: targets, shape ``(N,)``, the same dtype and device; labels in ``{-1, +1}`` for ``"logistic"``.
        loss: ``"logistic"`` or ``"squared"`` (see :mod:`noisygrad.glm`).
        l2: the L2 penalty ``lambda >= 0``; scikit-learn's ``C`` is ``1 / (N lambda)``.

    Example:
        >>> X = torch.randn(200, 3, dtype=torch.float64)
        >>> y = torch.where(X[:, 0] > 0, 1.0, -1.0).to(torch.float64)
        >>> objective = GLM(X, y, loss="logistic", l2=1e-2)
        >>> value, grad = objective.value_and_grad(torch.zeros(3, dtype=torch.float64))
        >>> round(value, 6)  # log 2 at w = 0
        0.693147
    """

    def __init__(
        self,
        X: torch.Tensor | Array,
        y: torch.Tensor | Array,
        *,
        loss: GLMLoss = "logistic",
        l2: float = 0.0,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(map(repr, LOSSES))}; got {loss!r}")
        features, targets = _data_tensor("X", X, 2), _data_tensor("y", y, 1)
        if targets.shape[0] != features.shape[0]:
            raise ValueError(f"y must have one target per row of X ({features.shape[0]}), got {targets.shape[0]}")
        if targets.dtype != features.dtype or targets.device != features.device:
            raise TypeError(
                f"X and y must share dtype and device, got X {features.dtype} on {features.device} "
                f"and y {targets.dtype} on {targets.device}"
            )
        if loss == "logistic" and not bool(((targets == 1) | (targets == -1)).all()):
            found = torch.unique(targets)[:5].tolist()
            raise ValueError(
                f"y must hold labels -1 or +1 for loss='logistic' (map 0/1 labels with 2 * y - 1); found {found}"
            )
        self.loss_name: GLMLoss = loss
        self.l2 = check_positive("l2", l2, allow_zero=True)
        super().__init__(self._mean_loss, (features, targets))
        self.example_losses = self._example_losses
        self.X, self.y = features, targets
        self.n_features: int = features.shape[1]
        self.kernels = GLMKernels(features, targets, loss, self.l2)
        """The per-step arithmetic SVRG and SAGA use (numpy on the CPU, torch elsewhere)."""

    def _example_losses(self, params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _torch_losses(self.loss_name, X @ params, y) + 0.5 * self.l2 * (params @ params)

    def _mean_loss(self, params: torch.Tensor, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _torch_losses(self.loss_name, X @ params, y).mean() + 0.5 * self.l2 * (params @ params)

    def _check_params(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` detached, after the kernels' checks (shape, the data's dtype and device, NaN or Inf)."""
        self.kernels.params(params)
        return params.detach()

    def value_and_grad(self, params: torch.Tensor, indices: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """Mean loss and gradient over the examples at ``indices``: ``X_B^T l'(X_B w, y_B) / |B| + l2 w``."""
        w = self._check_params(params)
        X, y = self.batch(indices)
        z = X @ w
        value = _torch_losses(self.loss_name, z, y).mean() + 0.5 * self.l2 * (w @ w)
        grad = _torch_derivatives(self.loss_name, z, y) @ X / X.shape[0] + self.l2 * w
        return float(value), grad

    def per_example_values_and_grads(
        self, params: torch.Tensor, indices: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each example's loss, shape ``(B,)``, and gradient ``l'(z_i, y_i) x_i + l2 w``, shape ``(B, d)``."""
        w = self._check_params(params)
        X, y = self.batch(indices)
        z = X @ w
        values = _torch_losses(self.loss_name, z, y) + 0.5 * self.l2 * (w @ w)
        grads = _torch_derivatives(self.loss_name, z, y).unsqueeze(1) * X + self.l2 * w
        return values, grads

    def __repr__(self) -> str:
        n, d = self.X.shape
        return f"GLM(N={n}, d={d}, loss={self.loss_name!r}, l2={self.l2!r})"
