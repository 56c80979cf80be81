"""The stages table's ``demand_distribution`` in every model and the simulator (docs/design.md §2).

The twin below is written from docs/design.md in plain Python and SciPy, importing nothing of
meio's fitting code: a stage's family is the one law common to the demand streams it serves;
over an exposure of ``T = SI + L - S + R - 1`` periods its demand (mean ``m = mu T``, variance
``v = T sigma^2 + mu^2 sigma_L^2``) is Poisson(m) where ``v = m``, else a negative binomial with
those moments (discrete families), or a gamma with those moments; the level is the least one
whose distribution function reaches the cycle service level (found by scanning the CDF, or by
root finding for the gamma: not by SciPy's ``ppf``), or whose expected shortage per cycle is at
most ``(1 - fill rate) mu R`` (loss by cumulative sums of the pmf, or by integrating the gamma's
survival function).

Simulation tolerances follow tests/test_simulate.py: ``Z = 4`` analytic standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, stats

import meio
from meio.api import net_demand
from meio.cli import main
from meio.engine.simulate import GAMMA, NEGATIVE_BINOMIAL, NO_DEMAND, NORMAL, POISSON, simulate_totals
from meio.io.errors import InputError
from meio.simulation import build_sim_networks, demand_kinds
from tests import plan_reference as twin
from tests.strategies import FAMILIES, catalogs, sd_for, tables

Z = 4.0
DEFAULT_LEVEL = 0.95


# --- the twin -----------------------------------------------------------------------------------

def exposure_law(family: str, mean: float, variance: float):
    """The SciPy law a stage's exposure demand is fitted to, or None where the normal stands."""
    if family == "normal" or mean <= 0.0 or variance <= 0.0:
        return None
    if family == "gamma":
        shape = mean * mean / variance
        return stats.gamma(shape, scale=variance / mean) if shape > 0.0 else None
    if variance <= mean * (1.0 + 1e-9):
        return stats.poisson(mean)
    size = mean * mean / (variance - mean)
    return stats.nbinom(size, mean / variance) if size > 0.0 else None


def _support(law, mean: float, variance: float) -> np.ndarray:
    return np.arange(0.0, math.ceil(mean + 40.0 * math.sqrt(variance) + 40.0))


def csl_level(law, mean: float, variance: float, alpha: float) -> float:
    """Least level whose distribution function reaches ``alpha``."""
    if law.dist.name == "gamma":
        return optimize.brentq(lambda x: law.cdf(x) - alpha, 0.0, mean + 60.0 * math.sqrt(variance),
                               xtol=1e-13 * mean, rtol=1e-15, maxiter=2000)
    support = _support(law, mean, variance)
    return float(support[np.argmax(law.cdf(support) >= alpha)])


def fill_rate_level(law, mean: float, variance: float, shortage: float) -> float:
    """Least level with expected shortage ``E[(X - S)^+] <= shortage``."""
    if law.dist.name == "gamma":
        def loss(level):
            if level <= 0.0:
                return mean - level
            return integrate.quad(law.sf, level, np.inf, epsabs=1e-13, epsrel=1e-13, limit=400)[0]
        return optimize.brentq(lambda s: loss(s) - shortage, mean - shortage - 1.0,
                               mean + 60.0 * math.sqrt(variance), xtol=1e-11 * mean, rtol=1e-14, maxiter=2000)
    support = _support(law, mean, variance)
    pmf = law.pmf(support)
    below, below_weighted = np.cumsum(pmf), np.cumsum(support * pmf)
    # E[(X - S)^+] = m - S + sum_{k <= S} (S - k) p_k, for S = 0, 1, ...; S < 0 gives m - S.
    loss = mean - support + support * below - below_weighted
    if mean <= shortage:
        return float(math.ceil(mean - shortage))
    return float(support[np.argmax(loss <= shortage)])


