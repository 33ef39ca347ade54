"""A holistic energy: the 13-atom Lennard-Jones cluster, minimised with conjugate gradients (scipy).

The energy ``E = 4 sum_{i<j} (r_ij^-12 - r_ij^-6)`` couples every pair of atoms: there are no exchangeable
"examples" whose mean is ``E``, so a "mini-batch over atoms" would minimise a different system (the energy of
a random sub-cluster, whose minimiser is not the cluster's). noisygrad marks it as an :class:`~noisygrad.Energy`
and refuses to mini-batch it, with an error that says why. The exact gradient comes from autograd; scipy's
conjugate gradients reach the icosahedral global minimum, E = -44.326801 (Wales and Doye 1997).

    .venv/bin/python examples/core_lennard_jones.py
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import torch

import noisygrad


def lennard_jones(flat: torch.Tensor) -> torch.Tensor:
    """Total Lennard-Jones energy (reduced units) of atoms at ``flat.reshape(-1, 3)``."""
    x = flat.reshape(-1, 3)
    i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    r2 = (x[i] - x[j]).pow(2).sum(1)
    inv6 = r2.pow(-3)
    return 4.0 * (inv6 * inv6 - inv6).sum()


def icosahedron(scale: float = 1.1) -> np.ndarray:
    """A centre atom and the 12 vertices of an icosahedron at distance ``scale``."""
    phi = (1 + 5**0.5) / 2
    vertices = [(0, s1, s2 * phi) for s1 in (-1, 1) for s2 in (-1, 1)]
    vertices = [v[k:] + v[:k] for v in vertices for k in range(3)]
    v = np.array(vertices, dtype=float)
    v = scale * v / np.linalg.norm(v[0])
    return np.vstack([np.zeros(3), v])


def main() -> None:
    energy = noisygrad.Energy(lennard_jones)
    try:
        noisygrad.MiniBatch(energy, 4)  # type: ignore[arg-type]
    except noisygrad.BatchingNotAllowedError as exc:
        print(f"refused: {exc}")
    start = icosahedron() + 0.05 * np.random.default_rng(0).standard_normal((13, 3))

    def fun_and_jac(x: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = energy.value_and_grad(torch.tensor(x))
        return value, grad.numpy()

    result = scipy.optimize.minimize(fun_and_jac, start.ravel(), jac=True, method="CG", options={"gtol": 1e-8})
    print(f"LJ13 with scipy CG: E = {result.fun:.6f} (global minimum -44.326801) after {result.nit} iterations")


if __name__ == "__main__":
    main()
