"""The sweep driver: checks the spec and data, starts a local Ray instance and runs Ray Tune.

Everything the sweep writes lands under the output folder: ``spec.yaml`` (the resolved spec),
``mlflow.db`` and ``mlflow-artifacts/`` (the default MLflow store), ``results/`` (Parquet), ``ray/`` (Tune's experiment
state) and ``sweep.log``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from harness.config import SweepSpec, spec_to_yaml
from harness.errors import HarnessInputError
from harness.results import RESULTS_DIRNAME, results_dir
from harness.search import GridOptunaSearch, grid_points, total_trials
from harness.tasks import resolve_setting
from harness.tracking import SweepTracker, default_tracking_uri

logger = logging.getLogger(__name__)


@dataclass
class SweepSummary:
    output: Path
    sweep_id: str
    trials: int
    counts: dict[str, int]
    seconds: float


def default_output(spec: SweepSpec) -> Path:
    return Path("runs") / spec.name


def preflight(spec: SweepSpec, output: Path) -> None:
    """Raise ``HarnessInputError`` for anything that would fail a trial, before writing a byte."""
    for key in spec.grid.settings:
        task, setting = resolve_setting(key)
        task.check_data(setting, spec.data.root, spec.data.download)

    if output.exists() and not output.is_dir():
        raise HarnessInputError(f"output {output} exists and is not a folder; pass another --output")
    if (output / RESULTS_DIRNAME).exists() or (output / "spec.yaml").exists():
        raise HarnessInputError(
            f"output folder {output} already holds a sweep; pass another --output or remove the folder"
        )
    parent = next((p for p in [output, *output.parents] if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise HarnessInputError(f"cannot write the output folder {output}: {parent} is not writable")


def run_trial(config: dict) -> None:
    """Ray Tune's function trainable: train one trial and report each evaluation row."""
    import torch
    from ray import tune

    from harness.trainer import train
    from harness.trial import TrialConfig

    threads = int(os.environ.get("HARNESS_TRIAL_THREADS", "1"))
    torch.set_num_threads(max(1, threads))
    train(TrialConfig.from_dict(config), on_eval=tune.report)


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("harness").addHandler(handler)
    return handler


def run_sweep(spec: SweepSpec, output: Path | None = None) -> SweepSummary:
    import ray
    from ray import tune

    output = (output or default_output(spec)).resolve()
    preflight(spec, output)

    points = grid_points(spec)
    trials = total_trials(points, spec.grid.seeds)
    sweep_id = f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    output.mkdir(parents=True, exist_ok=True)
    spec_file = output / "spec.yaml"
    spec_file.write_text(spec_to_yaml(spec))
    results_dir(output).mkdir(exist_ok=True)
    log_handler = _attach_log_file(output / "sweep.log")
    logger.info("sweep %s: %d grid points, %d trials, output %s", sweep_id, len(points), trials, output)

    tracker = SweepTracker(
        tracking_uri=spec.tracking.mlflow_uri or default_tracking_uri(output),
        experiment=spec.tracking.experiment or spec.name,
        results=results_dir(output),
        sweep_id=sweep_id,
        spec_file=spec_file,
        artifact_root=None if spec.tracking.mlflow_uri else output / "mlflow-artifacts",
    )

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
    start = time.perf_counter()
    status = "FAILED"
    try:
        trainable = tune.with_resources(
            run_trial, {"cpu": spec.sweep.cpus_per_trial, "gpu": spec.sweep.gpus_per_trial}
        )
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
                storage_path=str(output / "ray"),
                callbacks=[tracker],
                verbose=1,
            ),
        )
        tuner.fit()
        status = "FINISHED"
    finally:
        tracker.finish(status)
        ray.shutdown()
        logging.getLogger("harness").removeHandler(log_handler)
        log_handler.close()

    seconds = time.perf_counter() - start
    logger.info("sweep %s done in %.0f s: %s", sweep_id, seconds, tracker.counts)
    return SweepSummary(output, sweep_id, trials, dict(tracker.counts), seconds)
