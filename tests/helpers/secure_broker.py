"""A real single-node Kafka broker with a SASL_SSL client listener (SCRAM-SHA-512), for the tests
of Kafka security.

The test CA, the broker's certificate (for 127.0.0.1 and localhost) and its PKCS12 keystore are
made with the openssl CLI in the test's temporary folder, so no key is ever committed. The broker
runs like ``deploy/kafka/kafka.sh`` runs the development one (the same cached Kafka jars, Java 17,
one combined broker+controller in KRaft mode, its own session), but from a config written here:
its client and controller ports come from the OS, and the SCRAM users are created when the
storage is formatted (``StorageTool format --add-scram``), before the broker first starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framewatch.settings import Settings
from tests.helpers.paths import ROOT
from tests.helpers.ports import held_ports

MECHANISM = "SCRAM-SHA-512"
CLIENT_USER = "framewatch"
BROKER_USER = "broker"  # the broker's own login on its SASL_SSL listener (inter-broker)


def kafka_lib() -> Path:
    """The folder of the Kafka jars deploy/kafka/kafka.sh fetched (version from its pom.xml)."""
    pom = (ROOT / "deploy" / "kafka" / "pom.xml").read_text(encoding="utf-8")
    version = pom.split("<kafka.version>", 1)[1].split("</kafka.version>", 1)[0]
    cache = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch"))
    return cache / f"kafka-{version}" / "lib"


def _openssl(*args: str | Path, cwd: Path) -> None:
    result = subprocess.run(["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr[-1000:]}")


def make_ca(folder: Path, name: str) -> Path:
    """A self-signed test CA (key beside it); returns the certificate's PEM file."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)
    return folder / f"{name}.pem"


def make_broker_keystore(folder: Path, ca: Path, password: str) -> Path:
    """A PKCS12 keystore holding a certificate for 127.0.0.1 and localhost signed by *ca*."""
    ca_key = ca.with_suffix(".key")
    (folder / "broker.ext").write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
        "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n", encoding="utf-8")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "broker.key", "-out", "broker.csr", "-subj", "/CN=localhost", cwd=folder)
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", "broker.pem", "-days", "2", "-extfile", "broker.ext", cwd=folder)
    _openssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", ca,
             "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{password}", cwd=folder)
    return folder / "broker.p12"


@dataclass(frozen=True)
class SecureBroker:
    """A running SASL_SSL broker: where it listens, the CA that signed it, its client login."""

    bootstrap: str
    cafile: Path
    username: str
    password: str
    home: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """FRAMEWATCH_KAFKA_* variables that point a framewatch command at this broker."""
        values = {
            "FRAMEWATCH_KAFKA_BOOTSTRAP": self.bootstrap,
            "FRAMEWATCH_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "FRAMEWATCH_KAFKA_SASL_MECHANISM": MECHANISM,
            "FRAMEWATCH_KAFKA_SASL_USERNAME": self.username,
            "FRAMEWATCH_KAFKA_SASL_PASSWORD": self.password,
            "FRAMEWATCH_KAFKA_SSL_CAFILE": str(self.cafile),
        }
        values.update(overrides)
        return values

    def settings(self, **overrides: Any) -> Settings:
        """Settings for this broker (SASL_SSL with the client login), plus *overrides*."""
        values: dict[str, Any] = {
            "kafka_bootstrap": self.bootstrap, "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": MECHANISM, "kafka_sasl_username": self.username,
            "kafka_sasl_password": self.password, "kafka_ssl_cafile": self.cafile,
        }
        values.update(overrides)
        return Settings(**values)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the broker's logs, for a failing test's message."""
        return "\n".join(p.read_text(errors="replace")[-chars:] for p in sorted((self.home / "logs").glob("*")))


def _server_properties(home: Path, port: int, controller_port: int, keystore: Path, keystore_password: str,
                       ca: Path, broker_password: str) -> str:
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{BROKER_USER}" password="{broker_password}";')
    return f"""process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms={MECHANISM}
sasl.mechanism.inter.broker.protocol={MECHANISM}
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={jaas}
ssl.keystore.type=PKCS12
ssl.keystore.location={keystore}
ssl.keystore.password={keystore_password}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
ssl.client.auth=none
log.dirs={home}/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
"""


def _log4j(home: Path) -> str:
    return f"""status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {home}/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def _java(home: Path, lib: Path, *args: str, heap: str = "384m") -> list[str]:
    # the JVM options of deploy/kafka/kafka.sh's java_cmd
    return ["java", "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}", "-cp", f"{lib}/*", *args]


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the broker's process group (a clean shutdown), SIGKILL it after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def secure_broker(home: Path, start_timeout_s: float = 240) -> Iterator[SecureBroker]:
    """Start a SASL_SSL broker in *home* (CA, keystore, config, data, logs), yield it once it
    has started, and stop its process group at the end."""
    lib = kafka_lib()
    if not (lib / ".complete").is_file():
        raise RuntimeError(f"no Kafka jars in {lib}: run deploy/kafka/kafka.sh bootstrap")
    (home / "logs").mkdir(parents=True, exist_ok=True)
    tls = home / "tls"
    ca = make_ca(tls, "test-ca")
    store_password = secrets.token_hex(12)
    keystore = make_broker_keystore(tls, ca, store_password)
    client_password, broker_password = secrets.token_hex(12), secrets.token_hex(12)
    (home / "log4j2.properties").write_text(_log4j(home), encoding="utf-8")
    with held_ports(2) as (port, controller_port):
        config = home / "server.properties"
        config.write_text(_server_properties(home, port, controller_port, keystore, store_password, ca,
                                             broker_password), encoding="utf-8")
        cluster_id = subprocess.run(_java(home, lib, "kafka.tools.StorageTool", "random-uuid"),
                                    capture_output=True, text=True, check=True, timeout=120).stdout.strip()
        subprocess.run(_java(home, lib, "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id,
                             "-c", str(config),
                             "--add-scram", f"{MECHANISM}=[name={CLIENT_USER},password={client_password}]",
                             "--add-scram", f"{MECHANISM}=[name={BROKER_USER},password={broker_password}]"),
                       capture_output=True, check=True, timeout=120)
        with (home / "logs" / "server.out").open("ab") as out:
            proc = subprocess.Popen(_java(home, lib, "kafka.Kafka", str(config)), stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        broker = SecureBroker(f"127.0.0.1:{port}", ca, CLIENT_USER, client_password, home)
        try:
            _wait_started(proc, broker, port, start_timeout_s)
        except BaseException:
            _stop(proc)
            raise
    try:
        yield broker
    finally:
        _stop(proc)


def _wait_started(proc: subprocess.Popen[bytes], broker: SecureBroker, port: int, timeout_s: float) -> None:
    log = broker.home / "logs" / "server.log"
    deadline = time.monotonic() + timeout_s
    while not (log.is_file() and "Kafka Server started" in log.read_text(errors="replace") and _listening(port)):
        if proc.poll() is not None:
            raise RuntimeError(f"the SASL_SSL broker exited during start-up:\n{broker.log_tail()}")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the SASL_SSL broker did not start within {timeout_s:.0f} s:\n{broker.log_tail()}")
        time.sleep(0.5)
