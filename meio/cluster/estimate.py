"""``meio estimate`` on partitions of whole networks: histories larger than one process's memory.

The histories are cut like a catalog for ``optimize`` (:func:`~meio.cluster.catalog.plan_partitions`:
ranges of network ids of about equal size, from the stages table's ``network`` column, else from
the demand history's records per network). One Dask task per partition scans the history files
for its networks only — a predicate Parquet row-group statistics push down to the reader — and
returns its stages' demand rows and its lanes' exact statistics (:meth:`EstimateJob.part`); the
caller pools the lanes and fills the tables (:meth:`EstimateJob.finish`). Every figure of a stage
or a lane depends on its own records, sums are exact integers and lanes are pooled in lane-key
order, so the tables are the same bit for bit whatever the partitioning or the workers.

Partition ``k`` holds the networks from its first id up to (not including) partition ``k + 1``'s
first, the first one everything below and the last everything above: networks of the histories
that the planning table lacks still land in exactly one partition. Shipments keyed by transport
lane (no network) are estimated in one more task. A broken row rule is reported by the first
partition (in partition order) that finds one, with the rows it counts; row numbers are the
file's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meio.cluster.catalog import Source, plan_partitions
from meio.estimate import Estimate, EstimateJob, EstimatePart
from meio.estimate.history import NetworkRange
from meio.io.errors import InputError

if TYPE_CHECKING:
    from distributed import Client

#: Times Dask reruns a task whose worker died (bad input is returned, never retried).
RETRIES = 3


@dataclass(frozen=True)
class EstimateEvent:
    """Progress: task ``index`` of ``total`` is done after ``seconds`` on its worker."""

    index: int
    total: int
    seconds: float


@dataclass(frozen=True)
class _Failure:
    """Bad input a task found, returned (not raised) so Dask does not retry it."""

    table: str
    column: str
    rule: str
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True)
class _Task:
    """One task: a network range, and whether it estimates demand, lanes or both."""

    index: int
    networks: NetworkRange | None
    demand: bool
    lanes: bool


def network_ranges(job: EstimateJob, stages: str | Path | None, *, partitions: int | None,
                   partition_size: int | None) -> list[NetworkRange]:
    """The partitions' network ranges: ``optimize``'s plan of the stages table (else the demand's).

    Each range runs up to the next one's first network; the first and the last are open.
    """
    if stages is not None and isinstance(stages, str | Path):
        source = Source("stages", str(stages))
    elif isinstance(job.demand, str | Path):
        source = Source("demand", str(job.demand))
    else:
        raise InputError("config", "partitions", "a partitioned estimate reads its histories from "
                         "files: give the demand history (or the stages table) as a path")
    plan = plan_partitions(source, partitions=partitions, partition_size=partition_size)
    firsts = [partition.first_network for partition in plan]
    return [(None if k == 0 else first, firsts[k + 1] if k + 1 < len(firsts) else None)
            for k, first in enumerate(firsts)]


def _tasks(job: EstimateJob, ranges: list[NetworkRange]) -> list[_Task]:
    by_network = job.lanes_by_network
    tasks = [_Task(k, networks, True, by_network) for k, networks in enumerate(ranges)]
    if job.shipments is not None and not by_network:
        tasks.append(_Task(len(tasks), None, False, True))
    return tasks


def _run(job: EstimateJob, task: _Task) -> tuple[EstimatePart | _Failure, float]:
    """The Dask task: one part of the estimate, its seconds; bad input as a value."""
    started = time.perf_counter()
    try:
        part = job.part(task.networks, demand=task.demand, lanes=task.lanes)
    except InputError as error:
        return _Failure(error.table, error.column, error.rule, error.count, error.examples), 0.0
    return part, time.perf_counter() - started


def estimate_partitioned(
    job: EstimateJob,
    ranges: list[NetworkRange],
    client: Client | None,
    *,
    on_progress: Callable[[EstimateEvent], None] | None = None,
    retries: int = RETRIES,
) -> Estimate:
    """Run the job's parts, one per network range, on ``client`` (None: here, in turn).

    Returns the same :class:`~meio.estimate.Estimate` as :func:`meio.estimate` on the whole
    histories. Raises the :class:`~meio.io.errors.InputError` of the first failing task in
    partition order.
    """
    tasks = _tasks(job, ranges)
    report = on_progress or (lambda event: None)
    outcomes: dict[int, EstimatePart | _Failure] = {}
    if client is None:
        for task in tasks:
            outcomes[task.index], seconds = _run(job, task)
            if isinstance(outcomes[task.index], _Failure):
                break
            report(EstimateEvent(task.index, len(tasks), seconds))
    else:
        from distributed import as_completed

        shared = client.scatter(job, broadcast=True)
        futures = {client.submit(_run, shared, task, key=f"meio-estimate-{task.index:05d}",
                                 retries=retries, pure=False): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            outcomes[task.index], seconds = future.result()
            if isinstance(outcomes[task.index], _Failure):
                client.cancel([f for f, t in futures.items() if t.index > task.index])
                continue
            report(EstimateEvent(task.index, len(tasks), seconds))
    failures = sorted((index, outcome) for index, outcome in outcomes.items()
                      if isinstance(outcome, _Failure))
    if failures:
        failure = failures[0][1]
        raise InputError(failure.table, failure.column, failure.rule, failure.count, failure.examples)
    return job.finish([outcomes[task.index] for task in tasks])
