"""Upsert the framewatch datasource, folder and dashboards into a running Grafana.

Everything is keyed by uid, so pushing again updates in place instead of duplicating.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from grafana_client import GrafanaApi
from grafana_client.client import GrafanaClientError

from framewatch.dashboards.generate import DASHBOARDS, dashboard_model
from framewatch.dashboards.panels import DATASOURCE_VAR

DATASOURCE_UID = "framewatch-prometheus"
DATASOURCE_NAME = "framewatch Prometheus"
FOLDER_UID = "framewatch"
FOLDER_TITLE = "framewatch"


@dataclass(frozen=True)
class PushResult:
    """What a push did: the datasource action and the dashboard uids written."""

    datasource: str
    dashboards: list[str]


def datasource_body(prometheus_url: str) -> dict[str, object]:
    """The Prometheus datasource as Grafana's API takes it."""
    return {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": "prometheus",
        "access": "proxy",
        "url": prometheus_url,
        "isDefault": False,
        "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
    }


def upsert_datasource(api: GrafanaApi, prometheus_url: str) -> str:
    """Create the datasource, or update it if its uid exists; returns "created" or "updated"."""
    body = datasource_body(prometheus_url)
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.datasource.create_datasource(body)
        return "created"
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, body)
    return "updated"


def ensure_folder(api: GrafanaApi) -> None:
    """Create the framewatch folder unless it exists."""
    try:
        api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)


def select_datasource(model: dict[str, object], uid: str) -> dict[str, object]:
    """Copy of a dashboard whose ``$datasource`` variable starts on the given datasource."""
    model = copy.deepcopy(model)
    for variable in model.get("templating", {}).get("list", []):  # type: ignore[attr-defined]
        if variable.get("name") == DATASOURCE_VAR:
            variable["current"] = {"selected": True, "text": DATASOURCE_NAME, "value": uid}
    return model


def push(api: GrafanaApi, prometheus_url: str | None = None) -> PushResult:
    """Upsert the datasource (when ``prometheus_url`` is given), folder and every dashboard."""
    datasource = upsert_datasource(api, prometheus_url) if prometheus_url else "unchanged"
    ensure_folder(api)
    written = []
    for spec in DASHBOARDS:
        model = dashboard_model(spec)
        if prometheus_url:
            model = select_datasource(model, DATASOURCE_UID)
        model.pop("id", None)  # upsert by uid; an id would have to match the server's
        api.dashboard.update_dashboard(
            {
                "dashboard": model,
                "overwrite": True,
                "folderUid": FOLDER_UID,
                "message": "framewatch dashboards push",
            }
        )
        written.append(spec.uid)
    return PushResult(datasource=datasource, dashboards=written)