def family_of(net: dict) -> dict[str, str]:
    """Per stage: the family common to every demand stream it serves, else normal."""
    units = twin._units(net)
    rows = net["stages"]
    demand = [k for k, r in rows.items() if r["demand_mean"] > 0 or r["demand_sd"] > 0]
    out = {}
    for j in rows:
        served = {rows[k].get("demand_distribution") or "normal" for k in demand if units[(j, k)] > 0}
        out[j] = served.pop() if len(served) == 1 else "normal"
    return out


def expected_stock(net: dict, plan: pl.DataFrame, network_id: str) -> dict[str, tuple[float, float]]:
    """Per stage of one network: ``(safety stock, base stock)`` at the plan's net lead times."""
    facts = twin.stage_facts(net, DEFAULT_LEVEL)
    families = family_of(net)
    out = {}
    for j, row in net["stages"].items():
        result = plan.row(by_predicate=(pl.col("network") == network_id) & (pl.col("stage") == j), named=True)
        fact, review = facts[j], row.get("review_period") or 1.0
        exposure = result["net_lead_time"] + (review - 1.0)
        mean = fact["mu"] * exposure
        variance = exposure * fact["sigma"] ** 2 + (fact["mu"] * fact["sigma_L"]) ** 2
        law = exposure_law(families[j], mean, variance)
        if law is None:
            safety = twin.safety_stock(fact, row, result["net_lead_time"])
            out[j] = (safety, mean + safety)
            continue
        alpha = row.get("service_level") or stats.norm.cdf(fact["z"])
        level = csl_level(law, mean, variance, alpha)
        out[j] = (level - mean, level)
    return out


# --- tables --------------------------------------------------------------------------------------

single_stages = st.fixed_dictionaries({
    "family": st.sampled_from(FAMILIES[1:]),
    "lead_time": st.one_of(st.integers(0, 20).map(float), st.floats(0, 20)),
    "lead_time_sd": st.one_of(st.just(0.0), st.floats(0.05, 2)),
    "holding_cost": st.floats(0.1, 5),
    "demand_mean": st.floats(0.2, 300),
    "spread": st.floats(0, 1),
    "service_level": st.floats(0.5, 0.995),
    "max_service_time": st.integers(0, 4),
    "review_period": st.integers(1, 5).map(float),
    "external_inbound_service_time": st.integers(0, 3),
})


def _single_stage_table(rows: list[dict]) -> tuple[pl.DataFrame, list[dict]]:
    """Single-stage networks ``"0"``, ``"1"``, ... and the twin's rows (Poisson sd = sqrt(mean))."""
    table, twins = [], []
    for index, row in enumerate(rows):
        sd = sd_for(row["family"], row["demand_mean"], row["spread"])
        stage = {key: value for key, value in row.items() if key not in ("family", "spread")}
        stage.update(network=str(index), stage="s", demand_sd=sd, demand_distribution=row["family"])
        table.append({**stage, "demand_sd": 0.0 if row["family"] == "poisson" else sd})
        twins.append(stage)
    return pl.DataFrame(table), twins


# --- validation and layout -------------------------------------------------------------------------

def _one_stage(**columns) -> pl.DataFrame:
    base = {"network": ["a", "b"], "stage": ["x", "y"], "lead_time": [2.0, 2.0], "holding_cost": [1.0, 1.0],
            "demand_mean": [4.0, 4.0], "demand_sd": [3.0, 3.0]}
    return pl.DataFrame({**base, **columns})


