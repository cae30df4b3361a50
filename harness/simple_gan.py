"""The simple vanilla GAN of Nie and Patel (2019), built so that its equilibrium Jacobian is exact.

Data ``x ~ N(v, σ²I)`` in n dimensions, generator ``G_φ(z) = φ + z`` with ``z ~ N(0, σ²I)``, and
either the linear discriminator ``D_θ(x) = θᵀx`` or the full-rank one ``D_θ(x) = θ·eˣ`` (n = 1).
The equilibrium is ``φ* = v``, ``θ* = 0``.

At the equilibrium ``D = 0`` and both players' gradients vanish, so the Jacobian of every update
rule depends on the samples only through their first two moments (the linear discriminator) or
through ``eˣ`` at x = v (the full-rank one with σ = 0). The games here therefore use 2n fixed
points ``v ± σ√n·eᵢ``, whose mean is exactly v and whose covariance is exactly σ²I, and the
Jacobian autograd takes on them equals the one under the Gaussian expectations.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from harness.errors import HarnessInputError
from harness.jacobian import Spectrum, UpdateField, spectrum_of, tolerance_for
from harness.tasks.base import Game
from harness.tasks.gaussian import ShiftGenerator
from methods import UnknownMethodError, get_method

DiscriminatorKind = Literal["linear", "exp"]
DISCRIMINATORS = ("linear", "exp")


class LinearLogit(nn.Module):
    """``D_θ(x) = θᵀx`` as a bias-free ``nn.Linear``, so that spectral normalization applies to θ."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(-1)


class ExpDiscriminator(nn.Module):
    """``D_θ(x) = θᵀeˣ`` with the exponential taken entry by entry; ``θ·eˣ`` for n = 1."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.exp() @ self.theta


class FixedSampleGame(Game):
    """A game whose real and latent batches are always the same fixed sample sets."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, real: torch.Tensor,
                 latent: torch.Tensor) -> None:
        if len(real) != len(latent):
            raise ValueError(f"real ({len(real)}) and latent ({len(latent)}) sample sets differ in size")
        self.generator = generator
        self.discriminator = discriminator
        self.real = real
        self.latent = latent
        self.device = real.device

    @property
    def batch_size(self) -> int:
        return len(self.real)

    def sample_real(self, batch_size: int) -> torch.Tensor:
        self._check_size(batch_size)
        return self.real

    def sample_latent(self, batch_size: int) -> torch.Tensor:
        self._check_size(batch_size)
        return self.latent

    def evaluate(self) -> dict[str, float]:
        return {}

    def _check_size(self, batch_size: int) -> None:
        if batch_size != self.batch_size:
            raise ValueError(f"this game has fixed sets of {self.batch_size} samples, not {batch_size}")


