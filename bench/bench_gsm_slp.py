"""The Numba SLP of general GSM networks against the HiGHS SLP it replaced.

On the non-tree networks of ``meio.generate.generate_catalog(n, shape="dag", seed=3)`` (read with
``meio.read_network``, demand and caps as ``gsm.solve`` builds them):

* per network: CPU seconds of the old SLP (NumPy slopes, one HiGHS LP per step;
  ``tests/gsm_slp_reference.py``) and of the new one (``solve_general_network``: Numba kernel,
  exact min-cost-flow LPs and the local search of meio.engine.gsm_local, one thread), and the
  cost ratio new / old (same starts and work limits; the random streams and the choice among
  tied LP optima differ, and the new one polishes its starts), ``COMPARE_NETWORKS`` networks
  (quick: 8), checked: new/old at most ``MEAN_COST_RATIO`` on average;
* per network, the default against the SLP alone (``local_search=False``, the default before
  the local search): CPU seconds and cost ratio, checked: at most ``MEAN_COST_RATIO`` on average;
* throughput: networks per second of one ``gsm.solve`` call with the defaults (SLP, then the
  branch and bound of :mod:`meio.engine.gsm_exact`) on ``THROUGHPUT_NETWORKS`` generated DAGs
  (quick: 60) with the current Numba threads, compile time excluded.

Checks, not timings: both convex-envelope bounds are the same LP optimum (equal to 1e-9); every
plan of ``gsm.solve`` is feasible (``tau >= 0``, ``SI`` at least every supplier's ``S``, caps)
and its cost equals the cost recomputed from its service times.

Run: ``PYTHONPATH=. .venv/bin/python -m pytest bench/bench_gsm_slp.py --benchmark-only
-p no:cacheprovider -o testpaths=bench -o python_files='bench_*.py' -s``.
"""

from __future__ import annotations

import time

import numba
import numpy as np
import pytest

import meio
from bench.common import QUICK, peak_rss_mib
from meio.api import net_demand
from meio.engine import gsm, gsm_general
from meio.engine._numba import numba_threads
from meio.engine.batch import stage_network_index
from meio.engine.gsm_tree import NO_CAP, solve_trees
from meio.generate import generate_catalog
from tests import gsm_slp_reference as reference

COMPARE_NETWORKS = 8 if QUICK else 30
THROUGHPUT_NETWORKS = 60 if QUICK else 1000
SERVICE_LEVEL = 0.95
#: Largest mean cost ratio new / old the comparison accepts (the local search should only help).
MEAN_COST_RATIO = 1.0


