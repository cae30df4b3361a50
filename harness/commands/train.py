"""``harness train [SPEC]``: train one trial in this process, without Ray, recorded like a sweep trial.

The trial comes from a spec whose grid, after the options, names one method, one setting and
one seed, or from the options alone. Its output folder has the layout of a sweep's: the
resolved spec, the Parquet results, the MLflow store with a parent and a child run, and the
sample files, so ``harness report`` and ``harness ui`` read it as they read a sweep.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
from pathlib import Path
from typing import Any

NAME = "train"
HELP = "Train one trial here, without Ray, showing its steps; record it like a sweep trial."

logger = logging.getLogger(__name__)

DEFAULT_NAME = "train"
"""Spec name, and so MLflow experiment, of a trial given by options alone."""

# Options that set a spec field: (option, spec path, type, help). Grid options set a one-entry list.
TRIAL_OPTIONS = (
    ("--method", "grid.methods", str, "Update rule by registry name, e.g. jare."),
    ("--setting", "grid.settings", str, "Setting as task/setting (mog/r2) or a bare task name (gaussian)."),
    ("--seed", "grid.seeds", int, "Seed of the trial (default 0 without a spec)."),
    ("--gamma", "train.gamma", float, "γ of the regularized rules (default 10)."),
    ("--lr", "train.lr", float, "Learning rate of both players (default: the setting's)."),
    ("--lr-g", "train.lr_g", float, "Generator learning rate; overrides --lr."),
    ("--lr-d", "train.lr_d", float, "Discriminator learning rate; overrides --lr."),
    ("--steps", "train.steps", int, "Training steps (default: the setting's)."),
    ("--batch-size", "train.batch_size", int, "Samples per batch for each player (default: the setting's)."),
    ("--eval-every", "train.eval_every", int, "Evaluate the task's metrics every this many steps (default 500)."),
    ("--device", "train.device", str, "auto (default: CUDA when available), cpu or cuda."),
)
GRID_PATHS = {"grid.methods", "grid.settings", "grid.seeds"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train one trial in this process, without Ray. Options override the spec; after them its "
        "grid must name one method, one setting and one seed. The search space is not sampled: "
        "γ and the learning rates come from --gamma, --lr or the spec's train section."
    )
    parser.add_argument("spec", type=Path, nargs="?",
                        help="YAML sweep spec to take the trial from; without it, --method and --setting are required.")
    parser.add_argument("--output", type=Path,
                        help="Output folder (default runs/<spec name>-<method>-<task>-<setting>-seed<seed>).")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="Override a spec field by dotted path with a YAML value, e.g. --set train.task_options.mog.radius=10.",
    )
    for option, path, kind, text in TRIAL_OPTIONS:
        parser.add_argument(option, type=kind, help=f"{text} Sets {path}.")
    parser.add_argument(
        "--progress-every", type=float, metavar="SECONDS",
        help="Seconds between progress lines when stdout is not a terminal (default 30); "
        "a terminal shows a progress bar instead.",
    )


def run(args: argparse.Namespace) -> int:
    from harness.errors import HarnessInputError
    from harness.search import trial_config
    from harness.sweep import SweepPaths, new_sweep, preflight

    if args.progress_every is not None and args.progress_every < 0:
        raise HarnessInputError(f"invalid --progress-every {args.progress_every}: expected seconds ≥ 0")
    spec = build_spec(args)
    point, seed = single_trial(spec, source=str(args.spec) if args.spec else "options")
    output = (args.output or default_output(spec.name, point.method, point.setting_key, seed)).resolve()
    check_new_output(output)
    check_device(spec.train.device)
    preflight(spec, output)

    sweep_id = new_sweep(spec, output)
    paths = SweepPaths.for_spec(spec, output)
    paths.results.mkdir(parents=True, exist_ok=True)
    config = trial_config(spec, point, {}, seed, sweep_id, config_id="p0c0")
    if spec.search:
        logger.info("the search space (%s) is not sampled: γ %g, lr_g %g, lr_d %g; pass --gamma, --lr to choose them",
                    ", ".join(spec.search), config.gamma, config.lr_g, config.lr_d)

    try:
        status, last = train_and_record(spec, paths, sweep_id, config, args.progress_every)
    except KeyboardInterrupt:
        print(f"\ninterrupted; the trial is recorded as failed in {output}", file=sys.stderr)
        return 130

    print(summary_line(config, status, last))
    print(f"results: {output}")
    print(f"next: harness report {output}   or   harness ui {output}")
    return 1 if status == "failed" else 0


def build_spec(args: argparse.Namespace):
    """Return the validated spec: the file with its overrides, or one made from the options."""
    from harness.config import apply_override, load_spec, parse_override, validate_spec
    from harness.errors import HarnessInputError

    overrides = [*args.overrides, *option_overrides(args)]
    if args.spec is not None:
        return load_spec(args.spec, overrides)

    if args.method is None or args.setting is None:
        raise HarnessInputError(
            "without a spec file, --method and --setting are required, e.g. harness train --method jare --setting gaussian"
        )
    raw: dict[str, Any] = {"name": DEFAULT_NAME}
    for text in overrides:
        keys, value = parse_override(text)
        apply_override(raw, keys, value)
    return validate_spec(raw, source="harness train options")


def option_overrides(args: argparse.Namespace) -> list[str]:
    """Turn the options that set spec fields into ``--set`` overrides, applied after the others."""
    overrides = []
    for option, path, _, _ in TRIAL_OPTIONS:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is None:
            continue
        if path in GRID_PATHS:
            value = [value]
        overrides.append(f"{path}={json.dumps(value)}")
    return overrides


def single_trial(spec, source: str):
    """Return the spec's only grid point and seed, or raise naming the axis with several entries."""
    from harness.errors import HarnessInputError
    from harness.search import grid_points

    axes = (("methods", spec.grid.methods, "--method"), ("settings", spec.grid.settings, "--setting"),
            ("seeds", spec.grid.seeds, "--seed"))
    for name, values, option in axes:
        if len(values) != 1:
            listed = ", ".join(str(value) for value in values)
            raise HarnessInputError(
                f"{source}: grid.{name} has {len(values)} entries ({listed}) but harness train runs one trial; "
                f"pick one with {option}"
            )
    (point,) = grid_points(spec)
    return point, spec.grid.seeds[0]


