"""SGLD and BAOAB: the behaviours mutation testing of ``optim/langevin.py`` checks exactly (tools/mutation.py,
issue 18).

Each step is recomputed from its closed form with the noise redrawn from the generator state the sampler keeps
in its state dict, so a changed sign, scale, splitting or stream fails bit for bit (no statistical tolerance):
the stationary laws are the statistical tests of ``test_langevin.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisygrad import BAOAB, SGLD
from noisygrad.rng import torch_from_torch, torch_stream


def _xi(state: dict, like: torch.Tensor) -> torch.Tensor:  # type: ignore[type-arg]
    """The standard normal draw the next step will take from ``state``'s generator."""
    gen = torch.Generator()
    gen.set_state(state["generator"].clone())
    return torch.randn(like.shape, generator=gen, dtype=like.dtype)


def test_defaults():
    sgld, baoab = SGLD(), BAOAB()
    assert (sgld.lr(0), sgld.temperature, sgld.seed, sgld.noise_correction) == (1e-3, 1.0, None, None)
    assert (baoab.lr(0), baoab.friction, baoab.temperature, baoab.seed) == (1e-2, 1.0, 1.0, None)
    assert SGLD(seed=0).seed == 0  # seed 0 is allowed


def test_standalone_inits_take_substream_seed_n():
    """The n-th ``init`` without a generator takes sub-stream ``(seed, n)``; no seed means seed 0."""
    x = torch.zeros(3, dtype=torch.float64)
    for sampler, seed in ((SGLD(0.1, seed=4), 4), (SGLD(0.1), 0), (BAOAB(0.1, seed=2), 2)):
        for n in range(3):
            state = sampler.init(x)
            assert torch.equal(state["generator"], torch_stream(seed, n).get_state())


def test_an_init_from_the_run_generator_spawns_one_substream():
    x = torch.zeros(3, dtype=torch.float64)
    gen, twin = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    state = BAOAB(0.1).init(x, generator=gen)
    assert torch.equal(state["generator"], torch_from_torch(twin).get_state())
    assert torch.equal(gen.get_state(), twin.get_state())  # one draw of the run's generator, as documented


def test_sgld_step_is_its_closed_form():
    x = torch.tensor([[0.5, -1.0], [2.0, 0.25]], dtype=torch.float64)
    g = torch.tensor([[1.0, 2.0], [-3.0, 0.5]], dtype=torch.float64)
    sampler = SGLD(0.05, temperature=0.3, seed=1)
    state = sampler.init(x)
    gen = torch.Generator()
    gen.set_state(state["generator"].clone())
    draws = []
    for _ in range(3):
        xi = _xi(state, x)
        draws.append(xi)
        new, state = sampler.update(x, g, state)
        torch.testing.assert_close(new, x - 0.05 * g + math.sqrt(2 * 0.05 * 0.3) * xi, rtol=0, atol=1e-15)
        # the state's generator advances past the draw: the next step takes fresh noise
        torch.randn(x.shape, generator=gen, dtype=x.dtype)
        assert torch.equal(state["generator"], gen.get_state())
        x = new
    assert not torch.equal(draws[0], draws[1])


@pytest.mark.parametrize("correction", [2.0, np.array(2.0)])
def test_sgld_with_a_scalar_correction_injects_its_reduced_variance(correction):
    x = torch.zeros(4, dtype=torch.float64)
    g = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)
    sampler = SGLD(0.1, temperature=0.5, noise_correction=correction)
    assert sampler.noise_correction == 2.0
    state = sampler.init(x)
    xi = _xi(state, x)
    new, _ = sampler.update(x, g, state)
    scale = math.sqrt(2 * 0.1 * 0.5 - 0.1**2 * 2.0)
    torch.testing.assert_close(new, x - 0.1 * g + scale * xi, rtol=0, atol=1e-15)
    # exactly at the limit 2 h T = h^2 c the noise vanishes (allowed: a variance of 0)
    edge = SGLD(0.25, temperature=0.5, noise_correction=4.0)  # 2 h T = h^2 c = 0.25, exact in binary
    torch.testing.assert_close(edge.update(x, g, edge.init(x))[0], x - 0.25 * g, rtol=0, atol=0)


