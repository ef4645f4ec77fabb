"""Connecting a Kafka client with the settings' servers, protocol, TLS and SASL, and saying why
it could not: kafka-python ends every failed bootstrap in a bare KafkaTimeoutError after 30 s of
"socket disconnected" (it drops the broker's error response that comes with the close), so
:func:`diagnose` probes the first server itself: TCP, TLS, the SASL handshake."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any, TypeVar

from kafka.errors import KafkaError

from framewatch.errors import FramewatchError
from framewatch.settings import Settings

C = TypeVar("C")

# why a client could not connect
REFUSED, UNREACHABLE, TLS_FILES, UNTRUSTED = "refused", "unreachable", "tls_files", "untrusted_certificate"
HOSTNAME, EXPECTS_TLS, NOT_TLS, UNKNOWN = "hostname_mismatch", "broker_expects_tls", "broker_not_tls", "unknown"
EXPECTS_SASL, NOT_SASL, MECHANISM, LOGIN = "broker_expects_sasl", "broker_not_sasl", "sasl_mechanism", "login_refused"
WORLD_CAUSES = frozenset({REFUSED, UNREACHABLE, UNKNOWN})  # the broker is away; the others are settings


class KafkaConnectError(FramewatchError):
    """A Kafka client could not connect; ``cause`` is one of the names above."""

    def __init__(self, cause: str, message: str) -> None:
        super().__init__(message)
        self.cause = cause


def diagnose(settings: Settings, error: BaseException, timeout_s: float = 5.0) -> KafkaConnectError:
    """The error for *error*, a client's failed bootstrap, naming its cause (never the password)."""
    host, port = settings.bootstrap_servers[0].rsplit(":", 1)
    cause, advice = _probe(settings, host.strip("[]"), int(port), timeout_s) or (UNKNOWN, f"{type(error).__name__}: {error}"[:500])
    return KafkaConnectError(cause, f"cannot connect to Kafka at {settings.kafka_bootstrap} with "
                                    f"FRAMEWATCH_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol}: {advice}")


def _probe(settings: Settings, host: str, port: int, timeout_s: float) -> tuple[str, str] | None:
    """(cause, advice), or None when each step worked (the cause lies elsewhere)."""
    try:
        conn = socket.create_connection((host, port), timeout=timeout_s)
    except ConnectionRefusedError:
        return REFUSED, f"nothing listens at {host}:{port}; is the broker up and FRAMEWATCH_KAFKA_BOOTSTRAP right?"
    except OSError as exc:
        return UNREACHABLE, f"no connection to {host}:{port} ({exc}); check FRAMEWATCH_KAFKA_BOOTSTRAP and the network"
    with conn:
        if not settings.kafka_security_protocol.endswith("SSL"):
            probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            probe.check_hostname, probe.verify_mode = False, ssl.CERT_NONE  # only: is TLS spoken here?
            with contextlib.suppress(OSError), socket.create_connection((host, port), timeout_s) as raw, probe.wrap_socket(raw):
                return EXPECTS_TLS, "this port speaks TLS: set FRAMEWATCH_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
            return _sasl_cause(settings, _sasl_handshake(conn, settings.kafka_sasl_mechanism))
        try:  # the context kafka-python builds
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version, context.check_hostname = ssl.TLSVersion.TLSv1_2, settings.kafka_ssl_check_hostname
            context.load_verify_locations(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else context.load_default_certs()
            if settings.kafka_ssl_certfile is not None:
                context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)
        except (OSError, ValueError) as exc:
            return TLS_FILES, f"the TLS files cannot be used ({exc}); check FRAMEWATCH_KAFKA_SSL_CAFILE, _CERTFILE, _KEYFILE"
        try:
            with context.wrap_socket(conn, server_hostname=host) as tls:
                return _sasl_cause(settings, _sasl_handshake(tls, settings.kafka_sasl_mechanism))
        except ssl.SSLCertVerificationError as exc:  # 62, 64: the name or address is not on it
            if exc.verify_code in (62, 64):
                return HOSTNAME, f"the broker's certificate does not name {host}; bootstrap with a name it has"
            return UNTRUSTED, (f"the broker's TLS certificate is not trusted by {settings.kafka_ssl_cafile or 'the system CAs'} "
                               f"({exc.verify_message}); set FRAMEWATCH_KAFKA_SSL_CAFILE to the CA that signed it")
        except OSError as exc:  # wrong version number, EOF: no TLS on this port
            return NOT_TLS, f"this port does not speak TLS ({exc}); set PLAINTEXT or SASL_PLAINTEXT, or use the TLS port"


def _sasl_handshake(conn: socket.socket, mechanism: str) -> tuple[int, list[str]] | None:
    """SaslHandshake v1 (API key 17) for *mechanism*: (error code, broker's mechanisms) or None."""
    client, name = b"framewatch-probe", mechanism.encode()
    body = struct.pack(">hhih", 17, 1, 1, len(client)) + client + struct.pack(">h", len(name)) + name
    try:
        conn.sendall(struct.pack(">i", len(body)) + body)
        stream = conn.makefile("rb")  # reads whole frames, over TLS too
        data = stream.read(min(65536, max(0, struct.unpack(">i", stream.read(4))[0])))
        _, error_code = struct.unpack_from(">ih", data)
    except (OSError, struct.error):
        return None
    # the mechanisms array, read loosely (only named in a message): upper-case names, e.g. SCRAM-SHA-512
    return error_code, [m.decode() for m in re.findall(rb"[A-Z][A-Z0-9_-]{2,}", data[10:])]


def _sasl_cause(settings: Settings, answer: tuple[int, list[str]] | None) -> tuple[str, str] | None:
    """The cause a handshake answer tells: 34 (illegal state) from a port without SASL, 0 or 33
    (unsupported mechanism) from a SASL port."""
    protocol, wants_sasl = settings.kafka_security_protocol, settings.kafka_security_protocol.startswith("SASL_")
    if answer is None or answer[0] not in (0, 33, 34):
        return None
    error_code, offered = answer[0], ", ".join(answer[1]) or "none"
    if error_code == 34:
        advice = f"this port takes no SASL login: set FRAMEWATCH_KAFKA_SECURITY_PROTOCOL={protocol.removeprefix('SASL_')}"
        return (NOT_SASL, advice) if wants_sasl else None
    if not wants_sasl:
        return EXPECTS_SASL, (f"the broker wants a SASL login ({offered}): set FRAMEWATCH_KAFKA_SECURITY_PROTOCOL="
                              f"SASL_{protocol} and FRAMEWATCH_KAFKA_SASL_USERNAME/_PASSWORD")
    if error_code == 33:
        return MECHANISM, f"the broker offers {offered}, not FRAMEWATCH_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism}"
    return LOGIN, (f"the connection and the {settings.kafka_sasl_mechanism} mechanism work, but the broker refused the login of "
                   f"user {settings.kafka_sasl_username!r}; check FRAMEWATCH_KAFKA_SASL_USERNAME and FRAMEWATCH_KAFKA_SASL_PASSWORD")


def connect(factory: Callable[..., C], settings: Settings, **config: Any) -> C:
    """A *factory* client with the settings' servers, protocol, TLS, SASL plus *config*; a failed
    bootstrap raises KafkaConnectError naming its cause."""
    try:
        return factory(**{**settings.kafka_client_config(), **config})
    except KafkaError as exc:
        raise diagnose(settings, exc) from exc
