"""``meio estimate``: demand and shipment histories → stages and arcs tables, with diagnostics."""

from __future__ import annotations

import argparse
import time

import polars as pl
from rich.console import Console

import meio
from meio.cli.jobs import TaskProgress, open_client, task_slots
from meio.cluster.estimate import estimate_partitioned, network_ranges
from meio.config import ClusterConfig
from meio.estimate import Estimate, prepare_estimate, write_estimate
from meio.estimate.demand import PERIOD_DAYS
from meio.estimate.history import DEFAULT_DATE_FORMAT
from meio.estimate.lanes import PRIOR_SHIPMENTS
from meio.estimate.tables import LEAD_TIME_UNITS
from meio.io.read import file_facts
from meio.io.write import check_output_target, file_sha256


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``estimate`` subcommand and its flags."""
    parser = commands.add_parser(
        "estimate", help="estimate demand and lane lead times from history (see docs/estimate.md)",
        description="Estimate demand (mean, sd, class, distribution) per stage from a demand "
        "history and transit lead times per lane from shipment records; write stages, arcs and "
        "diagnostics tables ready for meio optimize.",
    )
    parser.add_argument("--demand", help="demand history: network, stage, date, quantity [, forecast]")
    parser.add_argument("--shipments", help="shipment records: network, upstream, downstream (or origin, "
                        "destination [, mode, carrier]), shipped, received [, quantity]")
    parser.add_argument("--stages", help="stages table to fill (default: built from the histories)")
    parser.add_argument("--arcs", help="arcs table to fill (default: built from the shipments' arcs)")
    parser.add_argument("--period", choices=sorted(PERIOD_DAYS), default="day",
                        help="period of the estimates (default day; week runs Monday to Sunday)")
    parser.add_argument("--stockout-column", help="demand column flagging records taken out of stock "
                        "(those periods are left out, not counted as zero demand)")
    parser.add_argument("--date-format", default=DEFAULT_DATE_FORMAT,
                        help="strptime format of dates given as text (default %(default)s)")
    parser.add_argument("--start", help="first day of one window for every stage (YYYY-MM-DD; with --end)")
    parser.add_argument("--end", help="last day of that window")
    parser.add_argument("--pool-by", help="shipments column that pools lanes (default mode, else origin)")
    parser.add_argument("--prior-shipments", type=float, default=PRIOR_SHIPMENTS,
                        help="weight in shipments of a lane's pool in its figures (default %(default)g; "
                        "0: no pooling)")
    parser.add_argument("--default-lead-time", type=float, default=0.0,
                        help="lead time of built stages without an estimated inbound lane (default 0)")
    parser.add_argument("--lead-time-unit", choices=LEAD_TIME_UNITS,
                        help="unit of the given tables' lead times, service times and review periods "
                        "and of --default-lead-time: day (converted to the period) or period (kept); "
                        "required with --period week when --stages, --arcs or --default-lead-time is given")
    parser.add_argument("--output", required=True, help="directory for stages, arcs and diagnostics")
    parser.add_argument("--overwrite", action="store_true")
    group = parser.add_argument_group("histories larger than memory: partitions of whole networks, as "
                                      "meio optimize cuts them (see docs/estimate.md)")
    group.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT")
    sizes = group.add_mutually_exclusive_group()
    sizes.add_argument("--partitions", type=int, help="number of partitions of whole networks")
    sizes.add_argument("--partition-size", type=int, help="stages per partition (of the stages table, "
                       "else demand records per partition)")
    group.add_argument("--workers", type=int, help="local cluster: worker processes (default: cores)")
    group.add_argument("--threads-per-worker", type=int, default=1,
                       help="local cluster: Dask threads per worker (default 1)")


def run(args: argparse.Namespace, console: Console) -> None:
    """Estimate, write the run directory, print what was estimated."""
    check_output_target(args.output, overwrite=args.overwrite)
    started = time.perf_counter()
    sources = {name: getattr(args, name) for name in ("demand", "shipments", "stages", "arcs")}
    options = {name: getattr(args, name) for name in (
        "period", "stockout_column", "date_format", "start", "end", "pool_by", "prior_shipments",
        "default_lead_time", "lead_time_unit")}
    cluster = ClusterConfig(scheduler=args.scheduler, workers=args.workers,
                            threads_per_worker=args.threads_per_worker, partitions=args.partitions,
                            partition_size=args.partition_size)
    partitioned = any(value is not None for value in (args.scheduler, args.workers, args.partitions,
                                                      args.partition_size))
    with console.status("checking the options and the given tables"):
        job = prepare_estimate(**sources, **options)
        ranges = (network_ranges(job, args.stages, partitions=args.partitions,
                                 partition_size=args.partition_size) if partitioned else None)
    if ranges is None:
        with console.status("estimating from history"):
            result = job.finish([job.part(None)])
    else:
        result = _partitioned(job, ranges, cluster, console)
    seconds = time.perf_counter() - started
    with console.status("writing"):
        inputs = {name: {**file_facts(path), "sha256": file_sha256(path)}
                  for name, path in sources.items() if path is not None}
        write_estimate(result, args.output,
                       {"meio_version": meio.__version__, "inputs": inputs, "options": options,
                        "partitions": len(ranges) if ranges is not None else 1, "seconds": seconds},
                       overwrite=args.overwrite)
    _summary(console, result, time.perf_counter() - started)
    console.print(f"results: {args.output}/{{stages.parquet, arcs.parquet, diagnostics.parquet, "
                  "manifest.json}")


def _partitioned(job, ranges: list, cluster: ClusterConfig, console: Console) -> Estimate:
    """The estimate on partitions of whole networks, with the progress of its tasks."""
    with open_client(cluster, len(ranges)) as client:
        where = client.scheduler.address if client is not None else "this process"
        with TaskProgress(console, f"estimate on {where}: tasks",
                          slots=task_slots(client)) as progress:
            return estimate_partitioned(job, ranges, client,
                                        on_progress=lambda event: progress.advance(event.total))


def _summary(console: Console, result: Estimate, seconds: float) -> None:
    """Stages by class and distribution, lanes pooled and outliers dropped."""
    diagnostics = result.diagnostics
    if "stage" in diagnostics.columns:
        demand = diagnostics.filter(pl.col("kind") == "demand")
        estimated = demand.filter(pl.col("estimated"))
        classes = _counts(estimated, "demand_class")
        laws = _counts(estimated, "demand_distribution")
        console.print(f"demand: {estimated.height:,} of {demand.height:,} stages estimated from "
                      f"{int(demand['rows'].sum()):,} records; classes {classes}; distributions {laws}")
    if "shipments" in diagnostics.columns:
        lanes = diagnostics.filter(pl.col("kind") == "lane")
        console.print(f"lanes: {lanes.height:,} from {int(lanes['shipments'].sum()):,} shipments, "
                      f"{int(lanes['outliers'].sum()):,} outliers dropped, "
                      f"{lanes.filter(pl.col('weight') < 0.5).height:,} lanes mostly pooled (weight < 0.5)")
    console.print(f"{result.stages.height:,} stages, {result.arcs.height:,} arcs in {seconds:.2f} s")


def _counts(frame: pl.DataFrame, column: str) -> str:
    """``value count`` pairs of one column, most frequent first."""
    counts = frame.group_by(column).len().sort(["len", column], descending=[True, False])
    return ", ".join(f"{value or 'none'} {count:,}" for value, count in counts.iter_rows()) or "none"
