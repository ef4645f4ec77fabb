"""Trusted delivery: Standard Webhooks signatures, Slack escaping, deadlines, bounded reads,
verified TLS for e-mail, and no secret in reprs or logs. Real servers on 127.0.0.1 throughout."""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from framewatch.contracts import AlertItem
from framewatch.errors import ConfigError
from framewatch.processing.alerts import signing
from framewatch.processing.alerts.delivery import (
    DeliveryError,
    DeliveryLog,
    Notifier,
    delivery_id,
    send,
    send_email,
    slack_body,
)
from framewatch.processing.alerts.subscriptions import Channel, Subscription, load_subscriptions
from tests.helpers.alerts import alert
from tests.helpers.ports import refusing_port

# --- Standard Webhooks ------------------------------------------------------------------------


def test_signature_matches_the_specs_published_vector() -> None:
    # the vector of the spec's reference libraries (standard-webhooks, libraries/python tests)
    key = signing.secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sig = signing.signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_a_receiver_rejects_replays_tampering_and_other_keys() -> None:
    key, body, now = b"k3y", b'{"a":1}', 1_800_000_000
    headers = signing.signed_headers(key, "d1", now, body)
    assert signing.verify(key, headers, body, now + 299) == "d1"
    with pytest.raises(signing.SignatureError, match="tolerance"):
        signing.verify(key, headers, body, now + 301)  # a captured request replayed 5 min later
    with pytest.raises(signing.SignatureError, match="no matching"):
        signing.verify(key, headers, body + b" ", now)
    with pytest.raises(signing.SignatureError, match="no matching"):
        signing.verify(b"other", headers, body, now)
    with pytest.raises(signing.SignatureError, match="no matching"):  # a new timestamp, old signature
        signing.verify(key, {**headers, signing.TIMESTAMP_HEADER: str(now + 10)}, body, now)
    with pytest.raises(signing.SignatureError, match="missing"):
        signing.verify(key, {signing.ID_HEADER: "d1"}, body, now)
    # during a key rotation a sender may send two signatures; one matching is enough
    rotated = {**headers, signing.SIGNATURE_HEADER: "v1,AAAA " + headers[signing.SIGNATURE_HEADER]}
    assert signing.verify(key, rotated, body, now) == "d1"
    with pytest.raises(ValueError, match="whsec_"):
        signing.secret_bytes("whsec_")


class Receiver:
    """A webhook endpoint recording (headers, body); *answer* may misbehave."""

    def __init__(self, answer: str = "ok") -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                if answer == "drip":  # a status line, then one header byte at a time, forever
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    self.wfile.flush()
                    for _ in range(600):
                        time.sleep(0.1)
                        try:
                            self.wfile.write(b"a")
                            self.wfile.flush()
                        except OSError:
                            return
                    return
                if answer == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(200 << 20))
                    self.end_headers()
                    chunk = b"x" * 65536
                    try:
                        for _ in range(200 << 4):
                            self.wfile.write(chunk)
                            outer.sent += len(chunk)
                    except OSError:
                        return
                    return
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_factory() -> Iterator[type[Receiver]]:
    made: list[Receiver] = []

    class Made(Receiver):
        def __init__(self, answer: str = "ok") -> None:
            super().__init__(answer)
            made.append(self)

    yield Made
    for r in made:
        r.close()


