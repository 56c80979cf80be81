"""Random simulation cases shared by the simulator's and the certification's tests."""

from __future__ import annotations

import numpy as np
import polars as pl

import meio
from meio.engine.simulate import GAMMA, HISTORY, NEGATIVE_BINOMIAL, NO_DEMAND, NORMAL, POISSON
from meio.simulation import aligned_policy, build_sim_networks, installation_levels, policy_frame
from tests.tables import random_catalog

LAWS = ("normal", "poisson", "negative_binomial", "gamma")


def sim_inputs(seed, demand, lead_time_sd, service_times, review=False, laws=False, history=None):
    """A random catalog of four small networks and a random policy, as the kernel's arrays.

    ``laws``: every stage draws its ``demand_distribution`` (:data:`LAWS`; ``demand=None`` uses
    them) and demand stages a mean from 0.5 to 40, so Poisson draws take both of the sampler's
    branches. ``history``: a function of the catalog giving the history table (``demand="history"``).
    Returns ``(network, sim, inbound)``: the catalog, the kernel's arrays and the policy's inbound
    service times (NaN where it gives none).
    """
    stages, arcs = random_catalog(seed, networks=4, max_stages=5)
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
    return network, sim, inbound


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


def twin_networks(network, sim, inbound, history=None):
    """The twin's networks: the catalog's stages with the policy, arcs in the layout's order;
    ``history`` (a table) gives each stage its rows' demands in the table's order."""
    names = {NO_DEMAND: "none", NORMAL: "normal", POISSON: "poisson",
             NEGATIVE_BINOMIAL: "negative_binomial", GAMMA: "gamma", HISTORY: "history"}
    batch = network.batch
    for i, network_id in enumerate(network.layout.network_ids):
        first, last = batch.network_offsets[i], batch.network_offsets[i + 1]
        a0, a1 = batch.arc_offsets[i], batch.arc_offsets[i + 1]
        rows = slice(first, last)
        yield i, {
            "id": network_id, "stage": network.stages["stage"][first:last].to_list(),
            "base_stock": sim.base_stock[rows], "lead_time": batch.lead_time[rows],
            "lead_time_sd": batch.lead_time_sd[rows],
            "external_inbound_service_time": batch.external_inbound_service_time[rows],
            "inbound_service_time": inbound[rows],
            "service_time": sim.outbound_service_time[rows], "review_period": sim.review_period[rows],
            "holding_cost": batch.holding_cost[rows],
            "stockout_cost": sim.stockout_cost[rows], "demand_mean": batch.demand_mean[rows],
            "demand_sd": batch.demand_sd[rows], "demand": [names[k] for k in sim.demand_kind[rows]],
            "arcs": list(zip(batch.arc_upstream[a0:a1], batch.arc_downstream[a0:a1],
                             batch.arc_quantity[a0:a1], strict=True)),
            "history": [[] if history is None else history.filter(
                (pl.col("network") == network_id) & (pl.col("stage") == stage))["demand"].to_list()
                for stage in network.stages["stage"][first:last].to_list()],
        }
