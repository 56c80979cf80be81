"""``meio optimize``: a catalog (or the embedded demo) through a model, optionally verified."""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import meio
from meio.certification import certify_options
from meio.cli.jobs import add_cluster_flags, apply_cluster_flags, open_client, print_files, run_job
from meio.cli.simulate import simulation_summary
from meio.cluster import RunResult, prepare_catalog
from meio.cluster.task import SIMULATE
from meio.config import OptimizeConfig, RunConfig, load_config
from meio.engine.gsm import GENERAL_LIMIT_RULES, broken_general_limit
from meio.engine.simulate import DEMAND_KINDS
from meio.io.errors import InputError
from meio.io.write import check_output_target
from meio.simulation import check_simulation_options

#: Periods `optimize --verify` simulates and discards before measuring.
VERIFY_WARMUP = 100


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``optimize`` subcommand and its flags (model, verification, cluster)."""
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
                        help="gsm, general networks: starts of the successive-LP heuristic (67; "
                        "with the branch and bound, only on networks it does not prove optimal)")
    parser.add_argument("--mip-node-limit", type=int,
                        help="gsm, general networks: branch-and-bound nodes of the exact MIP after "
                        "the heuristic (default 0: heuristic only)")
    parser.add_argument("--bound-iterations", type=int,
                        help="gsm, general networks: forest DPs of the Lagrangian lower bound (30; 0: "
                        "the convex-envelope bound only)")
    parser.add_argument("--exact-node-limit", type=int,
                        help="gsm, general networks: branch-and-bound nodes of the exact method, "
                        "from a quick successive-LP plan (100; 0: none, the heuristic alone)")
    parser.add_argument("--time-limit", type=float,
                        help="gsm, general networks: wall-clock safety net in seconds of the MIP per "
                        "network (default none; a MIP it cuts is not reproducible)")
    certify = parser.add_argument_group("certification (see docs/certify.md)")
    certify.add_argument("--certify", action="store_true", default=None,
                         help="certify the plan in simulation: the cheapest customer-facing levels that "
                         "meet their targets on common random numbers, checked on independent ones; the "
                         "saving is measured against the single-echelon plan certified the same way")
    certify.add_argument("--demand", choices=sorted(DEMAND_KINDS),
                         help="demand law of the certification and the verification (default: each stage's "
                         "demand_distribution column)")
    certify.add_argument("--history",
                         help="demand history table (network, stage, demand) for --demand history")
    certify.add_argument("--certify-precision", type=float,
                         help="standard error wanted for a demand stage's simulated cycle service level "
                         "(default 0.005; sets the horizon)")
    certify.add_argument("--certify-confidence", type=float,
                         help="one-sided confidence with which a level must meet its target on a sample "
                         "(default 0.95)")
    certify.add_argument("--certify-seed", type=int, help="seed of the certification's streams (default 0)")
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
    add_cluster_flags(parser)


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The configuration file (or embedded demo), overridden by explicit flags."""
    config = load_config(args.config) if (args.config or not args.stages) else RunConfig()
    if args.stages:
        config.generate = None
    for name in ("stages", "arcs", "model", "service_level", "holding_rate", "slp_starts",
                 "mip_node_limit", "time_limit", "bound_iterations", "exact_node_limit", "certify",
                 "demand", "history",
                 "certify_precision", "certify_confidence", "certify_seed", "output", "overwrite"):
        value = getattr(args, name)
        if value is not None:
            setattr(config.optimize, name, value)
    apply_cluster_flags(config.cluster, args)
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
    if "certified_networks" in result.manifest["partitions"][0]["summary"]:
        _certified_summary(console, result)
    unsolved = result.total("unsolved_networks")
    if unsolved:
        console.print(f"{unsolved:,} networks have a shape model {result.manifest['model']!r} does not "
                      "support (method 'unsupported', costs NaN); they are left out of the totals")


def _certified_summary(console: Console, result: RunResult) -> None:
    """Certified service, and the certified cost against the model's own plan cost."""
    demand, missing = int(result.total("demand_stages")), int(result.total("missing_stages"))
    cost, model_cost = result.total("safety_stock_cost"), result.total("model_cost")
    uplift = 100.0 * (cost / model_cost - 1.0) if model_cost > 0 else 0.0
    console.print(
        f"certified: {demand - missing:,} of {demand:,} demand stages meet their targets on independent "
        f"random numbers ({result.total('certified_networks'):,} networks fully certified); certified "
        f"holding cost {cost:,.2f} against the model's own plan cost {model_cost:,.2f} ({uplift:+.1f}%); "
        "the saving above compares it with the single-echelon plan certified the same way"
    )


