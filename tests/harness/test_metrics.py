"""The Fréchet distance between Gaussians and the Gaussian feature statistics, against closed forms."""

import numpy as np
import pytest
import torch

from harness.metrics import frechet_distance, gaussian_statistics


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    sigma1, sigma2 = rng.uniform(0.1, 2.0, size=5), rng.uniform(0.1, 2.0, size=5)

    distance = frechet_distance(mu1, np.diag(sigma1**2), mu2, np.diag(sigma2**2))

    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sigma1 - sigma2) ** 2)
    assert distance == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_rotated_closed_form():
    # Covariances sharing eigenvectors commute, so the diagonal formula applies in their basis.
    rng = np.random.default_rng(2)
    rotation, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    sigma1, sigma2 = rng.uniform(0.1, 2.0, size=4), rng.uniform(0.1, 2.0, size=4)
    cov1 = rotation @ np.diag(sigma1**2) @ rotation.T
    cov2 = rotation @ np.diag(sigma2**2) @ rotation.T
    mu1, mu2 = rng.normal(size=4), rng.normal(size=4)

    distance = frechet_distance(mu1, cov1, mu2, cov2)

    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sigma1 - sigma2) ** 2)
    assert distance == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_identical_is_zero():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(500, 192))
    mu, cov = gaussian_statistics(features)

    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_singular_covariances_finite():
    mu = np.zeros(3)
    singular = np.diag([1.0, 0.0, 0.0])

    distance = frechet_distance(mu, singular, mu + 1.0, np.diag([0.0, 4.0, 0.0]))

    assert np.isfinite(distance)
    assert distance == pytest.approx(3.0 + 1.0 + 4.0, abs=1e-3)


def test_frechet_distance_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="mismatched shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_gaussian_statistics_matches_numpy():
    features = torch.randn(50, 4, dtype=torch.float64)

    mu, cov = gaussian_statistics(features)

    assert np.allclose(mu, features.numpy().mean(axis=0))
    assert np.allclose(cov, np.cov(features.numpy(), rowvar=False))
    assert mu.dtype == np.float64
