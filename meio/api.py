"""The Python API: read a catalog, optimize it with a model, get Polars frames back.

This is the single-machine path; the cluster module runs the very same functions on partitions
of whole networks, so results never depend on where they were computed.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.special import ndtri

from meio.engine.batch import Batch, NetDemand
from meio.engine.demand import propagate_demand
from meio.engine.result import ModelResult
from meio.io.errors import InputError
from meio.io.layout import Layout, build_layout
from meio.io.read import TableSource
from meio.io.schema import DEMAND_DISTRIBUTIONS
from meio.io.validate import fail_where
from meio.io.write import write_run_directory

DEFAULT_SERVICE_LEVEL = 0.95

#: Model name -> module whose ``solve(batch, demand, **options)`` implements it.
MODELS = {
    "single": "meio.engine.single",
    "gsm": "meio.engine.gsm",
    "ssm": "meio.engine.ssm",
}


@dataclass(frozen=True)
class Network:
    """A validated catalog of networks, laid out for the kernels (see :func:`read_network`)."""

    layout: Layout

    @property
    def batch(self) -> Batch:
        """The kernels' view: flat CSR arrays."""
        return Batch(**self.layout.arrays)

    @property
    def stages(self) -> pl.DataFrame:
        """The validated stages table in batch order (schema types, defaults filled)."""
        return self.layout.stages

    @property
    def arcs(self) -> pl.DataFrame:
        """The validated arcs table."""
        return self.layout.arcs

    @property
    def n_networks(self) -> int:
        """How many networks the catalog holds."""
        return len(self.layout.arrays["network_offsets"]) - 1


@dataclass(frozen=True)
class Plan:
    """Results of one model on one catalog: the stages and networks tables of docs/design.md §3."""

    stages: pl.DataFrame
    networks: pl.DataFrame


def read_network(
    stages: TableSource, arcs: TableSource | None = None, *, holding_rate: float | None = None
) -> Network:
    """Read and validate a catalog of networks.

    Parameters
    ----------
    stages, arcs : str, Path, polars.DataFrame or pyarrow.Table
        The tables of docs/design.md §2; files are read by extension (``.parquet``, ``.csv``,
        ``.arrow``/``.ipc``/``.feather``). ``arcs`` may be omitted for single-stage networks.
    holding_rate : float, optional
        Holding cost per period per unit of cumulative cost, for stages without ``holding_cost``.

    Raises
    ------
    meio.InputError
        Naming the table, column, rule and first offending ids of the first broken rule.

    """
    return Network(build_layout(stages, arcs, holding_rate=holding_rate))


def net_demand(batch: Batch, service_level: float) -> NetDemand:
    """Propagate demand with ``service_level`` as the default target of stages without one."""
    if not 0.0 < service_level < 1.0:
        raise InputError("config", "service_level", "must lie strictly between 0 and 1")
    levels = np.where(np.isnan(batch.service_level), service_level, batch.service_level)
    return propagate_demand(batch, ndtri(levels))


#: What a model cannot honour, rejected rather than silently ignored: model -> rules of
#: ``(column, rule in words, stages frame -> expression true on rows that break it)``. The
#: frame carries the batch's replenishment ``lead_time_sd`` (lanes included, see
#: :func:`meio.io.layout.replenishment_lead_time_sd`).
MODEL_RULES = {
    "gsm": [
        ("service_level", "the gsm model's safety stock k sqrt(tau) needs a safety factor >= 0: "
         "must be >= 0.5", pl.col("service_level") < 0.5),
        ("fill_rate", "the gsm model sizes for cycle service levels; give service_level "
         "(or use model single or ssm for fill-rate targets)", pl.col("fill_rate").is_not_null()),
    ],
    "ssm": [
        ("review_period", "the ssm model reviews every period; must be 1 (or use model single "
         "or gsm)", pl.col("review_period") != 1.0),
        ("lead_time_sd", "the ssm model assumes fixed lead times; must be 0 on the stage and "
         "its inbound lanes (or use model single or gsm)", pl.col("lead_time_sd") > 0.0),
    ],
}


def check_model_inputs(network: Network, model: str, service_level: float) -> None:
    """Reject stage columns ``model`` would otherwise ignore (:data:`MODEL_RULES`)."""
    if model == "gsm" and service_level < 0.5:
        raise InputError("config", "service_level", "the gsm model needs a default service level >= 0.5")
    if model not in MODEL_RULES:
        return
    stages = network.stages.with_columns(lead_time_sd=network.layout.arrays["lead_time_sd"])
    for column, rule, broken in MODEL_RULES[model]:
        fail_where(stages, broken, "stages", column, rule)


