"""Kafka security on a real broker with a SASL_SSL listener (SCRAM-SHA-512, a test CA): the
pipeline's commands, configured only through FRAMEWATCH_KAFKA_* variables, carry a feed's items
through it; a wrong password, a plaintext client and an untrusted CA each fail at start-up with
one error that names the cause and never the password.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from framewatch import contracts
from framewatch.contracts import FramedItem
from framewatch.kafka_connect import (
    EXPECTS_TLS,
    LOGIN,
    NOT_SASL,
    NOT_TLS,
    UNTRUSTED,
    KafkaConnectError,
    connect,
)
from framewatch.kafka_io import make_producer, read_to_end
from framewatch.service import EXIT_RUNTIME, EXIT_USAGE, run_component
from framewatch.settings import AGGREGATES, FRAMED_ITEMS, RAW_ITEMS, Settings
from tests.helpers.feed_server import FeedServer, Route, rss
from tests.helpers.paths import ROOT
from tests.helpers.ports import refusing_port
from tests.helpers.secure_broker import SecureBroker, make_ca, secure_broker
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration

CODEBOOK = ROOT / "tests" / "fixtures" / "e2e" / "codebook.yaml"
ENTRIES = [(f"sec{n}", f"social credit cameras surveillance punish citizens story {n}") for n in range(6)]
WRONG_PASSWORD = "not-the-password-7f3a"
QUICK = 3000  # bootstrap_timeout_ms of clients meant to fail: the diagnosis, not the wait, is tested


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """One SASL_SSL broker for the module (its start-up is the slow part)."""
    with secure_broker(tmp_path_factory.mktemp("secure-kafka")) as running:
        yield running


def command_env(broker: SecureBroker, prefix: str, state: Path, **kafka: str) -> dict[str, str]:
    """The environment of a framewatch command: the broker's FRAMEWATCH_KAFKA_* and no other
    Kafka setting inherited from the test's own environment."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}
    return {
        **inherited, **broker.env(**kafka), "FRAMEWATCH_TOPIC_PREFIX": prefix, "FRAMEWATCH_STATE_DIR": str(state),
        "FRAMEWATCH_TOPIC_PARTITIONS": "1", "FRAMEWATCH_METRICS_PORT": "0", "FRAMEWATCH_MODEL_NAME": "fake",
        "FRAMEWATCH_BATCH_MAX_WAIT_MS": "300", "FRAMEWATCH_PARQUET_ENABLED": "false", "FRAMEWATCH_LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
    }


def framewatch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "framewatch", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(600)
def test_ingest_process_aggregate_run_through_sasl_ssl_set_only_by_env(broker: SecureBroker, tmp_path: Path) -> None:
    feeds = FeedServer().start()
    feeds.routes["/news.xml"] = Route(body=rss("Secure news", ENTRIES))
    sources = tmp_path / "sources.yaml"
    sources.write_text(f"sources:\n  - {{id: secure-news, url: '{feeds.url('/news.xml')}', kind: news, "
                       "poll_interval: 1m, allow_private: true}\n")
    prefix = f"sec{uuid.uuid4().hex[:8]}."
    commands = {"process": ["--codebook", str(CODEBOOK)], "aggregate": [], "ingest": ["--sources", str(sources)]}
    procs = {name: framewatch([name, *args], command_env(broker, prefix, tmp_path / name), tmp_path / f"{name}.log")
             for name, args in commands.items()}
    reader = broker.settings(topic_prefix=prefix)

    def logs() -> str:
        return "\n".join(f"--- {n}\n{(tmp_path / f'{n}.log').read_text(errors='replace')[-3000:]}" for n in commands)

    def topic_has(topic: str, least: int) -> list[tuple[bytes | None, bytes | None]]:
        for name, proc in procs.items():
            assert proc.poll() is None, f"{name} exited with {proc.returncode}:\n{logs()}"
        records = list(read_to_end(reader, reader.topic(topic)))
        return records if len(records) >= least else []

    try:
        raw = wait_until("the feed's items on raw-items", lambda: topic_has(RAW_ITEMS, len(ENTRIES)), 240, 1.0)
        framed = wait_until("a framed record per item", lambda: topic_has(FRAMED_ITEMS, len(ENTRIES)), 240, 1.0)
        aggregates = wait_until("aggregates of the framed items", lambda: topic_has(AGGREGATES, 1), 180, 1.0)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        feeds.stop()
    assert len(raw) == len(ENTRIES)
    records = [contracts.decode(FramedItem, value or b"") for _, value in framed]
    assert {r.watch_id for r in records} == {"scs"} and len({r.item_id for r in records}) == len(ENTRIES)
    assert aggregates
    assert broker.password not in logs()


