"""Subcommands of the ``harness`` CLI, one module each.

Each module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
Adding a command means adding its module and one entry to ``COMMANDS`` in ``harness.cli``.
"""
