"""Atomic clusters as holistic energies: Lennard-Jones (with an optional three-body term) and its exact forces.

A cluster's energy couples its atoms: ``E = sum_{i<j} phi(r_ij) [+ sum_{i<j<k} psi_ijk]``. It is an
:class:`~noisygrad.Energy`, not a :class:`~noisygrad.FiniteSum`, and noisygrad refuses to mini-batch it
(:class:`~noisygrad.BatchingNotAllowedError`). What an "atom mini-batch" would compute is spelled out here so
that the refusal can be measured, not just asserted:

* :func:`atom_minibatch_gradients` -- draw ``b`` of the ``n`` atoms, compute the forces of the *sub-cluster*
  they form (the energy of those atoms alone: every pair and triple among them), scale by ``n / b`` as a
  mini-batch over examples would. Each draw is the exact gradient of another physical system, a ``b``-atom
  cluster, whose minimiser is not the ``n``-atom cluster's.
* :func:`atom_minibatch_mean` -- its exact expectation over uniform draws. A ``k``-body term survives a draw
  with probability ``C(n - k, b - k) / C(n, b)``, so the mean is ``sum_k q_k grad E_k`` with
  ``q_k = (b-1)...(b-k+1) / ((n-1)...(n-k+1))`` (:func:`atom_minibatch_factor`): the pair forces are shrunk by
  ``q_2 = (b - 1)/(n - 1)``, the three-body forces by the smaller ``q_3``. For a pure pair potential the mean
  is therefore ``q_2 grad E``: biased (the bias ``-(1 - q_2) grad E`` never averages out), but parallel to the
  true gradient and zero at the minimum. With a three-body term it is *not* parallel: at the cluster's
  minimum, where ``grad E_2 = -grad E_3``, the mean is ``(q_2 - q_3) grad E_2 != 0``: on average, atom
  mini-batch SGD is pushed off the minimum, which is not a fixed point of its mean dynamics.

Reduced units throughout: energies in ``epsilon``, lengths in ``sigma``. The 13-atom cluster's global minimum
is the Mackay icosahedron, ``E = -44.326801`` (Wales and Doye, J. Phys. Chem. A 101, 5111 (1997);
:data:`LJ13_GLOBAL_MINIMUM`); :func:`perturbed_icosahedron` gives reproducible starts in its funnel. The
Axilrod-Teller triple-dipole term (Axilrod and Teller, J. Chem. Phys. 11, 299 (1943)) is
``nu (1 + 3 cos g_i cos g_j cos g_k) / (r_ij r_ik r_jk)^3`` with ``g`` the triangle's angles.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from noisygrad.checks import check_generator, check_positive, check_positive_int, check_real
from noisygrad.objectives import Energy

__all__ = [
    "LJ13_GLOBAL_MINIMUM",
    "atom_minibatch_factor",
    "atom_minibatch_gradients",
    "atom_minibatch_mean",
    "cluster_energy",
    "icosahedron",
    "lennard_jones",
    "lennard_jones_forces",
    "max_force",
    "perturbed_icosahedron",
]

#: The LJ13 global minimum (Mackay icosahedron), reduced units (Wales and Doye 1997, to their 6 decimals).
LJ13_GLOBAL_MINIMUM = -44.326801


def _positions(name: str, positions: torch.Tensor) -> torch.Tensor:
    if not isinstance(positions, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., n_atoms, 3), got {type(positions).__name__}")
    if positions.ndim < 2 or positions.shape[-1] != 3 or positions.shape[-2] < 2:
        raise ValueError(f"{name} must have shape (..., n_atoms, 3) with n_atoms >= 2, got {tuple(positions.shape)}")
    if not positions.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {positions.dtype}")
    return positions


def cluster_energy(
    positions: torch.Tensor,
    *,
    epsilon: float = 1.0,
    sigma: float = 1.0,
    three_body: float = 0.0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Lennard-Jones energy ``4 eps sum_{i<j} ((sigma/r)^12 - (sigma/r)^6)`` plus an optional Axilrod-Teller term.

    Vectorised over leading dimensions (many clusters in one call) and differentiable by autograd.

    Args:
        positions: atom positions, shape ``(..., n_atoms, 3)``.
        epsilon: the pair well depth (> 0).
        sigma: the pair length scale (> 0).
        three_body: the Axilrod-Teller coefficient ``nu`` (in ``epsilon sigma^9``); 0 for pure Lennard-Jones.
        weights: optional atom weights, shape ``(..., n_atoms)``: each term is multiplied by the weights of its
            atoms. With weights in {0, 1} this is the energy of the sub-cluster of the atoms of weight 1.

    Returns:
        The energies, shape ``positions.shape[:-2]``.
    """
    x = _positions("positions", positions)
    eps, sig = check_positive("epsilon", epsilon), check_positive("sigma", sigma)
    nu = check_real("three_body", three_body)
    n = x.shape[-2]
    if weights is not None and (not isinstance(weights, torch.Tensor) or weights.shape[-1:] != (n,)):
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must be a tensor of shape (..., {n}) (one weight per atom), got {got}")
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    r2 = (x[..., i, :] - x[..., j, :]).pow(2).sum(-1)
    inv6 = (sig * sig / r2).pow(3)
    pair = 4.0 * eps * (inv6 * inv6 - inv6)
    if weights is not None:
        pair = pair * weights[..., i] * weights[..., j]
    energy = pair.sum(-1)
    if nu != 0.0 and n >= 3:
        t = torch.combinations(torch.arange(n, device=x.device), 3)
        a = x[..., t[:, 1], :] - x[..., t[:, 0], :]  # j - i
        b = x[..., t[:, 2], :] - x[..., t[:, 0], :]  # k - i
        c = x[..., t[:, 2], :] - x[..., t[:, 1], :]  # k - j
        ab, ac, bc = (a * b).sum(-1), (a * c).sum(-1), (b * c).sum(-1)
        p2 = a.pow(2).sum(-1) * b.pow(2).sum(-1) * c.pow(2).sum(-1)  # (r_ij r_ik r_jk)^2
        # 1 + 3 cos g_i cos g_j cos g_k, with cos g_i cos g_j cos g_k = -(a.b)(a.c)(b.c) / p2
        triple = nu * (1.0 - 3.0 * ab * ac * bc / p2) / p2.pow(1.5)
        if weights is not None:
            triple = triple * weights[..., t[:, 0]] * weights[..., t[:, 1]] * weights[..., t[:, 2]]
        energy = energy + triple.sum(-1)
    return energy


