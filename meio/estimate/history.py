"""The two history tables ``meio estimate`` reads: columns, lazy scans, dates and row rules.

``demand`` holds one row per sale record (``network``, ``stage``, ``date``, ``quantity``,
optionally ``forecast`` and an out-of-stock flag column the caller names); ``shipments`` one row
per shipment (arc keys ``network``, ``upstream``, ``downstream`` or lane keys ``origin``,
``destination`` and optionally ``mode``, ``carrier``; ``shipped``, ``received``, optionally
``quantity``). Both are read lazily, so a history larger than memory is scanned, never loaded.

Quantities and transit times are accumulated exactly as integers: quantities in units of
:data:`QUANTUM` (10⁻⁶) and transit times in microseconds, so sums do not depend on the order in
which Polars' threads meet the rows and the estimates are the same bit for bit on every run.

Bad rows raise one :class:`~meio.io.errors.InputError` naming the table, the column, the rule,
how many rows break it and the first offending rows (numbered from 1 in file order, with their
ids and the offending value). Rules are counted inside the aggregation pass the estimate needs
anyway; only a broken rule costs another pass, to find its first rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa

from meio.io.errors import InputError
from meio.io.read import scan_table
from meio.io.validate import Rule

#: Quantities are summed exactly as integer multiples of this many parts of a unit.
QUANTUM = 1_000_000
#: Microseconds in a day (transit times are differences of timestamps in microseconds).
MICROSECONDS_PER_DAY = 86_400_000_000
#: Dates given as text are parsed with this format unless the caller names another.
DEFAULT_DATE_FORMAT = "%Y-%m-%d"

ARC_KEYS = ("network", "upstream", "downstream")
LANE_KEYS = ("origin", "destination")
LANE_ATTRIBUTES = ("mode", "carrier")
#: Columns read as text from CSV files (ids and dates are never guessed as numbers).
TEXT_COLUMNS = ("network", "stage", "date", *ARC_KEYS[1:], *LANE_KEYS, *LANE_ATTRIBUTES,
                "shipped", "received")

_EXAMPLES = 3
_NUMERIC = (pl.Float32, pl.Float64, pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16,
            pl.UInt32, pl.UInt64, pl.Decimal, pl.Null)

HistorySource = str | Path | pl.DataFrame | pl.LazyFrame | pa.Table
#: Networks ``[low, high)`` in sorted id order (``None``: open end; the first range, open below,
#: also holds rows without a network id, so the id rule still sees them): one partition's share
#: of a history.
NetworkRange = tuple[str | None, str | None]


def scan_history(source: HistorySource, table: str) -> pl.LazyFrame:
    """A lazy scan of a history table (Parquet, CSV or Arrow IPC file, or an in-memory table)."""
    if isinstance(source, pl.LazyFrame):
        return source
    if isinstance(source, pl.DataFrame):
        return source.lazy()
    if isinstance(source, pa.Table):
        return pl.from_arrow(source).lazy()
    if not isinstance(source, str | Path):
        raise InputError(table, "-", f"expected a path or a Polars/Arrow table, got {type(source)}")
    return scan_table(source, table, TEXT_COLUMNS)


def in_range(frame: pl.LazyFrame | pl.DataFrame, networks: NetworkRange | None):
    """The rows of ``frame`` whose ``network`` lies in ``networks`` (all rows for None)."""
    if networks is None:
        return frame
    low, high = networks
    network = pl.col("network").cast(pl.String)
    keep = network < high if high is not None else pl.lit(True)
    keep = keep & (network >= low) if low is not None else keep | network.is_null()
    return frame.filter(keep)


def collect(frame: pl.LazyFrame, table: str) -> pl.DataFrame:
    """Run a query over a history table (streaming); a file Polars cannot read is an InputError."""
    try:
        return frame.collect(engine="streaming")
    except (pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError, OSError,
            pa.ArrowException) as error:
        raise InputError(table, "-", f"cannot read the table: {error}") from error


def table_schema(frame: pl.LazyFrame, table: str) -> pl.Schema:
    """The columns of a scan (reads only file metadata or the CSV header)."""
    try:
        return frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError(table, "-", f"cannot read the table: {error}") from error


def require(schema: pl.Schema, table: str, columns: Sequence[str], alternative: str = "") -> None:
    """Raise for the first of ``columns`` the table lacks."""
    for name in columns:
        if name not in schema:
            raise InputError(table, name, "required column is missing" + alternative)


def text_id(name: str) -> pl.Expr:
    """An id column as text (ids may be stored as numbers)."""
    return pl.col(name).cast(pl.String)


def timestamp(schema: pl.Schema, name: str, table: str, date_format: str) -> pl.Expr:
    """The column as a naive microsecond timestamp; null where missing or unparsable."""
    dtype = schema[name]
    if dtype == pl.Date:
        return pl.col(name).cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        return pl.col(name).dt.replace_time_zone(None).dt.cast_time_unit("us")
    if dtype in (pl.String, pl.Null):
        return pl.col(name).cast(pl.String).str.to_datetime(date_format, time_unit="us", strict=False)
    raise InputError(table, name, f"must hold dates (a date column, or text in the form "
                     f"{date_format}); found column type {dtype}")


def unparsable(name: str, parsed: pl.Expr) -> pl.Expr:
    """True where a date was given but could not be read."""
    return pl.col(name).is_not_null() & parsed.is_null()


def number(schema: pl.Schema, name: str, table: str) -> pl.Expr:
    """A numeric column as Float64 (an InputError for text or other column types)."""
    dtype = schema[name]
    if not isinstance(dtype, _NUMERIC):
        raise InputError(table, name, f"must be numeric, found column type {dtype}")
    return pl.col(name).cast(pl.Float64)


def fixed_point(values: pl.Expr) -> pl.Expr:
    """Quantities as exact integers of :data:`QUANTUM` parts (Int128: sums cannot overflow)."""
    return (values * QUANTUM).round(0).cast(pl.Int128, strict=False)


def flag(schema: pl.Schema, name: str, table: str) -> pl.Expr:
    """A yes/no column (Boolean, or numbers with 0 for no); null counts as no."""
    if name not in schema:
        raise InputError(table, name, "the out-of-stock column named is missing")
    dtype = schema[name]
    if dtype == pl.Boolean:
        return pl.col(name).fill_null(False)
    if isinstance(dtype, _NUMERIC):
        return (pl.col(name).cast(pl.Float64) != 0).fill_null(False)
    raise InputError(table, name, f"must be true/false (or 1/0), found column type {dtype}")


def quantity_rules(name: str, values: pl.Expr, *, required: bool) -> list[Rule]:
    """A quantity is a finite number >= 0 (null allowed where it is optional)."""
    finite = values.is_finite() if required else (values.is_null() | values.is_finite())
    return [Rule(name, "must be a finite number", ~finite),
            Rule(name, "must be >= 0", values < 0)]


def id_rules(columns: Sequence[str]) -> list[Rule]:
    """Ids must not be empty."""
    return [Rule(name, "id must not be empty", pl.col(name).is_null() | (text_id(name) == ""))
            for name in columns]


def rule_counts(rules: Sequence[Rule]) -> list[pl.Expr]:
    """One aggregation per rule: how many rows of a group break it."""
    return [rule.broken.fill_null(False).sum().alias(f"_broken_{k}") for k, rule in enumerate(rules)]


def check_counted_rules(groups: pl.DataFrame, rules: Sequence[Rule], rows: pl.LazyFrame, table: str,
                        shown: Sequence[str]) -> None:
    """Raise for the first rule with broken rows, counted per group by :func:`rule_counts`.

    ``rows`` is the prepared scan with a ``_row`` number, searched for the first offenders only
    when a rule is broken.
    """
    if not rules or groups.height == 0:
        return
    totals = groups.select(pl.col(f"_broken_{k}").sum() for k in range(len(rules))).row(0)
    for rule, count in zip(rules, totals, strict=True):
        if count:
            offenders = rows.filter(rule.broken.fill_null(False))
            raise InputError(table, rule.column, rule.words, count,
                             first_rows(offenders, table, [*shown, rule.column]))


def check_known_keys(groups: pl.DataFrame, known: pl.DataFrame, rows: pl.LazyFrame, table: str,
                     column: str, words: str, shown: Sequence[str]) -> None:
    """Raise when some groups' keys (the columns of ``known``) are not among ``known``'s rows."""
    keys = known.columns
    unknown = groups.join(known, on=keys, how="anti", nulls_equal=True)
    if unknown.height == 0:
        return
    offenders = rows.join(unknown.select(keys).lazy(), on=keys, how="semi", nulls_equal=True)
    raise InputError(table, column, words, int(unknown["rows"].sum()),
                     first_rows(offenders, table, shown))


def first_rows(offenders: pl.LazyFrame, table: str, shown: Sequence[str]) -> list[str]:
    """The first offending rows in file order: their number and the values that identify them."""
    columns = list(dict.fromkeys(shown))
    head = collect(offenders.bottom_k(_EXAMPLES, by="_row").select("_row", *columns), table).sort("_row")
    return [
        f"row {row['_row']} (" + ", ".join(f"{name} {_shown(row[name])}" for name in columns) + ")"
        for row in head.iter_rows(named=True)
    ]


def _shown(value: object) -> str:
    """A cell as the message shows it: text quoted, numbers and dates as written."""
    if value is None:
        return "null"
    return f"'{value}'" if isinstance(value, str) else str(value)


def numbered(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The scan with a ``_row`` number from 1, in file order (for error messages only)."""
    return frame.with_row_index("_row", offset=1)
