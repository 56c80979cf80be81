"""Mutation check: every deliberate bug of ``MUTANTS`` must be caught by the tests named for it.

Each mutant is applied to a fresh copy of the repository and its tests are run there; the mutant
is killed when some selected test fails.

    .venv/bin/python scripts/mutants.py              # every mutant, its own test selection
    .venv/bin/python scripts/mutants.py --full       # every mutant against the whole suite
    .venv/bin/python scripts/mutants.py -k single    # mutants whose name contains "single"

The copy is the committed tree (``git archive HEAD``), so commit before running. Each mutant gets a
fresh copy (and so a fresh Numba cache): a mutant never leaks into the next. Grow the list with
every kernel or model driver you add: one bug per kernel and per driver at least (an off-by-one
in an exposure, a dropped variance term, a disabled search, a biased sampler, a wrong pooling).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: replace ``before`` (which must occur exactly once) with ``after``."""

    name: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTANTS = (
    Mutant("single: exposure misses the review term", "meio/engine/single.py",
           "exposure = tau[stage] + (review_period[stage] - 1.0)", "exposure = tau[stage]",
           ("tests/test_single.py",)),
    Mutant("single: customer stages quote 0 instead of their maximum", "meio/engine/single.py",
           "outbound = np.where(has_successor, 0, np.minimum(batch.max_service_time, longest_quote))",
           "outbound = np.zeros(batch.n_stages, np.int64)",
           ("tests/test_single.py",)),
    Mutant("single: the old L + R exposure", "meio/engine/single.py",
           "tau = net_lead_time(inbound, batch.lead_time, outbound)",
           "tau = net_lead_time(inbound, batch.lead_time, outbound) + 1.0",
           ("tests/test_single.py",)),
    Mutant("single: fill rate per period instead of per review cycle", "meio/engine/single.py",
           "return inverse_normal_loss((1.0 - fill_rate) * demand_mean * review_period / spread)",
           "return inverse_normal_loss((1.0 - fill_rate) * demand_mean / spread)",
           ("tests/test_single.py",)),
    Mutant("gsm cost: lead-time variability dropped", "meio/engine/gsm_cost.py",
           "return (demand.safety_factor * demand.demand_mean * batch.lead_time_sd) ** 2",
           "return 0.0 * batch.lead_time_sd",
           ("tests/test_single.py", "tests/test_gsm.py")),
    Mutant("gsm cost: review period ignored", "meio/engine/gsm_cost.py",
           "return demand.demand_bound_sd**2 * (batch.review_period - 1.0)",
           "return 0.0 * batch.review_period",
           ("tests/test_single.py", "tests/test_gsm.py")),
    Mutant("gsm: base stock without the review term", "meio/engine/demand_law.py",
           "exposure = net_lead_time + (batch.review_period - 1.0)",
           "exposure = net_lead_time",
           ("tests/test_single.py", "tests/test_gsm.py")),
    Mutant("demand: pooling adds deviations instead of variances", "meio/engine/demand.py",
           "variance += spread * spread", "variance += spread",
           ("tests/test_single.py", "tests/test_layout_demand.py")),
    Mutant("demand: pooled factor ignores the customers' targets", "meio/engine/demand.py",
           "bound += (spread * z[k]) ** 2", "bound += spread ** 2",
           ("tests/test_single.py", "tests/test_layout_demand.py")),
    Mutant("demand: arc quantities ignored", "meio/engine/demand.py",
           "units[up, s] += quantity * units[down, s]", "units[up, s] += units[down, s]",
           ("tests/test_single.py", "tests/test_layout_demand.py")),
    Mutant("layout: lane variability ignored", "meio/io/layout.py",
           'arrays["lead_time_sd"] = replenishment_lead_time_sd(arrays["lead_time_sd"], lane_sd, down)',
           "pass",
           ("tests/test_single.py::test_review_period_and_lane_variability_enter_by_hand",
            "tests/test_single.py::test_two_inbound_lanes_take_the_longest_transit_and_the_largest_variance")),
    Mutant("layout: lane variances summed instead of the largest", "meio/io/layout.py",
           "np.maximum.at(lane_variance, downstream, np.nan_to_num(lane_sd) ** 2)",
           "np.add.at(lane_variance, downstream, np.nan_to_num(lane_sd) ** 2)",
           ("tests/test_single.py::test_two_inbound_lanes_take_the_longest_transit_and_the_largest_variance",)),
    Mutant("gsm tree: off-by-one in the longest quote", "meio/engine/gsm_tree.py",
           "        tau = (inbound - outbound + whole_lead[stage]) + fraction\n",
           "        tau = (inbound - outbound + whole_lead[stage]) + fraction + 1.0\n",
           ("tests/test_single.py", "tests/test_gsm_tree.py")),
    Mutant("simulate: normal demand sampled with a biased location", "meio/engine/simulate.py",
           "return state, max(location + scale * z, 0.0)",
           "return state, max(1.02 * location + scale * z, 0.0)",
           ("tests/test_demand_distribution.py::test_simulated_draws_have_the_stated_mean_and_variance",
            "tests/test_simulate.py")),
    Mutant("simulate: gamma demand with the wrong scale", "meio/engine/simulate.py",
           "return state, draw * scale * scale / location", "return state, draw * scale / location",
           ("tests/test_demand_distribution.py::test_simulated_draws_have_the_stated_mean_and_variance",)),
    Mutant("simulation: successors served in arc order, not by stage id", "meio/simulation.py",
           "return np.lexsort((rank[down], up))", "return np.lexsort((down, up))",
           ("tests/test_simulate_rules.py",)),
    Mutant("certify: the lower bound ignores the standard error", "meio/engine/certify.py",
           "return mean - z * per_replication.std(axis=0, ddof=1) / math.sqrt(replications)",
           "return mean",
           ("tests/test_certify.py",)),
    Mutant("gsm general: local search polishing disabled", "meio/engine/gsm_general.py",
           "POLISH_WITHIN = 0.02", "POLISH_WITHIN = -1.0",
           ("tests/test_gsm_general.py::test_local_search_pays_on_random_dags",)),
    Mutant("demand law: fitted quantile one unit low", "meio/engine/demand_law.py",
           "level = _law(code, mean, variance).ppf(alpha[rows])",
           "level = _law(code, mean, variance).ppf(alpha[rows]) - 1.0",
           ("tests/test_demand_distribution.py",)),
    Mutant("estimate: outlier fences at 1 IQR", "meio/estimate/lanes.py",
           "FENCE_IQR = 3.0", "FENCE_IQR = 1.0",
           ("tests/test_estimate.py",)),
    Mutant("layout: lane mean transit ignored", "meio/io/layout.py",
           'arrays["lead_time"] = replenishment_lead_time(arrays["lead_time"], lane_mean, down)', "pass",
           ("tests/test_single.py", "tests/test_estimate.py")),
    Mutant("api: gsm accepts fill-rate targets silently", "meio/api.py",
           'pl.col("fill_rate").is_not_null()', 'pl.col("fill_rate").is_null() & pl.lit(False)',
           ("tests/test_validation.py",)),
    Mutant("gsm local: coordinate moves never tried", "meio/engine/gsm_local.py",
           "move_delta, value = _best_outbound_move(net, work, plan, stage, threshold)",
           "move_delta, value = threshold, -1",
           ("tests/test_gsm_general.py::test_local_search_ends_at_a_local_optimum_of_the_twin",
            "tests/test_gsm_general.py::test_default_plan_is_bracketed_by_brute_force")),
    Mutant("gsm local: a move must save 5% to be taken", "meio/engine/gsm_local.py",
           "threshold = -LOCAL_TOLERANCE * abs(cost)", "threshold = -0.05 * abs(cost)",
           ("tests/test_gsm_general.py::test_local_search_ends_at_a_local_optimum_of_the_twin",)),
    Mutant("gsm lp: stage edge without the lead time", "meio/engine/gsm_lp.py",
           "tail[edge], head[edge], cost[edge] = j, size + j, lead_floor[j]",
           "tail[edge], head[edge], cost[edge] = j, size + j, 0",
           ("tests/test_gsm_general.py::test_lp_kernel_equals_highs_optimum",)),
    Mutant("certify probe: the level count one too short at the top", "meio/engine/simulate.py",
           "while count < size and levels[row, count] < value:",
           "while count + 1 < size and levels[row, count] < value:",
           ("tests/test_certify.py::test_level_counts_equal_searchsorted",
            "tests/test_certify.py::test_probe_matches_twin")),
    Mutant("certify: cycle counts read one level off", "meio/engine/certify.py",
           "exceeded = cycles[:, :, None] - np.cumsum(block(PROBE_EXCEEDED), axis=2)",
           "exceeded = cycles[:, :, None] - np.cumsum(totals[:, :, PROBE_FIXED + PROBE_EXCEEDED * width + 1:"
           "PROBE_FIXED + PROBE_EXCEEDED * width + k + 1], axis=2)",
           ("tests/test_certify.py::test_certified_level_is_the_exact_sample_quantile",
            "tests/test_certify.py::test_probe_equals_simulating_each_level_with_meio_simulate")),
    Mutant("certification: the confidence margin dropped (z = 0)", "meio/engine/certify.py",
           "z = float(ndtri(settings.confidence)) if settings.confidence > 0.5 else 0.0", "z = 0.0",
           ("tests/test_certify.py::test_the_margin_is_the_replications_standard_error",)),
    Mutant("ssm simulated: the descent's line search makes no move", "meio/engine/ssm_simulated.py",
           "for _ in range(_LINE_STEPS):", "for _ in range(0):",
           ("tests/test_ssm_simulated.py::test_descent_reaches_the_exact_serial_optimum",)),
    Mutant("ssm distribution: the disaggregation's binomial variance dropped",
           "meio/engine/ssm_distribution.py",
           "+ share * (1.0 - share) * waiting\n", "\n",
           ("tests/test_ssm_distribution.py::test_evaluation_matches_quadrature_twin",)),
    Mutant("ssm serial: shortage slope p instead of p + h (Chen-Zheng's C_0)", "meio/engine/ssm_serial.py",
           "slope_below = -(stockout_cost + total_h)", "slope_below = -stockout_cost",
           ("tests/test_ssm_serial.py",)),
    Mutant("demand law: negative binomial size without the Poisson part", "meio/engine/demand_law.py",
           "return stats.nbinom(mean * mean / (variance - mean) + extra, mean / variance)",
           "return stats.nbinom(mean * mean / variance + extra, mean / variance)",
           ("tests/test_demand_distribution.py::test_single_stage_levels_are_the_family_quantiles",)),
    Mutant("demand law: gamma scale from the standard deviation", "meio/engine/demand_law.py",
           "return stats.gamma(mean * mean / variance + extra, scale=variance / mean)",
           "return stats.gamma(mean * mean / variance + extra, scale=variance ** 0.5 / mean)",
           ("tests/test_demand_distribution.py::test_single_stage_levels_are_the_family_quantiles",)),
    Mutant("streams: negative binomial size without the Poisson part", "meio/engine/streams.py",
           "size = mean * mean / (variance - mean)", "size = mean * mean / variance",
           ("tests/test_simulate.py::test_negative_binomial_sampler",)),
    Mutant("streams: Poisson inversion one unit high", "meio/engine/streams.py",
           "        k = 0.0\n", "        k = 1.0\n",
           ("tests/test_simulate.py::test_poisson_sampler_chi_square",)),
    Mutant("estimate: lane credibility weight with twice the prior", "meio/estimate/lanes.py",
           "weight = np.where(n + prior > 0, n / (n + prior), 0.0)",
           "weight = np.where(n + prior > 0, n / (n + 2.0 * prior), 0.0)",
           ("tests/test_estimate.py",)),
    Mutant("estimate: lane variance weight on shipments, not degrees of freedom", "meio/estimate/lanes.py",
           "variance_weight = np.where(n > 1, dof / (dof + prior), 0.0)",
           "variance_weight = np.where(n > 1, n / (n + prior), 0.0)",
           ("tests/test_estimate.py",)),
    Mutant("estimate: forecast-error sd with the bias taken out", "meio/estimate/demand.py",
           '(pl.col("_e2").cast(pl.Float64) / m).sqrt() / QUANTUM',
           '(pl.col("_e2").cast(pl.Float64) / m - (pl.col("_e1").cast(pl.Float64) / m) ** 2).sqrt()'
           " / QUANTUM",
           ("tests/test_estimate.py",)),
    Mutant("estimate: demand variance over n, not n - 1", "meio/estimate/demand.py",
           "variance = ((s2 - s1 * s1 / n) / (n - 1))", "variance = ((s2 - s1 * s1 / n) / n)",
           ("tests/test_estimate.py",)),
    Mutant("report: saving share of the plan's cost, not the baseline's", "meio/report/content.py",
           '"saving_pct": _share(baseline - cost, baseline)', '"saving_pct": _share(baseline - cost, cost)',
           ("tests/test_report.py::test_optimize_writes_the_report_with_the_run_directorys_numbers",)),
    Mutant("report: lead-time split from a deviation, not a variance", "meio/report/content.py",
           'lead_variance = (pl.col("safety_factor") * pl.col("demand_mean") * pl.col("lead_time_sd")) ** 2',
           'lead_variance = pl.col("safety_factor") * pl.col("demand_mean") * pl.col("lead_time_sd")',
           ("tests/test_report.py::test_safety_stock_split_adds_up_and_follows_the_variances",)),
    Mutant("cluster: partitions cut after the network that crosses the target", "meio/cluster/catalog.py",
           'part=(pl.col("stages").cum_sum() - pl.col("stages")) // target',
           'part=pl.col("stages").cum_sum() // target',
           ("tests/test_cluster.py::test_partitions_hold_whole_networks_in_sorted_ranges",
            "tests/test_cluster.py::test_one_stage_networks_fill_partitions_to_the_target")),
    Mutant("layout: lane mean transits summed instead of the longest", "meio/io/layout.py",
           "np.maximum.at(lane, downstream, np.nan_to_num(lane_lead_time))",
           "np.add.at(lane, downstream, np.nan_to_num(lane_lead_time))",
           ("tests/test_single.py::test_two_inbound_lanes_take_the_longest_transit_and_the_largest_variance",
            "tests/test_estimate.py::test_transport_lanes_reach_every_arc_that_uses_them")),
    Mutant("gsm bound: subgradient step in the wrong direction", "meio/engine/gsm_bound.py",
           "multiplier[position] = max(multiplier[position]\n"
           "                                       + step_size * work.subgradient[position], 0.0)",
           "multiplier[position] = max(multiplier[position]\n"
           "                                       - step_size * work.subgradient[position], 0.0)",
           ("tests/test_gsm_bound.py",)),
    Mutant("gamma: continued fraction term with the wrong sign of a", "meio/engine/gamma.py",
           "an = -i * (i - a)", "an = -i * (i + a)",
           ("tests/test_ssm_serial.py::test_incomplete_gamma_matches_scipy",
            "tests/test_ssm_serial.py::test_gamma_chain_is_within_its_bound_of_the_exact_optimum")),
    Mutant("ssm serial: lead-time demand sd times L (NB/gamma shape not multiplied by L)",
           "meio/engine/ssm_serial.py",
           "ltd_sd[j] = systems.demand_sd[system] * math.sqrt(lead_time)",
           "ltd_sd[j] = systems.demand_sd[system] * lead_time",
           ("tests/test_ssm_serial.py::test_lead_time_demand_grid_has_the_moments_of_the_law",
            "tests/test_ssm_serial.py::test_negative_binomial_chain_is_the_brute_force_optimum",
            "tests/test_ssm_serial.py::test_gamma_chain_is_within_its_bound_of_the_exact_optimum")),
    Mutant("progress: time left ignores the running tasks' work", "meio/cli/jobs.py",
           "return max(work_left - running_done, 0.0) / (pace * running)",
           "return max(work_left, 0.0) / (pace * running)",
           ("tests/test_cli.py::test_progress_on_two_slots_counts_the_running_tasks_work",)),
    Mutant("progress: pace over all slots even when fewer tasks are left", "meio/cli/jobs.py",
           "running = min(len(self.slot_starts), tasks_left)",
           "running = len(self.slot_starts)",
           ("tests/test_cli.py::test_progress_on_two_slots_counts_the_running_tasks_work",)),
    Mutant("gsm general: default keeps the polished run even when the SLP alone is cheaper",
           "meio/engine/gsm_general.py", "    if polished <= cost:\n", "    if True:\n",
           ("tests/test_gsm_general.py::test_default_is_never_dearer_than_the_slp_alone_on_generated_dags",)),
    Mutant("gsm general: memo stops polishing descents too (fresh ignored)", "meio/engine/gsm_general.py",
           "if _memo_add(memo, trial.outbound) and fresh:", "if _memo_add(memo, trial.outbound):",
           ("tests/test_gsm_general.py::test_only_fresh_descents_stop_at_a_plan_of_the_memo",)),
    Mutant("ssm simulated: joint first move disabled", "meio/engine/ssm_simulated.py",
           "for scale in _JOINT_SCALES:", "for scale in ():",
           ("tests/test_ssm_oracles.py::test_descent_leaves_an_empty_assembly_by_moving_its_components_together",)),
    Mutant("certify: sinks outside the short range not re-run", "meio/engine/certify.py",
           "    if missed.any():\n", "    if False:\n",
           ("tests/test_certify.py::test_certified_level_is_the_exact_sample_quantile",)),
    Mutant("estimate: lanes pooled per partition instead of once", "meio/estimate/__init__.py",
           "lane_rows = (pooled_lanes(pl.concat(lane_parts), self.shipments, keys, self.lane_options)",
           "lane_rows = (pl.concat([pooled_lanes(part, self.shipments, keys, self.lane_options)\n"
           "                               for part in lane_parts])",
           ("tests/test_estimate.py::test_partitions_of_networks_give_the_same_tables",)),
    # beyond the first list (tried as hidden mutants, then kept)
    Mutant("simulate: deliveries overtake earlier orders", "meio/engine/simulate.py",
           "arrival = max(t + periods_taken + k[j, _INBOUND_DELAY], k[j, _LAST_ARRIVAL])",
           "arrival = t + periods_taken + k[j, _INBOUND_DELAY]",
           ("tests/test_simulate_rules.py", "tests/test_simulate.py")),
    Mutant("simulate: an assembly starts the sets of its last supplier's parts", "meio/engine/simulate.py",
           "started = min(started, arc[a, _COMPONENTS] / arc[a, _QUANTITY])",
           "started = arc[a, _COMPONENTS] / arc[a, _QUANTITY]",
           ("tests/test_simulate_rules.py", "tests/test_ssm_oracles.py")),
    Mutant("gsm bound: multipliers not projected on >= 0", "meio/engine/gsm_bound.py",
           "multiplier[position] = max(multiplier[position]\n"
           "                                       + step_size * work.subgradient[position], 0.0)",
           "multiplier[position] = (multiplier[position]\n"
           "                                       + step_size * work.subgradient[position])",
           ("tests/test_gsm_bound.py",)),
    Mutant("gsm tree: ties of f go to the largest outbound time", "meio/engine/gsm_tree.py",
           "        if value < running:\n", "        if value <= running:\n",
           ("tests/test_gsm_tree.py", "tests/test_gsm.py")),
    Mutant("validation: negative binomial accepted with variance equal to the mean", "meio/io/validate.py",
           "& ~((mean > 0.0) & (sd * sd > mean))", "& ~((mean > 0.0) & (sd * sd >= mean))",
           ("tests/test_validation.py", "tests/test_demand_distribution.py")),
    Mutant("streams: gamma with shape below 1 drawn without the boost", "meio/engine/streams.py",
           "boost = u ** (1.0 / shape)", "boost = 1.0",
           ("tests/test_simulate.py::test_gamma_sampler_kolmogorov_smirnov",
            "tests/test_demand_distribution.py::test_simulated_draws_have_the_stated_mean_and_variance")),
    Mutant("certify: the level index one low (the last failing level)", "meio/engine/certify.py",
           "    return last_fail + 1\n", "    return np.maximum(last_fail, 0)\n",
           ("tests/test_certify.py::test_certified_level_is_the_exact_sample_quantile",
            "tests/test_certify.py::test_quantile_step_matches_the_exact_serial_distribution",
            "tests/test_certify.py::test_the_margin_is_the_replications_standard_error")),
    Mutant("estimate: lane pools all take the overall variance", "meio/estimate/lanes.py",
           "pool_variance = np.where(pool_dof > 0, np.bincount(group, spread, minlength=pools) / pool_dof,",
           "pool_variance = np.where(pool_dof < 0, np.bincount(group, spread, minlength=pools) / pool_dof,",
           ("tests/test_estimate.py::test_a_lane_without_a_spread_takes_its_own_pools_variance",
            "tests/test_estimate.py")),
    Mutant("ssm distribution: each retailer waits the warehouse's whole delay",
           "meio/engine/ssm_distribution.py",
           "cover_mean += share * waiting / quantity", "cover_mean += waiting / quantity",
           ("tests/test_ssm_distribution.py",)),
    Mutant("api: the stages' own service levels ignored (the run's level everywhere)", "meio/api.py",
           "levels = np.where(np.isnan(batch.service_level), service_level, batch.service_level)",
           "levels = np.full(len(batch.service_level), service_level)",
           ("tests/test_single.py::test_review_period_and_lane_variability_enter_by_hand",
            "tests/test_single.py")),
    Mutant("ssm: the tree's newsvendor quantile h / (p + h)", "meio/engine/ssm.py",
           "newsvendor_z = ndtri(np.clip(p / (p + holding), 0.0, 1.0 - 1e-12))",
           "newsvendor_z = ndtri(np.clip(holding / (p + holding), 0.0, 1.0 - 1e-12))",
           ("tests/test_ssm.py",)),
    Mutant("gsm lp: the dual simplex enters the edge of the largest reduced cost", "meio/engine/gsm_lp.py",
           "if entering < 0 or reduced < best or (reduced == best and edge < entering):",
           "if entering < 0 or reduced > best or (reduced == best and edge < entering):",
           ("tests/test_gsm_general.py::test_simplex_from_previous_basis_equals_highs_optimum",
            "tests/test_gsm_general.py::test_simplex_kernel_equals_its_twin")),
    Mutant("gsm exact: tightening lifts the inbound floor one period too far", "meio/engine/gsm_exact.py",
           "low = box.out_low[j] - net.lead_floor[j]\n",
           "low = box.out_low[j] - net.lead_floor[j] + 1\n",
           ("tests/test_gsm_exact.py",)),
    Mutant("gsm exact: the inbound-kept plan caps one period too high", "meio/engine/gsm_exact.py",
           "        if outbound[up] > inbound[down]:\n",
           "        if outbound[up] > inbound[down] + 1:\n",
           ("tests/test_gsm_exact.py::test_cap_by_dualised_arcs_matches_twin",)),
    Mutant("gsm exact: the model never runs the full SLP", "meio/engine/gsm_exact.py",
           "full = not finished and starts > probe", "full = False",
           ("tests/test_gsm_exact.py::test_solve_and_prove_runs_the_full_slp_only_on_networks_it_cannot_prove",
            "tests/test_gsm_exact.py::test_solve_and_prove_is_optimal_when_proven_and_never_above_the_full_slp")),
    Mutant("gsm exact: the model runs the full SLP on proven networks too", "meio/engine/gsm_exact.py",
           "full = not finished and starts > probe", "full = starts > probe",
           ("tests/test_gsm_exact.py::test_solve_and_prove_runs_the_full_slp_only_on_networks_it_cannot_prove",
            "tests/test_gsm_exact.py::test_solve_and_prove_is_optimal_when_proven_and_never_above_the_full_slp")),
    Mutant("certify: every demand stage in wave 0 (internal demand certified with its sinks)",
           "meio/engine/certify.py",
           "np.maximum.at(reached, down, above[up] + probed[up])",
           "np.maximum.at(reached, down, above[up])",
           ("tests/test_certify.py::test_demand_waves_count_the_demand_stages_on_the_longest_path_above",
            "tests/test_certify.py")),
    Mutant("gsm general: the memo's remainder skips its last reduction", "meio/engine/gsm_general.py",
           "return value - MEMO_MODULUS if value >= MEMO_MODULUS else value", "return value",
           ("tests/test_gsm_general.py::test_mersenne_remainder_is_the_remainder",
            "tests/test_gsm_general.py::test_plan_hash_is_the_polynomial_hash")),
    Mutant("gsm bound: the DP drops the first point after every step of A_k", "meio/engine/gsm_bound.py",
           "            if x < in_high:\n                ends[n_ends] = x\n",
           "            if x < in_high and False:\n                ends[n_ends] = x\n",
           ("tests/test_gsm_bound.py",)),
    Mutant("gsm bound: the outbound role stops at the last minimiser, which the lower end may pass",
           "meio/engine/gsm_bound.py", "limit = above", "limit = chosen",
           ("tests/test_gsm_bound.py::test_forest_dp_roles_match_a_full_scan",
            "tests/test_gsm_bound.py::test_forest_dp_on_generated_networks_matches_twin")),
    Mutant("gsm bound: the outbound role's next limit only counts run ends below this one",
           "meio/engine/gsm_bound.py", "if candidate < above_value:",
           "if candidate < above_value and inbound < limit:",
           ("tests/test_gsm_bound.py::test_forest_dp_roles_match_a_full_scan",)),
    Mutant("gsm bound: the inbound role's early stop skips the last minimiser", "meio/engine/gsm_bound.py",
           "            if outbound >= high or outbound > previous:",
           "            if outbound >= high or outbound >= previous:",
           ("tests/test_gsm_bound.py::test_forest_dp_roles_match_a_full_scan",
            "tests/test_gsm_bound.py::test_forest_dp_on_generated_networks_matches_twin")),
    Mutant("report: every simulated demand stage counted as meeting its target", "meio/report/content.py",
           'met = int(simulated["target_met"].sum())',
           'met = int(simulated["target_met"].count())',
           ("tests/test_report.py::test_service_summary_counts_the_stages_that_miss_their_targets",)),
)
def _copy_of_head(destination: Path) -> None:
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")


