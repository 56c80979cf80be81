"""Optimize (or simulate) a whole catalog partition by partition, on a Dask cluster or here.

:func:`run_catalog` plans the partitions, checks what no single partition can check, submits one
task per partition (futures, retried when a worker dies or a task fails), reports progress
through a callback, and commits the partitioned run directory atomically. The caller owns the
Dask client; without one the partitions run here, one after the other, through the same task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from meio.api import Plan
from meio.cluster.catalog import Partition, Source, plan_partitions, precheck
from meio.cluster.checkpoint import TABLES, RunArea
from meio.cluster.task import SIMULATE, PartitionFailure, RunSettings, run_partition
from meio.cluster.workers import numba_thread_budget
from meio.io.errors import InputError
from meio.io.policy import run_directory_stages
from meio.io.read import TableSource
from meio.io.write import check_output_target
from meio.simulation import check_demand_model, check_simulation_options

if TYPE_CHECKING:
    from distributed import Client

logger = logging.getLogger(__name__)

#: Stages per partition when neither ``partitions`` nor ``partition_size`` is given: small enough
#: that a catalog of a million stages keeps every worker of a small cluster busy to the end and
#: the progress bar moves often (500,000 gave the 1.49M-stage mixed catalog 3 partitions of about
#: 15 minutes each on 2 workers, one idle for the last), large enough that a task's fixed costs
#: (reading, validation, writing, scheduling) stay small.
DEFAULT_PARTITION_SIZE = 100_000
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
    """What a committed run produced: its directory, manifest and totals for a summary.

    ``report`` is the run's ``report.html``, None when the run was asked for none or making it
    failed (the results stand; the warning is logged and ``meio report`` can make it later).
    """

    output: Path
    manifest: dict[str, Any]
    report: Path | None = None

    def rows(self, name: str) -> list[Any]:
        """A list entry of the partitions' summaries, concatenated in partition order."""
        return [row for p in self.manifest["partitions"] for row in p["summary"][name]]

    @property
    def by_echelon(self) -> pl.DataFrame:
        """Stages and safety-stock cost per echelon (1 = customer-facing), over all partitions."""
        rows = self.rows("by_echelon")
        frame = pl.DataFrame(rows, schema=["echelon", "stages", "safety_stock_cost"], orient="row")
        return frame.group_by("echelon").agg(pl.col("stages", "safety_stock_cost").sum()).sort("echelon")

    def total(self, name: str) -> float:
        """Sum over partitions of a summary total (``safety_stock_cost``, ``baseline_cost``)."""
        return sum(p["summary"][name] for p in self.manifest["partitions"])


def _source(table: str, source: TableSource | Plan | None, area: RunArea) -> Source | None:
    """A path as it is; an in-memory table written once into the area for the workers.

    A policy may also be a run directory (its stages table is read) or a :class:`~meio.Plan`.
    """
    if source is None:
        return None
    if isinstance(source, Plan):
        source = source.stages
    if isinstance(source, str | Path):
        path = Path(source).resolve()
        if table == "policy" and path.is_dir():
            path = run_directory_stages(path)
        return Source(table, str(path))
    frame = pl.from_arrow(source) if isinstance(source, pa.Table) else source
    path = area.input / f"{table}.parquet"
    frame.sort("network", maintain_order=True).write_parquet(path, row_group_size=65_536)
    return Source(table, str(path))


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _on_worker(partition: Partition, settings: RunSettings, key: str) -> dict | PartitionFailure:
    """The Dask task: :func:`run_partition`, recording which worker ran it."""
    from distributed import get_worker

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
    from distributed import as_completed

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


