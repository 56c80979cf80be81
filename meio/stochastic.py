"""``ssm`` on every network: the analytic model where it applies, a simulated descent elsewhere.

The stochastic-service model (:mod:`meio.engine.ssm`) solves serial networks exactly and
distribution trees by a decomposition; networks where a stage has several suppliers (assembly,
shared components, multi-sourcing) it marks ``unsupported``. :func:`complete_ssm` plans those by
the descent on simulated cost of :mod:`meio.engine.ssm_simulated`, warm-started from the
guaranteed-service plan's base stocks (docs/ssm.md, "Assembly and general networks").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from meio.api import Network, Plan, net_demand, read_network
from meio.api import optimize as solve
from meio.certification import sink_stages
from meio.engine.certify import CertifySettings, Targets, certify_demand_stages
from meio.engine.simulate import NO_DEMAND, summarize
from meio.engine.single import baseline_service_times
from meio.engine.ssm import UNSUPPORTED
from meio.engine.ssm_simulated import DescentSettings, descend, whole_unit_stages
from meio.io.errors import InputError
from meio.simulation import build_sim_networks, service_targets

DESCENT = "simulated_descent"


def descent_options(options: dict[str, Any]) -> DescentSettings:
    """The ``descent_*`` entries of the ``ssm`` options (:class:`DescentSettings` fields), checked."""
    values = {name: options[f"descent_{name}"] for name in DescentSettings._fields
              if f"descent_{name}" in options}
    for name, value in values.items():
        if name == "confidence":
            if not 0.5 <= value < 1.0:
                raise InputError("config", "descent_confidence", "must lie in [0.5, 1)")
            continue
        low = 0 if name in ("warmup", "seed") else 1
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise InputError("config", f"descent_{name}", f"must be a whole number >= {low}")
    return DescentSettings(**values)


def _subset(network: Network, ids: list[str]) -> Network:
    """The networks ``ids`` of a catalog as a catalog of their own."""
    stages = network.stages.drop("echelon").filter(pl.col("network").is_in(ids))
    arcs = network.arcs.filter(pl.col("network").is_in(ids))
    return read_network(stages, arcs)


def _warm_start(network: Network, service_level: float) -> np.ndarray:
    """Base stocks of the guaranteed-service plan, in batch order.

    The single-echelon plan's for the networks the GSM rejects (fill-rate targets, service levels
    below 0.5), network by network.
    """
    stages = network.stages
    gsm_rejects = pl.col("fill_rate").is_not_null() | (pl.col("service_level") < 0.5)
    rejected = set(stages.filter(gsm_rejects)["network"])
    ids = network.layout.network_ids.to_list()
    if service_level < 0.5:
        rejected = set(ids)
    plans = [solve(_subset(network, chosen), model, service_level=service_level).stages
             for model, chosen in (("gsm", [i for i in ids if i not in rejected]),
                                   ("single", [i for i in ids if i in rejected])) if chosen]
    levels = pl.concat([plan.select("network", "stage", "base_stock") for plan in plans])
    aligned = stages.select("network", "stage").join(levels, on=["network", "stage"], how="left",
                                                     maintain_order="left")
    return aligned["base_stock"].to_numpy()


def _sink_objective(network: Network, sinks: np.ndarray, service_level: float, stockout_default: float | None,
                    objective: str) -> tuple[Targets, np.ndarray]:
    """Per stage of ``sinks`` (demand stages): its targets, in cost mode the ratio ``p / (p + h)``; its ``p``.

    A network minimises cost where every demand stage has a stockout cost (``objective="auto"``,
    as the analytic model decides), or all of them with ``objective="cost"``.
    """
    batch = network.batch
    demand_stage = (batch.demand_mean > 0) | (batch.demand_sd > 0)
    level, fill = service_targets(batch, demand_stage, service_level)
    stockout = batch.stockout_cost.copy()
    if stockout_default is not None:
        stockout[np.isnan(stockout)] = float(stockout_default)
    index = np.repeat(np.arange(batch.n_networks), np.diff(batch.network_offsets))
    priced = np.bincount(index, demand_stage & np.isnan(stockout), batch.n_networks) == 0
    cost_mode = priced[index] if objective == "auto" else np.full(batch.n_stages, objective == "cost")
    holding = batch.holding_cost
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(stockout + holding > 0, stockout / (stockout + holding), 0.5)
    level = np.where(cost_mode, ratio, level)
    fill = np.where(cost_mode, np.nan, fill)
    return Targets(level[sinks], fill[sinks]), np.where(cost_mode, np.nan_to_num(stockout), 0.0)[sinks]


def complete_ssm(network: Network, plan: Plan, *, service_level: float, options: dict[str, Any]) -> Plan:
    """``plan`` (of the ``ssm`` model) with its unsupported networks planned by the descent."""
    unsupported = plan.networks.filter(pl.col("method") == UNSUPPORTED)["network"].to_list()
    if not unsupported:
        return plan
    settings = descent_options(options)
    part = _subset(network, unsupported)
    batch = part.batch
    # stages serve from stock; customer-facing ones quote their customers' max service time, as far as
    # their replenishment allows (the clock every model shares, docs/design.md §4.1)
    quoted = baseline_service_times(batch)[1].astype(np.float64)
    sim = build_sim_networks(part, _warm_start(part, service_level), quoted, None, None)
    sinks = sink_stages(part, sim.demand_kind)
    targets, stockout = _sink_objective(part, sinks, service_level, options.get("stockout_cost"),
                                        options.get("objective", "auto"))
    demand = net_demand(batch, service_level)
    movable = np.ones(batch.n_stages, bool)
    movable[sinks] = False
    movable &= sim.demand_kind == NO_DEMAND
    step = 0.5 * demand.demand_sd * np.sqrt(batch.lead_time + 1.0) + 0.05 * demand.demand_mean
    single = solve(part, "single", service_level=service_level).stages["base_stock"].to_numpy()
    descent = descend(sim, movable, step, sinks, targets, stockout, settings, alternative=single,
                      whole=whole_unit_stages(sim))
    # every demand stage at its quantile given the levels above it, upstream first (internal stages
    # with external demand, which the descent holds at their start, included)
    demand_rows = np.flatnonzero(sim.demand_kind != NO_DEMAND)
    demand_targets, _ = _sink_objective(part, demand_rows, service_level, options.get("stockout_cost"),
                                        options.get("objective", "auto"))
    final = CertifySettings(periods=settings.periods, replications=settings.replications,
                            warmup=settings.warmup, check_periods=settings.periods, rounds=1,
                            confidence=0.5, seed=settings.seed)
    exact = certify_demand_stages(sim._replace(base_stock=descent.base_stock), demand_rows, demand_targets,
                                  final)
    summary = summarize(exact.totals)
    on_hand = summary.on_hand.mean
    fill = summary.fill_rate.mean
    stage_rows = part.stages.select("network", "stage").with_columns(
        pl.Series("base_stock", exact.base_stock),
        pl.Series("safety_stock", on_hand),
        pl.Series("safety_stock_cost", batch.holding_cost * on_hand),
        pl.Series("expected_on_hand", on_hand),
        pl.Series("expected_backorders", summary.backorders.mean),
        pl.Series("outbound_service_time", quoted),
        pl.Series("expected_fill_rate", np.where(sim.demand_kind != NO_DEMAND, fill, np.nan)),
        pl.Series("expected_cycle_service_level",
                  np.where(sim.demand_kind != NO_DEMAND, summary.cycle_service_level.mean, np.nan)),
    )
    index = np.repeat(np.arange(batch.n_networks), np.diff(batch.network_offsets))
    holding = np.bincount(index, batch.holding_cost * on_hand, batch.n_networks)
    network_rows = pl.DataFrame({
        "network": part.layout.network_ids,
        "method": np.full(batch.n_networks, DESCENT),
        "safety_stock_cost": holding,
        "expected_cost": descent.cost,
    })
    stages = plan.stages.update(stage_rows, on=["network", "stage"])
    networks = plan.networks.update(network_rows, on="network")
    saving = 100.0 * (1.0 - networks["safety_stock_cost"] / networks["baseline_cost"])
    return Plan(stages, networks.with_columns(
        saving_pct=pl.when(pl.col("baseline_cost") > 0).then(saving).otherwise(0.0)))
