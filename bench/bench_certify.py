"""Certification of a plan's service (``meio.certify``, ``meio optimize --certify``): time and results.

Demo. The demo catalog (``meio optimize``'s embedded configuration: 2,000 mixed networks, seed 7)
under its GSM plan, certified with the default options in one process on all Numba threads.
Reported: seconds, CPU time per stage, stage-periods simulated (all passes) per stage, per second
and per CPU-second, the projection of one plan's certification to 1,000,000 such stages (CPU time
over 2 cores and over 32 workers), the share of demand stages certified, the cost uplift over the
model's own plan, and a referee's verdict (``meio.simulate``, 1,000 periods x 30 replications, a
seed the certification never uses).

Mixed catalog. A ``--shape mixed`` catalog through ``meio.cluster`` (the ``meio optimize
--certify`` path: solve, certify the plan and the single-echelon baseline) in partitions on a
local cluster of two single-thread workers. Reported: wall time, each partition's certification
seconds and its task time per stage, and the projection to 1,000,000 stages on this machine
and on a 32-worker cluster (certification is linear in stages x horizon and partitions are
independent tasks; the projection divides the measured task seconds by the workers).

Models. With ``MEIO_BENCH_CERTIFY_MODELS=1`` (the ``ssm`` descent on the demo takes many
minutes), the demo's GSM and ``ssm`` plans through ``meio.optimize(..., certify=...)``: the share
of demand stages certified, a referee's share (seed 99), the certified cost against the model's
own and the uncertified GSM plan's, the saving against the certified single-echelon plan.

Willems chains. With ``MEIO_WILLEMS_DIR`` (the ``willems_2008`` folder beside the project, not in
the repository), the 38 real chains of Willems (2008) with their own data (stage times and their
deviations, demand, service levels, maximum service times; holding cost 0.1/365 of the cumulative
cost: percentages do not depend on the rate) through ``meio.optimize(..., "gsm", certify=True)``,
and the same figures (referee seed 7).

``MEIO_BENCH_QUICK=1``: 150 networks at precision 0.02, a 60-network mixed catalog.
``MEIO_BENCH_CERTIFY_NETWORKS`` sets the mixed catalog's networks (default 4,000, about 60,000
stages); ``MEIO_BENCH_CERTIFY_PRECISION`` its precision (default 0.005). Results are checked
(every demand stage met or within Monte Carlo error, costs positive), never timings.
"""

from __future__ import annotations

import os
import time

import numba
import polars as pl
from scipy import stats

from bench.common import QUICK, peak_rss_mib, willems_tables
from meio.api import read_network
from meio.certification import certify
from meio.cluster import local_cluster, run_catalog
from meio.cluster.workers import warm_up
from meio.config import load_config
from meio.generate import generate_catalog
from meio.pipeline import optimize
from meio.simulation import simulate

DEMO_NETWORKS = 150 if QUICK else None  # None: the demo's own 2,000
PRECISION = 0.02 if QUICK else 0.005
MIXED_NETWORKS = 60 if QUICK else int(os.environ.get("MEIO_BENCH_CERTIFY_NETWORKS", 4000))
MIXED_PRECISION = 0.02 if QUICK else float(os.environ.get("MEIO_BENCH_CERTIFY_PRECISION", 0.005))
#: A referee's miss share above this is more than Monte Carlo error when each stage misses with
#: probability 0.03 (binomial tail below 1e-3 for the demo's 9,650 demand stages).
MISS_PROBABILITY = 0.03


def _demo_tables():
    config = load_config(None).generate
    if DEMO_NETWORKS is not None:
        config.networks = DEMO_NETWORKS
    return config.tables()


def _misses_within_error(misses: int, stages: int) -> bool:
    return misses == 0 or stats.binom.sf(misses - 1, stages, MISS_PROBABILITY) > 1e-3


