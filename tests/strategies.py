"""Random test inputs, no meio code involved: hypothesis strategies of catalogs as table rows, and
random general networks in the argument layout of ``solve_general_network`` (:func:`random_instance`,
shared by the general-network and bound tests)."""

from __future__ import annotations

import math

import numpy as np
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


# --- random general networks (solve_general_network's arguments) ---------------------------------

#: A cap no service time reaches (stages without a quoted service time).
UNCAPPED = 10**6


class Instance:
    """A tiny general network in the argument layout of ``solve_general_network``."""

    def __init__(self, lead_time, holding_cost, demand_bound_sd, lead_time_term, arcs,
                 max_service_time, external_inbound):
        self.lead_time = np.asarray(lead_time, np.float64)
        self.holding_cost = np.asarray(holding_cost, np.float64)
        self.demand_bound_sd = np.asarray(demand_bound_sd, np.float64)
        self.lead_time_term = np.asarray(lead_time_term, np.float64)
        arcs = sorted(arcs)
        self.arc_upstream = np.array([a for a, _ in arcs], np.int64)
        self.arc_downstream = np.array([b for _, b in arcs], np.int64)
        self.max_service_time = np.asarray(max_service_time, np.int64)
        self.external_inbound = np.asarray(external_inbound, np.int64)

    @property
    def size(self):
        return len(self.lead_time)

    def args(self):
        return (self.lead_time, self.holding_cost, self.demand_bound_sd, self.lead_time_term,
                self.arc_upstream, self.arc_downstream, self.max_service_time,
                self.external_inbound)

    def predecessors(self, stage):
        return [int(u) for u, d in zip(self.arc_upstream, self.arc_downstream, strict=True)
                if d == stage]


def random_instance(rng, size, tree=False, fractional=True):
    """Random DAG (a non-tree unless ``tree``) on ``size`` stages in topological order."""
    while True:
        arcs = set()
        for down in range(1, size):
            for up in range(down):
                if rng.random() < 0.45:
                    arcs.add((up, down))
        if tree:
            # Keep a spanning forest: drop every arc that closes an undirected cycle.
            parent = list(range(size))

            def find(x, parent=parent):
                while parent[x] != x:
                    x = parent[x]
                return x

            kept = set()
            for up, down in sorted(arcs):
                if find(up) != find(down):
                    parent[find(up)] = find(down)
                    kept.add((up, down))
            arcs = kept
        if not arcs:
            continue
        undirected_cycle = len(arcs) > size - 1 or components(size, arcs) + len(arcs) > size
        if tree or undirected_cycle:
            break
    leads = [0.0, 1.0, 2.0, 0.5, 1.5] if fractional else [0.0, 1.0, 2.0, 3.0]
    lead_time = rng.choice(leads, size)
    holding = rng.uniform(0.0, 3.0, size)
    bound = rng.uniform(0.5, 5.0, size)
    term = np.where(rng.random(size) < 0.3, rng.uniform(0.0, 4.0, size), 0.0)
    # Caps at sinks (quoted service times) and at a few internal stages; the others get a
    # value no service time reaches.
    sink = ~np.isin(np.arange(size), [up for up, _ in arcs])
    capped = sink | (rng.random(size) < 0.2)
    max_service = np.where(capped, rng.integers(0, 3, size), UNCAPPED)
    external = rng.integers(0, 2, size)
    return Instance(lead_time, holding, bound, term, arcs, max_service, external)


def components(size, arcs):
    parent = list(range(size))

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for up, down in arcs:
        parent[find(up)] = find(down)
    return len({find(x) for x in range(size)})
