"""One trial's full configuration: what the sweep hands to the trainer, as plain values."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrialConfig:
    """Everything the trainer needs for one run; every field is a JSON-compatible value."""

    method: str
    task: str
    setting: str
    seed: int
    gamma: float
    lr_g: float
    lr_d: float
    steps: int
    batch_size: int
    eval_every: int
    loss: str
    optimizer: str
    betas: tuple[float, float]
    task_options: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    download: bool = False
    device: str = "auto"
    sweep_id: str = ""
    config_id: str = ""
    """Identifies one sampled configuration; the trials of its seeds share it."""
    spectrum_every: int | None = None
    """Steps between Jacobian spectra in the result rows; None logs none."""
    spectrum_eigenvalues: int = 4

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrialConfig:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        known["betas"] = tuple(known["betas"])
        return cls(**known)

    @property
    def run_name(self) -> str:
        return f"{self.method}/{self.task}-{self.setting}/seed{self.seed}"