def test_certify_demo(benchmark):
    stages, arcs = _demo_tables()
    network = read_network(stages, arcs)
    plan = optimize(network, "gsm")
    certify(read_network(*generate_catalog(3, shape="mixed", seed=1)), optimize(
        read_network(*generate_catalog(3, shape="mixed", seed=1)), "gsm"), periods=5, warmup=1)  # compile
    cpu = time.process_time()
    result = benchmark.pedantic(certify, args=(network, plan), kwargs={"precision": PRECISION, "seed": 1},
                                rounds=1, iterations=1)
    cpu = time.process_time() - cpu
    seconds = benchmark.stats.stats.min
    networks, demand = result.networks, result.stages.filter(pl.col("target_met").is_not_null())
    stage_periods = networks["certify_stage_periods"].sum()
    met = int(demand["target_met"].sum())
    assert _misses_within_error(demand.height - met, demand.height)
    assert (networks["safety_stock_cost"] >= 0).all()
    policy = result.stages.select("network", "stage", "base_stock", "outbound_service_time",
                                  "inbound_service_time")
    referee = simulate(network, policy, periods=1000, replications=30, seed=12345).stages
    judged = referee.filter(pl.col("target_met").is_not_null())
    referee_met = int(judged["target_met"].sum())
    assert _misses_within_error(judged.height - referee_met, judged.height)
    cost, model_cost = networks["safety_stock_cost"].sum(), networks["model_cost"].sum()
    threads = numba.get_num_threads()
    n_stages = network.stages.height
    million = 1_000_000 / n_stages * cpu  # CPU-seconds to certify one plan of 1M such stages
    print(f"\ncertify (demo, gsm plan): {network.n_networks:,} networks, {n_stages:,} stages, "
          f"precision {PRECISION}, {networks['certify_periods'][0]:,} periods x 8 replications per pass: "
          f"{seconds:.1f} s on {threads} threads, {cpu:.1f} CPU-s "
          f"({1000 * cpu / n_stages:.2f} ms per stage), "
          f"{stage_periods:,.0f} stage-periods ({stage_periods / n_stages:,.0f} per stage; "
          f"{stage_periods / seconds / 1e6:.1f} M/s, {stage_periods / cpu / 1e6:.1f} M per CPU-second); "
          f"one plan of 1M such stages: {million / 2 / 60:.1f} min on 2 cores, "
          f"{million / 32 / 60:.1f} min on 32 workers; "
          f"{met:,} of {demand.height:,} demand stages certified; certified cost {cost:,.0f} vs the "
          f"model's {model_cost:,.0f} ({100 * (cost / model_cost - 1):+.1f}%); referee (fresh seed) "
          f"{referee_met:,} of {judged.height:,} met; peak RSS {peak_rss_mib():,.0f} MiB")


def test_certify_mixed_on_local_cluster(benchmark, tmp_path):
    stages, arcs = generate_catalog(MIXED_NETWORKS, shape="mixed", seed=11)
    stages.write_parquet(tmp_path / "stages.parquet")
    arcs.write_parquet(tmp_path / "arcs.parquet")
    options = {"certify": {"precision": MIXED_PRECISION, "seed": 1}}
    warm_up("gsm", options)
    partitions = 2 if QUICK else 8
    with local_cluster(workers=2, threads_per_worker=1) as client:
        def partitioned():
            return run_catalog(tmp_path / "stages.parquet", tmp_path / "arcs.parquet", tmp_path / "run",
                               model="gsm", service_level=0.95, options=options, client=client,
                               partitions=partitions, overwrite=True)

        result = benchmark.pedantic(partitioned, rounds=1, iterations=1)
    seconds = benchmark.stats.stats.min
    records = result.manifest["partitions"]
    n_stages = stages.height
    task_seconds = sum(p["seconds"]["optimize"] for p in records)
    networks = pl.read_parquet(tmp_path / "run" / "networks" / "*.parquet")
    stage_periods = networks["certify_stage_periods"].sum()
    demand, missing = result.total("demand_stages"), result.total("missing_stages")
    assert _misses_within_error(missing, demand)
    per_partition = ", ".join(f"{p['partition']['stages']:,} stages {p['seconds']['optimize']:.1f} s"
                              for p in records)
    million = 1_000_000 / n_stages
    print(f"\ncertify (mixed, gsm plan and single baseline, precision {MIXED_PRECISION}): "
          f"{MIXED_NETWORKS:,} networks, {n_stages:,} stages in {partitions} partitions on 2 workers: "
          f"{seconds:.1f} s wall, task time {task_seconds:.1f} s ({per_partition}; "
          f"{1000 * task_seconds / n_stages:.2f} ms per stage, solve and both certifications); plan "
          f"certification {stage_periods:,.0f} stage-periods ({stage_periods / n_stages:,.0f} per stage); "
          f"{demand - missing:,} of {demand:,} demand "
          f"stages certified; saving vs certified single "
          f"{100 * (1 - result.total('safety_stock_cost') / result.total('baseline_cost')):.1f}%; "
          f"projected 1M stages from the task time: {task_seconds * million / 2 / 60:.1f} min on this "
          f"machine's 2 workers, {task_seconds * million / 32 / 60:.1f} min on 32 workers; peak RSS "
          f"{peak_rss_mib():,.0f} MiB (driver)")


