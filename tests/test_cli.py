"""The `meio` command end to end on real files: run directory contents, manifest, summary."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from rich.console import Console

import meio
from meio.cli import jobs, main
from meio.cli.jobs import TaskProgress
from meio.generate import generate_catalog
from tests import plan_reference as twin
from tests.tables import random_catalog


def _write_catalog(tmp_path: Path, seed: int = 5) -> tuple[Path, Path]:
    stages, arcs = random_catalog(seed, networks=12)
    stages_path, arcs_path = tmp_path / "stages.parquet", tmp_path / "arcs.csv"
    stages.write_parquet(stages_path)
    arcs.write_csv(arcs_path)
    return stages_path, arcs_path


def test_optimize_writes_run_directory(tmp_path, capsys):
    stages_path, arcs_path = _write_catalog(tmp_path)
    out = tmp_path / "run"
    status = main(["optimize", "--stages", str(stages_path), "--arcs", str(arcs_path),
                   "--model", "single", "--service-level", "0.9", "--output", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "12 networks" in printed and "safety stock by echelon" in printed
    # Not a terminal (a log): the progress is a line per partition, not a bar drawn at the end.
    assert "single on this process: partitions 1/1," in printed
    assert "100% of the work done, about 0:00:00 left" in printed
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "networks.parquet", "report.html",
                                                     "stages.parquet"]
    stages = pl.read_parquet(out / "stages.parquet")
    networks = pl.read_parquet(out / "networks.parquet")
    for column in ("network", "stage", "model", "demand_mean", "demand_sd", "inbound_service_time",
                   "outbound_service_time", "net_lead_time", "safety_stock", "base_stock",
                   "safety_stock_cost"):
        assert column in stages.columns
    for column in ("network", "model", "method", "stages", "safety_stock_cost", "baseline_cost",
                   "saving_pct", "seconds"):
        assert column in networks.columns
    assert networks["stages"].sum() == stages.height
    total = stages.group_by("network").agg(pl.col("safety_stock_cost").sum()).sort("network")
    np.testing.assert_allclose(total["safety_stock_cost"], networks.sort("network")["safety_stock_cost"],
                               rtol=1e-12)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "single"
    assert manifest["config"]["service_level"] == 0.9
    assert manifest["inputs"]["stages_rows"] == stages.height
    assert manifest["files"]["stages"]["rows"] == stages.height
    assert len(manifest["inputs"]["files"]["stages"]["sha256"]) == 64


def test_saving_is_against_the_baseline_of_the_same_clock(tmp_path, capsys):
    """networks.parquet and the summary: baseline = the twin's single-echelon cost from the tables,
    saving = 1 - cost / baseline, never negative for gsm, and the printed total says the same."""
    stages_path, arcs_path = _write_catalog(tmp_path, seed=8)
    out = tmp_path / "run"
    assert main(["optimize", "--stages", str(stages_path), "--arcs", str(arcs_path),
                 "--model", "gsm", "--service-level", "0.9", "--output", str(out)]) == 0
    networks = pl.read_parquet(out / "networks.parquet").sort("network")
    catalog = twin.networks_of(pl.read_parquet(stages_path).to_dicts(), pl.read_csv(arcs_path).to_dicts())
    expected = [twin.baseline_cost(catalog[n], 0.9) for n in networks["network"]]
    np.testing.assert_allclose(networks["baseline_cost"], expected, rtol=1e-9)
    cost, baseline = networks["safety_stock_cost"].to_numpy(), networks["baseline_cost"].to_numpy()
    np.testing.assert_allclose(networks["saving_pct"], 100 * (1 - cost / baseline), rtol=1e-9, atol=1e-9)
    assert (networks["saving_pct"] >= -1e-9).all() and (networks["saving_pct"] > 1).any()
    total_saving = 100 * (1 - cost.sum() / baseline.sum())
    printed = " ".join(capsys.readouterr().out.split())
    assert f"vs single-echelon {baseline.sum():,.2f} ({total_saving:.1f}% saving)" in printed


def test_overwrite_replaces_previous_run(tmp_path):
    stages_path, arcs_path = _write_catalog(tmp_path)
    out = tmp_path / "run"
    args = ["optimize", "--stages", str(stages_path), "--arcs", str(arcs_path), "--model", "single",
            "--output", str(out)]
    assert main(args) == 0
    first = pl.read_parquet(out / "stages.parquet")
    assert main([*args, "--overwrite", "--service-level", "0.99"]) == 0
    second = pl.read_parquet(out / "stages.parquet")
    assert (second["safety_stock"] >= first["safety_stock"]).all()
    assert not (second["safety_stock"] == first["safety_stock"]).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_console_script_reports_bad_input(tmp_path):
    stages_path, _ = _write_catalog(tmp_path)
    command = Path(sys.executable).with_name("meio")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "meio.cli"]
    done = subprocess.run(
        [*argv, "optimize", "--stages", str(stages_path), "--arcs", str(tmp_path / "none.csv"),
         "--output", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 2
    assert "arcs.-: file not found" in done.stderr
    assert not (tmp_path / "run").exists()


def test_command_start_leaves_scipy_stats_to_the_fitted_families():
    """Every ``meio`` command and Dask worker imports meio; scipy.stats alone took ~1 s of that."""
    code = "import sys, meio.cli; print('scipy.stats' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_generate_then_optimize(tmp_path):
    catalog = tmp_path / "catalog"
    assert main(["generate", "--networks", "40", "--shape", "tree", "--seed", "3",
                 "--output", str(catalog)]) == 0
    stages = pl.read_parquet(catalog / "stages.parquet")
    assert stages["network"].n_unique() == 40
    assert json.loads((catalog / "manifest.json").read_text())["generated"]["seed"] == 3
    assert main(["optimize", "--stages", str(catalog / "stages.parquet"), "--arcs",
                 str(catalog / "arcs.parquet"), "--model", "single", "--output",
                 str(tmp_path / "run")]) == 0
    assert pl.read_parquet(tmp_path / "run" / "stages.parquet").height == stages.height


def test_generate_rejects_bad_arguments(tmp_path, capsys):
    assert main(["generate", "--networks", "-1", "--output", str(tmp_path / "c")]) == 2
    assert "generate.-: networks must be" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(("flag", "value", "rule"), [
    ("--slp-starts", "0", "config.slp_starts: must be a whole number >= 1, got 0"),
    ("--mip-node-limit", "-5", "config.mip_node_limit: must be a whole number >= 0, got -5"),
    ("--time-limit", "0", "config.time_limit: must be > 0 seconds, got 0.0"),
    ("--bound-iterations", "-1", "config.bound_iterations: must be a whole number >= 0, got -1"),
    ("--exact-node-limit", "-1", "config.exact_node_limit: must be a whole number >= 0, got -1"),
])
def test_optimize_rejects_bad_general_network_limits(tmp_path, capsys, flag, value, rule):
    stages, arcs = _write_catalog(tmp_path)
    output = tmp_path / "run"
    argv = ["optimize", "--stages", str(stages), "--arcs", str(arcs), "--model", "gsm",
            flag, value, "--output", str(output)]
    assert main(argv) == 2
    assert rule in capsys.readouterr().err
    assert not output.exists()


def test_config_file_limits_reach_the_general_solver(tmp_path):
    # A config sets the general-network limits; a tiny node budget still gives a valid plan
    # and the same plan as the Python API with the same limits.
    stages, arcs = _write_catalog(tmp_path)
    config = tmp_path / "run.toml"
    config.write_text(f'[optimize]\nstages = "{stages}"\narcs = "{arcs}"\nmodel = "gsm"\n'
                      f'slp_starts = 4\nmip_node_limit = 3\noutput = "{tmp_path / "run"}"\n')
    assert main(["optimize", "--config", str(config)]) == 0
    plan = meio.optimize(meio.read_network(stages, arcs), "gsm", slp_starts=4, mip_node_limit=3)
    assert (plan.networks["method"] != "tree_dp").any()
    written = pl.read_parquet(tmp_path / "run" / "networks.parquet")
    assert written["safety_stock_cost"].to_list() == plan.networks["safety_stock_cost"].to_list()


def test_bound_iterations_flag_reaches_the_bound(tmp_path):
    # Without the MIP, the lower bound of general networks is the envelope's with
    # --bound-iterations 0 and the (larger) Lagrangian one by default.
    stages, arcs = generate_catalog(6, shape="dag", seed=3)
    stages.write_parquet(tmp_path / "stages.parquet")
    arcs.write_parquet(tmp_path / "arcs.parquet")
    argv = ["optimize", "--stages", str(tmp_path / "stages.parquet"), "--arcs",
            str(tmp_path / "arcs.parquet"), "--model", "gsm", "--slp-starts", "4",
            "--bound-iterations", "0", "--output", str(tmp_path / "run")]
    assert main(argv) == 0
    written = pl.read_parquet(tmp_path / "run" / "networks.parquet")
    network = meio.read_network(stages, arcs)
    envelope = meio.optimize(network, "gsm", slp_starts=4, bound_iterations=0).networks
    default = meio.optimize(network, "gsm", slp_starts=4).networks
    assert written["lower_bound"].to_list() == envelope["lower_bound"].to_list()
    general = (envelope["method"] != "tree_dp").to_numpy()
    assert general.any()
    assert (default["lower_bound"].to_numpy()[general]
            > envelope["lower_bound"].to_numpy()[general]).any()


def _progress_lines(monkeypatch, terminal: bool, events: list[tuple], times=range(0, 10_000, 10),
                    **totals) -> list[str]:
    """Lines of a :class:`TaskProgress` fed ``(weight, kept, total)`` events, at the clock
    readings ``times`` (the start, then each computed task's end; 10 s apart by default)."""
    ticks = iter(times)
    monkeypatch.setattr(jobs.time, "perf_counter", lambda: float(next(ticks)))
    output = io.StringIO()
    console = Console(file=output, force_terminal=terminal, width=200)
    with TaskProgress(console, "gsm: partitions", **totals) as progress:
        for weight, kept, total in events:
            progress.advance(total, weight=weight, kept=kept)
    monkeypatch.undo()
    return output.getvalue().splitlines()


def test_progress_in_a_log_is_a_line_per_task_with_the_pace_of_the_computed_work(monkeypatch):
    # 300 stages kept, then 100 computed in the first 10 s: 600 left at 10 s per 100 stages.
    lines = _progress_lines(monkeypatch, False, [(300.0, True, None), (100.0, False, None),
                                                 (596.0, False, None)],
                            total=3, total_weight=1000.0)
    assert lines == [
        "gsm: partitions 2/3 (1 kept from the interrupted run), 0:00:10 elapsed, 40% of the work "
        "done, about 0:01:00 left",
        "gsm: partitions 3/3 (1 kept from the interrupted run), 0:00:20 elapsed, 99% of the work "
        "done, about 0:00:00 left",
    ]


def test_progress_on_two_slots_counts_the_running_tasks_work(monkeypatch):
    # Six 10-s tasks of 100 stages on 2 slots end in pairs at 10, 20 and 30 s. At the first
    # end the other task has run 10 s too: 400 stages are left after it, 20 s on both slots
    # (the pace alone, 100 stages per 10 s done, would say 50 s).
    lines = _progress_lines(monkeypatch, False, [(100.0, False, None)] * 6,
                            times=[0, 10, 10, 20, 20, 30, 30], total=6, total_weight=600.0,
                            slots=2)
    left = [line.split("about ")[1] for line in lines]
    assert left == ["0:00:20 left", "0:00:20 left", "0:00:10 left", "0:00:10 left",
                    "0:00:00 left", "0:00:00 left"]


def test_progress_counts_tasks_when_only_they_know_the_total(monkeypatch):
    lines = _progress_lines(monkeypatch, False, [(1.0, False, 4), (1.0, False, 4)])
    assert lines == ["gsm: partitions 1/4, 0:00:10 elapsed, 25% of the work done, about 0:00:30 left",
                     "gsm: partitions 2/4, 0:00:20 elapsed, 50% of the work done, about 0:00:20 left"]


def test_progress_of_a_run_with_only_kept_tasks_says_so_once(monkeypatch):
    lines = _progress_lines(monkeypatch, False, [(1.0, True, None)] * 3, total=3)
    assert lines == ["gsm: partitions 3/3 kept from the interrupted run"]


def test_progress_on_a_terminal_is_a_bar_not_lines(monkeypatch):
    lines = _progress_lines(monkeypatch, True, [(1.0, False, None)] * 2, total=2)
    assert not any("of the work done" in line for line in lines)
    assert any("2/2" in line and "━" in line for line in lines)
