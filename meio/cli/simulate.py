"""``meio simulate``: run a base-stock policy through the Monte Carlo simulation (docs/simulate.md)."""

from __future__ import annotations

import argparse
import time

from rich.console import Console
from rich.table import Table

import meio
from meio.api import DEFAULT_SERVICE_LEVEL
from meio.cli.jobs import add_cluster_flags, apply_cluster_flags, open_client, print_files, run_job
from meio.cluster import RunResult, prepare_catalog
from meio.cluster.task import MISSING_EXAMPLES, SIMULATE
from meio.config import ClusterConfig
from meio.engine.simulate import DEMAND_KINDS


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``simulate`` subcommand and its flags (horizon, demand model, cluster)."""
    parser = commands.add_parser(
        "simulate", help="simulate a base-stock policy and measure the service it delivers",
        description="Monte Carlo simulation of a base-stock policy on every network of a catalog "
        "(docs/simulate.md). Writes a run directory of simulated measures with 95% confidence "
        "intervals beside each stage's targets.",
    )
    parser.add_argument("--stages", required=True, help="stages table (.parquet, .csv, .arrow)")
    parser.add_argument("--arcs", help="arcs table (optional: single-stage networks)")
    parser.add_argument("--policy", required=True,
                        help="run directory of `meio optimize`, or a table of network, stage, base_stock "
                        "(or echelon_base_stock) and optionally outbound_service_time and "
                        "inbound_service_time")
    parser.add_argument("--periods", type=int, default=1000, help="measured periods (default 1000)")
    parser.add_argument("--replications", type=int, default=30, help="replications (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--warmup", type=int, default=100, help="periods discarded first (default 100)")
    parser.add_argument("--demand", choices=sorted(DEMAND_KINDS),
                        help="external demand per period of every demand stage (default: each stage's "
                        "demand_distribution column; normal is censored at 0)")
    parser.add_argument("--history",
                        help="demand history table (network, stage, demand) for --demand history")
    parser.add_argument("--service-level", type=float, default=DEFAULT_SERVICE_LEVEL,
                        help="cycle service target of demand stages without one (default 0.95)")
    parser.add_argument("--holding-rate", type=float,
                        help="holding cost per period per unit of cumulative cost, for stages "
                        "without holding_cost")
    parser.add_argument("--ignore-review-period", action="store_true",
                        help="every stage reviews every period (what gsm and ssm plans assume), whatever "
                        "the stages' review_period")
    parser.add_argument("--threads", type=int,
                        help="Numba threads per partition (default: all cores; on a cluster, cores over "
                        "the Dask threads of a host)")
    parser.add_argument("--output", required=True, help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    add_cluster_flags(parser)


def simulation_summary(console: Console, result: RunResult, seconds: float) -> None:
    """How many demand stages meet their targets, and a table of the first that miss."""
    inputs = result.manifest["inputs"]
    demand, missing = int(result.total("demand_stages")), int(result.total("missing_stages"))
    skipped = int(result.total("unsimulated_networks"))
    horizon = result.manifest["config"]["options"]
    console.print(
        f"simulated {inputs['stages_rows']:,} stages of {inputs['networks'] - skipped:,} networks "
        f"({horizon['periods']:,} periods x {horizon['replications']:,} replications) in "
        f"{seconds:.2f} s: {demand - missing:,} of {demand:,} demand stages meet their targets, "
        f"{missing:,} miss (95% interval below target); mean cost per period "
        f"{result.total('mean_cost'):,.2f}"
    )
    if skipped:
        console.print(f"{skipped:,} networks have no base-stock levels in the policy (NaN) and were not "
                      "simulated")
    first = result.rows("first_missing")[:MISSING_EXAMPLES]
    if first:
        table = Table(title=f"demand stages missing their targets (first {len(first)})")
        for column in ("network", "stage", "target CSL", "simulated CSL ±95%", "target fill",
                       "fill rate"):
            table.add_column(column, justify="right")
        for row in first:
            low, high = row["cycle_service_level_ci_low"], row["cycle_service_level_ci_high"]
            half = "" if low is None else f" ±{(high - low) / 2:.3f}"  # no interval from 1 replication
            table.add_row(
                row["network"], row["stage"], _share(row["target_service_level"]),
                _share(row["cycle_service_level"]) + half, _share(row["target_fill_rate"]),
                _share(row["fill_rate"]),
            )
        console.print(table)


def _share(value: float | None) -> str:
    """A rate or target for the summary table (``-`` where there is none)."""
    return "-" if value is None else f"{value:.3f}"


def run(args: argparse.Namespace, console: Console) -> None:
    """Simulate the policy on the catalog, write the run directory, print the summary.

    Options, output target and inputs are all checked by :func:`meio.cluster.prepare_catalog`
    before anything is written.
    """
    cluster = apply_cluster_flags(ClusterConfig(), args)
    started = time.perf_counter()
    options = {name: getattr(args, name) for name in ("periods", "replications", "seed", "warmup", "demand")}
    options["review_period"] = not args.ignore_review_period
    with console.status("checking the catalog and the policy, planning partitions"):
        job = prepare_catalog(
            args.stages, args.arcs, args.output, model=SIMULATE, service_level=args.service_level,
            holding_rate=args.holding_rate, options=options, policy=args.policy, history=args.history,
            partitions=cluster.partitions, partition_size=cluster.partition_size,
            resume=cluster.resume, overwrite=args.overwrite, numba_threads=args.threads,
        )
    manifest = {"meio_version": meio.__version__, "run_config": {"cluster": vars(cluster)}}
    with open_client(cluster, len(job.pending)) as client:
        result = run_job(job, client, console, "simulate", cluster, manifest)
    simulation_summary(console, result, time.perf_counter() - started)
    print_files(console, result)
