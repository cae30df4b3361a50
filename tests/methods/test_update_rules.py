"""Each rule's update directions against hand-derived formulas on a quadratic game.

The game: ``L_G = ½φᵀAφ + φᵀBθ`` and ``L_D = ½θᵀCθ − φᵀEθ`` with symmetric A and C. Then
``g_φ = Aφ + Bθ`` and ``g_θ = Cθ − Eᵀφ``, and every regularizer gradient is linear:
``∇_φ ½‖g_φ‖² = A g_φ``, ``∇_θ ½‖g_φ‖² = Bᵀ g_φ``, ``∇_φ ½‖g_θ‖² = −E g_θ``,
``∇_θ ½‖g_θ‖² = C g_θ``. NumPy computes these; autograd computes the rules.
"""

import numpy as np
import pytest
import torch
from torch import nn

from methods import UnknownMethodError, get_method, method_names

GAMMAS = [0.0, 0.3, 10.0]


@pytest.fixture
def game():
    rng = np.random.default_rng(7)
    n_g, n_d = 3, 4
    a = rng.normal(size=(n_g, n_g))
    c = rng.normal(size=(n_d, n_d))
    values = {
        "A": a + a.T,
        "B": rng.normal(size=(n_g, n_d)),
        "C": c + c.T,
        "E": rng.normal(size=(n_g, n_d)),
        "phi": rng.normal(size=n_g),
        "theta": rng.normal(size=n_d),
    }
    g_phi = values["A"] @ values["phi"] + values["B"] @ values["theta"]
    g_theta = values["C"] @ values["theta"] - values["E"].T @ values["phi"]
    values.update(g_phi=g_phi, g_theta=g_theta)
    return values


def torch_losses(game):
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in game.items()}
    phi = t["phi"].clone().requires_grad_(True)
    theta = t["theta"].clone().requires_grad_(True)
    loss_g = 0.5 * phi @ t["A"] @ phi + phi @ t["B"] @ theta
    loss_d = 0.5 * theta @ t["C"] @ theta - phi @ t["E"] @ theta
    return loss_g, loss_d, phi, theta


