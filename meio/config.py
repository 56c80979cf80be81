"""Run configuration: TOML files whose keys mirror the CLI flags (flags win over the file)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from meio.io.errors import InputError

DEMO_CONFIG = "demo.toml"


@dataclass
class GenerateConfig:
    """A synthetic catalog to generate instead of reading tables (see ``meio generate``)."""

    networks: int = 1000
    shape: str = "mixed"
    seed: int = 0
    stages_per_network: int | None = None
    dag_arcs_per_stage: float = 1.6

    def tables(self):
        """Generate the catalog this section describes: ``(stages, arcs)``."""
        from meio.generate import generate_catalog

        return generate_catalog(
            self.networks, shape=self.shape, seed=self.seed,
            stages_per_network=self.stages_per_network, dag_arcs_per_stage=self.dag_arcs_per_stage,
        )


@dataclass
class OptimizeConfig:
    """What to optimize, with which model, whether to certify the plan, where the run directory goes.

    ``certify`` certifies the plan in simulation (docs/certify.md) with the demand law ``demand``
    (``history``: a table of observed demand), ``certify_precision`` (standard error wanted for a
    demand stage's cycle service level), ``certify_confidence`` and ``certify_seed``.
    """

    stages: str | None = None
    arcs: str | None = None
    model: str = "gsm"
    service_level: float = 0.95
    holding_rate: float | None = None
    slp_starts: int | None = None
    mip_node_limit: int | None = None
    time_limit: float | None = None
    bound_iterations: int | None = None
    exact_node_limit: int | None = None
    certify: bool = False
    demand: str | None = None
    history: str | None = None
    certify_precision: float = 0.005
    certify_confidence: float = 0.95
    certify_seed: int = 0
    output: str = "meio-run"
    overwrite: bool = False

    def certify_options(self) -> dict[str, Any] | None:
        """The certification's options (:class:`meio.certification.CertifyOptions`), None if off."""
        if not self.certify:
            return None
        return {"demand": self.demand, "precision": self.certify_precision,
                "confidence": self.certify_confidence, "seed": self.certify_seed}


@dataclass
class ClusterConfig:
    """Where and in how many partitions the run executes (see docs/cluster.md).

    ``scheduler`` names an existing Dask cluster (``tcp://HOST:PORT``); without it a run of more
    than one partition starts an embedded local cluster of ``workers`` processes.
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    partitions: int | None = None
    partition_size: int | None = None
    resume: bool = False
    retries: int = 3


@dataclass
class RunConfig:
    """A whole run: the optimize section and, optionally, a catalog to generate."""

    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    generate: GenerateConfig | None = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = "defaults"


def _section(cls: type, values: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError("config", name, f"unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**values)


def parse_config(text: str, source: str) -> RunConfig:
    """Parse a TOML configuration; unknown sections and keys are errors, not silently ignored."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InputError("config", "-", f"{source} is not valid TOML: {error}") from error
    unknown = sorted(set(raw) - {"optimize", "generate", "cluster"})
    if unknown:
        raise InputError("config", "-", f"unknown section(s) {', '.join(unknown)} in {source}")
    generate = raw.get("generate")
    return RunConfig(
        optimize=_section(OptimizeConfig, raw.get("optimize", {}), "optimize"),
        generate=None if generate is None else _section(GenerateConfig, generate, "generate"),
        cluster=_section(ClusterConfig, raw.get("cluster", {}), "cluster"),
        source=source,
    )


def load_config(path: str | Path | None) -> RunConfig:
    """Read a configuration file, or the embedded demo configuration when ``path`` is None."""
    if path is None:
        text = resources.files("meio.configs").joinpath(DEMO_CONFIG).read_text()
        return parse_config(text, f"embedded {DEMO_CONFIG}")
    path = Path(path)
    if not path.is_file():
        raise InputError("config", "-", f"file not found: {path}")
    return parse_config(path.read_text(), str(path))
