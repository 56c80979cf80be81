"""The ``meio`` command: optimize (optionally verified by simulation), simulate, generate.

The CLI owns the terminal: progress while the run works, a summary at the end, and one clear
line for bad input (exit status 2, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import meio
from meio.api import DEFAULT_SERVICE_LEVEL
from meio.cluster import CatalogJob, RunResult, local_cluster, prepare_catalog
from meio.cluster.task import MISSING_EXAMPLES, SIMULATE
from meio.config import ClusterConfig, GenerateConfig, OptimizeConfig, RunConfig, load_config
from meio.engine.gsm import GENERAL_LIMIT_RULES, broken_general_limit
from meio.engine.simulate import DEMAND_KINDS
from meio.io.errors import InputError
from meio.io.write import check_output_target, write_run_directory
from meio.simulation import check_demand_model, check_simulation_options

EXIT_BAD_INPUT = 2
#: Periods `optimize --verify` simulates and discards before measuring.
VERIFY_WARMUP = 100


def _add_optimize(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "optimize", help="place safety stock on every network of a catalog",
        description="Optimize a catalog. With no --config and no --stages, runs the embedded "
        "demo configuration (a generated mixed catalog).",
    )
    parser.add_argument("--config", help="TOML run configuration (flags override it)")
    parser.add_argument("--stages", help="stages table (.parquet, .csv, .arrow)")
    parser.add_argument("--arcs", help="arcs table (optional: single-stage networks)")
    parser.add_argument("--model", choices=sorted(meio.MODELS), help="model (default gsm)")
    parser.add_argument("--service-level", type=float, help="default cycle service level")
    parser.add_argument("--holding-rate", type=float,
                        help="holding cost per period per unit of cumulative cost, for stages "
                        "without holding_cost")
    parser.add_argument("--slp-starts", type=int,
                        help="gsm, general networks: starts of the successive-LP heuristic (67)")
    parser.add_argument("--mip-node-limit", type=int,
                        help="gsm, general networks: branch-and-bound nodes of the exact MIP after "
                        "the heuristic (default 0: heuristic only)")
    parser.add_argument("--time-limit", type=float,
                        help="gsm, general networks: wall-clock safety net in seconds of the MIP per "
                        "network (default none; a MIP it cuts is not reproducible)")
    parser.add_argument("--output", help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace an existing run directory")
    verify = parser.add_argument_group("verification (see docs/simulate.md)")
    verify.add_argument("--verify", action="store_true",
                        help="simulate the committed plan and report demand stages that miss their targets")
    verify.add_argument("--verify-periods", type=int, default=500, help="measured periods (default 500)")
    verify.add_argument("--verify-replications", type=int, default=10, help="replications (default 10)")
    verify.add_argument("--verify-seed", type=int, default=0, help="seed of the simulation (default 0)")
    verify.add_argument("--verify-output",
                        help="keep the simulation's run directory here (default: deleted after the report)")
    _add_cluster_flags(parser)


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "simulate", help="simulate a base-stock policy and measure the service it delivers",
        description="Monte Carlo simulation of a base-stock policy on every network of a catalog "
        "(docs/simulate.md). Writes a run directory of simulated measures with 95%% confidence "
        "intervals beside each stage's targets.",
    )
    parser.add_argument("--stages", required=True, help="stages table (.parquet, .csv, .arrow)")
    parser.add_argument("--arcs", help="arcs table (optional: single-stage networks)")
    parser.add_argument("--policy", required=True,
                        help="run directory of `meio optimize`, or a table of network, stage, base_stock "
                        "(or echelon_base_stock) and optionally outbound_service_time")
    parser.add_argument("--periods", type=int, default=1000, help="measured periods (default 1000)")
    parser.add_argument("--replications", type=int, default=30, help="replications (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--warmup", type=int, default=100, help="periods discarded first (default 100)")
    parser.add_argument("--demand", default="normal", choices=sorted(DEMAND_KINDS),
                        help="external demand per period (default normal, censored at 0)")
    parser.add_argument("--history",
                        help="demand history table (network, stage, demand) for --demand history")
    parser.add_argument("--service-level", type=float, default=DEFAULT_SERVICE_LEVEL,
                        help="cycle service target of demand stages without one (default 0.95)")
    parser.add_argument("--holding-rate", type=float,
                        help="holding cost per period per unit of cumulative cost, for stages "
                        "without holding_cost")
    parser.add_argument("--threads", type=int,
                        help="Numba threads per partition (default: all cores; on a cluster, cores over "
                        "the Dask threads of a host)")
    parser.add_argument("--output", required=True, help="run directory to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    _add_cluster_flags(parser)


def _add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Where the run executes and how it is partitioned (the [cluster] config section)."""
    group = parser.add_argument_group("cluster (see docs/cluster.md)")
    group.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT "
                       "(default: an embedded local cluster when there is more than one partition)")
    sizes = group.add_mutually_exclusive_group()
    sizes.add_argument("--partitions", type=int, help="number of partitions of whole networks")
    sizes.add_argument("--partition-size", type=int, help="stages per partition (default 500000)")
    group.add_argument("--workers", type=int, help="local cluster: worker processes (default: cores)")
    group.add_argument("--threads-per-worker", type=int, help="local cluster: Dask threads per worker")
    group.add_argument("--resume", action="store_true", default=None,
                       help="keep partitions an interrupted run of the same job already committed")