def lennard_jones(n_atoms: int, *, epsilon: float = 1.0, sigma: float = 1.0, three_body: float = 0.0) -> Energy:
    """The energy of an ``n_atoms`` cluster as an :class:`~noisygrad.Energy` over flat coordinates ``(3 n_atoms,)``.

    ``energy.value_and_grad(x)`` gives ``E`` and ``grad E = -forces`` (autograd, exact). The function also takes
    a batch ``(..., 3 n_atoms)``. See :func:`cluster_energy` for the terms.

    Example:
        >>> energy = lennard_jones(2)
        >>> round(energy.value(torch.tensor([0.0, 0, 0, 2 ** (1 / 6), 0, 0], dtype=torch.float64)), 12)
        -1.0
    """
    n = check_positive_int("n_atoms", n_atoms)
    if n < 2:
        raise ValueError(f"n_atoms must be >= 2 (a cluster has pairs), got {n}")
    eps, sig = check_positive("epsilon", epsilon), check_positive("sigma", sigma)
    nu = check_real("three_body", three_body)

    def fn(params: torch.Tensor) -> torch.Tensor:
        if params.shape[-1:] != (3 * n,):
            raise ValueError(
                f"params must hold 3 * n_atoms = {3 * n} coordinates (x0, y0, z0, x1, ...) in its last dimension, "
                f"got shape {tuple(params.shape)}"
            )
        return cluster_energy(params.reshape(*params.shape[:-1], n, 3), epsilon=eps, sigma=sig, three_body=nu)

    return Energy(fn)