def _apply(copy: Path, mutant: Mutant) -> None:
    target = copy / mutant.path
    text = target.read_text()
    found = text.count(mutant.before)
    if found != 1:
        raise SystemExit(f"mutant '{mutant.name}': its text occurs {found} times in {mutant.path}; "
                         "update the mutant list")
    target.write_text(text.replace(mutant.before, mutant.after))


def run(mutant: Mutant, *, full: bool, python: str, timeout: float) -> tuple[bool, float, str]:
    """``(killed, seconds, last line of pytest)`` for one mutant on a fresh copy.

    A selection still running after ``timeout`` seconds counts as killed (the mutant makes the
    tests hang or crawl, which CI's time limit catches); its line says so.
    """
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="meio-mutant-") as folder:
        copy = Path(folder)
        _copy_of_head(copy)
        _apply(copy, mutant)
        selection = [] if full else list(mutant.tests)
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            result = subprocess.run(
                [python, "-m", "pytest", "-p", "no:cacheprovider", "-x", "-q", "--no-header",
                 "-o", "addopts=--strict-markers", *selection],
                cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return True, time.perf_counter() - started, f"timeout after {timeout:.0f} s"
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        # exit 1: a test failed (killed); 0: survived; anything else (2-5) is a broken run
        if result.returncode not in (0, 1):
            raise SystemExit(f"mutant '{mutant.name}': pytest exited {result.returncode}\n"
                             f"{result.stdout[-2000:]}")
        return result.returncode == 1, time.perf_counter() - started, lines[-1] if lines else ""


def main() -> int:
    """Run the selected mutants; exit 1 if any survives."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="run the whole suite against every mutant")
    parser.add_argument("-k", action="append", default=[],
                        help="only mutants whose name contains this text (repeat for several)")
    parser.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per mutant after which it counts as killed (a hang)")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.k or any(k in m.name for k in args.k)]
    survivors = []
    for mutant in chosen:
        killed, seconds, last = run(mutant, full=args.full, python=args.python, timeout=args.timeout)
        print(f"{'killed ' if killed else 'SURVIVED'} {seconds:6.1f} s  {mutant.name}  [{last}]", flush=True)
        if not killed:
            survivors.append(mutant.name)
    print(f"{len(chosen) - len(survivors)}/{len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
