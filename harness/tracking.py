"""Tracking from the sweep driver: MLflow runs and the Parquet results, fed by Ray Tune events.

Only the driver writes, so concurrent trials never contend for the MLflow store or the results
folder. The sweep has one parent MLflow run; each trial gets a child run named
``method/task-setting/seed`` with its parameters, per-step metrics, the files the trial wrote
and the tags method, task, setting, gamma, seed, git_commit, harness_version and device.
``harness train`` records its single trial through the same tracker, without Ray Tune.
"""

from __future__ import annotations

import fcntl
import logging
import math
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pyarrow.parquet as pq
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from ray.tune import Callback

import harness
from harness.jacobian import SPECTRUM_COLUMNS
from harness.results import TrialResults, status_counts
from harness.tasks import get_task
from harness.batched import BATCH_KEY, ray_trial_id, trial_members
from harness.trial import TrialConfig

logger = logging.getLogger(__name__)

PARAM_FIELDS = ("method", "task", "setting", "seed", "gamma", "lr_g", "lr_d", "steps", "batch_size",
                "eval_every", "loss", "optimizer", "betas", "task_options", "config_id")
NON_METRIC_KEYS = {"step", "status", "error"}
ROW_KEYS = ("step", "wall_time_s", "loss_g", "loss_d", "status", "error")
MAX_RUNS = 50000
"""Most runs one MLflow search returns (the SQL store's limit); more than any sweep has."""
LOGGED_STEP_TAG = "logged_step"
"""Child-run tag with the last step whose metrics are in MLflow; a restarted trial skips up to it."""


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
    """A Ray Tune callback that writes each trial's rows to Parquet and its run to MLflow.

    A restored sweep gets a new tracker that finds the sweep's parent run and each trial's
    child run by their ``sweep_id`` and ``trial_id`` tags, so no run is created twice.
    """

    def __init__(self, tracking_uri: str, experiment: str, results: Path, sweep_id: str,
                 spec_file: Path, artifact_root: Path | None = None) -> None:
        self.results = results
        self.sweep_id = sweep_id
        self.git_commit = git_commit()
        mlflow.set_tracking_uri(tracking_uri)
        with _store_lock(tracking_uri):
            # The first client on a new SQLite store creates its tables; the lock keeps two
            # sweeps that start together on one store from both doing so.
            self.client = MlflowClient(tracking_uri)
            existing = self.client.get_experiment_by_name(experiment)
            if existing:
                self.experiment_id = existing.experiment_id
            else:
                # Without an explicit location MLflow puts artifacts in ./mlruns of the working directory.
                location = artifact_root.resolve().as_uri() if artifact_root else None
                self.experiment_id = self.client.create_experiment(
                    experiment,
                    artifact_location=location,
                    # The MLflow 3 UI opens experiments of this kind on the training-runs view.
                    tags={"mlflow.experimentKind": "custom_model_development"},
                )

        parent = self._find_run(f"tags.sweep_id = '{sweep_id}' and tags.sweep_parent = 'true'")
        if parent:
            self.parent_run_id = parent.info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            logger.info("sweep %s: continuing MLflow run %s", sweep_id, self.parent_run_id)
        else:
            parent = self.client.create_run(
                self.experiment_id,
                run_name=sweep_id,
                tags={"sweep_id": sweep_id, "sweep_parent": "true", "harness_version": harness.__version__,
                      "git_commit": self.git_commit},
            )
            self.parent_run_id = parent.info.run_id
            self.client.log_artifact(self.parent_run_id, str(spec_file))
        self._runs: dict[str, str] = {}
        self._logged_steps: dict[str, int] = {}
        self._tables: dict[str, TrialResults] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its callbacks into the experiment folder. A restored sweep attaches a
        # new tracker, so the pickled copy keeps no client and no open tables.
        return {"sweep_id": self.sweep_id}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # Ray Tune events

    # A Ray trial that trains a batch (harness.batched) has one results file and one child run
    # per member, named by member_id.

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        for results_id, config in trial_members(trial.trial_id, trial.config):
            self.open_trial(results_id, config)

    def on_trial_result(self, iteration, trials, trial, result: dict, **info) -> None:
        if BATCH_KEY not in trial.config:
            self.record_result(trial.trial_id, TrialConfig.from_dict(trial.config), result)
            return
        members = result.get("members") or {}
        for index, (results_id, config) in enumerate(trial_members(trial.trial_id, trial.config)):
            if str(index) in members:
                self.record_result(results_id, config, {**members[str(index)], "device": result.get("device")})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        for results_id, config in trial_members(trial.trial_id, trial.config):
            self.complete_trial(results_id, config)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        error = _trial_error(trial)
        for results_id, config in trial_members(trial.trial_id, trial.config):
            self.fail_trial(results_id, config, error)

    # One trial's records; ``harness train`` calls these directly, without Ray Tune.

    def open_trial(self, trial_id: str, config: TrialConfig) -> None:
        """Open the trial's results file and its child run, or reopen those of a restarted trial."""
        self._open(trial_id, config)

    def record_result(self, trial_id: str, config: TrialConfig, result: dict[str, Any]) -> None:
        """Append one evaluation row to Parquet and log its metrics, tags and files to MLflow.

        Keys of ``result`` beyond the row's columns: ``device`` sets the run's device tag,
        ``sample_grid`` is a PNG path, and ``artifacts`` maps a place in the run's artifacts
        (``name.png`` or ``folder/name.png``) to the file to log there under its own name. A
        mapping, not a list, because Ray Tune's TensorBoard logger warns about lists.
        """
        # A key Ray Tune did not get (a non-finite metric is never reported) is stored as missing.
        row = {key: result.get(key) for key in self._row_keys(config.task)}
        self._open(trial_id, config)
        self._tables[trial_id].append(row)

        # A trial that restarted from an older checkpoint repeats steps MLflow already has.
        step = int(row["step"])
        if step <= self._logged_steps.get(trial_id, -1):
            return
        metrics = [
            Metric(key, float(value), int(time.time() * 1000), step)
            for key, value in row.items()
            if key not in NON_METRIC_KEYS and _is_finite(value)
        ]
        tags = [RunTag(LOGGED_STEP_TAG, str(step))]
        if result.get("device"):
            tags.append(RunTag("device", str(result["device"])))
        self.client.log_batch(self._runs[trial_id], metrics=metrics, tags=tags, synchronous=True)
        self._log_sample_grid(trial_id, result.get("sample_grid"))
        for name, path in (result.get("artifacts") or {}).items():
            self._log_file(trial_id, path, artifact_path=str(Path(name).parent) if "/" in name else None)
        self._logged_steps[trial_id] = step

    def _log_sample_grid(self, trial_id: str, path: str | None) -> None:
        """Log a trial's sample-grid PNG under the ``samples/`` artifacts of its child run."""
        if not path:
            return
        self._log_file(trial_id, path, artifact_path="samples")

    def _log_file(self, trial_id: str, path: str, artifact_path: str | None) -> None:
        if not Path(path).is_file():
            logger.warning("trial %s: %s not found; it is not logged to MLflow", trial_id, path)
            return
        self.client.log_artifact(self._runs[trial_id], path, artifact_path=artifact_path)

    def complete_trial(self, trial_id: str, config: TrialConfig) -> str:
        """End a trial that returned: finished, diverged, or failed without a usable last row."""
        self._open(trial_id, config)
        table = self._tables[trial_id]
        last = table.rows[-1] if table.rows else {}
        status, error = end_status(last, table.static["objective"])
        if error:
            table.mark_last(status, error)
            logger.error("trial %s failed: %s", trial_id, error)
        self._close(trial_id, status)
        return status

    def fail_trial(self, trial_id: str, config: TrialConfig, error: str) -> None:
        """End a trial that raised ``error``."""
        self._open(trial_id, config)
        self._tables[trial_id].mark_last("failed", error)
        logger.error("trial %s failed: %s", trial_id, error)
        self._close(trial_id, "failed")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        error = _trial_error(trial)
        logger.warning("trial %s: retrying from its last checkpoint after an error: %s", trial.trial_id, error)

    def discard_unknown_trials(self, known: set[str]) -> None:
        """Delete the Parquet file and MLflow run of every trial of this sweep not in ``known``.

        A driver that dies can leave trials that started after Tune last saved its experiment
        state. The restored sweep does not know them and runs their configurations again under
        new trial ids, so their partial records would count those configurations twice.
        """
        for path in sorted(self.results.glob("*.parquet")):
            trial_id = path.stem
            sweep_ids = set(pq.read_table(path, columns=["sweep_id"]).column("sweep_id").to_pylist())
            if ray_trial_id(trial_id) in known or sweep_ids != {self.sweep_id}:
                continue
            logger.warning("trial %s started after the last saved experiment state; discarding its results, "
                           "the restored search runs its configuration again", trial_id)
            path.unlink()
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.sweep_id = '{self.sweep_id}'", max_results=MAX_RUNS
        )
        for run in runs:
            if ray_trial_id(run.data.tags.get("trial_id", "")) not in known | {""}:
                logger.warning("trial %s: deleting its MLflow run %s", run.data.tags["trial_id"], run.info.run_id)
                self.client.delete_run(run.info.run_id)

    def finish(self, status: str = "FINISHED") -> dict[str, int]:
        """Tag the parent run with the trial counts, end it with ``status`` and return the counts."""
        counts = status_counts(self.results, self.sweep_id)
        tags = [RunTag(f"trials_{name}", str(count)) for name, count in counts.items()]
        self.client.log_batch(self.parent_run_id, tags=tags, synchronous=True)
        self.client.set_terminated(self.parent_run_id, status)
        return counts

    # helpers

    def _find_run(self, filter_string: str):
        runs = self.client.search_runs([self.experiment_id], filter_string=filter_string, max_results=1)
        return runs[0] if runs else None

    def _open(self, trial_id: str, config: TrialConfig) -> None:
        if trial_id in self._tables:
            return
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

        existing = self._find_run(f"tags.sweep_id = '{self.sweep_id}' and tags.trial_id = '{trial_id}'")
        if existing:
            self._runs[trial_id] = existing.info.run_id
            self._logged_steps[trial_id] = int(existing.data.tags.get(LOGGED_STEP_TAG, -1))
            if existing.info.status != "RUNNING":
                self.client.update_run(existing.info.run_id, status="RUNNING")
            logger.info("trial %s: continuing MLflow run %s after step %s", trial_id, existing.info.run_id,
                        self._logged_steps[trial_id])
            return

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
                "git_commit": self.git_commit,
                # The trial's first result replaces the requested device with the one it ran on.
                "device": config.device,
            },
        )
        self._runs[trial_id] = run.info.run_id
        params = [Param(name, str(values[name])) for name in PARAM_FIELDS]
        self.client.log_batch(run.info.run_id, params=params, synchronous=True)

    def _close(self, trial_id: str, status: str) -> None:
        run_id = self._runs.pop(trial_id, None)
        self._logged_steps.pop(trial_id, None)
        table = self._tables.pop(trial_id)
        last = table.rows[-1] if table.rows else {}
        logger.info("trial %s (%s/%s-%s seed %s) %s at step %s", trial_id, table.static["method"],
                    table.static["task"], table.static["setting"], table.static["seed"], status,
                    last.get("step"))
        if run_id:
            self.client.log_batch(run_id, tags=[RunTag("status", status)], synchronous=True)
            self.client.set_terminated(run_id, "FAILED" if status == "failed" else "FINISHED")

    @staticmethod
    def _row_keys(task: str) -> tuple[str, ...]:
        """Return the keys of a trainer row; Ray adds its own bookkeeping keys to each result."""
        return (*ROW_KEYS, *get_task(task).metric_names, *SPECTRUM_COLUMNS)


@contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive file lock beside a SQLite store; other stores need none."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    database = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def end_status(last: dict[str, Any], objective: str) -> tuple[str, str | None]:
    """Return the status and error of a trial that returned, from its last row or Tune result.

    Such a trial is finished or diverged by its last row's ``status``. It failed when that row
    is not final, or when a finished row lacks a finite objective. Non-finite values never
    reach Ray Tune, so a row whose objective was NaN has no objective at all.
    """
    status = last.get("status")
    if status not in ("finished", "diverged"):
        return "failed", "the trial ended without a final evaluation"
    if status == "finished" and not _is_finite(last.get(objective)):
        return "failed", f"the trial reported no finite value of its objective {objective}"
    return status, None


def device_label(device) -> str:
    """Return the device tag of a run: ``cpu``, or the CUDA device with its name."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _last_line(error: Any) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else "trial raised an error"


def _trial_error(trial) -> str:
    """Return the last line of the trial's latest error, e.g. "RuntimeError: ...".

    Ray Tune (2.x) writes the error into the trial's local folder before it calls the callbacks,
    and copies it to the storage path, where ``Trial.get_error`` reads, only later.
    """
    local_file = Path(trial.error_file) if trial.error_file else None
    if local_file and local_file.is_file():
        return _last_line(local_file.read_text())
    return _last_line(trial.get_error() or "")
