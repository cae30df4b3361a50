"""The 8-Gaussian ring: a mixture of eight Gaussians on a circle, fit by MLPs.

Modes sit at radius ``r`` on angles ``2πk/8`` with standard deviation σ. Generator and
discriminator are MLPs with four hidden layers of 256 ReLU units; ``z ~ N(0, I₆₄)``. Defaults
follow the JARE authors' code: r = 2, σ = 0.06, RMSProp lr 1e-4, batch 128, 20,000 steps.

Metrics on ``eval_samples`` generated points: a sample is high quality when it lies within 3σ
of its nearest mode; a mode is covered when at least ``min_mode_samples`` high-quality samples
fall on it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from harness.tasks.base import Game, Setting, Task

LATENT_DIM = 64
HIDDEN = 256
DEPTH = 4
NUM_MODES = 8


def mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(DEPTH):
        layers += [nn.Linear(width, HIDDEN), nn.ReLU()]
        width = HIDDEN
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def ring_centers(radius: float, device: torch.device | None = None) -> torch.Tensor:
    angles = torch.arange(NUM_MODES, dtype=torch.float32) * (2 * math.pi / NUM_MODES)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).to(device)


def mode_metrics(
    samples: torch.Tensor, centers: torch.Tensor, sigma: float, min_mode_samples: int
) -> dict[str, float]:
    """Return modes covered and the high-quality fraction of ``samples`` (3σ rule)."""
    distances = torch.cdist(samples, centers)
    nearest_distance, nearest_mode = distances.min(dim=1)
    high_quality = nearest_distance <= 3 * sigma
    counts = torch.bincount(nearest_mode[high_quality], minlength=len(centers))
    return {
        "modes_covered": float((counts >= min_mode_samples).sum()),
        "high_quality_fraction": float(high_quality.float().mean()),
    }


class MixtureGame(Game):
    def __init__(self, options: dict[str, Any], device: torch.device) -> None:
        self.device = device
        self.sigma = float(options["sigma"])
        self.eval_samples = int(options["eval_samples"])
        self.min_mode_samples = int(options["min_mode_samples"])
        self.centers = ring_centers(float(options["radius"]), device)
        self.generator = mlp(LATENT_DIM, 2).to(device)
        self.discriminator = Discriminator().to(device)
        self._eval_rng = torch.Generator(device=device)
        self._eval_rng.manual_seed(int(options.get("eval_seed", 0)))

    def sample_real(self, batch_size: int) -> torch.Tensor:
        modes = torch.randint(NUM_MODES, (batch_size,), device=self.device)
        noise = self.sigma * torch.randn(batch_size, 2, device=self.device)
        return self.centers[modes] + noise

    def sample_latent(self, batch_size: int) -> torch.Tensor:
        return torch.randn(batch_size, LATENT_DIM, device=self.device)

    def generate(self, count: int, rng: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(count, LATENT_DIM, device=self.device, generator=rng)
        with torch.no_grad():
            return self.generator(z)

    def evaluate(self) -> dict[str, float]:
        # A fixed evaluation noise stream keeps the training RNG untouched and makes metrics
        # comparable across steps.
        self._eval_rng.manual_seed(self._eval_rng.initial_seed())
        samples = self.generate(self.eval_samples, self._eval_rng)
        if not torch.isfinite(samples).all():
            return {"modes_covered": 0.0, "high_quality_fraction": 0.0}
        return mode_metrics(samples, self.centers, self.sigma, self.min_mode_samples)

    def write_artifacts(self, folder, title):
        from harness.artifacts import write_toy_samples

        return write_toy_samples(self, folder, title, reference=self.centers.cpu().double().numpy(),
                                 reference_label="mode centres")


def _setting(name: str, radius: float) -> Setting:
    return Setting(
        name=name,
        description=f"8 Gaussians on a ring of radius {radius:g}, RMSProp",
        optimizer="rmsprop",
        lr=1e-4,
        batch_size=128,
        steps=20_000,
        loss="saturating",
        options={
            "radius": radius,
            "sigma": 0.06,
            "eval_samples": 2500,
            "min_mode_samples": 20,
        },
    )


class MixtureTask(Task):
    name = "mog"
    settings = {"r2": _setting("r2", 2.0), "r10": _setting("r10", 10.0)}
    default_setting = "r2"
    objective = "high_quality_fraction"
    mode = "max"
    metric_names = ("modes_covered", "high_quality_fraction")

    def protocol(self, setting, options):
        values = {**setting.options, **options}
        return {
            "eval_sample_count": int(values["eval_samples"]),
            "eval_backbone": "none",
            "eval_reference": f"ring centres, 3 sigma, {values['min_mode_samples']} samples per mode",
        }

    def build(self, setting, options: dict[str, Any], data_root, download, device) -> Game:
        return MixtureGame({**setting.options, **options}, device)
