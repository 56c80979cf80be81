"""The `meio` command end to end on real files: run directory contents, manifest, summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

from meio.cli import main
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
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "networks.parquet", "stages.parquet"]
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