def _model_options(settings: OptimizeConfig) -> dict:
    """The run's options: the model's own (gsm: general-network limits) and the certification's."""
    options = {}
    if settings.model == "gsm":
        options = {name: getattr(settings, name) for name in GENERAL_LIMIT_RULES
                   if getattr(settings, name) is not None}
        broken = broken_general_limit(**options)
        if broken is not None:
            raise InputError("config", *broken)
    certify = settings.certify_options()
    if certify is not None:
        certify_options(certify).check(has_history=settings.history is not None)
        options["certify"] = certify
    elif settings.demand is not None or settings.history is not None:
        raise InputError("config", "demand", "--demand and --history set the certification's demand: add "
                         "--certify")
    return options


def run(args: argparse.Namespace, console: Console) -> None:
    """Optimize the configured catalog, print the summary, verify the plan on request."""
    config = _run_config(args)
    settings, cluster = config.optimize, config.cluster
    if args.verify:
        check_simulation_options(periods=args.verify_periods, replications=args.verify_replications,
                                 service_level=settings.service_level)
    _check_verify_output(args.verify_output, settings, verify=args.verify)
    check_output_target(settings.output, overwrite=settings.overwrite)
    started = time.perf_counter()
    with console.status("checking the catalog and planning partitions"):
        stages, arcs, inputs = _catalog(config)
        job = prepare_catalog(
            stages, arcs, settings.output, model=settings.model,
            service_level=settings.service_level, holding_rate=settings.holding_rate,
            options=_model_options(settings), history=settings.history,
            partitions=cluster.partitions, partition_size=cluster.partition_size,
            resume=cluster.resume, overwrite=settings.overwrite,
            verify_review_periods=args.verify,
        )
    manifest = {"meio_version": meio.__version__, "config_source": config.source,
                "run_config": {"optimize": vars(settings), "cluster": vars(cluster)}, **inputs}
    # --verify simulates every partition, even when --resume left none to optimize
    with open_client(cluster, len(job.plan) if args.verify else len(job.pending)) as client:
        result = run_job(job, client, console, settings.model, cluster, manifest)
        _summary(console, result, time.perf_counter() - started)
        print_files(console, result)
        if args.verify:
            _verify(args, config, (stages, arcs), result, client, console)


def _check_verify_output(verify_output: str | None, settings: OptimizeConfig, *, verify: bool) -> None:
    """``--verify-output`` needs ``--verify`` and a directory apart from the plan's."""
    if verify_output is None:
        return
    if not verify:
        raise InputError("config", "verify_output", "needs --verify")
    plan, checked = Path(settings.output).resolve(), Path(verify_output).resolve()
    if plan == checked or plan in checked.parents or checked in plan.parents:
        raise InputError("config", "verify_output", "must be a directory apart from --output (neither inside "
                         "the other)")
    check_output_target(verify_output, overwrite=settings.overwrite)


def _replace_report(verified: Path, plan_report: Path) -> None:
    """The plan's report becomes the verification's, which sets predicted against simulated service."""
    scratch = plan_report.with_name(f".{plan_report.name}.verified")
    shutil.copyfile(verified, scratch)
    os.replace(scratch, plan_report)


def _verify(args: argparse.Namespace, config: RunConfig, tables: tuple[object, object], result: RunResult,
            client: object, console: Console) -> None:
    """Simulate the committed plan, partition by partition like the run, and report the misses."""
    started = time.perf_counter()
    keep = args.verify_output is not None
    output = Path(args.verify_output) if keep else result.output.parent / f".{result.output.name}.verify"
    settings, cluster = config.optimize, config.cluster
    options = {"periods": args.verify_periods, "replications": args.verify_replications,
               "seed": args.verify_seed, "warmup": VERIFY_WARMUP, "review_period": True,
               "demand": settings.demand}
    with console.status("verifying: checking the plan"):
        job = prepare_catalog(*tables, output, model=SIMULATE, service_level=settings.service_level,
                              holding_rate=settings.holding_rate, options=options, policy=result.output,
                              history=settings.history,
                              partitions=cluster.partitions, partition_size=cluster.partition_size,
                              overwrite=settings.overwrite or not keep)
    try:
        simulated = run_job(job, client, console, "verify", cluster,
                             {"meio_version": meio.__version__, "verifies": str(result.output)})
        simulation_summary(console, simulated, time.perf_counter() - started)
        if simulated.report is not None:
            _replace_report(simulated.report, result.output / simulated.report.name)
    finally:
        if not keep:
            shutil.rmtree(output, ignore_errors=True)
    if keep:
        print_files(console, simulated)
