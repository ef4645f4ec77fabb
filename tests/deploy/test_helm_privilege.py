"""Least privilege in the Helm chart: each pod gets only the secrets its component reads, Kafka
credentials come from a Secret (SASL) and the CA from a mounted file, and every NetworkPolicy egress
rule names its destinations, taken from values. Renders with the real helm (see test_helm.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.test_helm import (
    CHART,
    CI_VALUES,
    HELM,
    KUBE_VERSION,
    LAKE_PVC,
    LAKE_S3,
    POD_KINDS,
    STRIMZI_API,
    _run,
    render,
)

pytestmark = pytest.mark.skipif(HELM is None, reason="helm not found on PATH or in ~/.cache/framewatch/bin (run scripts/install-tools.sh)")

COMPONENTS = ("ingest", "processing", "aggregate", "notify")
NOTIFY_SECRETS = {"FRAMEWATCH_WEBHOOK_SECRET", "FRAMEWATCH_SMTP_PASSWORD"}
KAFKA_SASL_ENV = {"FRAMEWATCH_KAFKA_SASL_MECHANISM", "FRAMEWATCH_KAFKA_SASL_USERNAME", "FRAMEWATCH_KAFKA_SASL_PASSWORD"}
S3_KEYS = {"FRAMEWATCH_SINK_S3_ACCESS_KEY_ID", "FRAMEWATCH_SINK_S3_SECRET_ACCESS_KEY"}
# Secret-backed env each component may carry besides Kafka's login: the lake's keys, the API's token.
OWN_SECRETS = {"sink": S3_KEYS, "serve": S3_KEYS | {"FRAMEWATCH_SERVE_ADMIN_TOKEN"}}
METADATA = "169.254.169.254/32"
SASL = ("kafka.securityProtocol=SASL_SSL", "kafka.sasl.existingSecret=kafka-login", "kafka.sasl.usernameKey=user",
        "kafka.tls.caConfigMap=brokers-ca", "secrets.existingSecret=creds")


def _pods(docs: tuple[dict, ...]) -> dict[str, dict]:
    """Pod spec of each component."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]["spec"]
        for d in docs if d["kind"] in POD_KINDS
    }


def _env(pod: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod["containers"][0]["env"]}


def _secret_refs(pod: dict) -> dict[str, tuple[str, str]]:
    """Env name -> (Secret, key) of every variable the pod takes from a Secret."""
    return {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in _env(pod).items() if "secretKeyRef" in e.get("valueFrom", {})
    }


