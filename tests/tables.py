"""Small catalogs for tests: a hand-made one and seeded random DAGs (no meio code involved)."""

from __future__ import annotations

import numpy as np
import polars as pl


def small_catalog() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Network A: warehouse w feeds retailers r1 and r2; network B: one stage x."""
    stages = pl.DataFrame(
        {
            "network": ["A", "A", "A", "B"],
            "stage": ["w", "r1", "r2", "x"],
            "lead_time": [2.0, 1.0, 1.0, 3.0],
            "holding_cost": [1.0, 2.0, 2.0, 1.0],
            "demand_mean": [0.0, 10.0, 5.0, 3.0],
            "demand_sd": [0.0, 3.0, 4.0, 1.0],
        }
    )
    arcs = pl.DataFrame({"network": ["A", "A"], "upstream": ["w", "w"], "downstream": ["r1", "r2"]})
    return stages, arcs


def random_catalog(
    seed: int, networks: int = 5, max_stages: int = 7, arc_probability: float = 0.35
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Random acyclic networks: arcs only from a lower to a higher stage number, demand at sinks.

    Stage ids are shuffled so the input order is not topological.
    """
    rng = np.random.default_rng(seed)
    stage_rows, arc_rows = [], []
    for n in range(networks):
        size = int(rng.integers(1, max_stages + 1))
        names = [f"s{k}" for k in rng.permutation(size)]
        has_successor = np.zeros(size, bool)
        for up in range(size):
            for down in range(up + 1, size):
                if rng.random() < arc_probability:
                    arc_rows.append((f"n{n}", names[up], names[down], float(rng.integers(1, 3))))
                    has_successor[up] = True
        for k in range(size):
            sink = not has_successor[k]
            stage_rows.append(
                (
                    f"n{n}", names[k], float(rng.integers(0, 6)), float(rng.uniform(0.5, 5.0)),
                    float(rng.uniform(1, 50)) if sink else 0.0,
                    float(rng.uniform(0.5, 20)) if sink else 0.0,
                    float(rng.uniform(0.8, 0.99)) if sink and rng.random() < 0.7 else None,
                )
            )
    stages = pl.DataFrame(
        stage_rows,
        schema=["network", "stage", "lead_time", "holding_cost", "demand_mean", "demand_sd",
                "service_level"],
        orient="row",
    )
    arcs = pl.DataFrame(
        arc_rows, schema=["network", "upstream", "downstream", "quantity"], orient="row"
    ).cast({"network": pl.String, "upstream": pl.String, "downstream": pl.String,
            "quantity": pl.Float64})
    return stages.sample(fraction=1.0, shuffle=True, seed=seed), arcs
