"""Benchmark of ``meio.estimate`` on generated histories read from Parquet files.

Full size: about 100 million daily demand records (730 days of every demand stage of a mixed
catalog) and 10 million shipment records; target under two minutes on this machine.
``MEIO_BENCH_QUICK=1`` shrinks it to about 400,000 records and 40,000 shipments;
``MEIO_BENCH_DEMAND_ROWS`` sets another size (shipments a tenth of it). The histories
are generated once (``meio.generate_history``, not timed) into ``MEIO_BENCH_HISTORY_DIR`` if
set — and reused from there when present — else into a temporary directory. There is no peer
(no other tool estimates these tables), so the suite prints throughput and peak memory and checks
the estimates against the true parameters the histories were drawn from. The partitioned path
(``meio.cluster.estimate``: one Dask task per partition of whole networks, on a local cluster of
2 worker processes) is timed on the same files and must give the in-process tables bit for bit;
``MEIO_BENCH_PARTITIONS`` sets its partitions (default 8, 3 in quick runs). Run::

    PYTHONPATH=. python -m pytest bench/bench_estimate.py --benchmark-only -p no:cacheprovider \
        -o testpaths=bench -o python_files='bench_*.py' -s
"""

import itertools
import json
import math
import os
import time
from pathlib import Path

import polars as pl
import pytest

import meio
from bench.common import QUICK, peak_rss_mib
from meio.generate import generate_catalog
from meio.generate_history import history_blocks, history_schema, history_spec
from meio.io.write import write_frames

PARTITIONS = 3 if QUICK else int(os.environ.get("MEIO_BENCH_PARTITIONS", 8))
DEMAND_ROWS = 400_000 if QUICK else int(float(os.environ.get("MEIO_BENCH_DEMAND_ROWS", 1e8)))
SHIPMENTS = DEMAND_ROWS // 10
DAYS = 730
# A mixed catalog has about 4.6 demand stages per network.
NETWORKS = max(1, round(DEMAND_ROWS / DAYS / 4.6))


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    """Directory with stages, arcs, demand and shipments Parquet files of the benchmark size."""
    given = os.environ.get("MEIO_BENCH_HISTORY_DIR")
    directory = Path(given) if given else tmp_path_factory.mktemp("history")
    marker = directory / "history.json"
    wanted = {"networks": NETWORKS, "days": DAYS, "shipments": SHIPMENTS}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    stages, arcs = generate_catalog(NETWORKS, seed=1)
    spec = history_spec(stages, arcs, seed=1, days=DAYS, shipments_per_arc=SHIPMENTS / arcs.height)
    spec.stages.write_parquet(directory / "stages.parquet")
    spec.arcs.write_parquet(directory / "arcs.parquet")
    for table in ("demand", "shipments"):
        write_frames(directory / f"{table}.parquet",
                     itertools.chain([history_schema(spec, table)], history_blocks(spec, table)))
    marker.write_text(json.dumps(wanted))
    return directory


def check_estimates(result: meio.Estimate, truth: pl.DataFrame, days: int) -> None:
    """Every demand stage is estimated, and means lie within 6 standard errors of the truth.

    ``days`` per period: a period's true mean is ``days`` times the daily one, its variance too.
    """
    demand = result.diagnostics.filter(pl.col("kind") == "demand")
    assert demand["estimated"].all()
    joined = demand.join(truth.select("network", "stage", (days * pl.col("demand_mean")).alias("true_mean"),
                                      (math.sqrt(days) * pl.col("demand_sd")).alias("true_sd")),
                         on=["network", "stage"])
    assert joined.height == truth.filter(pl.col("demand_mean") > 0).height
    z = (joined["demand_mean"] - joined["true_mean"]) / (joined["true_sd"] / joined["periods_used"].sqrt())
    assert (z.abs() < 6).mean() > 0.999
    lanes = result.diagnostics.filter(pl.col("kind") == "lane")
    assert lanes.height == result.arcs.height
    assert result.arcs["lead_time"].null_count() == 0