def default_output(name: str, method: str, setting_key: str, seed: int) -> Path:
    return Path("runs") / f"{name}-{method}-{setting_key.replace('/', '-')}-seed{seed}"


def check_new_output(output: Path) -> None:
    from harness.errors import HarnessInputError
    from harness.results import RESULTS_DIRNAME

    if (output / "spec.yaml").exists() or (output / RESULTS_DIRNAME).exists():
        raise HarnessInputError(f"output folder {output} already contains a run; pass another --output or remove the folder")


def check_device(device: str) -> None:
    """Raise ``HarnessInputError`` when ``device`` is cuda and this machine has no CUDA device."""
    import torch

    from harness.errors import HarnessInputError

    if device == "cuda" and not torch.cuda.is_available():
        raise HarnessInputError("train.device is cuda but no CUDA device is available here; pass --device cpu or auto")


def train_and_record(spec, paths, sweep_id: str, config, progress_every: float | None) -> tuple[str, dict[str, Any]]:
    """Train ``config`` and record it through a ``SweepTracker``; return its status and last row.

    A trial that raises or is interrupted is recorded as failed, its parent run ends FAILED
    or KILLED, and the exception propagates.
    """
    from harness.progress import StepProgress
    from harness.sweep import SAMPLES_DIRNAME, tune_result
    from harness.tracking import SweepTracker, device_label
    from harness.trainer import Trainer

    tracker = SweepTracker(
        tracking_uri=paths.tracking_uri,
        experiment=spec.tracking.experiment or spec.name,
        results=paths.results,
        sweep_id=sweep_id,
        spec_file=paths.output / "spec.yaml",
        artifact_root=paths.artifact_root,
    )
    trial_id = secrets.token_hex(4)
    tracker.open_trial(trial_id, config)
    last: dict[str, Any] = {}

    try:
        trainer = Trainer(config)
        trainer.samples_dir = paths.output / SAMPLES_DIRNAME / trial_id
        device = device_label(trainer.device)
        progress = StepProgress(config.steps, trainer.task.metric_names, interval_s=progress_every)

        def record(row: dict[str, Any]) -> None:
            last.update(row)
            progress.evaluation(row)
            tracker.record_result(trial_id, config, {**tune_result(row), "device": device})

        try:
            trainer.run(record, on_step=progress.update)
        finally:
            progress.close()
    except KeyboardInterrupt:
        tracker.fail_trial(trial_id, config, "interrupted by the user")
        tracker.finish("KILLED")
        raise
    except Exception as error:
        tracker.fail_trial(trial_id, config, f"{type(error).__name__}: {error}")
        tracker.finish("FAILED")
        raise

    status = tracker.complete_trial(trial_id, config)
    tracker.finish("FINISHED")
    return status, last


def summary_line(config, status: str, last: dict[str, Any]) -> str:
    from harness.tasks import get_task

    line = f"trial {config.run_name} {status} at step {last.get('step', 0)}"
    if "wall_time_s" in last:
        line += f" after {last['wall_time_s']:.1f} s of training"
    metrics = [f"{name} {last[name]:.4g}" for name in get_task(config.task).metric_names
               if isinstance(last.get(name), (int, float))]
    if metrics and status == "finished":
        line += ": " + ", ".join(metrics)
    return line