def expected_directions(name, game, gamma):
    g_phi, g_theta = game["g_phi"], game["g_theta"]
    A, B, C, E = game["A"], game["B"], game["C"], game["E"]
    reg_phi_of_own = A @ g_phi          # ∇_φ ½‖g_φ‖²
    reg_theta_of_gen = B.T @ g_phi      # ∇_θ ½‖g_φ‖²
    reg_phi_of_disc = -E @ g_theta      # ∇_φ ½‖g_θ‖²
    reg_theta_of_own = C @ g_theta      # ∇_θ ½‖g_θ‖²
    rules = {
        "simgd": (g_phi, g_theta),
        "sngan": (g_phi, g_theta),
        "conopt": (
            g_phi + gamma * (reg_phi_of_own + reg_phi_of_disc),
            g_theta + gamma * (reg_theta_of_gen + reg_theta_of_own),
        ),
        "gen_only": (g_phi + gamma * reg_phi_of_disc, g_theta),
        "disc_only": (g_phi, g_theta + gamma * reg_theta_of_gen),
        "jare": (g_phi + gamma * reg_phi_of_disc, g_theta + gamma * reg_theta_of_gen),
    }
    return rules[name]


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("name", ["simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"])
def test_directions_match_closed_form(game, name, gamma):
    loss_g, loss_d, phi, theta = torch_losses(game)

    (d_phi,), (d_theta,) = get_method(name).directions(loss_g, loss_d, [phi], [theta], gamma)

    want_phi, want_theta = expected_directions(name, game, gamma)
    np.testing.assert_allclose(d_phi.numpy(), want_phi, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(d_theta.numpy(), want_theta, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"])
def test_directions_are_detached(game, name):
    loss_g, loss_d, phi, theta = torch_losses(game)

    dirs_g, dirs_d = get_method(name).directions(loss_g, loss_d, [phi], [theta], 1.0)

    assert not any(d.requires_grad for d in [*dirs_g, *dirs_d])


def test_regularizers_reach_only_other_player():
    # One-sided rules must leave the unregularized player's direction exactly at its gradient,
    # even when the other loss does not depend on that player.
    phi = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    theta = torch.tensor([0.5, 3.0], dtype=torch.float64, requires_grad=True)
    loss_g = (phi * theta).sum()
    loss_d = theta.pow(2).sum()  # does not depend on φ, so ∇_φ ½‖g_θ‖² = 0

    (d_phi,), (d_theta,) = get_method("jare").directions(loss_g, loss_d, [phi], [theta], 5.0)

    # g_φ = θ; ∇_θ ½‖g_φ‖² = ∇_θ ½‖θ‖² = θ; g_θ = 2θ.
    np.testing.assert_allclose(d_phi.numpy(), theta.detach().numpy())
    np.testing.assert_allclose(d_theta.numpy(), (2 * theta + 5.0 * theta).detach().numpy())


def test_unknown_method_lists_known_names():
    with pytest.raises(UnknownMethodError) as error:
        get_method("adam_gan")

    message = str(error.value)
    assert "adam_gan" in message
    for name in method_names():
        assert name in message


def test_registry_has_the_six_rules():
    assert set(method_names()) == {"simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"}


def test_gamma_flags():
    assert not get_method("simgd").uses_gamma
    assert not get_method("sngan").uses_gamma
    for name in ("conopt", "gen_only", "disc_only", "jare"):
        assert get_method(name).uses_gamma


def test_sngan_normalizes_every_discriminator_layer():
    torch.manual_seed(0)
    disc = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 1))

    disc = get_method("sngan").prepare_discriminator(disc)
    for _ in range(30):  # power iterations run on each training-mode forward pass
        disc(torch.randn(2, 3, 8, 8))

    linear = disc[3]
    sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    assert sigma == pytest.approx(1.0, abs=1e-3)
    assert hasattr(disc[0], "parametrizations")


def test_sngan_prepare_is_idempotent():
    disc = nn.Sequential(nn.Linear(2, 3))
    method = get_method("sngan")

    method.prepare_discriminator(disc)
    method.prepare_discriminator(disc)

    assert len(disc[0].parametrizations["weight"]) == 1


@pytest.mark.parametrize("name", ["simgd", "conopt", "gen_only", "disc_only", "jare", "sngan"])
def test_differentiable_directions_give_exact_jacobian(game, name):
    # On the quadratic game every direction is linear in (φ, θ), so differentiating the
    # directions once more must reproduce the matrix of the closed-form rule.
    gamma = 0.7
    loss_g, loss_d, phi, theta = torch_losses(game)

    (d_phi,), (d_theta,) = get_method(name).directions(
        loss_g, loss_d, [phi], [theta], gamma, differentiable=True
    )
    rows = []
    for output in [*d_phi, *d_theta]:
        g_phi, g_theta = torch.autograd.grad(output, [phi, theta], retain_graph=True, allow_unused=True)
        g_phi = torch.zeros_like(phi) if g_phi is None else g_phi
        g_theta = torch.zeros_like(theta) if g_theta is None else g_theta
        rows.append(torch.cat([g_phi, g_theta]))
    jacobian = torch.stack(rows).detach().numpy()

    n_g = len(game["phi"])
    expected = np.zeros_like(jacobian)
    for column in range(jacobian.shape[1]):
        shifted = dict(game)
        basis = np.zeros(jacobian.shape[1])
        basis[column] = 1.0
        shifted["phi"], shifted["theta"] = basis[:n_g], basis[n_g:]
        shifted["g_phi"] = game["A"] @ shifted["phi"] + game["B"] @ shifted["theta"]
        shifted["g_theta"] = game["C"] @ shifted["theta"] - game["E"].T @ shifted["phi"]
        want_phi, want_theta = expected_directions(name, shifted, gamma)
        expected[:, column] = np.concatenate([want_phi, want_theta])
    np.testing.assert_allclose(jacobian, expected, rtol=1e-10, atol=1e-10)
