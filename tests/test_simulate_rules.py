"""The simulator's documented rules (docs/simulate.md) on hand-worked cases, and its demand draws.

Hand-worked cases use deterministic demand, so every number is exact and is traced period by
period in the test's docstring. The demand tests compare draws with the catalog's stated mean and
standard deviation within ``Z = 4`` analytic standard errors (normal by the central limit
theorem: a correct sampler fails a check with probability 6.3e-5).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy import integrate, stats

import meio
from meio.engine import streams
from meio.engine.simulate import NORMAL, draw_demand
from meio.engine.streams import censored_normal_parameters

Z = 4.0


def _run(stages, arcs, policy, **options):
    options = {"replications": 1, "seed": 0, "warmup": 0, **options}
    rows = meio.simulate((stages, arcs), policy, **options).stages.rows(named=True)
    return {row["stage"]: row for row in rows}


# --- allocation at a shared stage --------------------------------------------------------------

def test_shared_stage_serves_successors_by_stage_id_not_depth():
    """``src`` supplies ``b`` and ``a``; ``a`` also needs ``b`` (so ``a`` sits at depth 2, ``b`` at 1).

    Lead times 1, base stocks 10, demand 10 a period at ``a``; so ``a`` orders 10 of ``src`` and
    10 of ``b``, and ``b`` 10 of ``src``: ``src`` owes 20 a period with 10 on hand at first.
    Period 0: ``src`` ships its 10 to ``a`` (id ``"a"`` before ``"b"``), ``b`` gets nothing; ``b``
    ships its 10 to ``a``; ``a`` starts 10 and ships its 10 to the customer. Period 1: ``src``
    receives 20, ships ``b``'s 10 of period 0 (oldest first) and ``a``'s 10 of period 1, and owes
    ``b`` 10; ``b`` receives nothing and owes ``a`` 10; ``a`` receives its 10 and ships them.
    So ``a`` never keeps its customer waiting (fill rate and cycle service 1), ``b`` owes 0 then
    10 (mean 5), ``src`` 10 and 10. Served by depth (``b`` first) ``a`` would be 10 short in
    period 1 (fill rate 0.5) and ``b`` would owe nothing.
    """
    stages = pl.DataFrame({"network": ["n"] * 3, "stage": ["src", "b", "a"], "lead_time": [1.0] * 3,
                           "holding_cost": [1.0] * 3, "demand_mean": [0.0, 0.0, 10.0]})
    arcs = pl.DataFrame({"network": ["n"] * 3, "upstream": ["src", "src", "b"],
                         "downstream": ["b", "a", "a"]})
    policy = pl.DataFrame({"network": ["n"] * 3, "stage": ["src", "b", "a"], "base_stock": [10.0] * 3})
    rows = _run(stages, arcs, policy, periods=2)
    assert meio.read_network(stages, arcs).stages["stage"].to_list() == ["src", "b", "a"]  # by depth
    assert rows["a"]["fill_rate"] == 1.0 and rows["a"]["cycle_service_level"] == 1.0
    assert rows["a"]["mean_backorders"] == 0.0
    assert rows["b"]["mean_backorders"] == 5.0
    assert rows["src"]["mean_backorders"] == 10.0


# --- fill rate: one window, the demand due ------------------------------------------------------

def _single_stage(base_stock, lead_time, service_time, mean=10.0, sd=0.0, review_period=1.0,
                  inbound_service_time=None):
    stages = pl.DataFrame({"network": ["x"], "stage": ["s"], "lead_time": [lead_time], "holding_cost": [1.0],
                           "demand_mean": [mean], "demand_sd": [sd], "review_period": [review_period]})
    policy = pl.DataFrame({"network": ["x"], "stage": ["s"], "base_stock": [base_stock],
                           "outbound_service_time": [float(service_time)]})
    if inbound_service_time is not None:
        policy = policy.with_columns(inbound_service_time=pl.lit(float(inbound_service_time)))
    return stages, policy


def test_fill_rate_counts_the_demand_due_in_the_measured_periods():
    """Base stock 5, lead time 2, demand 10 a period, quoted service time 1, periods 0-3.

    End of period 0: 5 shipped, 5 of request 0 open. Period 1: nothing arrives, request 1 all
    open; request 0 (due now) is 5 late. Period 2: the 10 started in period 0 fill request 0's
    5 and half of request 1 (due now: 5 late). Period 3: likewise, request 2 is 5 late. Due in
    periods 0-3: requests 0, 1, 2 (30 units; request 3 is due in period 4), of which 15 were
    late: fill rate 0.5. (Late units due over demand *requested* in periods 0-3 gave 0.625.)
    Periods ending with a late request: 1, 2, 3, so the cycle service level is 1/4.
    """
    stages, policy = _single_stage(base_stock=5.0, lead_time=2.0, service_time=1)
    row = _run(stages, None, policy, periods=4)["s"]
    assert row["fill_rate"] == 0.5
    assert row["cycle_service_level"] == 0.25
    assert row["mean_demand"] == 10.0


def test_fill_rate_is_zero_without_any_fill_whatever_the_demand():
    """No stock and a lead time longer than the quoted time: every unit due is late, so the fill
    rate is exactly 0 in every replication (it came out negative when late units of the
    requests due were divided by the demand requested in the measured periods)."""
    stages, policy = _single_stage(base_stock=0.0, lead_time=3.0, service_time=1, mean=10.0, sd=5.0)
    result = meio.simulate((stages, None), policy, periods=300, replications=6, seed=3, warmup=7)
    row = result.stages.row(0, named=True)
    assert row["fill_rate"] == 0.0 and row["fill_rate_ci_low"] == 0.0 and row["fill_rate_ci_high"] == 0.0


def test_fill_rate_lies_in_zero_one_on_a_random_catalog():
    """Every stage of random networks (shared stages, assemblies, quoted service times)."""
    from tests.tables import random_catalog

    stages, arcs = random_catalog(31, networks=15, max_stages=6)
    network = meio.read_network(stages, arcs)
    plan = meio.optimize(network, "gsm")
    policy = plan.stages.with_columns(base_stock=pl.col("base_stock") * 0.6)
    fill = meio.simulate(network, policy, periods=200, replications=3, seed=2).stages["fill_rate"].drop_nans()
    assert fill.len() > 0 and fill.is_between(0.0, 1.0).all()


# --- cycle service level under periodic review -------------------------------------------------

@pytest.mark.parametrize(("base_stock", "periods", "warmup", "inbound", "expected"), [
    (25.0, 7, 0, None, 0.0),  # cycles 1-3 and 4-6, each with a late period (3, 6)
    (30.0, 7, 0, None, 1.0),  # never short
    (25.0, 7, 0, 2, 0.5),  # cycles start at reviews + 2 + 1: 0-2 clean, 3-5 late
    (25.0, 6, 2, None, 0.0),  # measured 2-7: only cycle 4-6 lies inside, late in period 6
])
def test_cycle_service_level_counts_replenishment_cycles(base_stock, periods, warmup, inbound, expected):
    """Lead time 1, review period 3, demand 10 a period.

    Reviews in periods 0, 3, 6, ...; the order of period 0 covers period 0's demand, later ones
    the 30 units of the three periods since the last review; each arrives one period later. With
    base stock 25 the stage ends periods 0-2 with 15, 15, 5 on hand, and from period 3 on the
    periods ``t % 3 == 0`` end 5 short, the others with 15 and 5 on hand. A replenishment cycle
    is the 3 periods from the arrival phase (review + inbound service time + floor(lead time):
    1 by default, 3 with a policy inbound service time of 2); only cycles wholly inside the
    measured periods count. The per-period ready rate would be 5/7 in the first case.
    """
    stages, policy = _single_stage(base_stock=base_stock, lead_time=1.0, service_time=0, review_period=3.0,
                                   inbound_service_time=inbound)
    row = _run(stages, None, policy, periods=periods, warmup=warmup)["s"]
    assert row["cycle_service_level"] == expected


def test_no_whole_cycle_measured_gives_no_cycle_service_level():
    stages, policy = _single_stage(base_stock=25.0, lead_time=1.0, service_time=0, review_period=5.0)
    row = _run(stages, None, policy, periods=3)["s"]
    assert math.isnan(row["cycle_service_level"]) and row["target_met"] is True


# --- demand with the stated mean and standard deviation -----------------------------------------

def _censored_moment(location, scale, power, centre=0.0):
    """``E[(max(0, X) - centre)^power]`` for ``X ~ N(location, scale^2)``, by quadrature."""
    at_zero = stats.norm.cdf(-location / scale) * (-centre) ** power
    low, high = max(0.0, location - 40.0 * scale), location + 40.0 * scale  # beyond: below 1e-300
    positive, _ = integrate.quad(lambda x: (x - centre) ** power * stats.norm.pdf(x, location, scale),
                                 low, high, points=[max(low, location)], epsabs=0.0, epsrel=1e-12, limit=500)
    return at_zero + positive


@pytest.mark.nojit
@pytest.mark.parametrize("cv", [1e-3, 0.1, 0.3, 0.5, 0.99, 1.46, 3.0, 30.0])
def test_censored_normal_parameters_give_the_stated_moments(cv):
    """Mean and standard deviation of ``max(0, m + s Z)`` by quadrature, against the targets."""
    mean = 37.5
    location, scale = censored_normal_parameters(np.array([mean]), np.array([cv * mean]))
    first = _censored_moment(location[0], scale[0], 1)
    second = _censored_moment(location[0], scale[0], 2, centre=first)
    assert first == pytest.approx(mean, rel=1e-9)
    assert math.sqrt(second) == pytest.approx(cv * mean, rel=1e-9)


def test_censored_normal_parameters_without_spread_or_without_solution():
    mean, sd = np.array([4.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.0, 2.0, 1e9])
    location, scale = censored_normal_parameters(mean, sd)
    assert location[:2].tolist() == [4.0, 0.0] and scale[:2].tolist() == [0.0, 0.0]
    assert np.isnan(location[2:]).all() and np.isnan(scale[2:]).all()


@pytest.mark.parametrize("cv", [0.1, 0.3, 0.5, 1.0, 2.0])
def test_normal_demand_draws_have_the_stated_mean_and_sd(cv):
    """200,000 draws of the kernel's demand sampler at CVs across (and beyond) what
    ``meio generate`` draws (0.1-0.5): sample mean within ``Z sigma / sqrt(n)`` of ``mu``, sample
    variance within ``Z sqrt((mu_4 - sigma^4) / n)`` of ``sigma^2`` (``mu_4`` the censored normal's
    fourth central moment, by quadrature). The old ``max(0, N(mu, sigma^2))`` is 5.7 (cv 0.5) to
    hundreds of standard errors off."""
    mean, sd, n = 20.0, 20.0 * cv, 200_000
    location, scale = censored_normal_parameters(np.array([mean]), np.array([sd]))
    history = np.zeros(1)
    state = np.uint64(streams.stream_state(np.uint64(8), streams.network_key("demand"), np.uint64(0)))
    values = np.empty(n)
    with np.errstate(over="ignore"):
        for i in range(n):
            state, values[i] = draw_demand(state, NORMAL, location[0], scale[0], history, 0, 0)
            state = np.uint64(state)
    fourth = _censored_moment(location[0], scale[0], 4, centre=mean)
    assert abs(values.mean() - mean) <= Z * sd / math.sqrt(n)
    assert abs(values.var(ddof=1) - sd**2) <= Z * math.sqrt((fourth - sd**4) / n)
    assert values.min() >= 0.0


@pytest.mark.parametrize("cv", [0.1, 0.5])
def test_simulated_mean_demand_is_the_stated_mean(cv):
    """Through ``meio.simulate``: per-period demand is i.i.d. with the stated ``sigma``, so the mean
    over ``periods x replications`` draws has standard error ``sigma / sqrt(periods x replications)``."""
    mean, periods, replications = 50.0, 20_000, 5
    stages, policy = _single_stage(base_stock=1e6, lead_time=1.0, service_time=0, mean=mean, sd=cv * mean)
    row = meio.simulate((stages, None), policy, periods=periods, replications=replications, seed=4,
                        warmup=10).stages.row(0, named=True)
    assert abs(row["mean_demand"] - mean) <= Z * cv * mean / math.sqrt(periods * replications)


def test_normal_demand_with_zero_mean_and_a_spread_is_one_clear_error():
    stages = pl.DataFrame({"network": ["x", "y"], "stage": ["s", "t"], "lead_time": [1.0, 1.0],
                           "holding_cost": [1.0, 1.0], "demand_mean": [5.0, 0.0], "demand_sd": [1.0, 2.0]})
    policy = pl.DataFrame({"network": ["x", "y"], "stage": ["s", "t"], "base_stock": [10.0, 10.0]})
    with pytest.raises(meio.InputError) as error:
        meio.simulate((stages, None), policy, periods=10, replications=2)
    assert str(error.value).startswith("stages.demand_sd: is beyond what normal demand can describe")
    assert "(1 row; first: network 'y' stage 't')" in str(error.value)
    poisson = meio.simulate((stages, None), policy, periods=10, replications=2, demand="poisson")
    assert poisson.networks["simulated"].all()  # Poisson demand with mean 0 is no demand at all
