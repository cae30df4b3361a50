"""CIFAR-10 at 32×32: the data, the conv4 networks and a cheap pixel-space Fréchet distance.

Setting A follows the JARE authors' code (their job 0): conv4 with batch norm in the
generator, Adam (lr 1e-4, β = (0.5, 0.999)), batch 64, z ~ N(0, I₁₂₈), 500,000 steps and the
non-saturating loss. Real images are scaled from uint8 to float32 in [-1, 1].

The authors name their architecture "conv4". The layers below are this harness's reading of it:

    G  Linear(128 → 4·4·512) + BN + ReLU, reshaped to 512×4×4
       ConvTranspose2d(512 → 256, k4, s2, p1) + BN + ReLU      8×8
       ConvTranspose2d(256 → 128, k4, s2, p1) + BN + ReLU     16×16
       ConvTranspose2d(128 → 64,  k4, s2, p1) + BN + ReLU     32×32
       Conv2d(64 → 3, k3, s1, p1) + tanh
    D  Conv2d(3 → 64,    k3, s1, p1) + LeakyReLU(0.1)          32×32
       Conv2d(64 → 128,  k4, s2, p1) + LeakyReLU(0.1)          16×16
       Conv2d(128 → 256, k4, s2, p1) + LeakyReLU(0.1)           8×8
       Conv2d(256 → 512, k4, s2, p1) + LeakyReLU(0.1)           4×4
       flatten, Linear(4·4·512 → 1): one logit per image, shape (N,)

The metric ``pixel_frechet_distance`` is the Fréchet distance between Gaussian fits of the
test images and of generated images, both average-pooled to 8×8×3 = 192 values. It is a cheap
stand-in for FID and its values are not comparable with FID.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import HarnessInputError
from harness.images import SPLITS, ImageDataset, load_cifar10
from harness.metrics import frechet_distance, gaussian_statistics
from harness.tasks.base import Game, Setting, Task

logger = logging.getLogger(__name__)

LATENT_DIM = 128
IMAGE_SIZE = 32
POOLED_SIZE = 8
"""Side length, in pixels, that images are average-pooled to for the Fréchet distance."""
METRIC = "pixel_frechet_distance"
EVAL_BACKBONE = "pixels-avgpool-8x8"
"""Feature extractor of the metric, recorded with each result row: raw pixels pooled to 8×8."""

ARCHITECTURES = ("conv4",)
DEFAULT_OPTIONS: dict[str, Any] = {
    "architecture": "conv4",
    "batch_norm": True,  # batch norm in the generator
    "eval_samples": 1000,  # generated images per evaluation
    "eval_batch_size": 500,  # generator batch size during evaluation
    "eval_seed": 0,  # seed of the evaluation noise, the same at every evaluation
}


# ---------------------------------------------------------------------------------------------
# Networks


class Conv4Generator(nn.Module):
    """The conv4 generator: z ∈ R¹²⁸ to a 3×32×32 image in [-1, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM, batch_norm: bool = True) -> None:
        super().__init__()

        def norm(kind: type[nn.Module], channels: int) -> nn.Module:
            return kind(channels) if batch_norm else nn.Identity()

        self.project = nn.Sequential(
            nn.Linear(latent_dim, 4 * 4 * 512), norm(nn.BatchNorm1d, 4 * 4 * 512), nn.ReLU()
        )
        layers: list[nn.Module] = []
        for in_channels, out_channels in ((512, 256), (256, 128), (128, 64)):
            layers += [
                nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
                norm(nn.BatchNorm2d, out_channels),
                nn.ReLU(),
            ]
        layers += [nn.Conv2d(64, 3, kernel_size=3, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, 512, 4, 4))


