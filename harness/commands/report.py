"""``harness report RESULTS_DIR``: the Table-1-style comparison as Markdown and CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "report"
HELP = "Print and write the Table-1-style comparison of a sweep's results."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="A sweep's output folder or its results folder.")
    parser.add_argument("--metric", help="Rank and show this metric instead of each task's objective.")


def run(args: argparse.Namespace) -> int:
    from analysis.report import write_report

    report = write_report(args.results, metric=args.metric)
    print(report.markdown)
    print(f"\nwrote {report.markdown_path}, {report.csv_path} and {report.latex_path}")
    for figure in report.figures:
        print(f"wrote {figure}")
    return 0
