"""Benchmark of the synthetic catalog generator (``meio generate``).

* a mixed catalog of about 1,000,000 stages (stages/s, arcs/s, peak traced memory);
* the largest published chain size as a layered DAG: 2,000 stages and about 16,000 arcs per
  network (stages/s).

There is no peer to compare against (no other tool generates these catalogs), so the suites
print throughput and check the tables they produce. ``MEIO_BENCH_QUICK=1`` shrinks both to CI
size. Run::

    PYTHONPATH=. python -m pytest bench/bench_generate.py --benchmark-only -p no:cacheprovider \
        -o testpaths=bench -o python_files='bench_*.py' -s
"""

import statistics
import time
import tracemalloc

import numpy as np
import polars as pl
import pytest

from bench.common import QUICK, peak_rss_mib
from meio.generate import generate_catalog

# Mixed catalogs average about 15 stages a network: 66,500 networks ~ 1.0M stages.
MIXED_NETWORKS = 1_500 if QUICK else 66_500
LARGE_DAGS = 1 if QUICK else 10


def check_catalog(stages: pl.DataFrame, arcs: pl.DataFrame, networks: int) -> None:
    """Contract checks that stay cheap on a million rows."""
    assert stages["network"].n_unique() == networks
    assert stages["network"].is_sorted() and arcs["network"].is_sorted()
    assert not stages.select("network", "stage").is_duplicated().any()
    # Stages come in topological order: every arc runs from an earlier to a later row.
    position = stages.select("network", "stage").with_row_index("row")
    ends = arcs.join(
        position.rename({"stage": "upstream", "row": "up_row"}), on=["network", "upstream"]
    ).join(position.rename({"stage": "downstream", "row": "down_row"}), on=["network", "downstream"])
    assert ends.height == arcs.height
    assert (ends["up_row"] < ends["down_row"]).all()
    has_demand = stages.group_by("network").agg((pl.col("demand_mean") > 0).any())
    assert has_demand["demand_mean"].all()


def timed_generation(benchmark, networks: int, **options):
    """Run the generator under pytest-benchmark; return the tables and the median seconds."""
    generate_catalog(10, **options)  # first-call imports out of the measurement
    seconds = []

    def generate():
        started = time.perf_counter()
        tables = generate_catalog(networks, **options)
        seconds.append(time.perf_counter() - started)
        return tables

    stages, arcs = benchmark.pedantic(generate, rounds=1 if QUICK else 3, iterations=1)
    return stages, arcs, statistics.median(seconds)


def traced_peak_mib(networks: int, **options) -> float:
    """Peak memory traced by ``tracemalloc`` (NumPy buffers; Polars' Rust heap is not traced)."""
    tracemalloc.start()
    try:
        generate_catalog(networks, **options)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.benchmark(group="generate")
def test_generate_mixed_catalog(benchmark):
    stages, arcs, seconds = timed_generation(benchmark, MIXED_NETWORKS, shape="mixed", seed=0)
    check_catalog(stages, arcs, MIXED_NETWORKS)
    peak = traced_peak_mib(MIXED_NETWORKS, shape="mixed", seed=0)
    benchmark.extra_info.update(stages=stages.height, arcs=arcs.height, peak_mib=peak)
    print(
        f"\ngenerate mixed: {MIXED_NETWORKS:,} networks, {stages.height:,} stages, "
        f"{arcs.height:,} arcs in {seconds:.2f} s: {stages.height / seconds:,.0f} stages/s, "
        f"{arcs.height / seconds:,.0f} arcs/s, traced NumPy peak {peak:,.0f} MiB, "
        f"process peak RSS {peak_rss_mib():,.0f} MiB"
    )


@pytest.mark.benchmark(group="generate")
def test_generate_largest_published_dag_size(benchmark):
    options = {"shape": "dag", "seed": 0, "stages_per_network": 2000, "dag_arcs_per_stage": 8.0}
    stages, arcs, seconds = timed_generation(benchmark, LARGE_DAGS, **options)
    check_catalog(stages, arcs, LARGE_DAGS)
    arcs_per_network = arcs.group_by("network").len()["len"].to_numpy()
    assert np.all((arcs_per_network > 14_000) & (arcs_per_network < 17_000))
    benchmark.extra_info.update(stages=stages.height, arcs=arcs.height)
    print(
        f"\ngenerate dag: {LARGE_DAGS} networks of 2,000 stages, {arcs_per_network.mean():,.0f} "
        f"arcs each, in {seconds:.3f} s: {stages.height / seconds:,.0f} stages/s"
    )