def test_wrong_password_fails_at_start_up_with_one_clear_error(broker: SecureBroker, tmp_path: Path) -> None:
    # the command waits out kafka-python's bootstrap timeout (30 s): started first, checked last
    log = tmp_path / "aggregate.log"
    env = command_env(broker, "wrongpw.", tmp_path / "state", FRAMEWATCH_KAFKA_SASL_PASSWORD=WRONG_PASSWORD)
    with log.open("wb") as out:
        command = subprocess.Popen([sys.executable, "-m", "framewatch", "aggregate"], env=env, stdout=out,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    with pytest.raises(KafkaConnectError) as caught:
        make_producer(broker.settings(kafka_sasl_password=WRONG_PASSWORD), bootstrap_timeout_ms=QUICK)
    assert caught.value.cause == LOGIN
    assert "FRAMEWATCH_KAFKA_SASL_PASSWORD" in str(caught.value) and WRONG_PASSWORD not in str(caught.value)

    _, stderr = command.communicate(timeout=180)
    errors = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert command.returncode == EXIT_USAGE, stderr.decode()[-2000:]
    assert len(errors) == 1 and "refused the login of user 'framewatch'" in errors[0]
    assert "FRAMEWATCH_KAFKA_SASL_PASSWORD" in errors[0]
    assert WRONG_PASSWORD not in stderr.decode() + log.read_text(errors="replace")


def test_plaintext_client_at_the_sasl_ssl_port_is_told_to_use_tls(broker: SecureBroker) -> None:
    plaintext = broker.settings(kafka_security_protocol="PLAINTEXT")
    with pytest.raises(KafkaConnectError) as caught:
        connect(KafkaAdminClient, plaintext, bootstrap_timeout_ms=QUICK)
    assert caught.value.cause == EXPECTS_TLS and "SASL_SSL" in str(caught.value)


def test_a_certificate_from_an_untrusted_ca_is_refused(broker: SecureBroker, tmp_path: Path) -> None:
    stranger = make_ca(tmp_path, "stranger-ca")
    with pytest.raises(KafkaConnectError) as caught:
        connect(KafkaAdminClient, broker.settings(kafka_ssl_cafile=stranger), bootstrap_timeout_ms=QUICK)
    assert caught.value.cause == UNTRUSTED and "FRAMEWATCH_KAFKA_SSL_CAFILE" in str(caught.value)


def test_tls_or_sasl_clients_at_a_plaintext_broker_are_told_so(kafka_bootstrap: str) -> None:
    cases = {"SSL": NOT_TLS, "SASL_SSL": NOT_TLS, "SASL_PLAINTEXT": NOT_SASL}
    for protocol, cause in cases.items():
        settings = Settings(kafka_bootstrap=kafka_bootstrap, kafka_security_protocol=protocol,
                            kafka_sasl_username="u", kafka_sasl_password="p")
        with pytest.raises(KafkaConnectError) as caught:
            connect(KafkaAdminClient, settings, bootstrap_timeout_ms=QUICK)
        assert caught.value.cause == cause, (protocol, str(caught.value))


def test_no_broker_ends_the_component_with_exit_1_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with refusing_port() as port:
        settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", metrics_port=0)

        def body(_: object) -> int:
            connect(KafkaAdminClient, settings, bootstrap_timeout_ms=1000)
            return 0

        with pytest.raises(SystemExit) as exited:
            run_component("test", settings, body, serve_health=False)
    assert exited.value.code == EXIT_RUNTIME
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot connect to Kafka at 127.0.0.1:{port} with FRAMEWATCH_KAFKA_SECURITY_PROTOCOL="
                      f"PLAINTEXT: nothing listens at 127.0.0.1:{port}; is the broker up and FRAMEWATCH_KAFKA_BOOTSTRAP right?"]


def test_an_empty_variable_means_unset_never_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CAFILE", "CERTFILE", "KEYFILE"):
        monkeypatch.setenv(f"FRAMEWATCH_KAFKA_SSL_{name}", "")
    monkeypatch.setenv("FRAMEWATCH_KAFKA_SASL_USERNAME", " ")
    settings = Settings()
    assert (settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_sasl_username) == (None, None, None)
    assert "ssl_cafile" not in settings.kafka_client_config()
