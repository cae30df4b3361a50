"""The interface between the generic trainer and a task: data, networks, settings and metrics."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

OptimizerName = Literal["sgd", "adam", "rmsprop"]
LossName = Literal["saturating", "nonsaturating"]


@dataclass(frozen=True)
class Setting:
    """One named configuration of a task: its networks, optimizer and training defaults.

    ``options`` holds the task-specific values (for example μ and σ of the Gaussian task, or
    the CIFAR-10 architecture name); the spec can override them under ``task_options``.
    """

    name: str
    description: str
    optimizer: OptimizerName
    lr: float
    batch_size: int
    steps: int
    loss: LossName
    betas: tuple[float, float] = (0.5, 0.999)
    options: dict[str, Any] = field(default_factory=dict)


class Game(ABC):
    """A built task for one trial: both networks on a device, data sampling and evaluation."""

    generator: nn.Module
    discriminator: nn.Module
    device: torch.device

    @abstractmethod
    def sample_real(self, batch_size: int) -> torch.Tensor:
        """Return a batch of real samples on ``device``, drawn with torch's global RNG."""

    @abstractmethod
    def sample_latent(self, batch_size: int) -> torch.Tensor:
        """Return a batch of generator inputs on ``device``, drawn with torch's global RNG."""

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """Return the task's metrics for the current networks; must not change training RNG."""

    def sample_grid(self) -> torch.Tensor | None:
        """Return a uint8 ``(3, H, W)`` image of generated samples, or None for non-image tasks."""
        return None

    def write_artifacts(self, folder: Path, title: str) -> list[Path]:
        """Write files that show the trained networks into ``folder``; return their paths.

        The trainer calls this once after a trial's last step, and the tracker logs every
        returned file to the trial's MLflow run. ``title`` names the trial and step for plots.
        Must not change training RNG. The default writes nothing.
        """
        return []


class Task(ABC):
    """A benchmark problem: named settings plus how to build a ``Game`` for one of them."""

    name: str
    settings: dict[str, Setting]
    default_setting: str
    objective: str
    """Name of the metric the search optimizes (a key of ``Game.evaluate``)."""
    mode: Literal["min", "max"]
    metric_names: tuple[str, ...]
    needs_data: bool = False

    def setting(self, name: str) -> Setting:
        from harness.errors import HarnessInputError

        try:
            return self.settings[name]
        except KeyError:
            known = ", ".join(self.settings)
            raise HarnessInputError(
                f"unknown setting {name!r} for task {self.name!r}; known settings: {known}"
            ) from None

    def validate_options(self, setting: Setting, options: dict[str, Any]) -> None:
        """Raise ``HarnessInputError`` for an option the setting does not have."""
        from harness.errors import HarnessInputError

        unknown = sorted(set(options) - set(setting.options))
        if unknown:
            known = ", ".join(setting.options) or "none"
            raise HarnessInputError(
                f"unknown {self.name} option(s) {', '.join(unknown)}; known options: {known}"
            )

    def protocol(self, setting: Setting, options: dict[str, Any]) -> dict[str, Any]:
        """Return the evaluation protocol recorded beside every metric row."""
        return {"eval_sample_count": None, "eval_backbone": None, "eval_reference": None}

    def check_data(self, setting: Setting, data_root: Path | None, download: bool,
                   options: dict[str, Any] | None = None) -> None:
        """Raise ``DataError`` naming the path and the fix when the data cannot be loaded.

        ``options`` are the spec's task options, for checks that depend on them.
        """

    def resolve_data_options(self, setting: Setting, data_root: Path | None, download: bool,
                             options: dict[str, Any]) -> dict[str, Any]:
        """Return ``options`` with the values that depend on the data filled in; by default unchanged."""
        return options

    def build_networks(self, setting: Setting, options: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
        """Return the setting's ``(generator, discriminator)`` on the CPU, without loading data."""
        game = self.build(setting, options, None, False, torch.device("cpu"))
        return game.generator, game.discriminator

    @abstractmethod
    def build(
        self,
        setting: Setting,
        options: dict[str, Any],
        data_root: Path | None,
        download: bool,
        device: torch.device,
    ) -> Game:
        """Build networks (initialized from torch's global RNG) and data for one trial."""
