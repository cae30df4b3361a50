"""``harness sweep SPEC``: run a sweep spec with Ray Tune and Optuna, here or as a SLURM job."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

NAME = "sweep"
HELP = "Run a sweep spec with Ray Tune and Optuna, on this machine or as a SLURM job."

logger = logging.getLogger(__name__)

# Command-line options that set a spec field: (option, spec path, type, help).
SPEC_OPTIONS = (
    ("--launcher", "sweep.launcher", str, "local (default): Ray on this machine; slurm: submit one SLURM job."),
    ("--partition", "slurm.partition", str, "SLURM partition (default: the cluster's default partition)."),
    ("--nodes", "slurm.nodes", int, "SLURM nodes; each runs one Ray node (default 1)."),
    ("--gpus-per-node", "slurm.gpus_per_node", int, "GPUs per SLURM node (default 0)."),
    ("--cpus-per-task", "slurm.cpus_per_task", int, "CPU cores per SLURM node given to Ray (default 2)."),
    ("--mem-gb", "slurm.mem_gb", float, "Memory per SLURM node in GB (default: the partition's default)."),
    ("--time-min", "slurm.time_min", int, "Time limit of one run of the SLURM job in minutes (default 1440)."),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="YAML sweep spec, e.g. sweeps/quickstart.yaml.")
    parser.add_argument("--output", type=Path, help="Output folder (default runs/<spec name>).")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="Override a spec field by dotted path with a YAML value, e.g. --set train.steps=200.",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="Continue the sweep in --output after a crash: restore the Tune experiment and the Optuna "
        "search, and restart unfinished trials from their last checkpoints.",
    )
    for option, path, kind, text in SPEC_OPTIONS:
        parser.add_argument(option, type=kind, help=f"{text} Sets {path}.")
    parser.add_argument(
        "--sbatch-arg", dest="sbatch_args", action="append", default=[], metavar="NAME=VALUE",
        help="Extra sbatch option by long name, e.g. --sbatch-arg account=lab. Sets slurm.sbatch_args.",
    )
    parser.add_argument(
        "--detach", action="store_true",
        help="With --launcher slurm, return once the job is submitted instead of waiting for it.",
    )


def run(args: argparse.Namespace) -> int:
    from harness.config import load_spec

    spec = load_spec(args.spec, [*args.overrides, *_option_overrides(args)])
    if spec.sweep.launcher == "slurm":
        return _run_on_slurm(spec, args)

    from harness.sweep import run_sweep

    summary = run_sweep(spec, args.output, resume=args.resume)
    _print_summary(summary.sweep_id, summary.trials, summary.seconds, summary.counts, summary.output)
    return 0


def _run_on_slurm(spec, args: argparse.Namespace) -> int:
    from harness import slurm
    from harness.sweep import default_output, existing_sweep, new_sweep, preflight

    output = (args.output or default_output(spec)).resolve()
    preflight(spec, output, args.resume)
    slurm.check_slurm(spec)

    created = not output.exists()
    sweep_id = existing_sweep(spec, output) if args.resume else new_sweep(spec, output)
    try:
        job = slurm.submit(spec, output, sweep_id)
    except Exception:
        if not args.resume:
            _remove_new_sweep(output, created)
        raise
    print(f"sweep {sweep_id}: submitted SLURM job {job.job_id}; logs in {job.paths.folder}")
    print(f"results: {output}")
    if args.detach:
        print(f"follow it with: squeue --jobs {job.job_id}")
        return 0

    try:
        result = slurm.wait(job)
    except KeyboardInterrupt:
        print(f"\nstopped waiting; SLURM job {job.job_id} keeps running (scancel {job.job_id} stops it)")
        return 130
    except Exception as error:  # the job's own error, raised again by submitit on this side
        print(f"harness sweep: error: SLURM job {job.job_id} failed: {error}", file=sys.stderr)
        print(f"continue it with: harness sweep {args.spec} --output {output} --launcher slurm --resume",
              file=sys.stderr)
        return 1
    _print_summary(result["sweep_id"], result["trials"], result["seconds"], result["counts"], output)
    return 0


def _option_overrides(args: argparse.Namespace) -> list[str]:
    """Turn the options that set spec fields into ``--set`` overrides, applied after the others."""
    overrides = []
    for option, path, _, _ in SPEC_OPTIONS:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if value is not None:
            overrides.append(f"{path}={json.dumps(value)}")
    for text in args.sbatch_args:
        name, separator, value = text.partition("=")
        overrides.append(f"slurm.sbatch_args.{name.strip()}={json.dumps(value) if separator else 'true'}")
    return overrides


def _remove_new_sweep(output: Path, created: bool) -> None:
    """Remove what a rejected submission left, so the same command can run again."""
    from harness.slurm import SLURM_DIRNAME
    from harness.sweep import SWEEP_FILE

    if created:
        shutil.rmtree(output, ignore_errors=True)
        return
    for name in ("spec.yaml", SWEEP_FILE):
        (output / name).unlink(missing_ok=True)
    shutil.rmtree(output / SLURM_DIRNAME, ignore_errors=True)


def _print_summary(sweep_id: str, trials: int, seconds: float, counts: dict[str, int], output: Path) -> None:
    text = ", ".join(f"{count} {status}" for status, count in counts.items())
    print(f"sweep {sweep_id}: {trials} trials in {seconds:.0f} s ({text})")
    print(f"results: {output}")
    print(f"next: harness report {output}")
