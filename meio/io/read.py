"""Read input tables from Parquet, CSV or Arrow IPC files, or accept Polars/Arrow tables."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from meio.io.errors import InputError
from meio.io.schema import SCHEMAS

TableSource = str | Path | pl.DataFrame | pa.Table

_READERS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".arrow": "ipc",
    ".ipc": "ipc",
    ".feather": "ipc",
}


def table_format(path: Path, table: str) -> str:
    """The reader for ``path`` chosen by its extension; an :class:`InputError` for others."""
    fmt = _READERS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            table, "-", f"unsupported file format '{path.suffix}' for {path} "
            f"(use one of {', '.join(sorted(_READERS))})"
        )
    return fmt


def scan_table(source: str | Path, table: str, text_columns: Iterable[str] | None = None) -> pl.LazyFrame:
    """Lazily scan one table file, keeping the ids of a CSV as text.

    In a CSV the ``text_columns`` (default: the table's declared string columns) are read as
    strings, so numeric-looking ids stay ids.
    """
    path = Path(source)
    fmt = table_format(path, table)
    if not path.exists():
        raise InputError(table, "-", f"file not found: {path}")
    if fmt == "parquet":
        return pl.scan_parquet(path)
    if fmt == "ipc":
        return pl.scan_ipc(path)
    if text_columns is None:
        text_columns = [c.name for c in SCHEMAS[table] if c.dtype == pl.String]
    header = pl.scan_csv(path, n_rows=0).collect_schema().names()
    text = {name: pl.String for name in text_columns if name in header}
    return pl.scan_csv(path, schema_overrides=text, infer_schema_length=10_000)


def read_table(source: TableSource, table: str) -> pl.DataFrame:
    """Read one input table (``"stages"`` or ``"arcs"``) from a path or an in-memory table."""
    if isinstance(source, pl.DataFrame):
        return source
    if isinstance(source, pa.Table):
        return pl.from_arrow(source)
    if not isinstance(source, str | Path):
        raise InputError(table, "-", f"expected a path or a Polars/Arrow table, got {type(source)}")
    try:
        return scan_table(source, table).collect()
    except InputError:
        raise
    except (pl.exceptions.PolarsError, OSError, pa.ArrowException) as error:
        raise InputError(table, "-", f"cannot read {source}: {error}") from error


def file_facts(source: Any) -> dict[str, Any]:
    """Path and size of a file source for the run manifest (empty for in-memory tables)."""
    if isinstance(source, str | Path):
        path = Path(source)
        return {"path": str(path.resolve()), "bytes": path.stat().st_size}
    return {"path": None}