class Conv4Discriminator(nn.Module):
    """The conv4 discriminator: a 3×32×32 image in [-1, 1] to one logit."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 64, kernel_size=3, padding=1), nn.LeakyReLU(0.1)]
        for in_channels, out_channels in ((64, 128), (128, 256), (256, 512)):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1),
                nn.LeakyReLU(0.1),
            ]
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(4 * 4 * 512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).flatten(1)).squeeze(-1)


# ---------------------------------------------------------------------------------------------
# Game


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 pixels in [0, 255] to float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def pooled_features(images: torch.Tensor) -> torch.Tensor:
    """Average-pool ``(N, 3, H, W)`` images to 8×8 and flatten them to ``(N, 192)``."""
    return F.adaptive_avg_pool2d(images, POOLED_SIZE).flatten(1)


class Cifar10Game(Game):
    """conv4 networks on ``device`` with the train images held there as uint8."""

    def __init__(
        self, train: ImageDataset, test: ImageDataset, options: dict[str, Any], device: torch.device
    ) -> None:
        self.device = torch.device(device)
        self.train_images = train.images.to(self.device)
        self.test_images = test.images
        self.generator = Conv4Generator(LATENT_DIM, batch_norm=bool(options["batch_norm"]))
        self.generator.to(self.device)
        self.discriminator = Conv4Discriminator().to(self.device)

        self.eval_samples = int(options["eval_samples"])
        self.eval_batch_size = int(options["eval_batch_size"])
        self.eval_seed = int(options["eval_seed"])
        self._eval_rng = torch.Generator(device=self.device)
        self._real_statistics: tuple[Any, Any] | None = None

    def sample_real(self, batch_size: int) -> torch.Tensor:
        index = torch.randint(len(self.train_images), (batch_size,), device=self.device)
        return to_signed_unit(self.train_images[index])

    def sample_latent(self, batch_size: int) -> torch.Tensor:
        return torch.randn(batch_size, LATENT_DIM, device=self.device)

    def real_statistics(self) -> tuple[Any, Any]:
        """Return the mean and covariance of the test images' pooled features, computed once."""
        if self._real_statistics is None:
            chunks = []
            for start in range(0, len(self.test_images), self.eval_batch_size):
                batch = self.test_images[start : start + self.eval_batch_size].to(self.device)
                chunks.append(pooled_features(to_signed_unit(batch)).cpu())
            self._real_statistics = gaussian_statistics(torch.cat(chunks))
        return self._real_statistics

    def generated_features(self) -> torch.Tensor:
        """Return pooled features of ``eval_samples`` images from the generator in eval mode.

        The noise comes from a dedicated generator reseeded with ``eval_seed``, so every
        evaluation uses the same z and torch's global RNG is untouched.
        """
        self._eval_rng.manual_seed(self.eval_seed)
        was_training = self.generator.training
        self.generator.eval()
        chunks = []
        try:
            with torch.no_grad():
                for start in range(0, self.eval_samples, self.eval_batch_size):
                    count = min(self.eval_batch_size, self.eval_samples - start)
                    z = torch.randn(
                        count, LATENT_DIM, device=self.device, generator=self._eval_rng
                    )
                    chunks.append(pooled_features(self.generator(z)).cpu())
        finally:
            self.generator.train(was_training)
        return torch.cat(chunks)

    def evaluate(self) -> dict[str, float]:
        """Return the pixel Fréchet distance, or infinity when the generator outputs NaN or inf."""
        mu_real, cov_real = self.real_statistics()
        features = self.generated_features()
        if not torch.isfinite(features).all():
            return {METRIC: math.inf}
        mu_fake, cov_fake = gaussian_statistics(features)
        return {METRIC: frechet_distance(mu_fake, cov_fake, mu_real, cov_real)}


# ---------------------------------------------------------------------------------------------
# Task


def resolve_options(setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
    """Merge the defaults, the setting's options and the spec's overrides, and validate them."""
    merged = {**DEFAULT_OPTIONS, **setting.options, **options}
    unknown = sorted(set(merged) - set(DEFAULT_OPTIONS))
    if unknown:
        raise HarnessInputError(
            f"unknown cifar10 task option(s) {', '.join(unknown)}; known options: "
            f"{', '.join(DEFAULT_OPTIONS)}"
        )
    if merged["architecture"] not in ARCHITECTURES:
        raise HarnessInputError(
            f"invalid cifar10 task option architecture={merged['architecture']!r}; known "
            f"architectures: {', '.join(ARCHITECTURES)}"
        )
    if not isinstance(merged["batch_norm"], bool):
        raise HarnessInputError(
            f"invalid cifar10 task option batch_norm={merged['batch_norm']!r}; "
            f"expected true or false"
        )
    # The covariance of the generated features needs at least two samples.
    for name, minimum in (("eval_samples", 2), ("eval_batch_size", 1), ("eval_seed", 0)):
        value = merged[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise HarnessInputError(
                f"invalid cifar10 task option {name}={value!r}; expected an integer >= {minimum}"
            )
    return merged


def _setting_a() -> Setting:
    return Setting(
        name="A",
        description="conv4 with batch norm in G, Adam",
        optimizer="adam",
        lr=1e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        steps=500_000,
        loss="nonsaturating",
        options={"architecture": "conv4", "batch_norm": True},
    )


class Cifar10Task(Task):
    name = "cifar10"
    # TODO: settings B–F (conv4 without batch norm, dcgan4 with Adam and RMSProp, ResNet v1
    # and v2) are not implemented yet.
    settings = {"A": _setting_a()}
    default_setting = "A"
    # NOTE: a placeholder until Inception metrics (FID, IS, KID) exist; see the module docstring.
    objective = METRIC
    mode = "min"
    metric_names = (METRIC,)
    needs_data = True

    def validate_options(self, setting: Setting, options: dict[str, Any]) -> None:
        resolve_options(setting, options)

    def protocol(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        resolved = resolve_options(setting, options)
        return {
            "eval_sample_count": resolved["eval_samples"],
            "eval_backbone": EVAL_BACKBONE,
            "eval_reference": (
                "CIFAR-10 test split (train images when the data has no test/ folder)"
            ),
        }

    def check_data(self, setting: Setting, data_root: Path | None, download: bool) -> None:
        """Load both splits (downloading them first when requested and missing)."""
        for split in SPLITS:
            load_cifar10(data_root, split, download=download)

    def build(
        self,
        setting: Setting,
        options: dict[str, Any],
        data_root: Path | None,
        download: bool,
        device: torch.device,
    ) -> Game:
        resolved = resolve_options(setting, options)
        train = load_cifar10(data_root, "train", download=download)
        test = load_cifar10(data_root, "test", download=download)
        if test.split is None:
            logger.warning(
                "%s has no train/ and test/ folders, so the reference statistics come from the "
                "training images",
                test.source,
            )
        return Cifar10Game(train, test, resolved, device)