@dataclass
class CatalogJob:
    """A planned run (see :func:`prepare_catalog`): partitions, their keys, resumed records."""

    area: RunArea
    settings: RunSettings
    plan: list[Partition]
    keys: dict[int, str]
    resumed: dict[int, dict[str, Any]]
    inputs: dict[str, Any]
    config: dict[str, Any]
    started: float

    @property
    def pending(self) -> list[Partition]:
        """Partitions still to compute (not committed by a resumed run)."""
        return [p for p in self.plan if p.index not in self.resumed]

    def run(
        self,
        client: Client | None = None,
        *,
        retries: int = DEFAULT_RETRIES,
        on_progress: Callable[[PartitionEvent], None] | None = None,
        manifest: Mapping[str, Any] | None = None,
        report: bool = True,
    ) -> RunResult:
        """Compute the pending partitions on ``client`` (or here) and commit the run directory.

        Parameters
        ----------
        client : distributed.Client, optional
            Where the tasks run; without one they run in this process, one after the other.
        retries : int
            Dask retries per task (a worker that dies mid-task also has its task rescheduled).
        on_progress : callable, optional
            Called with a :class:`PartitionEvent` as each partition finishes or is skipped.
        manifest : mapping, optional
            Extra manifest entries from the caller (e.g. the configuration source).
        report : bool
            Write ``report.html`` (:func:`meio.report.write_report`) into the run directory before
            it is committed.

        """
        def report(partition: Partition, state: str, seconds: float) -> None:
            if on_progress is not None:
                on_progress(PartitionEvent(partition.index, len(self.plan), state,
                                           partition.networks, partition.stages, seconds))

        for index in sorted(self.resumed):
            report(self.plan[index], "skipped", 0.0)
        cluster: dict[str, Any] = {"scheduler": None, "workers": 0,
                                   "numba_threads_per_task": self.settings.numba_threads}
        if client is not None:
            from meio.cluster.plugin import WarmUpPlugin

            client.register_plugin(WarmUpPlugin(self.settings.model, self.settings.options))
            cluster = {"scheduler": client.scheduler.address,
                       "workers": len(client.scheduler_info(n_workers=-1)["workers"]),
                       "numba_threads_per_task": numba_thread_budget(client)}
            if self.settings.numba_threads is not None:
                cluster["numba_threads_per_task"] = min(cluster["numba_threads_per_task"],
                                                        self.settings.numba_threads)
        settings = replace(self.settings, numba_threads=cluster["numba_threads_per_task"])
        planned = time.perf_counter()
        todo = [(p, self.keys[p.index]) for p in self.pending]
        try:
            records = _run_tasks(client, todo, settings, retries, report)
        except InputError:
            self.area.discard()
            raise
        done = {r["partition"]["index"]: {**r, "resumed": False} for r in records}
        done.update({i: {**r, "resumed": True} for i, r in self.resumed.items()})
        partitions = [done[i] for i in sorted(done)]
        if len(partitions) == 1:
            self.area.flatten(self.plan[0].name)
            files = {t: {**partitions[0]["files"][t], "file": f"{t}.parquet"} for t in TABLES}
            partitions[0]["files"] = files
        else:
            files = {t: {"dataset": f"{t}/", "parts": len(partitions),
                         "rows": sum(p["files"][t]["rows"] for p in partitions)} for t in TABLES}
        content = {
            **(manifest or {}),
            "model": settings.model,
            "config": self.config,
            "inputs": {**self.inputs, "stages_rows": sum(p.stages for p in self.plan),
                       "networks": sum(p.networks for p in self.plan)},
            "cluster": cluster,
            "files": files,
            "partitions": partitions,
            "timings_seconds": {"plan": planned - self.started, "run": time.perf_counter() - planned},
        }
        content["timings_seconds"]["total"] = time.perf_counter() - self.started
        written: list[Path] = []
        finish = (lambda dataset: written.extend(self._report(dataset))) if report else None
        output = self.area.commit(content, finish)
        return RunResult(output, content, output / written[0].name if written else None)

    def _report(self, dataset: Path) -> list[Path]:
        """The run's report inside the dataset about to be committed; none if it cannot be made."""
        from meio.report import write_report

        arcs = self.settings.arcs.path if self.settings.arcs is not None else None
        try:
            return [write_report(dataset, arcs=arcs, name=Path(self.area.target).name)]
        except Exception as error:  # the run's results must not be lost to its report
            logger.warning("no report for %s: %s: %s (meio report DIR makes it later)", self.area.target,
                           type(error).__name__, error)
            return []


def _check_simulation_job(options: dict[str, Any], service_level: float, policy: object,
                          history: object) -> None:
    """What a simulation job must have before any task starts: a policy, known options in range."""
    if policy is None:
        raise InputError("config", "policy", "give the base-stock policy to simulate")
    check_simulation_options(service_level=service_level, **options)
    check_demand_model(options.get("demand"), has_history=history is not None)