def _egress(docs: tuple[dict, ...]) -> dict[str, list[dict]]:
    """Egress rules of each component's NetworkPolicy."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["egress"]
        for d in docs if d["kind"] == "NetworkPolicy"
    }


def _rule_on(rules: list[dict], port: int) -> list[dict]:
    return [r for r in rules if port in {p["port"] for p in r["ports"]}]


def test_only_notify_gets_the_alerting_secrets() -> None:
    pods = _pods(render(None, False, "secrets.existingSecret=creds"))
    assert set(pods) == set(COMPONENTS)
    notify = _secret_refs(pods["notify"])
    assert notify == {"FRAMEWATCH_WEBHOOK_SECRET": ("creds", "webhook-secret"), "FRAMEWATCH_SMTP_PASSWORD": ("creds", "smtp-password")}
    for component in ("ingest", "processing", "aggregate"):
        assert _secret_refs(pods[component]) == {}, component
    # Only `framewatch dashboards push` reads the Grafana token: no pod gets it.
    assert not any("FRAMEWATCH_GRAFANA_TOKEN" in _env(pod) for pod in pods.values())


def test_a_subscription_secret_goes_to_notify_only() -> None:
    pods = _pods(render(None, False, "secrets.existingSecret=creds", "secrets.keys.notify.POLICY_DESK_SECRET=policy-desk"))
    assert _secret_refs(pods["notify"])["POLICY_DESK_SECRET"] == ("creds", "policy-desk")
    assert all("POLICY_DESK_SECRET" not in _env(pods[c]) for c in ("ingest", "processing", "aggregate"))


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
def test_ci_values_keep_alerting_secrets_in_notify(values: Path) -> None:
    for component, pod in _pods(render(values, True)).items():
        names = set(_env(pod))
        assert not names & {"FRAMEWATCH_GRAFANA_TOKEN"}, component
        if component != "notify":
            assert not names & NOTIFY_SECRETS, component
            allowed = {"FRAMEWATCH_KAFKA_SASL_USERNAME", "FRAMEWATCH_KAFKA_SASL_PASSWORD"} | OWN_SECRETS.get(component, set())
            assert set(_secret_refs(pod)) <= allowed, component
        # S3 keys and API tokens are never literal values, in any pod.
        for name in (S3_KEYS | {"FRAMEWATCH_SERVE_ADMIN_TOKEN"}) & names:
            assert "value" not in _env(pod)[name] and name in _secret_refs(pod), (component, name)


def test_plaintext_kafka_has_no_login() -> None:
    for component, pod in _pods(render(None, False)).items():
        env = _env(pod)
        assert env["FRAMEWATCH_KAFKA_SECURITY_PROTOCOL"]["value"] == "PLAINTEXT", component
        assert not KAFKA_SASL_ENV & set(env), component
        assert "FRAMEWATCH_KAFKA_SSL_CAFILE" not in env, component
        assert "kafka-ca" not in {v["name"] for v in pod["volumes"]}, component


def test_sasl_kafka_logs_in_from_the_secret_and_trusts_the_mounted_ca() -> None:
    docs = render(None, False, *SASL)
    pods = _pods(docs)
    assert set(pods) == set(COMPONENTS)
    for component, pod in pods.items():
        env = _env(pod)
        assert env["FRAMEWATCH_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL", component
        assert env["FRAMEWATCH_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512", component
        refs = _secret_refs(pod)
        assert refs["FRAMEWATCH_KAFKA_SASL_USERNAME"] == ("kafka-login", "user"), component
        assert refs["FRAMEWATCH_KAFKA_SASL_PASSWORD"] == ("kafka-login", "password"), component
        # A missing login must stop the pod, not start it without credentials.
        assert not env["FRAMEWATCH_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"].get("optional"), component
        (ca,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
        assert ca["configMap"]["name"] == "brokers-ca"
        assert ca["configMap"]["items"] == [{"key": "ca.crt", "path": "ca.crt"}]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kafka-ca"]
        assert mount["readOnly"] is True
        assert env["FRAMEWATCH_KAFKA_SSL_CAFILE"]["value"] == f"{mount['mountPath']}/ca.crt", component
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)


def test_ca_from_a_secret() -> None:
    pods = _pods(render(None, False, "kafka.securityProtocol=SSL", "kafka.tls.caSecret=brokers-ca", "kafka.tls.caKey=ca.pem"))
    for component, pod in pods.items():
        (ca,) = [v for v in pod["volumes"] if v["name"] == "kafka-ca"]
        assert ca["secret"]["secretName"] == "brokers-ca", component
        assert ca["secret"]["items"] == [{"key": "ca.pem", "path": "ca.crt"}]
        assert not KAFKA_SASL_ENV & set(_env(pod)), component


def test_strimzi_user_is_the_sasl_login_with_prefixed_acls() -> None:
    docs = render(CHART / "ci" / "strimzi-values.yaml", True)
    (user,) = [d for d in docs if d["kind"] == "KafkaUser"]
    assert user["apiVersion"] == STRIMZI_API
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    for acl in user["spec"]["authorization"]["acls"]:
        assert (acl["resource"]["name"], acl["resource"]["patternType"]) == ("framewatch.", "prefix")
    for component, pod in _pods(docs).items():
        env = _env(pod)
        assert env["FRAMEWATCH_KAFKA_SASL_USERNAME"]["value"] == user["metadata"]["name"], component
        assert _secret_refs(pod)["FRAMEWATCH_KAFKA_SASL_PASSWORD"] == ("framewatch-kafka-user", "password"), component


@pytest.mark.parametrize("values", [None, *CI_VALUES], ids=lambda p: p.stem if p else "chart-defaults")
def test_every_egress_rule_names_its_destinations(values: Path | None) -> None:
    docs = render(values, True)
    for component, rules in _egress(docs).items():
        assert rules, component
        for rule in rules:
            assert rule.get("to"), f"{component}: egress rule without destinations: {rule}"
            for peer in rule["to"]:
                block = peer.get("ipBlock")
                if block and block["cidr"] == "0.0.0.0/0":
                    assert METADATA in block["except"], component
                    assert "10.0.0.0/8" in block["except"], component


def test_default_egress_per_component() -> None:
    egress = _egress(render(None, False))
    for component, rules in egress.items():
        (dns,) = _rule_on(rules, 53)
        assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
        assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
        (kafka,) = _rule_on(rules, 9092)
        assert kafka["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kafka"}}}]
        assert bool(_rule_on(rules, 443)) == (component in {"ingest", "notify"}), component
        assert bool(_rule_on(rules, 80)) == (component == "ingest"), component
        assert bool(_rule_on(rules, 587)) == (component == "notify"), component


def test_egress_destinations_come_from_values() -> None:
    egress = _egress(render(
        None, False,
        "networkPolicy.dns.to[0].ipBlock.cidr=169.254.20.10/32",
        "networkPolicy.kafka.ports={9094}", "networkPolicy.kafka.to[0].ipBlock.cidr=10.20.0.0/16",
        "networkPolicy.smtp.ports={2525}", "networkPolicy.smtp.to[0].ipBlock.cidr=10.30.0.25/32",
        "networkPolicy.web.to[0].ipBlock.cidr=203.0.113.0/24",
    ))
    for component, rules in egress.items():
        assert _rule_on(rules, 53)[0]["to"] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}], component
        assert _rule_on(rules, 9094)[0]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}], component
        assert not _rule_on(rules, 9092), component
        smtp = _rule_on(rules, 2525)
        assert [r["to"] for r in smtp] == ([[{"ipBlock": {"cidr": "10.30.0.25/32"}}]] if component == "notify" else []), component
        for rule in _rule_on(rules, 443):
            assert rule["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}], component


def test_smtp_closes_when_it_has_no_ports(tmp_path: Path) -> None:
    values = tmp_path / "no-smtp.yaml"
    values.write_text("networkPolicy:\n  smtp:\n    ports: []\n")
    rules = _egress(render(values, False))
    assert not any(_rule_on(rules["notify"], port) for port in (25, 465, 587))


def test_s3_keys_come_only_through_secret_refs() -> None:
    docs = render(LAKE_S3, False)
    pods = _pods(docs)
    assert {"sink", "serve"} <= set(pods)
    for component, pod in pods.items():
        refs = _secret_refs(pod)
        if component in ("sink", "serve"):
            assert {n: refs[n] for n in S3_KEYS} == {
                "FRAMEWATCH_SINK_S3_ACCESS_KEY_ID": ("framewatch-s3", "access-key-id"),
                "FRAMEWATCH_SINK_S3_SECRET_ACCESS_KEY": ("framewatch-s3", "secret-access-key"),
            }, component
            # A missing key must stop the pod, not start it with the wrong credentials.
            assert not any(_env(pod)[n]["valueFrom"]["secretKeyRef"].get("optional") for n in S3_KEYS), component
        else:
            assert not S3_KEYS & set(_env(pod)), component
    # The chart's own Secret holds the API token; no workload carries it as text.
    token = "ci-placeholder-admin-token"
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    assert base64.b64decode(secret["data"]["admin-token"]).decode() == token
    assert _secret_refs(pods["serve"])["FRAMEWATCH_SERVE_ADMIN_TOKEN"] == (secret["metadata"]["name"], "admin-token")
    assert all(token not in yaml.safe_dump(d) for d in docs if d["kind"] != "Secret")
    # The token is read at start: a changed Secret must roll the API's pods.
    (serve,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-serve")]
    assert "checksum/serve-secret" in serve["spec"]["template"]["metadata"]["annotations"]
    # Without a Secret the pods use the standard AWS chain: no key variables at all.
    for component, pod in _pods(render(LAKE_S3, False, "lake.s3.existingSecret=")).items():
        assert not S3_KEYS & set(_env(pod)), component


def test_serve_tokens_from_an_existing_secret() -> None:
    docs = render(LAKE_PVC, False)
    assert not [d for d in docs if d["kind"] == "Secret"]
    serve = _pods(docs)["serve"]
    assert _secret_refs(serve) == {"FRAMEWATCH_SERVE_ADMIN_TOKEN": ("framewatch-api", "admin-token")}
    (tokens,) = [v for v in serve["volumes"] if v["name"] == "serve-tokens"]
    assert tokens["secret"]["secretName"] == "framewatch-api"
    assert tokens["secret"]["items"] == [{"key": "tokens.json", "path": "tokens.json"}]
    (mount,) = [m for m in serve["containers"][0]["volumeMounts"] if m["name"] == "serve-tokens"]
    assert mount["readOnly"] is True
    assert _env(serve)["FRAMEWATCH_SERVE_TOKENS_FILE"]["value"] == f"{mount['mountPath']}/tokens.json"
    for component, pod in _pods(docs).items():
        if component != "serve":
            assert "serve-tokens" not in {v["name"] for v in pod["volumes"]}, component


def _ingress(docs: tuple[dict, ...]) -> dict[str, list[dict]]:
    """Ingress rules of each component's NetworkPolicy."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["ingress"]
        for d in docs if d["kind"] == "NetworkPolicy"
    }


