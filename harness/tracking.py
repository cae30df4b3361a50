"""Tracking from the sweep driver: MLflow runs and the Parquet results, fed by Ray Tune events.

Only the driver writes, so concurrent trials never contend for the MLflow store or the results
folder. The sweep has one parent MLflow run; each trial gets a child run named
``method/task-setting/seed`` with its parameters, per-step metrics and tags.
"""

from __future__ import annotations

import logging
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from ray.tune import Callback

import harness
from harness.results import TrialResults
from harness.tasks import get_task
from harness.trial import TrialConfig

logger = logging.getLogger(__name__)

PARAM_FIELDS = ("method", "task", "setting", "seed", "gamma", "lr_g", "lr_d", "steps", "batch_size",
                "eval_every", "loss", "optimizer", "betas", "task_options", "config_id")
NON_METRIC_KEYS = {"step", "status", "error"}
ROW_KEYS = ("step", "wall_time_s", "loss_g", "loss_d", "status", "error")


def default_tracking_uri(output: Path) -> str:
    return f"sqlite:///{(output / 'mlflow.db').resolve()}"


def git_commit() -> str:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


class SweepTracker(Callback):
    """A Ray Tune callback that writes each trial's rows to Parquet and its run to MLflow."""

    def __init__(self, tracking_uri: str, experiment: str, results: Path, sweep_id: str,
                 spec_file: Path, artifact_root: Path | None = None) -> None:
        self.results = results
        self.sweep_id = sweep_id
        mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri)
        existing = self.client.get_experiment_by_name(experiment)
        if existing:
            self.experiment_id = existing.experiment_id
        else:
            # Without an explicit location MLflow puts artifacts in ./mlruns of the working directory.
            location = artifact_root.resolve().as_uri() if artifact_root else None
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
        parent = self.client.create_run(
            self.experiment_id,
            run_name=sweep_id,
            tags={"sweep_id": sweep_id, "harness_version": harness.__version__, "git_commit": git_commit()},
        )
        self.parent_run_id = parent.info.run_id
        self.client.log_artifact(self.parent_run_id, str(spec_file))
        self._runs: dict[str, str] = {}
        self._tables: dict[str, TrialResults] = {}
        self.counts = {"finished": 0, "diverged": 0, "failed": 0}

    # Ray Tune events

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._open(trial.trial_id, TrialConfig.from_dict(trial.config))

    def on_trial_result(self, iteration, trials, trial, result: dict, **info) -> None:
        row = {key: result[key] for key in self._row_keys(trial) if key in result}
        self._tables[trial.trial_id].append(row)

        metrics = [
            Metric(key, float(value), int(time.time() * 1000), int(row["step"]))
            for key, value in row.items()
            if key not in NON_METRIC_KEYS and isinstance(value, (int, float)) and math.isfinite(value)
        ]
        if metrics:
            self.client.log_batch(self._runs[trial.trial_id], metrics=metrics, synchronous=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id not in self._tables:
            self._open(trial.trial_id, TrialConfig.from_dict(trial.config))
        table = self._tables[trial.trial_id]
        status = table.rows[-1]["status"] if table.rows else "failed"
        if status not in ("finished", "diverged"):
            status = "failed"
            table.mark_last(status, "the trial ended without a final evaluation")
        self._close(trial.trial_id, status)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id not in self._tables:
            self._open(trial.trial_id, TrialConfig.from_dict(trial.config))
        error = _last_line(trial.get_error()) if hasattr(trial, "get_error") else "trial raised an error"
        self._tables[trial.trial_id].mark_last("failed", error)
        logger.error("trial %s failed: %s", trial.trial_id, error)
        self._close(trial.trial_id, "failed")

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_tag(self.parent_run_id, "trials_finished", self.counts["finished"])
        self.client.set_tag(self.parent_run_id, "trials_diverged", self.counts["diverged"])
        self.client.set_tag(self.parent_run_id, "trials_failed", self.counts["failed"])
        self.client.set_terminated(self.parent_run_id, status)

    # helpers

    def _open(self, trial_id: str, config: TrialConfig) -> None:
        task = get_task(config.task)
        static = {
            "sweep_id": self.sweep_id,
            "config_id": config.config_id,
            "task": config.task,
            "setting": config.setting,
            "method": config.method,
            "seed": config.seed,
            "gamma": config.gamma,
            "lr_g": config.lr_g,
            "lr_d": config.lr_d,
            "batch_size": config.batch_size,
            "steps": config.steps,
            "optimizer": config.optimizer,
            "loss": config.loss,
            "objective": task.objective,
            "objective_mode": task.mode,
            **task.protocol(task.setting(config.setting), config.task_options),
        }
        self._tables[trial_id] = TrialResults(self.results, trial_id, static)

        values = config.to_dict()
        run = self.client.create_run(
            self.experiment_id,
            run_name=config.run_name,
            tags={
                "mlflow.parentRunId": self.parent_run_id,
                "sweep_id": self.sweep_id,
                "trial_id": trial_id,
                "method": config.method,
                "task": config.task,
                "setting": config.setting,
                "seed": str(config.seed),
                "gamma": str(config.gamma),
                "harness_version": harness.__version__,
            },
        )
        self._runs[trial_id] = run.info.run_id
        params = [Param(name, str(values[name])) for name in PARAM_FIELDS]
        self.client.log_batch(run.info.run_id, params=params, synchronous=True)

    def _close(self, trial_id: str, status: str) -> None:
        self.counts[status] += 1
        run_id = self._runs.pop(trial_id, None)
        table = self._tables[trial_id]
        last = table.rows[-1] if table.rows else {}
        logger.info("trial %s (%s/%s-%s seed %s) %s at step %s", trial_id, table.static["method"],
                    table.static["task"], table.static["setting"], table.static["seed"], status,
                    last.get("step"))
        if run_id:
            self.client.log_batch(run_id, tags=[RunTag("status", status)], synchronous=True)
            self.client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    @staticmethod
    def _row_keys(trial) -> tuple[str, ...]:
        """Return the keys of a trainer row; Ray adds its own bookkeeping keys to each result."""
        return (*ROW_KEYS, *get_task(trial.config["task"]).metric_names)


def _last_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else "trial raised an error"