def test_sgld_with_a_matrix_correction_injects_the_covariance_2hT_minus_h2C():
    """``k`` steps give ``k`` increments ``d_i = L xi_i`` with known ``xi_i``: solving for ``L`` gives
    ``L L^T = 2 h T I - h^2 C``, and the rows of a ``(3, k)`` parameter share ``L`` with independent draws."""
    c = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    h, t = 0.1, 0.7
    sampler = SGLD(h, temperature=t, noise_correction=c.numpy())
    x = torch.zeros(3, 2, dtype=torch.float64)
    state = sampler.init(x)
    xi = _xi(state, x)
    new, state = sampler.update(x, torch.zeros_like(x), state)
    factor_t = torch.linalg.solve(xi[:2], new[:2])  # rows: d = xi L^T
    # to 1e-10: the covariance is built in float64 (a float32 ``2 h T I`` would be off by about 1e-9 relative)
    expected = 2 * h * t * torch.eye(2, dtype=torch.float64) - h**2 * c
    torch.testing.assert_close(factor_t.T @ factor_t, expected, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(new[2], xi[2] @ factor_t, rtol=1e-12, atol=1e-12)
    # a gradient moves every row by -h g
    g = torch.ones(3, 2, dtype=torch.float64)
    xi = _xi(state, x)
    moved, _ = sampler.update(x, g, state)
    torch.testing.assert_close(moved, -h * g + xi @ factor_t, rtol=1e-12, atol=1e-12)


def test_a_matrix_correction_is_kept_as_a_symmetrised_float64_copy():
    given = np.array([[1.0, 0.2], [0.2 + 1e-13, 1.0]])
    sampler = SGLD(0.1, noise_correction=given)
    given[0, 0] = 5.0
    c = sampler.noise_correction
    assert isinstance(c, torch.Tensor)
    assert c.dtype == torch.float64
    assert float(c[0, 0]) == 1.0  # a copy: the user's array was changed after construction
    assert torch.equal(c, c.T)
    assert float(c[0, 1]) == pytest.approx(0.2 + 0.5e-13, abs=1e-16)
    assert SGLD(0.1, noise_correction=torch.tensor(0.5)).noise_correction == 0.5  # a 0-d tensor is a number
    assert SGLD(0.1, noise_correction=0).noise_correction == 0.0
    assert SGLD(0.1, noise_correction=torch.zeros(2, 2)).init(torch.zeros(5, 2)) is not None
    for bad in (np.zeros((2, 3)), np.zeros((0, 0)), np.zeros((2, 2, 2)), np.zeros(2)):
        with pytest.raises(ValueError, match="square"):
            SGLD(0.1, noise_correction=bad)
    with pytest.raises(TypeError, match="noise_correction"):
        SGLD(0.1, noise_correction="big")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="last dimension"):
        SGLD(0.1, noise_correction=np.eye(2)).init(torch.tensor(1.0))  # a 0-d parameter has no last dimension


