"""``meio generate``: write a seeded synthetic catalog (stages and arcs tables), and histories."""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import time

from rich.console import Console

import meio
from meio.config import GenerateConfig
from meio.generate_history import history_blocks, history_schema, history_spec
from meio.io.errors import InputError
from meio.io.write import check_output_target, write_frames, write_run_directory


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``generate`` subcommand and its flags."""
    parser = commands.add_parser("generate", help="write a seeded synthetic catalog")
    parser.add_argument("--networks", type=int, required=True)
    parser.add_argument("--shape", default="mixed",
                        choices=["serial", "assembly", "distribution", "tree", "dag", "mixed"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages-per-network", type=int,
                        help="fixed network size (default: drawn per shape)")
    parser.add_argument("--dag-arcs-per-stage", type=float, default=1.6,
                        help="arc density of dag networks (8 gives ~16,000 arcs on 2,000 stages)")
    parser.add_argument("--output", required=True, help="directory for stages/arcs tables")
    parser.add_argument("--overwrite", action="store_true")
    history = parser.add_argument_group("history (see docs/estimate.md)")
    history.add_argument("--history", action="store_true",
                         help="also draw daily demand records and shipment records from the catalog's "
                         "true parameters (written to its stages/arcs) into demand.parquet and "
                         "shipments.parquet")
    history.add_argument("--history-days", type=int, default=730, help="days of history (default 730)")
    history.add_argument("--history-start", type=dt.date.fromisoformat, default=dt.date(2023, 1, 2),
                         help="first day (default 2023-01-02, a Monday)")
    history.add_argument("--intermittent-share", type=float, default=0.3,
                         help="share of demand stages that are slow movers (default 0.3)")
    history.add_argument("--stockout-rate", type=float, default=0.02,
                         help="mean daily out-of-stock probability of a demand stage (default 0.02)")
    history.add_argument("--shipments-per-arc", type=float, default=40.0,
                         help="mean shipments per arc (default 40)")
    history.add_argument("--disruption-rate", type=float, default=0.002,
                         help="share of shipments held 20-60 extra days (default 0.002)")
    history.add_argument("--forecasts", action="store_true",
                         help="add a forecast column (the true mean) to the demand records")


def run(args: argparse.Namespace, console: Console) -> None:
    """Generate the catalog and write its tables."""
    check_output_target(args.output, overwrite=args.overwrite)
    started = time.perf_counter()
    spec = GenerateConfig(networks=args.networks, shape=args.shape, seed=args.seed,
                          stages_per_network=args.stages_per_network,
                          dag_arcs_per_stage=args.dag_arcs_per_stage)
    with console.status(f"generating {args.networks:,} {args.shape} networks"):
        try:
            stages, arcs = spec.tables()
            tables, history = _with_history(args, stages, arcs)
        except ValueError as error:
            raise InputError("generate", "-", str(error)) from error
        manifest = {"meio_version": meio.__version__, "generated": vars(spec), "history": history}
        written = write_run_directory(args.output, tables, manifest, overwrite=args.overwrite)
    counts = ", ".join(f"{name} {entry['rows']:,}" for name, entry in _files(written).items())
    console.print(f"{counts} rows in {time.perf_counter() - started:.2f} s: "
                  f"{args.output}/{{{', '.join(f'{name}.parquet' for name in tables)}}}")


def _with_history(args: argparse.Namespace, stages, arcs) -> tuple[dict, dict | None]:
    """The tables to write: the catalog, or with --history its true parameters and histories."""
    if not args.history:
        return {"stages": stages, "arcs": arcs}, None
    options = {"days": args.history_days, "start": args.history_start, "seed": args.seed,
               "intermittent_share": args.intermittent_share, "stockout_rate": args.stockout_rate,
               "shipments_per_arc": args.shipments_per_arc, "disruption_rate": args.disruption_rate,
               "forecasts": args.forecasts}
    spec = history_spec(stages, arcs, **options)

    def writer(table: str):
        return lambda path: write_frames(
            path, itertools.chain([history_schema(spec, table)], history_blocks(spec, table)))

    tables = {"stages": spec.stages, "arcs": spec.arcs, "demand": writer("demand"),
              "shipments": writer("shipments")}
    return tables, options


def _files(output) -> dict:
    """The ``files`` entry of a written run directory's manifest."""
    return json.loads((output / "manifest.json").read_text())["files"]