def test_certify_partitions(benchmark):
    """Per partition of a 2,000-network ``--shape mixed`` slice (4 partitions of whole networks, as
    ``meio.cluster`` cuts them), in one process: CPU seconds of the GSM solve, the plan's and the
    single baseline's certifications, per stage, and the stage-periods they simulated per stage.
    The 1M-stage projection divides the slice's CPU per stage over 2 cores."""
    networks = 60 if QUICK else 2000
    stages, arcs = generate_catalog(networks, shape="mixed", seed=11)
    catalog = read_network(stages, arcs)
    ids = catalog.layout.network_ids.to_list()
    certify(read_network(*generate_catalog(3, shape="mixed", seed=1)), optimize(
        read_network(*generate_catalog(3, shape="mixed", seed=1)), "gsm"), periods=5, warmup=1)  # compile
    options = {"precision": PRECISION, "seed": 1}

    def partitions():
        rows = []
        for part in range(4):
            chosen = ids[part::4]
            part_network = read_network(stages.filter(pl.col("network").is_in(chosen)),
                                        arcs.filter(pl.col("network").is_in(chosen)))
            cpu = [time.process_time()]
            plan = optimize(part_network, "gsm")
            cpu.append(time.process_time())
            certified = certify(part_network, plan, **options)
            cpu.append(time.process_time())
            baseline = certify(part_network, optimize(part_network, "single"), **options)
            cpu.append(time.process_time())
            rows.append((part_network.stages.height, [b - a for a, b in zip(cpu, cpu[1:], strict=False)],
                         certified.networks["certify_stage_periods"].sum(),
                         baseline.networks["certify_stage_periods"].sum(),
                         int(certified.networks["certify_checks"].max())))
        return rows

    rows = benchmark.pedantic(partitions, rounds=1, iterations=1)
    total_stages = sum(row[0] for row in rows)
    total_cpu = sum(sum(row[1]) for row in rows)
    lines = [f"partition {k}: {n:,} stages, CPU solve {c[0]:.1f} s, plan {c[1]:.1f} s, baseline {c[2]:.1f} s "
             f"({1000 * sum(c) / n:.2f} ms per stage; plan {1000 * c[1] / n:.2f}, "
             f"baseline {1000 * c[2] / n:.2f}); stage-periods per stage: plan {sp / n:,.0f}, "
             f"baseline {bp / n:,.0f}; checks at most {checks}"
             for k, (n, c, sp, bp, checks) in enumerate(rows)]
    million = 1_000_000 / total_stages * total_cpu
    print(f"\ncertify partitions ({networks:,} mixed networks, precision {PRECISION}, "
          f"{numba.get_num_threads()} threads):\n  " + "\n  ".join(lines)
          + f"\n  all: {1000 * total_cpu / total_stages:.2f} CPU-ms per stage; 1M stages: "
          f"{million / 2 / 60:.1f} min on 2 cores, {million / 32 / 60:.1f} min on 32 workers")
    assert all(sp > 0 and bp > 0 for _, _, sp, bp, _ in rows)


def _policy(plan) -> pl.DataFrame:
    columns = ("network", "stage", "base_stock", "outbound_service_time", "inbound_service_time")
    return plan.stages.select(*columns)


def _referee(network, plan, seed: int) -> tuple[int, int, float]:
    """Demand stages meeting their targets in ``meio.simulate`` (1,000 x 30, ``seed``), how many,
    and the simulated on-hand holding cost."""
    simulated = simulate(network, _policy(plan), periods=1000, replications=30, seed=seed).stages
    judged = simulated.filter(pl.col("target_met").is_not_null())
    on_hand = float((simulated["mean_on_hand"].to_numpy() * network.batch.holding_cost).sum())
    return int(judged["target_met"].sum()), judged.height, on_hand


