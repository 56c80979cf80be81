"""The staging and checkpoint area of a partitioned run, and its atomic commit.

A run that writes ``DIR`` works in ``.DIR.partial`` beside it::

    .DIR.partial/
      dataset/                    becomes DIR at commit
        stages/part-00000.parquet
        networks/part-00000.parquet
        manifest.json             written last, just before the rename
        report.html               the run's report (meio.report), read from the above
                                  (a run of one partition commits stages.parquet, networks.parquet)
      checkpoint/
        done/part-00000.json      one record per committed partition
        input/                    in-memory catalogs written once for the workers to read
        tmp/                      files being written (renamed into place when complete)

A task writes each part file under ``tmp/`` and renames it into ``dataset/``, then writes its
record the same way, so a record only ever names complete files. The record holds the
partition's key (a checksum of the inputs, the model and its settings, and the partition's
network range) and the SHA-256 of every part file. ``--resume`` keeps a partition whose record
has the current key and whose files still have the recorded checksums; everything else runs
again. The commit writes the manifest and renames ``dataset/`` to ``DIR`` (an existing ``DIR``
is moved aside first and deleted after), so ``DIR`` is either the previous results or the new
ones, never a mixture. Workers must see the area at the same path: on a multi-machine cluster,
put ``DIR`` on a shared file system.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from meio.io.write import file_sha256, replace_directory

#: The two tables of the run directory: ``DIR/NAME/part-XXXXX.parquet`` datasets, or
#: ``DIR/NAME.parquet`` files when the run has a single partition (docs/design.md §3).
TABLES = ("stages", "networks")


@dataclass(frozen=True)
class RunArea:
    """The staging area of the run whose output directory is ``target``."""

    target: str

    @property
    def root(self) -> Path:
        """``.DIR.partial`` beside the target."""
        target = Path(self.target)
        return target.parent / f".{target.name}.partial"

    @property
    def dataset(self) -> Path:
        """The directory that becomes the run directory at commit."""
        return self.root / "dataset"

    @property
    def input(self) -> Path:
        """Where in-memory catalogs are written for the workers to read."""
        return self.root / "checkpoint" / "input"

    def _done(self, name: str) -> Path:
        return self.root / "checkpoint" / "done" / f"{name}.json"

    def _tmp(self, suffix: str) -> Path:
        return self.root / "checkpoint" / "tmp" / f"{uuid.uuid4().hex}{suffix}"

    def open(self, *, resume: bool) -> None:
        """Create the area; without ``resume`` any previous partial run is discarded first."""
        if not resume:
            self.discard()
        for directory in (*(self.dataset / t for t in TABLES), self.input,
                          self.root / "checkpoint" / "done", self.root / "checkpoint" / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)

    def discard(self) -> None:
        """Delete the area and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)

    def write_part(self, table: str, name: str, frame: pl.DataFrame) -> dict[str, Any]:
        """Write one part file atomically; returns its file name, row count and SHA-256."""
        scratch = self._tmp(".parquet")
        frame.write_parquet(scratch, statistics=True)
        digest = file_sha256(scratch)
        os.replace(scratch, self.dataset / table / f"{name}.parquet")
        return {"file": f"{table}/{name}.parquet", "rows": frame.height, "sha256": digest}

    def write_record(self, name: str, record: dict[str, Any]) -> None:
        """Mark a partition committed (after its part files are in place)."""
        scratch = self._tmp(".json")
        scratch.write_text(json.dumps(record, indent=2, default=str))
        os.replace(scratch, self._done(name))

    def committed(self, name: str, key: str) -> dict[str, Any] | None:
        """The record of a partition committed with ``key`` whose files are intact, else None."""
        path = self._done(name)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        if record.get("key") != key:
            return None
        for entry in record["files"].values():
            part = self.dataset / entry["file"]
            if not part.is_file() or file_sha256(part) != entry["sha256"]:
                return None
        return record

    def keep_only(self, names: set[str]) -> None:
        """Delete part files and records of partitions that are not in the current plan."""
        stale = [p for t in TABLES for p in (self.dataset / t).glob("*.parquet") if p.stem not in names]
        stale += [p for p in self._done("x").parent.glob("*.json") if p.stem not in names]
        for path in stale:
            path.unlink()

    def flatten(self, name: str) -> None:
        """Make the one partition ``name`` of a run the plain ``stages.parquet`` / ``networks.parquet``."""
        for table in TABLES:
            os.replace(self.dataset / table / f"{name}.parquet", self.dataset / f"{table}.parquet")
            (self.dataset / table).rmdir()

    def commit(self, manifest: dict[str, Any], finish: Callable[[Path], None] | None = None) -> Path:
        """Write the manifest, call ``finish`` on the complete dataset, rename it to the target.

        ``finish`` adds files made from the finished tables (the report) inside the dataset, so
        they appear with the run, atomically. The area is deleted at the end.
        """
        (self.dataset / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        if finish is not None:
            finish(self.dataset)
        target = Path(self.target)
        replace_directory(self.dataset, target)
        self.discard()
        return target
