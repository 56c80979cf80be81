"""What a model driver returns: plain columns, in batch order, for the API to wrap into frames."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class ModelResult(NamedTuple):
    """Columns produced by one model on one batch.

    ``stage`` maps contract column names (docs/design.md §3: ``inbound_service_time``,
    ``outbound_service_time``, ``net_lead_time``, ``safety_stock``, ``base_stock``,
    ``safety_stock_cost`` and any model-specific ones) to arrays of length ``n_stages`` in batch
    order. ``network`` maps per-network columns (``method``, ``safety_stock_cost``, and where the
    model has them ``expected_cost``, ``lower_bound``, ``gap``, ``seconds``) to arrays of length
    ``n_networks``. The API adds the keys, demand, baseline and saving columns.
    """

    stage: dict[str, np.ndarray]
    network: dict[str, np.ndarray]
