"""
Mini-batch SGD: a noise ball at constant step, convergence with Robbins-Monro steps
====================================================================================

A least-squares fit through :func:`noisygrad.minimize` with a mini-batch gradient estimator. At a constant
learning rate the iterates stop improving once they reach a *noise ball* around the minimum, whose size
grows with the step; Robbins-Monro steps ``a / (b + t)`` start as fast as the larger constant step and keep
shrinking the ball, so the error keeps falling.
"""

import matplotlib.pyplot as plt
import torch

import noisygrad as ng

gen = torch.Generator().manual_seed(0)
X = torch.randn(500, 5, generator=gen, dtype=torch.float64)
y = X @ torch.arange(1.0, 6.0, dtype=torch.float64) + 0.5 * torch.randn(500, generator=gen, dtype=torch.float64)
objective = ng.FiniteSum(lambda w, X, y: 0.5 * ((X @ w - y) ** 2).mean(), (X, y))
x_star = torch.linalg.lstsq(X, y.unsqueeze(1)).solution.squeeze(1)  # the exact minimum
estimator = ng.MiniBatch(objective, batch_size=8)

runs = {
    "constant lr 0.1": ng.SGD(0.1),
    "constant lr 0.02": ng.SGD(0.02),
    "Robbins-Monro 3/(30 + t)": ng.SGD(ng.RobbinsMonro(a=3.0, b=30.0, alpha=1.0)),
}
steps = 3000
fig, ax = plt.subplots(figsize=(7, 4))
for label, optimizer in runs.items():
    errors: list[float] = []

    def record(info, errors=errors):
        errors.append(float((info.x - x_star).pow(2).sum()))

    ng.minimize(
        estimator,
        optimizer,
        torch.zeros(5, dtype=torch.float64),
        steps=steps,
        seed=1,
        callbacks=[record],
    )
    ax.plot(range(1, steps + 1), errors, label=label)
    print(f"{label:>26}: |x - x*|^2 after {steps} steps = {errors[-1]:.2e}")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("step t (updates)")
ax.set_ylabel("|x_t - x*|^2 (parameter units^2)")
ax.set_title("SGD on mini-batches of 8: noise ball vs Robbins-Monro")
ax.legend()
fig.tight_layout()
plt.show()