def _add_generate(commands: argparse._SubParsersAction) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``meio`` command."""
    parser = argparse.ArgumentParser(prog="meio", description=meio.__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"meio {meio.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_optimize(commands)
    _add_simulate(commands)
    _add_generate(commands)
    return parser


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The configuration file (or embedded demo), overridden by explicit flags."""
    config = load_config(args.config) if (args.config or not args.stages) else RunConfig()
    if args.stages:
        config.generate = None
    for name in ("stages", "arcs", "model", "service_level", "holding_rate", "slp_starts",
                 "mip_node_limit", "time_limit", "output", "overwrite"):
        value = getattr(args, name)
        if value is not None:
            setattr(config.optimize, name, value)
    _apply_cluster_flags(config.cluster, args)
    return config


def _apply_cluster_flags(cluster: ClusterConfig, args: argparse.Namespace) -> ClusterConfig:
    """Override the [cluster] settings with the flags given (a partition flag replaces both)."""
    for name in ("scheduler", "partitions", "partition_size", "workers", "threads_per_worker",
                 "resume"):
        value = getattr(args, name)
        if value is not None:
            setattr(cluster, name, value)
    if args.partitions is not None or args.partition_size is not None:
        cluster.partitions, cluster.partition_size = args.partitions, args.partition_size
    return cluster


def _catalog(config: RunConfig) -> tuple[object, object, dict]:
    """The tables to optimize and what the manifest adds about them (the generation spec).

    Files are recorded by the run itself (``inputs.files``: paths and checksums).
    """
    if config.generate is not None:
        stages, arcs = config.generate.tables()
        return stages, arcs, {"generated": vars(config.generate)}
    settings = config.optimize
    if settings.stages is None:
        raise InputError("config", "stages", "give --stages (and --arcs) or a [generate] section")
    return settings.stages, settings.arcs, {}


def _summary(console: Console, result: RunResult, seconds: float) -> None:
    """Safety-stock value by echelon and in total, against the single-echelon baseline."""
    table = Table(title="safety stock by echelon (1 = customer-facing)")
    for column in ("echelon", "stages", "safety-stock cost"):
        table.add_column(column, justify="right")
    for echelon, stages, value in result.by_echelon.iter_rows():
        table.add_row(str(echelon), f"{stages:,}", f"{value:,.2f}")
    console.print(table)
    cost, baseline = result.total("safety_stock_cost"), result.total("baseline_cost")
    saving = 100.0 * (1.0 - cost / baseline) if baseline > 0 else 0.0
    inputs = result.manifest["inputs"]
    console.print(
        f"{inputs['networks']:,} networks, {inputs['stages_rows']:,} stages in "
        f"{len(result.manifest['partitions'])} partition(s); safety-stock cost "
        f"{cost:,.2f} vs single-echelon {baseline:,.2f} ({saving:.1f}% saving); {seconds:.2f} s"
    )
    unsolved = result.total("unsolved_networks")
    if unsolved:
        console.print(f"{unsolved:,} networks have a shape model {result.manifest['model']!r} does not "
                      "support (method 'unsupported', costs NaN); they are left out of the totals")