@pytest.mark.parametrize(("columns", "message"), [
    ({"demand_distribution": ["normal", "lognormal"]},
     "stages.demand_distribution: must be one of normal, poisson, negative_binomial, gamma (null: normal) "
     "(1 row; first: network 'b' stage 'y')"),
    ({"demand_distribution": ["negative_binomial", "normal"], "demand_sd": [2.0, 3.0]},
     "stages.demand_sd: negative_binomial demand needs demand_sd^2 > demand_mean > 0 (variance above the "
     "mean; use demand_distribution poisson where they are equal) (1 row; first: network 'a' stage 'x')"),
    ({"demand_distribution": ["gamma", "gamma"], "demand_mean": [4.0, 0.0]},
     "stages.demand_mean: must be > 0 where demand_sd > 0 with gamma demand (1 row; first: network 'b' "
     "stage 'y')"),
    ({"demand_distribution": ["normal", "poisson"], "demand_mean": [4.0, 0.0]},
     "stages.demand_mean: must be > 0 where demand_sd > 0 with poisson demand"),
])
def test_bad_distributions_are_one_clear_error(columns, message):
    with pytest.raises(InputError) as error:
        meio.read_network(_one_stage(**columns))
    assert str(error.value).startswith(message)


def test_cli_rejects_a_bad_distribution_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "stages.csv"
    _one_stage(demand_distribution=["poisson", "Poisson"]).write_csv(path)
    for model in ("single", "gsm"):
        output = tmp_path / f"run-{model}"
        assert main(["optimize", "--stages", str(path), "--model", model, "--output", str(output)]) == 2
        assert "stages.demand_distribution: must be one of" in capsys.readouterr().err
        assert not output.exists()


def test_missing_and_null_mean_normal_and_poisson_sd_is_sqrt_mean(tmp_path):
    path = tmp_path / "stages.csv"
    path.write_text("network,stage,lead_time,holding_cost,demand_mean,demand_sd,demand_distribution\n"
                    "a,x,1,1,9,5,poisson\nb,y,1,1,9,5,\nc,z,1,1,9,5,gamma\n")
    network = meio.read_network(path)
    assert network.stages["demand_distribution"].to_list() == ["poisson", "normal", "gamma"]
    assert network.stages["demand_sd"].to_list() == [3.0, 5.0, 5.0]
    np.testing.assert_array_equal(network.batch.demand_distribution, [1, 0, 3])
    np.testing.assert_array_equal(network.batch.demand_sd, [3.0, 5.0, 5.0])
    without = meio.read_network(_one_stage())
    np.testing.assert_array_equal(without.batch.demand_distribution, [0, 0])


@settings(max_examples=60, deadline=None)
@given(catalog=catalogs(max_networks=4, max_stages=7, families=FAMILIES))
def test_propagation_kernel_family_matches_twin(catalog):
    stage_rows, arc_rows = catalog
    network = meio.read_network(*tables(stage_rows, arc_rows))
    family = net_demand(network.batch, DEFAULT_LEVEL).demand_family
    rows = network.stages.with_row_index("_row")
    for network_id, net in twin.networks_of(stage_rows, arc_rows).items():
        for stage, expected in family_of(net).items():
            row = rows.row(by_predicate=(pl.col("network") == network_id) & (pl.col("stage") == stage),
                           named=True)
            assert FAMILIES[family[row["_row"]]] == expected, (stage, net)


# --- single and gsm against the twin -------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(rows=st.lists(single_stages, min_size=1, max_size=12))
def test_single_stage_levels_are_the_family_quantiles(rows):
    """Poisson, negative binomial and gamma stages alone: single and gsm hold the twin's quantile
    at the single plan's exposure, and cost the same (nothing to pool: a saving of 0)."""
    table, twins = _single_stage_table(rows)
    network = meio.read_network(table)
    single = meio.optimize(network, "single")
    gsm = meio.optimize(network, "gsm")
    np.testing.assert_allclose(gsm.networks["saving_pct"], 0.0, atol=1e-9)
    for row in twins:
        net = {"stages": {"s": row}, "arcs": []}
        for plan in (single, gsm):
            result = plan.stages.row(by_predicate=pl.col("network") == row["network"], named=True)
            safety, base = expected_stock(net, plan.stages, row["network"])["s"]
            assert result["safety_stock"] == pytest.approx(safety, rel=1e-9, abs=1e-9)
            assert result["base_stock"] == pytest.approx(base, rel=1e-12, abs=1e-9)
            if row["demand_distribution"] != "gamma" and result["net_lead_time"] + row["review_period"] > 1:
                assert result["base_stock"] == round(result["base_stock"])  # a whole level


