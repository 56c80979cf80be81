"""Model driver of the stochastic-service model (SSM), docs/design.md §4.4.

Which algorithm a network gets
------------------------------
* **Serial** networks (a chain: one source, every stage at most one successor, external demand
  only at the last stage) minimising cost are solved exactly by the Clark–Scarf / Chen–Zheng
  echelon base-stock algorithm (:mod:`meio.engine.ssm_serial`), ``method = "chen_zheng_exact"``.
* **Distribution trees** (every stage at most one supplier, any depth, external demand at any
  stage), and serial networks solved for service targets, use the lead-time-extension
  decomposition of :mod:`meio.engine.ssm_distribution`, ``method = "distribution_decomposition"``.
* **Assembly and general acyclic networks** (a stage with two or more suppliers) are not
  supported: by default they are marked ``method = "unsupported"`` with NaN results, so a run
  over a mixed catalog completes; ``on_unsupported="raise"`` raises
  :class:`UnsupportedNetworkError` naming the first such network (its batch index).

Objective (``objective`` option)
--------------------------------
``"cost"`` minimises expected holding + backorder cost: every demand stage needs a stockout cost,
from the table or the ``stockout_cost`` option (else ``ValueError`` naming the network index).
``"service"`` meets each demand stage's fill-rate target (where given) or cycle-service-level
target (its own service level, else the pooled run default in ``demand.safety_factor``) at the
least holding cost. ``"auto"`` (default) picks cost where every demand stage has a stockout cost
and service otherwise.

Conventions of the result columns
---------------------------------
Quantities are in each stage's own units. The SSM quotes no service times: stages serve from
stock and an out-of-stock supplier delays its successors by a random time, so
``inbound_service_time`` is NaN and ``outbound_service_time`` is 0; the mean of that random delay
is ``expected_inbound_delay`` (Little's law: the supplier's expected backorders over its mean
demand; a source's external inbound service time is added to its lead time instead).
``net_lead_time`` is the effective lead time ``lead_time + expected_inbound_delay``.
``base_stock`` is the local (installation) level, ``echelon_base_stock`` the level of the stage's
echelon (itself and everything downstream). ``safety_stock`` is the expected on-hand stock at
the end of a period (``expected_on_hand``): the buffer the stage actually holds. It is not
``base_stock - demand_mean * net_lead_time`` (the expected net inventory), which is negative at
an upstream stage that plans to run backorders. ``safety_stock_cost = holding_cost *
safety_stock``. The network's ``expected_cost`` is the expected cost per period of on-hand
stock, of stock in transit (at the shipping stage's holding cost) and of backorders to customers
at ``stockout_cost`` (those without one count 0 in service mode). ``cost_error_bound`` bounds
the discretisation error of ``expected_cost`` for exact serial solutions (NaN for the
decomposition, an approximation whose error the tests measure). ``expected_fill_rate`` and
``expected_cycle_service_level`` are the decomposition's predictions (NaN for exact serial rows).

Demand distributions: the exact serial solver takes its chain's demand law from the demand
stage's ``demand_distribution``: normal, Poisson and negative binomial exactly (the discrete
laws on the integers), gamma on its grid (:mod:`meio.engine.ssm_serial`). The decomposition
takes every demand by its two moments, which is right for normal demand and close for Poisson
(a Poisson's variance is its mean, docs/design.md §2) but misses the skewed quantiles of
negative-binomial and gamma demand: a network with such a demand stage that the exact serial
solver does not take (a tree, or a chain meeting service targets) is marked ``unsupported``
like an assembly, and :func:`meio.optimize` plans it by the simulated descent, which draws each
stage's own law (:mod:`meio.stochastic`).

Not modelled: ``lead_time_sd`` (lead times are fixed) and ``review_period`` (every stage reviews
each period) — :func:`meio.api.optimize` rejects stages that set them rather than ignore them —
and ``max_service_time`` (the SSM quotes no service times).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import ndtri

from meio.engine.batch import (
    GAMMA_DEMAND,
    NEGATIVE_BINOMIAL_DEMAND,
    POISSON_DEMAND,
    Batch,
    NetDemand,
    stage_network_index,
)
from meio.engine.result import ModelResult
from meio.engine.ssm_distribution import (
    FILL_RATE_TARGET,
    NO_TARGET,
    QUANTILE_TARGET,
    TreeBatch,
    optimize_trees,
)
from meio.engine.ssm_serial import (
    GAMMA,
    NEGATIVE_BINOMIAL,
    NORMAL,
    POISSON,
    SerialSystems,
    grid_options,
    optimize_serial,
)

SERIAL_EXACT = "chen_zheng_exact"
DECOMPOSITION = "distribution_decomposition"
UNSUPPORTED = "unsupported"

_SERIAL, _TREE, _OTHER = 0, 1, 2


class UnsupportedNetworkError(ValueError):
    """A network the analytic SSM does not solve.

    A stage with several suppliers, or negative-binomial or gamma demand outside the exact serial
    solver.
    """

    def __init__(self, network_index: int, reason: str | None = None):
        self.network_index = network_index
        super().__init__(
            f"network {network_index} of the batch "
            + (reason or "is not serial or a distribution tree (a stage has two or more "
               "suppliers); the stochastic-service model supports only serial and distribution "
               "networks")
        )


_LAW_REASON = ("has negative_binomial or gamma demand and is not a serial network minimising "
               "cost; the decomposition takes demand by two normal moments, which misses such "
               "laws' service targets (meio.optimize plans it by the simulated descent)")


class _Topology:
    """Per-stage and per-network structure derived from the arcs with vectorised NumPy."""

    def __init__(self, batch: Batch, demand: NetDemand):
        n_networks, n_stages = batch.n_networks, batch.n_stages
        self.network = stage_network_index(batch.network_offsets)
        upstream, downstream = batch.arc_ends()
        indegree = np.bincount(downstream, minlength=n_stages)
        outdegree = np.bincount(upstream, minlength=n_stages)
        self.parent = np.full(n_stages, -1, np.int64)
        self.parent[downstream] = batch.arc_upstream
        self.inbound_quantity = np.ones(n_stages)
        self.inbound_quantity[downstream] = batch.arc_quantity
        self.has_successor = outdegree > 0
        self.external = (batch.demand_mean > 0) | (batch.demand_sd > 0)
        per_network = lambda mask: np.bincount(self.network[mask], minlength=n_networks)  # noqa: E731
        several_suppliers = per_network(indegree > 1) > 0
        chain = (
            (per_network(outdegree > 1) == 0)
            & (per_network(indegree == 0) == 1)
            & (per_network(self.external & self.has_successor) == 0)
        )
        self.shape = np.where(several_suppliers, _OTHER, np.where(chain, _SERIAL, _TREE))
        # Units of each stage per unit leaving the network's last stage (chains only matter):
        # the product of outbound arc quantities down the chain, via log-suffix sums.
        outbound_log = np.zeros(n_stages)
        outbound_log[upstream] = np.log(batch.arc_quantity)
        prefix = np.cumsum(outbound_log)
        network_total = prefix[batch.network_offsets[1:] - 1][self.network] if n_stages else prefix
        self.units_per_end_item = np.exp(network_total - prefix + outbound_log)
        self.demand = demand


def _stockout_costs(batch: Batch, default: float | None) -> np.ndarray:
    costs = batch.stockout_cost.copy()
    if default is not None:
        costs[np.isnan(costs)] = float(default)
    return costs


def _choose_cost_mode(topology: _Topology, stockout: np.ndarray, objective: str) -> np.ndarray:
    """Per network: True to minimise cost, False to meet service targets."""
    n_networks = len(topology.shape)
    missing = np.bincount(
        topology.network[topology.external & np.isnan(stockout)], minlength=n_networks
    ) > 0
    if objective == "auto":
        return ~missing
    if objective == "service":
        return np.zeros(n_networks, bool)
    if objective != "cost":
        raise ValueError(f"objective must be 'auto', 'cost' or 'service', got {objective!r}")
    offenders = np.flatnonzero(missing & (topology.shape != _OTHER))
    if len(offenders):
        raise ValueError(
            f"network {offenders[0]} of the batch has a demand stage without stockout_cost; "
            "give it in the stages table or as the stockout_cost option"
        )
    return np.ones(n_networks, bool)


def _stage_rows(batch: Batch, networks: np.ndarray) -> np.ndarray:
    """Global stage rows of the given networks, in batch order."""
    starts = batch.network_offsets[networks]
    sizes = batch.network_offsets[networks + 1] - starts
    return np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())


def _serial_distribution(batch: Batch, sinks: np.ndarray, option: str | None) -> np.ndarray:
    """Demand law of each chain's exact solver: the run's option, else its demand stage's column.

    A gamma stage without spread (``demand_sd = 0``) is constant demand: the normal code's point
    mass.
    """
    if option is not None:
        return np.full(len(sinks), POISSON if option == "poisson" else NORMAL, np.int64)
    code = batch.demand_distribution[sinks]
    law = np.select([code == POISSON_DEMAND, code == NEGATIVE_BINOMIAL_DEMAND,
                     (code == GAMMA_DEMAND) & (batch.demand_sd[sinks] > 0.0)],
                    [POISSON, NEGATIVE_BINOMIAL, GAMMA], NORMAL)
    return law.astype(np.int64)


def _other_law_networks(batch: Batch, topology: _Topology) -> np.ndarray:
    """Per network: True where a demand stage has negative-binomial or gamma demand."""
    code = batch.demand_distribution
    other = topology.external & ((code == NEGATIVE_BINOMIAL_DEMAND) | (code == GAMMA_DEMAND))
    return np.bincount(topology.network[other], minlength=batch.n_networks) > 0


def _solve_serial(batch, topology, stockout, networks, distribution, grid, columns):
    """Chen–Zheng on the chains in ``networks``; fills ``columns`` rows in stage units."""
    rows = _stage_rows(batch, networks)
    sizes = np.diff(batch.network_offsets)[networks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    # Kernel order: demand stage first. Reverse each chain's rows.
    position = np.arange(len(rows)) - np.repeat(offsets[:-1], sizes)
    flipped = np.repeat(offsets[1:] - 1, sizes) - position
    kernel_rows = rows[flipped]
    sinks = batch.network_offsets[networks + 1] - 1
    units = topology.units_per_end_item[kernel_rows]
    local = batch.holding_cost[kernel_rows] * units
    network_of_row = np.repeat(np.arange(len(networks)), sizes)
    upstream_local = np.where(
        np.arange(len(rows)) + 1 < np.repeat(offsets[1:], sizes), np.roll(local, -1), 0.0
    )
    roots = topology.parent[kernel_rows] < 0
    lead_time = batch.lead_time[kernel_rows] + np.where(
        roots, batch.external_inbound_service_time[kernel_rows], 0
    )
    systems = SerialSystems(
        offsets.astype(np.int64), lead_time, local - upstream_local,
        batch.demand_mean[sinks], batch.demand_sd[sinks], stockout[sinks],
        _serial_distribution(batch, sinks, distribution),
    )
    solution = optimize_serial(systems, grid)
    echelon = solution.echelon_base_stock
    downstream_echelon = np.roll(echelon, 1)
    downstream_echelon[offsets[:-1]] = 0.0
    # Supplier's backorders (end-item units) delay this stage: Little's law.
    supplier_backorders = np.roll(solution.expected_backorders, -1)
    supplier_backorders[offsets[1:] - 1] = 0.0
    mean = systems.demand_mean[network_of_row]
    delay = np.divide(supplier_backorders, mean, out=np.zeros_like(mean), where=mean > 0)
    columns["echelon_base_stock"][kernel_rows] = echelon * units
    columns["base_stock"][kernel_rows] = (echelon - downstream_echelon) * units
    columns["expected_on_hand"][kernel_rows] = solution.expected_on_hand * units
    columns["expected_backorders"][kernel_rows] = solution.expected_backorders * units
    columns["expected_inbound_delay"][kernel_rows] = delay
    columns["net_lead_time"][kernel_rows] = lead_time + delay
    return solution.expected_cost, solution.cost_error_bound


def _tree_batch(batch, topology, stockout, networks, cost_mode):
    rows = _stage_rows(batch, networks)
    sizes = np.diff(batch.network_offsets)[networks]
    demand = topology.demand
    mean = demand.demand_mean[rows]
    external = topology.external[rows]
    leaf_demand = external & ~topology.has_successor[rows]
    stage_cost_mode = np.repeat(cost_mode, sizes)
    p = np.where(np.isnan(stockout[rows]), 0.0, stockout[rows])
    share = np.divide(batch.demand_mean[rows], mean, out=np.ones_like(mean), where=mean > 0)
    holding = batch.holding_cost[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        newsvendor_z = ndtri(np.clip(p / (p + holding), 0.0, 1.0 - 1e-12))
    own_z = np.where(
        np.isnan(batch.service_level[rows]), demand.safety_factor[rows],
        ndtri(np.nan_to_num(batch.service_level[rows], nan=0.5)),
    )
    fill_target = ~np.isnan(batch.fill_rate[rows])
    kind = np.where(
        stage_cost_mode,
        np.where(leaf_demand, QUANTILE_TARGET, NO_TARGET),
        np.where(external, np.where(fill_target, FILL_RATE_TARGET, QUANTILE_TARGET), NO_TARGET),
    ).astype(np.int64)
    roots = topology.parent[rows] < 0
    trees = TreeBatch(
        np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        topology.parent[rows],
        batch.lead_time[rows] + np.where(roots, batch.external_inbound_service_time[rows], 0),
        mean, demand.demand_sd[rows], holding,
        np.where(stage_cost_mode, p * share, 0.0),
        kind, np.where(stage_cost_mode, newsvendor_z, own_z),
        np.nan_to_num(batch.fill_rate[rows], nan=0.0), topology.has_successor[rows].copy(),
        topology.inbound_quantity[rows],
    )
    return rows, trees, p * share


def _solve_trees(batch, topology, stockout, networks, cost_mode, max_rounds, columns):
    rows, trees, backorder_price = _tree_batch(batch, topology, stockout, networks, cost_mode)
    solution = optimize_trees(trees, max_rounds=max_rounds)
    columns["base_stock"][rows] = solution.base_stock
    columns["echelon_base_stock"][rows] = solution.echelon_base_stock
    columns["expected_on_hand"][rows] = solution.expected_on_hand
    columns["expected_backorders"][rows] = solution.expected_backorders
    columns["expected_inbound_delay"][rows] = solution.inbound_delay
    columns["net_lead_time"][rows] = solution.net_lead_time
    columns["expected_fill_rate"][rows] = solution.fill_rate
    columns["expected_cycle_service_level"][rows] = solution.cycle_service_level
    return rows, backorder_price


def solve(batch: Batch, demand: NetDemand, **options: Any) -> ModelResult:
    """Solve every network of ``batch`` with the stochastic-service model.

    Parameters
    ----------
    batch : Batch
        Networks in the layout of :mod:`meio.engine.batch`.
    demand : NetDemand
        Net demand per stage from :func:`meio.engine.demand.propagate_demand`.
    **options
        ``objective`` ("auto", "cost", "service"), ``stockout_cost`` (default for demand stages
        without one), ``demand_distribution`` ("normal" or "poisson": the serial exact solver's
        law for every chain; default: each chain's demand stage's ``demand_distribution``),
        ``tail_probability``, ``resolution``, ``max_grid_points`` (serial grid, see
        :mod:`meio.engine.ssm_serial`), ``max_rounds`` (decomposition coordinate descent),
        ``on_unsupported`` ("mark" or "raise").

    Returns
    -------
    ModelResult
        Stage and network columns described in the module docstring.

    """
    objective = options.get("objective", "auto")
    distribution = options.get("demand_distribution")
    if distribution not in (None, "normal", "poisson"):
        raise ValueError(f"demand_distribution must be 'normal' or 'poisson', got {distribution!r}")
    on_unsupported = options.get("on_unsupported", "mark")
    if on_unsupported not in ("mark", "raise"):
        raise ValueError(f"on_unsupported must be 'mark' or 'raise', got {on_unsupported!r}")
    grid = grid_options(
        **{key: options[key] for key in ("tail_probability", "resolution", "max_grid_points")
           if key in options}
    )
    topology = _Topology(batch, demand)
    stockout = _stockout_costs(batch, options.get("stockout_cost"))
    cost_mode = _choose_cost_mode(topology, stockout, objective)
    exact_mask = (topology.shape == _SERIAL) & cost_mode
    other_law = _other_law_networks(batch, topology) & ~exact_mask & (topology.shape != _OTHER)
    if on_unsupported == "raise":
        shape_first = np.flatnonzero(topology.shape == _OTHER)
        law_first = np.flatnonzero(other_law)
        if len(shape_first) and (not len(law_first) or shape_first[0] < law_first[0]):
            raise UnsupportedNetworkError(int(shape_first[0]))
        if len(law_first):
            raise UnsupportedNetworkError(int(law_first[0]), _LAW_REASON)
    unsupported = np.flatnonzero((topology.shape == _OTHER) | other_law)

    n_stages, n_networks = batch.n_stages, batch.n_networks
    names = ("net_lead_time", "base_stock", "echelon_base_stock", "expected_on_hand",
             "expected_backorders", "expected_inbound_delay", "expected_fill_rate",
             "expected_cycle_service_level")
    columns = {name: np.full(n_stages, np.nan) for name in names}
    method = np.full(n_networks, UNSUPPORTED, dtype=object)
    expected_cost = np.full(n_networks, np.nan)
    error_bound = np.full(n_networks, np.nan)

    exact = np.flatnonzero(exact_mask)
    if len(exact):
        expected_cost[exact], error_bound[exact] = _solve_serial(
            batch, topology, stockout, exact, distribution, grid, columns
        )
        method[exact] = SERIAL_EXACT
    decomposed = np.flatnonzero((topology.shape != _OTHER) & ~exact_mask & ~other_law)
    if len(decomposed):
        rows, backorder_price = _solve_trees(
            batch, topology, stockout, decomposed, cost_mode[decomposed],
            int(options.get("max_rounds", 10)), columns,
        )
        parent = topology.parent[rows]
        supplier = np.maximum(parent, 0) + batch.network_offsets[topology.network[rows]]
        supplier_cost = np.where(parent >= 0, batch.holding_cost[supplier], 0.0)
        in_transit = (
            supplier_cost * topology.inbound_quantity[rows] * demand.demand_mean[rows]
            * batch.lead_time[rows]
        )
        stage_cost = (
            batch.holding_cost[rows] * columns["expected_on_hand"][rows]
            + backorder_price * columns["expected_backorders"][rows] + in_transit
        )
        expected_cost[decomposed] = np.bincount(
            topology.network[rows], weights=stage_cost, minlength=n_networks
        )[decomposed]
        method[decomposed] = DECOMPOSITION

    supported = ((topology.shape != _OTHER) & ~other_law)[topology.network]
    safety_stock = columns["expected_on_hand"]
    safety_stock_cost = batch.holding_cost * safety_stock
    network_safety_cost = np.bincount(
        topology.network, weights=np.nan_to_num(safety_stock_cost), minlength=n_networks
    )
    network_safety_cost[unsupported] = np.nan
    stage = {
        "inbound_service_time": np.full(n_stages, np.nan),
        "outbound_service_time": np.where(supported, 0.0, np.nan),
        "net_lead_time": columns["net_lead_time"],
        "safety_stock": safety_stock,
        "base_stock": columns["base_stock"],
        "safety_stock_cost": safety_stock_cost,
        **{name: columns[name] for name in names[2:]},
    }
    network = {
        "method": method.astype(str),
        "safety_stock_cost": network_safety_cost,
        "expected_cost": expected_cost,
        "cost_error_bound": error_bound,
    }
    return ModelResult(stage, network)
