"""The ``harness`` command line: sweep, report and train."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from harness.errors import HarnessInputError

EXIT_BAD_INPUT = 2
logger = logging.getLogger("harness")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser("sweep", help="Run a sweep spec with Ray Tune and Optuna.")
    sweep.add_argument("spec", type=Path, help="YAML sweep spec, e.g. sweeps/quickstart.yaml.")
    sweep.add_argument("--output", type=Path, help="Output folder (default runs/<spec name>).")
    sweep.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="Override a spec field by dotted path with a YAML value, e.g. --set train.steps=200.",
    )

    report = commands.add_parser("report", help="Print and write the Table-1-style comparison.")
    report.add_argument("results", type=Path, help="A sweep's output folder or its results folder.")
    report.add_argument("--metric", help="Rank and show this metric instead of each task's objective.")

    return parser


def _command_sweep(args) -> int:
    from harness.config import load_spec
    from harness.sweep import run_sweep

    spec = load_spec(args.spec, args.overrides)
    summary = run_sweep(spec, args.output)
    counts = ", ".join(f"{count} {status}" for status, count in summary.counts.items())
    print(f"sweep {summary.sweep_id}: {summary.trials} trials in {summary.seconds:.0f} s ({counts})")
    print(f"results: {summary.output}")
    print(f"next: harness report {summary.output}")
    return 0


def _command_report(args) -> int:
    from analysis.report import write_report

    report = write_report(args.results, metric=args.metric)
    print(report.markdown)
    print(f"\nwrote {report.markdown_path} and {report.csv_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    handlers = {"sweep": _command_sweep, "report": _command_report}
    try:
        return handlers[args.command](args)
    except HarnessInputError as error:
        print(f"harness {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
