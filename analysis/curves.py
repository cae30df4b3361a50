"""Training curves and γ sweeps from the results table, drawn with matplotlib (Agg).

Curves show each method's best configuration: the mean over seeds of a metric against steps
and against wall-clock time, with a band from the seeds' minimum to maximum.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.table import METHOD_ORDER, final_rows  # noqa: E402


def _method_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER), method)


def _slug(*parts: str) -> str:
    return "_".join(str(p).replace("/", "-") for p in parts)


def seed_curves(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Return per-step mean, min, max of ``metric`` and mean wall time over a config's seeds."""
    rows = trials[np.isfinite(trials[metric].astype(float))]
    return rows.groupby("step").agg(
        mean=(metric, "mean"), low=(metric, "min"), high=(metric, "max"), wall=("wall_time_s", "mean")
    ).reset_index()


def plot_training_curves(results: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> list[Path]:
    """Write one PNG per (task, setting): the metric against steps and against wall time."""
    written = []
    for (task, setting), rows in summary.groupby(["task", "setting"], sort=True):
        metric = rows["metric"].iloc[0]
        fig, (by_step, by_time) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)

        for _, row in sorted(rows.iterrows(), key=lambda item: _method_key(item[1]["method"])):
            if row["config_id"] is None:
                continue
            trials = results[(results["config_id"] == row["config_id"]) & (results["method"] == row["method"])
                             & (results["task"] == task) & (results["setting"] == setting)]
            curve = seed_curves(trials, metric)
            if curve.empty:
                continue
            searched_gamma = results.loc[results["method"] == row["method"], "gamma"].nunique() > 1
            label = f"{row['method']} (γ={row['gamma']:.3g})" if searched_gamma else row["method"]
            line, = by_step.plot(curve["step"], curve["mean"], label=label)
            by_step.fill_between(curve["step"], curve["low"], curve["high"], color=line.get_color(), alpha=0.2)
            by_time.plot(curve["wall"], curve["mean"], color=line.get_color())
            by_time.fill_between(curve["wall"], curve["low"], curve["high"], color=line.get_color(), alpha=0.2)

        by_step.set_xlabel("step")
        by_time.set_xlabel("wall-clock seconds")
        for axis in (by_step, by_time):
            axis.set_ylabel(metric)
            axis.grid(alpha=0.3)
        if by_step.get_legend_handles_labels()[0]:
            by_step.legend(fontsize=8)
        fig.suptitle(f"{task}/{setting}: best configuration per method, mean and range over seeds")

        path = folder / f"curves_{_slug(task, setting)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def plot_gamma_sweeps(results: pd.DataFrame, summary: pd.DataFrame, folder: Path) -> list[Path]:
    """Write one PNG per (task, setting) where some method tried several γ: final metric vs γ."""
    finals = final_rows(results)
    written = []
    for (task, setting), rows in summary.groupby(["task", "setting"], sort=True):
        metric = rows["metric"].iloc[0]
        cell = finals[(finals["task"] == task) & (finals["setting"] == setting)]
        if cell.groupby("method")["gamma"].nunique().max() < 2:
            continue

        fig, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for method in sorted(cell["method"].unique(), key=_method_key):
            trials = cell[cell["method"] == method]
            if trials["gamma"].nunique() < 2:
                continue
            by_config = trials.groupby("config_id").agg(
                gamma=("gamma", "first"),
                value=(metric, "mean"),
                diverged=("status", lambda s: bool((s != "finished").any())),
            ).sort_values("gamma")
            ok = by_config[~by_config["diverged"]]
            # Markers only: configurations may also differ in learning rate, so a line would
            # suggest a trend in γ alone.
            line, = axis.plot(ok["gamma"], ok["value"], marker="o", linestyle="none", label=method)
            bad = by_config[by_config["diverged"]]
            if not bad.empty:
                top = np.nanmax(cell[metric].astype(float)) if np.isfinite(cell[metric].astype(float)).any() else 1.0
                axis.scatter(bad["gamma"], [top] * len(bad), marker="x", color=line.get_color())

        axis.set_xscale("log")
        axis.set_xlabel("γ")
        axis.set_ylabel(f"final {metric} (mean over seeds)")
        axis.set_title(f"{task}/{setting}: final metric against γ (× diverged)")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)

        path = folder / f"gamma_{_slug(task, setting)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
