"""Shared bench helpers: the quick-mode switch, a peak-memory reader, the Willems tables."""

from __future__ import annotations

import json
import os
import resource
from pathlib import Path

import polars as pl

QUICK = os.environ.get("MEIO_BENCH_QUICK") == "1"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def willems_tables(folder: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The Willems (2008) chains under ``folder/json`` as meio's stages and arcs tables.

    One network per chain (named after its file, e.g. ``chain_01``); the data as in the set:
    unit cost added per stage (holding cost from ``holding_rate`` times the cumulative cost),
    one unit per arc, missing values 0 (service level: the default).
    """
    stages, arcs = [], []
    for path in sorted(Path(folder, "json").glob("chain_*.json")):
        chain = json.loads(path.read_text())
        for stage in chain["stages"]:
            stages.append({
                "network": path.stem, "stage": stage["id"], "lead_time": float(stage["stage_time"] or 0.0),
                "lead_time_sd": float(stage["stdev_stage_time"] or 0.0),
                "unit_cost": float(stage["stage_cost"] or 0.0),
                "demand_mean": float(stage["avg_demand"] or 0.0),
                "demand_sd": float(stage["std_demand"] or 0.0), "service_level": stage["service_level"],
                "max_service_time": int(stage["max_service_time"] or 0),
            })
        arcs.extend({"network": path.stem, "upstream": arc["from"], "downstream": arc["to"]}
                    for arc in chain["arcs"])
    return (pl.DataFrame(stages).with_columns(pl.col("service_level").cast(pl.Float64)),
            pl.DataFrame(arcs).unique(maintain_order=True))