def solve_model(model: str, batch: Batch, demand: NetDemand, **options: Any) -> ModelResult:
    """Run one registered model on a batch."""
    if model not in MODELS:
        raise InputError("config", "model", f"unknown model '{model}' (choose from {', '.join(MODELS)})")
    return importlib.import_module(MODELS[model]).solve(batch, demand, **options)


def optimize(
    network: Network | tuple[TableSource, TableSource | None],
    model: str = "gsm",
    *,
    service_level: float = DEFAULT_SERVICE_LEVEL,
    **options: Any,
) -> Plan:
    """Optimize safety stock for every network of a catalog.

    Parameters
    ----------
    network : Network or (stages, arcs)
        A catalog from :func:`read_network`, or its two tables.
    model : str
        ``"single"`` (single-echelon baseline) or any other registered model (see ``MODELS``).
    service_level : float
        Cycle service level of stages whose table gives none (default 0.95).
    **options
        Passed to the model's solver (e.g. ``time_limit`` for general GSM networks).

    Returns
    -------
    Plan
        ``stages`` (one row per stage) and ``networks`` (one row per network) frames, with the
        single-echelon baseline cost and the saving against it on every network row.

    """
    if not isinstance(network, Network):
        network = read_network(*network)
    check_model_inputs(network, model, service_level)
    batch = network.batch
    demand = net_demand(batch, service_level)
    started = time.perf_counter()
    result = solve_model(model, batch, demand, **options)
    seconds = time.perf_counter() - started
    baseline = result if model == "single" else solve_model("single", batch, demand)
    return Plan(
        stages=_stage_frame(network, model, demand, result, baseline),
        networks=_network_frame(network, model, result, baseline, seconds),
    )


def _stage_frame(network: Network, model: str, demand: NetDemand, result: ModelResult,
                 baseline: ModelResult) -> pl.DataFrame:
    """Result columns first, then the input columns (external demand renamed), then extras.

    ``demand_family`` names the law of the stage's net demand (docs/design.md §2).

    ``baseline_safety_stock`` and ``baseline_safety_stock_cost`` are the single-echelon plan's
    per stage, so a report can show where MEIO moved the stock (docs/report.md).
    """
    inputs = network.stages.rename({"demand_mean": "external_demand_mean",
                                    "demand_sd": "external_demand_sd"})
    computed = pl.DataFrame(
        {
            "model": np.full(inputs.height, model),
            "demand_mean": demand.demand_mean,
            "demand_sd": demand.demand_sd,
            "replenishment_lead_time": network.layout.arrays["lead_time"],
            "replenishment_lead_time_sd": network.layout.arrays["lead_time_sd"],
            "demand_family": np.array(DEMAND_DISTRIBUTIONS)[demand.demand_family],
            "safety_factor": demand.safety_factor,
            **result.stage,
            "baseline_safety_stock": baseline.stage["safety_stock"],
            "baseline_safety_stock_cost": baseline.stage["safety_stock_cost"],
        }
    )
    keys = inputs.select("network", "stage")
    rest = inputs.drop("network", "stage", *[c for c in computed.columns if c in inputs.columns])
    return pl.concat([keys, computed, rest], how="horizontal")


def _network_frame(
    network: Network, model: str, result: ModelResult, baseline: ModelResult, seconds: float
) -> pl.DataFrame:
    """Per-network summary: cost, baseline cost, saving, method, bounds and time."""
    offsets = network.layout.arrays["network_offsets"]
    cost = result.network["safety_stock_cost"]
    baseline_cost = baseline.network["safety_stock_cost"]
    with np.errstate(divide="ignore", invalid="ignore"):
        saving = np.where(baseline_cost > 0, 100.0 * (1.0 - cost / baseline_cost), 0.0)
    stages = np.diff(offsets)
    columns = {
        "network": network.layout.network_ids,
        "model": np.full(len(stages), model),
        "method": result.network["method"],
        "stages": stages,
        "safety_stock_cost": cost,
        "baseline_cost": baseline_cost,
        "saving_pct": saving,
    }
    for name, values in result.network.items():
        if name not in columns and name != "seconds":
            columns[name] = values
    columns["seconds"] = result.network.get(
        "seconds", np.full(len(stages), seconds * stages / max(int(offsets[-1]), 1))
    )
    return pl.DataFrame(columns)


def write_plan(plan: Plan, output: str | Path, manifest: dict[str, Any], *, overwrite: bool) -> Path:
    """Write a plan as a run directory (docs/design.md §3)."""
    return write_run_directory(
        output, {"stages": plan.stages, "networks": plan.networks}, manifest, overwrite=overwrite
    )