def _client(settings: ClusterConfig, pending: int) -> contextlib.AbstractContextManager:
    """The Dask client the run uses: --scheduler, else a local cluster if it has work to share."""
    if settings.scheduler:
        from distributed import Client

        return Client(settings.scheduler, timeout="30s")
    if pending > 1 or settings.workers:
        return local_cluster(settings.workers, settings.threads_per_worker)
    return contextlib.nullcontext(None)


def _model_options(settings: OptimizeConfig) -> dict:
    """The model's own options that the configuration sets (gsm: general-network limits)."""
    if settings.model != "gsm":
        return {}
    options = {name: getattr(settings, name) for name in GENERAL_LIMIT_RULES
               if getattr(settings, name) is not None}
    broken = broken_general_limit(**options)
    if broken is not None:
        raise InputError("config", *broken)
    return options


def _print_files(console: Console, result: RunResult) -> None:
    """Where the run directory's tables are (files, or datasets of part files)."""
    files = [entry.get("file") or entry["dataset"] for entry in result.manifest["files"].values()]
    console.print(f"results: {result.output}/{{{', '.join([*files, 'manifest.json'])}}}")


def _run_job(job: CatalogJob, client: object, console: Console, what: str, cluster: ClusterConfig,
             manifest: dict) -> RunResult:
    """Run a prepared job with a progress bar of its partitions."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        where = client.scheduler.address if client is not None else "this process"
        task = bar.add_task(f"{what} on {where}: partitions", total=len(job.plan))
        return job.run(client, retries=cluster.retries, manifest=manifest,
                       on_progress=lambda event: bar.advance(task))


def _optimize(args: argparse.Namespace, console: Console) -> None:
    config = _run_config(args)
    settings, cluster = config.optimize, config.cluster
    if args.verify:
        check_simulation_options(periods=args.verify_periods, replications=args.verify_replications,
                                 service_level=settings.service_level)
        if args.verify_output is not None:
            check_output_target(args.verify_output, overwrite=settings.overwrite)
    check_output_target(settings.output, overwrite=settings.overwrite)
    started = time.perf_counter()
    with console.status("checking the catalog and planning partitions"):
        stages, arcs, inputs = _catalog(config)
        job = prepare_catalog(
            stages, arcs, settings.output, model=settings.model,
            service_level=settings.service_level, holding_rate=settings.holding_rate,
            options=_model_options(settings),
            partitions=cluster.partitions, partition_size=cluster.partition_size,
            resume=cluster.resume, overwrite=settings.overwrite,
        )
    manifest = {"meio_version": meio.__version__, "config_source": config.source,
                "run_config": {"optimize": vars(settings), "cluster": vars(cluster)}, **inputs}
    with _client(cluster, len(job.pending)) as client:
        result = _run_job(job, client, console, settings.model, cluster, manifest)
        _summary(console, result, time.perf_counter() - started)
        _print_files(console, result)
        if args.verify:
            _verify(args, config, (stages, arcs), result, client, console)


def _verify(args: argparse.Namespace, config: RunConfig, tables: tuple[object, object], result: RunResult,
            client: object, console: Console) -> None:
    """Simulate the committed plan, partition by partition like the run, and report the misses."""
    started = time.perf_counter()
    keep = args.verify_output is not None
    output = Path(args.verify_output) if keep else result.output.parent / f".{result.output.name}.verify"
    settings, cluster = config.optimize, config.cluster
    options = {"periods": args.verify_periods, "replications": args.verify_replications,
               "seed": args.verify_seed, "warmup": VERIFY_WARMUP}
    with console.status("verifying: checking the plan"):
        job = prepare_catalog(*tables, output, model=SIMULATE, service_level=settings.service_level,
                              holding_rate=settings.holding_rate, options=options, policy=result.output,
                              partitions=cluster.partitions, partition_size=cluster.partition_size,
                              overwrite=settings.overwrite or not keep)
    try:
        simulated = _run_job(job, client, console, "verify", cluster,
                             {"meio_version": meio.__version__, "verifies": str(result.output)})
        _simulation_summary(console, simulated, time.perf_counter() - started)
    finally:
        if not keep:
            shutil.rmtree(output, ignore_errors=True)
    if keep:
        _print_files(console, simulated)


def _simulation_summary(console: Console, result: RunResult, seconds: float) -> None:
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
            half = (row["cycle_service_level_ci_high"] - row["cycle_service_level_ci_low"]) / 2
            target_fill = row["target_fill_rate"]
            table.add_row(
                row["network"], row["stage"], f"{row['target_service_level']:.3f}",
                f"{row['cycle_service_level']:.3f} ±{half:.3f}",
                "-" if target_fill is None or np.isnan(target_fill) else f"{target_fill:.3f}",
                f"{row['fill_rate']:.3f}",
            )
        console.print(table)


def _simulate(args: argparse.Namespace, console: Console) -> None:
    check_simulation_options(periods=args.periods, replications=args.replications, warmup=args.warmup,
                             service_level=args.service_level)
    check_demand_model(args.demand, has_history=args.history is not None)
    check_output_target(args.output, overwrite=args.overwrite)
    cluster = _apply_cluster_flags(ClusterConfig(), args)
    started = time.perf_counter()
    options = {name: getattr(args, name) for name in ("periods", "replications", "seed", "warmup", "demand")}
    with console.status("checking the catalog and the policy, planning partitions"):
        job = prepare_catalog(
            args.stages, args.arcs, args.output, model=SIMULATE, service_level=args.service_level,
            holding_rate=args.holding_rate, options=options, policy=args.policy, history=args.history,
            partitions=cluster.partitions, partition_size=cluster.partition_size,
            resume=cluster.resume, overwrite=args.overwrite, numba_threads=args.threads,
        )
    manifest = {"meio_version": meio.__version__, "run_config": {"cluster": vars(cluster)}}
    with _client(cluster, len(job.pending)) as client:
        result = _run_job(job, client, console, "simulate", cluster, manifest)
    _simulation_summary(console, result, time.perf_counter() - started)
    _print_files(console, result)


def _generate(args: argparse.Namespace, console: Console) -> None:
    check_output_target(args.output, overwrite=args.overwrite)
    started = time.perf_counter()
    spec = GenerateConfig(networks=args.networks, shape=args.shape, seed=args.seed,
                          stages_per_network=args.stages_per_network,
                          dag_arcs_per_stage=args.dag_arcs_per_stage)
    with console.status(f"generating {args.networks:,} {args.shape} networks"):
        try:
            stages, arcs = spec.tables()
        except ValueError as error:
            raise InputError("generate", "-", str(error)) from error
        write_run_directory(args.output, {"stages": stages, "arcs": arcs},
                            {"meio_version": meio.__version__, "generated": vars(spec)},
                            overwrite=args.overwrite)
    console.print(f"{stages.height:,} stages, {arcs.height:,} arcs in "
                  f"{time.perf_counter() - started:.2f} s: {args.output}/stages.parquet, arcs.parquet")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``meio`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    console = Console(stderr=False)
    errors = Console(stderr=True)
    handlers = {"optimize": _optimize, "simulate": _simulate, "generate": _generate}
    try:
        handlers[args.command](args, console)
    except InputError as error:
        errors.print(f"meio: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
