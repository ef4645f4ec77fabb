"""Dashboards as code: committed JSON is current, decodes through the SDK's models, every panel
queries the datasource variable, and every PromQL expression parses (checked with promtool)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from framewatch.cli import main
from framewatch.dashboards import DASHBOARDS, all_panel_queries, substitute
from framewatch.dashboards.generate import CHART_DIR, JSON_DIR, expected_files, render, stale_files

# Every metric the components export (the contract the dashboards are written against).
KNOWN_METRICS = {
    "framewatch_ingest_fetches_total", "framewatch_ingest_items_produced_total",
    "framewatch_ingest_fetch_duration_seconds_bucket", "framewatch_ingest_last_success_timestamp_seconds",
    "framewatch_ingest_feed_failing", "framewatch_consumed_records_total",
    "framewatch_produced_records_total", "framewatch_dead_letters_total", "framewatch_errors_total",
    "framewatch_batch_duration_seconds_bucket", "framewatch_consumer_lag", "framewatch_component_up",
    "framewatch_embedding_duration_seconds_bucket", "framewatch_framed_items_total",
    "framewatch_share_of_voice", "framewatch_frame_baseline_share", "framewatch_spike_score",
    "framewatch_emergent_frames", "framewatch_emergent_frame_size", "framewatch_alerts_total",
}
SAMPLE_VARIABLES = {"watch": "social-credit", "frame": "dystopia", "window": "1h", "component": ".*", "datasource": "prom"}


def _models() -> list[tuple[str, dict]]:
    return [(spec.uid, json.loads((JSON_DIR / spec.filename).read_text())) for spec in DASHBOARDS]


def _panels(model: dict) -> list[dict]:
    return [p for p in model["panels"] if p["type"] != "row"]


def test_committed_files_are_current() -> None:
    stale = stale_files(expected_files())
    assert not stale, f"stale generated files {stale}: run `framewatch dashboards build`"


def test_chart_copy_equals_committed_json() -> None:
    for spec in DASHBOARDS:
        assert (CHART_DIR / "dashboards" / spec.filename).read_bytes() == (JSON_DIR / spec.filename).read_bytes()


def test_generation_is_deterministic() -> None:
    for spec in DASHBOARDS:
        assert render(spec) == render(spec)


@pytest.mark.parametrize("spec", DASHBOARDS, ids=lambda s: s.slug)
def test_json_round_trips_through_sdk_models(spec) -> None:  # type: ignore[no-untyped-def]
    register_default_plugins()
    original = json.loads((JSON_DIR / spec.filename).read_text())
    decoded = Dashboard.from_json(original)
    assert json.loads(json.dumps(decoded, cls=JSONEncoder)) == original


@pytest.mark.parametrize(("uid", "model"), _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_dashboard_shape(uid: str, model: dict) -> None:
    assert model["uid"] == uid
    assert "framewatch dashboards build" in model["description"]
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["query"].startswith("label_values(")
            assert variable["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in _panels(model):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no target"
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"]["uid"] == "${datasource}"
        used = set(re.findall(r"\$(\w+)|\$\{(\w+)\}", json.dumps(panel["targets"])))
        names = {a or b for a, b in used} - {"__rate_interval", "__range", "__interval"}
        assert names <= set(variables), f"{panel['title']} uses undefined variables {names - set(variables)}"


def test_required_panels_exist() -> None:
    titles = {uid: {p["title"] for p in _panels(m)} for uid, m in _models()}
    assert {"Share of voice by framing", "Spike score by framing", "Emergent framing sizes"} <= titles["framewatch-framing-overview"]
    assert {"Share by outlet", "Volume against baseline"} <= titles["framewatch-watch-drilldown"]
    assert {"Consumer lag", "Dead letters per second", "Embedding latency", "Components up"} <= titles["framewatch-pipeline-health"]
    overview = dict(_models())["framewatch-framing-overview"]
    marks = {a["name"]: a["expr"] for a in overview["annotations"]["list"] if "expr" in a}
    assert {"Spikes", "Shifts", "Drifts"} <= set(marks)
    assert 'kind=~"shift"' in marks["Shifts"] and 'kind=~"drift"' in marks["Drifts"]


def _all_exprs() -> list[tuple[str, str]]:
    """(where, expr) of every panel, annotation and variable query, variables substituted."""
    exprs = [(f"{uid} / {title}", expr) for uid, title, expr in all_panel_queries(SAMPLE_VARIABLES)]
    for uid, model in _models():
        for annotation in model["annotations"].get("list", []):
            exprs.append((f"{uid} / annotation {annotation['name']}", substitute(annotation["expr"], SAMPLE_VARIABLES)))
        for variable in model["templating"]["list"]:
            if variable["type"] == "query":
                selector = re.fullmatch(r"label_values\((.+), \w+\)", variable["query"]).group(1)  # type: ignore[union-attr]
                exprs.append((f"{uid} / variable {variable['name']}", substitute(selector, SAMPLE_VARIABLES)))
    return exprs


def test_all_panel_queries_substitutes_every_variable() -> None:
    queries = all_panel_queries(SAMPLE_VARIABLES)
    assert len(queries) >= 25
    assert {uid for uid, _, _ in queries} == {spec.uid for spec in DASHBOARDS}
    for _, title, expr in queries:
        assert "$" not in expr, f"{title}: {expr}"
    raw = all_panel_queries()
    assert any("$watch" in expr for _, _, expr in raw)


def test_queries_use_only_known_metrics() -> None:
    for where, expr in _all_exprs():
        for metric in re.findall(r"\bframewatch_\w+", expr):
            assert metric in KNOWN_METRICS, f"{where}: unknown metric {metric}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    exprs = _all_exprs()
    rules = {"groups": [{"name": "dashboard-queries", "rules": [
        {"record": f"framewatch_dashboard_check:{i}", "expr": expr} for i, (_, expr) in enumerate(exprs)
    ]}]}
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        # Name the failing query: promtool reports the rule's index.
        listing = "\n".join(f"{i}: {where}: {expr}" for i, (where, expr) in enumerate(exprs))
        pytest.fail(f"promtool rejected a dashboard query:\n{result.stdout}{result.stderr}\n{listing}")


def test_build_check_reports_stale_files_and_build_writes_only_where_told(tmp_path: Path) -> None:
    """`build` into temporary folders: the repository's own files are never rewritten by a test."""
    runner = CliRunner()
    chart, json_dir = tmp_path / "chart", tmp_path / "json"
    where = ["--chart-dir", str(chart), "--json-dir", str(json_dir)]
    before = {p: p.read_bytes() for p in expected_files()}
    stale = runner.invoke(main, ["dashboards", "build", "--check", *where])
    assert stale.exit_code != 0
    assert "stale" in stale.output
    built = runner.invoke(main, ["dashboards", "build", *where])
    assert built.exit_code == 0, built.output
    assert (chart / "dashboards" / "framing-overview.json").is_file()
    assert (json_dir / "framing-overview.json").read_bytes() == (JSON_DIR / "framing-overview.json").read_bytes()
    current = runner.invoke(main, ["dashboards", "build", "--check", *where])
    assert current.exit_code == 0, current.output
    assert {p: p.read_bytes() for p in expected_files()} == before
