"""Jacobian spectra of networks: ARPACK against the dense matrix, and the trainer's spectrum logging."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from harness.jacobian import (
    SPECTRUM_COLUMNS,
    JacobianError,
    UpdateField,
    checkpoint_spectrum,
    dense_spectrum,
    extreme_eigenvalues,
    preserved_state,
    training_spectrum,
)
from harness.simple_gan import FixedSampleGame, simple_gan
from harness.trainer import Trainer
from harness.trial import TrialConfig
from methods import get_method


class Critic(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)


def tanh_game(hidden: int = 5, seed: int = 0) -> FixedSampleGame:
    """A float64 game of two tanh MLPs on fixed samples; 2·hidden·3 + hidden + 3 parameters."""
    torch.manual_seed(seed)
    generator = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2)).double()
    critic = Critic(hidden).double()
    real = torch.randn(16, 2, dtype=torch.float64) + 1.0
    latent = torch.randn(16, 2, dtype=torch.float64)
    return FixedSampleGame(generator, critic, real, latent)


def update_field_values(method, game, gamma) -> np.ndarray:
    """Return ``F(w) = −(d_φ, d_θ)`` at the game's current parameters, without autograd graphs."""
    from harness.trainer import game_losses

    params_g = list(game.generator.parameters())
    params_d = list(game.discriminator.parameters())
    loss_g, loss_d = game_losses(game, game.batch_size, "saturating")
    dirs_g, dirs_d = method.directions(loss_g, loss_d, params_g, params_d, gamma)
    return -torch.cat([d.reshape(-1) for d in [*dirs_g, *dirs_d]]).numpy()


@pytest.mark.parametrize("name", ["simgd", "conopt", "jare"])
def test_dense_jacobian_matches_central_differences(name):
    game = tanh_game(hidden=3)
    method = get_method(name)
    params = [*game.generator.parameters(), *game.discriminator.parameters()]
    flat = torch.nn.utils.parameters_to_vector(params).detach()
    step = 1e-6

    matrix = UpdateField(method, game, 0.7, game.batch_size).jacobian().detach().numpy()

    columns = []
    for index in range(flat.numel()):
        shifted = []
        for sign in (1.0, -1.0):
            point = flat.clone()
            point[index] += sign * step
            torch.nn.utils.vector_to_parameters(point, params)
            shifted.append(update_field_values(method, game, 0.7))
        columns.append((shifted[0] - shifted[1]) / (2 * step))
    torch.nn.utils.vector_to_parameters(flat, params)
    np.testing.assert_allclose(matrix, np.stack(columns, axis=1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["simgd", "jare"])
def test_arpack_matches_dense_extremes(name):
    game = tanh_game(hidden=3)
    field = UpdateField(get_method(name), game, 1.0, game.batch_size)
    count = 2

    dense = dense_spectrum(field)
    estimate = extreme_eigenvalues(field, count, max_solve_products=20_000)

    by_magnitude = dense.eigenvalues[np.argsort(-np.abs(dense.eigenvalues))]
    largest, smallest = by_magnitude[:count], by_magnitude[-count:]
    # A real matrix's complex eigenvalues come in conjugate pairs, and ARPACK may return one half.
    found = np.concatenate([estimate.eigenvalues, estimate.eigenvalues.conj()])
    for value in [*largest, *smallest]:
        nearest = np.abs(found - value).min()
        assert nearest <= 1e-6 * max(1.0, abs(value)), f"ARPACK missed {value}: {estimate.eigenvalues}"
    assert estimate.conditioning_factor == pytest.approx(dense.conditioning_factor, rel=1e-6)
    assert estimate.max_abs == pytest.approx(dense.max_abs, rel=1e-6)
    assert estimate.min_abs == pytest.approx(dense.min_abs, rel=1e-6)
    # ζ over some eigenvalues bounds ζ over all from below.
    assert estimate.phase_factor <= dense.phase_factor + 1e-9
    assert not estimate.exact


def test_arpack_without_solve_budget_leaves_tau_missing():
    game = tanh_game(hidden=3)
    field = UpdateField(get_method("simgd"), game, 0.0, game.batch_size)

    estimate = extreme_eigenvalues(field, 2, max_solve_products=10)

    assert math.isnan(estimate.conditioning_factor)
    assert math.isnan(estimate.metrics()["jacobian_min_abs_eigenvalue"])
    assert estimate.metrics()["jacobian_max_abs_eigenvalue"] == pytest.approx(dense_spectrum(field).max_abs)


def test_spectral_norm_at_zero_has_no_jacobian():
    game = simple_gan([0.0, 2.0], 0.5, method_name="sngan")

    with pytest.raises(JacobianError, match="spectral norm"):
        UpdateField(get_method("sngan"), game, 0.0, game.batch_size)


def test_preserved_state_restores_rng_and_buffers():
    network = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3)).train()
    before = {name: value.clone() for name, value in network.state_dict().items()}
    torch.manual_seed(5)
    expected_draw = torch.rand(3)
    torch.manual_seed(5)

    with preserved_state([network]):
        network(torch.randn(8, 2) + 4.0)
        changed = network[1].running_mean.clone()

    assert not torch.equal(changed, before["1.running_mean"])
    for name, value in network.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert torch.equal(torch.rand(3), expected_draw)


