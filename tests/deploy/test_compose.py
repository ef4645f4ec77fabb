"""deploy/compose: `docker compose config -q` accepts the file (skipped without a compose CLI),
and its wiring is consistent: Prometheus scrapes every component, Grafana gets the provisioning,
the sink and the API share the lake volume, and the API's first admin token is made once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.paths import ROOT

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
COMPONENTS = {"ingest", "processing", "aggregate", "notify", "sink", "serve"}
SCRAPED = COMPONENTS
CACHED_COMPOSE = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch")) / "tools-compose" / "docker-compose"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose") or (str(CACHED_COMPOSE) if CACHED_COMPOSE.is_file() else None)
    if standalone and subprocess.run([standalone, "version"], capture_output=True, text=True).stdout.startswith("Docker Compose"):
        return [standalone]
    return None


COMPOSE = _compose_command()


def _services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.mark.skipif(COMPOSE is None, reason="no docker compose v2 CLI (scripts/install-tools.sh with FRAMEWATCH_TOOLS_COMPOSE=1 builds one)")
def test_compose_config_is_valid() -> None:
    result = subprocess.run([*COMPOSE, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True)  # type: ignore[misc]
    assert result.returncode == 0, result.stderr
    listed = subprocess.run([*COMPOSE, "-f", str(COMPOSE_FILE), "config", "--services"], capture_output=True, text=True)  # type: ignore[misc]
    assert listed.returncode == 0, listed.stderr
    assert COMPONENTS | {"serve-token"} <= set(listed.stdout.split())


def test_components_run_locked_down() -> None:
    services = _services()
    assert {"kafka", "prometheus", "grafana"} | COMPONENTS <= set(services)
    commands = {name: services[name]["command"][0] for name in COMPONENTS}
    assert commands == {"ingest": "ingest", "processing": "process", "aggregate": "aggregate", "notify": "notify",
                        "sink": "sink", "serve": "serve"}
    for name in COMPONENTS:
        service = services[name]
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["user"] == "10001:10001"
        assert any(v.endswith(":/var/lib/framewatch") for v in service["volumes"]), name
        env = service["environment"]
        assert env["FRAMEWATCH_METRICS_HOST"] == "0.0.0.0"
        assert env["FRAMEWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_prometheus_scrapes_every_component() -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert {f"{c}:9400" for c in SCRAPED} <= targets
    assert all(job["job_name"].startswith("framewatch-") for job in config["scrape_configs"] if job["job_name"] != "prometheus")


def _mounts(service: dict) -> dict[str, str]:
    """Target (with its :ro) -> source of a service's volumes."""
    return {target: source for source, target in (v.split(":", 1) for v in service["volumes"])}


def test_sink_and_serve_share_the_lake() -> None:
    services = _services()
    sink, serve, token = services["sink"], services["serve"], services["serve-token"]
    # The sink's state dir is the lake volume (owned by the image's user), its lake state_dir/lake.
    assert _mounts(sink)["/var/lib/framewatch"] == "lake"
    assert "FRAMEWATCH_SINK_URL" not in sink.get("environment", {})
    assert _mounts(serve)["/var/lib/framewatch-lake:ro"] == "lake"
    assert serve["environment"]["FRAMEWATCH_SINK_URL"] == "/var/lib/framewatch-lake/lake"
    assert _mounts(serve)["/var/lib/framewatch"] == _mounts(token)["/var/lib/framewatch"] == "serve-state"
    assert {"lake", "serve-state"} <= set(yaml.safe_load(COMPOSE_FILE.read_text())["volumes"])
    assert all(p.startswith("127.0.0.1:") for p in serve["ports"]), serve["ports"]
    assert serve["environment"]["FRAMEWATCH_SERVE_HOST"] == "0.0.0.0"
    assert serve["depends_on"]["kafka"]["condition"] == sink["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert serve["depends_on"]["serve-token"]["condition"] == "service_completed_successfully"
    assert "healthcheck" not in serve  # the image's check, /healthz on the metrics port, as every component
    assert token["restart"] == "no" and token["read_only"] is True and token["user"] == "10001:10001"


def test_serve_token_is_made_once_and_authenticates(tmp_path: Path) -> None:
    from framewatch.processing.serve.auth import TokenStore

    script = _services()["serve-token"]["command"][0]
    env = {**os.environ, "FRAMEWATCH_STATE_DIR": str(tmp_path)}
    for _ in range(2):  # a restart keeps the first token
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
    token_file = tmp_path / "serve" / "admin-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert token not in result.stdout + result.stderr
    store = TokenStore(tmp_path / "serve" / "tokens.json")
    (record,) = store.list()
    assert store.authenticate(token) == record
    assert record.role == "admin"
    assert token not in (tmp_path / "serve" / "tokens.json").read_text()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_prometheus_config_is_valid(tmp_path: Path) -> None:
    # rule_files points inside the container; check the scrape config alone.
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    config.pop("rule_files")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mounted_paths_exist() -> None:
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_DIR / source).exists() or source.endswith("prometheus/rules"), f"{name}: {source}"
    for config in ("sources.yaml", "codebook.yaml", "subscriptions.yaml"):
        assert (COMPOSE_DIR / "config" / config).is_file()
