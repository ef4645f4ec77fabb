"""The Helm chart: lint and render every ci/*-values.yaml with and without the Prometheus Operator
API, validate the manifests offline against a fixed Kubernetes version, assert the pod security
and scaling rules, and scan with checkov. Tools come from scripts/install-tools.sh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from framewatch import settings as s
from tests.helpers.paths import ROOT

CHART = ROOT / "helm" / "framewatch"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
TOOLS = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch"))
KUBE_VERSION = "1.30.0"
MONITORING_API = "monitoring.coreos.com/v1"
STRIMZI_API = "kafka.strimzi.io/v1beta2"
COMPACTED_TOPICS = {s.AGGREGATE_STATE, s.LABELS, s.SUBSCRIPTIONS, s.CODEBOOK_CHANGES}
ALL_TOPICS = (s.RAW_ITEMS, s.FRAMED_ITEMS, s.AGGREGATES, s.ALERTS, s.DEAD_LETTERS, *COMPACTED_TOPICS)
# Custom resources: no schema in kubernetes-validate, checked by the assertions below instead.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule", "KafkaTopic", "KafkaUser"}
POD_KINDS = {"Deployment", "StatefulSet"}
# The API has no metrics port and no /healthz: it is probed on its unauthenticated schema.
PROBES: dict[str, tuple[dict[str, str], ...]] = {}  # every component is probed on its metrics port
METRICS_PROBES = ({"path": "/healthz", "port": "metrics"}, {"path": "/readyz", "port": "metrics"})
COMMANDS = {
    "ingest": ["ingest", "--sources", "/etc/framewatch/sources.yaml"],
    "processing": ["process", "--codebook", "/etc/framewatch/codebook.yaml"],
    "aggregate": ["aggregate"],
    "notify": ["notify", "--subscriptions", "/etc/framewatch/subscriptions.yaml"],
    "sink": ["sink"],
    "serve": ["serve"],
}
LAKE_PVC = CHART / "ci" / "lake-pvc-values.yaml"
LAKE_S3 = CHART / "ci" / "lake-s3-values.yaml"
READ_MODEL = ("sink.enabled=true", "serve.enabled=true", "lake.persistence.enabled=true", "serve.auth.existingSecret=api")
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules" / "framewatch.rules.yml"
# checkov findings accepted on purpose (checkov without an API key reports no severities).
CHECKOV_SKIPS = {
    # The digest of a release is not known to the chart; set image.digest to pin one.
    "CKV_K8S_43": "Image should use digest",
    # Tags are pinned (appVersion); IfNotPresent avoids a registry round trip per pod start.
    "CKV_K8S_15": "Image Pull Policy should be Always",
    # framewatch's settings read FRAMEWATCH_* variables; the refs come from an existing Secret.
    "CKV_K8S_35": "Prefer using secrets as files over secrets as environment variables",
}


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    cached = TOOLS / "bin" / "helm"
    return str(cached) if cached.is_file() else None


HELM = _helm()
pytestmark = pytest.mark.skipif(HELM is None, reason="helm not found on PATH or in ~/.cache/framewatch/bin (run scripts/install-tools.sh)")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([HELM, *args], capture_output=True, text=True, cwd=ROOT)  # type: ignore[list-item]


@cache
def render(values: Path | None, monitoring: bool, *sets: str) -> tuple[dict, ...]:
    """Rendered manifests of the chart (cached: helm is slow to start)."""
    args = ["template", "fw", str(CHART), "--namespace", "framewatch", "--kube-version", KUBE_VERSION]
    if values:
        args += ["-f", str(values)]
    if monitoring:
        args += ["--api-versions", MONITORING_API, "--api-versions", STRIMZI_API]
    for item in sets:
        args += ["--set", item]
    result = _run(*args)
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def _values(path: Path) -> dict:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    overrides = yaml.safe_load(path.read_text()) or {}

    def merge(base: dict, extra: dict) -> dict:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    return merge(defaults, overrides)


CASES = [pytest.param(v, m, id=f"{v.stem}-{'monitoring' if m else 'plain'}") for v in CI_VALUES for m in (False, True)]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_lint(values: Path) -> None:
    result = _run("lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION, "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("values", "monitoring"), CASES)
def test_manifests_validate_offline(values: Path, monitoring: bool) -> None:
    docs = render(values, monitoring)
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
        assert doc["metadata"].get("namespace"), f"{doc['kind']}/{doc['metadata']['name']} has no namespace"


@pytest.mark.parametrize(("values", "monitoring"), CASES)
def test_every_pod_is_locked_down(values: Path, monitoring: bool) -> None:
    workloads = [d for d in render(values, monitoring) if d["kind"] in POD_KINDS]
    assert workloads
    for workload in workloads:
        spec = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        live, ready = PROBES.get(workload["metadata"]["labels"]["app.kubernetes.io/component"], METRICS_PROBES)
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"] for v in spec["volumes"]} | {
            t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])
        }
        assert "state" in volumes, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
            assert container["livenessProbe"]["httpGet"] == live, name
            assert container["readinessProbe"]["httpGet"] == ready, name
            assert container["securityContext"]["privileged"] is False, name
            assert container["resources"]["requests"] and container["resources"]["limits"], name
            assert "/var/lib/framewatch" in {m["mountPath"] for m in container["volumeMounts"]}, name
            env = {e["name"]: e for e in container["env"]}
            assert env["FRAMEWATCH_METRICS_HOST"]["value"] == "0.0.0.0"
            assert env["FRAMEWATCH_STATE_DIR"]["value"] == "/var/lib/framewatch"


@pytest.mark.parametrize(("values", "monitoring"), CASES)
def test_components_and_scaling(values: Path, monitoring: bool) -> None:
    docs = render(values, monitoring)
    config = _values(values)
    partitions = config["kafka"]["partitions"]
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    commands = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]["containers"][0]["args"]
        for d in by_kind.get("Deployment", []) + by_kind.get("StatefulSet", [])
    }
    assert commands == {c: args for c, args in COMMANDS.items() if config[c]["enabled"]}
    replicas = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"].get("replicas") for d in by_kind["Deployment"]}
    for component in ("sink", "serve"):
        assert replicas.get(component) == (config[component]["replicas"] if config[component]["enabled"] else None), component
    (ingest,) = by_kind["StatefulSet"]
    env = {e["name"]: e for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FRAMEWATCH_SHARD_COUNT"]["value"] == str(ingest["spec"]["replicas"])
    assert env["FRAMEWATCH_SHARD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        assert hpa["spec"]["maxReplicas"] <= partitions
    processing = next(d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-processing"))
    assert processing["spec"].get("replicas", 0) <= partitions
    assert ("HorizontalPodAutoscaler" in by_kind) == config["processing"]["autoscaling"]["enabled"]
    assert ("ServiceMonitor" in by_kind) == (monitoring and config["serviceMonitor"]["enabled"])
    assert ("KafkaTopic" in by_kind) == (monitoring and config["kafka"]["strimzi"]["enabled"])
    assert ("PodDisruptionBudget" in by_kind) == config["podDisruptionBudget"]["enabled"]
    assert ("NetworkPolicy" in by_kind) == config["networkPolicy"]["enabled"]
    for topic in by_kind.get("KafkaTopic", []):
        assert topic["spec"]["partitions"] == partitions
        assert topic["spec"]["topicName"].startswith(config["kafka"]["topicPrefix"])
    if "KafkaTopic" in by_kind:
        # every topic framewatch uses is declared, the compacted ones (state, labels, subscriptions) compacted
        declared = {t["spec"]["topicName"].removeprefix(config["kafka"]["topicPrefix"]): t["spec"]["config"]
                    for t in by_kind["KafkaTopic"]}
        assert set(declared) == set(ALL_TOPICS)
        assert {name for name, conf in declared.items() if conf.get("cleanup.policy") == "compact"} == COMPACTED_TOPICS


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("processing.autoscaling.enabled=true", "processing.autoscaling.maxReplicas=7"), "exceeds kafka.partitions"),
        (("processing.replicas=7",), "exceeds kafka.partitions"),
        (("kafka.partitions=0",), "minimum"),
        (("kafka.bootstrapServers=no-port",), "bootstrapServers"),
        (("typoedKey=1",), "additional properties"),
        (("sink.enabled=true",), "sink/serve need a lake both can reach"),
        (("serve.enabled=true", "serve.auth.adminToken=x"), "sink/serve need a lake both can reach"),
        (("sink.enabled=true", "lake.s3.enabled=true", "lake.s3.bucket=lake", "lake.persistence.enabled=true"), "both set"),
        (("sink.enabled=true", "lake.s3.enabled=true"), "needs lake.s3.bucket"),
        (("serve.enabled=true", "lake.persistence.enabled=true"), "serve needs an API token"),
        (("serve.enabled=true", "lake.persistence.enabled=true", "serve.auth.existingSecret=api", "serve.auth.adminToken=x"),
         "the tokens come from one Secret"),
        ((*READ_MODEL, "serve.auth.adminTokenKey=", "serve.auth.tokensFileKey="), "no token to accept"),
        ((*READ_MODEL, "serve.ingress.enabled=true", "serve.ingress.host="), "serve.ingress.host is required"),
        ((*READ_MODEL, "lake.persistence.accessModes={ReadWriteSometimes}"), "accessModes"),
        (("lake.s3.bucket=Not_A_Bucket",), "bucket"),
        (("serve.ingress.tlsSecret=x",), "additional properties"),
    ],
)
def test_bad_values_fail(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "fw", str(CHART), "--kube-version", KUBE_VERSION]
    for item in sets:
        args += ["--set", item]
    result = _run(*args)
    assert result.returncode != 0
    assert message in result.stderr


def _named(docs: tuple[dict, ...], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _container(docs: tuple[dict, ...], component: str) -> tuple[dict, dict]:
    """(pod spec, first container) of a component's workload."""
    (pod,) = [d["spec"]["template"]["spec"] for d in docs
              if d["kind"] in POD_KINDS and d["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return pod, pod["containers"][0]


def test_sink_and_serve_mount_the_same_lake_claim() -> None:
    docs = render(LAKE_PVC, False)
    config = _values(LAKE_PVC)["lake"]["persistence"]
    (claim,) = _named(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == config["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == config["size"]
    assert claim["spec"]["storageClassName"] == config["storageClass"]
    mounted = {}
    for component in ("sink", "serve"):
        pod, container = _container(docs, component)
        (volume,) = [v for v in pod["volumes"] if v["name"] == "lake"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "lake"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FRAMEWATCH_SINK_URL"] == mount["mountPath"], component
        mounted[component] = (volume["persistentVolumeClaim"]["claimName"], mount["mountPath"], mount["readOnly"])
    assert mounted == {"sink": (claim["metadata"]["name"], "/var/lib/framewatch-lake", False),
                       "serve": (claim["metadata"]["name"], "/var/lib/framewatch-lake", True)}
    # An existing claim replaces the chart's in both pods.
    docs = render(LAKE_PVC, False, "lake.persistence.existingClaim=shared-lake")
    assert not _named(docs, "PersistentVolumeClaim")
    for component in ("sink", "serve"):
        pod, _ = _container(docs, component)
        assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if v["name"] == "lake"] == ["shared-lake"]


def test_s3_lake_has_no_volume_and_the_bucket_url() -> None:
    docs = render(LAKE_S3, False)
    s3 = _values(LAKE_S3)["lake"]["s3"]
    assert not _named(docs, "PersistentVolumeClaim")
    for component in ("sink", "serve"):
        pod, container = _container(docs, component)
        assert "lake" not in {v["name"] for v in pod["volumes"]}, component
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FRAMEWATCH_SINK_URL"] == f"s3://{s3['bucket']}/{s3['prefix'].strip('/')}", component
        assert env["FRAMEWATCH_SINK_S3_ENDPOINT"] == s3["endpoint"], component
        assert env["FRAMEWATCH_SINK_S3_REGION"] == s3["region"], component


def test_serve_service_and_ingress() -> None:
    config = _values(LAKE_PVC)["serve"]
    docs = render(LAKE_PVC, True)
    services = _named(docs, "Service")
    api = services["fw-framewatch-serve"]
    assert api["spec"]["ports"] == [{"name": "http", "port": config["port"], "targetPort": "http", "protocol": "TCP"},
                                    {"name": "metrics", "port": 9400, "targetPort": "metrics", "protocol": "TCP"}]
    assert api["metadata"]["labels"]["framewatch.io/metrics"] == "true"  # scraped like every component
    assert services["fw-framewatch-sink"]["metadata"]["labels"]["framewatch.io/metrics"] == "true"
    (monitor,) = _named(docs, "ServiceMonitor").values()
    assert monitor["spec"]["selector"]["matchLabels"]["framewatch.io/metrics"] == "true"
    _, container = _container(docs, "serve")
    assert container["ports"] == [{"name": "metrics", "containerPort": 9400, "protocol": "TCP"},
                                  {"name": "http", "containerPort": config["port"], "protocol": "TCP"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["FRAMEWATCH_SERVE_HOST"], env["FRAMEWATCH_SERVE_PORT"]) == ("0.0.0.0", str(config["port"]))
    (ingress,) = _named(docs, "Ingress").values()
    ing = config["ingress"]
    assert ingress["spec"]["ingressClassName"] == ing["className"]
    assert ingress["spec"]["tls"] == ing["tls"]
    assert ingress["metadata"]["annotations"] == ing["annotations"]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == ing["host"]
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": api["metadata"]["name"], "port": {"name": "http"}}
    pdbs = _named(docs, "PodDisruptionBudget")
    assert {"fw-framewatch-sink", "fw-framewatch-serve"} <= set(pdbs)


@pytest.mark.parametrize(("values", "sets"), [(None, READ_MODEL), (LAKE_S3, ())], ids=["chart-defaults", "lake-s3"])
def test_ingress_only_when_enabled(values: Path | None, sets: tuple[str, ...]) -> None:
    for docs in (render(values, False), render(values, False, *sets)):
        assert not _named(docs, "Ingress")
    assert "fw-framewatch-serve" in _named(render(values, False, *sets), "Deployment")
    (ingress,) = _named(render(values, False, *sets, "serve.ingress.enabled=true"), "Ingress").values()
    assert "ingressClassName" not in ingress["spec"] and "tls" not in ingress["spec"]


def test_dashboards_ship_as_sidecar_configmaps() -> None:
    maps = [d for d in render(None, False) if d["kind"] == "ConfigMap" and "-dashboard-" in d["metadata"]["name"]]
    shipped = {key: text for m in maps for key, text in m["data"].items()}
    committed = {p.name: p.read_text() for p in (ROOT / "dashboards" / "json").glob("*.json")}
    assert set(shipped) == set(committed)
    for name, text in shipped.items():
        assert json.loads(text) == json.loads(committed[name])
    for m in maps:
        assert m["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_prometheus_rule_carries_the_alert_rules() -> None:
    if not RULES_FILE.is_file():
        pytest.skip(f"{RULES_FILE.relative_to(ROOT)} not written yet")
    rules = [d for d in render(None, True) if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1, "run `framewatch dashboards build` to copy the rules into the chart"
    assert rules[0]["spec"]["groups"] == yaml.safe_load(RULES_FILE.read_text())["groups"]
    assert not [d for d in render(None, False) if d["kind"] == "PrometheusRule"]


def _checkov() -> str | None:
    found = shutil.which("checkov")
    cached = TOOLS / "tools-checkov" / "bin" / "checkov"
    return found or (str(cached) if cached.is_file() else None)


@pytest.mark.skipif(_checkov() is None, reason="checkov not installed (scripts/install-tools.sh puts it in ~/.cache/framewatch/tools-checkov)")
@pytest.mark.parametrize("values", [p for p in CI_VALUES if p.stem in {"default-values", "hpa-values", "monitoring-values", "sasl-values", "strimzi-values", "lake-pvc-values", "lake-s3-values"}], ids=lambda p: p.stem)
def test_checkov_finds_nothing_unexpected(values: Path, tmp_path: Path) -> None:
    result = _run(
        "template", "fw", str(CHART), "--namespace", "framewatch", "--kube-version", KUBE_VERSION,
        "-f", str(values), "--api-versions", MONITORING_API, "--api-versions", STRIMZI_API, "--output-dir", str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    scan = subprocess.run(
        [_checkov(), "-d", str(tmp_path), "--framework", "kubernetes", "--quiet", "--compact", "-o", "json",  # type: ignore[list-item]
         "--skip-check", ",".join(CHECKOV_SKIPS)],
        capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    reports = json.loads(scan.stdout) if scan.stdout.strip() else []
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['check_name']} ({c['resource']})"
        for r in reports for c in r.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert sum(r.get("summary", {}).get("passed", 0) for r in reports) > 0, scan.stderr[-2000:]
