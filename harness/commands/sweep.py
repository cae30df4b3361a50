"""``harness sweep SPEC``: run a sweep spec with Ray Tune and Optuna."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "sweep"
HELP = "Run a sweep spec with Ray Tune and Optuna."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", type=Path, help="YAML sweep spec, e.g. sweeps/quickstart.yaml.")
    parser.add_argument("--output", type=Path, help="Output folder (default runs/<spec name>).")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="Override a spec field by dotted path with a YAML value, e.g. --set train.steps=200.",
    )


def run(args: argparse.Namespace) -> int:
    from harness.config import load_spec
    from harness.sweep import run_sweep

    spec = load_spec(args.spec, args.overrides)
    summary = run_sweep(spec, args.output)
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
    print(f"sweep {summary.sweep_id}: {summary.trials} trials in {summary.seconds:.0f} s ({counts})")
    print(f"results: {summary.output}")
    print(f"next: harness report {summary.output}")
    return 0
