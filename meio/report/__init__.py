"""Reports a planner reads: one self-contained HTML file per run (docs/report.md).

Tables, not kernels: the report reads a run directory's tables and manifest
(:mod:`meio.report.run`), aggregates them with Polars (:mod:`meio.report.content`), turns the
rows into Vega-Lite specs (:mod:`meio.report.charts`) and renders one page with everything
inlined (:mod:`meio.report.render`). The cost-service frontier has its own page
(:mod:`meio.report.frontier`).
"""

from meio.report.build import FRONTIER, REPORT_FILE, build_report, write_report

__all__ = ["FRONTIER", "REPORT_FILE", "build_report", "write_report"]
