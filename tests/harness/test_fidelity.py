"""IS, FID and KID: the formulas against closed forms, and the Inception pipeline offline.

The pipeline tests run torch-fidelity's real ``inception-v3-compat`` network with a local
random-weights file (the official weights are a download), on 10 block images as the reference
and 10 noise images as the generated ones.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from harness import fidelity
from harness.errors import HarnessInputError
from harness.fidelity import (
    LOGIT_FEATURES,
    POOL_FEATURES,
    InceptionMetrics,
    metrics_from_features,
    to_uint8,
    weights_identity,
)
from harness.metrics import frechet_distance, gaussian_statistics

# ---------------------------------------------------------------------------------------------
# Formulas against closed forms


def hadamard_features(mean: np.ndarray, scales: np.ndarray, rows: int = 16) -> torch.Tensor:
    """Return ``rows`` feature vectors whose sample mean is ``mean`` and sample covariance diagonal.

    Column ``i`` is ``mean[i] + scales[i] · h`` for a non-constant Hadamard column ``h`` of ±1
    entries. Those columns have mean 0 and are orthogonal, so the unbiased sample covariance is
    exactly ``rows / (rows − 1) · diag(scales²)``.
    """
    columns = scipy.linalg.hadamard(rows)[:, 1 : len(mean) + 1]
    return torch.from_numpy(mean + columns * scales).float()


def features_of(pool: torch.Tensor, logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    if logits is None:
        logits = torch.zeros(len(pool), 4)
    return {POOL_FEATURES: pool, LOGIT_FEATURES: logits}


def test_fid_matches_closed_form_of_two_gaussians():
    mean_fake, mean_real = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    scales_fake, scales_real = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    fake = features_of(hadamard_features(mean_fake, scales_fake))
    real = features_of(hadamard_features(mean_real, scales_real))

    metrics = metrics_from_features(fake, real, seed=0)

    # Diagonal covariances c·s² commute: d² = ‖μ₁ − μ₂‖² + c Σ (s₁ − s₂)², c = 16/15.
    expected = np.sum((mean_fake - mean_real) ** 2) + 16 / 15 * np.sum((scales_fake - scales_real) ** 2)
    assert expected == pytest.approx(9.25 + 16 / 15 * 5.0)
    assert metrics["fid"] == pytest.approx(expected, rel=1e-5)


def test_fid_agrees_with_harness_frechet_distance():
    generator = torch.Generator().manual_seed(0)
    fake = torch.randn(200, 6, generator=generator, dtype=torch.float64) @ torch.randn(6, 6, generator=generator, dtype=torch.float64)
    real = torch.randn(300, 6, generator=generator, dtype=torch.float64) + 0.7

    metrics = metrics_from_features(features_of(fake), features_of(real), seed=0)

    assert metrics["fid"] == pytest.approx(frechet_distance(*gaussian_statistics(fake), *gaussian_statistics(real)), rel=1e-8)


def test_kid_of_constant_features_closed_form():
    dimension = 8
    a = torch.full((20, dimension), 0.5)
    b = torch.full((20, dimension), -0.25)

    metrics = metrics_from_features(features_of(a), features_of(b), seed=0)

    # Kernel k(x, y) = (xᵀy / d + 1)³; with constant sets the unbiased MMD² is
    # k(a, a) + k(b, b) − 2 k(a, b) on every subset.
    def kernel(x: float, y: float) -> float:
        return (x * y + 1.0) ** 3

    expected = kernel(0.5, 0.5) + kernel(-0.25, -0.25) - 2 * kernel(0.5, -0.25)
    assert metrics["kid"] == pytest.approx(expected, rel=1e-9)
    assert metrics["kid_std"] == pytest.approx(0.0, abs=1e-12)


def test_kid_of_identical_constant_features_zero():
    same = torch.ones(12, 5)

    metrics = metrics_from_features(features_of(same), features_of(same.clone()), seed=3)

    assert metrics["kid"] == pytest.approx(0.0, abs=1e-12)
    assert metrics["fid"] == pytest.approx(0.0, abs=1e-9)


def test_inception_score_of_confident_predictions():
    # One-hot predictions make each split's score exp(H(q)), the exponential of the entropy of
    # the split's class frequencies q. The splits come from the seeded shuffle, as in the metric.
    count, classes, seed = 40, 4, 5
    labels = np.arange(count) % classes
    logits = torch.full((count, classes), -60.0)
    logits[torch.arange(count), torch.from_numpy(labels)] = 60.0

    metrics = metrics_from_features(features_of(torch.randn(count, 3), logits), features_of(torch.randn(count, 3)), seed=seed)

    shuffled = labels[np.random.RandomState(seed).permutation(count)]
    scores = []
    for split in np.split(shuffled, 10):
        frequencies = np.bincount(split, minlength=classes) / len(split)
        nonzero = frequencies[frequencies > 0]
        scores.append(math.exp(-np.sum(nonzero * np.log(nonzero))))
    assert metrics["inception_score"] == pytest.approx(np.mean(scores), rel=1e-9)
    assert metrics["inception_score_std"] == pytest.approx(np.std(scores), rel=1e-6, abs=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    logits = torch.randn(1, 7).repeat(30, 1)

    metrics = metrics_from_features(features_of(torch.randn(30, 3), logits), features_of(torch.randn(30, 3)), seed=0)

    assert metrics["inception_score"] == pytest.approx(1.0, abs=1e-12)


def test_to_uint8_endpoints_and_rounding():
    images = torch.tensor([-1.0, -0.999, 0.0, 1.0, 1.5, -2.0])

    assert to_uint8(images).tolist() == [0, 0, 128, 255, 255, 0]


# ---------------------------------------------------------------------------------------------
# The Inception pipeline, offline


@pytest.fixture(scope="module")
def real_and_noise_images():
    generator = torch.Generator().manual_seed(0)
    # Smooth "real" images: random colors on 4×4 blocks; noise: independent pixels.
    blocks = torch.randint(0, 256, (10, 3, 4, 4), generator=generator, dtype=torch.uint8)
    real = blocks.repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)
    noise = torch.randint(0, 256, (10, 3, 32, 32), generator=generator, dtype=torch.uint8)
    return real, noise


@pytest.fixture(scope="module")
def pipeline(real_and_noise_images, inception_weights, tmp_path_factory):
    real, noise = real_and_noise_images
    cache = tmp_path_factory.mktemp("fidelity-cache")
    metrics = InceptionMetrics(real, inception_weights, torch.device("cpu"), batch_size=10, cache_dir=cache)
    state = torch.get_rng_state()
    against_noise = metrics.compute(noise, seed=0)
    # The reference against itself: its features through the same metric code as compute().
    against_real = metrics_from_features(metrics.real_features(), metrics.real_features(), seed=0)
    return metrics, cache, state, against_real, against_noise


def test_pipeline_metrics_finite(pipeline):
    _, _, _, against_real, against_noise = pipeline

    for values in (against_real, against_noise):
        assert set(values) == {"inception_score", "inception_score_std", "fid", "kid", "kid_std"}
        assert all(math.isfinite(value) for value in values.values())


def test_pipeline_fid_of_reference_itself_near_zero(pipeline):
    _, _, _, against_real, against_noise = pipeline

    assert against_noise["fid"] > 0
    assert against_real["fid"] < 1e-3 * against_noise["fid"]


def test_pipeline_keeps_global_rng(pipeline):
    _, _, state, _, _ = pipeline

    assert torch.equal(torch.get_rng_state(), state)


def test_real_features_cached_on_disk(pipeline, inception_weights, real_and_noise_images):
    metrics, cache, _, _, _ = pipeline
    files = list(cache.glob("real-inception-v3-compat-*.pt"))

    assert len(files) == 1
    stored = torch.load(files[0], weights_only=True)
    assert torch.equal(stored[POOL_FEATURES], metrics.real_features()[POOL_FEATURES])
    assert stored[POOL_FEATURES].shape == (10, 2048)
    assert stored[LOGIT_FEATURES].shape == (10, 1008)


def test_real_features_read_back_from_disk(pipeline, inception_weights, real_and_noise_images, monkeypatch):
    metrics, cache, _, _, _ = pipeline
    real, _ = real_and_noise_images
    fidelity._memory_cache.clear()
    again = InceptionMetrics(real, inception_weights, torch.device("cpu"), batch_size=10, cache_dir=cache)

    def fail(images):
        raise AssertionError("the real features were computed again instead of read from the cache")

    monkeypatch.setattr(again, "features", fail)

    assert torch.equal(again.real_features()[POOL_FEATURES], metrics.real_features()[POOL_FEATURES])


def test_cache_key_depends_on_images_and_weights(pipeline, inception_weights, real_and_noise_images, tmp_path):
    metrics, _, _, _, _ = pipeline
    _, noise = real_and_noise_images
    other_weights = tmp_path / "other.pt"
    other_weights.write_bytes(inception_weights.read_bytes() + b"\0")

    other_images = InceptionMetrics(noise, inception_weights, torch.device("cpu"), 10, None)
    other_network = InceptionMetrics(metrics.real_images, other_weights, torch.device("cpu"), 10, None)

    keys = {metrics._cache_key(), other_images._cache_key(), other_network._cache_key()}
    assert len(keys) == 3


def test_too_few_generated_images_rejected(pipeline, real_and_noise_images):
    metrics, _, _, _, _ = pipeline
    _, noise = real_and_noise_images

    with pytest.raises(ValueError, match="at least 10 images"):
        metrics.compute(noise[:9], seed=0)


def test_weights_identity_hashes_file(inception_weights):
    identity = weights_identity(inception_weights)
    digest = hashlib.sha256(inception_weights.read_bytes()).hexdigest()

    assert identity.digest == digest
    assert identity.backbone == f"inception-v3-compat (weights inception-random.pt, sha256 {digest[:12]})"
    assert weights_identity(None).backbone == "inception-v3-compat"


def test_missing_weights_file_named(tmp_path):
    with pytest.raises(HarnessInputError, match="Inception weights not found") as raised:
        weights_identity(tmp_path / "absent.pt")

    assert "absent.pt" in str(raised.value)
