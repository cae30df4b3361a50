"""Table-1-style comparison: rows are methods, columns are settings, cells are mean ± std over
seeds of the final metric for each (method, setting)'s best configuration, with the count of
diverged trials."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.errors import HarnessInputError


def final_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Return each trial's last row (its highest step)."""
    ordered = results.sort_values(["trial_id", "step"])
    return ordered.groupby("trial_id", as_index=False).tail(1).reset_index(drop=True)


# Rows follow the order in which the rules build on each other; other methods come after.
METHOD_ORDER = ("simgd", "altgd", "conopt", "gen_only", "disc_only", "jare", "sngan")

# Whether lower or higher is better, for metrics a report may be asked to rank by.
METRIC_MODES = {
    "distance_to_equilibrium": "min",
    "modes_covered": "max",
    "high_quality_fraction": "max",
    "pixel_frechet_distance": "min",
    "fid": "min",
    "kid": "min",
    "inception_score": "max",
}


def _objective(frame: pd.DataFrame, metric: str | None) -> tuple[str, str]:
    """Return the metric to rank by and its direction: ``metric``, or the task's objective."""
    if metric is None:
        objectives = frame["objective"].dropna().unique()
        if len(objectives) != 1:
            raise HarnessInputError(f"results for {frame['task'].iloc[0]} name no single objective metric")
        return objectives[0], frame["objective_mode"].dropna().iloc[0]
    if metric not in frame.columns or frame[metric].isna().all():
        raise HarnessInputError(f"metric {metric!r} has no values for task {frame['task'].iloc[0]}")
    if metric not in METRIC_MODES:
        known = ", ".join(METRIC_MODES)
        raise HarnessInputError(f"no known direction for metric {metric!r}; known metrics: {known}")
    return metric, METRIC_MODES[metric]


def summarize(results: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Return one row per (method, task, setting) with the best configuration's statistics.

    The best configuration is the one with the best mean over its finished seeds, among
    configurations in which no seed diverged or failed; the count columns cover all trials.
    """
    finals = final_rows(results)
    records = []
    for (method, task, setting), group in finals.groupby(["method", "task", "setting"], sort=False):
        name, mode = _objective(group, metric)
        by_config = []
        for config_id, trials in group.groupby("config_id", dropna=False):
            values = trials[name].astype(float)
            clean = (trials["status"] == "finished").all() and np.isfinite(values).all()
            if clean:
                by_config.append((values.mean(), config_id, trials))
        record = {
            "method": method,
            "task": task,
            "setting": setting,
            "metric": name,
            "mode": mode,
            "trials": len(group),
            "diverged": int((group["status"] == "diverged").sum()),
            "failed": int((group["status"] == "failed").sum()),
            "mean": math.nan,
            "std": math.nan,
            "seeds": 0,
            "gamma": math.nan,
            "lr_g": math.nan,
            "lr_d": math.nan,
            "config_id": None,
        }
        if by_config:
            pick = min if mode == "min" else max
            _, config_id, trials = pick(by_config, key=lambda item: item[0])
            values = trials[name].astype(float)
            record.update(
                mean=values.mean(),
                std=values.std(ddof=0),
                seeds=len(values),
                gamma=trials["gamma"].iloc[0],
                lr_g=trials["lr_g"].iloc[0],
                lr_d=trials["lr_d"].iloc[0],
                config_id=config_id,
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


def format_cell(row: pd.Series) -> str:
    if row["seeds"] == 0:
        value = "—"
    else:
        value = f"{_format_number(row['mean'])} ± {_format_number(row['std'])}"
    if row["diverged"]:
        value += f" ({row['diverged']}/{row['trials']} div.)"
    if row["failed"]:
        value += f" ({row['failed']} failed)"
    return value


def _format_number(value: float) -> str:
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3f}"
    return f"{value:.2e}"


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Pivot the summary into methods × settings, with the metric and its direction in the header."""
    summary = summary.copy()
    arrow = summary["mode"].map({"min": "↓", "max": "↑"})
    summary["column"] = summary["task"] + "/" + summary["setting"] + " " + summary["metric"] + " " + arrow
    summary["cell"] = summary.apply(format_cell, axis=1)
    methods = list(dict.fromkeys(summary["method"]))
    method_order = sorted(methods, key=lambda m: (METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER), m))
    column_order = sorted(dict.fromkeys(summary["column"]))
    table = summary.pivot(index="method", columns="column", values="cell")
    return table.reindex(index=method_order, columns=column_order).fillna("")


def to_markdown(table: pd.DataFrame) -> str:
    header = ["method", *table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.iterrows():
        lines.append("| " + " | ".join([str(method), *row.tolist()]) + " |")
    return "\n".join(lines)
