"""Generator and discriminator networks of the image tasks: conv4, dcgan4 and the ResNets.

The JARE authors name their CIFAR-10 architectures conv4, dcgan4 and ResNet v1/v2; the CelebA
and ImageNet ResNets follow the same pattern at 64×64 and 128×128. Every generator maps
z ∈ R¹²⁸ to a 3×S×S image in [-1, 1]; every discriminator maps such an image to one logit per
image, shape ``(N,)``. The layers below are this harness's reading of those names:

conv4 (32×32)
    G  Linear(128 → 4·4·512) [+ BN] + ReLU, reshaped to 512×4×4
       3 × ConvTranspose2d(k4, s2, p1) [+ BN] + ReLU: 512 → 256 → 128 → 64     32×32
       Conv2d(64 → 3, k3, s1, p1) + tanh
    D  Conv2d(3 → 64, k3, s1, p1) + LeakyReLU(0.1)
       3 × Conv2d(k4, s2, p1) + LeakyReLU(0.1): 64 → 128 → 256 → 512            4×4
       flatten, Linear(4·4·512 → 1)

dcgan4 (32×32, 5×5 kernels, no batch norm)
    G  Linear(128 → 4·4·256) + ReLU, reshaped to 256×4×4
       ConvTranspose2d(k5, s2, p2, output_padding 1) + ReLU: 256 → 128 → 64     16×16
       ConvTranspose2d(64 → 3, k5, s2, p2, output_padding 1) + tanh             32×32
    D  3 × Conv2d(k5, s2, p2) + LeakyReLU(0.2): 3 → 64 → 128 → 256              4×4
       flatten, Linear(4·4·256 → 1)

ResNet (appendix Tables 2–5 of Nie and Patel 2019; M_f filters everywhere)
    G  Linear(128 → s₀·s₀·M_f), reshaped, then per upsampling
       ConvTranspose2d(M_f → M_f, k4, s2, p1) + ReLU and a ResBlock;
       v1 (CIFAR-10, Table 2): s₀ = 2, four upsamplings and the last one is
       ConvTranspose2d(M_f → 3) + tanh with no ResBlock;
       v2, CelebA, ImageNet (Tables 3–5): s₀ = 4, log₂(S/4) upsamplings, then
       Conv2d(M_f → 3, k3, s1, p1) + tanh
    D  per downsampling Conv2d(k4, s2, p1) + ReLU and a ResBlock, down to 2×2, then
       flatten, Linear(2·2·M_f → 1)
    ResBlock(x) = x + Conv3×3(ReLU(Conv3×3(ReLU(x)))), M_f channels throughout.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LATENT_DIM = 128


# ---------------------------------------------------------------------------------------------
# conv4


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
# dcgan4


class DCGAN4Generator(nn.Module):
    """The dcgan4 generator without batch norm: z ∈ R¹²⁸ to a 3×32×32 image in [-1, 1]."""

    def __init__(self, latent_dim: int = LATENT_DIM) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(latent_dim, 4 * 4 * 256), nn.ReLU())
        self.upsample = nn.Sequential(
            _up5(256, 128), nn.ReLU(),
            _up5(128, 64), nn.ReLU(),
            _up5(64, 3), nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, 256, 4, 4))


class DCGAN4Discriminator(nn.Module):
    """The dcgan4 discriminator without batch norm: a 3×32×32 image to one logit."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for in_channels, out_channels in ((3, 64), (64, 128), (128, 256)):
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=5, stride=2, padding=2),
                nn.LeakyReLU(0.2),
            ]
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(4 * 4 * 256, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).flatten(1)).squeeze(-1)


