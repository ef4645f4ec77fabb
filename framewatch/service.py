"""A component's life cycle, the same for every long-running command: settings, signals, the
health server, the loop (with a heartbeat), and closing what it opened in reverse order.

``framewatch ingest|process|aggregate|notify`` each hand :func:`run_component` one function that
builds their parts and runs their loop. ``/healthz`` answers 503 once the loop has not beaten
its heartbeat for ``health_stale_after_s``, so Kubernetes restarts a hung pod (a blocked
produce, a stuck stage) instead of leaving it "ok" forever. User mistakes end in one line on
stderr and exit code 2 (:func:`fail`), never a traceback; so does a Kafka connection refused
for a setting's sake (credentials, certificate, protocol), while a broker that does not answer
exits 1.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn

import click
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from framewatch.errors import ConfigError
from framewatch.kafka_connect import WORLD_CAUSES, KafkaConnectError
from framewatch.settings import Settings

log = logging.getLogger(__name__)

# exit codes: 2 the user's input is wrong (file, setting, argument); 1 the world is (Kafka down)
EXIT_USAGE = 2
EXIT_RUNTIME = 1


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Report a user-facing error as one line on stderr and exit (no traceback)."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a ConfigError raised inside into :func:`fail` (one line, exit 2)."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc))


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (plus *overrides*); an invalid value fails with its variable."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        fail(f"invalid setting FRAMEWATCH_{name.upper()}: {first['msg']}")


class Heartbeat:
    """When the component's loop last made progress; stale after *stale_after_s* without a beat.

    It starts beaten: start-up (model load, joining the group) is the readiness probe's business.
    """

    def __init__(self, stale_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self._clock = clock
        self._last = clock()

    def beat(self) -> None:
        """The loop went round once (with or without records)."""
        self._last = self._clock()

    def age_s(self) -> float:
        """Seconds since the last beat."""
        return self._clock() - self._last

    def alive(self) -> bool:
        """False once the loop has been silent for longer than allowed."""
        return self.age_s() <= self.stale_after_s


@dataclass
class Component:
    """What a running component's body gets: its settings, registry, stop flag and heartbeat."""

    name: str
    settings: Settings
    registry: CollectorRegistry
    stop: threading.Event
    heartbeat: Heartbeat
    ready: threading.Event = field(default_factory=threading.Event)
    _closers: list[tuple[str, Callable[[], Any]]] = field(default_factory=list)

    def closing(self, what: str, close: Callable[[], Any]) -> None:
        """Close *close* when the component ends, after everything opened after it."""
        self._closers.append((what, close))

    def close(self) -> None:
        """Close everything in reverse order of opening; one failure does not skip the rest."""
        while self._closers:
            what, close = self._closers.pop()
            try:
                close()
            except Exception:
                log.exception("%s: closing %s failed", self.name, what)


def run_component(
    name: str,
    settings: Settings,
    body: Callable[[Component], int],
    *,
    stop: threading.Event | None = None,
    registry: CollectorRegistry | None = None,
    serve_health: bool = True,
    on_health: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Run *body* as component *name*: signals set the stop flag, the health server runs
    beside it, and whatever it registered with :meth:`Component.closing` is closed at the end.

    Signal handlers are installed only in the main thread (tests run components in threads).
    """
    component = Component(
        name=name, settings=settings, registry=registry or CollectorRegistry(),
        stop=stop or threading.Event(), heartbeat=Heartbeat(settings.health_stale_after_s, clock),
    )
    previous = _install_signals(component.stop)
    try:
        if serve_health:
            server = HealthServer(
                component.registry, settings.metrics_host, settings.metrics_port,
                ready=lambda: component.ready.is_set(), alive=component.heartbeat.alive,
            ).start()
            component.closing("health server", server.stop)
            log.info("%s: metrics and health on http://%s:%d/", name, settings.metrics_host, server.port)
            if on_health is not None:
                on_health(server.port)
        return body(component)
    except KafkaConnectError as exc:
        fail(str(exc), EXIT_RUNTIME if exc.cause in WORLD_CAUSES else EXIT_USAGE)
    finally:
        component.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _install_signals(stop: threading.Event) -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


# --- the HTTP endpoint every component serves: /metrics for Prometheus, /healthz and /readyz


class HealthServer:
    """Serve metrics and health on a background thread; ``port`` is the bound port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str = "127.0.0.1",
        port: int = 0,
        ready: Callable[[], bool] = lambda: True,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, str, bytes]]] = {
            "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: _probe(alive()),
            "/readyz": lambda: _probe(ready()),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                status, ctype, body = route() if route else (404, "text/plain", b"not found\n")
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the component's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        """Start serving; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()


def _probe(ok: bool) -> tuple[int, str, bytes]:
    return (200, "text/plain", b"ok\n") if ok else (503, "text/plain", b"not ready\n")
