"""Builders of SSM test instances in the kernels' layouts (``SerialSystems``, ``Batch``, net demand).

Kept apart from :mod:`tests.ssm_reference`, whose twins import nothing of ``meio``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

from meio.engine.ssm_serial import GAMMA, NEGATIVE_BINOMIAL, NORMAL, POISSON, SerialSystems
from tests.ssm_reference import echelon_costs

CODES = {"normal": NORMAL, "poisson": POISSON, "negative_binomial": NEGATIVE_BINOMIAL, "gamma": GAMMA}


def serial_systems(instances) -> SerialSystems:
    """Pack instance dicts into the kernel layout."""
    offsets = np.zeros(len(instances) + 1, np.int64)
    offsets[1:] = np.cumsum([len(i["holding_cost"]) for i in instances])
    return SerialSystems(
        offsets,
        np.array([t for i in instances for t in i["lead_time"]], float),
        np.array([h for i in instances for h in echelon_costs(i["holding_cost"])], float),
        np.array([i["demand_mean"] for i in instances], float),
        np.array([i["demand_sd"] for i in instances], float),
        np.array([i["stockout_cost"] for i in instances], float),
        np.array([CODES[i["distribution"]] for i in instances]),
    )


STAGE_DEFAULTS = {
    "lead_time": 1.0,
    "lead_time_sd": 0.0,
    "holding_cost": 1.0,
    "demand_mean": 0.0,
    "demand_sd": 0.0,
    "service_level": math.nan,
    "fill_rate": math.nan,
    "max_service_time": 0,
    "external_inbound_service_time": 0,
    "stockout_cost": math.nan,
    "review_period": 1.0,
}


def make_batch(networks):
    """Build a Batch from ``[(stages, arcs)]``: stage dicts in topological order, arc tuples."""
    from meio.engine.batch import Batch

    stages = [{**STAGE_DEFAULTS, **stage} for network, _ in networks for stage in network]
    arcs = [sorted(arcs) for _, arcs in networks]
    column = lambda name, dtype=float: np.array([s[name] for s in stages], dtype)  # noqa: E731
    return Batch(
        np.concatenate([[0], np.cumsum([len(n) for n, _ in networks])]).astype(np.int64),
        np.concatenate([[0], np.cumsum([len(a) for a in arcs])]).astype(np.int64),
        np.array([a[0] for arc in arcs for a in arc], np.int64),
        np.array([a[1] for arc in arcs for a in arc], np.int64),
        np.array([a[2] for arc in arcs for a in arc], float),
        column("lead_time"),
        column("lead_time_sd"),
        column("holding_cost"),
        column("demand_mean"),
        column("demand_sd"),
        column("service_level"),
        column("fill_rate"),
        column("max_service_time", np.int64),
        column("external_inbound_service_time", np.int64),
        column("stockout_cost"),
        column("review_period"),
        np.zeros(len(stages), np.int64),  # normal demand (the option demand_distribution decides)
    )


def net_demand(batch, default_service_level=0.95):
    from meio.engine.demand import propagate_demand

    level = np.where(np.isnan(batch.service_level), default_service_level, batch.service_level)
    return propagate_demand(batch, ndtri(level))
