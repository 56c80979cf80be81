"""Guaranteed-service tree DP: meio vs stockpyl per network, and batch throughput.

Run (full)::

    .venv/bin/python -m pytest bench/bench_gsm_tree.py --benchmark-only \
        -p no:cacheprovider -o testpaths=bench -o python_files='bench_*.py'

``MEIO_BENCH_QUICK=1`` shrinks every size (CI). Results are checked inside the bench: every
tree given to stockpyl must reach stockpyl's optimal cost to 1e-9, and throughput batches are
spot-checked against the plain-Python twin and stockpyl.
"""

from __future__ import annotations

import time
import tracemalloc

import numba
import numpy as np
import pytest

import meio
from bench.common import QUICK, peak_rss_mib
from meio.engine import gsm
from meio.engine.batch import stage_network_index
from meio.engine.gsm_tree import solve_trees
from meio.generate import generate_catalog
from tests.gsm_instances import (
    SHAPES,
    Z95,
    net_demand,
    random_tree_batch,
    repeat_batch,
    tiled_random_tree_batch,
    tree_problem,
)
from tests.gsm_reference import reference_tree_dp
from tests.gsm_stockpyl import stockpyl_optimum

#: (stages per tree, trees given to stockpyl, tree shapes, ratio target) per comparison.
#: 100-stage serial lines are left out of the peer runs: stockpyl needs minutes for one.
PEER_CASES = [(10, 5, SHAPES, 10_000), (30, 1, ("mixed",), None)] if QUICK else [
    (10, 20, SHAPES, 10_000), (100, 2, ("mixed",), 100_000)]
THROUGHPUT_NETWORKS = 10_000 if QUICK else 100_000
#: Networks per meio call in the per-network comparison (the same trees, repeated).
MEIO_BATCH_STAGES = 20_000 if QUICK else 200_000


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Compile (or load from cache) every kernel on a tiny batch before timing anything."""
    batch = tiled_random_tree_batch(np.random.default_rng(0), 4, 5, n_topologies=4)
    gsm.solve(batch, net_demand(batch))


def _report(capsys, lines):
    with capsys.disabled():
        print()
        for line in lines:
            print(f"[gsm-tree] {line}")


@pytest.mark.parametrize(("size", "n_trees", "shapes", "target"), PEER_CASES,
                         ids=[f"{case[0]}-stages" for case in PEER_CASES])
def test_tree_dp_vs_stockpyl(benchmark, capsys, size, n_trees, shapes, target):
    rng = np.random.default_rng(size)
    batch = random_tree_batch(rng, n_trees, (size, size), shapes=shapes, lead_time_max=10,
                              service_max=2)
    stockpyl_cost = np.empty(n_trees)
    stockpyl_seconds = np.empty(n_trees)
    for network in range(n_trees):
        started = time.perf_counter()
        stockpyl_cost[network] = stockpyl_optimum(batch, network, Z95)
        stockpyl_seconds[network] = time.perf_counter() - started

    single = tree_problem(batch)
    latency = min(_timed(solve_trees, single) for _ in range(20)) / n_trees
    copies = max(1, MEIO_BATCH_STAGES // (n_trees * size))
    repeated = tree_problem(repeat_batch(batch, copies))
    solution = benchmark.pedantic(solve_trees, args=(repeated,), rounds=5, iterations=1,
                                  warmup_rounds=1)
    np.testing.assert_allclose(solution.cost[:n_trees], stockpyl_cost, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(solution.cost, np.tile(solution.cost[:n_trees], copies))

    meio_per_network = benchmark.stats.stats.min / (n_trees * copies)
    stockpyl_per_network = float(stockpyl_seconds.mean())
    ratio = stockpyl_per_network / meio_per_network
    benchmark.extra_info.update(
        stages=size, stockpyl_seconds_per_network=stockpyl_per_network,
        meio_seconds_per_network=meio_per_network, meio_single_call_seconds=latency,
        ratio=ratio, target=target, numba_threads=numba.get_num_threads())
    _report(capsys, [
        f"{size}-stage {'/'.join(shapes)} trees: "
        f"stockpyl {stockpyl_per_network * 1e3:.1f} ms/network "
        f"({n_trees} trees), meio {meio_per_network * 1e6:.2f} us/network "
        f"(same trees x{copies} in one call; one call on the {n_trees} trees alone: "
        f"{latency * 1e6:.1f} us/network), ratio {ratio:,.0f}x"
        + (f" (target {target:,}x)" if target else ""),
    ])


def _timed(function, *args):
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def test_batch_throughput(benchmark, capsys):
    """The generator's tree catalog (``meio generate --shape tree``: every forest shape, lead
    times 1-30, its sizes and costs): the realistic case, not a few repeated topologies."""
    rng = np.random.default_rng(2026)
    stages, arcs = generate_catalog(THROUGHPUT_NETWORKS, shape="tree", seed=2026)
    # one run-wide 95% target, the form stockpyl's spot checks take
    batch = meio.read_network(stages.with_columns(service_level=None), arcs).batch
    demand = net_demand(batch)

    tracemalloc.start()
    gsm.solve(batch, demand)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    cpu_started = time.process_time()
    gsm.solve(batch, demand)
    cpu_seconds = time.process_time() - cpu_started

    result = benchmark.pedantic(gsm.solve, args=(batch, demand), rounds=3, iterations=1,
                                warmup_rounds=0)
    peak_rss = peak_rss_mib()

    problem = gsm.build_tree_problem(batch, demand)
    cost = result.network["safety_stock_cost"]
    for network in rng.choice(batch.n_networks, 50, replace=False):
        assert cost[network] == pytest.approx(reference_tree_dp(problem, network)[0], rel=1e-12)
    # stockpyl's GSM knows no BOM quantities: spot-check it on networks whose arcs all carry 1
    unit_arcs = np.ones(batch.n_networks, bool)
    unit_arcs[stage_network_index(batch.arc_offsets)[batch.arc_quantity != 1.0]] = False
    for network in rng.choice(np.flatnonzero(unit_arcs), 2, replace=False):
        assert cost[network] == pytest.approx(stockpyl_optimum(batch, network, Z95), rel=1e-9)
    assert (result.network["method"] == "tree_dp").all()
    for column in ("inbound_service_time", "outbound_service_time", "net_lead_time",
                   "safety_stock", "base_stock", "safety_stock_cost"):
        assert result.stage[column].shape == (batch.n_stages,)

    best = benchmark.stats.stats.min
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        networks=batch.n_networks, networks_per_second=batch.n_networks / best,
        stages=batch.n_stages, stage_rows_per_second=batch.n_stages / best,
        cpu_seconds_per_call=cpu_seconds,
        traced_peak_bytes=traced_peak,
        process_peak_rss_mib=peak_rss, numba_threads=numba.get_num_threads())
    _report(capsys, [
        f"throughput: {batch.n_networks:,} generated trees ({batch.n_stages:,} stages, lead times "
        f"1-30) in one "
        f"gsm.solve call: best {best:.3f} s = {batch.n_networks / best:,.0f} networks/s, "
        f"median {median:.3f} s = {batch.n_networks / median:,.0f} networks/s "
        f"({numba.get_num_threads()} Numba threads, target 200,000 networks/s)",
        f"cpu: one call used {cpu_seconds:.3f} CPU-s = {batch.n_networks / cpu_seconds:,.0f} "
        f"networks per CPU-second (the wall rate on idle cores, per core)",
        f"memory: traced NumPy peak of one call {traced_peak / 2**20:.0f} MiB, process peak "
        f"RSS {peak_rss:.0f} MiB (target < 1 GiB)",
    ])
