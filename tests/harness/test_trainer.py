"""The generic training loop: simultaneous updates, seeding, evaluation rows and divergence."""

import math

import pytest
import torch

from harness.trainer import Trainer, game_losses, train
from harness.trial import TrialConfig


def gaussian_config(**overrides) -> TrialConfig:
    values = dict(
        method="simgd", task="gaussian", setting="default", seed=3, gamma=1.0, lr_g=0.05, lr_d=0.05,
        steps=40, batch_size=64, eval_every=10, loss="saturating", optimizer="sgd",
        betas=(0.5, 0.999), device="cpu",
    )
    values.update(overrides)
    return TrialConfig(**values)


def collect(config: TrialConfig) -> list[dict]:
    rows: list[dict] = []
    train(config, rows.append)
    return rows


def test_sgd_step_is_simultaneous():
    # With SGD, one step must move both players along the gradients taken at the *old* point:
    # φ' = φ − η g_φ(φ, θ) and θ' = θ − η g_θ(φ, θ), on the same batches.
    config = gaussian_config(method="simgd", lr_g=0.1, lr_d=0.2)
    trainer = Trainer(config)
    game = trainer.game
    phi0 = game.generator.phi.detach().clone()
    theta0 = game.discriminator.theta.detach().clone()

    rng_state = torch.get_rng_state()
    loss_g, loss_d = game_losses(game, config.batch_size, config.loss)
    g_phi, = torch.autograd.grad(loss_g, [game.generator.phi], retain_graph=True)
    g_theta, = torch.autograd.grad(loss_d, [game.discriminator.theta])
    torch.set_rng_state(rng_state)

    trainer.step()

    torch.testing.assert_close(game.generator.phi.detach(), phi0 - 0.1 * g_phi)
    torch.testing.assert_close(game.discriminator.theta.detach(), theta0 - 0.2 * g_theta)


def test_gaussian_losses_match_hand_formula():
    # For D_θ(x) = θᵀx: L_D = mean softplus(−θᵀx) + mean softplus(θᵀ(z + φ)), and L_G = −L_D.
    trainer = Trainer(gaussian_config())
    game = trainer.game
    theta = game.discriminator.theta.detach()
    phi = game.generator.phi.detach()

    state = torch.get_rng_state()
    real = game.sample_real(64)
    z = game.sample_latent(64)
    torch.set_rng_state(state)
    loss_g, loss_d = game_losses(game, 64, "saturating")

    want = torch.nn.functional.softplus(-(real @ theta)).mean() + torch.nn.functional.softplus((z + phi) @ theta).mean()
    torch.testing.assert_close(loss_d.detach(), want)
    torch.testing.assert_close(loss_g.detach(), -want)


def test_rows_at_each_evaluation():
    rows = collect(gaussian_config(steps=35, eval_every=10))

    assert [row["step"] for row in rows] == [10, 20, 30, 35]
    assert [row["status"] for row in rows] == ["running", "running", "running", "finished"]
    for row in rows:
        assert set(row) >= {"step", "wall_time_s", "loss_g", "loss_d", "status", "distance_to_equilibrium"}
        assert math.isfinite(row["distance_to_equilibrium"])


def test_same_seed_same_rows():
    first = collect(gaussian_config(method="jare"))
    second = collect(gaussian_config(method="jare"))

    assert [r["loss_g"] for r in first] == [r["loss_g"] for r in second]
    assert [r["distance_to_equilibrium"] for r in first] == [r["distance_to_equilibrium"] for r in second]


def test_other_seed_other_rows():
    first = collect(gaussian_config(seed=1))
    second = collect(gaussian_config(seed=2))

    assert first[-1]["loss_g"] != second[-1]["loss_g"]


def test_jare_approaches_equilibrium():
    rows = collect(gaussian_config(method="jare", gamma=2.0, lr_g=0.05, lr_d=0.05, steps=600, eval_every=100))

    distances = [row["distance_to_equilibrium"] for row in rows]
    assert distances[-1] < 0.2
    assert distances[-1] < distances[0]


def test_huge_learning_rate_diverges_with_step():
    outcome_rows = []
    outcome = train(gaussian_config(method="conopt", gamma=10.0, lr_g=1e4, lr_d=1e4, steps=500), outcome_rows.append)

    assert outcome.status == "diverged"
    assert 1 <= outcome.step < 500
    last = outcome_rows[-1]
    assert last["status"] == "diverged"
    assert last["step"] == outcome.step
    assert math.isnan(last["distance_to_equilibrium"])


def test_divergence_stops_training():
    rows = []
    outcome = train(gaussian_config(lr_g=1e30, lr_d=1e30, steps=1000, eval_every=1), rows.append)

    assert outcome.status == "diverged"
    assert len(rows) == outcome.step


def test_mog_rows_have_mode_metrics():
    config = gaussian_config(task="mog", setting="r2", optimizer="rmsprop", lr_g=1e-4, lr_d=1e-4,
                             steps=4, eval_every=2, batch_size=16, task_options={"eval_samples": 200})
    rows = collect(config)

    assert rows[-1]["status"] == "finished"
    assert 0 <= rows[-1]["modes_covered"] <= 8
    assert 0 <= rows[-1]["high_quality_fraction"] <= 1


def test_sngan_trains_with_normalized_discriminator():
    config = gaussian_config(task="mog", setting="r2", method="sngan", optimizer="rmsprop", lr_g=1e-4,
                             lr_d=1e-4, steps=3, eval_every=3, batch_size=16, task_options={"eval_samples": 100})
    trainer = Trainer(config)
    rows = []
    trainer.run(rows.append)

    assert rows[-1]["status"] == "finished"
    assert any(hasattr(m, "parametrizations") for m in trainer.game.discriminator.modules())


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop"])
def test_each_optimizer_runs(optimizer):
    rows = collect(gaussian_config(optimizer=optimizer, steps=5, eval_every=5))

    assert rows[-1]["status"] == "finished"
