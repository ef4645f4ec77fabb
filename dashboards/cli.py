"""``framewatch dashboards``: regenerate the committed dashboard JSON, or push it to Grafana."""

from __future__ import annotations

import os
from pathlib import Path

import click

from framewatch.service import EXIT_RUNTIME, fail


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code."""


@dashboards.command()
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a committed file is stale.")
@click.option(
    "--chart-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Helm chart to copy dashboards and alert rules into (default helm/framewatch).",
)
@click.option(
    "--json-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Folder of the dashboard JSON (default dashboards/json).",
)
def build(check: bool, chart_dir: Path | None, json_dir: Path | None) -> None:
    """Regenerate dashboards/json/*.json and the Helm chart's copies."""
    from framewatch.dashboards.generate import (
        CHART_DIR,
        JSON_DIR,
        expected_files,
        stale_files,
        write_files,
    )

    files = expected_files(chart_dir or CHART_DIR, json_dir or JSON_DIR)
    if check:
        stale = stale_files(files)
        for path in stale:
            click.echo(f"stale: {path}", err=True)
        if stale:
            fail("generated files are stale; run `framewatch dashboards build`", EXIT_RUNTIME)
        click.echo(f"{len(files)} generated files are current")
        return
    for path in write_files(files):
        click.echo(f"wrote {path}")


@dashboards.command()
@click.option("--url", required=True, help="Grafana base URL, e.g. http://grafana:3000.")
@click.option(
    "--token-env", default="FRAMEWATCH_GRAFANA_TOKEN", show_default=True,
    help="Environment variable holding a Grafana service-account token.",
)
@click.option("--prometheus-url", default=None, help="Also upsert a Prometheus datasource at this URL.")
@click.option("--timeout", default=10.0, show_default=True, help="HTTP timeout in seconds.")
def push(url: str, token_env: str, prometheus_url: str | None, timeout: float) -> None:
    """Upsert the datasource and dashboards into Grafana through its HTTP API."""
    token = os.environ.get(token_env, "").strip()
    if not token:
        fail(f"environment variable {token_env} is not set or empty (a Grafana token)")

    from grafana_client import GrafanaApi
    from grafana_client.client import GrafanaException

    from framewatch.dashboards.push import push as push_all

    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    try:
        result = push_all(api, prometheus_url)
    except GrafanaException as exc:
        fail(f"Grafana at {url} answered {exc.status_code}: {exc.message}", EXIT_RUNTIME)
    click.echo(f"datasource {result.datasource}; dashboards pushed: {', '.join(result.dashboards)}")
