"""General networks of generated catalogs in the argument layout of ``solve_general_network``,
demand and caps as ``meio optimize --model gsm`` builds them (shared by the general-network tests
and benchmarks)."""

from __future__ import annotations

import numpy as np

import meio
from meio.api import net_demand
from meio.engine import gsm
from meio.engine.gsm_general import network_arguments
from meio.engine.gsm_tree import solve_trees
from meio.generate import generate_catalog

#: Service level of stages without one (that of the demo config).
SERVICE_LEVEL = 0.95


def generated_general_networks(n_networks: int, seed: int = 11, shape: str = "mixed",
                               max_stages: int | None = None) -> list[tuple[np.ndarray, ...]]:
    """``solve_general_network`` arguments of the general (non-forest) networks of
    ``generate_catalog(n_networks, shape, seed)``, those of at most ``max_stages`` stages when
    given, in catalog order."""
    stages, arcs = generate_catalog(n_networks, shape=shape, seed=seed)
    batch = meio.read_network(stages, arcs).batch
    problem = gsm.build_tree_problem(batch, net_demand(batch, SERVICE_LEVEL))
    caps = gsm._general_caps(problem)
    sizes = np.diff(problem.network_offsets)
    return [network_arguments(problem, caps, network)
            for network in np.flatnonzero(~solve_trees(problem).is_forest)
            if max_stages is None or sizes[network] <= max_stages]
