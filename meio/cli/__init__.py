"""The ``meio`` command: optimize (optionally verified), simulate, generate, estimate, report, frontier.

The CLI owns the terminal: progress while the run works, a summary at the end, and one clear
line for bad input (exit status 2, nothing written). One module per command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console

import meio
from meio.cli import estimate, frontier, generate, optimize, report, simulate
from meio.io.errors import InputError

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``meio`` command."""
    parser = argparse.ArgumentParser(prog="meio", description=meio.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"meio {meio.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    optimize.add_parser(commands)
    simulate.add_parser(commands)
    generate.add_parser(commands)
    report.add_parser(commands)
    frontier.add_parser(commands)
    estimate.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``meio`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    errors = Console(stderr=True)
    handlers = {"optimize": optimize.run, "simulate": simulate.run, "generate": generate.run,
                "report": report.run, "frontier": frontier.run, "estimate": estimate.run}
    try:
        handlers[args.command](args, console)
    except InputError as error:
        errors.print(f"meio: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    return 0
