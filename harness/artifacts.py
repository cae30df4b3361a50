"""Files a trial writes at its end for MLflow: sample scatter plots with density for 2-D tasks.

A game writes its own files through ``Game.write_artifacts``. The trainer calls it after the
last step and lists the paths under ``artifacts`` in the final result row. The tracker then
logs each listed file to the trial's child run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from harness.tasks.base import Game

logger = logging.getLogger(__name__)

SCATTER_FILE = "sample_scatter.png"
SCATTER_SAMPLES = 1000
"""Points per panel; enough for a smooth density, few enough for a legible scatter."""
SCATTER_SEED = 0


def draw_samples(game: Game, count: int, seed: int = SCATTER_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``count`` real and generated samples from a fixed seed; training RNG is left as it was."""
    # NOTE: the tests cover only the CPU branch; on CUDA, fork_rng also saves and restores the
    # generator of the game's device.
    devices = [game.device] if game.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=game.device.type):
        torch.manual_seed(seed)
        real = game.sample_real(count)
        with torch.no_grad():
            generated = game.generator(game.sample_latent(count))
    return real.detach().cpu().double().numpy(), generated.detach().cpu().double().numpy()


def point_density(points: np.ndarray) -> np.ndarray | None:
    """Return a Gaussian kernel density estimate at each of ``points`` (shape ``(n, 2)``).

    Returns None when the points do not span two dimensions (fewer than three points, or all
    on one line), where the estimate has a singular covariance.
    """
    from scipy.stats import gaussian_kde

    if len(points) < 3:
        return None
    try:
        return gaussian_kde(points.T)(points.T)
    except np.linalg.LinAlgError:
        return None


def write_sample_scatter(real: np.ndarray, generated: np.ndarray, path: Path, title: str,
                         reference: np.ndarray | None = None, reference_label: str = "reference") -> Path:
    """Write a PNG with the real and generated 2-D samples side by side, coloured by density.

    Both panels share their axes, so a shifted or collapsed generator shows as such.
    ``reference`` points (the data's mean or its mixture centres) are marked in both panels.
    Non-finite generated samples are left out and counted in the panel's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = generated[np.isfinite(generated).all(axis=1)]
    low, high = _limits(np.concatenate([real, finite]))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True, constrained_layout=True)

    dropped = len(generated) - len(finite)
    panels = [(axes[0], real, "data"),
              (axes[1], finite, "generator" + (f" ({dropped} non-finite samples left out)" if dropped else ""))]
    for axis, points, name in panels:
        density = point_density(points)
        if density is None:
            axis.scatter(points[:, 0], points[:, 1], s=4, color="tab:blue")
        else:
            # Drawing the densest points last keeps them visible on top.
            order = np.argsort(density)
            dots = axis.scatter(points[order, 0], points[order, 1], c=density[order], s=4, cmap="viridis")
            fig.colorbar(dots, ax=axis, label="density", shrink=0.85)
        if reference is not None:
            axis.scatter(reference[:, 0], reference[:, 1], marker="x", s=40, color="tab:red", label=reference_label)
            axis.legend(loc="upper right", fontsize=8)
        axis.set_title(f"{name}, {len(points)} samples", fontsize=10)
        axis.set_xlim(low[0], high[0])
        axis.set_ylim(low[1], high[1])
        axis.set_aspect("equal", adjustable="box")
        axis.grid(alpha=0.3)
    fig.suptitle(title)

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_toy_samples(game: Game, folder: Path, title: str, reference: np.ndarray | None = None,
                      reference_label: str = "reference") -> list[Path]:
    """Write ``folder/sample_scatter.png`` for a game on 2-D points; return the written paths."""
    real, generated = draw_samples(game, SCATTER_SAMPLES)
    if not np.isfinite(generated).any():
        logger.warning("%s: every generated sample is non-finite; no sample scatter plot written", title)
        return []
    return [write_sample_scatter(real, generated, folder / SCATTER_FILE, title, reference, reference_label)]


def _limits(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return axis limits that hold all but the most extreme 0.5% of points on each side."""
    low = np.percentile(points, 0.5, axis=0)
    high = np.percentile(points, 99.5, axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-3)
    return low - pad, high + pad