@pytest.mark.parametrize("period", ["day", "week"])
@pytest.mark.benchmark(group="estimate")
def test_estimate_from_history_files(benchmark, history, period):
    demand, shipments = history / "demand.parquet", history / "shipments.parquet"
    rows = pl.scan_parquet(demand).select(pl.len()).collect().item()
    shipped = pl.scan_parquet(shipments).select(pl.len()).collect().item()
    seconds = []

    def run():
        started = time.perf_counter()
        result = meio.estimate(demand, shipments, stages=history / "stages.parquet",
                               arcs=history / "arcs.parquet", period=period, lead_time_unit="day",
                               stockout_column="out_of_stock")
        seconds.append(time.perf_counter() - started)
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    check_estimates(result, pl.read_parquet(history / "stages.parquet"), 7 if period == "week" else 1)
    elapsed = min(seconds)
    benchmark.extra_info.update(demand_rows=rows, shipments=shipped, seconds=elapsed)
    print(
        f"\nestimate ({period}): {rows:,} demand records + {shipped:,} shipments in {elapsed:.1f} s "
        f"({(rows + shipped) / elapsed / 1e6:,.1f} M records/s; {result.stages.height:,} stages, "
        f"{result.arcs.height:,} lanes); process peak RSS {peak_rss_mib():,.0f} MiB; "
        f"{'under' if elapsed < 120 else 'OVER'} the 2-minute target"
        + ("" if rows >= 1e8 else f" (projected to 100M + 10M: {elapsed * 1e8 / rows:,.0f} s)")
    )
    assert math.isfinite(elapsed)


def test_estimate_on_partitions(benchmark, history):
    """The daily estimate on PARTITIONS partitions of whole networks, 2 local worker processes:
    seconds and records/s against the in-process run of the same files (measured here too), the
    workers' peak memory, and the same tables."""
    from meio.cluster import estimate_partitioned, local_cluster, network_ranges
    from meio.estimate import prepare_estimate

    demand, shipments = history / "demand.parquet", history / "shipments.parquet"
    rows = pl.scan_parquet(demand).select(pl.len()).collect().item()
    shipped = pl.scan_parquet(shipments).select(pl.len()).collect().item()
    options = {"stages": history / "stages.parquet", "arcs": history / "arcs.parquet",
               "stockout_column": "out_of_stock"}
    seconds = []
    # the workers start (fork) before this process has estimated anything: their peak memory is
    # their own
    with local_cluster(2) as client:
        def run():
            started = time.perf_counter()
            job = prepare_estimate(demand, shipments, **options)
            ranges = network_ranges(job, options["stages"], partitions=PARTITIONS, partition_size=None)
            result = estimate_partitioned(job, ranges, client)
            seconds.append(time.perf_counter() - started)
            return result

        result = benchmark.pedantic(run, rounds=1, iterations=1)
        worker_rss = client.run(peak_rss_mib)
    driver_rss = peak_rss_mib()
    started = time.perf_counter()
    whole = meio.estimate(demand, shipments, **options)
    in_process = time.perf_counter() - started
    for table in ("stages", "arcs", "diagnostics"):
        assert getattr(result, table).equals(getattr(whole, table)), table
    check_estimates(result, pl.read_parquet(history / "stages.parquet"), 1)
    elapsed = min(seconds)
    benchmark.extra_info.update(demand_rows=rows, shipments=shipped, seconds=elapsed,
                                in_process_seconds=in_process, partitions=PARTITIONS)
    print(
        f"\nestimate (day) on {PARTITIONS} partitions, 2 local workers: {rows:,} demand records + "
        f"{shipped:,} shipments in {elapsed:.1f} s ({(rows + shipped) / elapsed / 1e6:,.1f} M records/s); "
        f"in process {in_process:.1f} s (ratio partitioned / in process {elapsed / in_process:.2f}); "
        f"peak RSS per worker {max(worker_rss.values()):,.0f} MiB, driver {driver_rss:,.0f} MiB; "
        "tables identical"
    )
