"""``meio generate``: write a seeded synthetic catalog (stages and arcs tables)."""

from __future__ import annotations

import argparse
import time

from rich.console import Console

import meio
from meio.config import GenerateConfig
from meio.io.errors import InputError
from meio.io.write import check_output_target, write_run_directory


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
        except ValueError as error:
            raise InputError("generate", "-", str(error)) from error
        write_run_directory(args.output, {"stages": stages, "arcs": arcs},
                            {"meio_version": meio.__version__, "generated": vars(spec)},
                            overwrite=args.overwrite)
    console.print(f"{stages.height:,} stages, {arcs.height:,} arcs in "
                  f"{time.perf_counter() - started:.2f} s: {args.output}/stages.parquet, arcs.parquet")
