"""The whole pipeline on the real broker with a real Prometheus (issue acceptance, end to end).

A synthetic stream with a planted framing spike flows raw -> framed -> aggregated through the
real component commands (each its own process, as `framewatch up` and Kubernetes run them) while
an ingest worker polls the bundled sample feeds. Prometheus scrapes every component and evaluates
the project's alerting rules. Checked: one framed record per (item, watch); the aggregator killed
with SIGKILL mid-stream and restarted leaves every count exact; the spike becomes exactly one
alert and exactly one signed webhook; the spike rule fires in Prometheus; and every dashboard
panel's query returns series from that Prometheus.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from framewatch import contracts
from framewatch.contracts import Alert, DeadLetter, FramedItem
from framewatch.dashboards import all_panel_queries
from framewatch.processing.alerts import signing
from framewatch.settings import Settings
from tests.helpers.aggregator import committed_to_end
from tests.helpers.paths import ROOT
from tests.helpers.ports import held_ports
from tests.helpers.synthetic import planted_spike
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

RULES = ROOT / "deploy" / "prometheus" / "rules" / "framewatch.rules.yml"
CODEBOOK = ROOT / "tests" / "fixtures" / "e2e" / "codebook.yaml"
SAMPLE_FEEDS = ROOT / "framewatch" / "sample" / "feeds"
SECRET = "e2e-secret"


class Webhooks:
    """A local webhook receiver that records every request."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


TEST_TIMEOUT_S = 600


class Budget:
    """Every wait of the test comes out of one budget that ends well before pytest's timeout, so
    a stuck stage fails as an AssertionError and the components' logs are printed."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def wait_for(self, what: str, check: Callable[[], object], timeout: float = 90, every: float = 1.0) -> object:
        return wait_until(what, check, max(0.0, min(timeout, self.deadline - time.monotonic())), every)


def prom_query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as resp:
        payload = json.load(resp)
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def framed_items_by_frame(port: int, watch: str) -> Counter[str]:
    """framewatch_framed_items_total per frame from a component's endpoint (empty while it starts)."""
    counts: Counter[str] = Counter()
    try:
        metrics_text = scrape(port)
    except OSError:
        return counts
    for line in metrics_text.splitlines():
        if line.startswith("framewatch_framed_items_total{") and f'watch="{watch}"' in line:
            frame = line.split('frame="', 1)[1].split('"', 1)[0]
            counts[frame] += int(float(line.rsplit(" ", 1)[1]))
    return counts


