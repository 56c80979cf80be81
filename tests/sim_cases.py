"""Random simulation cases shared by the simulator's and the certification's tests."""

from __future__ import annotations

import math

import numpy as np
import polars as pl

import meio
from meio.simulation import aligned_policy, build_sim_networks, installation_levels, policy_frame
from tests.tables import random_catalog

LAWS = ("normal", "poisson", "negative_binomial", "gamma")


def sim_inputs(seed, demand, lead_time_sd, service_times, review=False, laws=False, history=None,
               internal_demand=False):
    """A random catalog of four small networks and a random policy, as the kernel's arrays.

    ``laws``: every stage draws its ``demand_distribution`` (:data:`LAWS`; ``demand=None`` uses
    them) and demand stages a mean from 0.5 to 40, so Poisson draws take both of the sampler's
    branches. ``history``: a function of the catalog giving the history table (``demand="history"``).
    ``internal_demand``: about half of the stages with successors get external demand too.
    Returns ``(network, sim, policy)``: the catalog, the kernel's arrays and the policy table.
    """
    stages, arcs = random_catalog(seed, networks=4, max_stages=5)
    if internal_demand:
        stages = with_internal_demand(stages, arcs, seed)
    if laws:
        draw = np.random.default_rng([seed, 2])
        stages = stages.with_columns(
            demand_distribution=pl.Series(draw.choice(LAWS, stages.height)),
            demand_mean=pl.when(pl.col("demand_mean") > 0)
            .then(pl.Series(draw.uniform(4, 320, stages.height))).otherwise(0.0),
        ).with_columns(  # overdispersed where negative binomial (sd^2 > mean)
            demand_sd=pl.when((pl.col("demand_distribution") == "negative_binomial")
                              & (pl.col("demand_mean") > 0))
            .then((pl.col("demand_mean") / 8).sqrt() * pl.Series(draw.uniform(1.2, 3.0, stages.height)))
            .otherwise(pl.col("demand_sd")),
        )
    rng = np.random.default_rng(seed)
    review_periods = np.random.default_rng([seed, 1]).choice([1.0, 2.0, 3.0, 7.0], stages.height)
    stages = stages.with_columns(
        lead_time=pl.Series(rng.choice([0.0, 1.0, 2.0, 1.5, 3.25], stages.height)),
        lead_time_sd=pl.Series(rng.uniform(0, 1.5, stages.height) * lead_time_sd),
        external_inbound_service_time=pl.Series(rng.integers(0, 3, stages.height)),
        stockout_cost=pl.Series(rng.uniform(0, 10, stages.height)),
        demand_mean=pl.col("demand_mean") / 8,
        review_period=pl.Series(review_periods if review else np.ones(stages.height)),
    )
    network = meio.read_network(stages, arcs)
    policy = network.stages.select("network", "stage").with_columns(
        base_stock=pl.Series(rng.uniform(0, 25, stages.height).round(1)),
        outbound_service_time=pl.Series(rng.integers(0, 3, stages.height) * service_times),
        inbound_service_time=pl.Series(rng.choice([np.nan, 0.0, 1.0, 3.0], stages.height)),
    )
    aligned = aligned_policy(network, policy_frame(policy))
    inbound = aligned["inbound_service_time"].to_numpy()
    sim = build_sim_networks(network, installation_levels(network.batch, aligned),
                             aligned["outbound_service_time"].to_numpy(), demand,
                             None if history is None else history(network), True, inbound)
    return network, sim, policy


def with_internal_demand(stages, arcs, seed, share=0.5):
    """``stages`` with external demand (mean 1-50, sd 0.5-20) on a ``share`` of the stages with successors."""
    rng = np.random.default_rng([seed, 3])
    upstream = set(zip(arcs["network"], arcs["upstream"], strict=True))
    internal = np.array([(n, s) in upstream for n, s in zip(stages["network"], stages["stage"], strict=True)])
    chosen = internal & (rng.random(stages.height) < share)
    return stages.with_columns(
        demand_mean=pl.when(pl.Series(chosen)).then(pl.Series(rng.uniform(1, 50, stages.height)))
        .otherwise(pl.col("demand_mean")),
        demand_sd=pl.when(pl.Series(chosen)).then(pl.Series(rng.uniform(0.5, 20, stages.height)))
        .otherwise(pl.col("demand_sd")),
    )


