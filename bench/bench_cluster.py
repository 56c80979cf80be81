"""End-to-end partitioned runs: read, validate, optimize, write, commit, on a local Dask cluster.

Catalogs of 100k and 1M stages (``MEIO_BENCH_QUICK=1``: 3k) are generated, written as Parquet
and run through :func:`meio.cluster.run_catalog` with 1 and 2 worker processes; the peer is the
single-process API on the whole catalog (``read_network`` + ``optimize`` + ``write_plan``).
Prints wall time, stages/s, per-partition cost, peak memory per worker and the ratios 1 worker /
2 workers and single process / cluster. Each run's result is checked against the
single-process plan. The model is gsm (override with ``MEIO_BENCH_MODEL``).

The catalog is that of ``meio generate --shape mixed``: the spanning-tree shapes (serial,
assembly, distribution, tree) and 10 % general networks (``dag``, 8-200 stages), which decide the
run time of a real catalog (the tree DP takes microseconds per network, the general solver
milliseconds). ``MEIO_BENCH_DAG_SHARE=0`` measures the tree-only pipeline — read, validate,
tree DP, write.
"""

from __future__ import annotations

import json
import os

import polars as pl
import pytest

import meio
from bench.common import QUICK, peak_rss_mib
from meio.cluster import local_cluster, run_catalog
from meio.generate import generate_catalog

#: Catalog sizes in stages (``MEIO_BENCH_SIZES=10000000`` for the 10M run).
SIZES = tuple(int(size) for size in os.environ["MEIO_BENCH_SIZES"].split(",")) if (
    "MEIO_BENCH_SIZES" in os.environ) else (3_000,) if QUICK else (100_000, 1_000_000)
PARTITION_SIZE = 1_000 if QUICK else 125_000
MODEL = os.environ.get("MEIO_BENCH_MODEL", "gsm")
DAG_SHARE = float(os.environ.get("MEIO_BENCH_DAG_SHARE", "0.1"))
SHAPE_WEIGHTS = {"serial": 0.15, "assembly": 0.15, "distribution": 0.35, "tree": 0.25,
                 "dag": DAG_SHARE}
WORKERS = (1, 2)
SINGLE_PROCESS = {}
CLUSTER = {}


@pytest.fixture(scope="module", params=SIZES, ids=lambda size: f"{size // 1000}k")
def catalog(request, tmp_path_factory):
    """A seeded mixed catalog of about ``size`` stages as Parquet files."""
    mean_stages = 10 + 48 * DAG_SHARE  # tree shapes ~10 stages on average, dags ~58
    stages, arcs = generate_catalog(int(request.param / mean_stages), shape="mixed", seed=3,
                                    shape_weights=SHAPE_WEIGHTS)
    folder = tmp_path_factory.mktemp(f"catalog{request.param}")
    stages.write_parquet(folder / "stages.parquet", row_group_size=50_000)
    arcs.write_parquet(folder / "arcs.parquet", row_group_size=50_000)
    return folder, stages.height


@pytest.fixture(scope="module", params=WORKERS, ids=lambda w: f"{w}w")
def client(request):
    """A local cluster of 1 or 2 single-thread worker processes (started outside the timing)."""
    with local_cluster(workers=request.param, threads_per_worker=1) as dask_client:
        yield dask_client


def _cost(run) -> float:
    return float(pl.read_parquet(run / "networks" if (run / "networks").is_dir()
                                 else run / "networks.parquet")["safety_stock_cost"].sum())


def test_single_process(benchmark, catalog):
    folder, rows = catalog

    def whole_catalog():
        plan = meio.optimize(meio.read_network(folder / "stages.parquet", folder / "arcs.parquet"), MODEL)
        meio.write_plan(plan, folder / "single", {}, overwrite=True)
        return plan

    plan = benchmark.pedantic(whole_catalog, rounds=1, warmup_rounds=1)
    assert plan.stages.height == rows
    seconds = benchmark.stats.stats.min
    SINGLE_PROCESS[rows] = seconds
    print(f"\nsingle process {MODEL}: {rows:,} stages in {seconds:.2f} s ({rows / seconds:,.0f} stages/s), "
          f"peak RSS {peak_rss_mib():,.0f} MiB")


def test_cluster(benchmark, catalog, client):
    folder, rows = catalog
    workers = len(client.scheduler_info(n_workers=-1)["workers"])
    output = folder / f"run{workers}"

    def partitioned():
        return run_catalog(folder / "stages.parquet", folder / "arcs.parquet", output, model=MODEL,
                           service_level=0.95, client=client, partition_size=PARTITION_SIZE,
                           overwrite=True)

    result = benchmark.pedantic(partitioned, rounds=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.min
    manifest = json.loads((output / "manifest.json").read_text())
    parts = manifest["partitions"]
    assert sum(p["files"]["stages"]["rows"] for p in parts) == rows
    if (folder / "single").exists():
        assert result.total("safety_stock_cost") == pytest.approx(_cost(folder / "single"), rel=1e-12)
    CLUSTER[rows, workers] = seconds
    steps = {step: sum(p["seconds"][step] for p in parts) / len(parts)
             for step in ("read", "validate", "optimize", "write")}
    per_stage = sum(steps.values()) / (rows / len(parts))
    peak = max(p["peak_rss_mb"] for p in parts)
    print(f"\ncluster {MODEL} {workers} worker(s): {rows:,} stages, {len(parts)} partitions of "
          f"~{rows // len(parts):,} stages in {seconds:.2f} s ({rows / seconds:,.0f} stages/s); "
          f"per partition " + ", ".join(f"{k} {v:.3f} s" for k, v in steps.items())
          + f" ({per_stage * 1e6:.2f} us/stage); peak worker RSS {peak:,.0f} MiB")
    if (rows, 1) in CLUSTER and workers == 2:
        print(f"speed-up 1 -> 2 workers: {CLUSTER[rows, 1] / seconds:.2f}x")
    if rows in SINGLE_PROCESS:
        print(f"ratio single process / cluster: {SINGLE_PROCESS[rows] / seconds:.2f}x")
