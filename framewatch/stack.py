"""``framewatch up``: the whole pipeline on one machine, and ``framewatch kafka`` for the broker.

``up`` starts the local Kafka broker (deploy/kafka/kafka.sh) unless one is given, creates the
topics, runs each component as its own child process (ingest, process, aggregate, notify: the
same commands a Kubernetes pod runs) with its own metrics port, runs Prometheus scraping them when
the binary is installed, and supervises the children until Ctrl-C or SIGTERM. Everything it
started is stopped on the way out; Kafka offsets and the state folder make a second ``up`` resume
where the first stopped.
"""

from __future__ import annotations

import contextlib
import http.server
import importlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from framewatch.errors import ConfigError
from framewatch.service import EXIT_RUNTIME, fail

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SAMPLE_DIR = PACKAGE_DIR / "sample"
KAFKA_SCRIPT = REPO_DIR / "deploy" / "kafka" / "kafka.sh"
RULES_DIR = REPO_DIR / "deploy" / "prometheus" / "rules"
TOPICS = ("raw-items", "framed-items", "aggregates", "alerts", "dead-letters")
STOP_GRACE_S = 20.0


@dataclass
class Child:
    """One supervised child process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_path: Path | None = None

    def start(self) -> None:
        """Start (or restart) the process, appending its output to its log file."""
        assert self.log_path is not None
        out = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def running(self) -> bool:
        """True while the process is alive."""
        return self.proc is not None and self.proc.poll() is None


def run_kafka_script(action: str, env: dict[str, str] | None = None) -> int:
    """Run deploy/kafka/kafka.sh with *action*; returns its exit code."""
    if not KAFKA_SCRIPT.exists():
        raise ConfigError(
            f"{KAFKA_SCRIPT} is missing (framewatch is not running from a clone); "
            "point FRAMEWATCH_KAFKA_BOOTSTRAP at a broker and pass --no-kafka"
        )
    return subprocess.call([str(KAFKA_SCRIPT), action], env=env)


@click.command("kafka")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
def kafka(action: str) -> None:
    """Start, stop or show the local single-node Kafka broker (KRaft, no Docker)."""
    try:
        sys.exit(run_kafka_script(action))
    except ConfigError as exc:
        fail(str(exc))


def serve_sample_feeds(now: datetime | None = None, seed: int | None = None) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve the bundled demo stream (ingest/demo.py) on 127.0.0.1 (a free port); returns server
    and base URL. Each request renders its feed at that moment, so items keep arriving."""
    # by name, as the CLI runs every program: the core imports no program's modules
    demo = importlib.import_module("framewatch.ingest.demo")
    now = now or datetime.now(UTC)
    # a new stream per start (the processor would count a second copy of the texts as reprints)
    items = demo.demo_items(now, int(now.timestamp()) if seed is None else seed)
    paths = demo.feed_paths()

    class DemoFeeds(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            feed = paths.get(self.path.split("?", 1)[0])
            if feed is None:
                self.send_error(404)
                return
            body, content_type = demo.render_feed(feed, items, datetime.now(UTC))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DemoFeeds)
    threading.Thread(target=server.serve_forever, name="demo-feeds", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def demo_sources(base: str) -> str:
    """The sources file for the demo feeds served at *base*."""
    return str(importlib.import_module("framewatch.ingest.demo").sources_yaml(base))


def prometheus_config(children: list[Child], rules_dir: Path | None, interval_s: int = 5) -> str:
    """Prometheus configuration scraping every child's metrics port."""
    lines = [
        "# Written by `framewatch up`; regenerated on every start.",
        "global:",
        f"  scrape_interval: {interval_s}s",
        f"  evaluation_interval: {interval_s}s",
    ]
    if rules_dir is not None and rules_dir.is_dir():
        lines += ["rule_files:", f"  - {rules_dir}/*.yml"]
    lines.append("scrape_configs:")
    for child in children:
        if child.port is None:
            continue
        lines += [
            f"  - job_name: framewatch-{child.name}",
            "    static_configs:",
            f"      - targets: ['127.0.0.1:{child.port}']",
            f"        labels: {{component: {child.name}}}",
        ]
    return "\n".join(lines) + "\n"


def available_components() -> set[str]:
    """Component commands present in this build (registered and importable)."""
    import importlib.util

    from framewatch.cli import COMMANDS

    return {name for name, target in COMMANDS.items() if importlib.util.find_spec(target.split(":")[0])}


@click.command("up")
@click.option("--sources", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Sources file (default: the bundled demo stream, served locally).")
@click.option("--codebook", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Codebook (default: the bundled social-credit sample).")
@click.option("--subscriptions", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Alert subscriptions file (default: none).")
@click.option("--no-kafka", is_flag=True, help="Use the broker in FRAMEWATCH_KAFKA_BOOTSTRAP instead of starting the local one.")
@click.option("--no-prometheus", is_flag=True, help="Do not start Prometheus even when it is installed.")
@click.option("--prometheus-port", default=9090, show_default=True, help="Port of the local Prometheus.")
@click.option("--base-port", default=9401, show_default=True, help="First metrics port; components take consecutive ports.")
@click.option("--run-for", type=float, default=None, help="Stop by itself after this many seconds (demos, smoke tests).")
def up(
    sources: Path | None,
    codebook: Path | None,
    subscriptions: Path | None,
    no_kafka: bool,
    no_prometheus: bool,
    prometheus_port: int,
    base_port: int,
    run_for: float | None,
) -> None:
    """Run the whole pipeline locally until Ctrl-C; a second `up` resumes where this one stopped."""
    from framewatch.kafka_io import ensure_topics
    from framewatch.service import load_settings

    settings = load_settings()
    state = settings.state_dir / "up"
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    started_kafka = False
    sample_server = None
    children: list[Child] = []
    prometheus: Child | None = None
    try:
        if not no_kafka:
            kafka_port = settings.bootstrap_servers[0].rsplit(":", 1)[1]
            env = {**os.environ, "FRAMEWATCH_KAFKA_PORT": kafka_port}
            was_running = subprocess.call([str(KAFKA_SCRIPT), "status"], env=env, stdout=subprocess.DEVNULL) == 0
            if run_kafka_script("start", env) != 0:
                fail("the local Kafka broker did not start (see the message above)", EXIT_RUNTIME)
            started_kafka = not was_running
        ensure_topics(settings, [settings.topic(t) for t in TOPICS])

        if sources is None:
            sample_server, base = serve_sample_feeds()
            sources = state / "sample-sources.yaml"
            sources.write_text(demo_sources(base))
            click.echo(f"framewatch: no --sources given: replaying the bundled demo stream (48 h of coverage, "
                       f"new items every few minutes, a planted framing shift) at {base}")
        codebook = codebook or SAMPLE_DIR / "codebook.yaml"
        subscriptions = subscriptions or SAMPLE_DIR / "subscriptions.yaml"

        wanted = [
            ("ingest", ["--sources", str(sources)]),
            ("process", ["--codebook", str(codebook)]),
            ("aggregate", []),
            ("notify", ["--subscriptions", str(subscriptions)]),
            ("sink", []),
            ("serve", []),
        ]
        present = available_components()
        # the sink and the API share one lake (each child has its own state dir), and the API a
        # local admin token kept in a file of its own (printed as a path, never as the token)
        shared = {"FRAMEWATCH_SINK_URL": settings.sink_url or str(settings.state_dir / "lake"),
                  "FRAMEWATCH_SERVE_SUBSCRIPTIONS_FILE": str(subscriptions)}
        token_file = state / "api-admin-token"
        if not settings.serve_admin_token:
            shared["FRAMEWATCH_SERVE_ADMIN_TOKEN"] = _local_token(token_file)
        for offset, (name, args) in enumerate(wanted):
            if name not in present:
                click.echo(f"framewatch: component '{name}' is not part of this build; skipping it")
                continue
            port = base_port + offset
            env = {
                **os.environ,
                **shared,
                "FRAMEWATCH_METRICS_PORT": str(port),
                "FRAMEWATCH_STATE_DIR": str(settings.state_dir / name),
                "HF_HUB_OFFLINE": "1",
            }
            argv = [sys.executable, "-m", "framewatch", name, *args]
            children.append(Child(name, argv, env, port, log_path=logs / f"{name}.log"))
        if not no_prometheus and shutil.which("prometheus"):
            prometheus = _prometheus_child(children, state, prometheus_port, logs)
        elif not no_prometheus:
            click.echo("framewatch: Prometheus is not installed (apt-get install prometheus); metrics are still on each component's port")

        for child in [*children, *([prometheus] if prometheus else [])]:
            child.start()
        first, extra = [], []
        if any(c.name == "serve" for c in children):
            host = settings.serve_host if ":" not in settings.serve_host else f"[{settings.serve_host}]"
            where = "FRAMEWATCH_SERVE_ADMIN_TOKEN" if settings.serve_admin_token else token_file
            first.append(f"  workbench  http://{host}:{settings.serve_port}/ui/   (sign in with the admin token in {where})")
            extra.append(f"  api        http://{host}:{settings.serve_port}/api/v1   (docs /api/v1/docs)")
        _print_where_to_look(children, prometheus, prometheus_port, settings.state_dir, logs, first, extra)
        _supervise([*children, *([prometheus] if prometheus else [])], stop, run_for)
    except ConfigError as exc:
        fail(str(exc))
    finally:
        _say("framewatch: stopping ...")
        _stop_all([*children, *([prometheus] if prometheus else [])])
        if sample_server is not None:
            sample_server.shutdown()
            sample_server.server_close()
        if started_kafka:
            kafka_port = settings.bootstrap_servers[0].rsplit(":", 1)[1]
            run_kafka_script("stop", {**os.environ, "FRAMEWATCH_KAFKA_PORT": kafka_port})
        _say("framewatch: stopped")


def _say(text: str) -> None:
    """Print while stopping: a closed stdout (the terminal or pipe went away) must not cut the
    clean-up short and leave the broker and children running."""
    with contextlib.suppress(OSError):
        click.echo(text)


def _local_token(path: Path) -> str:
    """This machine's API admin token: made once, kept readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def _prometheus_child(children: list[Child], state: Path, port: int, logs: Path) -> Child:
    config = state / "prometheus.yml"
    config.write_text(prometheus_config(children, RULES_DIR))
    argv = [
        "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={state / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=15d",
    ]
    return Child("prometheus", argv, dict(os.environ), None, log_path=logs / "prometheus.log")


def _print_where_to_look(children: list[Child], prometheus: Child | None, prom_port: int, state_dir: Path, logs: Path,
                         first: list[str], extra: list[str]) -> None:
    click.echo("framewatch is up. Where to look:")
    for line in first:
        click.echo(line)
    for child in children:
        click.echo(f"  {child.name:<10} metrics http://127.0.0.1:{child.port}/metrics   log {child.log_path}")
    if prometheus is not None:
        click.echo(f"  prometheus http://127.0.0.1:{prom_port}/   (alerts: /alerts; log {prometheus.log_path})")
    for line in extra:
        click.echo(line)
    click.echo(f"  state      {state_dir}")
    click.echo("  dashboards dashboards/json/*.json (import into Grafana, or `framewatch dashboards push`)")
    click.echo("Press Ctrl-C to stop.")


def _supervise(children: list[Child], stop: threading.Event, run_for: float | None) -> None:
    """Restart children that exit unexpectedly (with backoff) until *stop* or *run_for* ends."""
    deadline = time.monotonic() + run_for if run_for is not None else None
    while not stop.wait(1.0):
        if deadline is not None and time.monotonic() >= deadline:
            return
        now = time.monotonic()
        for child in children:
            if child.running():
                continue
            if child.proc is not None and child.next_start == 0.0:
                code = child.proc.returncode
                child.restarts += 1
                delay = min(60.0, 2.0 ** min(child.restarts, 6))
                child.next_start = now + delay
                log.warning("%s exited with code %s; restarting in %.0fs (see %s)", child.name, code, delay, child.log_path)
            elif child.next_start and now >= child.next_start:
                child.next_start = 0.0
                child.start()


def _stop_all(children: list[Child]) -> None:
    """SIGTERM every running child, wait for a grace period, then SIGKILL stragglers."""
    for child in children:
        if child.running():
            assert child.proc is not None
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_GRACE_S)
            child.proc.kill()
            child.proc.wait()