def gaussian_config(method: str, spectrum_every: int | None, steps: int = 40) -> TrialConfig:
    return TrialConfig(
        method=method, task="gaussian", setting="mu2", seed=3, gamma=2.0, lr_g=0.05, lr_d=0.05,
        steps=steps, batch_size=32, eval_every=10, loss="saturating", optimizer="sgd",
        betas=(0.5, 0.999), device="cpu", spectrum_every=spectrum_every,
    )


@pytest.mark.parametrize("method", ["jare", "sngan"])
def test_trainer_spectrum_leaves_training_unchanged(method):
    plain, logged = [], []

    Trainer(gaussian_config(method, None)).run(plain.append)
    Trainer(gaussian_config(method, 20)).run(logged.append)

    assert [row["distance_to_equilibrium"] for row in plain] == [row["distance_to_equilibrium"] for row in logged]
    assert [row["loss_d"] for row in plain] == [row["loss_d"] for row in logged]
    assert all(column not in row for row in plain for column in SPECTRUM_COLUMNS)


def test_trainer_logs_spectrum_at_its_steps():
    rows = []
    trainer = Trainer(gaussian_config("jare", 20))

    trainer.run(rows.append)

    assert [row["step"] for row in rows if "jacobian_phase_factor" in row] == [20, 40]
    # The last spectrum ran on the final parameters, and it restored the RNG afterwards, so the
    # same call now draws the same batch and must return the same values.
    spectrum = training_spectrum(trainer.method, trainer.game, 2.0, 32, "saturating", 4, seed=3)
    assert spectrum.exact
    assert len(spectrum.eigenvalues) == 4
    for column, value in spectrum.metrics().items():
        assert rows[-1][column] == pytest.approx(value, rel=1e-12), column
    assert rows[-1]["jacobian_conditioning_factor"] == pytest.approx(
        rows[-1]["jacobian_max_abs_eigenvalue"] / rows[-1]["jacobian_min_abs_eigenvalue"]
    )


def test_checkpoint_spectrum_matches_live_trainer(tmp_path):
    config = gaussian_config("jare", None, steps=20)
    trainer = Trainer(config)
    trainer.run(lambda row: None)
    trainer.save_checkpoint(tmp_path / "trainer.pt")

    live = trainer.spectrum_metrics()
    restored = checkpoint_spectrum(config, tmp_path / "trainer.pt").metrics()

    for column in SPECTRUM_COLUMNS:
        assert restored[column] == pytest.approx(live[column], rel=1e-12), column
