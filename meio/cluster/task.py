"""One partition, end to end: read its rows, validate, optimize or simulate, write its part files.

This is the whole of what a Dask task does, and it calls exactly the single-machine API
(:func:`meio.api.read_network`, :class:`meio.pipeline.Pipeline` — the model's solve and, on request,
its certification — and :func:`meio.simulation.simulate`), so
a partitioned run computes every network as a single-process run would.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from meio.api import Network, Plan, read_network
from meio.cluster.catalog import Partition, Source
from meio.cluster.checkpoint import RunArea
from meio.engine._numba import numba_threads
from meio.io.errors import InputError
from meio.io.policy import POLICY_COLUMNS
from meio.pipeline import Pipeline
from meio.simulation import simulate

#: The ``model`` of a run that simulates a policy instead of optimizing one.
SIMULATE = "simulate"
#: Demand stages missing their targets that a simulated partition lists in its record.
MISSING_EXAMPLES = 10


@dataclass(frozen=True)
class RunSettings:
    """What every partition of a run shares: inputs, model and its settings, where to write.

    ``model`` is an optimization model of :data:`meio.MODELS`, with ``options`` its keyword
    arguments, or :data:`SIMULATE`: then ``options`` are those of :func:`meio.simulate`
    (``periods``, ``replications``, ``seed``, ``warmup``, ``demand``) and ``policy`` (and
    ``history`` for resampled demand) are read partition by partition like the catalog.
    """

    stages: Source
    arcs: Source | None
    area: RunArea
    model: str
    service_level: float
    holding_rate: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    numba_threads: int | None = None
    policy: Source | None = None
    history: Source | None = None


@dataclass(frozen=True)
class PartitionFailure:
    """Bad input found by a task, returned (not raised) so Dask does not retry it.

    The fields are those of :class:`~meio.io.errors.InputError`; :meth:`error` rebuilds it.
    """

    index: int
    table: str
    column: str
    rule: str
    count: int
    examples: tuple[str, ...]

    def error(self) -> InputError:
        """The error as the single-process path raises it."""
        return InputError(self.table, self.column, self.rule, self.count, self.examples)


def _peak_rss_mb() -> float:
    """Peak resident memory of this worker process so far, MiB.

    Linux: ``VmHWM`` of the process's own address space. ``ru_maxrss`` would also count the
    memory of the parent a worker was forked from (it survives ``exec``), overstating workers
    started by a large client. Elsewhere: ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def _echelon_summary(stages: pl.DataFrame) -> list[list[float]]:
    """``[echelon, stages, safety_stock_cost]`` rows, for the run summary without re-reading."""
    by_echelon = (
        stages.group_by("echelon")
        .agg(pl.len().alias("stages"), pl.col("safety_stock_cost").fill_nan(None).sum())
        .sort("echelon")
    )
    return [list(row) for row in by_echelon.iter_rows()]


def _network_totals(networks: pl.DataFrame) -> dict[str, float | int]:
    """Cost and baseline summed over the networks the model solved; how many it could not.

    A certified plan adds the model's own cost, its demand stages, those missing their targets
    and the networks whose every demand stage is certified.
    """
    solved = networks.filter(pl.col("safety_stock_cost").is_not_nan())
    totals = {
        "safety_stock_cost": float(solved["safety_stock_cost"].sum()),
        "baseline_cost": float(solved["baseline_cost"].sum()),
        "unsolved_networks": networks.height - solved.height,
    }
    if "certified" in networks.columns:
        totals |= {
            "model_cost": float(solved["model_cost"].sum()),
            "demand_stages": int(networks["demand_stages"].sum()),
            "missing_stages": int(networks["stages_missing_target"].sum()),
            "certified_networks": int(networks["certified"].sum()),
        }
    return totals


def _simulation_totals(plan: Plan) -> dict[str, Any]:
    """Demand stages meeting their targets, cost, and the first stages that miss (sorted)."""
    demand = plan.stages.filter(pl.col("target_met").is_not_null())
    missing = demand.filter(~pl.col("target_met")).sort("network", "stage")
    simulated = plan.networks.filter(pl.col("simulated"))
    return {
        "demand_stages": demand.height,
        "missing_stages": missing.height,
        "unsimulated_networks": plan.networks.height - simulated.height,
        "mean_cost": float(simulated["mean_cost"].sum()),
        "first_missing": missing.head(MISSING_EXAMPLES).select(
            "network", "stage", "target_service_level", "cycle_service_level",
            "cycle_service_level_ci_low", "cycle_service_level_ci_high", "target_fill_rate", "fill_rate",
        ).fill_nan(None).to_dicts(),  # null, not NaN: the manifest stays strict JSON
    }


def _summary(model: str, plan: Plan) -> dict[str, Any]:
    """The totals the CLI's end-of-run summary needs, without reading the part files back."""
    if model == SIMULATE:
        return _simulation_totals(plan)
    return {"by_echelon": _echelon_summary(plan.stages), **_network_totals(plan.networks)}


def _compute(network: Network, settings: RunSettings, policy: pl.DataFrame | None,
             history: pl.DataFrame | None) -> Plan:
    """Optimize the partition's networks, or simulate the policy's rows of them."""
    if settings.model != SIMULATE:
        pipeline = Pipeline.from_options(settings.model, settings.service_level, settings.options)
        return pipeline.run(network, history=history)
    return simulate(network, policy, history=history, service_level=settings.service_level,
                    **settings.options)


def run_partition(
    partition: Partition, settings: RunSettings, key: str, worker: str | None = None
) -> dict[str, Any] | PartitionFailure:
    """Read, validate, optimize (or simulate) and write one partition; returns its committed record.

    Parameters
    ----------
    partition : Partition
        The network range to process.
    settings : RunSettings
        Inputs, model and area shared by the run.
    key : str
        The partition's checkpoint key (stored in its record, see :mod:`meio.cluster.checkpoint`).
    worker : str, optional
        Name of the process running the task, kept in the record.

    Returns
    -------
    dict or PartitionFailure
        The record (files with row counts and checksums, per-step seconds, peak memory, summary),
        or the first broken input rule.

    """
    started = time.perf_counter()
    seconds = {}
    step = "simulate" if settings.model == SIMULATE else "optimize"
    try:
        stages = partition.rows(settings.stages)
        arcs = None if settings.arcs is None else partition.rows(settings.arcs)
        policy = None if settings.policy is None else partition.rows(settings.policy, POLICY_COLUMNS)
        history = None if settings.history is None else partition.rows(settings.history)
        seconds["read"] = time.perf_counter() - started
        network = read_network(stages, arcs, holding_rate=settings.holding_rate)
        seconds["validate"] = time.perf_counter() - started - seconds["read"]
        with numba_threads(settings.numba_threads):
            plan = _compute(network, settings, policy, history)
    except InputError as error:
        return PartitionFailure(partition.index, error.table, error.column, error.rule, error.count,
                                error.examples)
    seconds[step] = time.perf_counter() - started - seconds["read"] - seconds["validate"]
    files = {
        "stages": settings.area.write_part("stages", partition.name, plan.stages),
        "networks": settings.area.write_part("networks", partition.name, plan.networks),
    }
    seconds["write"] = time.perf_counter() - started - sum(seconds.values())
    record = {
        "key": key,
        "partition": vars(partition),
        "files": files,
        "seconds": seconds,
        "worker": worker,
        "peak_rss_mb": _peak_rss_mb(),
        "summary": _summary(settings.model, plan),
    }
    settings.area.write_record(partition.name, record)
    return record
