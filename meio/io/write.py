"""Write a run directory atomically (docs/design.md §3).

Everything is written under a temporary name beside the target and renamed into place only when
complete, so a run that dies leaves the previous results (or nothing) behind, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from meio.io.errors import InputError


def check_output_target(output: str | Path, *, overwrite: bool) -> Path:
    """Refuse, before any work, an output directory that exists unless ``overwrite`` is set."""
    target = Path(output)
    if target.exists() and not overwrite:
        raise InputError("output", "-", f"{target} exists; pass --overwrite to replace it")
    if target.exists() and not target.is_dir():
        raise InputError("output", "-", f"{target} exists and is not a directory")
    return target


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Writes one table too large to hold in memory to the path it is given; returns its row count.
TableWriter = Callable[[Path], int]


def write_frames(path: Path, frames: Iterable[pl.DataFrame]) -> int:
    """Write frames of one schema to one Parquet file, a row group each; returns the row count.

    Only one frame is held at a time, so the file may be larger than memory.
    """
    rows = 0
    writer = None
    try:
        for frame in frames:
            table = frame.to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            rows += frame.height
    finally:
        if writer is not None:
            writer.close()
    return rows


def write_run_directory(
    output: str | Path,
    tables: Mapping[str, pl.DataFrame | TableWriter],
    manifest: Mapping[str, Any],
    *,
    overwrite: bool,
    finish: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``tables`` as ``NAME.parquet`` plus ``manifest.json`` into ``output`` atomically.

    A table is a frame, or a :data:`TableWriter` that streams it to its file. The manifest gains
    a ``files`` entry with each table's row count and SHA-256. ``finish`` is called with the
    complete staging directory before it is renamed (e.g. to add a report).
    """
    target = check_output_target(output, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        files = {}
        for name, table in tables.items():
            path = staging / f"{name}.parquet"
            if isinstance(table, pl.DataFrame):
                table.write_parquet(path, statistics=True)
                rows = table.height
            else:
                rows = table(path)
            files[name] = {"file": path.name, "rows": rows, "sha256": file_sha256(path)}
        content = {**manifest, "files": files}
        (staging / "manifest.json").write_text(json.dumps(content, indent=2, default=str))
        if finish is not None:
            finish(staging)
        replace_directory(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def replace_directory(staging: Path, target: Path) -> None:
    """Rename ``staging`` to ``target``, moving an existing ``target`` aside first."""
    if target.exists():
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(target)