def test_lake_pods_network_policies() -> None:
    docs = render(LAKE_S3, False)
    egress, ingress = _egress(docs), _ingress(docs)
    assert {"sink", "serve"} <= set(egress)
    for component, rules in egress.items():
        s3 = _rule_on(rules, 8333)
        assert [r["to"] for r in s3] == ([[{
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "storage"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "seaweedfs"}},
        }]] if component in ("sink", "serve") else []), component
        assert _rule_on(rules, 9092), component
        assert bool(_rule_on(rules, 443)) == (component in {"ingest", "notify"}), component
    # The API takes calls on its port and is scraped on its metrics port; the sink is scraped like the others.
    assert [[p["port"] for p in r["ports"]] for r in ingress["serve"]] == [[9400], [8080]]
    assert "from" not in ingress["serve"][1]
    assert [[p["port"] for p in r["ports"]] for r in ingress["sink"]] == [[9400]]
    # A volume lake needs no S3 rule; apiFrom limits the callers of the API (not its scrapers).
    docs = render(LAKE_PVC, False)
    assert not any(_rule_on(rules, 443) for c, rules in _egress(docs).items() if c in ("sink", "serve"))
    assert _ingress(docs)["serve"][1]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--set", "kafka.securityProtocol=SASL_SSL"),
         "kafka.securityProtocol=SASL_SSL needs the Kafka credentials from a Secret: set kafka.sasl.existingSecret"),
        (("--set", "kafka.securityProtocol=SASL_PLAINTEXT"), "kafka.securityProtocol=SASL_PLAINTEXT needs the Kafka credentials from a Secret"),
        (("--set", "kafka.tls.caSecret=ca"), "does not use TLS"),
        (("--set", "kafka.securityProtocol=SSL,kafka.tls.caSecret=a,kafka.tls.caConfigMap=b"), "both set"),
        (("--set", "kafka.securityProtocol=SASL_SSL,kafka.strimzi.enabled=true,kafka.strimzi.user.enabled=true,kafka.strimzi.namespace=kafka"),
         "cannot read; copy it here and set kafka.sasl.existingSecret"),
        (("--set", "kafka.securityProtocol=SASL_SSL,kafka.strimzi.user.enabled=true"), "needs kafka.strimzi.enabled"),
        (("--set", "kafka.securityProtocol=SASL_SSL,kafka.strimzi.enabled=true,kafka.strimzi.user.enabled=true,kafka.sasl.mechanism=PLAIN"),
         "makes a SCRAM-SHA-512 user"),
        (("--set", "kafka.securityProtocol=TLS"), "securityProtocol"),
        (("--set-json", "networkPolicy.web.to=[]"), "minItems"),
        (("--set-json", "networkPolicy.dns.to=[{}]"), "minProperties"),
        # The flat map of before: every component got every key.
        (("--set", "secrets.keys.FRAMEWATCH_SMTP_PASSWORD=smtp-password"), "additional properties"),
        (("--set", "networkPolicy.kafkaPorts={9092}"), "additional properties"),
    ],
)
def test_bad_privilege_values_fail(args: tuple[str, ...], message: str) -> None:
    result = _run("template", "fw", str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert result.returncode != 0
    assert message in result.stderr
