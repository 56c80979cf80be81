"""The ``meio`` command: optimize, generate (and, as models land, simulate).

The CLI owns the terminal: progress while the run works, a summary at the end, and one clear
line for bad input (exit status 2, nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import meio
from meio.cluster import RunResult, local_cluster, prepare_catalog
from meio.config import ClusterConfig, GenerateConfig, OptimizeConfig, RunConfig, load_config
from meio.io.errors import InputError
from meio.io.write import check_output_target, write_run_directory

EXIT_BAD_INPUT = 2


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
    for name in ("scheduler", "partitions", "partition_size", "workers", "threads_per_worker",
                 "resume"):
        value = getattr(args, name)
        if value is not None:
            setattr(config.cluster, name, value)
    if args.partitions is not None or args.partition_size is not None:
        config.cluster.partitions, config.cluster.partition_size = args.partitions, args.partition_size
    return config


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
    names = ("slp_starts", "mip_node_limit", "time_limit")
    return {name: getattr(settings, name) for name in names if getattr(settings, name) is not None}


def _optimize(args: argparse.Namespace, console: Console) -> None:
    config = _run_config(args)
    settings, cluster = config.optimize, config.cluster
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
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with _client(cluster, len(job.pending)) as client, Progress(*columns, console=console) as bar:
        where = client.scheduler.address if client is not None else "this process"
        task = bar.add_task(f"{settings.model} on {where}: partitions", total=len(job.plan))
        result = job.run(client, retries=cluster.retries, manifest=manifest,
                         on_progress=lambda event: bar.advance(task))
    _summary(console, result, time.perf_counter() - started)
    console.print(f"results: {settings.output}/stages/, networks/, manifest.json")


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
    handlers = {"optimize": _optimize, "generate": _generate}
    try:
        handlers[args.command](args, console)
    except InputError as error:
        errors.print(f"meio: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
