"""Figures of the toy experiments and of Jacobian spectra, in the style of the JARE appendix.

From the results table: distance to equilibrium over steps on the Gaussian task, modes covered
and high-quality fraction over steps on the 8-Gaussian ring, and ζ, τ over steps where a sweep
logged spectra. From the update rules themselves: the eigenvalues of each rule's Jacobian at the
simple GAN's equilibrium across γ, for the (μ, σ) of every Gaussian setting in the table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curves import _method_key, _slug  # noqa: E402

logger = logging.getLogger(__name__)

GAMMAS = np.logspace(-2, 3, 26)
"""γ values of the equilibrium spectra, 0.01 to 1000."""

EQUILIBRIUM_METHODS = ("simgd", "gen_only", "disc_only", "conopt", "jare")
"""Rules with a Jacobian at θ = 0; spectral normalization has none there."""

SPECTRUM_METRICS = (("jacobian_phase_factor", "ζ (floor 1e-3 means 0)"), ("jacobian_conditioning_factor", "τ"))

MIXTURE_METRICS = (("modes_covered", "modes covered (of 8)"), ("high_quality_fraction", "high-quality fraction"))
MIXTURE_LIMITS = {"modes_covered": (-0.3, 8.3), "high_quality_fraction": (-0.03, 1.03)}

ZERO_FLOOR = 1e-3
"""Value at which a log axis shows a phase factor of 0, which it cannot draw."""


def plot_toy_figures(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Write every toy and spectrum figure the results support; return their paths."""
    written = plot_gaussian_distance(results, folder)
    written += plot_mixture_metrics(results, folder)
    written += plot_training_spectra(results, folder)
    written += plot_equilibrium_spectra(results, folder)
    return written


def gaussian_parameters(setting: str) -> tuple[float, float]:
    """Return (μ, σ) of a Gaussian setting from the task registry."""
    from harness.tasks import get_task

    # NOTE: a sweep's train.task_options can override μ and σ, and the results table does not
    # record them, so a figure of such a sweep is labelled with the setting's defaults.
    options = get_task("gaussian").setting(setting).options
    return float(options["mu"]), float(options["sigma"])


def _trial_curves(rows: pd.DataFrame, metric: str):
    """Yield (method, γ, steps, values, diverged) for each trial, methods in report order."""
    for trial_id, trial in sorted(rows.groupby("trial_id"), key=lambda item: _method_key(item[1]["method"].iloc[0])):
        trial = trial.sort_values("step")
        values = trial[metric].astype(float)
        diverged = bool((trial["status"] == "diverged").any())
        yield trial["method"].iloc[0], float(trial["gamma"].iloc[0]), trial["step"], values, diverged


def _panel_grid(count: int, rows: int = 1) -> tuple[plt.Figure, np.ndarray]:
    columns = max(1, int(np.ceil(count / rows)))
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), squeeze=False,
                             constrained_layout=True)
    return fig, axes


def _legend_once(fig: plt.Figure, axes: np.ndarray) -> None:
    handles, labels = axes.flat[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    if unique:
        fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=len(unique), fontsize=8)


