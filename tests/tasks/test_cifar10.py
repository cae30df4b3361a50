"""Tests for the cifar10 task (conv4 networks, sampling, evaluation) and the Fréchet distance."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import images
from harness.errors import DataError, HarnessInputError
from harness.metrics import frechet_distance, gaussian_statistics
from harness.tasks.cifar10 import (
    LATENT_DIM,
    METRIC,
    Cifar10Task,
    Conv4Discriminator,
    Conv4Generator,
    to_signed_unit,
)

from tests.conftest import CIFAR_ZIP as SUBSET_ZIP

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
    ),
]


@pytest.fixture(autouse=True)
def empty_cache():
    images.clear_cache()
    yield
    images.clear_cache()


def write_fake_batches(folder: Path, per_batch: int = 40) -> None:
    """Write a cifar-10-batches-py folder with random pixels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with (folder / "batches.meta").open("wb") as file:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, file, protocol=2)
    for name in [*images.CIFAR10_BATCHES["train"], "test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=per_batch).tolist(),
        }
        with (folder / name).open("wb") as file:
            pickle.dump(batch, file, protocol=2)


@pytest.fixture
def fake_root(tmp_path) -> Path:
    write_fake_batches(tmp_path / "cifar-10-batches-py")
    return tmp_path


def build_game(root: Path, device: str = "cpu", **options):
    task = Cifar10Task()
    return task.build(task.setting("A"), options, root, False, torch.device(device))


# ---------------------------------------------------------------------------------------------
# Fréchet distance against closed forms


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


# ---------------------------------------------------------------------------------------------
# Networks


@pytest.mark.parametrize("batch_norm", [True, False])
def test_generator_output_shape_and_range(batch_norm):
    generator = Conv4Generator(batch_norm=batch_norm)

    output = generator(torch.randn(5, LATENT_DIM))

    assert output.shape == (5, 3, 32, 32)
    assert output.dtype == torch.float32
    assert output.min() >= -1.0
    assert output.max() <= 1.0


def test_generator_parameter_count():
    linear = 128 * 4 * 4 * 512 + 4 * 4 * 512
    transposed = sum(i * o * 16 + o for i, o in [(512, 256), (256, 128), (128, 64)])
    batch_norm = 2 * (4 * 4 * 512 + 256 + 128 + 64)
    last = 64 * 3 * 9 + 3

    count = sum(p.numel() for p in Conv4Generator().parameters())

    assert count == linear + transposed + batch_norm + last


def test_generator_has_batch_norm_only_when_requested():
    def count_norms(module: nn.Module) -> int:
        return sum(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in module.modules())

    assert count_norms(Conv4Generator(batch_norm=True)) == 4
    assert count_norms(Conv4Generator(batch_norm=False)) == 0


def test_discriminator_logit_shape():
    discriminator = Conv4Discriminator()

    logits = discriminator(torch.rand(6, 3, 32, 32) * 2 - 1)

    assert logits.shape == (6,)


def test_discriminator_parameter_count():
    first = 3 * 64 * 9 + 64
    strided = sum(i * o * 16 + o for i, o in [(64, 128), (128, 256), (256, 512)])
    last = 4 * 4 * 512 + 1

    count = sum(p.numel() for p in Conv4Discriminator().parameters())

    assert count == first + strided + last


# ---------------------------------------------------------------------------------------------
# Task and game


def test_setting_a_defaults():
    task = Cifar10Task()
    setting = task.setting("A")

    assert task.name == "cifar10"
    assert task.needs_data is True
    assert task.default_setting == "A"
    assert task.objective in task.metric_names
    assert task.mode == "min"
    assert setting.optimizer == "adam"
    assert setting.lr == 1e-4
    assert setting.betas == (0.5, 0.999)
    assert setting.batch_size == 64
    assert setting.steps == 500_000
    assert setting.loss == "nonsaturating"


def test_protocol_records_eval_samples():
    task = Cifar10Task()

    protocol = task.protocol(task.setting("A"), {"eval_samples": 300})

    assert protocol["eval_sample_count"] == 300
    assert protocol["eval_backbone"] == "pixels-avgpool-8x8"
    assert "test split" in protocol["eval_reference"]


