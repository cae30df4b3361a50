"""The image networks: output shapes and parameter counts derived by hand from the layer lists."""

from __future__ import annotations

import pytest
import torch

from harness.tasks.networks import (
    LATENT_DIM,
    DCGAN4Discriminator,
    DCGAN4Generator,
    ResBlock,
    build_networks,
    parameter_count,
)

F = 64  # M_f, the ResNets' filter count


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


RESBLOCK = 2 * conv(F, F, 3)


def test_dcgan4_parameter_counts():
    generator = (128 * 4096 + 4096) + conv(256, 128, 5) + conv(128, 64, 5) + conv(64, 3, 5)
    discriminator = conv(3, 64, 5) + conv(64, 128, 5) + conv(128, 256, 5) + (4096 + 1)

    assert parameter_count(DCGAN4Generator()) == generator
    assert parameter_count(DCGAN4Discriminator()) == discriminator


@pytest.mark.parametrize(
    ("architecture", "size", "dense_side", "upsamplings", "final_conv"),
    [("resnet_v1", 32, 2, 4, False), ("resnet_v2", 32, 4, 3, True), ("resnet", 64, 4, 4, True),
     ("resnet", 128, 4, 5, True)],
)
def test_resnet_generator_parameter_count(architecture, size, dense_side, upsamplings, final_conv):
    dense = LATENT_DIM * dense_side**2 * F + dense_side**2 * F
    if final_conv:
        body = upsamplings * (conv(F, F, 4) + RESBLOCK) + conv(F, 3, 3)
    else:
        body = (upsamplings - 1) * (conv(F, F, 4) + RESBLOCK) + conv(F, 3, 4)

    generator, _ = build_networks(architecture, size)

    assert parameter_count(generator) == dense + body
    assert generator(torch.randn(2, LATENT_DIM)).shape == (2, 3, size, size)


@pytest.mark.parametrize(("architecture", "size", "downsamplings"),
                         [("resnet_v1", 32, 4), ("resnet_v2", 32, 4), ("resnet", 64, 5), ("resnet", 128, 6)])
def test_resnet_discriminator_parameter_count(architecture, size, downsamplings):
    expected = conv(3, F, 4) + (downsamplings - 1) * conv(F, F, 4) + downsamplings * RESBLOCK + (4 * F + 1)

    _, discriminator = build_networks(architecture, size)

    assert parameter_count(discriminator) == expected
    assert discriminator(torch.rand(3, 3, size, size) * 2 - 1).shape == (3,)


def test_resblock_is_identity_when_residual_zero():
    block = ResBlock(4)
    torch.nn.init.zeros_(block.residual[-1].weight)
    torch.nn.init.zeros_(block.residual[-1].bias)
    x = torch.randn(2, 4, 5, 5)

    assert torch.equal(block(x), x)


@pytest.mark.parametrize(("architecture", "size"), [("conv4", 64), ("resnet", 32), ("resnet_v1", 64), ("mlp", 32)])
def test_architecture_size_mismatch_rejected(architecture, size):
    with pytest.raises(ValueError, match=architecture):
        build_networks(architecture, size)


def test_generators_output_in_unit_range():
    for architecture in ("conv4", "dcgan4", "resnet_v1", "resnet_v2"):
        generator, _ = build_networks(architecture, 32)
        images = generator(torch.randn(3, LATENT_DIM) * 5)
        assert images.min() >= -1.0
        assert images.max() <= 1.0
