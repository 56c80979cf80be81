"""Simulator throughput on a generated catalog, and the ratio against stockpyl's simulator.

Throughput. A seeded mixed catalog from ``meio.generate`` (serial, assembly, distribution, tree
and general networks; lead times 1-30 periods) under its single-echelon plan, simulated for
``PERIODS`` measured periods after a warm-up, ``REPLICATIONS`` replications, on all Numba
threads. Reported: stage-periods per second of wall time, per core (wall rate over the threads)
and per CPU-second of this process (robust when other jobs share the machine). Kernels are
compiled (or loaded from Numba's cache) outside the timing.

Peer. stockpyl 1.0.2's ``sim.simulation`` (pure Python, one network per call) runs Snyder &
Shen's Example 6.1 (3-stage serial system, N(5, 1) demand, echelon levels 6.49 / 12.02 / 22.71)
for ``PEER_PERIODS`` periods; meio simulates the same instance over the same horizon (one
replication). The ratio is meio's stage-periods per second over stockpyl's.

Cluster. The same catalog and plan as Parquet files, simulated through ``meio.cluster`` in 8
partitions on a local cluster of two single-thread worker processes (one Numba thread each), the
path of ``meio simulate --partitions 8``; the peer is one ``meio.simulate`` call on all threads.
Both give the same rows (checked).

``MEIO_BENCH_QUICK=1``: 300 networks, 200 periods x 4 replications, and a 300-period peer run.
Results are checked (measures in range, the 95% intervals of demand means cover the stated mean,
Example 6.1's cost), never timings.
"""

from __future__ import annotations

import math
import time

import numba
import polars as pl
import pytest
from scipy import stats

from bench.common import QUICK, peak_rss_mib
from meio.api import optimize, read_network
from meio.cluster import local_cluster, run_catalog
from meio.generate import generate_catalog
from meio.simulation import simulate

NETWORKS = 300 if QUICK else 3000
PERIODS, WARMUP, REPLICATIONS = (200, 20, 4) if QUICK else (1000, 100, 10)
PEER_PERIODS = 300 if QUICK else 3000
EXAMPLE_6_1_COST = 47.65  # Snyder & Shen (2019), Example 6.1


def example_6_1_tables():
    stages = pl.DataFrame({
        "network": ["e"] * 3, "stage": ["s3", "s2", "s1"], "lead_time": [2.0, 1.0, 1.0],
        "holding_cost": [2.0, 4.0, 7.0], "demand_mean": [0.0, 0.0, 5.0], "demand_sd": [0.0, 0.0, 1.0],
        "stockout_cost": [0.0, 0.0, 37.12],
    })
    arcs = pl.DataFrame({"network": ["e", "e"], "upstream": ["s3", "s2"], "downstream": ["s2", "s1"]})
    policy = pl.DataFrame({"network": ["e"] * 3, "stage": ["s1", "s2", "s3"],
                           "echelon_base_stock": [6.49, 12.02, 22.71]})
    return stages, arcs, policy


def test_catalog_throughput(benchmark):
    stages, arcs = generate_catalog(NETWORKS, shape="mixed", seed=5)
    network = read_network(stages, arcs)
    plan = optimize(network, "single")
    simulate(network, plan, periods=5, replications=2, warmup=0)  # compile/load outside the timing
    options = {"periods": PERIODS, "replications": REPLICATIONS, "seed": 1, "warmup": WARMUP}
    cpu = time.process_time()
    result = benchmark.pedantic(simulate, args=(network, plan), kwargs=options, rounds=1, iterations=1)
    cpu = time.process_time() - cpu
    seconds = benchmark.stats.stats.min
    threads = numba.get_num_threads()
    stage_periods = network.stages.height * (PERIODS + WARMUP) * REPLICATIONS
    frame = result.stages
    for name in ("fill_rate", "cycle_service_level"):
        values = frame[name].drop_nans()
        assert values.is_between(0.0, 1.0).all()
    assert (frame["mean_on_hand"] >= 0).all() and (frame["mean_backorders"] >= 0).all()
    assert result.networks["simulated"].all()
    # Demand stages see normal demand with exactly the stated mean (a censored normal solved for it).
    demand = frame.join(network.stages.select("network", "stage", "demand_mean", "demand_sd"),
                        on=["network", "stage"]).filter(pl.col("demand_sd") > 0)
    exact = demand["demand_mean"].to_numpy()
    low, high = demand["mean_demand_ci_low"].to_numpy(), demand["mean_demand_ci_high"].to_numpy()
    covered = (low <= exact) & (exact <= high)
    assert covered.mean() > 0.92  # 95% intervals: coverage about 0.95 over the demand stages
    print(f"\nsimulate: {network.n_networks:,} networks, {network.stages.height:,} stages x "
          f"{PERIODS + WARMUP} periods x {REPLICATIONS} replications = {stage_periods:,} stage-periods in "
          f"{seconds:.2f} s on {threads} Numba threads: {stage_periods / seconds / 1e6:,.1f} M/s, "
          f"{stage_periods / seconds / threads / 1e6:,.1f} M/s per core, "
          f"{stage_periods / cpu / 1e6:,.1f} M per CPU-second; peak RSS {peak_rss_mib():,.0f} MiB")


