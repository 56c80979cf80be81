"""A catalog on disk, seen lazily: sources, the global pre-check and the partition plan.

Nothing here loads a whole table. The partition plan needs only the ``network`` column of the
stages table (one ``(network, stage count)`` row per network); the pre-check needs the schemas
and the distinct networks of the arcs table. Each partition is a closed range of network ids in
sorted order, so a task reads its rows with one predicate that Parquet row-group statistics
push down to the reader, and concatenating the partitions in order gives the catalog in the same
network order as a single-process run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from meio.io.errors import InputError
from meio.io.policy import read_policy
from meio.io.read import scan_table
from meio.io.validate import fail_where, validate_arcs, validate_history, validate_stages
from meio.io.write import file_sha256
from meio.simulation import REVIEW_PERIOD_RULE, fractional_review_period


@dataclass(frozen=True)
class Source:
    """One input table on disk: a file (by extension) or a directory of Parquet files.

    A directory is read as one dataset, hive partitioning included (``stages/region=EU/...``).
    """

    table: str
    path: str

    def scan(self) -> pl.LazyFrame:
        """A lazy scan of the whole table."""
        path = Path(self.path)
        if not path.is_dir():
            return scan_table(path, self.table)
        if not any(path.rglob("*.parquet")):
            raise InputError(self.table, "-", f"no .parquet files under {path}")
        return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True)

    def collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        """Run a query on this source, turning reader failures into an :class:`InputError`."""
        try:
            return query.collect()
        except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
            raise InputError(self.table, "-", f"cannot read {self.path}: {error}") from error

    def files(self) -> list[Path]:
        """The files behind the source, in a fixed order."""
        path = Path(self.path)
        return sorted(path.rglob("*.parquet")) if path.is_dir() else [path]

    def sha256(self) -> str:
        """Checksum of the source: of the file, or of every (relative path, file checksum)."""
        path = Path(self.path)
        if not path.is_dir():
            return file_sha256(path)
        listing = [[str(f.relative_to(path)), file_sha256(f)] for f in self.files()]
        return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


@dataclass(frozen=True)
class Partition:
    """Whole networks with ids in ``[first_network, last_network]`` (sorted string order)."""

    index: int
    first_network: str
    last_network: str
    networks: int
    stages: int

    @property
    def name(self) -> str:
        """File stem of the partition's outputs, ``part-00007``."""
        return f"part-{self.index:05d}"

    def rows(self, source: Source, columns: tuple[str, ...] | None = None) -> pl.DataFrame:
        """The partition's rows of ``source`` (predicate pushdown on ``network``).

        ``columns``: read only those of them the source has (projection pushdown).
        """
        network = pl.col("network").cast(pl.String)
        scan = source.scan()
        if columns is not None:
            scan = scan.select([c for c in columns if c in scan.collect_schema().names()])
        query = scan.filter(network.is_between(pl.lit(self.first_network), pl.lit(self.last_network)))
        return source.collect(query)


def _schema_probe(source: Source) -> pl.DataFrame:
    """No rows, every column: enough to check columns and types with the validation rules."""
    return source.collect(source.scan().head(0))


def _check_network_ids(source: Source) -> None:
    """Every row names its network (the rule :mod:`meio.io.validate` applies to id columns)."""
    network = pl.col("network").cast(pl.String)
    missing = source.collect(source.scan().filter(network.is_null() | (network == "")))
    fail_where(missing, pl.lit(True), source.table, "network", "id must not be empty")


def _networks_without_stages(source: Source, stages: Source) -> pl.Series:
    """Distinct network ids of ``source`` that the stages table does not have."""
    stage_networks = stages.scan().select(pl.col("network").cast(pl.String)).unique()
    return source.collect(
        source.scan().select(pl.col("network").cast(pl.String)).unique()
        .join(stage_networks, on="network", how="anti")
    )["network"]


def _rows_of_networks(source: Source, networks: pl.Series, order: list[str]) -> pl.DataFrame:
    return source.collect(
        source.scan().with_columns(pl.col("network").cast(pl.String))
        .filter(pl.col("network").is_in(networks.implode())).sort(order)
    )


