"""Write a run directory atomically (DESIGN.md §3).

Everything is written under a temporary name beside the target and renamed into place only when
complete, so a run that dies leaves the previous results (or nothing) behind, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl

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


def write_run_directory(
    output: str | Path,
    tables: Mapping[str, pl.DataFrame],
    manifest: Mapping[str, Any],
    *,
    overwrite: bool,
    finish: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``tables`` as ``NAME.parquet`` plus ``manifest.json`` into ``output`` atomically.

    The manifest gains a ``files`` entry with each table's row count and SHA-256. ``finish`` is
    called with the complete staging directory before it is renamed (e.g. to add a report).
    """
    target = check_output_target(output, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        files = {}
        for name, frame in tables.items():
            path = staging / f"{name}.parquet"
            frame.write_parquet(path, statistics=True)
            files[name] = {"file": path.name, "rows": frame.height, "sha256": file_sha256(path)}
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