def test_catalog_on_local_cluster(benchmark, tmp_path):
    stages, arcs = generate_catalog(NETWORKS, shape="mixed", seed=5)
    stages.write_parquet(tmp_path / "stages.parquet")
    arcs.write_parquet(tmp_path / "arcs.parquet")
    network = read_network(stages, arcs)
    plan = optimize(network, "single")
    plan.stages.write_parquet(tmp_path / "policy.parquet")
    options = {"periods": PERIODS, "replications": REPLICATIONS, "seed": 1, "warmup": WARMUP}
    simulate(network, plan, periods=5, replications=2, warmup=0)
    started = time.perf_counter()
    expected = simulate(network, plan, **options)
    single_seconds = time.perf_counter() - started
    output = tmp_path / "sim"
    with local_cluster(workers=2, threads_per_worker=1) as client:
        def partitioned():
            return run_catalog(tmp_path / "stages.parquet", tmp_path / "arcs.parquet", output,
                               model="simulate", service_level=0.95, options=options,
                               policy=tmp_path / "policy.parquet", client=client, partitions=8,
                               overwrite=True)

        result = benchmark.pedantic(partitioned, rounds=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.min
    assert pl.read_parquet(output / "stages" / "*.parquet").equals(expected.stages)
    stage_periods = network.stages.height * (PERIODS + WARMUP) * REPLICATIONS
    steps = {step: sum(p["seconds"][step] for p in result.manifest["partitions"])
             for step in ("read", "validate", "simulate", "write")}
    print(f"\nsimulate on a local cluster (2 workers x 1 thread, 8 partitions): {stage_periods:,} "
          f"stage-periods in {seconds:.2f} s: {stage_periods / seconds / 1e6:,.1f} M/s, "
          f"{stage_periods / seconds / 2 / 1e6:,.1f} M/s per core; task time "
          + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items())
          + f"; one process on {numba.get_num_threads()} threads {single_seconds:.2f} s "
          f"(ratio one process / cluster {single_seconds / seconds:.2f}x)")


def stockpyl_example_6_1():
    """stockpyl's network for Example 6.1 (its stages are numbered 1 = demand stage)."""
    from stockpyl.supply_chain_network import serial_system

    return serial_system(
        num_nodes=3, node_order_in_system=[3, 2, 1],
        echelon_holding_cost={1: 3, 2: 2, 3: 2}, local_holding_cost={1: 7, 2: 4, 3: 2},
        shipment_lead_time={1: 1, 2: 1, 3: 2}, stockout_cost={1: 37.12, 2: 0, 3: 0},
        demand_type="N", mean=5, standard_deviation=1, policy_type="BS",
        base_stock_level={1: 6.49, 2: 12.02 - 6.49, 3: 22.71 - 12.02},
    )


def test_serial_vs_stockpyl(benchmark):
    from stockpyl.sim import simulation

    started = time.perf_counter()
    peer_cost = simulation(stockpyl_example_6_1(), PEER_PERIODS, rand_seed=17, progress_bar=False)
    peer_rate = 3 * PEER_PERIODS / (time.perf_counter() - started)
    stages, arcs, policy = example_6_1_tables()
    network = read_network(stages, arcs)
    simulate(network, policy, periods=5, replications=1, warmup=0)
    options = {"periods": PEER_PERIODS, "replications": 1, "seed": 17, "warmup": 0}
    benchmark.pedantic(simulate, args=(network, policy), kwargs=options, rounds=20, warmup_rounds=1)
    ours_rate = 3 * PEER_PERIODS / benchmark.stats.stats.min
    # Kernel rate on the same instance without the per-call table work: many replications at once.
    replications = 200 if QUICK else 2000
    started = time.perf_counter()
    long_run = simulate(network, policy, periods=PEER_PERIODS, replications=replications, seed=17, warmup=0,
                        threads=1)
    kernel_rate = 3 * PEER_PERIODS * replications / (time.perf_counter() - started)
    row = long_run.networks.row(0, named=True)
    se = (row["mean_cost_ci_high"] - row["mean_cost_ci_low"]) / 2 / stats.t.ppf(0.975, replications - 1)
    assert abs(row["mean_cost"] - EXAMPLE_6_1_COST) <= 4 * se + 0.01 + 2.0 / math.sqrt(PEER_PERIODS)
    assert abs(peer_cost / PEER_PERIODS - EXAMPLE_6_1_COST) < 0.1 * EXAMPLE_6_1_COST
    print(f"\nExample 6.1, {PEER_PERIODS} periods: stockpyl {peer_rate:,.0f} stage-periods/s (cost "
          f"{peer_cost / PEER_PERIODS:.2f}/period); meio {ours_rate:,.0f} stage-periods/s per call "
          f"(ratio {ours_rate / peer_rate:,.0f}x), {kernel_rate:,.0f}/s over {replications} replications "
          f"on one thread (ratio {kernel_rate / peer_rate:,.0f}x; cost {row['mean_cost']:.2f} "
          f"+- {1.96 * se:.2f} vs 47.65)")


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
