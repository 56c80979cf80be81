"""Dask workers for meio: the embedded local cluster, thread budgets and kernel warm-up.

Knobs (see docs/cluster.md): ``workers`` processes, ``threads_per_worker`` Dask threads each,
and inside every task Numba gets ``cores // (Dask threads on that host)`` threads, so Dask
threads x Numba threads never exceed the cores of a machine.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import polars as pl

from meio.api import DEFAULT_SERVICE_LEVEL, optimize, read_network
from meio.cluster.task import SIMULATE
from meio.pipeline import Pipeline
from meio.simulation import simulate

if TYPE_CHECKING:
    from distributed import Client


def machine_cores() -> int:
    """Cores this process may use (the CPU affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def local_cluster(
    workers: int | None = None, threads_per_worker: int = 1
) -> Iterator[Client]:
    """An embedded cluster of worker processes on this machine, closed on exit.

    Parameters
    ----------
    workers : int, optional
        Worker processes (default: one per core, ``cores // threads_per_worker``).
    threads_per_worker : int
        Dask threads per worker (default 1: a task gets its cores through Numba instead).

    """
    from distributed import Client, LocalCluster

    cores = machine_cores()
    count = workers or max(1, cores // threads_per_worker)
    with (
        LocalCluster(n_workers=count, threads_per_worker=threads_per_worker, processes=True,
                     # any free port: a second run (or another Dask) on the host must not collide
                     dashboard_address="127.0.0.1:0", host="127.0.0.1") as cluster,
        Client(cluster) as client,
    ):
        yield client


def numba_thread_budget(client: Client) -> int:
    """Numba threads per task so that, on every host, Dask threads x Numba threads <= cores.

    Computed from the workers present now: the smallest ``cores // Dask threads`` over hosts.
    """
    cores = client.run(machine_cores)
    threads_on_host: dict[str, int] = defaultdict(int)
    cores_on_host: dict[str, int] = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = info["host"]
        threads_on_host[host] += info["nthreads"]
        cores_on_host[host] = cores.get(address, 1)
    return min((max(1, cores_on_host[h] // threads_on_host[h]) for h in threads_on_host), default=1)


def _tiny_catalog() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A distribution tree and a network with a shared component: every kernel path once."""
    stages = pl.DataFrame({
        "network": ["a", "a", "a", "b", "b", "b", "b"],
        "stage": ["dc", "r1", "r2", "c", "p", "f1", "f2"],
        "lead_time": [2.0, 1.0, 1.0, 3.0, 1.0, 1.0, 2.0],
        "holding_cost": [1.0, 2.0, 2.0, 0.5, 0.5, 3.0, 3.0],
        "demand_mean": [0.0, 10.0, 5.0, 0.0, 0.0, 4.0, 6.0],
        "demand_sd": [0.0, 3.0, 2.0, 0.0, 0.0, 1.0, 2.0],
    })
    arcs = pl.DataFrame({
        "network": ["a", "a", "b", "b", "b", "b"],
        "upstream": ["dc", "dc", "c", "c", "p", "p"],
        "downstream": ["r1", "r2", "f1", "f2", "f1", "f2"],
    })
    return stages, arcs


def warm_up(model: str, options: dict[str, Any]) -> None:
    """Compile (or load from Numba's cache) every kernel ``model`` uses, on a tiny catalog.

    ``model=SIMULATE`` warms the simulator (its options, the run's horizon, are not needed).
    """
    network = read_network(*_tiny_catalog())
    if model == SIMULATE:
        simulate(network, optimize(network, "single"), periods=2, replications=2, warmup=1)
        return
    pipeline = Pipeline.from_options(model, DEFAULT_SERVICE_LEVEL, options)
    if pipeline.certify is not None:  # the kernels, not the run's horizon
        pipeline = replace(pipeline, certify=replace(pipeline.certify, periods=2, warmup=1, rounds=1,
                                                             demand="normal"))
    pipeline.run(network)