@settings(max_examples=40, deadline=None)
@given(catalog=catalogs(max_networks=3, families=FAMILIES))
def test_mixed_families_on_networks(catalog):
    """Trees and DAGs with mixed families, quantities and lanes: every stage of both plans holds
    the twin's level at its plan's net lead time, the baseline is the single plan, and the gsm's
    saving is never negative."""
    stage_rows, arc_rows = catalog
    network = meio.read_network(*tables(stage_rows, arc_rows))
    single = meio.optimize(network, "single", service_level=DEFAULT_LEVEL)
    gsm = meio.optimize(network, "gsm", service_level=DEFAULT_LEVEL)
    twin_rows = [{**row, "demand_sd": math.sqrt(row["demand_mean"])}
                 if row["demand_distribution"] == "poisson" else row for row in stage_rows]
    for network_id, net in twin.networks_of(twin_rows, arc_rows).items():
        for plan in (single, gsm):
            for stage, (safety, base) in expected_stock(net, plan.stages, network_id).items():
                result = plan.stages.row(by_predicate=(pl.col("network") == network_id)
                                         & (pl.col("stage") == stage), named=True)
                assert result["safety_stock"] == pytest.approx(safety, rel=1e-9, abs=1e-9), stage
                assert result["base_stock"] == pytest.approx(base, rel=1e-9, abs=1e-9), stage
        row = gsm.networks.row(by_predicate=pl.col("network") == network_id, named=True)
        baseline = single.networks.row(by_predicate=pl.col("network") == network_id, named=True)
        assert row["baseline_cost"] == pytest.approx(baseline["safety_stock_cost"], rel=1e-12)
        assert row["saving_pct"] >= -1e-9
        assert row["safety_stock_cost"] <= row["baseline_cost"] * (1 + 1e-12) + 1e-12


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(single_stages, min_size=1, max_size=6), fill_rate=st.floats(0.8, 0.995))
def test_single_fill_rate_targets_use_the_family_loss(rows, fill_rate):
    """Expected shortage per review cycle at the level: ``(1 - fill rate) mu R`` (the twin's
    least level meeting it: cumulative sums of the pmf, or the integral of the gamma's tail)."""
    for row in rows:
        row["lead_time"] = min(row["lead_time"], 8.0)
        row["demand_mean"] = min(row["demand_mean"], 60.0)
    table, twins = _single_stage_table(rows)
    table = table.drop("service_level").with_columns(fill_rate=pl.lit(fill_rate))
    plan = meio.optimize(meio.read_network(table), "single")
    for row in twins:
        result = plan.stages.row(by_predicate=pl.col("network") == row["network"], named=True)
        exposure = result["net_lead_time"] + (row["review_period"] - 1.0)
        mean = row["demand_mean"] * exposure
        variance = exposure * row["demand_sd"] ** 2 + (row["demand_mean"] * row["lead_time_sd"]) ** 2
        law = exposure_law(row["demand_distribution"], mean, variance)
        if law is None:
            continue
        shortage = (1.0 - fill_rate) * row["demand_mean"] * row["review_period"]
        level = fill_rate_level(law, mean, variance, shortage)
        assert result["base_stock"] == pytest.approx(level, rel=1e-9, abs=1e-9)
        assert result["safety_stock"] == pytest.approx(level - mean, rel=1e-9, abs=1e-9)


