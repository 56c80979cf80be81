"""Foundation throughput: read + validate + build the batch, and the single-echelon model.

Full size is a 1M-stage mixed catalog (``MEIO_BENCH_QUICK=1``: 20k stages). Prints rows/s,
stages/s, peak memory, and the ratio against stockpyl's per-stage base-stock formula.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest
from stockpyl.newsvendor import newsvendor_normal

import meio
from bench.common import QUICK, peak_rss_mib
from meio.api import net_demand
from meio.engine import single
from meio.generate import generate_catalog

TARGET_STAGES = 20_000 if QUICK else 1_000_000


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """A generated mixed catalog of about TARGET_STAGES stages, written as Parquet."""
    started = time.perf_counter()
    stages, arcs = generate_catalog(TARGET_STAGES // 15, shape="mixed", seed=1)
    seconds = time.perf_counter() - started
    folder = tmp_path_factory.mktemp("catalog")
    stages.write_parquet(folder / "stages.parquet")
    arcs.write_parquet(folder / "arcs.parquet")
    print(f"\ngenerate: {stages.height:,} stages, {arcs.height:,} arcs in {seconds:.2f} s "
          f"({stages.height / seconds:,.0f} stages/s)")
    return folder / "stages.parquet", folder / "arcs.parquet", stages.height


def test_read_validate_build(benchmark, catalog):
    stages_path, arcs_path, rows = catalog
    network = benchmark.pedantic(meio.read_network, args=(stages_path, arcs_path), rounds=3)
    assert network.stages.height == rows
    seconds = benchmark.stats.stats.min
    print(f"\nread+validate+build: {rows:,} stages in {seconds:.2f} s ({rows / seconds:,.0f} rows/s), "
          f"peak RSS {peak_rss_mib():,.0f} MiB")


def test_single_kernel(benchmark, catalog):
    stages_path, arcs_path, rows = catalog
    batch = meio.read_network(stages_path, arcs_path).batch
    demand = net_demand(batch, 0.95)
    single.solve(batch, demand)  # compile outside the measurement
    result = benchmark.pedantic(single.solve, args=(batch, demand), rounds=5)
    assert np.isfinite(result.stage["safety_stock"]).all()
    seconds = benchmark.stats.stats.min
    # The peer: stockpyl's newsvendor formula, stage by stage, on a sample of the same stages.
    sample = slice(0, 500)
    z_rows = pl.DataFrame({"mean": demand.demand_mean[sample], "sd": demand.demand_sd[sample],
                           "lead": batch.lead_time[sample], "sl": demand.safety_factor[sample]})
    started = time.perf_counter()
    for mean, sd, lead, _ in z_rows.iter_rows():
        if mean > 0 and sd > 0:
            newsvendor_normal(1.0, 19.0, mean, sd, lead_time=int(lead))
    peer_per_stage = (time.perf_counter() - started) / z_rows.height
    ours_per_stage = seconds / rows
    print(f"\nsingle: {rows:,} stages in {seconds * 1e3:.1f} ms ({rows / seconds:,.0f} stages/s); "
          f"stockpyl newsvendor_normal {1 / peer_per_stage:,.0f} stages/s; "
          f"ratio {peer_per_stage / ours_per_stage:,.0f}x; peak RSS {peak_rss_mib():,.0f} MiB")


def test_demand_propagation(benchmark, catalog):
    stages_path, arcs_path, rows = catalog
    batch = meio.read_network(stages_path, arcs_path).batch
    net_demand(batch, 0.95)
    benchmark.pedantic(net_demand, args=(batch, 0.95), rounds=5)
    seconds = benchmark.stats.stats.min
    print(f"\ndemand propagation: {rows:,} stages in {seconds * 1e3:.1f} ms "
          f"({rows / seconds:,.0f} stages/s)")
