"""Gap of the Lagrangian lower bound of general GSM networks, and what it costs.

On the non-tree networks of ``meio.generate.generate_catalog(n, shape=..., seed=3)`` (``dag``
and ``mixed``, ``N_NETWORKS`` networks), with demand and caps as ``gsm.solve`` builds them:
the SLP plans of ``solve_general_batch`` (default starts, one thread), then the bound of
:func:`meio.engine.gsm_bound.general_batch_bounds` with each effort of ``EFFORTS`` (forest DPs;
0 is the envelope bound alone). Printed per effort: mean, median and worst gap
``(cost - bound) / cost`` and the bound's CPU time against the SLP's (``time.process_time``, one
thread: the ratio is meaningful on a shared machine, wall times are not).

Checks, not timings: every bound at most the plan's cost, and no network's bound lower with
more effort (so none below the envelope bound).

Run: ``PYTHONPATH=. .venv/bin/python -m pytest bench/bench_gsm_bound.py --benchmark-only
-p no:cacheprovider -o testpaths=bench -o python_files='bench_*.py' -s``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import meio
from bench.common import QUICK
from meio.api import net_demand
from meio.engine import gsm
from meio.engine.gsm_bound import BOUND_ITERATIONS, general_batch_bounds
from meio.engine.gsm_general import solve_general_batch
from meio.engine.gsm_tree import solve_trees
from meio.generate import generate_catalog

#: Catalog sizes: about 1 network in 10 of a mixed catalog is not a tree.
N_NETWORKS = {"dag": 30 if QUICK else 200, "mixed": 300 if QUICK else 2000}
EFFORTS = (0, 1, 10, BOUND_ITERATIONS, 100)
SERVICE_LEVEL = 0.95


def general_problem(n_networks, shape):
    """GSM problem, caps and non-tree networks of a generated catalog."""
    stages, arcs = generate_catalog(n_networks, shape=shape, seed=3)
    batch = meio.read_network(stages, arcs).batch
    problem = gsm.build_tree_problem(batch, net_demand(batch, SERVICE_LEVEL))
    return problem, gsm._general_caps(problem), np.flatnonzero(~solve_trees(problem).is_forest)


@pytest.fixture(scope="module", autouse=True)
def warm_up():
    """Compile the kernels before anything is timed."""
    problem, caps, general = general_problem(4, "dag")
    plans = solve_general_batch(problem, caps, general, slp_starts=4, threads=1)
    general_batch_bounds(problem, caps, general, plans.cost, threads=1)


@pytest.mark.parametrize("shape", ["dag", "mixed"])
def test_bound_gap_and_cost(benchmark, shape):
    problem, caps, general = general_problem(N_NETWORKS[shape], shape)
    stages = int(np.diff(problem.network_offsets)[general].sum())
    started = time.process_time()
    plans = solve_general_batch(problem, caps, general, threads=1)
    slp_seconds = time.process_time() - started
    rows = {}

    def run_all():
        for effort in EFFORTS:
            started = time.process_time()
            bounds = plans.lower_bound
            if effort > 0:
                bounds = np.fmax(bounds, general_batch_bounds(problem, caps, general, plans.cost,
                                                              iterations=effort, threads=1))
            rows[effort] = (bounds, time.process_time() - started)

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    print(f"\n[bound {shape}] {len(general)} non-tree networks, {stages:,} stages; SLP "
          f"{slp_seconds:.2f}s CPU")
    previous = plans.lower_bound
    for effort, (bounds, seconds) in rows.items():
        gap = (plans.cost - bounds) / plans.cost
        print(f"[bound {shape}] forest DPs {effort:3d}: gap mean {100 * gap.mean():6.2f}% median "
              f"{100 * np.median(gap):6.2f}% worst {100 * gap.max():6.2f}%  CPU {seconds:6.2f}s "
              f"({100 * seconds / slp_seconds:5.1f}% of the SLP)")
        assert np.all(bounds <= plans.cost * (1 + 1e-12))
        # A longer ascent repeats the shorter one first, so no bound falls with more effort.
        assert np.all(bounds >= previous)
        previous = bounds