def _certified_figures(network, model: str, seed: int) -> tuple[str, float]:
    """One model's plan certified with its certified single baseline, the uncertified GSM plan beside it.

    The figures docs/certify.md reports: the share of demand stages certified, a referee's share
    on a fresh ``seed``, the certified cost against the model's own and against the uncertified
    GSM plan (its model cost and its simulated on-hand cost), and the saving against the
    certified single-echelon plan. Returns the line and the CPU seconds of the certified run.
    """
    cpu = time.process_time()
    plan = optimize(network, model, certify={"precision": PRECISION, "seed": 1})
    cpu = time.process_time() - cpu
    networks = plan.networks
    demand, missing = networks["demand_stages"].sum(), networks["stages_missing_target"].sum()
    assert _misses_within_error(missing, demand)
    referee_met, judged, _ = _referee(network, plan, seed)
    assert _misses_within_error(judged - referee_met, judged)
    gsm = optimize(network, "gsm")
    gsm_referee, _, gsm_on_hand = _referee(network, gsm, seed)
    cost, model_cost = networks["safety_stock_cost"].sum(), networks["model_cost"].sum()
    gsm_cost, baseline = gsm.networks["safety_stock_cost"].sum(), networks["baseline_cost"].sum()
    line = (f"{model} certified: {demand - missing:,} of {demand:,} demand stages certified "
            f"({100 * (demand - missing) / demand:.2f}%), referee (seed {seed}) {referee_met:,} of "
            f"{judged:,} ({100 * referee_met / judged:.2f}%; the uncertified GSM plan "
            f"{100 * gsm_referee / judged:.1f}%); "
            f"certified cost {cost:,.0f}: {100 * (cost / model_cost - 1):+.1f}% vs the model's own "
            f"{model_cost:,.0f}, {100 * (cost / gsm_cost - 1):+.1f}% vs the uncertified GSM plan's cost "
            f"{gsm_cost:,.0f} and {100 * (cost / gsm_on_hand - 1):+.1f}% vs its simulated on-hand cost "
            f"{gsm_on_hand:,.0f}; certified single {baseline:,.0f} "
            f"({int(networks['baseline_certified'].sum())} of {networks.height} networks certified): saving "
            f"{100 * (1 - cost / baseline):.1f}%; {cpu:.0f} CPU-s (solve, certify plan and baseline)")
    return line, cpu


def test_certify_demo_models(benchmark):
    """The demo's GSM and ``ssm`` plans certified (``meio optimize [--model ssm] --certify``'s work)."""
    if not (QUICK or os.environ.get("MEIO_BENCH_CERTIFY_MODELS")):
        return  # the ssm descent on the whole demo takes many minutes: on request
    network = read_network(*_demo_tables())
    lines = benchmark.pedantic(lambda: [_certified_figures(network, model, 99)[0]
                                        for model in ("gsm", "ssm")], rounds=1, iterations=1)
    print(f"\ncertify (demo, {network.n_networks:,} networks, {network.stages.height:,} stages, precision "
          f"{PRECISION}):\n  " + "\n  ".join(lines))


def willems_certified(benchmark):
    network = read_network(*willems_tables(WILLEMS_DIR), holding_rate=0.1 / 365.0)
    line = benchmark.pedantic(lambda: _certified_figures(network, "gsm", 7)[0], rounds=1, iterations=1)
    uncertified = optimize(network, "gsm").networks
    before = 100 * (1 - uncertified["safety_stock_cost"].sum() / uncertified["baseline_cost"].sum())
    print(f"\ncertify (Willems chains): {network.n_networks} chains, {network.stages.height:,} stages, "
          f"precision {PRECISION}: {line} (uncertified saving: {before:.1f}%)")


#: The ``willems_2008`` folder beside the project (not in the repository).
WILLEMS_DIR = os.environ.get("MEIO_WILLEMS_DIR")
# The chains are not part of the project: the suite exists only where their folder is given.
if WILLEMS_DIR:
    test_certify_willems = willems_certified
