"""Train a DeepXDE PINN with noisygrad: Adam on random collocation mini-batches, then L-BFGS.

-u'' = pi^2 sin(pi x) on [0, 1], u(0) = u(1) = 0; the exact solution is sin(pi x).

    .venv/bin/python examples/pinn_poisson.py
"""

import warnings

import deepxde as dde
import numpy as np
import torch

import noisygrad.pinn as ngp

dde.config.set_random_seed(0)  # the run's entry point: seeds DeepXDE's global generators (network init)

geom = dde.geometry.Interval(0, 1)


def pde(x, u):
    return -dde.grad.hessian(u, x) - np.pi**2 * torch.sin(np.pi * x)


bc = dde.icbc.DirichletBC(geom, lambda x: 0 * x[:, :1], lambda _, on_boundary: on_boundary)
data = dde.data.PDE(geom, pde, bc, num_domain=256, num_boundary=2)
net = dde.nn.FNN([1, 20, 20, 20, 1], "tanh", "Glorot uniform")
model = dde.Model(data, net)

# Adam on fresh random batches of 64 of the 258 collocation points, measuring the gradient noise
adam = ngp.train(model, "adam", lr=1e-3, iterations=800, batch_size=64, seed=0, noise_every=400)
for step, noise in adam.noise:
    print(f"step {step}: gradient diversity rho = {noise.rho:.3g}, predicted cosine = {noise.predicted_cosine:.3f}")

# swap to L-BFGS on the full set; in float32 it stops at its own test early (the warning says so)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ngp.PinnWarning)
    lbfgs = ngp.train(model, "lbfgs", iterations=2000)

x = np.linspace(0, 1, 1001).reshape(-1, 1)
error = np.linalg.norm(model.predict(x) - np.sin(np.pi * x)) / np.linalg.norm(np.sin(np.pi * x))
print(
    f"Adam {adam.iterations} steps ({adam.seconds:.1f} s), L-BFGS {lbfgs.iterations} iterations ({lbfgs.seconds:.1f} s)"
)
print(f"relative L2 error: {error:.2e}")
