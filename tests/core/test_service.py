"""The component life cycle: /healthz follows the loop's heartbeat, closing runs in reverse
order and survives a failing step, and user mistakes end in one line with exit code 2."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner

from framewatch.cli import main
from framewatch.service import Component, Heartbeat, run_component
from framewatch.settings import Settings


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_heartbeat_goes_stale_without_beats() -> None:
    now = [100.0]
    beat = Heartbeat(30, clock=lambda: now[0])
    assert beat.alive()
    now[0] += 30
    assert beat.alive()
    now[0] += 0.5
    assert not beat.alive() and beat.age_s() == 30.5
    beat.beat()
    assert beat.alive() and beat.age_s() == 0


def test_healthz_turns_503_when_the_loop_stops_making_progress() -> None:
    now = [0.0]
    seen: dict[str, int] = {}

    def body(component: Component) -> int:
        port = seen["port"]
        seen["before_ready"] = status(port, "/readyz")
        component.ready.set()
        seen["ready"] = status(port, "/readyz")
        component.heartbeat.beat()
        seen["fresh"] = status(port, "/healthz")
        now[0] += 61  # the loop hangs: no beat for longer than allowed
        seen["hung"] = status(port, "/healthz")
        component.heartbeat.beat()  # and recovers
        seen["recovered"] = status(port, "/healthz")
        return 7

    settings = Settings(metrics_port=0, health_stale_after_s=60)
    result = run_component("test", settings, body, clock=lambda: now[0],
                           on_health=lambda port: seen.__setitem__("port", port))
    assert result == 7
    assert seen == {"port": seen["port"], "before_ready": 503, "ready": 200, "fresh": 200,
                    "hung": 503, "recovered": 200}
    with pytest.raises(OSError):  # the health server was closed with the component
        urllib.request.urlopen(f"http://127.0.0.1:{seen['port']}/healthz", timeout=5)


def test_closing_runs_in_reverse_order_and_survives_a_failing_step() -> None:
    closed: list[str] = []

    def broken() -> None:
        closed.append("consumer")
        raise RuntimeError("close failed")

    def body(component: Component) -> int:
        component.closing("state", lambda: closed.append("state"))
        component.closing("consumer", broken)
        component.closing("producer", lambda: closed.append("producer"))
        raise ValueError("the loop died")

    with pytest.raises(ValueError, match="the loop died"):
        run_component("test", Settings(), body, serve_health=False)
    assert closed == ["producer", "consumer", "state"]


def test_an_invalid_setting_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAMEWATCH_TOPIC_PARTITIONS", "0")
    result = CliRunner().invoke(main, ["aggregate"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert len(line.splitlines()) == 1 and line.startswith("error: invalid setting FRAMEWATCH_TOPIC_PARTITIONS")