def test_a_webhook_is_signed_per_the_spec_and_verifies_at_the_receiver(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory()
    key = signing.secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    sub = Subscription("desk", "scs", None, 0, Channel(type="webhook", url=receiver.url, secret=key))
    spike = alert()
    send(spike, sub, timeout_s=10)
    send(spike, sub, timeout_s=10)  # a retry: same id, its own timestamp and signature
    assert len(receiver.requests) == 2
    for headers, body in receiver.requests:
        assert signing.verify(key, headers, body, time.time()) == delivery_id(spike.key, "desk")
        assert json.loads(body)["alert"]["key"] == spike.key
    assert "x-framewatch-signature" not in receiver.requests[0][0]  # the unsigned-timestamp scheme is gone


def test_a_slow_drip_endpoint_is_cut_off_at_the_total_deadline(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory("drip")
    sub = Subscription("desk", "scs", None, 0, Channel(type="webhook", url=receiver.url, secret=b"k"))
    # httpx's read timeout alone never fires here: a byte comes every 0.1 s
    with pytest.raises(DeliveryError, match="deadline"):
        send(alert(), sub, timeout_s=1.0)


def test_a_huge_answer_is_not_read(receiver_factory: type[Receiver]) -> None:
    receiver = receiver_factory("huge")
    sub = Subscription("desk", "scs", None, 0, Channel(type="webhook", url=receiver.url, secret=b"k"))
    send(alert(), sub, timeout_s=30)  # 200: delivered, after reading at most 64 KiB of the answer
    # what the server managed to push before the connection closed: socket buffers, not 200 MB
    assert receiver.sent < 32 << 20


# --- Slack ------------------------------------------------------------------------------------


def test_slack_text_cannot_ping_everyone_or_dress_up_a_link() -> None:
    evil = AlertItem(
        title="<!channel> urgent <https://evil.example|yourbank.com> & more",
        url="https://news.example/a|<!here>", outlet="<@U123>", passage="see <!everyone>",
    )
    body = replace(alert(), top_items=(evil,))
    text = json.loads(slack_body(body))["text"]
    for bad in ("<!channel>", "<!here>", "<!everyone>", "<@U123>", "<https://evil.example|"):
        assert bad not in text, (bad, text)
    # the one link is ours: the item's URL, with its "|" and "<" encoded, and the title escaped
    assert "<https://news.example/a%7C%3C!here%3E|&lt;!channel&gt; urgent" in text
    odd = replace(alert(), top_items=(replace(evil, url="javascript:alert(1)"),))
    assert "<javascript:" not in json.loads(slack_body(odd))["text"]


# --- e-mail -----------------------------------------------------------------------------------

SUBS_EMAIL = """\
subscriptions:
  - subscriber: analyst
    watch: scs
    channel:
      type: email
      to: a@example.org
      from: fw@example.org
      smtp_host: mail.example.org
{extra}"""


@pytest.mark.parametrize(("extra", "tls"), [
    ("", "starttls"), ("      smtp_port: 465\n", "implicit"), ("      starttls: false\n", "none"),
    ("      tls: implicit\n      smtp_port: 2465\n", "implicit"),
])
def test_email_tls_mode_defaults_to_encrypted(tmp_path: Path, extra: str, tls: str) -> None:
    path = tmp_path / "subs.yaml"
    path.write_text(SUBS_EMAIL.format(extra=extra))
    assert load_subscriptions(path, env={})[0].channel.tls == tls


@pytest.mark.parametrize(("extra", "field", "why"), [
    ("      tls: none\n      username: fw\n      password_env: PW\n", "password_env", "in clear"),
    ("      tls: sometimes\n", "tls", "not one of"),
])
def test_email_settings_that_would_leak_are_refused(tmp_path: Path, extra: str, field: str, why: str) -> None:
    path = tmp_path / "subs.yaml"
    path.write_text(SUBS_EMAIL.format(extra=extra))
    with pytest.raises(ConfigError, match=why) as err:
        load_subscriptions(path, env={"PW": "hunter2"})
    assert f"channel.{field}" in str(err.value)


class SmtpServer:
    """A small SMTP server: records the commands it got; offers STARTTLS when given a context."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.connection
                reader = conn.makefile("rb")

                def say(line: str) -> None:
                    conn.sendall(line.encode() + b"\r\n")

                say("220 test ESMTP")
                while line := reader.readline():
                    cmd = line.decode("ascii", "replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    outer.commands.append(verb)
                    if verb in ("EHLO", "HELO"):
                        say("250-test")
                        say("250-AUTH PLAIN LOGIN" if tls else "250 AUTH PLAIN LOGIN")
                        if tls:
                            say("250 STARTTLS")
                    elif verb == "STARTTLS" and tls:
                        say("220 go ahead")
                        try:
                            conn = tls.wrap_socket(conn, server_side=True)
                        except (ssl.SSLError, OSError):
                            return  # the client refused our certificate
                        reader = conn.makefile("rb")
                    elif verb == "DATA":
                        say("354 end with .")
                        data = b""
                        while (chunk := reader.readline()) not in (b".\r\n", b""):
                            data += chunk
                        outer.messages.append(data)
                        say("250 queued")
                    elif verb == "QUIT":
                        say("221 bye")
                        return
                    else:
                        say("235 ok" if verb == "AUTH" else "250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made here (openssl from the system)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def email_channel(port: int, **kw: object) -> Channel:
    return Channel(type="email", to=("a@example.org",), sender="fw@example.org", smtp_host="127.0.0.1",
                   smtp_port=port, username="fw", password="hunter2", **kw)  # type: ignore[arg-type]


def test_starttls_not_offered_means_no_login_and_nothing_sent() -> None:
    server = SmtpServer(tls=None)
    try:
        with pytest.raises(DeliveryError, match="STARTTLS"):
            send_email(alert(), email_channel(server.port), timeout_s=10)
    finally:
        server.close()
    assert "AUTH" not in server.commands and "MAIL" not in server.commands and not server.messages


def test_starttls_verifies_the_certificate(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = SmtpServer(tls=ctx)
    try:
        # a certificate nobody vouches for: refused before the password goes out
        with pytest.raises(ssl.SSLCertVerificationError):
            send_email(alert(), email_channel(server.port), timeout_s=10)
        assert "AUTH" not in server.commands and not server.messages
        # the same server with its CA given to the channel: delivered, over TLS
        send_email(alert(), email_channel(server.port, ca_file=str(cert)), timeout_s=10)
    finally:
        server.close()
    assert len(server.messages) == 1 and b"scs" in server.messages[0]
    assert server.commands.index("STARTTLS") < server.commands.index("AUTH")


# --- secrets ----------------------------------------------------------------------------------


def test_no_secret_in_reprs_or_in_the_logs_of_a_failing_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with refusing_port() as port:  # every delivery fails: errors are where secrets leak
        _deliver_and_check_no_secret(port, tmp_path, caplog)


def _deliver_and_check_no_secret(port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secrets = {"HOOK": "whsec_c2VjcmV0LWhvb2sta2V5", "PW": "hunter2-pw"}
    slack = f"http://127.0.0.1:{port}/services/T000/B000/XXXXsecretXXXX"
    path = tmp_path / "subs.yaml"
    path.write_text(f"""\
subscriptions:
  - subscriber: desk
    watch: "*"
    channel: {{type: webhook, url: "http://127.0.0.1:{port}/hook", secret_env: HOOK}}
  - subscriber: newsroom
    watch: "*"
    channel: {{type: slack, url: "{slack}"}}
  - subscriber: analyst
    watch: "*"
    channel: {{type: email, to: a@example.org, from: fw@example.org, smtp_host: 127.0.0.1,
               smtp_port: {port}, username: fw, password_env: PW}}
""")
    subs = load_subscriptions(path, env=secrets)
    caplog.set_level(logging.DEBUG)
    log = DeliveryLog(tmp_path / "d.sqlite3")
    notifier = Notifier(subs, log, max_attempts=2, backoff_base_s=0.01, timeout_s=5, failing_after=1)
    try:
        outcomes = notifier.handle([alert()])
    finally:
        notifier.close()
    assert {o.status for o in outcomes} == {"failed"} and len(outcomes) == 3
    stored = " ".join(str(r) for r in log.rows())
    log.close()
    visible = caplog.text + repr(subs) + stored
    for secret in (*secrets.values(), "c2VjcmV0LWhvb2sta2V5", "XXXXsecretXXXX"):
        assert secret not in visible, secret
