"""Turn chart specs and numbers into one self-contained HTML file.

* Templates: Jinja2 (``meio/report/templates``), autoescaped; the style sheet is inlined.
* Charts: Vega-Lite specs drawn in the page by vega-embed, Vega-Lite and Vega, which
  ``vl-convert-python`` bundles offline into one script (:func:`vl_convert.javascript_bundle`),
  inlined in a ``<script>``. Nothing is fetched, at run time or when the page opens: the page's
  Content-Security-Policy forbids every request. The bundle's three web links (the Vega
  editor, the Vega schema and a Vega-Lite issue, none of them ever requested: the report turns
  vega-embed's actions off) are blanked, so the file names no URL but XML namespaces.

The bundle takes about two seconds to build; it is kept in the user's cache directory
(``$XDG_CACHE_HOME/meio`` or ``~/.cache/meio``), one file per ``vl-convert-python`` version.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any

import jinja2

logger = logging.getLogger(__name__)

#: The bundle's entry point: vega-embed (with Vega-Lite and Vega inside) as ``window.vegaEmbed``.
_BUNDLE_SNIPPET = "window.vegaEmbed = vegaEmbed;"
#: A web address other than an XML namespace (which names, never fetches).
_WEB_LINK = re.compile(r"https?://(?!www\.w3\.org/)[^\"'`\s)]+")


def _cache_directory() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "meio"


@functools.cache
def vega_bundle() -> str:
    """The Vega runtime as one script, from the user's cache or built by vl-convert (offline)."""
    import vl_convert

    name = f"vega-embed-{vl_convert.__version__}.js"
    cached = _cache_directory() / name
    if cached.is_file():
        return cached.read_text()
    bundle = _WEB_LINK.sub("", vl_convert.javascript_bundle(_BUNDLE_SNIPPET))
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        scratch = cached.with_suffix(f".{uuid.uuid4().hex}.tmp")
        scratch.write_text(bundle)
        os.replace(scratch, cached)
    except OSError as error:  # a read-only home only costs the next report the build again
        logger.info("could not cache the Vega bundle in %s: %s", cached.parent, error)
    return bundle


def _plain(value: Any) -> Any:
    """``value`` with NaN and infinite floats as None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</``)."""
    return json.dumps(_plain(value), allow_nan=False, default=str).replace("</", "<\\/")


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("meio.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["money"] = lambda v: "–" if v is None else f"{v:,.2f}"
    environment.filters["number"] = lambda v, d=2: "–" if v is None else f"{v:,.{d}f}"
    environment.filters["pct"] = lambda v, d=1: "–" if v is None else f"{v:.{d}f}%"
    environment.filters["periods"] = lambda v: "–" if v is None else f"{v:.2f}".rstrip("0").rstrip(".")
    return environment


def render(template: str, charts: dict[str, dict[str, Any]], **context: Any) -> str:
    """The page: ``template`` with ``context``, the compiled ``charts`` and the Vega runtime.

    ``charts`` maps a chart's element id to its Vega-Lite spec; ``context["embedded"]`` (the
    report's numbers) is embedded as JSON, so tests and tools can read the figures the page shows.
    """
    environment = _environment()
    style = environment.loader.get_source(environment, "report.css")[0]
    return environment.get_template(template).render(
        style=style, vega=vega_bundle(), charts_json=_script_json(charts),
        data_json=_script_json(context.pop("embedded", {})), **context,
    )


def write_html(html: str, output: str | Path) -> Path:
    """Write the page atomically (a reader never sees half a file)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    scratch = output.with_name(f".{output.name}.{uuid.uuid4().hex}.tmp")
    scratch.write_text(html, encoding="utf-8")
    os.replace(scratch, output)
    return output