def prepare_catalog(
    stages: TableSource,
    arcs: TableSource | None,
    output: str | Path,
    *,
    model: str,
    service_level: float,
    holding_rate: float | None = None,
    options: Mapping[str, Any] | None = None,
    partitions: int | None = None,
    partition_size: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    policy: TableSource | Plan | None = None,
    history: TableSource | None = None,
    numba_threads: int | None = None,
    verify_review_periods: bool = False,
) -> CatalogJob:
    """Check the output target and the inputs, plan the partitions, find resumable ones.

    Parameters
    ----------
    stages, arcs : path or table
        The input tables (docs/design.md §2): files by extension, directories of Parquet files
        (hive partitioning allowed), or in-memory Polars/Arrow tables (written once into the
        staging area so that workers can read them).
    output : path
        The run directory: ``stages/part-XXXXX.parquet``, ``networks/part-XXXXX.parquet``,
        ``manifest.json`` (``stages.parquet``, ``networks.parquet`` for a single partition).
    model, service_level, holding_rate, options
        As for :func:`meio.optimize` and :func:`meio.read_network`; passed through unchanged.
        ``model="simulate"`` simulates ``policy`` instead, ``options`` being the keyword
        arguments of :func:`meio.simulate` (``periods``, ``replications``, ``seed``, ...).
    partitions, partition_size : int, optional
        How many partitions, or how many stages per partition (default
        ``DEFAULT_PARTITION_SIZE``). Results do not depend on either.
    resume : bool
        Keep partitions a previous, unfinished run of the same job committed (see
        :mod:`meio.cluster.checkpoint`).
    overwrite : bool
        Replace an existing run directory (it stays intact until the new one is complete).
    policy, history : path or table, optional
        ``model="simulate"``: the base-stock policy (a run directory of ``meio optimize`` or a
        table, see :func:`meio.simulate`) and the demand history for ``demand="history"``.
    numba_threads : int, optional
        Numba threads per task (default: all cores in this process; on a cluster, cores over the
        Dask threads of a host, and never more than this).
    verify_review_periods : bool
        The plan will be simulated afterwards with the stages' review periods (``meio optimize
        --verify``): the pre-check also requires them whole, so bad input stops the run before
        anything is written.

    Raises
    ------
    meio.InputError
        Bad input found by the pre-check (:func:`meio.cluster.catalog.precheck`); nothing is
        written. Rules on rows are checked by each partition's task when the job runs.

    """
    started = time.perf_counter()
    if model == SIMULATE:
        _check_simulation_job(dict(options or {}), service_level, policy, history)
    target = check_output_target(output, overwrite=overwrite)
    area = RunArea(str(target.resolve()))
    area.open(resume=resume)
    options = dict(options or {})
    try:
        stage_source = _source("stages", stages, area)
        arc_source = _source("arcs", arcs, area)
        policy_source = _source("policy", policy, area)
        history_source = _source("history", history, area)
        precheck(stage_source, arc_source, holding_rate=holding_rate, policy=policy_source,
                 history=history_source,
                 whole_review_periods=verify_review_periods or (
                     model == SIMULATE and bool(options.get("review_period", True))))
        plan = plan_partitions(
            stage_source, partitions=partitions,
            partition_size=partition_size or (None if partitions else DEFAULT_PARTITION_SIZE),
        )
    except InputError:
        area.discard()
        raise
    files = {s.table: {"path": s.path if isinstance(t, str | Path) else None, "sha256": s.sha256()}
             for s, t in ((stage_source, stages), (arc_source, arcs), (policy_source, policy),
                          (history_source, history)) if s is not None}
    inputs = {"files": files}
    job = {"model": model, "service_level": service_level, "holding_rate": holding_rate,
           "options": options, "inputs": {t: f["sha256"] for t, f in files.items()}}
    keys = {p.index: _key(job, vars(p)) for p in plan}
    area.keep_only({p.name for p in plan})
    resumed = {p.index: r for p in plan if (r := area.committed(p.name, keys[p.index])) is not None}
    settings = RunSettings(stage_source, arc_source, area, model, service_level, holding_rate, options,
                           numba_threads, policy_source, history_source)
    config = job | {"partitions": len(plan), "partition_size": partition_size}
    return CatalogJob(area, settings, plan, keys, resumed, inputs, config, started)


def run_catalog(
    stages: TableSource,
    arcs: TableSource | None,
    output: str | Path,
    *,
    client: Client | None = None,
    retries: int = DEFAULT_RETRIES,
    on_progress: Callable[[PartitionEvent], None] | None = None,
    manifest: Mapping[str, Any] | None = None,
    **settings: Any,
) -> RunResult:
    """Optimize every network of a catalog into a partitioned run directory.

    :func:`prepare_catalog` (``settings`` are its keyword arguments) then
    :meth:`CatalogJob.run` (``client``, ``retries``, ``on_progress``, ``manifest``).

    Raises
    ------
    meio.InputError
        Bad input: from the pre-check (before any task starts) or from the first partition, in
        partition order, whose rows break a rule. Nothing is written.

    """
    job = prepare_catalog(stages, arcs, output, **settings)
    return job.run(client, retries=retries, on_progress=on_progress, manifest=manifest)
