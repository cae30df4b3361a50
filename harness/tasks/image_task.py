"""Shared parts of the image tasks: options, the game (data, networks, metrics) and the protocol.

Real images stay in memory as uint8 and are scaled to float32 in [-1, 1] per batch. Batch
indices come from torch's global CPU RNG, so a run draws the same batches whether the images
sit on the training device or in pinned host memory (``data_on_device: false``), and on any
device. Evaluation draws its noise from a private generator reseeded with ``eval_seed``, so it
uses the same z every time and never touches the training RNG.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.utils import make_grid

from harness.errors import HarnessInputError
from harness.fidelity import (
    MIN_SAMPLES,
    InceptionMetrics,
    default_cache_dir,
    ensure_official_weights,
    nonfinite_metrics,
    to_uint8,
    weights_identity,
)
from harness.images import ImageDataset
from harness.tasks.base import Game, Setting, Task
from harness.tasks.networks import LATENT_DIM, build_networks

logger = logging.getLogger(__name__)

DEFAULT_OPTIONS: dict[str, Any] = {
    "architecture": "conv4",
    "batch_norm": False,  # batch norm in the conv4 generator
    "filters": 64,  # M_f of the ResNets
    "eval_samples": 10_000,  # generated images per evaluation
    # real reference images, drawn once with eval_seed; null: the whole test split, at most 10,000
    "eval_reference_samples": None,
    "eval_batch_size": 250,  # images per generator and Inception forward pass
    "eval_seed": 0,  # seed of the evaluation noise, the IS shuffle and the KID subsets
    "inception_weights": None,  # state_dict file of inception-v3-compat; null downloads it
    "metrics_cache": None,  # folder of cached real-image features; null: $TORCH_HOME/harness_fidelity
    "sample_grid_size": 64,  # generated images in the PNG grid of each evaluation; 0: none
    "data_on_device": True,  # hold the training images on the training device
}
_INTEGER_MINIMUMS = {
    "filters": 1,
    "eval_samples": MIN_SAMPLES,
    "eval_reference_samples": 2,  # a covariance needs two samples; null is allowed too
    "eval_batch_size": 1,
    "eval_seed": 0,
    "sample_grid_size": 0,
}
DEFAULT_REFERENCE_LIMIT = 10_000
"""Most reference images that ``eval_reference_samples: null`` uses; FID is biased below it."""


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """Convert uint8 pixels in [0, 255] to float32 in [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def resolve_options(task: str, setting: Setting, options: dict[str, Any],
                    architectures: tuple[str, ...]) -> dict[str, Any]:
    """Merge the defaults, the setting's options and the spec's overrides, and validate them."""
    merged = {**DEFAULT_OPTIONS, **setting.options, **options}
    unknown = sorted(set(merged) - set(DEFAULT_OPTIONS))
    if unknown:
        raise HarnessInputError(
            f"unknown {task} task option(s) {', '.join(unknown)}; known options: "
            f"{', '.join(DEFAULT_OPTIONS)}"
        )
    if merged["architecture"] not in architectures:
        raise HarnessInputError(
            f"invalid {task} task option architecture={merged['architecture']!r}; known "
            f"architectures: {', '.join(architectures)}"
        )
    for name in ("batch_norm", "data_on_device"):
        if not isinstance(merged[name], bool):
            raise HarnessInputError(
                f"invalid {task} task option {name}={merged[name]!r}; expected true or false"
            )
    for name, minimum in _INTEGER_MINIMUMS.items():
        value = merged[name]
        if name == "eval_reference_samples" and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise HarnessInputError(
                f"invalid {task} task option {name}={value!r}; expected an integer >= {minimum}"
            )
    for name in ("inception_weights", "metrics_cache"):
        if merged[name] is not None and not isinstance(merged[name], str):
            raise HarnessInputError(
                f"invalid {task} task option {name}={merged[name]!r}; expected a path or null"
            )
    return merged


class ImageGame(Game):
    """Game of one image setting: its networks on ``device``, its training images and its metrics."""

    def __init__(
        self,
        train: ImageDataset,
        reference: ImageDataset,
        image_size: int,
        options: dict[str, Any],
        device: torch.device,
    ) -> None:
        self.device = torch.device(device)
        self.image_size = image_size
        self.options = options

        if options["data_on_device"] or self.device.type != "cuda":
            self.train_images = train.images.to(self.device)
        else:
            # Each batch is gathered on the host and copied from pinned memory without blocking.
            # NOTE: this path has only run in tests on machines without CUDA, where it is skipped.
            self.train_images = train.images

        self.generator, self.discriminator = build_networks(
            options["architecture"], image_size, batch_norm=options["batch_norm"],
            filters=options["filters"],
        )
        self.generator.to(self.device)
        self.discriminator.to(self.device)

        self.eval_samples = options["eval_samples"]
        self.eval_batch_size = options["eval_batch_size"]
        self.eval_seed = options["eval_seed"]
        self._eval_rng = torch.Generator(device=self.device)
        count = options["eval_reference_samples"]
        if count is None:
            count = default_reference_count(reference)
        self.reference_images = reference_subset(reference, count, self.eval_seed)
        cache = options["metrics_cache"]
        self.metrics = InceptionMetrics(
            self.reference_images,
            options["inception_weights"],
            self.device,
            self.eval_batch_size,
            cache_dir=Path(cache) if cache else default_cache_dir(),
        )

    def sample_real(self, batch_size: int) -> torch.Tensor:
        index = torch.randint(len(self.train_images), (batch_size,))
        if self.train_images.device != self.device:
            batch = self.train_images[index].pin_memory().to(self.device, non_blocking=True)
        else:
            batch = self.train_images[index.to(self.device)]
        return to_signed_unit(batch)

    def sample_latent(self, batch_size: int) -> torch.Tensor:
        return torch.randn(batch_size, LATENT_DIM, device=self.device)

    def generate(self, count: int) -> torch.Tensor | None:
        """Return ``count`` uint8 images from the generator in eval mode and the evaluation noise.

        Every call reseeds the evaluation generator, so image ``i`` always comes from the same z.
        Returns None when any generated pixel is not finite.
        """
        self._eval_rng.manual_seed(self.eval_seed)
        was_training = self.generator.training
        self.generator.eval()
        chunks = []
        try:
            with torch.no_grad():
                for start in range(0, count, self.eval_batch_size):
                    size = min(self.eval_batch_size, count - start)
                    z = torch.randn(size, LATENT_DIM, device=self.device, generator=self._eval_rng)
                    images = self.generator(z)
                    if not bool(torch.isfinite(images).all()):
                        return None
                    chunks.append(to_uint8(images).cpu())
        finally:
            self.generator.train(was_training)
        return torch.cat(chunks)

    def evaluate(self) -> dict[str, float]:
        """Return IS, FID and KID; FID and KID are infinite when the generator outputs NaN or inf."""
        images = self.generate(self.eval_samples)
        if images is None:
            return nonfinite_metrics()
        return self.metrics.compute(images, seed=self.eval_seed)

    def sample_grid(self) -> torch.Tensor | None:
        """Return a uint8 ``(3, H, W)`` grid of the first generated images, or None when disabled."""
        count = self.options["sample_grid_size"]
        if count == 0:
            return None
        images = self.generate(count)
        if images is None:
            return None
        return make_grid(images, nrow=max(1, int(math.sqrt(count))), padding=2)


_warned_sources: set[str] = set()


def default_reference_count(reference: ImageDataset) -> int:
    """Return the count that ``eval_reference_samples: null`` means: the split, at most 10,000.

    Logs a warning, once per split and process, when that is fewer than 10,000 images.
    """
    count = min(len(reference), DEFAULT_REFERENCE_LIMIT)
    if count < DEFAULT_REFERENCE_LIMIT and reference.source not in _warned_sources:
        _warned_sources.add(reference.source)
        logger.warning(
            "%s has only %d reference images, so FID and KID use %d instead of %d; FID is biased "
            "upward at small counts, so compare only values computed with the same count",
            reference.source, len(reference), count, DEFAULT_REFERENCE_LIMIT,
        )
    return count


def reference_subset(reference: ImageDataset, count: int, seed: int) -> torch.Tensor:
    """Return ``count`` reference images drawn without replacement with ``seed``.

    Raises:
        HarnessInputError: the reference split has fewer than ``count`` images.
    """
    available = len(reference)
    if count > available:
        raise HarnessInputError(
            f"{reference.source} has {available} reference images but the task option "
            f"eval_reference_samples is {count}; set eval_reference_samples to at most {available} "
            f"under train.task_options, or to null for the whole split"
        )
    if count == available:
        return reference.images
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(available, generator=generator)[:count]
    return reference.images[index]


class ImageTask(Task):
    """A task on RGB images of one size; subclasses give the settings and how data loads."""

    image_size: int
    architectures: tuple[str, ...]
    objective = "fid"
    mode = "min"
    metric_names = ("inception_score", "inception_score_std", "fid", "kid", "kid_std")
    needs_data = True
    reference_description: str

    def resolve(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        return resolve_options(self.name, setting, options, self.architectures)

    def validate_options(self, setting: Setting, options: dict[str, Any]) -> None:
        self.resolve(setting, options)

    def protocol(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        resolved = self.resolve(setting, options)
        return {
            "eval_sample_count": resolved["eval_samples"],
            "eval_reference_count": resolved["eval_reference_samples"],
            "eval_backbone": weights_identity(resolved["inception_weights"]).backbone,
            "eval_reference": self.reference_description,
            "eval_seed": resolved["eval_seed"],
        }

    def build_networks(self, setting: Setting, options: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
        """Return the setting's ``(generator, discriminator)`` on the CPU, without loading data."""
        resolved = self.resolve(setting, options)
        return build_networks(resolved["architecture"], self.image_size,
                              batch_norm=resolved["batch_norm"], filters=resolved["filters"])

    def load_split(self, data_root: Path | None, split: str, download: bool) -> ImageDataset:
        raise NotImplementedError

    def check_data(self, setting: Setting, data_root: Path | None, download: bool,
                   options: dict[str, Any] | None = None) -> None:
        """Load both splits and check that the options fit them and the Inception weights exist.

        With ``inception_weights: null`` the official weights are downloaded here, once, unless
        torch hub's cache has them, so that a machine without network access fails before any
        trial starts.
        """
        self.load_split(data_root, "train", download)
        reference = self.load_split(data_root, "test", download)
        if options is None:
            return

        resolved = self.resolve(setting, options)
        if resolved["eval_reference_samples"] is not None:
            reference_subset(reference, resolved["eval_reference_samples"], resolved["eval_seed"])

        if resolved["inception_weights"] is None:
            ensure_official_weights(f"train.task_options.{self.name}.inception_weights")

    def resolve_data_options(self, setting: Setting, data_root: Path | None, download: bool,
                             options: dict[str, Any]) -> dict[str, Any]:
        """Return ``options`` with ``eval_reference_samples: null`` replaced by the count it means."""
        resolved = self.resolve(setting, options)
        if resolved["eval_reference_samples"] is not None:
            return options
        reference = self.load_split(data_root, "test", download)
        return {**options, "eval_reference_samples": default_reference_count(reference)}

    def build(
        self,
        setting: Setting,
        options: dict[str, Any],
        data_root: Path | None,
        download: bool,
        device: torch.device,
    ) -> Game:
        resolved = self.resolve(setting, options)
        train = self.load_split(data_root, "train", download)
        reference = self.load_split(data_root, "test", download)
        if reference.split is None:
            logger.warning(
                "%s has no train/ and test/ folders, so the reference images are training images",
                reference.source,
            )
        return ImageGame(train, reference, self.image_size, resolved, device)