def _up5(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    # TensorFlow's 'SAME' transposed convolution with a 5×5 kernel and stride 2 doubles the size.
    return nn.ConvTranspose2d(
        in_channels, out_channels, kernel_size=5, stride=2, padding=2, output_padding=1
    )


# ---------------------------------------------------------------------------------------------
# ResNets


class ResBlock(nn.Module):
    """``x + Conv3×3(ReLU(Conv3×3(ReLU(x))))`` with the same channel count in and out."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class ResNetGenerator(nn.Module):
    """A ResNet generator from z ∈ R¹²⁸ to a 3×S×S image in [-1, 1].

    ``start_size`` is the side of the dense layer's output. With ``final_conv`` the last step
    is a 3×3 convolution to RGB (Tables 3–5); without it, the last upsampling outputs RGB
    directly (Table 2).
    """

    def __init__(
        self,
        image_size: int,
        filters: int,
        start_size: int,
        final_conv: bool,
        latent_dim: int = LATENT_DIM,
    ) -> None:
        super().__init__()
        upsamplings = _doublings(start_size, image_size)
        self.filters = filters
        self.start_size = start_size
        self.project = nn.Linear(latent_dim, start_size * start_size * filters)

        layers: list[nn.Module] = []
        hidden_upsamplings = upsamplings if final_conv else upsamplings - 1
        for _ in range(hidden_upsamplings):
            layers += [_up4(filters, filters), nn.ReLU(), ResBlock(filters)]
        if final_conv:
            layers += [nn.Conv2d(filters, 3, kernel_size=3, padding=1), nn.Tanh()]
        else:
            layers += [_up4(filters, 3), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(-1, self.filters, self.start_size, self.start_size)
        return self.upsample(x)


class ResNetDiscriminator(nn.Module):
    """A ResNet discriminator from a 3×S×S image to one logit, downsampling to 2×2."""

    def __init__(self, image_size: int, filters: int) -> None:
        super().__init__()
        downsamplings = _doublings(2, image_size)
        layers: list[nn.Module] = []
        in_channels = 3
        for _ in range(downsamplings):
            layers += [
                nn.Conv2d(in_channels, filters, kernel_size=4, stride=2, padding=1),
                nn.ReLU(),
                ResBlock(filters),
            ]
            in_channels = filters
        self.features = nn.Sequential(*layers)
        self.classify = nn.Linear(2 * 2 * filters, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).flatten(1)).squeeze(-1)


def _up4(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1)


def _doublings(start: int, end: int) -> int:
    """Return how many times ``start`` doubles to reach ``end``; both must be powers of two."""
    count = math.log2(end / start)
    if count < 1 or not count.is_integer():
        raise ValueError(f"image size {end} is not {start} times a power of two")
    return int(count)


# ---------------------------------------------------------------------------------------------
# Lookup by name


ARCHITECTURES = ("conv4", "dcgan4", "resnet_v1", "resnet_v2", "resnet")
"""Architecture names; ``resnet`` is the CelebA and ImageNet family, sized by the image."""

ARCHITECTURE_IMAGE_SIZES = {"conv4": (32,), "dcgan4": (32,), "resnet_v1": (32,), "resnet_v2": (32,),
                            "resnet": (64, 128)}


def build_networks(
    architecture: str, image_size: int, *, batch_norm: bool = False, filters: int = 64
) -> tuple[nn.Module, nn.Module]:
    """Return a new ``(generator, discriminator)`` pair, initialized from torch's global RNG.

    ``batch_norm`` applies to the conv4 generator only; ``filters`` (M_f) to the ResNets only.

    Raises:
        ValueError: an unknown architecture, or an image size the architecture does not take.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    if image_size not in ARCHITECTURE_IMAGE_SIZES[architecture]:
        sizes = ", ".join(str(size) for size in ARCHITECTURE_IMAGE_SIZES[architecture])
        raise ValueError(f"architecture {architecture} takes images of size {sizes}, not {image_size}")

    if architecture == "conv4":
        return Conv4Generator(batch_norm=batch_norm), Conv4Discriminator()
    if architecture == "dcgan4":
        return DCGAN4Generator(), DCGAN4Discriminator()
    final_conv = architecture != "resnet_v1"
    start_size = 2 if architecture == "resnet_v1" else 4
    generator = ResNetGenerator(image_size, filters, start_size, final_conv)
    return generator, ResNetDiscriminator(image_size, filters)


def parameter_count(module: nn.Module) -> int:
    """Return the number of trainable parameter entries of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