def plot_gaussian_distance(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Write one PNG with a panel per Gaussian setting: distance to equilibrium over steps."""
    gaussian = results[results["task"] == "gaussian"]
    if gaussian.empty or "distance_to_equilibrium" not in gaussian:
        return []
    settings = sorted(gaussian["setting"].unique(), key=gaussian_parameters)
    fig, axes = _panel_grid(len(settings))

    colors = {}
    for axis, setting in zip(axes.flat, settings):
        mu, sigma = gaussian_parameters(setting)
        for method, _, steps, values, diverged in _trial_curves(gaussian[gaussian["setting"] == setting],
                                                              "distance_to_equilibrium"):
            color = colors.setdefault(method, f"C{len(colors)}")
            finite = np.isfinite(values)
            axis.plot(steps[finite], values[finite], color=color, label=method)
            if diverged:
                # A diverged trial ends in an × at its last finite value.
                last = values[finite].iloc[-1] if finite.any() else np.nan
                axis.plot(steps[finite].iloc[-1] if finite.any() else steps.iloc[-1], last, "x",
                          color=color, markersize=10, markeredgewidth=2)
        axis.set_yscale("log")
        axis.set_title(f"μ = {mu:g}, σ = {sigma:g}", fontsize=10)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    axes.flat[0].set_ylabel("distance to equilibrium")
    _legend_once(fig, axes)
    fig.suptitle("Gaussian task: distance of (φ, θ) to (φ*, θ*) (× diverged)")

    path = folder / "toy_gaussian_distance.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_mixture_metrics(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Write one PNG for the 8-Gaussian ring: modes covered and high-quality fraction over steps."""
    mixture = results[results["task"] == "mog"]
    if mixture.empty:
        return []
    settings = sorted(mixture["setting"].unique())
    metrics = [(name, label) for name, label in MIXTURE_METRICS if name in mixture]
    if not metrics:
        return []
    fig, axes = _panel_grid(len(settings) * len(metrics), rows=len(metrics))

    colors = {}
    for column, setting in enumerate(settings):
        rows = mixture[mixture["setting"] == setting]
        for row, (metric, label) in enumerate(metrics):
            axis = axes[row, column]
            for method, gamma, steps, values, diverged in _trial_curves(rows, metric):
                color = colors.setdefault(method, f"C{len(colors)}")
                axis.plot(steps, values, color=color, marker="." if not diverged else "x", label=method)
            axis.set_title(f"{setting}: {label}", fontsize=10)
            axis.set_xlabel("step")
            axis.grid(alpha=0.3)
            axis.set_ylim(*MIXTURE_LIMITS[metric])
    # TODO: add panels of generated samples at each evaluation. Trials store one sample scatter
    # at their end (harness.artifacts), not one per evaluation.
    _legend_once(fig, axes)
    fig.suptitle("8-Gaussian ring: modes covered and high-quality fraction (3σ) over steps")

    path = folder / "toy_mog_metrics.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_training_spectra(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Write one PNG per (task, setting) with logged spectra: ζ and τ over steps per trial."""
    columns = [name for name, _ in SPECTRUM_METRICS]
    if any(name not in results for name in columns):
        return []
    logged = results[results[columns].notna().any(axis=1)]
    written = []
    for (task, setting), rows in logged.groupby(["task", "setting"], sort=True):
        fig, axes = _panel_grid(len(SPECTRUM_METRICS))
        colors = {}
        for axis, (metric, symbol) in zip(axes.flat, SPECTRUM_METRICS):
            for method, _, steps, values, _ in _trial_curves(rows, metric):
                color = colors.setdefault(method, f"C{len(colors)}")
                axis.plot(steps, values.clip(lower=ZERO_FLOOR), color=color, marker="o", label=method)
            axis.set_yscale("log")
            axis.set_xlabel("step")
            axis.set_ylabel(symbol)
            axis.grid(alpha=0.3)
        _legend_once(fig, axes)
        fig.suptitle(f"{task}/{setting}: Jacobian phase factor ζ and conditioning factor τ during training")

        path = folder / f"spectrum_{_slug(task, setting)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def equilibrium_factors(method: str, mu: float, sigma: float) -> pd.DataFrame:
    """Return eigenvalues, ζ and τ of a rule's Jacobian at the simple GAN's equilibrium across γ.

    The data mean is ``v = (0, μ)`` as in the Gaussian task; one row per (γ, eigenvalue).
    """
    from harness.simple_gan import equilibrium_jacobian

    rows = []
    for gamma in GAMMAS:
        _, spectrum = equilibrium_jacobian(method, float(gamma), [0.0, mu], sigma)
        for value in spectrum.eigenvalues:
            rows.append({"gamma": gamma, "real": value.real, "imag": value.imag,
                         "zeta": spectrum.phase_factor, "tau": spectrum.conditioning_factor})
    return pd.DataFrame(rows)


def plot_equilibrium_spectra(results: pd.DataFrame, folder: Path) -> list[Path]:
    """Write, per Gaussian setting in the table, the equilibrium eigenvalues and ζ, τ against γ."""
    gaussian = results[results["task"] == "gaussian"]
    methods = [m for m in EQUILIBRIUM_METHODS if m in set(gaussian["method"])]
    written = []
    for setting in sorted(gaussian["setting"].unique(), key=gaussian_parameters):
        mu, sigma = gaussian_parameters(setting)
        spectra = {method: equilibrium_factors(method, mu, sigma) for method in methods}
        if not spectra:
            continue
        written.append(_plot_complex_plane(spectra, mu, sigma, folder / f"eigenvalues_gaussian_{_slug(setting)}.png"))
        written.append(_plot_factors(spectra, mu, sigma, folder / f"factors_gaussian_{_slug(setting)}.png"))
    return written


def _plot_complex_plane(spectra: dict[str, pd.DataFrame], mu: float, sigma: float, path: Path) -> Path:
    fig, axes = _panel_grid(len(spectra))
    for axis, (method, frame) in zip(axes.flat, spectra.items()):
        points = axis.scatter(frame["real"], frame["imag"], c=np.log10(frame["gamma"]), cmap="viridis", s=12)
        axis.axvline(0, color="black", linewidth=0.6)
        axis.axhline(0, color="black", linewidth=0.6)
        axis.set_xscale("symlog", linthresh=0.1)
        axis.set_title(method, fontsize=10)
        axis.set_xlabel("Re λ")
        axis.grid(alpha=0.3)
    axes.flat[0].set_ylabel("Im λ")
    fig.colorbar(points, ax=axes, label="log₁₀ γ", shrink=0.8)
    fig.suptitle(f"Jacobian eigenvalues at the equilibrium, v = (0, {mu:g}), σ = {sigma:g}, γ from 0.01 to 1000")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_factors(spectra: dict[str, pd.DataFrame], mu: float, sigma: float, path: Path) -> Path:
    fig, (zeta_axis, tau_axis) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for method, frame in spectra.items():
        factors = frame.groupby("gamma")[["zeta", "tau"]].first().reset_index()
        # ζ is 0 once every eigenvalue is real. A log axis would drop those points, so they sit
        # on ZERO_FLOOR.
        zeta = factors["zeta"].clip(lower=ZERO_FLOOR).replace(np.inf, np.nan)
        zeta_axis.plot(factors["gamma"], zeta, marker=".", label=method)
        tau_axis.plot(factors["gamma"], factors["tau"].replace(np.inf, np.nan), marker=".", label=method)
    for axis, label in ((zeta_axis, "phase factor ζ (floor 1e-3 means 0)"), (tau_axis, "conditioning factor τ")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("γ")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    zeta_axis.legend(fontsize=8)
    fig.suptitle(f"ζ and τ at the equilibrium against γ, v = (0, {mu:g}), σ = {sigma:g}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
