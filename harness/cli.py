"""The ``harness`` command line. Bad input ends with one message on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys

from harness.commands import bench, describe, jacobian, report, spec_reference, sweep, train, ui
from harness.errors import HarnessInputError

EXIT_BAD_INPUT = 2
COMMANDS = (sweep, train, report, spec_reference, ui, jacobian, bench, describe)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness", description="Benchmark and sweep GAN training methods."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_arguments(subparsers.add_parser(command.NAME, help=command.HELP))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    command = next(c for c in COMMANDS if c.NAME == args.command)
    try:
        return command.run(args)
    except HarnessInputError as error:
        print(f"harness {args.command}: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