@functools.lru_cache(maxsize=16)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs ``i < j`` of ``n`` atoms and the transposed incidence matrix ``(n, pairs)`` (+1 at i, -1 at j)."""
    i, j = np.triu_indices(n, 1)
    incidence_t = np.zeros((n, i.size))
    incidence_t[i, np.arange(i.size)], incidence_t[j, np.arange(i.size)] = 1.0, -1.0
    for a in (i, j, incidence_t):
        a.flags.writeable = False
    return i, j, incidence_t


def lennard_jones_forces(
    positions: np.ndarray, *, epsilon: float = 1.0, sigma: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form Lennard-Jones energy and forces in numpy (no autograd): the reference for the torch energy.

    ``F_i = sum_{j != i} 24 eps (2 (sigma/r)^12 - (sigma/r)^6) (x_i - x_j) / r^2``.

    Args:
        positions: shape ``(..., n_atoms, 3)``.

    Returns:
        ``(energy, forces)`` with shapes ``positions.shape[:-2]`` and ``positions.shape``.
    """
    x = np.asarray(positions, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] != 3 or x.shape[-2] < 2:
        raise ValueError(f"positions must have shape (..., n_atoms, 3) with n_atoms >= 2, got {x.shape}")
    eps, sig = check_positive("epsilon", epsilon), check_positive("sigma", sigma)
    i, j, incidence_t = _pairs(x.shape[-2])
    d = x[..., i, :] - x[..., j, :]  # x_i - x_j for each pair i < j
    inv2 = 1.0 / np.einsum("...k,...k->...", d, d)
    inv6 = (sig * sig * inv2) ** 3
    energy = 4.0 * eps * (inv6 * inv6 - inv6).sum(-1)
    pair_forces = (24.0 * eps * (2.0 * inv6 * inv6 - inv6) * inv2)[..., None] * d  # on i; minus it on j
    return energy, incidence_t @ pair_forces


def max_force(gradient: torch.Tensor | np.ndarray) -> float:
    """``fmax``: the largest per-atom force norm of a gradient (or forces), flat ``(3n,)`` or ``(n, 3)``."""
    g = np.asarray(gradient.detach().cpu().numpy() if isinstance(gradient, torch.Tensor) else gradient)
    if g.size == 0 or g.size % 3:
        raise ValueError(f"gradient must hold 3 coordinates per atom, got shape {g.shape}")
    return float(np.sqrt((g.reshape(-1, 3) ** 2).sum(-1)).max())


def icosahedron(radius: float = 1.1) -> np.ndarray:
    """A centre atom and the 12 vertices of a regular icosahedron at ``radius``: shape ``(13, 3)``.

    The vertices are the cyclic permutations of ``(0, +-1, +-phi)`` (``phi`` the golden ratio), scaled to ``radius``,
    in that order: fixed coordinates, so that a perturbed start is the same for a given generator.

    At ``radius = 1.1`` (about the LJ13 minimum's centre-to-shell distance) it lies in the Mackay funnel.
    """
    r = check_positive("radius", radius)
    phi = (1 + math.sqrt(5)) / 2
    base = [(0.0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)]
    vertices = np.array([v[k:] + v[:k] for v in base for k in range(3)])
    return np.vstack([np.zeros(3), r * vertices / np.linalg.norm(vertices[0])])


def perturbed_icosahedron(rng: np.random.Generator, *, noise: float = 0.05, radius: float = 1.1) -> np.ndarray:
    """:func:`icosahedron` plus i.i.d. Gaussian displacements of standard deviation ``noise`` from ``rng``."""
    check_generator(rng)
    s = check_positive("noise", noise, allow_zero=True)
    return icosahedron(radius) + s * rng.standard_normal((13, 3))


