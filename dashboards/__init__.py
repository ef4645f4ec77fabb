"""Grafana dashboards as code: builders, generated JSON, provisioning and push to Grafana."""

from __future__ import annotations

from framewatch.dashboards.generate import DASHBOARDS, all_panel_queries, substitute

__all__ = ["DASHBOARDS", "all_panel_queries", "substitute"]