def check_review_periods(stages: Source) -> None:
    """The simulation's rule on the stages table: whole review periods (one lazy column scan)."""
    if "review_period" not in stages.scan().collect_schema().names():
        return
    review = pl.col("review_period").cast(pl.Float64, strict=False).fill_null(1.0)
    broken = stages.collect(
        stages.scan().filter(fractional_review_period(review))
        .with_columns(pl.col("network", "stage").cast(pl.String)).sort("network", "stage")
    )
    fail_where(broken, pl.lit(True), "stages", "review_period", REVIEW_PERIOD_RULE)


def precheck(
    stages: Source,
    arcs: Source | None,
    *,
    holding_rate: float | None,
    policy: Source | None = None,
    history: Source | None = None,
    whole_review_periods: bool = False,
) -> None:
    """Checks a partition cannot make on its own, run once before any task starts.

    1. Every table is readable and carries the required columns with usable types (the same
       rules and messages as :mod:`meio.io.validate`, run on the schema alone).
    2. No row lacks its ``network`` id, and every network of the arcs (and of a simulation's
       policy and demand history) has stages: such rows would otherwise fall into no partition
       and be dropped silently instead of rejected.
    3. With ``whole_review_periods`` (a simulation that honours them, or a plan that will be
       simulated so): whole review periods (:func:`check_review_periods`), so a verified run
       fails before it writes anything.

    Every other rule is checked by the task of the partition that holds the rows.
    """
    stage_probe = validate_stages(_schema_probe(stages), holding_rate=holding_rate)
    _check_network_ids(stages)
    if whole_review_periods:
        check_review_periods(stages)
    if arcs is not None:
        validate_arcs(_schema_probe(arcs), stage_probe)
        _check_network_ids(arcs)
        orphans = _networks_without_stages(arcs, stages)
        if orphans.len():
            fail_where(_rows_of_networks(arcs, orphans, ["network", "upstream", "downstream"]),
                       pl.lit(True), "arcs", "upstream",
                       "must name a stage of the same network in the stages table")
    for source, validate in ((policy, read_policy), (history, validate_history)):
        if source is None:
            continue
        validate(_schema_probe(source))
        _check_network_ids(source)
        orphans = _networks_without_stages(source, stages)
        if orphans.len():
            fail_where(_rows_of_networks(source, orphans, ["network", "stage"]), pl.lit(True),
                       source.table, "network", "must name a network of the stages table")


def plan_partitions(
    stages: Source, *, partitions: int | None = None, partition_size: int | None = None
) -> list[Partition]:
    """Cut the sorted network ids into ranges of about equal stage counts.

    Parameters
    ----------
    stages : Source
        The stages table; only its ``network`` column is read.
    partitions : int, optional
        How many partitions to aim for (fewer when there are fewer networks).
    partition_size : int, optional
        Stages per partition to aim for, used when ``partitions`` is not given. A network is
        never split, so a partition holds at least one whole network.

    """
    counts = stages.collect(
        stages.scan().group_by(pl.col("network").cast(pl.String)).agg(pl.len().alias("stages"))
        .sort("network")
    )
    total = int(counts["stages"].sum())
    if counts.height == 0:
        raise InputError("stages", "network", "the stages table has no rows")
    if partitions is not None:
        if partitions < 1:
            raise InputError("config", "partitions", "must be >= 1")
        target = -(-total // partitions)
    else:
        if partition_size is None or partition_size < 1:
            raise InputError("config", "partition_size", "must be >= 1")
        target = partition_size
    ranges = (
        counts.with_columns(part=(pl.col("stages").cum_sum() - pl.col("stages")) // target)
        .group_by("part", maintain_order=True)
        .agg(pl.col("network").first().alias("first"), pl.col("network").last().alias("last"),
             pl.len().alias("networks"), pl.col("stages").sum())
    )
    return [
        Partition(index, first, last, networks, stages)
        for index, (_, first, last, networks, stages) in enumerate(ranges.iter_rows())
    ]

