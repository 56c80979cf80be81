"""``meio frontier``: safety-stock cost against service level, MEIO beside single-echelon."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

import meio
from meio.api import MODELS
from meio.frontier import check_service_levels, frontier
from meio.io.errors import InputError
from meio.io.read import file_facts
from meio.io.write import check_output_target, write_run_directory
from meio.report import FRONTIER, REPORT_FILE
from meio.report.frontier import build_frontier_report, frontier_levels
from meio.report.render import write_html

DEFAULT_LEVELS = "0.8,0.9,0.95,0.98,0.99"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``frontier`` subcommand and its flags."""
    parser = commands.add_parser(
        "frontier", help="safety-stock cost against service level (MEIO and single-echelon)",
        description="Plan the catalog once per service level, the level applied to every demand stage "
        "(stage-level targets set aside), with the model and single-echelon; write DIR/frontier.parquet "
        "(network, service_level, model, safety_stock_cost, networks; network null on catalog rows) and "
        "DIR/report.html. See docs/report.md.",
    )
    parser.add_argument("--stages", required=True, help="stages table (.parquet, .csv, .arrow)")
    parser.add_argument("--arcs", help="arcs table (optional: single-stage networks)")
    parser.add_argument("--model", default="gsm", choices=sorted(MODELS), help="model (default gsm)")
    parser.add_argument("--service-levels", default=DEFAULT_LEVELS,
                        help=f"comma-separated cycle service levels (default {DEFAULT_LEVELS})")
    parser.add_argument("--holding-rate", type=float,
                        help="holding cost per period per unit of cumulative cost, for stages without "
                        "holding_cost")
    parser.add_argument("--certify", action="store_true",
                        help="certify the plan and the single-echelon baseline at every level "
                        "(docs/certify.md): costs become simulated holding costs at certified service")
    parser.add_argument("--output", required=True, help="directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing directory")


def _levels(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise InputError("config", "service_levels",
                         f"must be numbers separated by commas: {error}") from None
    return check_service_levels(values)


def run(args: argparse.Namespace, console: Console) -> None:
    """Sweep the levels, write the directory atomically with its report, print the catalog curve."""
    levels = _levels(args.service_levels)
    check_output_target(args.output, overwrite=args.overwrite)
    started = time.perf_counter()
    with console.status(f"planning the catalog at {len(levels)} service levels"):
        table = frontier((args.stages, args.arcs), service_levels=levels, model=args.model,
                         holding_rate=args.holding_rate, certify=args.certify)
    manifest = {
        "meio_version": meio.__version__, "command": FRONTIER,
        "config": {"model": args.model, "service_levels": levels, "holding_rate": args.holding_rate,
                   "certify": args.certify},
        "inputs": {"stages": file_facts(args.stages), "arcs": file_facts(args.arcs) if args.arcs else None},
        "timings_seconds": {"total": time.perf_counter() - started},
    }
    output = write_run_directory(
        args.output, {"frontier": table}, manifest, overwrite=args.overwrite,
        finish=lambda staging: write_html(build_frontier_report(table, manifest), staging / REPORT_FILE))
    summary = Table(title="safety-stock cost of the catalog per service level")
    for column in ("service level", args.model, "single-echelon", "saving"):
        summary.add_column(column, justify="right")
    for row in frontier_levels(table, args.model):
        summary.add_row(f"{row['service_level']:g}", f"{row['cost']:,.2f}", f"{row['single']:,.2f}",
                        f"{row['saving_pct']:.1f}%")
    console.print(summary)
    console.print(f"results: {output}/{{frontier.parquet, manifest.json, {REPORT_FILE}}}")
