"""CelebA at 64×64 and ImageNet at 128×128: the ResNets of appendix Tables 4 and 5.

Both read a folder or zip of class folders (``harness.images.load_image_folder``) whose images
already have the task's size; a single class folder is fine for CelebA. With ``train/`` and
``test/`` split folders the metrics compare with ``test/``, otherwise with training images.
The training setup is the CIFAR-10 one (Adam, lr 1e-4, β = (0.5, 0.999), batch 64, z ∈ R¹²⁸,
non-saturating loss), as the appendix describes.

NOTE: the whole training split is decoded into memory as uint8. That fits CelebA (about
2.5 GB at 64×64) but not all of ImageNet at 128×128 (about 59 GB), so use an ImageNet subset.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import DataError
from harness.images import ImageDataset, load_image_folder
from harness.tasks.base import Setting
from harness.tasks.image_task import ImageTask


def _default_setting(description: str) -> Setting:
    return Setting(
        name="default",
        description=description,
        optimizer="adam",
        lr=1e-4,
        betas=(0.5, 0.999),
        batch_size=64,
        steps=500_000,
        loss="nonsaturating",
        options={"architecture": "resnet"},
    )


class _ImageFolderTask(ImageTask):
    architectures = ("resnet",)
    default_setting = "default"

    def load_split(self, data_root: Path | None, split: str, download: bool) -> ImageDataset:
        if data_root is None:
            raise DataError(
                f"{self.name} data root not set: data.root is empty. Point data.root at a folder "
                f"or .zip file of class folders with {self.image_size}×{self.image_size} images."
            )
        if download:
            raise DataError(
                f"{self.name} cannot be downloaded: set data.download: false and point data.root "
                f"at a folder or .zip file of {self.image_size}×{self.image_size} images."
            )
        return load_image_folder(Path(data_root), split, (self.image_size, self.image_size))


class CelebA64Task(_ImageFolderTask):
    name = "celeba64"
    image_size = 64
    settings = {"default": _default_setting("ResNet of appendix Table 4 at 64×64, Adam")}
    reference_description = "test/ split of the image folder (train images when it has none)"


class ImageNet128Task(_ImageFolderTask):
    name = "imagenet128"
    image_size = 128
    settings = {"default": _default_setting("ResNet of appendix Table 5 at 128×128, Adam")}
    reference_description = "test/ split of the image folder (train images when it has none)"