@pytest.fixture
def stack(tmp_path: Path, kafka_bootstrap: str) -> Iterator[dict]:
    if not (shutil.which("prometheus") and RULES.exists()):
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus)")
    prefix = f"e2e{os.getpid()}{int(time.time())}."
    # ports held from the OS until the test ends; the components and Prometheus bind them with
    # SO_REUSEADDR, so nothing else can take one between picking and use
    holding = held_ports(5)
    *component_ports, prom_port = holding.__enter__()
    ports = dict(zip(("ingest", "process", "aggregate", "notify"), component_ports, strict=True))
    hooks = Webhooks()
    subs = tmp_path / "subscriptions.yaml"
    subs.write_text(
        "subscriptions:\n  - subscriber: desk\n    watch: scs\n    frames: [dystopia]\n"
        f"    channel: {{type: webhook, url: '{hooks.url}', secret_env: E2E_SECRET}}\n"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SAMPLE_FEEDS))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    feeds = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=feeds.serve_forever, daemon=True).start()
    sources = tmp_path / "sources.yaml"
    base = f"http://127.0.0.1:{feeds.server_address[1]}"
    sources.write_text(f"sources:\n  - {{id: sample-news, url: '{base}/news.xml', kind: news, outlet: Daily, poll_interval: 10s, allow_private: true}}\n")
    env = {
        **os.environ, "FRAMEWATCH_KAFKA_BOOTSTRAP": kafka_bootstrap, "FRAMEWATCH_TOPIC_PREFIX": prefix,
        "FRAMEWATCH_MODEL_NAME": "fake", "FRAMEWATCH_CLUSTER_NOVELTY_MAX": "0.3", "FRAMEWATCH_CLUSTER_MIN_SCORE": "0.05",
        "FRAMEWATCH_AGGREGATE_BY_OUTLET": "true", "FRAMEWATCH_SPIKE_MIN_BASELINE_ITEMS": "20",
        "FRAMEWATCH_SPIKE_BASELINE_HOURS": "8", "FRAMEWATCH_BATCH_MAX_WAIT_MS": "300",
        "FRAMEWATCH_METRICS_HOST": "127.0.0.1", "E2E_SECRET": SECRET, "HF_HUB_OFFLINE": "1",
    }
    args = {
        "ingest": ["--sources", str(sources)], "process": ["--codebook", str(CODEBOOK)],
        "aggregate": [], "notify": ["--subscriptions", str(subs)],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = tmp_path / "logs"
    logs.mkdir()

    def start(name: str) -> None:
        child_env = {**env, "FRAMEWATCH_METRICS_PORT": str(ports[name]), "FRAMEWATCH_STATE_DIR": str(tmp_path / name)}
        out = (logs / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen([sys.executable, "-m", "framewatch", name, *args[name]], env=child_env, stdout=out, stderr=subprocess.STDOUT)

    prom_cfg = tmp_path / "prometheus.yml"
    jobs = "".join(
        f"  - job_name: framewatch-{n}\n    static_configs: [{{targets: ['127.0.0.1:{p}']}}]\n" for n, p in ports.items()
    )
    prom_cfg.write_text(
        f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{RULES}']\nscrape_configs:\n{jobs}"
    )
    prometheus = subprocess.Popen(
        ["prometheus", f"--config.file={prom_cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=(logs / "prometheus.log").open("ab"), stderr=subprocess.STDOUT,
    )
    for name in ports:
        start(name)
    settings = Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=prefix)
    try:
        yield {"settings": settings, "ports": ports, "procs": procs, "start": start, "hooks": hooks,
               "prom": f"http://127.0.0.1:{prom_port}", "logs": logs}
    finally:
        for proc in [*procs.values(), prometheus]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*procs.values(), prometheus]:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        feeds.shutdown()
        hooks.server.shutdown()
        holding.__exit__(None, None, None)


@pytest.mark.timeout(TEST_TIMEOUT_S)
def test_planted_spike_end_to_end(stack: dict, topic_reader: Callable[..., list]) -> None:
    budget = Budget(TEST_TIMEOUT_S - 120)  # fixture start-up and teardown fit in the rest
    wait_for = budget.wait_for
    settings: Settings = stack["settings"]
    ports: dict[str, int] = stack["ports"]
    logs: Path = stack["logs"]
    now = datetime.now(UTC)
    baseline, spike = planted_spike(now)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    raw_topic = settings.topic("raw-items")

    def send(items: list) -> None:
        for it in items:
            producer.send(raw_topic, key=it.item_id.encode(), value=contracts.encode(it))
        producer.flush()

    def diagnostics() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))

    try:
        # Baseline first, plus one record that does not decode (it must reach the dead letters).
        wait_for("the aggregator's metrics endpoint", lambda: _up(ports["aggregate"]), timeout=120)
        send(baseline)
        producer.send(raw_topic, key=b"bad", value=b"{not json")
        producer.flush()
        half = len(spike) // 2
        send(spike[:half])
        wait_for("the aggregator to count part of the stream",
                 lambda: sum(framed_items_by_frame(ports["aggregate"], "scs").values()) > 60, timeout=180)
        # Kill -9 the aggregator mid-stream, send the rest, restart it.
        stack["procs"]["aggregate"].kill()
        stack["procs"]["aggregate"].wait()
        send(spike[half:])
        stack["start"]("aggregate")

        framed_topic = settings.topic("framed-items")
        expected_keys = {f"scs:{it.item_id}" for it in baseline + spike}

        def framed_records() -> dict[str, FramedItem]:
            latest: dict[str, FramedItem] = {}
            for key, value in topic_reader(framed_topic):
                record = contracts.decode(FramedItem, value)
                assert key.decode() == record.key
                latest[record.key] = record
            return latest if expected_keys <= set(latest) else {}

        framed = wait_for("one framed record per (item, watch)", framed_records, timeout=180)
        assert isinstance(framed, dict)
        synthetic = {k: v for k, v in framed.items() if k in expected_keys}
        expected = Counter((r.frame or next((s.cluster for s in r.segments if s.cluster), None) or "unframed") for r in synthetic.values())
        sample_items = {k: v for k, v in framed.items() if k not in expected_keys}
        assert sample_items, "the ingest worker's sample feed items were framed too"
        for record in sample_items.values():
            key = record.frame or next((s.cluster for s in record.segments if s.cluster), None) or "unframed"
            expected[key] += 1

        def counts_exact() -> bool:
            got = framed_items_by_frame(ports["aggregate"], "scs")
            return all(got.get(frame, 0) == n for frame, n in expected.items() if not frame.startswith("emergent:")) and got

        wait_for(f"the restarted aggregator's counts to equal {dict(expected)}", counts_exact, timeout=120)

        # Exactly one alert for the planted spike, and exactly one signed webhook.
        def dystopia_alerts() -> list[Alert]:
            alerts = [contracts.decode(Alert, v) for _, v in topic_reader(settings.topic("alerts"))]
            return [a for a in alerts if a.frame == "dystopia" and a.rule == "share_spike"]

        alerts = wait_for("a share_spike alert for dystopia", dystopia_alerts, timeout=120)
        assert isinstance(alerts, list) and len(alerts) == 1, f"{len(alerts)} alert records, one expected"
        alert = alerts[0]
        # its evidence is a count of the framed records of its window (the alert may have come
        # before the rest of the stream: at most what the window holds now), at least the rule's
        # minimum count, and its share is that count over the window's items
        in_window = [r for r in framed.values() if alert.window_start <= r.published_at < alert.window_end]
        assert 10 <= alert.observed_count <= sum(1 for r in in_window if r.frame == "dystopia")
        assert alert.window_items <= len(in_window)
        assert alert.observed_share == pytest.approx(alert.observed_count / alert.window_items)
        assert alert.observed_share > alert.baseline_share and alert.top_items
        hooks = stack["hooks"]
        wait_for("the webhook", lambda: hooks.received, timeout=90)
        # nothing more can come once the notifier has committed every alert: it delivers before
        # it commits, so the receiver's count is final then
        wait_for("the notifier to commit every alert", lambda: committed_to_end(settings, settings.group_id("notify"), settings.topic("alerts")), timeout=60)
        assert len(hooks.received) == 1, hooks.received
        headers, body = hooks.received[0]
        # Standard Webhooks: id, timestamp and body signed (the tolerance covers the test's length)
        assert signing.verify(SECRET.encode(), headers, body, time.time(), tolerance_s=900)
        evidence = json.loads(body)
        assert json.dumps(evidence).count("dystopia") >= 1 and "baseline" in json.dumps(evidence)

        letters = [contracts.decode(DeadLetter, v) for _, v in topic_reader(settings.topic("dead-letters"))]
        assert [(d.component, d.reason, d.raw) for d in letters] == [("processing", "not_json", b"{not json")]

        # Prometheus scraped every component and the spike rule's expression fires.
        prom = stack["prom"]
        wait_for("every scrape target up", lambda: len([r for r in prom_query(prom, 'up{job=~"framewatch-.*"} == 1')]) == 4, timeout=60)
        firing = wait_for(
            "FramewatchFramingSpike pending or firing",
            lambda: prom_query(prom, 'ALERTS{alertname="FramewatchFramingSpike",frame="dystopia"}'), timeout=60,
        )
        assert firing and firing[0]["metric"]["watch"] == "scs"

        # Every dashboard panel's query returns series from this Prometheus.
        variables = {"watch": "scs", "frame": "dystopia", "window": "1h", "component": ".*", "datasource": "prometheus"}
        def empty_panels() -> list[tuple[str, str, str]]:
            return [(uid, title, expr) for uid, title, expr in all_panel_queries(variables) if not prom_query(prom, expr)]

        try:
            wait_for("every panel query to return series", lambda: not empty_panels(), timeout=60)
        except AssertionError:
            raise AssertionError(f"panel queries without series: {empty_panels()}") from None
    except AssertionError:
        print(diagnostics())
        raise
    finally:
        producer.close()


def _up(port: int) -> bool:
    try:
        return "framewatch_" in scrape(port)
    except OSError:
        return False
