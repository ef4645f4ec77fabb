"""Render the dashboards to JSON, write them where Grafana and the Helm chart read them, and
check that the committed copies are current.

Two copies are written: ``dashboards/json/`` (compose provisioning, ``dashboards push``) and
``helm/framewatch/dashboards/`` (Helm can only read files inside the chart). The chart also
gets a copy of the Prometheus alert rules, so its PrometheusRule carries the same rules.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from framewatch.dashboards import framing_overview, pipeline_health, watch_drilldown

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
JSON_DIR = PACKAGE_DIR / "json"
CHART_DIR = REPO_ROOT / "helm" / "framewatch"
RULES_FILE = REPO_ROOT / "deploy" / "prometheus" / "rules" / "framewatch.rules.yml"
CHART_RULES_FILE = CHART_DIR / "files" / "framewatch.rules.yml"

# Values used for Grafana's built-in variables when a query must run outside Grafana.
BUILTIN_VALUES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard: its uid, file name and builder."""

    uid: str
    slug: str
    build: Callable[[], Dashboard]

    @property
    def filename(self) -> str:
        """File name of the generated JSON."""
        return f"{self.slug}.json"


DASHBOARDS = [
    DashboardSpec(framing_overview.UID, framing_overview.SLUG, framing_overview.build),
    DashboardSpec(watch_drilldown.UID, watch_drilldown.SLUG, watch_drilldown.build),
    DashboardSpec(pipeline_health.UID, pipeline_health.SLUG, pipeline_health.build),
]


def render(spec: DashboardSpec) -> str:
    """The dashboard as stable, pretty JSON text."""
    model = spec.build().build()
    # The builders leave every panel id at 0; Grafana wants them unique within a dashboard.
    for panel_id, panel in enumerate(model.panels or [], start=1):
        panel.id_val = panel_id
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def dashboard_model(spec: DashboardSpec) -> dict[str, object]:
    """The dashboard as a plain dict (what Grafana's API takes)."""
    return json.loads(render(spec))  # type: ignore[no-any-return]


def expected_files(chart_dir: Path = CHART_DIR, json_dir: Path = JSON_DIR) -> dict[Path, str]:
    """Every generated file and the text it should hold."""
    files: dict[Path, str] = {}
    for spec in DASHBOARDS:
        text = render(spec)
        files[json_dir / spec.filename] = text
        files[chart_dir / "dashboards" / spec.filename] = text
    if RULES_FILE.is_file():
        files[chart_dir / "files" / RULES_FILE.name] = RULES_FILE.read_text(encoding="utf-8")
    return files


def stale_files(files: Mapping[Path, str]) -> list[Path]:
    """Files that are missing or differ from what ``build`` would write."""
    return [
        path for path, text in files.items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def write_files(files: Mapping[Path, str]) -> list[Path]:
    """Write the files that changed; returns them."""
    changed = stale_files(files)
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path], encoding="utf-8")
    return changed


def substitute(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace ``$name`` and ``${name}`` by values (built-ins default to ``BUILTIN_VALUES``)."""
    values = {**BUILTIN_VALUES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def all_panel_queries(
    variables: Mapping[str, str] | None = None,
) -> list[tuple[str, str, str]]:
    """``(dashboard_uid, panel_title, expr)`` for every panel target of every dashboard.

    With ``variables`` (e.g. ``{"watch": "climate", "frame": "economic", "window": "1h",
    "component": ".*"}``) the template variables are substituted, so each expression can be
    sent to a real Prometheus; without, they come back as the dashboards hold them.
    """
    queries: list[tuple[str, str, str]] = []
    for spec in DASHBOARDS:
        for panel in dashboard_model(spec).get("panels", []):  # type: ignore[attr-defined]
            for target in panel.get("targets", []):
                expr = target["expr"]
                queries.append((spec.uid, panel["title"], substitute(expr, variables) if variables else expr))
    return queries