def test_gsm_fitted_network_reports_no_bound():
    """A Poisson distribution tree: the DP chose the service times under the normal cost, so the
    network's lower bound and gap are unknown (NaN); a normal network keeps its exact bound."""
    stages = pl.DataFrame({
        "network": ["p"] * 3 + ["n"] * 3, "stage": ["w", "r1", "r2"] * 2, "lead_time": [3.0, 1.0, 1.0] * 2,
        "holding_cost": [1.0, 2.0, 2.0] * 2, "demand_mean": [0.0, 3.0, 5.0] * 2,
        "demand_sd": [0.0, 0.0, 0.0, 0.0, 1.7, 2.2],
        "demand_distribution": ["poisson"] * 3 + ["normal"] * 3,
    })
    arcs = pl.DataFrame({"network": ["p", "p", "n", "n"], "upstream": ["w"] * 4,
                         "downstream": ["r1", "r2"] * 2})
    result = meio.optimize(meio.read_network(stages, arcs), "gsm")
    families = result.stages.sort("network", "stage")["demand_family"].to_list()
    assert families == ["normal"] * 3 + ["poisson"] * 3  # the warehouse w too: its streams' law
    plan = result.networks.sort("network")
    assert plan["method"].to_list() == ["tree_dp", "tree_dp"]
    assert plan["gap"][0] == 0.0 and plan["lower_bound"][0] == plan["safety_stock_cost"][0]
    assert math.isnan(plan["lower_bound"][1]) and math.isnan(plan["gap"][1])


# --- ssm -------------------------------------------------------------------------------------------