@pytest.mark.parametrize("device", DEVICES)
def test_game_samples(fake_root, device):
    game = build_game(fake_root, device)

    torch.manual_seed(7)
    real = game.sample_real(64)
    torch.manual_seed(7)
    index = torch.randint(len(game.train_images), (64,), device=game.device)
    latent = game.sample_latent(3)

    assert real.shape == (64, 3, 32, 32)
    assert real.dtype == torch.float32
    assert real.device.type == device
    assert torch.equal(real, game.train_images[index].float() / 127.5 - 1.0)
    assert real.min() >= -1.0
    assert real.max() <= 1.0
    assert latent.shape == (3, LATENT_DIM)
    assert game.discriminator(real).shape == (64,)


def test_to_signed_unit_endpoints():
    pixels = torch.tensor([0, 255], dtype=torch.uint8)

    assert to_signed_unit(pixels).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("device", DEVICES)
def test_evaluate_finite_and_keeps_rng(fake_root, device):
    game = build_game(fake_root, device, eval_samples=64)
    state = torch.get_rng_state()
    cuda_state = torch.cuda.get_rng_state() if device == "cuda" else None

    first = game.evaluate()
    second = game.evaluate()

    assert set(first) == {METRIC}
    assert np.isfinite(first[METRIC])
    assert first[METRIC] > 0
    assert second == first
    assert torch.equal(torch.get_rng_state(), state)
    if cuda_state is not None:
        assert torch.equal(torch.cuda.get_rng_state(), cuda_state)
    assert game.generator.training


def test_evaluate_keeps_eval_mode(fake_root):
    game = build_game(fake_root, eval_samples=16)
    game.generator.eval()

    game.evaluate()

    assert not game.generator.training


class ReplayTestImages(nn.Module):
    """A generator that outputs the test images in order, scaled to [-1, 1]."""

    def __init__(self, test_images: torch.Tensor) -> None:
        super().__init__()
        self.images = to_signed_unit(test_images)
        self.offset = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        batch = self.images[self.offset : self.offset + len(z)]
        self.offset += len(z)
        return batch


def test_evaluate_real_images_near_zero(fake_root):
    game = build_game(fake_root, eval_samples=40, eval_batch_size=16)
    game.generator = ReplayTestImages(game.test_images)

    metrics = game.evaluate()

    assert metrics[METRIC] == pytest.approx(0.0, abs=1e-6)


def test_evaluate_diverged_generator_infinite(fake_root):
    game = build_game(fake_root, eval_samples=8)
    with torch.no_grad():
        game.generator.upsample[-2].bias.fill_(float("nan"))

    assert game.evaluate() == {METRIC: float("inf")}


def test_unknown_option_rejected(fake_root):
    with pytest.raises(HarnessInputError, match="unknown cifar10 task option"):
        build_game(fake_root, eval_sample=10)


@pytest.mark.parametrize("value", [1, 0, 2.5, True])
def test_invalid_eval_samples_rejected(fake_root, value):
    with pytest.raises(HarnessInputError, match="eval_samples"):
        build_game(fake_root, eval_samples=value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_norm", "false"),
        ("eval_batch_size", 0),
        ("eval_seed", -1),
        ("architecture", "dcgan4"),
    ],
)
def test_invalid_option_named(fake_root, name, value):
    with pytest.raises(HarnessInputError, match=f"invalid cifar10 task option {name}="):
        build_game(fake_root, **{name: value})


def test_check_data_missing_root_explains_fix(tmp_path):
    task = Cifar10Task()

    with pytest.raises(DataError, match="data.download: true") as raised:
        task.check_data(task.setting("A"), tmp_path / "missing", download=False)

    assert str(tmp_path / "missing") in str(raised.value)


def test_check_data_downloads_when_requested(tmp_path, monkeypatch):
    downloads: list[Path] = []

    def fake_download(root: Path) -> Path:
        downloads.append(root)
        folder = root / "cifar-10-batches-py"
        write_fake_batches(folder, per_batch=2)
        return folder

    monkeypatch.setattr(images, "download_cifar10", fake_download)
    task = Cifar10Task()

    task.check_data(task.setting("A"), tmp_path / "new", download=True)

    assert downloads == [tmp_path / "new"]


def test_build_on_subset_zip():
    if not SUBSET_ZIP.is_file():
        pytest.skip(f"../shared/data/cifar10-subset.zip not found: expected it at {SUBSET_ZIP}")
    task = Cifar10Task()
    task.check_data(task.setting("A"), SUBSET_ZIP, download=False)

    game = build_game(SUBSET_ZIP, eval_samples=64)
    metrics = game.evaluate()

    assert game.train_images.shape == (10_000, 3, 32, 32)
    assert game.test_images.shape == (2_000, 3, 32, 32)
    assert np.isfinite(metrics[METRIC])
