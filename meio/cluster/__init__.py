"""Full-catalog runs on Dask: partitions of whole networks, one task each, committed atomically.

The only home of Dask code in meio. :func:`run_catalog` takes a client from its caller (the CLI
creates one with :func:`local_cluster` or connects to ``--scheduler``); without one it runs the
partitions in the calling process through the same task.
"""

from meio.cluster.catalog import Partition, Source, plan_partitions, precheck
from meio.cluster.estimate import EstimateEvent, estimate_partitioned, network_ranges
from meio.cluster.run import (
    DEFAULT_PARTITION_SIZE,
    CatalogJob,
    PartitionEvent,
    RunResult,
    prepare_catalog,
    run_catalog,
)
from meio.cluster.workers import local_cluster, numba_thread_budget

__all__ = [
    "DEFAULT_PARTITION_SIZE",
    "CatalogJob",
    "EstimateEvent",
    "Partition",
    "PartitionEvent",
    "RunResult",
    "Source",
    "estimate_partitioned",
    "local_cluster",
    "network_ranges",
    "numba_thread_budget",
    "plan_partitions",
    "precheck",
    "prepare_catalog",
    "run_catalog",
]
