"""Prometheus rules: promtool checks the rule file, runs its unit tests and checks the examples."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PROM = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")

needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")


def promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "rules/framewatch.rules.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    tests = sorted((PROM / "tests").glob("*.yml"))
    assert tests
    result = promtool("test", "rules", *[t.name for t in tests], cwd=PROM / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_example_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(AMTOOL is None, reason="amtool is not installed (apt-get install prometheus-alertmanager)")
def test_example_alertmanager_config_is_valid() -> None:
    result = subprocess.run([AMTOOL or "amtool", "check-config", "alertmanager.yml"], cwd=PROM,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_use_the_dashboard_metric_names() -> None:
    text = (PROM / "rules" / "framewatch.rules.yml").read_text()
    for name in ("framewatch_spike_score", "framewatch_ingest_feed_failing", "framewatch_consumer_lag",
                 "framewatch_dead_letters_total", "framewatch_component_up", "up{"):
        assert name in text