def atom_minibatch_factor(n_atoms: int, batch_size: int, order: int) -> float:
    """``q_k = (b-1)...(b-k+1) / ((n-1)...(n-k+1))``: the mean weight an ``n/b``-scaled atom mini-batch gives a
    ``k``-body term (its inclusion probability ``C(n-k, b-k) / C(n, b)`` times ``n / b``); 0 when ``b < k``."""
    n = check_positive_int("n_atoms", n_atoms)
    b = check_positive_int("batch_size", batch_size)
    k = check_positive_int("order", order)
    if b > n:
        raise ValueError(f"batch_size must be <= n_atoms ({n}), got {b}")
    if b < k:
        return 0.0
    return math.prod((b - m) / (n - m) for m in range(1, k))


def _n_atoms(name: str, x: torch.Tensor) -> int:
    """The number of atoms of flat coordinates ``x`` (a 1-D floating tensor of ``3 n`` entries)."""
    if not isinstance(x, torch.Tensor) or x.ndim != 1 or x.numel() % 3 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a flat floating tensor of 3 * n_atoms coordinates, got {got}")
    return x.numel() // 3


def _subsets(name: str, subsets: torch.Tensor, n: int) -> torch.Tensor:
    if not isinstance(subsets, torch.Tensor) or subsets.ndim != 2 or subsets.dtype not in (torch.int32, torch.int64):
        got = f"{subsets.dtype} {tuple(subsets.shape)}" if isinstance(subsets, torch.Tensor) else type(subsets).__name__
        raise ValueError(f"{name} must be an integer tensor of shape (draws, batch_size), got {got}")
    if subsets.numel() == 0 or int(subsets.min()) < 0 or int(subsets.max()) >= n:
        raise ValueError(f"{name} must hold atom indices in [0, {n}), at least one per draw")
    if bool((subsets.sort(1).values.diff(dim=1) == 0).any()):
        raise ValueError(f"{name} must not repeat an atom within a draw (atoms are drawn without replacement)")
    return subsets


def atom_minibatch_gradients(
    x: torch.Tensor,
    subsets: torch.Tensor,
    *,
    epsilon: float = 1.0,
    sigma: float = 1.0,
    three_body: float = 0.0,
) -> torch.Tensor:
    """The "atom mini-batch gradient" of each draw: ``(n / b) grad E_S(x)``, ``E_S`` the energy of sub-cluster ``S``.

    Args:
        x: flat coordinates ``(3 n,)``.
        subsets: the atoms of each draw, an integer tensor ``(draws, b)`` without repeats within a row.
        epsilon, sigma, three_body: the energy's parameters (:func:`cluster_energy`).

    Returns:
        ``(draws, 3 n)``: zero on the atoms outside each draw.
    """
    n = _n_atoms("x", x)
    s = _subsets("subsets", subsets, n)
    draws, b = s.shape
    weights = torch.zeros(draws, n, dtype=x.dtype).scatter_(1, s.long(), 1.0)
    xs = x.detach().reshape(1, n, 3).expand(draws, n, 3).clone().requires_grad_(True)
    with torch.enable_grad():
        energies = cluster_energy(xs, epsilon=epsilon, sigma=sigma, three_body=three_body, weights=weights)
        (grad,) = torch.autograd.grad(energies.sum(), xs)  # the draws are independent rows
    return (n / b) * grad.reshape(draws, 3 * n)


def atom_minibatch_mean(
    x: torch.Tensor,
    batch_size: int,
    *,
    epsilon: float = 1.0,
    sigma: float = 1.0,
    three_body: float = 0.0,
) -> torch.Tensor:
    """The exact expectation of :func:`atom_minibatch_gradients` over uniform ``batch_size``-atom draws:
    ``q_2 grad E_2 + q_3 grad E_3`` (:func:`atom_minibatch_factor`), shape ``(3 n,)``."""
    n = _n_atoms("x", x)
    b = check_positive_int("batch_size", batch_size)
    _, pair = lennard_jones(n, epsilon=epsilon, sigma=sigma).value_and_grad(x)
    mean = atom_minibatch_factor(n, b, 2) * pair
    if check_real("three_body", three_body) != 0.0:
        _, total = lennard_jones(n, epsilon=epsilon, sigma=sigma, three_body=three_body).value_and_grad(x)
        mean = mean + atom_minibatch_factor(n, b, 3) * (total - pair)
    return mean
