"""Every rule of the data contract: the bad row, the message, exit status 2, nothing written."""

from __future__ import annotations

import polars as pl
import pytest

from meio.cli import main
from tests.tables import small_catalog


def _run(tmp_path, stages, arcs, model="single"):
    stages_path, arcs_path = tmp_path / "stages.parquet", tmp_path / "arcs.parquet"
    stages.write_parquet(stages_path)
    arcs.write_parquet(arcs_path)
    out = tmp_path / "run"
    status = main(["optimize", "--stages", str(stages_path), "--arcs", str(arcs_path),
                   "--model", model, "--output", str(out)])
    return status, out


def _set(frame: pl.DataFrame, row: int, column: str, value) -> pl.DataFrame:
    values = frame[column].to_list() if column in frame.columns else [None] * frame.height
    values[row] = value
    return frame.with_columns(pl.Series(column, values, strict=False))


STAGE_RULES = [
    # (column, bad value on row 1 = network A stage r1, expected words)
    ("lead_time", -1.0, "stages.lead_time: must be >= 0"),
    ("lead_time", None, "stages.lead_time: must not be null"),
    ("lead_time", float("nan"), "stages.lead_time: must be a finite number"),
    ("lead_time_sd", float("inf"), "stages.lead_time_sd: must be a finite number"),
    ("lead_time_sd", -0.5, "stages.lead_time_sd: must be >= 0"),
    ("holding_cost", -2.0, "stages.holding_cost: must be >= 0"),
    ("holding_cost", None, "stages.holding_cost: must be given"),
    ("demand_mean", -3.0, "stages.demand_mean: must be >= 0"),
    ("demand_sd", -1.0, "stages.demand_sd: must be >= 0"),
    ("service_level", 1.0, "stages.service_level: must lie strictly between 0 and 1"),
    ("service_level", 0.0, "stages.service_level: must lie strictly between 0 and 1"),
    ("fill_rate", 1.5, "stages.fill_rate: must lie strictly between 0 and 1"),
    ("max_service_time", -1.0, "stages.max_service_time: must be >= 0"),
    ("max_service_time", 1.5, "stages.max_service_time: must be a whole number"),
    ("external_inbound_service_time", 0.25, "stages.external_inbound_service_time: must be a whole"),
    ("stockout_cost", -1.0, "stages.stockout_cost: must be >= 0"),
    ("review_period", 0.5, "stages.review_period: must be >= 1"),
    ("unit_cost", -1.0, "stages.unit_cost: must be >= 0"),
    ("stage", "", "stages.stage: id must not be empty"),
]


@pytest.mark.parametrize(("column", "value", "expected"), STAGE_RULES)
def test_stage_rule(tmp_path, capsys, column, value, expected):
    stages, arcs = small_catalog()
    status, out = _run(tmp_path, _set(stages, 1, column, value), arcs)
    message = capsys.readouterr().err
    assert status == 2
    assert expected in message
    assert "(1 row" in message
    if column != "stage":
        assert "network 'A' stage 'r1'" in message
    assert not out.exists()
    assert not list(tmp_path.glob(".run*"))


MODEL_RULES = [
    # (model, column, bad value on network A stage r1, expected words): what a model would ignore
    ("gsm", "fill_rate", 0.97, "stages.fill_rate: the gsm model sizes for cycle service levels"),
    ("gsm", "service_level", 0.4, "stages.service_level: the gsm model's safety stock k sqrt(tau) "
     "needs a safety factor >= 0: must be >= 0.5"),
    ("ssm", "review_period", 2.0, "stages.review_period: the ssm model reviews every period; must be 1"),
    ("ssm", "lead_time_sd", 0.5, "stages.lead_time_sd: the ssm model assumes fixed lead times"),
]


@pytest.mark.parametrize(("model", "column", "value", "expected"), MODEL_RULES)
def test_model_rejects_what_it_would_ignore(tmp_path, capsys, model, column, value, expected):
    stages, arcs = small_catalog()
    status, out = _run(tmp_path, _set(stages, 1, column, value), arcs, model)
    message = capsys.readouterr().err
    assert status == 2
    assert expected in message and "(1 row; first: network 'A' stage 'r1')" in message
    assert not out.exists() and not list(tmp_path.glob(".run*"))
    assert _run(tmp_path, stages, arcs, model)[0] == 0


def test_ssm_rejects_a_variable_inbound_lane(tmp_path, capsys):
    """A lane's transit deviation is the downstream stage's lead-time variability (docs/design.md)."""
    stages, arcs = small_catalog()
    lanes = arcs.with_columns(lead_time_sd=pl.Series([0.0, 1.5]))
    status, _ = _run(tmp_path, stages, lanes, "ssm")
    assert status == 2
    assert "stages.lead_time_sd: the ssm model assumes fixed lead times" in capsys.readouterr().err
    assert _run(tmp_path, stages, lanes, "gsm")[0] == 0


def test_missing_required_column(tmp_path, capsys):
    stages, arcs = small_catalog()
    status, out = _run(tmp_path, stages.drop("lead_time"), arcs)
    assert status == 2
    assert "stages.lead_time: required column is missing" in capsys.readouterr().err
    assert not out.exists()


