"""Read the base-stock policy a simulation runs: a run directory of ``meio optimize`` or a table."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from meio.io.errors import InputError
from meio.io.read import TableSource, read_table
from meio.io.validate import validate_policy

#: Columns of a policy kept from a run directory (the rest of its stages table is not needed).
POLICY_COLUMNS = ("network", "stage", "model", "base_stock", "echelon_base_stock",
                   "outbound_service_time", "inbound_service_time")


def run_directory_stages(directory: Path) -> Path:
    """The stages table of a ``meio optimize`` run directory: ``stages.parquet`` or ``stages/``."""
    single = directory / "stages.parquet"
    parts = directory / "stages"
    if single.is_file():
        return single
    if parts.is_dir() and any(parts.glob("*.parquet")):
        return parts
    raise InputError("policy", "-", f"{directory} is not a run directory (no stages.parquet or stages/)")


def _read_run_directory(directory: Path) -> pl.DataFrame:
    stages = run_directory_stages(directory)
    try:
        return pl.read_parquet(stages / "*.parquet" if stages.is_dir() else stages)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError("policy", "-", f"cannot read the run directory {directory}: {error}") from error


def read_policy(source: TableSource) -> pl.DataFrame:
    """Read and validate a policy: a run directory, a table file, or a Polars/Arrow table.

    Returns
    -------
    polars.DataFrame
        ``network``, ``stage``, ``base_stock`` and/or ``echelon_base_stock`` (NaN where the model
        computed no level: the network is then not simulated), ``outbound_service_time`` (0 when
        absent), ``inbound_service_time`` (null or NaN where not given) and, from run directories,
        ``model``.

    Raises
    ------
    meio.InputError
        Unreadable source, a missing column, or a broken rule (the first offending stages named).

    """
    if isinstance(source, str | Path) and Path(source).is_dir():
        frame = _read_run_directory(Path(source))
    else:
        frame = read_table(source, "policy")
    frame = frame.select([c for c in POLICY_COLUMNS if c in frame.columns])
    return validate_policy(frame)
