"""A run directory as the report reads it: its tables, its manifest, and what it refers to.

Everything comes from the directory (docs/design.md §3: ``stages.parquet`` or the ``stages/``
dataset, ``networks.parquet`` or ``networks/``, ``manifest.json``), so a report can be made of
any run, by any version of the engine, long after the run. Two things live outside it and are
found through the manifest when they are still reachable:

* the arcs, to draw a network and count the demand stages a stage pools: the run's own arcs
  table (a file path in the manifest, the generated catalog's spec re-generated, or a path the
  caller names); without them a network is drawn by echelon without its arcs;
* for a simulation run (``meio simulate``, ``meio optimize --verify``), the plan it simulated,
  when the policy was a run directory: the report then sets predicted against simulated service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from meio.io.errors import InputError
from meio.io.read import scan_table

#: The ``model`` a simulation run writes in its manifest and tables.
SIMULATE = "simulate"
#: Simulated measures a report reads from a simulation run's stages table.
SIMULATED_COLUMNS = (
    "target_service_level", "target_fill_rate", "cycle_service_level", "cycle_service_level_ci_low",
    "cycle_service_level_ci_high", "fill_rate", "fill_rate_ci_low", "fill_rate_ci_high", "target_met",
)


def table_path(directory: Path, name: str) -> Path:
    """``DIR/NAME.parquet`` or the ``DIR/NAME/`` dataset of part files, whichever the run wrote."""
    single = directory / f"{name}.parquet"
    if single.is_file():
        return single
    dataset = directory / name
    if dataset.is_dir():
        return dataset
    raise InputError("report", name, f"no {name}.parquet or {name}/ dataset in {directory}")


def scan(directory: Path, name: str) -> pl.LazyFrame:
    """A lazy scan of one of the run directory's tables."""
    path = table_path(directory, name)
    return pl.scan_parquet(path / "*.parquet" if path.is_dir() else path)


def read_manifest(directory: Path) -> dict[str, Any]:
    """The run's ``manifest.json``."""
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise InputError("report", "manifest.json", f"{directory} is not a run directory (no manifest.json)")
    return json.loads(path.read_text())


def policy_run_directory(manifest: dict[str, Any]) -> Path | None:
    """The plan a simulation run simulated, when its policy was a run directory still on disk."""
    policy = manifest.get("inputs", {}).get("files", {}).get("policy", {}).get("path")
    if policy is None:
        return None
    path = Path(policy)
    is_run_table = path.name in ("stages.parquet", "stages")
    if is_run_table and (path.parent / "manifest.json").is_file():
        return path.parent
    return None


@dataclass(frozen=True)
class RunTables:
    """What a report is made of.

    ``plan`` is the run directory of an optimization (None for a simulation whose policy is not
    a reachable run directory); ``simulation`` the simulated stage measures (keys and
    :data:`SIMULATED_COLUMNS`) when the plan was verified or simulated; ``arcs`` the arcs of the
    catalog when reachable.
    """

    directory: Path
    manifest: dict[str, Any]
    plan: Path | None
    plan_manifest: dict[str, Any] | None
    simulation: pl.DataFrame | None
    simulation_manifest: dict[str, Any] | None
    arcs: pl.LazyFrame | None
    arcs_source: str

    def stages(self) -> pl.LazyFrame:
        """The plan's stages (the simulation's when there is no plan)."""
        return scan(self.plan or self.directory, "stages")

    def networks(self) -> pl.DataFrame:
        """The plan's networks table (the simulation's when there is no plan)."""
        return scan(self.plan or self.directory, "networks").collect()

    @property
    def model(self) -> str:
        """The optimization model of the plan (``simulate`` for a simulation-only report)."""
        return (self.plan_manifest or self.manifest).get("model", SIMULATE)


def _simulated(directory: Path) -> pl.DataFrame:
    """Keys and simulated measures of a simulation run, demand stages only."""
    lazy = scan(directory, "stages")
    columns = [c for c in SIMULATED_COLUMNS if c in lazy.collect_schema().names()]
    return lazy.select("network", "stage", *columns).filter(pl.col("target_met").is_not_null()).collect()


def _arcs(manifest: dict[str, Any], arcs: str | Path | None) -> tuple[pl.LazyFrame | None, str]:
    """The catalog's arcs: given, recorded in the manifest, or re-generated from its spec."""
    if arcs is not None:
        return _scan_arcs(Path(arcs)), str(arcs)
    recorded = manifest.get("inputs", {}).get("files", {}).get("arcs", {}).get("path")
    if recorded is not None and Path(recorded).exists():
        return _scan_arcs(Path(recorded)), recorded
    spec = manifest.get("generated")
    if spec is not None:
        from meio.config import GenerateConfig

        _, generated = GenerateConfig(**spec).tables()
        return generated.lazy(), "re-generated from the manifest's [generate] spec"
    return None, "not reachable (give --arcs)"


def _scan_arcs(path: Path) -> pl.LazyFrame:
    """Arcs from a file or a directory of Parquet files, ids as strings."""
    lazy = pl.scan_parquet(path) if path.is_dir() else scan_table(path, "arcs")
    return lazy.select(pl.col("network", "upstream", "downstream").cast(pl.String))


def open_run(directory: str | Path, *, simulation: str | Path | None = None,
             arcs: str | Path | None = None) -> RunTables:
    """Read what a report needs from a run directory.

    Parameters
    ----------
    directory : path
        A run directory of ``meio optimize`` or ``meio simulate``.
    simulation : path, optional
        A simulation run of this plan (``meio simulate --policy DIR``) to set predicted against
        simulated service; a simulation run directory finds its plan by itself.
    arcs : path, optional
        The catalog's arcs, when the manifest's path no longer reaches them.

    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    plan, plan_manifest, simulated, simulated_manifest = directory, manifest, None, None
    if manifest.get("model") == SIMULATE:
        simulated, simulated_manifest = _simulated(directory), manifest
        plan = policy_run_directory(manifest)
        plan_manifest = read_manifest(plan) if plan is not None else None
    elif simulation is not None:
        simulated, simulated_manifest = _simulated(Path(simulation)), read_manifest(Path(simulation))
    arc_frame, arcs_source = _arcs(plan_manifest or manifest, arcs)
    return RunTables(directory, manifest, plan, plan_manifest, simulated, simulated_manifest, arc_frame,
                     arcs_source)