def test_ssm_serial_poisson_from_the_column():
    """A Poisson demand stage gets the exact solver's Poisson law without the run option:
    the newsvendor level on Poisson(mu L), the smallest S with F(S) >= p / (p + h)."""
    stages = pl.DataFrame({"network": ["a", "b"], "stage": ["s", "s"], "lead_time": [2.0, 2.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [3.0, 3.0], "demand_sd": [0.0, 1.7],
                           "stockout_cost": [9.0, 9.0], "demand_distribution": ["poisson", "normal"]})
    network = meio.read_network(stages)
    plan = meio.optimize(network, "ssm").stages.sort("network")
    assert plan["base_stock"][0] == stats.poisson(6.0).ppf(0.9)
    normal = meio.optimize(network, "ssm", demand_distribution="normal").stages.sort("network")
    assert plan["base_stock"][1] == normal["base_stock"][1]  # the normal stage: the normal law
    assert plan["base_stock"][0] != normal["base_stock"][0]


@pytest.mark.parametrize(("family", "sd"), [("negative_binomial", 3.0), ("gamma", 5.0)])
def test_ssm_serial_newsvendor_with_negative_binomial_and_gamma(family, sd):
    """A single stage minimising cost holds the newsvendor quantile ``p / (p + h)`` of its law
    over the lead time: ``NB(r L, p)`` exactly, the gamma of shape ``k L`` within a grid step."""
    mean, lead_time, ratio = 4.0, 3.0, 0.9
    stages = pl.DataFrame({"network": ["a"], "stage": ["s"], "lead_time": [lead_time],
                           "holding_cost": [1.0], "demand_mean": [mean], "demand_sd": [sd],
                           "stockout_cost": [9.0], "demand_distribution": [family]})
    plan = meio.optimize(meio.read_network(stages), "ssm")
    assert plan.networks["method"][0] == "chen_zheng_exact"
    law = _per_period_law(family, mean, sd, lead_time)
    base_stock = plan.stages["base_stock"][0]
    if family == "negative_binomial":
        assert base_stock == law.ppf(ratio)
    else:
        step = sd * math.sqrt(lead_time) / 12.0
        assert abs(base_stock - law.ppf(ratio)) <= step


def _tree_and_chain(family_a: str, family_b: str, sd_a: float,
                    sd_b: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Network 't': a warehouse and two stores with service targets; 'c': a 2-stage chain."""
    stages = pl.DataFrame({
        "network": ["t", "t", "t", "c", "c"], "stage": ["w", "a", "b", "u", "d"],
        "lead_time": [2.0, 1.0, 1.0, 2.0, 2.0], "holding_cost": [1.0, 2.0, 2.0, 1.0, 3.0],
        "demand_mean": [0.0, 2.0, 5.0, 0.0, 4.0], "demand_sd": [0.0, sd_a, sd_b, 0.0, sd_b],
        "demand_distribution": [None, family_a, family_b, None, family_b],
        "service_level": [None, 0.95, 0.9, None, 0.95]})
    arcs = pl.DataFrame({"network": ["t", "t", "c"], "upstream": ["w", "w", "u"],
                         "downstream": ["a", "b", "d"]})
    return stages, arcs


def test_ssm_plans_negative_binomial_and_gamma_networks_to_meet_their_targets():
    """Service targets with negative-binomial and gamma demand: the analytic model marks the
    tree and the chain unsupported (its decomposition is a normal one), meio.optimize plans them
    by the simulated descent with each stage's own law, and an independent simulation with those
    laws finds every store at its target: within 4 standard errors of the descent's sample
    (``sqrt(t (1 - t) / N)``, 4 x 20,000 periods, where the sinks meet their targets exactly)
    and of the check's (its confidence interval)."""
    network = meio.read_network(*_tree_and_chain("negative_binomial", "gamma", 3.0, 4.0))
    analytic = meio.api.optimize(network, "ssm")
    assert analytic.networks["method"].to_list() == ["unsupported", "unsupported"]
    plan = meio.optimize(network, "ssm", descent_periods=20_000)
    assert plan.networks["method"].to_list() == ["simulated_descent", "simulated_descent"]
    check = meio.simulate(network, plan, periods=20_000, replications=10, seed=11).stages
    stores = check.filter(pl.col("stage").is_in(["a", "b", "d"]))
    assert stores.height == 3
    for row in stores.iter_rows(named=True):
        target = row["target_service_level"]
        sample_se = math.sqrt(target * (1.0 - target) / (4 * 20_000))
        check_se = (row["cycle_service_level_ci_high"] - row["cycle_service_level_ci_low"]) / (2 * 1.96)
        assert row["cycle_service_level"] >= target - Z * math.hypot(sample_se, check_se), row
    with pytest.raises(ValueError, match="network 0 of the batch has negative_binomial or gamma demand"):
        meio.api.optimize(network, "ssm", on_unsupported="raise")


def test_ssm_exact_chain_with_negative_binomial_demand_in_simulation():
    """Cost mode, a chain with NB demand: the exact solver's expected on-hand stock and
    backorders are what a simulation with NB demand measures (within 4 standard errors)."""
    stages, arcs = _tree_and_chain("negative_binomial", "negative_binomial", 3.0, 3.0)
    stages = stages.filter(pl.col("network") == "c").with_columns(stockout_cost=pl.lit(19.0))
    network = meio.read_network(stages, arcs.filter(pl.col("network") == "c"))
    plan = meio.optimize(network, "ssm")
    assert plan.networks["method"].to_list() == ["chen_zheng_exact"]
    check = meio.simulate(network, plan, periods=50_000, replications=10, seed=3, warmup=100).stages
    joined = check.join(plan.stages, on=["network", "stage"])
    for row in joined.iter_rows(named=True):
        for simulated, expected in (("mean_on_hand", "expected_on_hand"),
                                    ("mean_backorders", "expected_backorders")):
            se = (row[f"{simulated}_ci_high"] - row[f"{simulated}_ci_low"]) / (2 * 1.96)
            assert abs(row[simulated] - row[expected]) <= Z * se + 1e-9, (row["stage"], simulated)


# --- the simulator -----------------------------------------------------------------------------------

def _per_period_law(family: str, mean: float, sd: float, periods: int = 1):
    """Exact law of ``periods`` i.i.d. periods of the simulator's demand (closed under sums)."""
    if family == "poisson":
        return stats.poisson(mean * periods)
    if family == "negative_binomial":
        return stats.nbinom(mean * mean / (sd * sd - mean) * periods, mean / (sd * sd))
    return stats.gamma((mean / sd) ** 2 * periods, scale=sd * sd / mean)


def test_simulated_draws_have_the_stated_mean_and_variance():
    """One period per replication: 40,000 independent draws per stage, each stage its own law
    from the column. Mean within 4 standard errors ``sd / sqrt(N)``, variance within 4 of
    ``sqrt((mu_4 - sd^4) / N)`` (``mu_4`` the law's fourth central moment)."""
    families = ["normal", "poisson", "negative_binomial", "gamma", "gamma"]
    means = [50.0, 3.0, 4.0, 10.0, 2.0]
    sds = [10.0, math.sqrt(3.0), 3.0, 5.0, 6.0]
    stages = pl.DataFrame({"network": [f"n{k}" for k in range(5)], "stage": ["s"] * 5,
                           "lead_time": [1.0] * 5, "holding_cost": [1.0] * 5, "demand_mean": means,
                           "demand_sd": sds, "demand_distribution": families})
    network = meio.read_network(stages)
    kinds = demand_kinds(network, None)
    np.testing.assert_array_equal(kinds, [NORMAL, POISSON, NEGATIVE_BINOMIAL, GAMMA, GAMMA])
    sim = build_sim_networks(network, np.zeros(5), np.zeros(5), None, None)
    draws = 40_000
    totals = simulate_totals(sim, periods=1, replications=draws, warmup=0, seed=3)
    for column, (family, mean, sd) in enumerate(zip(families, means, sds, strict=True)):
        values = totals.demand[:, column]
        if family == "normal":  # CV 0.2: the censoring at 0 is invisible (docs/simulate.md)
            fourth = 3.0 * sd**4
        else:
            _, variance, _, kurtosis = _per_period_law(family, mean, sd).stats(moments="mvsk")
            assert variance == pytest.approx(sd * sd, rel=1e-12)
            fourth = (float(kurtosis) + 3.0) * sd**4
        assert abs(values.mean() - mean) <= Z * sd / math.sqrt(draws), (family, values.mean())
        assert abs(values.var(ddof=1) - sd * sd) <= Z * math.sqrt((fourth - sd**4) / draws), (
            family, values.var(ddof=1))


def test_explicit_demand_option_overrides_every_stage():
    stages = _one_stage(demand_distribution=["gamma", "normal"])
    network = meio.read_network(stages)
    np.testing.assert_array_equal(demand_kinds(network, None), [GAMMA, NORMAL])
    np.testing.assert_array_equal(demand_kinds(network, "poisson"), [POISSON, POISSON])
    no_demand = _one_stage(network=["a", "a"], demand_mean=[4.0, 0.0], demand_sd=[3.0, 0.0])
    np.testing.assert_array_equal(demand_kinds(meio.read_network(no_demand), "gamma"), [GAMMA, NO_DEMAND])
    with pytest.raises(InputError, match="stages.demand_mean: must be > 0 where demand_sd > 0 with gamma"):
        demand_kinds(meio.read_network(_one_stage(demand_mean=[4.0, 0.0])), "gamma")


def _cycle_service(law_of, level: float, lead_time: int, review_period: int, cycles: int):
    """Exact cycle service level ``P(D_w <= S)``, ``w = L + R - 1``, and its standard error.

    As tests/test_simulate.py's normal version: cycles ``k`` apart share ``o = w - kR`` periods
    of demand, so ``P(A <= S, B <= S) = E[F_(w-o)(S - Y)^2]`` over the shared demand ``Y``
    (a sum over the support, or an integral for the gamma).
    """
    window = lead_time + review_period - 1
    service = law_of(window).cdf(level)
    variance = service * (1.0 - service)
    shift = 1
    while window - shift * review_period > 0:
        shared, apart = law_of(window - shift * review_period), law_of(shift * review_period)
        if shared.dist.name == "gamma":
            both = integrate.quad(lambda y, s=shared, a=apart: s.pdf(y) * a.cdf(level - y) ** 2, 0.0, level,
                                  limit=400)[0]
        else:
            y = np.arange(0.0, level + 1.0)
            both = float(np.sum(shared.pmf(y) * apart.cdf(level - y) ** 2))
        variance += 2.0 * (both - service * service)
        shift += 1
    return service, math.sqrt(variance / cycles)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial", "gamma"])
@pytest.mark.parametrize(("lead_time", "review_period", "level"), [(1, 1, 0.9), (4, 1, 0.95), (9, 1, 0.9),
                                                                   (2, 3, 0.9)])
def test_single_plans_meet_their_targets_with_each_distribution(family, lead_time, review_period, level):
    """The single plan's level is the family's quantile over ``w = L + R - 1`` periods, exact for
    these laws (sums of i.i.d. periods stay in the family), so the simulated cycle service level
    is ``F_w(S) >= target``, within 4 analytic standard errors."""
    laws = {"poisson": (3.0, math.sqrt(3.0)), "negative_binomial": (4.0, 3.0), "gamma": (10.0, 5.0)}
    mean, sd = laws[family]
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [float(lead_time)],
                           "holding_cost": [1.0], "demand_mean": [mean], "demand_sd": [sd],
                           "demand_distribution": [family], "service_level": [level],
                           "review_period": [float(review_period)]})
    network = meio.read_network(stages)
    plan = meio.optimize(network, "single")
    base_stock = plan.stages["base_stock"][0]
    replications, periods = 10, 20_000
    row = meio.simulate(network, plan, periods=periods, replications=replications, seed=5,
                        warmup=50).stages.row(0, named=True)
    service, se = _cycle_service(lambda w: _per_period_law(family, mean, sd, w), base_stock, lead_time,
                                 review_period, replications * (periods // review_period))
    assert service >= level
    if family == "gamma":
        assert service == pytest.approx(level, abs=1e-9)
    assert abs(row["cycle_service_level"] - service) <= Z * se, (row["cycle_service_level"], service, se)


def test_gsm_keeps_the_baseline_when_the_fitted_plan_costs_more():
    """Slow Poisson movers: the service times that are best under the normal cost (the plan of
    the same moments taken as normal) cost more than the baseline once the Poisson quantiles are
    fitted (the twin's levels), so the network keeps the baseline's: ``tree_dp+baseline``."""
    stages = pl.DataFrame({
        "network": ["n"] * 4, "stage": ["a", "b", "c", "d"], "lead_time": [5.0, 20.0, 7.0, 4.0],
        "holding_cost": [0.0080075, 0.0662308, 0.0807022, 0.0789174],
        "demand_mean": [0.0, 0.0, 1.85636, 1.43744],
        "service_level": [None, None, 0.928, 0.946], "demand_distribution": ["poisson"] * 4,
    })
    arcs = pl.DataFrame({"network": ["n"] * 3, "upstream": ["a", "b", "b"], "downstream": ["c", "c", "d"]})
    plan = meio.optimize(meio.read_network(stages, arcs), "gsm")
    row = plan.networks.row(0, named=True)
    assert row["method"] == "tree_dp+baseline"
    assert row["safety_stock_cost"] == row["baseline_cost"] and row["saving_pct"] == 0.0
    as_normal = stages.with_columns(demand_distribution=pl.lit("normal"),
                                    demand_sd=pl.col("demand_mean").sqrt())
    normal_plan = meio.optimize(meio.read_network(as_normal, arcs), "gsm").stages
    rows = [{**r, "demand_sd": math.sqrt(r["demand_mean"])} for r in stages.to_dicts()]
    net = twin.networks_of(rows, arcs.to_dicts())["n"]
    fitted = expected_stock(net, normal_plan, "n")
    cost = sum(r["holding_cost"] * fitted[r["stage"]][0] for r in rows)
    assert cost > row["baseline_cost"] * (1 + 1e-9)
