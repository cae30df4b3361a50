"""Tests for the cifar10 task: settings A–F, sampling, evaluation through Inception, options."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import images
from harness.errors import DataError, HarnessInputError
from harness.fidelity import METRIC_NAMES
from harness.tasks.cifar10 import LATENT_DIM, Cifar10Task, to_signed_unit
from harness.tasks.networks import (
    Conv4Generator,
    DCGAN4Generator,
    ResNetDiscriminator,
    ResNetGenerator,
)
from tests.conftest import CIFAR_ZIP as SUBSET_ZIP

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
    ),
]
EVAL = {"eval_samples": 10, "eval_reference_samples": 10, "eval_batch_size": 10}


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


@pytest.fixture
def eval_options(inception_weights, tmp_path) -> dict:
    return {**EVAL, "inception_weights": str(inception_weights), "metrics_cache": str(tmp_path / "cache")}


def build_game(root: Path, device: str = "cpu", setting: str = "A", **options):
    task = Cifar10Task()
    options = {"eval_reference_samples": 10, **options}
    return task.build(task.setting(setting), options, root, False, torch.device(device))


# ---------------------------------------------------------------------------------------------
# Settings


def test_settings_a_to_f_defaults():
    task = Cifar10Task()

    assert list(task.settings) == ["A", "B", "C", "D", "E", "F"]
    for setting in task.settings.values():
        assert setting.lr == 1e-4
        assert setting.betas == (0.5, 0.999)
        assert setting.batch_size == 64
        assert setting.steps == 500_000
        assert setting.loss == "nonsaturating"
    assert [s.optimizer for s in task.settings.values()] == ["adam", "adam", "adam", "rmsprop", "adam", "adam"]


@pytest.mark.parametrize(
    ("setting", "generator_type", "batch_norms"),
    [("A", Conv4Generator, 4), ("B", Conv4Generator, 0), ("C", DCGAN4Generator, 0),
     ("D", DCGAN4Generator, 0), ("E", ResNetGenerator, 0), ("F", ResNetGenerator, 0)],
)
def test_setting_builds_its_architecture(setting, generator_type, batch_norms):
    task = Cifar10Task()

    generator, discriminator = task.build_networks(task.setting(setting), {})

    assert isinstance(generator, generator_type)
    assert sum(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in generator.modules()) == batch_norms
    assert sum(isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for m in discriminator.modules()) == 0
    image = generator(torch.randn(2, LATENT_DIM))
    assert image.shape == (2, 3, 32, 32)
    assert discriminator(image).shape == (2,)


def test_resnet_settings_differ_in_first_and_last_layer():
    task = Cifar10Task()
    v1, _ = task.build_networks(task.setting("E"), {})
    v2, _ = task.build_networks(task.setting("F"), {})

    assert v1.start_size == 2
    assert v2.start_size == 4
    assert isinstance(v1.upsample[-2], nn.ConvTranspose2d)
    assert isinstance(v2.upsample[-2], nn.Conv2d)


def test_filters_option_sizes_resnet():
    task = Cifar10Task()

    _, discriminator = task.build_networks(task.setting("E"), {"filters": 8})

    assert isinstance(discriminator, ResNetDiscriminator)
    assert discriminator.classify.in_features == 2 * 2 * 8


def test_objective_is_fid():
    task = Cifar10Task()

    assert task.objective == "fid"
    assert task.mode == "min"
    assert task.metric_names == METRIC_NAMES
    assert task.needs_data is True


def test_protocol_columns(inception_weights):
    task = Cifar10Task()

    protocol = task.protocol(
        task.setting("A"),
        {"eval_samples": 300, "eval_reference_samples": 200, "eval_seed": 4,
         "inception_weights": str(inception_weights)},
    )

    assert protocol["eval_sample_count"] == 300
    assert protocol["eval_reference_count"] == 200
    assert protocol["eval_seed"] == 4
    assert protocol["eval_backbone"].startswith("inception-v3-compat (weights inception-random.pt, sha256 ")
    assert "test split" in protocol["eval_reference"]


def test_protocol_default_backbone_is_official():
    task = Cifar10Task()

    protocol = task.protocol(task.setting("B"), {})

    assert protocol["eval_backbone"] == "inception-v3-compat"
    assert protocol["eval_sample_count"] == 10_000
    # null until the sweep's preflight replaces it with the test split's size, at most 10,000
    assert protocol["eval_reference_count"] is None


# ---------------------------------------------------------------------------------------------
# Game


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("on_device", [True, False])
def test_game_samples(fake_root, device, on_device):
    game = build_game(fake_root, device, data_on_device=on_device)

    torch.manual_seed(7)
    real = game.sample_real(64)
    torch.manual_seed(7)
    index = torch.randint(len(game.train_images), (64,))
    latent = game.sample_latent(3)

    assert real.shape == (64, 3, 32, 32)
    assert real.dtype == torch.float32
    assert real.device.type == device
    assert torch.equal(real.cpu(), game.train_images[index.to(game.train_images.device)].cpu().float() / 127.5 - 1.0)
    assert real.min() >= -1.0
    assert real.max() <= 1.0
    assert latent.shape == (3, LATENT_DIM)
    assert game.discriminator(real).shape == (64,)


def test_to_signed_unit_endpoints():
    pixels = torch.tensor([0, 255], dtype=torch.uint8)

    assert to_signed_unit(pixels).tolist() == [-1.0, 1.0]


def test_evaluate_finite_and_keeps_rng(fake_root, eval_options):
    game = build_game(fake_root, **eval_options)
    state = torch.get_rng_state()

    metrics = game.evaluate()

    assert set(metrics) == set(METRIC_NAMES)
    assert all(math.isfinite(value) for value in metrics.values())
    assert metrics["inception_score"] >= 1.0
    assert metrics["fid"] > 0
    assert torch.equal(torch.get_rng_state(), state)
    assert game.generator.training


def test_generate_uses_same_noise_each_time(fake_root):
    game = build_game(fake_root, eval_batch_size=4)
    state = torch.get_rng_state()

    first = game.generate(10)
    second = game.generate(10)

    assert first.shape == (10, 3, 32, 32)
    assert first.dtype == torch.uint8
    assert torch.equal(first, second)
    assert torch.equal(torch.get_rng_state(), state)


def test_evaluate_diverged_generator_infinite(fake_root, eval_options):
    game = build_game(fake_root, **eval_options)
    with torch.no_grad():
        game.generator.upsample[-2].bias.fill_(float("nan"))

    metrics = game.evaluate()

    assert metrics["fid"] == math.inf
    assert metrics["kid"] == math.inf
    assert math.isnan(metrics["inception_score"])


def test_sample_grid_shape_and_repeatable(fake_root):
    game = build_game(fake_root, sample_grid_size=16)

    grid = game.sample_grid()

    # 4×4 images of 32 pixels with 2-pixel padding around and between them.
    assert grid.shape == (3, 4 * 34 + 2, 4 * 34 + 2)
    assert grid.dtype == torch.uint8
    assert torch.equal(game.sample_grid(), grid)


def test_sample_grid_disabled(fake_root):
    assert build_game(fake_root, sample_grid_size=0).sample_grid() is None


def test_reference_subset_larger_than_split_rejected(fake_root):
    with pytest.raises(HarnessInputError, match="has 40 reference images but the task option eval_reference_samples is 41"):
        build_game(fake_root, eval_reference_samples=41)


def test_check_data_rejects_reference_count(fake_root):
    task = Cifar10Task()

    with pytest.raises(HarnessInputError, match="eval_reference_samples to at most 40"):
        task.check_data(task.setting("A"), fake_root, False, {"eval_reference_samples": 41})


def test_unknown_option_rejected(fake_root):
    with pytest.raises(HarnessInputError, match="unknown cifar10 task option"):
        build_game(fake_root, eval_sample=10)


@pytest.mark.parametrize("value", [9, 0, 2.5, True])
def test_invalid_eval_samples_rejected(fake_root, value):
    with pytest.raises(HarnessInputError, match="eval_samples"):
        build_game(fake_root, eval_samples=value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_norm", "false"),
        ("data_on_device", 1),
        ("eval_batch_size", 0),
        ("eval_seed", -1),
        ("filters", 0),
        ("architecture", "resnet"),
        ("inception_weights", 3),
    ],
)
def test_invalid_option_named(fake_root, name, value):
    with pytest.raises(HarnessInputError, match=f"invalid cifar10 task option {name}="):
        build_game(fake_root, **{name: value})


def test_missing_inception_weights_named(fake_root, tmp_path):
    missing = tmp_path / "no-weights.pt"

    with pytest.raises(HarnessInputError, match="Inception weights not found") as raised:
        build_game(fake_root, inception_weights=str(missing))

    assert str(missing) in str(raised.value)


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


def test_build_on_subset_zip(inception_weights):
    if not SUBSET_ZIP.is_file():
        pytest.skip(f"../shared/data/cifar10-subset.zip not found: expected it at {SUBSET_ZIP}")
    task = Cifar10Task()
    options = {"eval_reference_samples": 2000, "inception_weights": str(inception_weights)}
    task.check_data(task.setting("A"), SUBSET_ZIP, download=False, options=options)

    game = build_game(SUBSET_ZIP, eval_reference_samples=None)

    assert game.train_images.shape == (10_000, 3, 32, 32)
    assert game.reference_images.shape == (2_000, 3, 32, 32)
