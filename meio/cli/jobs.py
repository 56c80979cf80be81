"""What the commands share: the cluster flags, the Dask client, running a job with progress."""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import itertools
import math
import time

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


class TaskProgress(contextlib.AbstractContextManager):
    """Progress of a run's tasks on ``console``: a bar on a terminal, one line per task otherwise.

    Written to a file (a nightly job's log), a bar would show only once the run ends; there each
    task the run computes prints a line: tasks done, the share of the work done (rounded down),
    the time so far and the time left at the pace so far. Tasks kept from an interrupted run
    count as done, but not in the pace, and are named in the next line.

    The pace counts ``slots`` tasks running at once (a cluster's worker threads). Each slot takes
    the next task when its last one ends, so a computed task ran from the earliest time a slot
    was freed (the run's start for the first ``slots``) to its end: the pace is the computed
    work per slot-second, and the tasks still running have done that pace times the time since
    their start (at most a remaining task's mean work). The time left is the work left after
    theirs over the pace of the slots that still have tasks. On one slot this is the time so far
    times the work left over the work computed.

    Parameters
    ----------
    console : rich.console.Console
        Where the progress goes.
    description : str
        What the tasks are, e.g. ``"gsm on tcp://...: partitions"``.
    total : int, optional
        Number of tasks, when known before they run (else from :meth:`advance`).
    total_weight : float, optional
        The work of all tasks in the units of :meth:`advance`'s ``weight`` (e.g. stages); without
        it every task weighs 1 and the work is the task count.
    slots : int
        Tasks that run at once (default 1).

    """

    def __init__(self, console: Console, description: str, total: int | None = None,
                 total_weight: float | None = None, slots: int = 1):
        self.console, self.description = console, description
        self.total, self.total_weight = total, total_weight
        self.done, self.kept, self.done_weight, self.computed_weight = 0, 0, 0.0, 0.0
        self.started = time.perf_counter()
        # When each slot took its current task, earliest first; slot-seconds of computed tasks.
        self.slot_starts = collections.deque([self.started] * max(int(slots), 1))
        self.busy = 0.0
        self.bar: Progress | None = None
        self.task = None

    def __enter__(self) -> TaskProgress:
        if self.console.is_terminal:
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn())
            self.bar = Progress(*columns, console=self.console).__enter__()
            self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc_info)
        elif self.kept and self.kept == self.done:
            self.console.print(f"{self.description} {self.done}/{self.total} kept from the "
                               "interrupted run", highlight=False, soft_wrap=True)

    def advance(self, total: int | None = None, weight: float = 1.0, kept: bool = False) -> None:
        """One more task done.

        Parameters
        ----------
        total : int, optional
            The task count, when only the tasks know it.
        weight : float
            The task's work (1 per task unless the constructor got ``total_weight``).
        kept : bool
            The task was kept from an interrupted run (not computed now).

        """
        self.total = total if total is not None else self.total
        self.done += 1
        self.kept += kept
        self.done_weight += weight
        if not kept:
            self.computed_weight += weight
            now = time.perf_counter()
            self.busy += now - self.slot_starts.popleft()
            self.slot_starts.append(now)
        if self.bar is not None:
            self.bar.update(self.task, total=self.total, advance=1)
        elif not kept:
            self.console.print(self._line(now), highlight=False, soft_wrap=True)

    def _line(self, now: float) -> str:
        total_weight = self.total if self.total_weight is None else self.total_weight
        line = f"{self.description} {self.done}/{self.total or '?'}"
        if self.kept:
            line += f" ({self.kept} kept from the interrupted run)"
        line += f", {_clock(now - self.started)} elapsed"
        if total_weight:
            share = math.floor(100 * self.done_weight / total_weight)
            line += (f", {share}% of the work done, about "
                     f"{_clock(self._seconds_left(now, total_weight))} left")
        return line

    def _seconds_left(self, now: float, total_weight: float) -> float:
        """The time left at the pace so far (class docstring)."""
        work_left = max(total_weight - self.done_weight, 0.0)
        tasks_left = len(self.slot_starts) if self.total is None else self.total - self.done
        running = min(len(self.slot_starts), tasks_left)
        if running <= 0 or self.busy <= 0.0 or self.computed_weight <= 0.0:
            return 0.0
        pace = self.computed_weight / self.busy
        task_work = work_left / tasks_left
        running_done = sum(min(pace * (now - start), task_work)
                           for start in itertools.islice(self.slot_starts, running))
        return max(work_left - running_done, 0.0) / (pace * running)


def task_slots(client: object) -> int:
    """Tasks a run's client runs at once: its workers' Dask threads (1 in this process)."""
    return max(sum(client.nthreads().values()), 1) if client is not None else 1


def _clock(seconds: float) -> str:
    """``0:08:31``."""
    return str(datetime.timedelta(seconds=round(seconds)))


def run_job(job: CatalogJob, client: object, console: Console, what: str, cluster: ClusterConfig,
             manifest: dict) -> RunResult:
    """Run a prepared job with the progress of its partitions (:class:`TaskProgress`, by stages)."""
    where = client.scheduler.address if client is not None else "this process"
    stages = sum(partition.stages for partition in job.plan)
    with TaskProgress(console, f"{what} on {where}: partitions", len(job.plan), stages,
                      task_slots(client)) as progress:
        return job.run(client, retries=cluster.retries, manifest=manifest,
                       on_progress=lambda event: progress.advance(
                           weight=event.stages, kept=event.state == "skipped"))
