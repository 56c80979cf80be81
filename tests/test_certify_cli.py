"""``meio optimize --certify`` end to end: the run directory, the summary, the same numbers as the
API whatever the partitions, and bad certification flags refused before anything is written."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import meio
from meio.cli import main
from meio.cluster import run_catalog
from meio.config import parse_config
from meio.generate import generate_catalog

OPTIONS = {"precision": 0.05, "rounds": 2, "seed": 3}


def _catalog(tmp_path):
    stages, arcs = generate_catalog(8, shape="mixed", seed=2, stages_per_network=5)
    stages.write_parquet(tmp_path / "stages.parquet")
    arcs.write_parquet(tmp_path / "arcs.parquet")
    return stages, arcs


def test_optimize_certify_writes_the_certified_plan(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    out = tmp_path / "run"
    status = main(["optimize", "--stages", str(tmp_path / "stages.parquet"), "--arcs",
                   str(tmp_path / "arcs.parquet"), "--model", "gsm", "--certify", "--certify-precision",
                   "0.05", "--certify-seed", "3", "--demand", "poisson", "--output", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "certified:" in printed and "demand stages meet their targets" in printed
    networks = pl.read_parquet(out / "networks.parquet")
    for column in ("model_cost", "safety_stock_cost", "uplift_pct", "certified", "baseline_cost",
                   "saving_pct"):
        assert column in networks.columns
    expected = meio.optimize(meio.read_network(stages, arcs), "gsm",
                             certify={"precision": 0.05, "seed": 3, "demand": "poisson"})
    np.testing.assert_allclose(networks["safety_stock_cost"].to_numpy(),
                               expected.networks["safety_stock_cost"].to_numpy())
    np.testing.assert_allclose(networks["baseline_cost"].to_numpy(),
                               expected.networks["baseline_cost"].to_numpy())


def test_certify_through_partitions_equals_one_call(tmp_path):
    """Three partitions through the cluster task (the path of every Dask worker) give the levels of
    one ``meio.optimize`` call."""
    stages, arcs = _catalog(tmp_path)
    result = run_catalog(tmp_path / "stages.parquet", tmp_path / "arcs.parquet", tmp_path / "run",
                         model="single", service_level=0.95, options={"certify": OPTIONS}, partitions=3)
    assert len(result.manifest["partitions"]) == 3
    written = pl.read_parquet(tmp_path / "run" / "stages" / "*.parquet").sort("network", "stage")
    expected = meio.optimize(meio.read_network(stages, arcs), "single", certify=OPTIONS).stages
    np.testing.assert_array_equal(written["base_stock"].to_numpy(),
                                  expected.sort("network", "stage")["base_stock"].to_numpy())


@pytest.mark.parametrize(("flags", "column"), [
    (["--demand", "poisson"], "demand"),
    (["--certify", "--certify-precision", "0.7"], "certify.precision"),
    (["--certify", "--demand", "history"], "demand"),
])
def test_bad_certification_flags_exit_2_and_write_nothing(tmp_path, capsys, flags, column):
    _catalog(tmp_path)
    out = tmp_path / "run"
    status = main(["optimize", "--stages", str(tmp_path / "stages.parquet"), "--arcs",
                   str(tmp_path / "arcs.parquet"), "--output", str(out), *flags])
    assert status == 2
    assert column in capsys.readouterr().err
    assert not out.exists()


def test_toml_certify_keys_reach_the_certification():
    config = parse_config('[optimize]\nmodel = "single"\ncertify = true\ndemand = "poisson"\n'
                          'certify_precision = 0.02\ncertify_seed = 4\n', "test.toml")
    assert config.optimize.certify_options() == {"demand": "poisson", "precision": 0.02, "confidence": 0.95,
                                                 "seed": 4}
    assert parse_config("[optimize]\n", "test.toml").optimize.certify_options() is None
