"""`meio simulate` and `meio optimize --verify` end to end on real files."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import meio
from meio.cli import main
from tests.tables import random_catalog


def _catalog(tmp_path: Path) -> tuple[Path, Path]:
    stages, arcs = random_catalog(8, networks=10, max_stages=5)
    stages_path, arcs_path = tmp_path / "stages.parquet", tmp_path / "arcs.csv"
    stages.write_parquet(stages_path)
    arcs.write_csv(arcs_path)
    return stages_path, arcs_path


def _optimize(tmp_path: Path, stages: Path, arcs: Path) -> Path:
    run = tmp_path / "run"
    assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run)]) == 0
    return run


def test_simulate_writes_run_directory(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
                   "--periods", "200", "--replications", "3", "--seed", "4", "--output", str(out)])
    assert status == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "networks.parquet", "report.html",
                                                     "stages.parquet"]
    simulated = pl.read_parquet(out / "stages.parquet")
    judged = simulated.filter(pl.col("target_met").is_not_null())
    missing = judged.filter(~pl.col("target_met")).height
    assert judged.height > 0
    assert (f"{judged.height - missing:,} of {judged.height:,} demand stages meet their targets, "
            f"{missing:,} miss") in printed
    for measure in ("fill_rate", "cycle_service_level", "mean_on_hand", "mean_backorders", "mean_pipeline"):
        for suffix in ("", "_ci_low", "_ci_high"):
            assert measure + suffix in simulated.columns
    for column in ("network", "stage", "base_stock", "target_service_level", "target_fill_rate",
                   "target_met"):
        assert column in simulated.columns
    plan = pl.read_parquet(run / "stages.parquet")
    keys = ("network", "stage", "base_stock")
    assert simulated.select(keys).equals(plan.select(keys))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"] == "simulate" and manifest["config"]["options"]["seed"] == 4
    assert manifest["files"]["stages"]["rows"] == simulated.height
    again = meio.simulate((stages, arcs), run, periods=200, replications=3, seed=4).stages
    assert again.equals(simulated)


def test_simulate_in_partitions_gives_the_same_numbers(tmp_path):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    common = ["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
              "--periods", "150", "--replications", "3", "--seed", "2"]
    assert main([*common, "--output", str(tmp_path / "one")]) == 0
    assert main([*common, "--partitions", "4", "--output", str(tmp_path / "four")]) == 0
    assert sorted(p.name for p in (tmp_path / "four" / "stages").iterdir()) == [
        f"part-{k:05d}.parquet" for k in range(4)]
    one, four = (pl.read_parquet(tmp_path / "one" / "stages.parquet"),
                 pl.read_parquet(tmp_path / "four" / "stages" / "*.parquet"))
    assert one.equals(four)
    networks = [pl.read_parquet(path).drop("seconds") for path in
                (tmp_path / "one" / "networks.parquet", tmp_path / "four" / "networks" / "*.parquet")]
    assert networks[0].equals(networks[1])
    manifest = json.loads((tmp_path / "four" / "manifest.json").read_text())
    assert manifest["config"]["partitions"] == 4 and manifest["inputs"]["stages_rows"] == one.height
    assert manifest["cluster"]["workers"] >= 1  # more than one partition: a local Dask cluster ran them


def test_simulate_bad_input_exits_2_and_writes_nothing(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    policy = tmp_path / "policy.csv"
    pl.DataFrame({"network": ["n0"], "stage": ["s0"], "level": [3.0]}).write_csv(policy)
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(policy),
                   "--output", str(out)])
    assert status == 2
    error = capsys.readouterr().err
    assert error.strip() == ("meio: error: policy.base_stock: required column is missing "
                             "(or give echelon_base_stock)")
    assert not out.exists()
    run = _optimize(tmp_path, stages, arcs)
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
                   "--periods", "0", "--output", str(out)])
    assert status == 2 and "config.periods: must be a whole number >= 1" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".sim*"))


def test_policy_from_partitioned_run_directory(tmp_path):
    stages, arcs = _catalog(tmp_path)
    plan = meio.optimize((stages, arcs), "gsm")
    run = tmp_path / "partitioned"
    (run / "stages").mkdir(parents=True)
    ids = sorted(set(plan.stages["network"]))
    for k, chunk in enumerate((ids[:4], ids[4:])):
        part = plan.stages.filter(pl.col("network").is_in(chunk))
        part.write_parquet(run / "stages" / f"part-{k:05d}.parquet")
    options = {"periods": 100, "replications": 2, "seed": 3}
    from_parts = meio.simulate((stages, arcs), run, **options).stages
    assert from_parts.drop("policy_model").equals(meio.simulate((stages, arcs), plan, **options).stages
                                                  .drop("policy_model"))


def test_optimize_verify_reports_missing_stages(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs),
                   "--output", str(tmp_path / "run"), "--model", "single", "--verify",
                   "--verify-periods", "300", "--verify-replications", "4"])
    assert status == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "simulated" in printed and "demand stages meet their targets" in printed
    verified = meio.simulate((stages, arcs), tmp_path / "run", periods=300, replications=4, seed=0)
    missing = verified.stages.filter(pl.col("target_met") == False)  # noqa: E712
    assert f"{missing.height:,} miss" in printed


def test_simulate_rejects_history_without_its_columns(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    history = tmp_path / "history.csv"
    pl.DataFrame({"stage": ["s0"], "demand": [3.0]}).write_csv(history)
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
                   "--demand", "history", "--history", str(history), "--output", str(out)])
    assert status == 2
    assert "history.network: required column is missing" in capsys.readouterr().err
    assert not out.exists()


def test_simulate_rejects_policy_rows_of_unknown_networks(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    policy = pl.read_parquet(run / "stages.parquet").select("network", "stage", "base_stock")
    extra = pl.DataFrame({"network": ["zz"], "stage": ["s0"], "base_stock": [5.0]})
    policy_path = tmp_path / "policy.parquet"
    pl.concat([policy, extra]).write_parquet(policy_path)
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy",
                   str(policy_path), "--partitions", "2", "--output", str(out)])
    assert status == 2
    assert "policy.network: must name a network of the stages table (1 row; first: network 'zz'" in (
        " ".join(capsys.readouterr().err.split()))
    assert not out.exists()


def test_verify_options_are_checked_before_anything_is_written(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = tmp_path / "run"
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run),
                   "--verify", "--verify-periods", "-1"])
    assert status == 2
    assert "config.periods: must be a whole number >= 1" in capsys.readouterr().err
    assert not run.exists()


def _history(stages: Path, path: Path) -> Path:
    """Five observed periods for every demand stage of the catalog."""
    demand = pl.read_parquet(stages).filter(pl.col("demand_mean") > 0)
    history = demand.select("network", "stage", "demand_mean").join(
        pl.DataFrame({"k": [0.0, 0.5, 1.0, 1.5, 2.0]}), how="cross"
    ).select("network", "stage", demand=pl.col("demand_mean") * pl.col("k"))
    history.write_csv(path)
    return path


def test_history_is_read_partition_by_partition(tmp_path):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    history = _history(stages, tmp_path / "history.csv")
    out = tmp_path / "sim"
    assert main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
                 "--demand", "history", "--history", str(history), "--periods", "120",
                 "--replications", "2", "--seed", "6", "--partitions", "3", "--output", str(out)]) == 0
    expected = meio.simulate((stages, arcs), run, periods=120, replications=2, seed=6, demand="history",
                             history=history).stages
    assert pl.read_parquet(out / "stages" / "*.parquet").equals(expected)


def test_simulate_rejects_history_rows_of_unknown_networks(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    history = _history(stages, tmp_path / "history.csv")
    pl.concat([pl.read_csv(history, schema_overrides={"network": pl.String, "stage": pl.String}),
               pl.DataFrame({"network": ["zz"], "stage": ["s0"], "demand": [1.0]})]).write_csv(history)
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
                   "--demand", "history", "--history", str(history), "--output", str(out)])
    assert status == 2
    assert "history.network: must name a network of the stages table (1 row; first: network 'zz'" in (
        " ".join(capsys.readouterr().err.split()))
    assert not out.exists() and not list(tmp_path.glob(".sim*"))


def test_verify_runs_partition_by_partition_and_keeps_its_output_on_request(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run, checked = tmp_path / "run", tmp_path / "checked"
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run),
                   "--partitions", "3", "--verify", "--verify-periods", "150", "--verify-replications", "3",
                   "--verify-seed", "5", "--verify-output", str(checked)])
    assert status == 0
    assert f"results: {checked}/" in " ".join(capsys.readouterr().out.split())
    expected = meio.simulate((stages, arcs), run, periods=150, replications=3, seed=5, warmup=100).stages
    assert pl.read_parquet(checked / "stages" / "*.parquet").equals(expected)
    manifest = json.loads((checked / "manifest.json").read_text())
    assert manifest["verifies"] == str(run.resolve()) and len(manifest["partitions"]) == 3
    assert manifest["cluster"]["workers"] >= 1  # on the run's local cluster, not in the CLI process


def test_verify_leaves_nothing_behind_by_default(tmp_path):
    stages, arcs = _catalog(tmp_path)
    run = tmp_path / "run"
    assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run),
                 "--verify", "--verify-periods", "50", "--verify-replications", "2"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arcs.csv", "run", "stages.parquet"]


def test_policy_missing_a_stage_in_a_late_partition_exits_2(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    policy = pl.read_parquet(run / "stages.parquet").select("network", "stage", "base_stock")
    last = policy.sort("network", "stage").tail(1)
    policy.join(last, on=["network", "stage"], how="anti").write_parquet(tmp_path / "policy.parquet")
    out = tmp_path / "sim"
    status = main(["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy",
                   str(tmp_path / "policy.parquet"), "--partitions", "3", "--output", str(out)])
    assert status == 2
    network, stage, _ = last.row(0)
    assert (f"policy.base_stock: every stage of the catalog needs a base-stock level (1 row; first: "
            f"network '{network}' stage '{stage}')") in " ".join(capsys.readouterr().err.split())
    assert not out.exists() and not list(tmp_path.glob(".sim*"))


@pytest.mark.parametrize("model", ["single", "gsm"])
def test_fractional_review_period_stops_verify_before_anything_is_written(tmp_path, capsys, model):
    stages, arcs = _catalog(tmp_path)
    frame = pl.read_parquet(stages)
    last = frame.sort("network", "stage").row(-1, named=True)
    frame.with_columns(review_period=pl.when((pl.col("network") == last["network"])
                                             & (pl.col("stage") == last["stage"])).then(2.5).otherwise(1.0)
                       ).write_parquet(stages)
    run = tmp_path / "run"
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run),
                   "--model", model, "--partitions", "3", "--verify"])
    assert status == 2
    assert (f"stages.review_period: must be a whole number of periods >= 1 to simulate (reviews happen at "
            f"period boundaries: round it, or plan in a finer period) (1 row; first: network "
            f"'{last['network']}' stage '{last['stage']}')") in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arcs.csv", "stages.parquet"]
    assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run)]) == 0


def test_verify_of_a_single_plan_says_every_target_is_met(tmp_path, capsys):
    """Single stages of several lead times and review periods, planned by `single`: --verify
    finds every demand stage on target (the plan is sized for the simulator's measure)."""
    stages = pl.DataFrame({"network": [f"n{k}" for k in range(6)], "stage": ["s"] * 6,
                           "lead_time": [1.0, 4.0, 2.0, 7.0, 3.0, 5.0], "holding_cost": [1.0] * 6,
                           "demand_mean": [50.0] * 6, "demand_sd": [10.0] * 6,
                           "service_level": [0.9, 0.95, 0.9, 0.98, 0.9, 0.95],
                           "review_period": [1.0, 1.0, 2.0, 3.0, 4.0, 1.0]})
    path = tmp_path / "stages.parquet"
    stages.write_parquet(path)
    assert main(["optimize", "--stages", str(path), "--model", "single", "--output", str(tmp_path / "run"),
                 "--verify", "--verify-periods", "4000", "--verify-replications", "8"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "6 of 6 demand stages meet their targets, 0 miss" in printed


def _with_review_period(stages: Path, value: float) -> None:
    pl.read_parquet(stages).with_columns(review_period=pl.lit(value)).write_parquet(stages)


def test_verify_judges_every_plan_with_the_stages_review_periods(tmp_path):
    """Every model plans for the table's review periods, so --verify simulates them."""
    stages, arcs = _catalog(tmp_path)
    _with_review_period(stages, 3.0)
    options = {"periods": 120, "replications": 2, "seed": 0, "warmup": 100}
    for model in ("gsm", "single"):
        run, checked = tmp_path / f"run-{model}", tmp_path / f"checked-{model}"
        assert main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--model", model,
                     "--output", str(run), "--verify", "--verify-periods", "120",
                     "--verify-replications", "2", "--verify-output", str(checked)]) == 0
        expected = meio.simulate((stages, arcs), run, **options).stages
        assert pl.read_parquet(checked / "stages.parquet").equals(expected)
        other = meio.simulate((stages, arcs), run, review_period=False, **options).stages
        assert not other.equals(expected)
        text = (checked / "manifest.json").read_text()
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the manifest"))


def test_simulate_can_ignore_review_periods(tmp_path):
    stages, arcs = _catalog(tmp_path)
    run = _optimize(tmp_path, stages, arcs)
    _with_review_period(stages, 2.5)
    out = tmp_path / "sim"
    common = ["simulate", "--stages", str(stages), "--arcs", str(arcs), "--policy", str(run),
              "--periods", "80", "--replications", "2", "--output", str(out)]
    assert main(common) == 2 and not out.exists()
    assert main([*common, "--ignore-review-period"]) == 0
    expected = meio.simulate((stages, arcs), run, periods=80, replications=2, review_period=False).stages
    assert pl.read_parquet(out / "stages.parquet").equals(expected)


@pytest.mark.parametrize(("extra", "message"), [
    (["--verify-output", "{run}"], "config.verify_output: must be a directory apart from --output"),
    (["--verify-output", "{run}/inside"], "config.verify_output: must be a directory apart from --output"),
    (["--verify-output", "{tmp}"], "config.verify_output: must be a directory apart from --output"),
])
def test_verify_output_apart_from_the_plan(tmp_path, capsys, extra, message):
    stages, arcs = _catalog(tmp_path)
    run = tmp_path / "run"
    flags = [value.format(run=run, tmp=tmp_path) for value in extra]
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output", str(run),
                   "--verify", *flags])
    assert status == 2 and message in capsys.readouterr().err
    assert not run.exists()


def test_verify_output_needs_verify(tmp_path, capsys):
    stages, arcs = _catalog(tmp_path)
    status = main(["optimize", "--stages", str(stages), "--arcs", str(arcs), "--output",
                   str(tmp_path / "run"), "--verify-output", str(tmp_path / "checked")])
    assert status == 2 and "config.verify_output: needs --verify" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