def moment_matched_points(mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return the 2n points ``mean ± σ√n·eᵢ``: their mean is ``mean``, their covariance σ²I."""
    dim = mean.numel()
    offsets = sigma * math.sqrt(dim) * torch.eye(dim, dtype=mean.dtype, device=mean.device)
    return torch.cat([mean + offsets, mean - offsets])


def simple_gan(v: list[float], sigma: float, discriminator: DiscriminatorKind = "linear",
               method_name: str = "simgd") -> FixedSampleGame:
    """Build the simple GAN in float64 at its equilibrium ``φ = v``, ``θ = 0``.

    The method's ``prepare_discriminator`` is applied, as in training, so that ``sngan`` gets
    its spectral normalization. Raises ``HarnessInputError`` for inputs outside the example.
    """
    check_example(v, sigma, discriminator)
    method = _method(method_name)
    dim = len(v)
    mean = torch.tensor(v, dtype=torch.float64)

    generator = ShiftGenerator(dim).to(torch.float64)
    with torch.no_grad():
        generator.phi.copy_(mean)
    critic: nn.Module = LinearLogit(dim) if discriminator == "linear" else ExpDiscriminator(dim)
    critic = critic.to(torch.float64)
    with torch.no_grad():
        for parameter in critic.parameters():
            parameter.zero_()
    critic = method.prepare_discriminator(critic)

    real = moment_matched_points(mean, sigma)
    latent = moment_matched_points(torch.zeros_like(mean), sigma)
    return FixedSampleGame(generator, critic, real, latent)


def check_example(v: list[float], sigma: float, discriminator: str) -> None:
    """Raise ``HarnessInputError`` for a point, σ or discriminator the example does not cover."""
    if discriminator not in DISCRIMINATORS:
        raise HarnessInputError(f"unknown discriminator {discriminator!r}; known: {', '.join(DISCRIMINATORS)}")
    if not v:
        raise HarnessInputError("v is empty: give the data mean with at least one entry, e.g. --v 0,2")
    if not all(math.isfinite(x) for x in v):
        raise HarnessInputError(f"v must be finite, got {v}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise HarnessInputError(f"sigma must be finite and ≥ 0, got {sigma}")
    if discriminator == "exp" and len(v) != 1:
        raise HarnessInputError(
            f"v has {len(v)} entries but the exp discriminator D_θ(x) = θ·e^x is defined for n = 1; "
            "give one value, e.g. --v 1"
        )
    if discriminator == "exp" and sigma != 0:
        raise HarnessInputError(
            f"the exp discriminator needs sigma = 0, got {sigma}: for σ > 0 its Jacobian depends on "
            "E[e^(2x)], which a sample set with only the first two moments of x does not reproduce"
        )


def equilibrium_jacobian(method_name: str, gamma: float, v: list[float], sigma: float,
                         discriminator: DiscriminatorKind = "linear") -> tuple[torch.Tensor, Spectrum]:
    """Return the exact Jacobian of a rule's update field at the simple GAN's equilibrium, and its spectrum.

    The parameter order is ``w = (φ, θ)``. Raises ``JacobianError`` where the rule has no finite
    Jacobian there, for example spectral normalization at θ = 0.
    """
    game = simple_gan(v, sigma, discriminator, method_name)
    return game_jacobian(method_name, gamma, game)


def game_jacobian(method_name: str, gamma: float, game: FixedSampleGame) -> tuple[torch.Tensor, Spectrum]:
    """Return the dense Jacobian of a rule's update field on a fixed-sample game, and its spectrum."""
    if not (math.isfinite(gamma) and gamma >= 0):
        raise HarnessInputError(f"gamma must be finite and ≥ 0, got {gamma}")
    method = _method(method_name)
    field = UpdateField(method, game, gamma, game.batch_size, loss="saturating")
    matrix = field.jacobian().detach()
    return matrix, spectrum_of(matrix.numpy(), tolerance_for(matrix.dtype))


class MixedShiftGenerator(nn.Module):
    """``G_φ(z) = z + Bφ`` with a fixed matrix B that maps k parameters into n dimensions."""

    def __init__(self, mixing: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mixing", mixing)
        self.phi = nn.Parameter(torch.zeros(mixing.shape[1], dtype=mixing.dtype))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.mixing @ self.phi


class FeatureLogit(nn.Module):
    """``D_θ(x) = θᵀCx`` with a fixed matrix C of m features of x."""

    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("features", features)
        self.theta = nn.Parameter(torch.zeros(features.shape[0], dtype=features.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.features.T @ self.theta


def linear_game(mixing: torch.Tensor, features: torch.Tensor, phi_star: torch.Tensor,
                sigma: float, method_name: str = "simgd") -> FixedSampleGame:
    """Build ``G_φ(z) = z + Bφ`` against ``D_θ(x) = θᵀCx`` at its equilibrium ``φ = φ*``, ``θ = 0``.

    The data are the moment-matched points of ``N(Bφ*, σ²I)``. At the equilibrium the SimGD
    Jacobian is ``[[0, −P], [Pᵀ, Q]]`` with ``P = ∇²_φθ f = −½BᵀCᵀ`` and
    ``Q = ∇²_θθ f = −½C(σ²I + Bφ*φ*ᵀBᵀ)Cᵀ``, so random B and C give a random P and Q.
    """
    mixing = mixing.to(torch.float64)
    features = features.to(torch.float64)
    if mixing.shape[1] != phi_star.numel() or features.shape[1] != mixing.shape[0]:
        raise HarnessInputError(
            f"shapes do not fit: B is {tuple(mixing.shape)}, C is {tuple(features.shape)} and φ* has "
            f"{phi_star.numel()} entries; B must be n×k, C m×n and φ* of length k"
        )
    generator = MixedShiftGenerator(mixing)
    with torch.no_grad():
        generator.phi.copy_(phi_star.to(torch.float64))
    critic = _method(method_name).prepare_discriminator(FeatureLogit(features))

    mean = mixing @ phi_star.to(torch.float64)
    real = moment_matched_points(mean, sigma)
    latent = moment_matched_points(torch.zeros_like(mean), sigma)
    return FixedSampleGame(generator, critic, real, latent)


def _method(name: str):
    try:
        return get_method(name)
    except UnknownMethodError as error:
        raise HarnessInputError(str(error)) from None
