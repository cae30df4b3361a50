"""The 2-D Gaussian task: an affine generator against a linear discriminator.

Data ``x ~ N((0, μ), σ²I)``, generator ``G_φ(z) = z + φ`` with ``z ~ N(0, σ²I)``, discriminator
``D_θ(x) = θᵀx``. The equilibrium is ``φ* = (0, μ)``, ``θ* = 0``; the metric is the Euclidean
distance of ``(φ, θ)`` to it. Defaults follow the JARE authors' code: μ = 2, σ = 0.7, SGD with
lr 1e-3, batch 128, 15,000 steps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.tasks.base import Game, Setting, Task


class ShiftGenerator(nn.Module):
    """``G_φ(z) = z + φ``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.phi = nn.Parameter(torch.zeros(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.phi


class LinearDiscriminator(nn.Module):
    """``D_θ(x) = θᵀx``, a linear logit without bias."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.theta


class GaussianGame(Game):
    def __init__(self, mu: float, sigma: float, init_std: float, device: torch.device) -> None:
        self.device = device
        self.sigma = sigma
        self.mean = torch.tensor([0.0, mu], device=device)
        self.generator = ShiftGenerator(2).to(device)
        self.discriminator = LinearDiscriminator(2).to(device)

        with torch.no_grad():
            self.generator.phi.normal_(0.0, init_std)
            self.discriminator.theta.normal_(0.0, init_std)

    def sample_real(self, batch_size: int) -> torch.Tensor:
        return self.mean + self.sigma * torch.randn(batch_size, 2, device=self.device)

    def sample_latent(self, batch_size: int) -> torch.Tensor:
        return self.sigma * torch.randn(batch_size, 2, device=self.device)

    def evaluate(self) -> dict[str, float]:
        phi = self.generator.phi.detach()
        theta = self.discriminator.theta.detach()
        squared = (phi - self.mean).pow(2).sum() + theta.pow(2).sum()
        return {"distance_to_equilibrium": math.sqrt(float(squared))}

    def write_artifacts(self, folder, title):
        from harness.artifacts import write_toy_samples

        return write_toy_samples(self, folder, title, reference=self.mean.cpu().double().numpy()[None, :],
                                 reference_label="data mean")


def _setting(name: str, mu: float, sigma: float) -> Setting:
    return Setting(
        name=name,
        description=f"data N((0, {mu}), {sigma}²I), SGD",
        optimizer="sgd",
        lr=1e-3,
        batch_size=128,
        steps=15_000,
        loss="saturating",
        options={"mu": mu, "sigma": sigma, "init_std": 1.0},
    )


class GaussianTask(Task):
    name = "gaussian"
    settings = {
        "default": _setting("default", mu=2.0, sigma=0.7),
        **{f"mu{m:g}": _setting(f"mu{m:g}", mu=m, sigma=0.2) for m in (1.0, 2.0, 4.0, 6.0)},
        # With mu2 (σ = 0.2) and default (σ = 0.7), the σ axis at μ = 2.
        **{f"sigma{s:g}": _setting(f"sigma{s:g}", mu=2.0, sigma=s) for s in (0.1, 0.5, 1.0)},
    }
    default_setting = "default"
    objective = "distance_to_equilibrium"
    mode = "min"
    metric_names = ("distance_to_equilibrium",)

    def protocol(self, setting, options):
        return {"eval_sample_count": 0, "eval_backbone": "none", "eval_reference": "analytic equilibrium"}

    def build(self, setting, options: dict[str, Any], data_root, download, device) -> Game:
        values = {**setting.options, **options}
        return GaussianGame(values["mu"], values["sigma"], values["init_std"], device)