def random_history(network, seed=0):
    """A history table: 1 to 6 rows of whole and fractional demands for every demand stage."""
    rng = np.random.default_rng(seed)
    rows = []
    for network_id, stage, mean, sd in network.stages.select(
            "network", "stage", "demand_mean", "demand_sd").iter_rows():
        if mean > 0 or sd > 0:
            rows += [(network_id, stage, float(rng.choice([0.0, 1.0, 2.5, 7.0, 30.0])))
                     for _ in range(int(rng.integers(1, 7)))]
    return pl.DataFrame(rows, schema=["network", "stage", "demand"], orient="row")


def _given(value, default):
    """``default`` where a table cell is null or NaN."""
    return default if value is None or (isinstance(value, float) and math.isnan(value)) else value


def twin_networks(network, policy, demand=None, history=None):
    """The twin's networks, read off the tables in plain Python: the validated stages table (its
    rows in a topological order), the arcs table, the policy table (installation ``base_stock``,
    ``outbound_service_time``, optional ``inbound_service_time``) and the run's ``demand`` law
    (``None``: each stage's ``demand_distribution``; a Poisson stage's sd is sqrt(mean));
    ``history`` (a table) gives each stage its rows' demands in the table's order."""
    plan = {(row["network"], row["stage"]): row for row in policy.iter_rows(named=True)}
    arcs = network.arcs.iter_rows(named=True) if network.arcs is not None else []
    by_network = {}
    for arc in arcs:
        assert arc.get("lead_time") is None and arc.get("lead_time_sd") is None, "lanes: not twinned"
        by_network.setdefault(arc["network"], []).append(arc)
    rows_of = {}
    for row in network.stages.iter_rows(named=True):
        rows_of.setdefault(row["network"], []).append(row)
    for i, (network_id, rows) in enumerate(rows_of.items()):
        index = {row["stage"]: k for k, row in enumerate(rows)}
        links = [(index[a["upstream"]], index[a["downstream"]], a["quantity"] or 1.0)
                 for a in by_network.get(network_id, [])]
        assert all(up < down for up, down, _ in links), "the stages table is not in a topological order"
        laws = []
        for row in rows:
            column = row.get("demand_distribution") or "normal"
            laws.append("none" if row["demand_mean"] <= 0 and row["demand_sd"] <= 0 else demand or column)
        sd = [math.sqrt(row["demand_mean"]) if (row.get("demand_distribution") or "normal") == "poisson"
              else row["demand_sd"] for row in rows]
        policy_rows = [plan[(network_id, row["stage"])] for row in rows]
        yield i, {
            "id": network_id, "stage": [row["stage"] for row in rows],
            "base_stock": [p["base_stock"] for p in policy_rows],
            "lead_time": [row["lead_time"] for row in rows],
            "lead_time_sd": [row["lead_time_sd"] for row in rows],
            "external_inbound_service_time": [row["external_inbound_service_time"] for row in rows],
            "inbound_service_time": [_given(p.get("inbound_service_time"), math.nan) for p in policy_rows],
            "service_time": [round(_given(p.get("outbound_service_time"), 0)) for p in policy_rows],
            "review_period": [round(row["review_period"]) for row in rows],
            "holding_cost": [row["holding_cost"] for row in rows],
            "stockout_cost": [_given(row["stockout_cost"], 0.0) for row in rows],
            "demand_mean": [row["demand_mean"] for row in rows], "demand_sd": sd, "demand": laws,
            "arcs": links,
            "history": [[] if history is None else history.filter(
                (pl.col("network") == network_id) & (pl.col("stage") == row["stage"]))["demand"].to_list()
                for row in rows],
        }
