"""The toy tasks: the Gaussian's equilibrium distance and the ring's mode metrics."""

import math

import pytest
import torch

from harness.tasks import all_setting_keys, resolve_setting
from harness.tasks.gaussian import GaussianTask
from harness.tasks.mog import mode_metrics, ring_centers

CPU = torch.device("cpu")


def test_gaussian_distance_is_euclidean():
    task = GaussianTask()
    game = task.build(task.setting("default"), {}, None, False, CPU)
    with torch.no_grad():
        game.generator.phi.copy_(torch.tensor([3.0, 2.0]))   # φ* = (0, 2)
        game.discriminator.theta.copy_(torch.tensor([0.0, -4.0]))

    assert game.evaluate()["distance_to_equilibrium"] == pytest.approx(5.0)


def test_gaussian_samples_have_setting_moments():
    task = GaussianTask()
    torch.manual_seed(0)
    game = task.build(task.setting("mu4"), {}, None, False, CPU)

    real = game.sample_real(200_000)

    assert real.mean(0).tolist() == pytest.approx([0.0, 4.0], abs=0.01)
    assert real.std(0).tolist() == pytest.approx([0.2, 0.2], abs=0.01)


def test_ring_centers_on_circle():
    centers = ring_centers(2.0)

    assert torch.linalg.norm(centers, dim=1).tolist() == pytest.approx([2.0] * 8)
    assert centers[2].tolist() == pytest.approx([0.0, 2.0], abs=1e-6)


def test_samples_on_every_mode():
    centers = ring_centers(2.0)
    samples = centers.repeat_interleave(25, dim=0)

    metrics = mode_metrics(samples, centers, sigma=0.06, min_mode_samples=20)

    assert metrics == {"modes_covered": 8.0, "high_quality_fraction": 1.0}


def test_three_sigma_boundary():
    centers = ring_centers(2.0)
    inside = centers[0] + torch.tensor([0.179, 0.0])   # 2.98σ from mode 0
    outside = centers[0] + torch.tensor([0.181, 0.0])  # 3.02σ

    metrics = mode_metrics(torch.stack([inside, outside]), centers, sigma=0.06, min_mode_samples=1)

    assert metrics["high_quality_fraction"] == 0.5
    assert metrics["modes_covered"] == 1.0


def test_mode_needs_enough_samples():
    centers = ring_centers(2.0)
    samples = torch.cat([centers[0].repeat(20, 1), centers[1].repeat(19, 1), torch.zeros(61, 2)])

    metrics = mode_metrics(samples, centers, sigma=0.06, min_mode_samples=20)

    assert metrics["modes_covered"] == 1.0
    assert metrics["high_quality_fraction"] == pytest.approx(0.39)


def test_mog_evaluate_leaves_training_rng_alone():
    task, setting = resolve_setting("mog/r2")
    torch.manual_seed(0)
    game = task.build(setting, {"eval_samples": 100}, None, False, CPU)
    state = torch.get_rng_state()

    first = game.evaluate()
    second = game.evaluate()

    assert torch.equal(torch.get_rng_state(), state)
    assert first == second


def test_every_setting_resolves():
    for key in all_setting_keys():
        task, setting = resolve_setting(key)
        assert f"{task.name}/{setting.name}" == key
        assert setting.lr > 0
        assert setting.steps > 0
        assert setting.batch_size > 0
        assert task.objective in task.metric_names
        assert not math.isnan(setting.lr)
