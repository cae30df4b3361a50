"""The sweep driver: checks the spec and data, connects to Ray and runs or restores Ray Tune.

By default everything a sweep writes lands under the output folder: ``spec.yaml`` (the resolved
spec), ``sweep.json`` (the sweep id), ``mlflow.db`` and ``mlflow-artifacts/`` (the default MLflow
store), ``results/`` (Parquet), ``ray/`` (Tune's experiment state and trial checkpoints) and
``sweep.log``. ``tracking.mlflow_uri``, ``tracking.results_dir`` and ``sweep.storage_path`` move
the stores elsewhere, for example onto a file system that every node of a cluster shares.

A sweep whose driver died continues with ``run_sweep(..., resume=True)``: Tune restores its
experiment state, the search restores its Optuna studies, and unfinished trials restart from
their last checkpoints.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from harness.config import SweepSpec, spec_to_yaml
from harness.errors import HarnessInputError
from harness.progress import SweepProgress, is_terminal
from harness.results import RESULTS_DIRNAME
from harness.search import GridOptunaSearch, grid_points, total_trials
from harness.tasks import resolve_setting
from harness.tracking import SweepTracker, default_tracking_uri, device_label

logger = logging.getLogger(__name__)

SWEEP_FILE = "sweep.json"
CHECKPOINT_FILE = "trainer.pt"
SAMPLES_DIRNAME = "samples"
"""Folder of the output with one folder of PNG sample images per trial, also logged to MLflow."""
SPEC_FIELDS_FREE_ON_RESUME = {"slurm": True, "sweep": {"launcher", "max_concurrent_trials", "max_failures"}}
"""Spec fields a resumed sweep may change: where and how widely it runs, not what it computes."""


@dataclass
class SweepSummary:
    output: Path
    sweep_id: str
    trials: int
    counts: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class SweepPaths:
    """Where one sweep writes: its output folder and the three stores, which may lie elsewhere."""

    output: Path
    results: Path
    storage: Path
    """Ray Tune's storage path; the experiment folder is ``storage / sweep_id``."""
    tracking_uri: str
    artifact_root: Path | None

    @classmethod
    def for_spec(cls, spec: SweepSpec, output: Path) -> SweepPaths:
        tracking = spec.tracking
        return cls(
            output=output,
            results=(tracking.results_dir or output / RESULTS_DIRNAME).resolve(),
            storage=(spec.sweep.storage_path or output / "ray").resolve(),
            tracking_uri=tracking.mlflow_uri or default_tracking_uri(output),
            artifact_root=_artifact_root(tracking.mlflow_uri, output),
        )

    @property
    def writable_folders(self) -> list[tuple[str, Path]]:
        folders = [("output folder", self.output), ("tracking.results_dir", self.results),
                   ("sweep.storage_path", self.storage)]
        if self.tracking_uri.startswith("sqlite:///"):
            database = Path(self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
            folders.append(("the folder of the MLflow SQLite store", database.parent))
        return folders


def _artifact_root(mlflow_uri: str | None, output: Path) -> Path | None:
    """Return the artifact folder of a new MLflow experiment, beside its SQLite store.

    Without one, MLflow would put the artifacts of a SQLite store in ./mlruns of the working
    directory. A tracking server keeps its own artifact store, so other URIs get None.
    """
    if mlflow_uri is None:
        return output / "mlflow-artifacts"
    if mlflow_uri.startswith("sqlite:///"):
        database = Path(mlflow_uri.removeprefix("sqlite:///").split("?", 1)[0])
        return database.parent / "mlflow-artifacts"
    return None


def default_output(spec: SweepSpec) -> Path:
    return Path("runs") / spec.name


def preflight(spec: SweepSpec, output: Path, resume: bool = False) -> None:
    """Raise ``HarnessInputError`` for anything that would fail a trial, before writing a byte.

    Task options that depend on the data, such as ``eval_reference_samples: null``, are replaced
    in ``spec`` by the values they mean, so every trial and the saved spec.yaml use those values.
    """
    for key in spec.grid.settings:
        task, setting = resolve_setting(key)
        options = spec.train.task_options.get(task.name, {})
        task.check_data(setting, spec.data.root, spec.data.download, options)
        resolved = task.resolve_data_options(setting, spec.data.root, spec.data.download, options)
        if resolved != options:
            spec.train.task_options[task.name] = resolved

    if output.exists() and not output.is_dir():
        raise HarnessInputError(f"output {output} exists and is not a folder; pass another --output")
    if resume and not (output / SWEEP_FILE).is_file():
        raise HarnessInputError(
            f"nothing to resume in {output}: {SWEEP_FILE} not found; pass the --output of the sweep to resume"
        )
    if not resume and ((output / RESULTS_DIRNAME).exists() or (output / "spec.yaml").exists()):
        raise HarnessInputError(
            f"output folder {output} already contains a sweep; pass --resume to continue it, "
            "or another --output, or remove the folder"
        )
    for what, folder in SweepPaths.for_spec(spec, output).writable_folders:
        check_writable(folder, what)


def check_writable(folder: Path, what: str) -> None:
    """Raise ``HarnessInputError`` unless ``folder`` exists writable or can be created."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir():
        raise HarnessInputError(f"cannot create {what} {folder}: {existing} is not a folder")
    # A test file, not os.access: root passes every permission check but still fails on a
    # read-only or immutable folder.
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".harness-write-test-"):
            pass
    except OSError as error:
        raise HarnessInputError(
            f"cannot write {what} {folder}: {existing} is not writable ({error.strerror})"
        ) from None


def new_sweep(spec: SweepSpec, output: Path) -> str:
    """Write the resolved spec and a new sweep id into ``output``; return the sweep id."""
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    output.mkdir(parents=True, exist_ok=True)
    (output / "spec.yaml").write_text(spec_to_yaml(spec))
    (output / SWEEP_FILE).write_text(json.dumps({"sweep_id": sweep_id}, indent=2) + "\n")
    return sweep_id


def existing_sweep(spec: SweepSpec, output: Path) -> str:
    """Return the sweep id stored in ``output``, after checking ``spec`` computes the same sweep."""
    saved = _without_free_fields(_load_yaml(output / "spec.yaml"))
    given = _without_free_fields(spec.model_dump(mode="json"))
    if saved != given:
        changed = sorted(key for key in set(saved) | set(given) if saved.get(key) != given.get(key))
        raise HarnessInputError(
            f"cannot resume {output}: the spec differs from {output / 'spec.yaml'} in {', '.join(changed)}; "
            "resume with the same spec and --set values"
        )
    return json.loads((output / SWEEP_FILE).read_text())["sweep_id"]


def run_sweep(spec: SweepSpec, output: Path | None = None, resume: bool = False) -> SweepSummary:
    """Run a sweep on a local Ray instance, or continue the one in ``output`` with ``resume``."""
    output = (output or default_output(spec)).resolve()
    preflight(spec, output, resume)
    sweep_id = existing_sweep(spec, output) if resume else new_sweep(spec, output)
    return execute_sweep(spec, output, sweep_id)


def execute_sweep(spec: SweepSpec, output: Path, sweep_id: str, ray_address: str | None = None) -> SweepSummary:
    """Run the sweep's Tune experiment to its end, restoring it when its state exists.

    Without ``ray_address`` a private local Ray instance is started; with one, the driver joins
    that cluster (the SLURM launcher passes the address of the job's own Ray head).
    """
    import ray
    from ray import tune

    paths = SweepPaths.for_spec(spec, output)
    points = grid_points(spec)
    trials = total_trials(points, spec.grid.seeds)
    experiment = paths.storage / sweep_id
    restoring = tune.Tuner.can_restore(str(experiment))

    paths.results.mkdir(parents=True, exist_ok=True)
    log_handler = _attach_log_file(output / "sweep.log")
    if restoring:
        logger.info("sweep %s: restoring the Tune experiment in %s", sweep_id, experiment)
    else:
        logger.info("sweep %s: %d grid points, %d trials, output %s", sweep_id, len(points), trials, output)

    tracker = SweepTracker(
        tracking_uri=paths.tracking_uri,
        experiment=spec.tracking.experiment or spec.name,
        results=paths.results,
        sweep_id=sweep_id,
        spec_file=output / "spec.yaml",
        artifact_root=paths.artifact_root,
    )
    progress = SweepProgress(trials)
    # Optuna logs one line per study, one per grid point; the progress lines report the search.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not is_terminal(sys.stdout):
        # Ray wraps its workers' log lines in ANSI colour codes unless RAY_COLOR_PREFIX is 0.
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    _connect_ray(spec, ray_address)
    start = time.perf_counter()
    status = "FAILED"
    try:
        # NOTE: trials write their sample grids under the output folder, which must then be on
        # a file system that every node shares when a sweep spans several nodes.
        trainable = tune.with_resources(
            tune.with_parameters(run_trial, samples_root=str(output / SAMPLES_DIRNAME)),
            {"cpu": spec.sweep.cpus_per_trial, "gpu": spec.sweep.gpus_per_trial},
        )
        if restoring:
            known = {trial.trial_id for trial in tune.ExperimentAnalysis(str(experiment)).trials}
            tracker.discard_unknown_trials(known)
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_unfinished=True)
            # NOTE: Tuner.restore (Ray 2.60) takes no RunConfig and reuses the callbacks pickled
            # at the start, which hold no live MLflow client, so the new tracker replaces them.
            tuner._local_tuner.get_run_config().callbacks = [tracker, progress]
        else:
            tuner = tune.Tuner(
                trainable,
                tune_config=tune.TuneConfig(
                    search_alg=GridOptunaSearch(spec, sweep_id),
                    num_samples=trials,
                    max_concurrent_trials=spec.sweep.max_concurrent_trials,
                    # Reusing worker processes saves the torch import and data loading per trial.
                    reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=sweep_id,
                    storage_path=str(paths.storage),
                    callbacks=[tracker, progress],
                    failure_config=tune.FailureConfig(max_failures=spec.sweep.max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    # SweepProgress replaces Tune's status tables; errors are still logged.
                    verbose=0,
                ),
            )
        tuner.fit()
        status = "FINISHED"
    finally:
        counts = tracker.finish(status)
        ray.shutdown()
        logging.getLogger("harness").removeHandler(log_handler)
        log_handler.close()

    seconds = time.perf_counter() - start
    logger.info("sweep %s done in %.0f s: %s", sweep_id, seconds, counts)
    return SweepSummary(output, sweep_id, trials, counts, seconds)


def run_trial(config: dict, samples_root: str | None = None) -> None:
    """Ray Tune's function trainable: train one trial and report each evaluation row.

    Every row that is not the trial's last comes with a checkpoint of the trainer, and a trial
    that Tune restarts (after a restored sweep or a lost worker) continues from its latest one.
    A config with the key ``batch`` is a batch of toy trials, trained by ``run_batch_trial``.
    """
    import torch
    from ray import tune

    from harness.batched import BATCH_KEY, run_batch_trial
    from harness.trainer import Trainer
    from harness.trial import TrialConfig

    if BATCH_KEY in config:
        run_batch_trial(config[BATCH_KEY])
        return

    threads = int(os.environ.get("HARNESS_TRIAL_THREADS", "1"))
    torch.set_num_threads(max(1, threads))
    # Ray logs a line per saved checkpoint, one per evaluation of every trial.
    logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
    trainer = Trainer(TrialConfig.from_dict(config))
    device = device_label(trainer.device)
    if samples_root:
        trainer.samples_dir = Path(samples_root) / tune.get_context().get_trial_id()

    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            trainer.load_checkpoint(Path(folder) / CHECKPOINT_FILE)
        logger.info("trial %s: continuing after step %d", trainer.config.run_name, trainer.steps_done)

    def report(row: dict[str, Any]) -> None:
        result = {**tune_result(row), "device": device}
        if row["status"] != "running":
            tune.report(result)
            return
        with tempfile.TemporaryDirectory(prefix="harness-checkpoint-") as folder:
            trainer.save_checkpoint(Path(folder) / CHECKPOINT_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))

    trainer.run(report)


def tune_result(row: dict[str, Any]) -> dict[str, Any]:
    """Return ``row`` without its non-finite numbers, so no scheduler or searcher sees a NaN.

    The row's ``status`` still says ``diverged``, and the results table stores the dropped
    values as missing.
    """
    return {key: value for key, value in row.items() if not (isinstance(value, float) and not math.isfinite(value))}


def _connect_ray(spec: SweepSpec, address: str | None) -> None:
    import ray

    if address:
        ray.init(address=address, logging_level=logging.WARNING)
        # ray.init turns SIGTERM into SystemExit. A driver on a cluster gets SIGTERM when SLURM
        # requeues or cancels its job; ending at once leaves Tune's last saved experiment state
        # for the restore, exactly as after a crash.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        return
    # Workers inherit the driver's environment when Ray starts locally.
    os.environ["HARNESS_TRIAL_THREADS"] = str(max(1, int(spec.sweep.cpus_per_trial)))
    ray.init(
        address="local",
        num_cpus=max(os.cpu_count() or 1, int(spec.sweep.cpus_per_trial)),
        include_dashboard=False,
        # A local sweep keeps all of Ray's traffic on the loopback interface.
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    harness_logger = logging.getLogger("harness")
    # The log file records starts, restores and trial ends even when the console shows less.
    if harness_logger.getEffectiveLevel() > logging.INFO:
        harness_logger.setLevel(logging.INFO)
    harness_logger.addHandler(handler)
    return handler


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def _without_free_fields(raw: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for key, value in raw.items():
        free = SPEC_FIELDS_FREE_ON_RESUME.get(key)
        if free is True:
            continue
        if free and isinstance(value, dict):
            value = {name: item for name, item in value.items() if name not in free}
        kept[key] = value
    return kept
