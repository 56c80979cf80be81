"""Hypothesis strategies of random catalogs as table rows (no meio code involved)."""

from __future__ import annotations

import math

import polars as pl
from hypothesis import strategies as st

#: The stages table's demand laws (``demand_distribution``).
FAMILIES = ("normal", "poisson", "negative_binomial", "gamma")


def sd_for(family: str, mean: float, spread: float) -> float:
    """A standard deviation the family accepts; ``spread`` in [0, 1] sets how wide."""
    if family == "poisson":
        return math.sqrt(mean)
    if family == "negative_binomial":
        return math.sqrt(mean * (1.05 + 4.0 * spread))
    if family == "gamma":
        return (0.05 + 1.5 * spread) * mean
    return 0.5 * spread * mean


@st.composite
def catalogs(draw, max_networks: int = 4, max_stages: int = 6, families: tuple[str, ...] = ("normal",)):
    """Random trees and DAGs with every column the models read: review periods, lanes (transit
    and spread), targets, caps, outside service times; each demand stage draws its law from
    ``families`` (written to ``demand_distribution`` unless only normal) and a spread it accepts.
    """
    stage_rows, arc_rows = [], []
    for n in range(draw(st.integers(1, max_networks))):
        size = draw(st.integers(1, max_stages))
        arcs = [(u, d) for d in range(size) for u in range(d) if draw(st.booleans()) and draw(st.booleans())]
        sinks = {u for u, _ in arcs} ^ set(range(size))
        for k in range(size):
            external = k in sinks or draw(st.integers(0, 5)) == 0
            family = draw(st.sampled_from(families))
            mean = draw(st.floats(0.5, 200)) if external else 0.0
            row = {
                "network": f"n{n}", "stage": f"s{k}",
                "lead_time": draw(st.one_of(st.integers(0, 6).map(float), st.floats(0, 6))),
                "lead_time_sd": draw(st.sampled_from([0.0, 0.0, 0.5, 1.5])),
                "holding_cost": draw(st.floats(0.1, 5)),
                "demand_mean": mean,
                "demand_sd": sd_for(family, mean, draw(st.floats(0, 1))) if external else 0.0,
                "service_level": draw(st.one_of(st.none(), st.floats(0.8, 0.99))) if external else None,
                "max_service_time": draw(st.integers(0, 3)) if external else 0,
                "external_inbound_service_time": draw(st.integers(0, 2)),
                "review_period": float(draw(st.sampled_from([1, 1, 2, 3]))),
            }
            if families != ("normal",):
                row["demand_distribution"] = family
            stage_rows.append(row)
        for u, d in arcs:
            arc_rows.append({"network": f"n{n}", "upstream": f"s{u}", "downstream": f"s{d}",
                             "quantity": float(draw(st.integers(1, 3))),
                             "lead_time": draw(st.sampled_from([None, 0.0, 1.0, 2.5])),
                             "lead_time_sd": draw(st.sampled_from([None, 0.0, 1.0]))})
    return stage_rows, arc_rows


def tables(stage_rows: list[dict], arc_rows: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The stages and arcs tables of :func:`catalogs` rows."""
    stages = pl.DataFrame(stage_rows, schema_overrides={"service_level": pl.Float64})
    arcs = pl.DataFrame(arc_rows, schema={"network": pl.String, "upstream": pl.String,
                                          "downstream": pl.String, "quantity": pl.Float64,
                                          "lead_time": pl.Float64, "lead_time_sd": pl.Float64})
    return stages, arcs