def generated_dags(n_networks):
    """Batch, demand and GSM problem of a generated DAG catalog."""
    stages, arcs = generate_catalog(n_networks, shape="dag", seed=3)
    batch = meio.read_network(stages, arcs).batch
    demand = net_demand(batch, SERVICE_LEVEL)
    return batch, demand, gsm.build_tree_problem(batch, demand)


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Compile the kernels (single network and batch) before anything is timed."""
    batch, demand, _ = generated_dags(2)
    gsm.solve(batch, demand, slp_starts=4)
    _, _, problem = generated_dags(2)
    gsm_general.solve_general_network(
        *gsm_general.network_arguments(problem, gsm._general_caps(problem), 0), slp_starts=4)


def test_numba_slp_against_highs_slp(benchmark):
    _, _, problem = generated_dags(COMPARE_NETWORKS)
    caps = gsm._general_caps(problem)
    general = np.flatnonzero(~solve_trees(problem).is_forest)
    rows = []

    def run_both():
        rows.clear()
        for network in general:
            arguments = gsm_general.network_arguments(problem, caps, network)
            started = time.process_time()
            net = reference.prepare(*arguments)
            old, old_bound = reference.slp_multistart(net, gsm_general.SLP_STARTS, 0)
            old_seconds = time.process_time() - started
            with numba_threads(1):
                started = time.process_time()
                new = gsm_general.solve_general_network(*arguments)
                new_seconds = time.process_time() - started
                started = time.process_time()
                alone = gsm_general.solve_general_network(*arguments, local_search=False)
                alone_seconds = time.process_time() - started
            rows.append((len(arguments[0]), len(arguments[4]), old, old_bound, old_seconds, new,
                         new_seconds, alone, alone_seconds))

    benchmark.pedantic(run_both, rounds=1, iterations=1)
    print()
    for size, n_arcs, old, old_bound, old_seconds, new, new_seconds, alone, alone_seconds in rows:
        print(f"[slp {size:4d} stages {n_arcs:4d} arcs] old {old_seconds:7.4f}s "
              f"new {new_seconds:7.4f}s speed-up {old_seconds / new_seconds:6.1f}x "
              f"cost new/old {new.cost / old.cost:.6f}; SLP alone {alone_seconds:7.4f}s "
              f"cost new/alone {new.cost / alone.cost:.6f} time new/alone "
              f"{new_seconds / alone_seconds:5.2f}")
        assert alone.lower_bound == new.lower_bound
        assert new.lower_bound == pytest.approx(old_bound, rel=1e-9)
        assert new.cost >= new.lower_bound * (1 - 1e-12)
    old_total = sum(row[4] for row in rows)
    new_total = sum(row[6] for row in rows)
    ratios = np.array([row[5].cost / row[2].cost for row in rows])
    print(f"[slp] {len(rows)} networks: old {old_total / len(rows):.4f}s/network, new "
          f"{new_total / len(rows):.4f}s/network (1 thread), speed-up {old_total / new_total:.1f}x; "
          f"cost new/old mean {ratios.mean():.6f} min {ratios.min():.6f} max {ratios.max():.6f}, "
          f"new better on {(ratios < 1 - 1e-9).sum()}, worse on {(ratios > 1 + 1e-9).sum()}")
    assert ratios.mean() <= MEAN_COST_RATIO
    # The default before the local search: the same starts, the SLP alone (same Numba kernel).
    alone = np.array([row[5].cost / row[7].cost for row in rows])
    alone_total = sum(row[8] for row in rows)
    print(f"[slp] default vs SLP alone (the default before the local search): CPU "
          f"{new_total / alone_total:.2f}x, cost mean {alone.mean():.6f} min {alone.min():.6f} "
          f"max {alone.max():.6f}, cheaper on {(alone < 1 - 1e-9).sum()}, dearer on "
          f"{(alone > 1 + 1e-9).sum()} of {len(rows)}")
    assert alone.mean() <= MEAN_COST_RATIO


def check_plans(batch, demand, problem, result):
    """Feasibility of every plan and its cost recomputed from the service times."""
    stage = result.stage
    outbound, inbound = stage["outbound_service_time"], stage["inbound_service_time"]
    tau = inbound + batch.lead_time - outbound
    assert (tau >= -1e-9).all()
    first = problem.network_offsets[stage_network_index(problem.arc_offsets)]
    assert (inbound[first + problem.arc_downstream] >= outbound[first + problem.arc_upstream]).all()
    assert (inbound >= batch.external_inbound_service_time).all()
    caps = problem.service_time_cap
    assert ((caps == NO_CAP) | (outbound <= caps)).all()
    recomputed = np.bincount(
        stage_network_index(problem.network_offsets),
        batch.holding_cost * np.sqrt(demand.demand_bound_sd**2 * np.maximum(tau, 0.0)
                                     + problem.lead_time_term),
        batch.n_networks)
    np.testing.assert_allclose(result.network["safety_stock_cost"], recomputed, rtol=1e-9)


def test_gsm_solve_throughput_on_generated_dags(benchmark):
    batch, demand, problem = generated_dags(THROUGHPUT_NETWORKS)
    result = {}

    def run():
        result["plan"] = gsm.solve(batch, demand)

    started = time.perf_counter()
    benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = time.perf_counter() - started
    plan = result["plan"]
    check_plans(batch, demand, problem, plan)
    methods = plan.network["method"]
    n_general = int((methods != gsm.TREE_METHOD).sum())
    n_proven = int((methods == gsm.EXACT_METHOD).sum())
    # The default: the SLP, then the branch and bound on every non-tree network.
    assert set(methods) <= {gsm.TREE_METHOD, gsm.EXACT_METHOD, gsm.EXACT_LIMIT_METHOD}
    print(f"\n[gsm.solve dag] {batch.n_networks} networks ({n_general} non-tree, {n_proven} proven "
          f"optimal by the branch and bound), "
          f"{batch.n_stages} stages in {seconds:.2f}s: {batch.n_networks / seconds:,.1f} "
          f"networks/s, {numba.get_num_threads()} Numba threads, "
          f"peak_rss={peak_rss_mib():.0f}MiB")
