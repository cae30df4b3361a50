"""CIFAR-10 at 32×32: settings A–F of the JARE authors' code, with IS, FID and KID.

The settings follow the authors' code (their jobs 0–5): Adam (lr 1e-4, β = (0.5, 0.999)) or
RMSProp (lr 1e-4), batch 64, z ~ N(0, I₁₂₈), 500,000 steps and the non-saturating loss.

    A  conv4 with batch norm in the generator, Adam
    B  conv4 without batch norm, Adam
    C  dcgan4 without batch norm (5×5 kernels), Adam
    D  dcgan4 without batch norm, RMSProp
    E  ResNet v1 (appendix Table 2), Adam
    F  ResNet v2 (appendix Table 3), Adam

SN-GAN trains the same six with spectral normalization on every discriminator layer; the
``sngan`` rule adds it, so the settings do not change. ``harness.tasks.networks`` describes the
layers. The data comes from a download of the official archive (the one torchvision fetches,
checked against the same md5), an extracted ``cifar-10-batches-py`` folder, or a folder or zip of
class folders (see ``harness.images.load_cifar10``).
"""

from __future__ import annotations

from pathlib import Path

from harness.images import ImageDataset, load_cifar10
from harness.tasks.base import Setting
from harness.tasks.image_task import DEFAULT_OPTIONS, ImageTask, to_signed_unit
from harness.tasks.networks import LATENT_DIM, Conv4Discriminator, Conv4Generator

IMAGE_SIZE = 32
ARCHITECTURES = ("conv4", "dcgan4", "resnet_v1", "resnet_v2")

__all__ = [
    "ARCHITECTURES", "DEFAULT_OPTIONS", "IMAGE_SIZE", "LATENT_DIM", "Cifar10Task",
    "Conv4Discriminator", "Conv4Generator", "to_signed_unit",
]


def _setting(name: str, description: str, optimizer: str, **options) -> Setting:
    return Setting(
        name=name,
        description=description,
        optimizer=optimizer,
        lr=1e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        steps=500_000,
        loss="nonsaturating",
        options=options,
    )


SETTINGS = {
    setting.name: setting
    for setting in (
        _setting("A", "conv4 with batch norm in G, Adam", "adam", architecture="conv4", batch_norm=True),
        _setting("B", "conv4 without batch norm, Adam", "adam", architecture="conv4", batch_norm=False),
        _setting("C", "dcgan4 without batch norm (5×5 kernels), Adam", "adam", architecture="dcgan4"),
        _setting("D", "dcgan4 without batch norm (5×5 kernels), RMSProp", "rmsprop", architecture="dcgan4"),
        _setting("E", "ResNet v1 (appendix Table 2), Adam", "adam", architecture="resnet_v1"),
        _setting("F", "ResNet v2 (appendix Table 3), Adam", "adam", architecture="resnet_v2"),
    )
}


class Cifar10Task(ImageTask):
    name = "cifar10"
    settings = SETTINGS
    default_setting = "A"
    image_size = IMAGE_SIZE
    architectures = ARCHITECTURES
    reference_description = "CIFAR-10 test split (train images when the data has no test/ folder)"

    def load_split(self, data_root: Path | None, split: str, download: bool) -> ImageDataset:
        return load_cifar10(data_root, split, download=download)
