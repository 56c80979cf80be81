"""Partitioned runs: identical to the single-process API for any partitioning, resumable,
atomic, and unchanged when a real Dask worker process is killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import accumulate
from pathlib import Path

import polars as pl
import pytest

import meio
from meio.cli import main
from meio.cluster import plan_partitions, run_catalog
from meio.cluster.catalog import Source
from meio.generate import generate_catalog
from tests.tables import random_catalog

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"
START_TIMEOUT = 90.0
#: Small work limits of the general GSM solver (with its exact MIP) for quick tests.
GSM_LIMITS = {"slp_starts": 8, "mip_node_limit": 5}


class Crash(RuntimeError):
    """Stands for a driver that dies mid-run."""


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """A random catalog of 400 networks as Parquet files, and the single-process plan of it."""
    stages, arcs = random_catalog(11, networks=400)
    folder = tmp_path_factory.mktemp("catalog")
    stages.write_parquet(folder / "stages.parquet")
    arcs.write_parquet(folder / "arcs.parquet")
    plan = meio.optimize(meio.read_network(stages, arcs), "single")
    return folder / "stages.parquet", folder / "arcs.parquet", plan


def _dataset(run: Path, table: str) -> pl.DataFrame:
    """A table of a run directory, parts in order; per-network timings dropped (never equal)."""
    parts = sorted((run / table).glob("part-*.parquet")) or [run / f"{table}.parquet"]
    frame = pl.read_parquet(parts)
    return frame.drop("seconds") if table == "networks" else frame


def _assert_same_plan(run: Path, plan: meio.Plan) -> None:
    assert _dataset(run, "stages").equals(plan.stages)
    assert _dataset(run, "networks").equals(plan.networks.drop("seconds"))


def _run(stages, arcs, output, **options):
    return run_catalog(stages, arcs, output, model="single", service_level=0.95, **options)


@pytest.mark.parametrize("layout", [{"partitions": 1}, {"partitions": 4}, {"partitions": 7},
                                    {"partition_size": 50}])
def test_any_partitioning_equals_single_process(tmp_path, catalog, layout):
    stages, arcs, plan = catalog
    result = _run(stages, arcs, tmp_path / "run", **layout)
    _assert_same_plan(tmp_path / "run", plan)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    parts = manifest["partitions"]
    assert sum(p["files"]["stages"]["rows"] for p in parts) == plan.stages.height
    assert sum(p["partition"]["networks"] for p in parts) == plan.networks.height
    assert result.total("safety_stock_cost") == pytest.approx(plan.networks["safety_stock_cost"].sum())
    assert not (tmp_path / ".run.partial").exists()


@pytest.fixture(scope="module")
def general_catalog(tmp_path_factory):
    """Generated general (non-tree) networks with a few trees, as Parquet, and their gsm plan."""
    stages, arcs = generate_catalog(24, shape="mixed", seed=5, stages_per_network=(8, 30),
                                    shape_weights={"dag": 0.8, "distribution": 0.2})
    folder = tmp_path_factory.mktemp("general")
    stages.write_parquet(folder / "stages.parquet")
    arcs.write_parquet(folder / "arcs.parquet")
    plan = meio.optimize(meio.read_network(stages, arcs), "gsm", **GSM_LIMITS)
    return folder / "stages.parquet", folder / "arcs.parquet", plan


def test_general_networks_do_not_depend_on_partitioning(tmp_path, general_catalog):
    # The general solver stops on work limits, not the clock, so a busy worker gives the same plan.
    stages, arcs, plan = general_catalog
    assert (plan.networks["method"] != "tree_dp").sum() >= 10
    for partitions in (1, 4):
        output = tmp_path / f"run{partitions}"
        run_catalog(stages, arcs, output, model="gsm", service_level=0.95,
                    options=GSM_LIMITS, partitions=partitions)
        _assert_same_plan(output, plan)


def test_partitions_hold_whole_networks_in_sorted_ranges(catalog):
    stages, _, plan = catalog
    partitions = plan_partitions(Source("stages", str(stages)), partitions=4)
    assert len(partitions) == 4
    networks = sorted(plan.networks["network"].to_list())
    assert [p.first_network for p in partitions][0] == networks[0]
    assert partitions[-1].last_network == networks[-1]
    for before, after in zip(partitions, partitions[1:], strict=False):
        assert before.last_network < after.first_network
    assert sum(p.networks for p in partitions) == len(networks)
    assert sum(p.stages for p in partitions) == plan.stages.height


def test_hive_partitioned_input_gives_the_same_plan(tmp_path, catalog):
    stages, arcs, plan = catalog
    frame = pl.read_parquet(stages).with_columns(bucket=pl.col("network").str.slice(1, 1))
    frame.write_parquet(tmp_path / "stages", partition_by="bucket")
    _run(tmp_path / "stages", arcs, tmp_path / "run", partitions=3)
    result = _dataset(tmp_path / "run", "stages")
    assert result.drop("bucket").equals(plan.stages)


def test_resume_skips_committed_partitions(tmp_path, catalog):
    stages, arcs, plan = catalog
    events = []

    def crash_after_two(event):
        events.append(event)
        if len(events) == 2:
            raise Crash

    with pytest.raises(Crash):
        _run(stages, arcs, tmp_path / "run", partitions=5, on_progress=crash_after_two)
    assert not (tmp_path / "run").exists()
    events.clear()
    result = _run(stages, arcs, tmp_path / "run", partitions=5, resume=True, on_progress=events.append)
    assert [(e.index, e.state) for e in events] == [
        (0, "skipped"), (1, "skipped"), (2, "done"), (3, "done"), (4, "done")]
    assert [p["resumed"] for p in result.manifest["partitions"]] == [True, True, False, False, False]
    _assert_same_plan(tmp_path / "run", plan)


def test_resume_recomputes_changed_jobs_and_damaged_parts(tmp_path, catalog):
    stages, arcs, _ = catalog

    def crash_after_two(event):
        if event.index == 1:
            raise Crash

    with pytest.raises(Crash):
        _run(stages, arcs, tmp_path / "run", partitions=4, on_progress=crash_after_two)
    part = tmp_path / ".run.partial" / "dataset" / "stages" / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[:-10])
    events = []
    _run(stages, arcs, tmp_path / "run", partitions=4, resume=True, on_progress=events.append)
    assert [e.state for e in events] == ["skipped", "done", "done", "done"]

    with pytest.raises(Crash):
        _run(stages, arcs, tmp_path / "other", partitions=4, on_progress=crash_after_two)
    events.clear()
    run_catalog(stages, arcs, tmp_path / "other", model="single", service_level=0.9, partitions=4,
                resume=True, on_progress=events.append)
    assert [e.state for e in events] == ["done"] * 4


def test_simulation_resumes_and_a_changed_seed_recomputes(tmp_path, catalog):
    stages, arcs, plan = catalog
    options = {"periods": 60, "replications": 2, "seed": 1}

    def simulate(output, on_progress, **changes):
        return run_catalog(stages, arcs, output, model="simulate", service_level=0.95,
                           options={**options, **changes}, policy=plan, partitions=4, resume=True,
                           on_progress=on_progress)

    def crash_after_two(event):
        if event.index == 1:
            raise Crash

    with pytest.raises(Crash):
        simulate(tmp_path / "sim", crash_after_two)
    events = []
    simulate(tmp_path / "sim", events.append)
    assert [e.state for e in events] == ["skipped", "skipped", "done", "done"]
    expected = meio.simulate(meio.read_network(stages, arcs), plan, **options)
    assert _dataset(tmp_path / "sim", "stages").equals(expected.stages)
    with pytest.raises(Crash):
        simulate(tmp_path / "other", crash_after_two)
    events.clear()
    simulate(tmp_path / "other", events.append, seed=2)
    assert [e.state for e in events] == ["done"] * 4


@pytest.mark.parametrize(("changes", "message"), [
    ({"policy": None}, "config.policy: give the base-stock policy to simulate"),
    ({"options": {"periods": 10, "horizon": 5}}, "config.horizon: is not a simulation option"),
    ({"options": {"periods": 0}}, "config.periods: must be a whole number >= 1"),
    ({"options": {"demand": "history"}}, "config.demand: give a demand history exactly when"),
])
def test_simulation_job_is_checked_before_anything_is_written(tmp_path, catalog, changes, message):
    stages, arcs, plan = catalog
    job = {"policy": plan, "options": {"periods": 10}, **changes}
    with pytest.raises(meio.InputError) as error:
        run_catalog(stages, arcs, tmp_path / "sim", model="simulate", service_level=0.95, partitions=2, **job)
    assert str(error.value).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_failed_run_leaves_previous_results_intact(tmp_path, catalog):
    stages, arcs, plan = catalog
    _run(stages, arcs, tmp_path / "run", partitions=3)
    before = {p: p.read_bytes() for p in sorted((tmp_path / "run").rglob("*")) if p.is_file()}

    def crash(event):
        raise Crash

    with pytest.raises(Crash):
        run_catalog(stages, arcs, tmp_path / "run", model="single", service_level=0.8, partitions=3,
                    overwrite=True, on_progress=crash)
    after = {p: p.read_bytes() for p in sorted((tmp_path / "run").rglob("*")) if p.is_file()}
    assert after == before
    _assert_same_plan(tmp_path / "run", plan)


def test_bad_row_in_a_late_partition_raises_the_single_process_error(tmp_path, catalog):
    stages, arcs, _ = catalog
    frame = pl.read_parquet(stages)
    last = frame["network"].max()
    bad_row = frame.with_row_index().filter(pl.col("network") == last)["index"][0]
    frame = frame.with_columns(
        lead_time=pl.when(pl.int_range(pl.len()) == bad_row).then(-1.0).otherwise(pl.col("lead_time")))
    frame.write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(meio.InputError) as expected:
        meio.read_network(frame, pl.read_parquet(arcs))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("previous results")
    with pytest.raises(meio.InputError) as raised:
        _run(tmp_path / "bad.parquet", arcs, tmp_path / "run", partitions=4, overwrite=True)
    assert str(raised.value) == str(expected.value)
    assert "stages.lead_time: must be >= 0 (1 row" in str(raised.value)
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["keep.txt"]
    assert not (tmp_path / ".run.partial").exists()


def test_precheck_rejects_arcs_of_networks_without_stages(tmp_path, catalog, capsys):
    stages, arcs, _ = catalog
    extra = pl.DataFrame({"network": ["zz"], "upstream": ["a"], "downstream": ["b"], "quantity": [1.0]})
    pl.concat([pl.read_parquet(arcs), extra]).write_parquet(tmp_path / "arcs.parquet")
    status = main(["optimize", "--stages", str(stages), "--arcs", str(tmp_path / "arcs.parquet"),
                   "--model", "single", "--partitions", "3", "--output", str(tmp_path / "run")])
    assert status == 2
    assert ("arcs.upstream: must name a stage of the same network in the stages table (1 row; "
            "first: network 'zz' arc 'a'->'b')") in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / ".run.partial").exists()


# --- a real cluster: `dask scheduler` and two `dask worker` processes on 127.0.0.1 ------------


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as handle:
        return subprocess.Popen([str(DASK), *args], stdout=handle, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@pytest.fixture
def dask_cluster(tmp_path):
    """A scheduler and two single-thread workers without nannies (a killed worker stays dead)."""
    scheduler_file = tmp_path / "scheduler.json"
    processes = {}
    try:
        processes["scheduler"] = _spawn(
            ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)], tmp_path / "scheduler.log")
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists():
            assert time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            assert processes["scheduler"].poll() is None, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for name in ("w0", "w1"):
            processes[name] = _spawn(
                ["worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "60"],
                tmp_path / f"{name}.log")
        from distributed import Client

        with Client(address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
            yield address, client, processes
    finally:
        for process in reversed(processes.values()):
            _stop(process)


def _written_catalog(folder: Path, seed: int, networks: int):
    """A random catalog, also written as ``stages.parquet`` / ``arcs.parquet`` in ``folder``."""
    stages, arcs = random_catalog(seed, networks=networks)
    stages.write_parquet(folder / "stages.parquet")
    arcs.write_parquet(folder / "arcs.parquet")
    return stages, arcs


def test_worker_killed_mid_run_changes_nothing(tmp_path, dask_cluster):
    address, client, processes = dask_cluster
    stages, arcs = _written_catalog(tmp_path, 5, 2400)
    plan = meio.optimize(meio.read_network(stages, arcs), "single")
    done = tmp_path / ".run.partial" / "checkpoint" / "done"
    killed = {}
    names = {worker: info["name"]
             for worker, info in client.scheduler_info(n_workers=-1)["workers"].items()}

    def uncommitted(keys):
        finished = {path.stem for path in done.glob("*.json")}
        return [key for key in keys if key.startswith("meio-part-")
                and key[len("meio-"): len("meio-part-00000")] not in finished]

    def kill_a_busy_worker_after_the_first_commit():
        # the scheduler may still list a partition the worker has just committed, so the victim
        # is a worker holding one the checkpoint does not have yet
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if done.exists() and any(done.glob("*.json")):
                busy = {w: uncommitted(keys) for w, keys in client.processing().items()}
                busy = {w: keys for w, keys in busy.items() if keys}
                if busy:
                    victim = sorted(busy)[0]
                    processes[names[victim]].kill()
                    killed.update(address=victim, moved=uncommitted(busy[victim]))
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_a_busy_worker_after_the_first_commit, daemon=True)
    watcher.start()
    status = main(["optimize", "--stages", str(tmp_path / "stages.parquet"), "--arcs",
                   str(tmp_path / "arcs.parquet"), "--model", "single", "--partitions", "24",
                   "--scheduler", address, "--output", str(tmp_path / "run")])
    watcher.join(timeout=30)
    assert status == 0
    assert killed, "the kill did not land while partitions were still running"
    _assert_same_plan(tmp_path / "run", plan)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert len(manifest["partitions"]) == 24
    by_name = {f"meio-part-{p['partition']['index']:05d}": p["worker"] for p in manifest["partitions"]}
    moved = killed["moved"]  # a partition the victim committed before the kill stays its own
    assert moved
    for key in moved:
        assert by_name[key[: len("meio-part-00000")]] != killed["address"]
    assert processes["w0"].poll() is not None or processes["w1"].poll() is not None


def test_simulate_on_a_real_cluster_equals_one_process(tmp_path, dask_cluster):
    address, client, _ = dask_cluster
    stages, arcs = _written_catalog(tmp_path, 9, 60)
    plan = meio.optimize(meio.read_network(stages, arcs), "gsm")
    plan.stages.write_parquet(tmp_path / "policy.parquet")
    status = main(["simulate", "--stages", str(tmp_path / "stages.parquet"), "--arcs",
                   str(tmp_path / "arcs.parquet"), "--policy", str(tmp_path / "policy.parquet"),
                   "--periods", "200", "--replications", "4", "--seed", "3", "--partitions", "5",
                   "--scheduler", address, "--output", str(tmp_path / "sim")])
    assert status == 0
    expected = meio.simulate((stages, arcs), plan, periods=200, replications=4, seed=3)
    assert _dataset(tmp_path / "sim", "stages").equals(expected.stages)
    assert _dataset(tmp_path / "sim", "networks").equals(expected.networks.drop("seconds"))
    manifest = json.loads((tmp_path / "sim" / "manifest.json").read_text())
    assert manifest["cluster"]["scheduler"] == address and manifest["cluster"]["workers"] == 2
    assert {p["worker"] for p in manifest["partitions"]} <= set(client.scheduler_info()["workers"])


# --- meio estimate on the same partitions ----------------------------------------------------------


def _written_history(folder: Path) -> dict[str, Path]:
    """A generated catalog with its demand and shipment histories, as Parquet files."""
    from meio.generate_history import generate_history

    stages, arcs = generate_catalog(40, seed=8)
    history = generate_history(stages, arcs, seed=8, days=180, shipments_per_arc=20)
    paths = {}
    for name, frame in (("stages", history.stages), ("arcs", history.arcs), ("demand", history.demand),
                        ("shipments", history.shipments)):
        paths[name] = folder / f"{name}.parquet"
        frame.write_parquet(paths[name], row_group_size=2_000)
    return paths


def _estimate_argv(paths: dict[str, Path], output: Path, *extra: str) -> list[str]:
    return ["estimate", *(arg for name in ("demand", "shipments", "stages", "arcs")
                          for arg in (f"--{name}", str(paths[name]))),
            "--stockout-column", "out_of_stock", "--period", "week", "--lead-time-unit", "day",
            "--output", str(output), *extra]


def test_estimate_on_a_real_cluster_is_the_same_with_1_and_3_partitions(tmp_path, dask_cluster, capsys):
    address, _, _ = dask_cluster
    paths = _written_history(tmp_path)
    runs = {count: tmp_path / f"run-{count}" for count in (1, 3)}
    for count, output in runs.items():
        assert main(_estimate_argv(paths, output, "--scheduler", address, "--partitions", str(count))) == 0
        manifest = json.loads((output / "manifest.json").read_text())
        assert manifest["partitions"] == count
    assert f"estimate on {address}: tasks" in capsys.readouterr().out.replace("\n", "")
    whole = meio.estimate(paths["demand"], paths["shipments"], stages=paths["stages"], arcs=paths["arcs"],
                          stockout_column="out_of_stock", period="week", lead_time_unit="day")
    for table in ("stages", "arcs", "diagnostics"):
        one = pl.read_parquet(runs[1] / f"{table}.parquet")
        assert one.equals(pl.read_parquet(runs[3] / f"{table}.parquet")), table
        assert one.equals(getattr(whole, table)), table
    # bad input in the last partition: one message with the file's row number, exit 2, nothing written
    demand = pl.read_parquet(paths["demand"])
    last = demand["network"].max()
    row = demand.with_row_index("_row", offset=1).filter(pl.col("network") == last)["_row"][0]
    demand.with_columns(quantity=pl.when(pl.int_range(pl.len()) == row - 1).then(-1.0)
                        .otherwise(pl.col("quantity"))).write_parquet(paths["demand"])
    output = tmp_path / "bad"
    assert main(_estimate_argv(paths, output, "--scheduler", address, "--partitions", "3")) == 2
    error = capsys.readouterr().err.replace("\n", "")
    assert error.count("meio: error:") == 1
    assert f"demand.quantity: must be >= 0 (1 row; first: row {row} (network '{last}'" in error
    assert not output.exists() and not any(p.name.startswith(".bad") for p in tmp_path.iterdir())


@pytest.mark.parametrize(("networks", "options", "sizes"), [
    (12, {"partitions": 4}, [3, 3, 3, 3]),
    (10, {"partition_size": 4}, [4, 4, 2]),
    (7, {"partitions": 7}, [1] * 7),
])
def test_one_stage_networks_fill_partitions_to_the_target(tmp_path, networks, options, sizes):
    """Networks of one stage can be cut anywhere: N partitions of equal stage counts, or S
    stages in every partition but the last (docs/cluster.md)."""
    path = tmp_path / "stages.parquet"
    pl.DataFrame({"network": [f"n{k:02d}" for k in range(networks)], "stage": ["s"] * networks,
                  "lead_time": [1.0] * networks, "holding_cost": [1.0] * networks}).write_parquet(path)
    partitions = plan_partitions(Source("stages", str(path)), **options)
    assert [p.stages for p in partitions] == sizes
    assert [p.first_network for p in partitions] == [f"n{k:02d}" for k in accumulate([0] + sizes[:-1])]
