"""Stochastic-service model: meio vs stockpyl on serial systems, and batch throughput.

Peer. stockpyl 1.0.2's ``ssm_serial.optimize_base_stock_levels`` (Chen–Zheng on a discretised
grid, pure Python) fails under NumPy 2, so it runs in a separate numpy<2 interpreter
(``MEIO_STOCKPYL_PYTHON``, default ``.venv-stockpyl/bin/python``, which ``scripts/test`` makes) through
``bench/stockpyl_peer.py``, which times the optimizer call alone (imports and process start
excluded). meio runs on a grid at least as fine as stockpyl's own x and d steps. The ratio is
stockpyl's seconds over meio's seconds for one network solved alone (and, second figure, per
network inside a batch of 1,000 copies). Sizes: 3, 10 and 20 stages (``MEIO_BENCH_QUICK=1``:
3 stages only). Throughput: 10,000 serial networks and 10,000 distribution trees from
``meio.generate`` through the full SSM driver (quick: 500 each).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.common import QUICK, peak_rss_mib
from meio.api import net_demand, read_network
from meio.engine import ssm
from meio.engine.ssm_serial import NORMAL, SerialSystems, grid_options, optimize_serial
from meio.generate import generate_catalog

PEER_PYTHON = os.environ.get(
    "MEIO_STOCKPYL_PYTHON", str(Path(__file__).parents[1] / ".venv-stockpyl" / "bin" / "python"))
PEER_SCRIPT = Path(__file__).with_name("stockpyl_peer.py")
SIZES = [3] if QUICK else [3, 10, 20]
THROUGHPUT_NETWORKS = 500 if QUICK else 10_000


def serial_instance(stages):
    """Snyder & Shen Example 6.1 stretched to ``stages`` stages (demand stage first)."""
    echelon = [3.0, 2.0, 2.0] + [0.5] * (stages - 3)
    local = list(np.cumsum(echelon[::-1])[::-1])
    lead_time = [1.0, 1.0, 2.0] + [1.0] * (stages - 3)
    return {"holding_cost": local, "lead_time": lead_time, "stockout_cost": 37.12,
            "demand_mean": 5.0, "demand_sd": 1.0, "distribution": "normal"}


def systems_of(instance, copies=1):
    local = instance["holding_cost"]
    echelon = [local[j] - (local[j + 1] if j + 1 < len(local) else 0.0) for j in range(len(local))]
    n = len(local)
    return SerialSystems(
        np.arange(copies + 1, dtype=np.int64) * n, np.tile(instance["lead_time"], copies),
        np.tile(echelon, copies), np.full(copies, instance["demand_mean"]),
        np.full(copies, instance["demand_sd"]), np.full(copies, instance["stockout_cost"]),
        np.full(copies, NORMAL, np.int64),
    )


def run_peer(instance):
    if not Path(PEER_PYTHON).exists():
        pytest.skip(f"no numpy<2 interpreter with stockpyl at {PEER_PYTHON}: create it with "
                    "python3 -m venv .venv-stockpyl && .venv-stockpyl/bin/pip install 'numpy<2' "
                    "stockpyl==1.0.2, or set MEIO_STOCKPYL_PYTHON")
    completed = subprocess.run([PEER_PYTHON, str(PEER_SCRIPT)], input=json.dumps(instance),
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


@pytest.mark.parametrize("stages", SIZES)
def test_serial_vs_stockpyl(benchmark, stages):
    instance = serial_instance(stages)
    peer = run_peer(instance)
    finest = min(peer["stockpyl_x_step"], peer["stockpyl_min_d_step"])
    least_sd = instance["demand_sd"] * math.sqrt(min(instance["lead_time"]))
    options = grid_options(resolution=max(20.0, math.ceil(least_sd / finest)))
    systems = systems_of(instance)
    optimize_serial(systems_of(serial_instance(3)), options)  # compile/load outside the timing
    solution = benchmark.pedantic(optimize_serial, args=(systems, options), rounds=5,
                                  warmup_rounds=1)
    seconds = benchmark.stats.stats.min
    copies = 1000
    batch = systems_of(instance, copies)
    started = time.perf_counter()
    batched = optimize_serial(batch, options)
    per_network = (time.perf_counter() - started) / copies
    # Results check: same optimum as stockpyl (its coarser grid moves the cost by < 0.1%).
    assert solution.grid_step[0] <= finest
    assert solution.expected_cost[0] == pytest.approx(peer["stockpyl_expected_cost"], rel=1e-3)
    np.testing.assert_allclose(solution.echelon_base_stock, peer["stockpyl_echelon_base_stock"],
                               atol=3 * (peer["stockpyl_x_step"] + peer["stockpyl_min_d_step"]))
    np.testing.assert_array_equal(batched.expected_cost, solution.expected_cost[0])
    print(f"\nserial {stages} stages: stockpyl {peer['stockpyl_seconds']:.2f} s "
          f"(x step {peer['stockpyl_x_step']:.4f}, d step {peer['stockpyl_min_d_step']:.4f}); "
          f"meio {seconds * 1e3:.3f} ms alone, {per_network * 1e3:.3f} ms/network in a batch "
          f"(grid step {solution.grid_step[0]:.4f}); ratio {peer['stockpyl_seconds'] / seconds:,.0f}x "
          f"alone, {peer['stockpyl_seconds'] / per_network:,.0f}x batched; cost "
          f"{solution.expected_cost[0]:.4f} vs {peer['stockpyl_expected_cost']:.4f} "
          f"(bound {solution.cost_error_bound[0]:.3f})")


@pytest.mark.parametrize("shape", ["serial", "distribution"])
def test_batch_throughput(benchmark, shape):
    stages, arcs = generate_catalog(THROUGHPUT_NETWORKS, shape=shape, seed=11)
    network = read_network(stages, arcs)
    batch = network.batch
    demand = net_demand(batch, 0.95)
    small = read_network(*generate_catalog(4, shape=shape, seed=1))
    ssm.solve(small.batch, net_demand(small.batch, 0.95))  # compile/load outside the timing
    result = benchmark.pedantic(ssm.solve, args=(batch, demand), rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    expected = "chen_zheng_exact" if shape == "serial" else "distribution_decomposition"
    methods = set(result.network["method"])
    # A generated "distribution" network may be a plain chain, solved exactly.
    assert methods <= {expected, "chen_zheng_exact"}
    assert np.isfinite(result.network["expected_cost"]).all()
    assert (result.stage["base_stock"] >= 0).all()
    assert (result.stage["expected_on_hand"] >= -1e-9).all()
    n = batch.n_networks
    print(f"\nssm {shape}: {n:,} networks, {batch.n_stages:,} stages in {seconds:.2f} s "
          f"({n / seconds:,.0f} networks/s, {batch.n_stages / seconds:,.0f} stages/s), methods "
          f"{sorted(methods)}, peak RSS {peak_rss_mib():,.0f} MiB, python {sys.version.split()[0]}")
