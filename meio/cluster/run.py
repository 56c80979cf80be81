"""Optimize a whole catalog partition by partition, on a Dask cluster or in this process.

:func:`run_catalog` plans the partitions, checks what no single partition can check, submits one
task per partition (futures, retried when a worker dies or a task fails), reports progress
through a callback, and commits the partitioned run directory atomically. The caller owns the
Dask client; without one the partitions run here, one after the other, through the same task.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from distributed import Client, as_completed, get_worker

from meio.cluster.catalog import Partition, Source, plan_partitions, precheck
from meio.cluster.checkpoint import RunArea
from meio.cluster.task import PartitionFailure, RunSettings, run_partition
from meio.cluster.workers import WarmUpPlugin, numba_thread_budget
from meio.io.errors import InputError
from meio.io.read import TableSource
from meio.io.write import check_output_target

#: Stages per partition when neither ``partitions`` nor ``partition_size`` is given.
DEFAULT_PARTITION_SIZE = 500_000
#: Times Dask reruns a task whose worker died or that raised (bad input is never retried).
DEFAULT_RETRIES = 3


@dataclass(frozen=True)
class PartitionEvent:
    """Progress of one partition: ``state`` is ``"done"`` or ``"skipped"`` (resumed)."""

    index: int
    total: int
    state: str
    networks: int
    stages: int
    seconds: float


@dataclass(frozen=True)
class RunResult:
    """What a committed run produced: its directory, manifest and totals for a summary."""

    output: Path
    manifest: dict[str, Any]

    @property
    def by_echelon(self) -> pl.DataFrame:
        """Stages and safety-stock cost per echelon (1 = customer-facing), over all partitions."""
        rows = [row for p in self.manifest["partitions"] for row in p["summary"]["by_echelon"]]
        frame = pl.DataFrame(rows, schema=["echelon", "stages", "safety_stock_cost"], orient="row")
        return frame.group_by("echelon").agg(pl.col("stages", "safety_stock_cost").sum()).sort("echelon")

    def total(self, name: str) -> float:
        """Sum over partitions of a summary total (``safety_stock_cost``, ``baseline_cost``)."""
        return sum(p["summary"][name] for p in self.manifest["partitions"])


def _source(table: str, source: TableSource | None, area: RunArea) -> Source | None:
    """A path as it is; an in-memory table written once into the area for the workers."""
    if source is None:
        return None
    if isinstance(source, str | Path):
        return Source(table, str(Path(source).resolve()))
    frame = pl.from_arrow(source) if isinstance(source, pa.Table) else source
    path = area.input / f"{table}.parquet"
    frame.sort("network", maintain_order=True).write_parquet(path, row_group_size=65_536)
    return Source(table, str(path))


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _on_worker(partition: Partition, settings: RunSettings, key: str) -> dict | PartitionFailure:
    """The Dask task: :func:`run_partition`, recording which worker ran it."""
    return run_partition(partition, settings, key, worker=get_worker().address)


def _run_tasks(
    client: Client | None,
    todo: list[tuple[Partition, str]],
    settings: RunSettings,
    retries: int,
    report: Callable[[Partition, str, float], None],
) -> list[dict[str, Any]]:
    """Run the partitions; the first failing one (in partition order) stops the run."""
    records: list[dict[str, Any]] = []
    failures: list[PartitionFailure] = []
    if client is None:
        for partition, key in todo:
            outcome = run_partition(partition, settings, key, worker="local")
            if isinstance(outcome, PartitionFailure):
                raise outcome.error()
            records.append(outcome)
            report(partition, "done", sum(outcome["seconds"].values()))
        return records
    futures = {
        client.submit(_on_worker, partition, settings, key, key=f"meio-{partition.name}-{key[:12]}",
                      retries=retries, pure=False): partition
        for partition, key in todo
    }
    for future in as_completed(futures):
        partition = futures[future]
        if future.cancelled():
            continue
        outcome = future.result()
        if isinstance(outcome, PartitionFailure):
            failures.append(outcome)
            first = min(f.index for f in failures)
            client.cancel([f for f, p in futures.items() if p.index > first])
            continue
        records.append(outcome)
        report(partition, "done", sum(outcome["seconds"].values()))
    if failures:
        raise min(failures, key=lambda f: f.index).error()
    return records


def run_catalog(
    stages: TableSource,
    arcs: TableSource | None,
    output: str | Path,
    *,
    model: str,
    service_level: float,
    holding_rate: float | None = None,
    options: Mapping[str, Any] | None = None,
    client: Client | None = None,
    partitions: int | None = None,
    partition_size: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    retries: int = DEFAULT_RETRIES,
    on_progress: Callable[[PartitionEvent], None] | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> RunResult:
    """Optimize every network of a catalog into a partitioned run directory.

    Parameters
    ----------
    stages, arcs : path or table
        The input tables (DESIGN.md §2): files by extension, directories of Parquet files
        (hive partitioning allowed), or in-memory Polars/Arrow tables (written once into the
        staging area so that workers can read them).
    output : path
        The run directory: ``stages/part-XXXXX.parquet``, ``networks/part-XXXXX.parquet``,
        ``manifest.json``.
    model, service_level, holding_rate, options
        As for :func:`meio.optimize` and :func:`meio.read_network`; passed through unchanged.
    client : distributed.Client, optional
        Where the tasks run; without one they run in this process, one after the other.
    partitions, partition_size : int, optional
        How many partitions, or how many stages per partition (default
        ``DEFAULT_PARTITION_SIZE``). Results do not depend on either.
    resume : bool
        Keep partitions a previous, unfinished run of the same job committed (see
        :mod:`meio.cluster.checkpoint`).
    overwrite : bool
        Replace an existing run directory (it stays intact until the new one is complete).
    retries : int
        Dask retries per task.
    on_progress : callable, optional
        Called with a :class:`PartitionEvent` as each partition finishes or is skipped.
    manifest : mapping, optional
        Extra manifest entries from the caller (e.g. the configuration source).

    Raises
    ------
    meio.InputError
        Bad input: from the pre-check (before any task starts) or from the first partition, in
        partition order, whose rows break a rule. Nothing is written.

    """
    started = time.perf_counter()
    target = check_output_target(output, overwrite=overwrite)
    area = RunArea(str(target.resolve()))
    area.open(resume=resume)
    options = dict(options or {})
    try:
        stage_source = _source("stages", stages, area)
        arc_source = _source("arcs", arcs, area)
        precheck(stage_source, arc_source, holding_rate=holding_rate)
        plan = plan_partitions(
            stage_source, partitions=partitions,
            partition_size=partition_size or (None if partitions else DEFAULT_PARTITION_SIZE),
        )
    except InputError:
        area.discard()
        raise
    inputs = {s.table: {"path": s.path, "sha256": s.sha256()}
              for s in (stage_source, arc_source) if s is not None}
    job = {"model": model, "service_level": service_level, "holding_rate": holding_rate,
           "options": options, "inputs": {t: i["sha256"] for t, i in inputs.items()}}
    keys = {p.index: _key(job, vars(p)) for p in plan}
    area.keep_only({p.name for p in plan})
    resumed = {p.index: r for p in plan if (r := area.committed(p.name, keys[p.index])) is not None}

    def report(partition: Partition, state: str, seconds: float) -> None:
        if on_progress is not None:
            on_progress(PartitionEvent(partition.index, len(plan), state, partition.networks,
                                       partition.stages, seconds))

    for index in sorted(resumed):
        report(plan[index], "skipped", 0.0)
    cluster: dict[str, Any] = {"scheduler": None}
    if client is not None:
        client.register_plugin(WarmUpPlugin(model, options))
        cluster = {"scheduler": client.scheduler.address,
                   "workers": len(client.scheduler_info(n_workers=-1)["workers"])}
        cluster["numba_threads_per_task"] = numba_thread_budget(client)
    settings = RunSettings(stage_source, arc_source, area, model, service_level, holding_rate,
                           options, cluster.get("numba_threads_per_task"))
    planned = time.perf_counter()
    todo = [(p, keys[p.index]) for p in plan if p.index not in resumed]
    try:
        records = _run_tasks(client, todo, settings, retries, report)
    except InputError:
        area.discard()
        raise
    done = {r["partition"]["index"]: {**r, "resumed": False} for r in records}
    done.update({i: {**r, "resumed": True} for i, r in resumed.items()})
    content = {
        **(manifest or {}),
        "model": model,
        "config": job | {"partitions": len(plan), "partition_size": partition_size},
        "inputs": {**inputs, "stages_rows": sum(p.stages for p in plan),
                   "networks": sum(p.networks for p in plan)},
        "cluster": cluster,
        "files": {t: {"dataset": f"{t}/", "parts": len(plan),
                      "rows": sum(r["files"][t]["rows"] for r in done.values())}
                  for t in ("stages", "networks")},
        "partitions": [done[i] for i in sorted(done)],
        "timings_seconds": {"plan": planned - started, "run": time.perf_counter() - planned},
    }
    content["timings_seconds"]["total"] = time.perf_counter() - started
    return RunResult(area.commit(content), content)
