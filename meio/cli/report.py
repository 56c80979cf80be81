"""``meio report``: the self-contained HTML report of a run directory (docs/report.md)."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

from meio.report import REPORT_FILE, write_report


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``report`` subcommand and its flags."""
    parser = commands.add_parser(
        "report", help="write the HTML report of a run directory",
        description="Write one self-contained HTML file (no network needed to open it) that shows a "
        "run: cost against single-echelon, where the stock sits, savings, the networks that matter, "
        "service, and networks in detail with the reason for every stage's stock. Runs of meio "
        "optimize and meio simulate write it themselves; this command makes it again, with options.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory of meio optimize or meio simulate")
    parser.add_argument("--output", help=f"HTML file to write (default RUN_DIR/{REPORT_FILE})")
    parser.add_argument("--group-by", action="append", default=[], metavar="COL",
                        help="also show inventory by this column of the stages table (repeatable)")
    parser.add_argument("--network", action="append", default=[], metavar="ID",
                        help="also show this network in detail (repeatable)")
    parser.add_argument("--simulation", metavar="SIM_DIR",
                        help="a meio simulate run of this plan: predicted against simulated service")
    parser.add_argument("--arcs", help="the catalog's arcs, when the run's manifest no longer reaches them")


def run(args: argparse.Namespace, console: Console) -> None:
    """Write the report and say where, how large and how long it took."""
    started = time.perf_counter()
    path = write_report(args.run_dir, args.output, group_by=args.group_by, networks=args.network,
                        simulation=args.simulation, arcs=args.arcs)
    console.print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB) in "
                  f"{time.perf_counter() - started:.2f} s")