def test_mistyped_column(tmp_path, capsys):
    stages, arcs = small_catalog()
    stages = stages.with_columns(pl.col("lead_time").cast(pl.String))
    status, _ = _run(tmp_path, stages, arcs)
    assert status == 2
    assert "stages.lead_time: must be numeric, found column type String" in capsys.readouterr().err


def test_duplicate_stage(tmp_path, capsys):
    stages, arcs = small_catalog()
    status, _ = _run(tmp_path, pl.concat([stages, stages.slice(1, 1)]), arcs)
    message = capsys.readouterr().err
    assert status == 2
    assert "stages.stage: (network, stage) must be unique (2 rows" in message
    assert "network 'A' stage 'r1'" in message


def test_network_without_demand(tmp_path, capsys):
    stages, arcs = small_catalog()
    stages = stages.with_columns(
        pl.when(pl.col("network") == "B").then(0.0).otherwise(pl.col(c)).alias(c)
        for c in ("demand_mean", "demand_sd")
    )
    status, _ = _run(tmp_path, stages, arcs)
    message = capsys.readouterr().err
    assert status == 2
    assert "every network needs at least one stage with external demand (1 row" in message
    assert "network 'B' stage 'x'" in message


ARC_RULES = [
    (lambda a: _set(a, 0, "downstream", "w"), "arcs.downstream: an arc must not connect a stage to itself",
     "network 'A' arc 'w'->'w'"),
    (lambda a: _set(a, 1, "upstream", "nowhere"), "arcs.upstream: must name a stage of the same network",
     "network 'A' arc 'nowhere'->'r2'"),
    (lambda a: _set(a, 1, "downstream", "x"), "arcs.downstream: must name a stage of the same network",
     "network 'A' arc 'w'->'x'"),
    (lambda a: _set(a, 0, "quantity", 0.0), "arcs.quantity: must be > 0", "network 'A' arc 'w'->'r1'"),
    (lambda a: _set(a, 0, "quantity", -2.0), "arcs.quantity: must be > 0", "network 'A' arc 'w'->'r1'"),
    (lambda a: _set(a, 0, "network", None), "arcs.network: id must not be empty", ""),
    (lambda a: pl.concat([a, a.slice(0, 1)]),
     "arcs.downstream: (network, upstream, downstream) must be unique", "network 'A' arc 'w'->'r1'"),
    (lambda a: a.drop("upstream"), "arcs.upstream: required column is missing", ""),
]


@pytest.mark.parametrize(("corrupt", "expected", "ids"), ARC_RULES)
def test_arc_rule(tmp_path, capsys, corrupt, expected, ids):
    stages, arcs = small_catalog()
    status, out = _run(tmp_path, stages, corrupt(arcs))
    message = capsys.readouterr().err
    assert status == 2
    assert expected in message
    assert ids in message
    assert not out.exists()


def test_cycle(tmp_path, capsys):
    stages, arcs = small_catalog()
    cyclic = pl.concat([arcs, pl.DataFrame({"network": ["A", "A"], "upstream": ["r1", "r2"],
                                            "downstream": ["r2", "w"]})])
    status, _ = _run(tmp_path, stages, cyclic)
    message = capsys.readouterr().err
    assert status == 2
    assert "arcs.downstream: arcs must not form a cycle; these stages lie on one (3 rows" in message
    assert "network 'A' stage 'r1'" in message


def test_holding_rate_needs_unit_cost(tmp_path, capsys):
    stages, arcs = small_catalog()
    stages = stages.with_columns(holding_cost=pl.lit(None, pl.Float64))
    stages.write_parquet(tmp_path / "s.parquet")
    arcs.write_parquet(tmp_path / "a.parquet")
    status = main(["optimize", "--stages", str(tmp_path / "s.parquet"), "--arcs",
                   str(tmp_path / "a.parquet"), "--model", "single", "--holding-rate", "0.2",
                   "--output", str(tmp_path / "run")])
    assert status == 2
    assert "stages.unit_cost: must be given where holding_cost is absent (4 rows" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "expected"),
    [("missing.parquet", "stages.-: file not found"), ("stages.xlsx", "unsupported file format '.xlsx'")],
)
def test_bad_files(tmp_path, capsys, name, expected):
    (tmp_path / "stages.xlsx").write_text("not a table")
    status = main(["optimize", "--stages", str(tmp_path / name), "--model", "single",
                   "--output", str(tmp_path / "run")])
    assert status == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_corrupt_parquet(tmp_path, capsys):
    (tmp_path / "stages.parquet").write_bytes(b"PAR1 definitely not parquet")
    status = main(["optimize", "--stages", str(tmp_path / "stages.parquet"), "--model", "single",
                   "--output", str(tmp_path / "run")])
    assert status == 2
    assert "stages.-: cannot read" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path, capsys):
    stages, arcs = small_catalog()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("previous results")
    status, out = _run(tmp_path, stages, arcs)
    assert status == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "previous results"


def test_unknown_config_key(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text("[optimize]\nmodel = 'single'\nservcie_level = 0.9\n")
    status = main(["optimize", "--config", str(config)])
    assert status == 2
    assert "config.optimize: unknown key(s) servcie_level" in capsys.readouterr().err
