"""What the commands share: the cluster flags, the Dask client, running a job with progress."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from meio.cluster import CatalogJob, RunResult, local_cluster
from meio.config import ClusterConfig


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Where the run executes and how it is partitioned (the [cluster] config section)."""
    group = parser.add_argument_group("cluster (see docs/cluster.md)")
    group.add_argument("--scheduler", help="address of an existing Dask scheduler, tcp://HOST:PORT "
                       "(default: an embedded local cluster when there is more than one partition)")
    sizes = group.add_mutually_exclusive_group()
    sizes.add_argument("--partitions", type=int, help="number of partitions of whole networks")
    sizes.add_argument("--partition-size", type=int, help="stages per partition (default 100000)")
    group.add_argument("--workers", type=int, help="local cluster: worker processes (default: cores)")
    group.add_argument("--threads-per-worker", type=int, help="local cluster: Dask threads per worker")
    group.add_argument("--resume", action="store_true", default=None,
                       help="keep partitions an interrupted run of the same job already committed")


def apply_cluster_flags(cluster: ClusterConfig, args: argparse.Namespace) -> ClusterConfig:
    """Override the [cluster] settings with the flags given (a partition flag replaces both)."""
    for name in ("scheduler", "partitions", "partition_size", "workers", "threads_per_worker",
                 "resume"):
        value = getattr(args, name)
        if value is not None:
            setattr(cluster, name, value)
    if args.partitions is not None or args.partition_size is not None:
        cluster.partitions, cluster.partition_size = args.partitions, args.partition_size
    return cluster


def open_client(settings: ClusterConfig, pending: int) -> contextlib.AbstractContextManager:
    """The Dask client the run uses: --scheduler, else a local cluster if it has work to share."""
    if settings.scheduler:
        from distributed import Client

        return Client(settings.scheduler, timeout="30s")
    if pending > 1 or settings.workers:
        return local_cluster(settings.workers, settings.threads_per_worker)
    return contextlib.nullcontext(None)


def print_files(console: Console, result: RunResult) -> None:
    """Where the run directory's tables are (files, or datasets of part files)."""
    files = [entry.get("file") or entry["dataset"] for entry in result.manifest["files"].values()]
    files.append("manifest.json")
    if result.report is not None:
        files.append(result.report.name)
    console.print(f"results: {result.output}/{{{', '.join(files)}}}")


def run_job(job: CatalogJob, client: object, console: Console, what: str, cluster: ClusterConfig,
             manifest: dict) -> RunResult:
    """Run a prepared job with a progress bar of its partitions."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        where = client.scheduler.address if client is not None else "this process"
        task = bar.add_task(f"{what} on {where}: partitions", total=len(job.plan))
        return job.run(client, retries=cluster.retries, manifest=manifest,
                       on_progress=lambda event: bar.advance(task))