def test_a_psd_correction_at_the_edge_is_accepted():
    """``2 h T I - h^2 C`` singular (smallest eigenvalue 0 up to rounding) is allowed: a zero-variance direction."""
    h, t = 0.1, 1.0
    c = torch.tensor([[20.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # 2 h T - h^2 20 = 0
    sampler = SGLD(h, temperature=t, noise_correction=c)
    x = torch.zeros(2, dtype=torch.float64)
    state = sampler.init(x)
    xi = _xi(state, x)
    new, _ = sampler.update(x, x, state)
    assert float(new[0]) == pytest.approx(0.0, abs=1e-12)
    assert abs(float(new[1])) == pytest.approx(abs(float(xi[1])) * math.sqrt(2 * h * t - h**2), rel=1e-12)


def test_baoab_two_steps_are_the_splitting():
    h, gamma, t = 0.3, 0.5, 0.4
    sampler = BAOAB(h, friction=gamma, temperature=t, seed=3)
    x0 = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    g0 = torch.tensor([0.5, 1.0, -1.0], dtype=torch.float64)
    g1 = torch.tensor([-2.0, 0.25, 1.0], dtype=torch.float64)
    state = sampler.init(x0)
    assert float(state["pending_kick"]) == 0.0
    assert torch.equal(state["velocity"], torch.zeros(3, dtype=torch.float64))
    decay = math.exp(-gamma * h)
    sd = math.sqrt(t * (1 - decay**2))
    xi0 = _xi(state, x0)
    x1, state = sampler.update(x0, g0, state)
    v = -(h / 2) * g0
    x = x0 + h / 2 * v
    v = decay * v + sd * xi0
    expected_x1 = x + h / 2 * v
    torch.testing.assert_close(x1, expected_x1, rtol=0, atol=1e-15)
    torch.testing.assert_close(state["velocity"], v, rtol=0, atol=1e-15)
    assert state["pending_kick"] == h / 2
    xi1 = _xi(state, x1)
    x2, state = sampler.update(x1, g1, state)
    v = v - h * g1  # the closing half kick of step 1 and the opening one of step 2
    x = x1 + h / 2 * v
    v = decay * v + sd * xi1
    torch.testing.assert_close(x2, x + h / 2 * v, rtol=0, atol=1e-15)


def test_a_bad_step_is_refused_by_name():
    for make in (SGLD, BAOAB):
        with pytest.raises(ValueError, match=r"^lr\b"):
            make(-0.1)


def test_corrections_at_the_edges_of_what_is_allowed():
    assert SGLD(0.1, noise_correction=torch.tensor(0.0)).noise_correction == 0.0  # a 0-d tensor of 0
    one = SGLD(0.1, noise_correction=np.array([[0.5]]))  # a 1 x 1 matrix acts on a last dimension of size 1
    x = torch.zeros(3, 1, dtype=torch.float64)
    assert one.update(x, x, one.init(x))[0].shape == (3, 1)
    as_objects = SGLD(0.1, noise_correction=np.array([[1, 0], [0, 2]], dtype=object))  # numbers in an object array
    assert isinstance(as_objects.noise_correction, torch.Tensor)
    assert torch.equal(as_objects.noise_correction, torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("scale", "accepted", "refused"),
    [
        (1.0, 0.5e-12, 1.5e-12),  # absolute tolerance 1e-12 for entries up to 1
        (1e4, 0.5e-8, 1.5e-8),  # ... scaled by the largest entry above 1
    ],
)
def test_symmetry_is_checked_to_its_stated_tolerance(scale, accepted, refused):
    """``C`` must equal ``C^T`` to ``rtol=1e-10`` and ``atol=1e-12 max(1, max|C|)``: zero off-diagonal entries
    test the absolute part, an off-diagonal 0.2 the relative part."""

    def matrix(gap: float) -> np.ndarray:
        return np.array([[scale, 0.0], [gap, scale]])

    SGLD(0.1, noise_correction=matrix(accepted))
    with pytest.raises(ValueError, match="symmetric"):
        SGLD(0.1, noise_correction=matrix(refused))
    SGLD(0.1, noise_correction=np.array([[1.0, 0.2], [0.2 + 1e-11, 1.0]]))  # within rtol 1e-10 of 0.2 (+ atol)
    with pytest.raises(ValueError, match="symmetric"):
        SGLD(0.1, noise_correction=np.array([[1.0, 0.2], [0.2 + 2e-9, 1.0]]))


@pytest.mark.parametrize(("excess", "ok"), [(3, True), (5, False)])
def test_positive_semi_definiteness_is_checked_to_its_stated_tolerance(excess, ok):
    """``2 h T I - h^2 C`` may have a smallest eigenvalue down to ``-1e-12 * 2 h T`` (rounding), no lower. With
    ``h = 0.25``, ``T = 0.5`` (``2 h T = 0.25``, bound ``-2.5e-13``) and ``C = diag(4 + k 2^-40, 1)`` the smallest
    eigenvalue is exactly ``-0.0625 k 2^-40``: ``-1.7e-13`` for ``k = 3`` (allowed), ``-2.8e-13`` for ``k = 5``
    (refused)."""
    c = torch.diag(torch.tensor([4.0 + excess * 2.0**-40, 1.0], dtype=torch.float64))
    sampler = SGLD(0.25, temperature=0.5, noise_correction=c)
    x = torch.zeros(2, dtype=torch.float64)
    state = sampler.init(x)
    if ok:
        new, _ = sampler.update(x, x, state)
        assert float(new[0]) == 0.0  # the clamped direction gets no noise
    else:
        with pytest.raises(ValueError, match="not positive semi-definite"):
            sampler.update(x, x, state)
    # far below the bound: refused whatever the rounding allowance
    too_large = SGLD(
        0.25, temperature=0.5, noise_correction=torch.diag(torch.tensor([4.001, 1.0], dtype=torch.float64))
    )
    with pytest.raises(ValueError, match="too large"):
        too_large.update(x, x, too_large.init(x))
