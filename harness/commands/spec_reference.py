"""``harness spec-reference``: print or write the sweep spec reference generated from the schema."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "spec-reference"
HELP = "Print the sweep spec reference (Markdown), or write it with --output."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, help="Write the reference here, e.g. docs/spec.md.")


def run(args: argparse.Namespace) -> int:
    from harness.specdoc import render

    text = render()
    if args.output:
        args.output.write_text(text)
        print(f"wrote {args.output}")
    else:
        print(text, end="")
    return 0
