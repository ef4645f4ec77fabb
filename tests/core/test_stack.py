"""The local stack: deploy/kafka/kafka.sh from an empty cache, and `framewatch up` + Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from framewatch.stack import Child, prometheus_config
from tests.helpers.paths import ROOT
from tests.helpers.ports import held_ports
from tests.helpers.waiting import wait_until

KAFKA = ROOT / "deploy" / "kafka" / "kafka.sh"


def descendants(pid: int) -> list[int]:
    """All live descendant pids of *pid* (via /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_prometheus_config_scrapes_each_component() -> None:
    children = [Child("ingest", [], {}, 9401), Child("process", [], {}, 9402), Child("x", [], {}, None)]
    text = prometheus_config(children, None)
    assert "127.0.0.1:9401" in text and "127.0.0.1:9402" in text
    assert "framewatch-x" not in text


@pytest.mark.integration
def test_kafka_script_from_empty_cache_start_status_stop(tmp_path: Path) -> None:
    """An empty jar cache is filled from the local Maven repository (the run's bootstrap fetched
    the jars before pytest; offline here, so the test never downloads), then start, status and
    stop on held client and controller ports."""
    with held_ports(2, consecutive=True) as (port, controller):
        env = {**os.environ, "FRAMEWATCH_CACHE": str(tmp_path / "cache"), "FRAMEWATCH_KAFKA_PORT": str(port),
               "FRAMEWATCH_MAVEN_OFFLINE": "1"}
        run = lambda action: subprocess.run([str(KAFKA), action], env=env, capture_output=True, text=True, timeout=600)  # noqa: E731
        assert run("status").returncode == 3  # stopped
        first = run("start")
        assert first.returncode == 0, first.stderr
        assert "fetching Apache Kafka" in first.stderr and "started Kafka" in first.stderr
        assert "server.log" in first.stderr  # says where its log is
        assert _listening(port) and _listening(controller)
        second = run("start")
        assert second.returncode == 0 and "already running" in second.stderr
        status = run("status")
        assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
        stopped = run("stop")
        assert stopped.returncode == 0
        assert run("status").returncode == 3
        assert not _listening(port) and not _listening(controller)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _cmdlines(pids: set[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            out[pid] = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode(errors="replace")
        except OSError:
            continue
    return out


@pytest.mark.integration
def test_up_then_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    with held_ports(2, consecutive=True) as (kafka_port, _), held_ports(6, consecutive=True) as (base, *_), \
            held_ports(2) as (prometheus_port, api_port):
        env = {
            **{k: v for k, v in os.environ.items() if k != "FRAMEWATCH_SERVE_ADMIN_TOKEN"},
            "FRAMEWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
            "FRAMEWATCH_STATE_DIR": str(tmp_path / "state"),
            "FRAMEWATCH_SERVE_PORT": str(api_port),
            "HF_HUB_OFFLINE": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "framewatch", "up", "--base-port", str(base), "--prometheus-port", str(prometheus_port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if "Press Ctrl-C" in line:
                    break
            assert any("framewatch is up" in line for line in lines), "".join(lines)
            token_file = tmp_path / "state" / "up" / "api-admin-token"
            where = [line for line in lines[lines.index(next(x for x in lines if "framewatch is up" in x)) + 1:]]
            assert where[0].strip().startswith("workbench "), "the workbench's URL comes first"
            assert f"http://127.0.0.1:{api_port}/ui/" in where[0] and str(token_file) in where[0]
            api_line = next(line for line in lines if line.strip().startswith("api "))
            assert f"http://127.0.0.1:{api_port}/api/v1" in api_line
            assert token_file.stat().st_mode & 0o077 == 0 and token_file.read_text().strip() not in "".join(lines)
            cache = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch"))
            kafka_pid_file = cache / f"kafka-run-{kafka_port}" / "kafka.pid"
            assert kafka_pid_file.is_file(), f"no broker pid file at {kafka_pid_file}"
            kafka_pid = int(kafka_pid_file.read_text())
            # every child that runs, whenever it starts (components start in turn, some spawn more)
            seen: set[int] = set()
            wanted = ("framewatch ingest", "framewatch process", "framewatch aggregate", "framewatch notify",
                      "framewatch sink", "framewatch serve")
            if shutil.which("prometheus"):
                wanted += ("prometheus --config.file",)

            def all_started() -> bool:
                seen.update(descendants(proc.pid))
                running = " | ".join(_cmdlines(seen).values())
                return all(w in running for w in wanted)

            wait_until(f"every child of up to start ({wanted})", all_started, timeout_s=120, every_s=0.5)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, "".join(lines) + out
            assert "stopped" in out
            seen.update(p for p in descendants(proc.pid))  # none: up has exited; kept for the record
            alive = [pid for pid in [*seen, kafka_pid] if Path(f"/proc/{pid}").exists()]
            assert alive == [], f"left behind: {_cmdlines(set(alive))}"
        finally:
            if proc.poll() is None:  # a failed assertion above: stop up (and what it started) anyway
                proc.send_signal(signal.SIGINT)
                try:
                    proc.communicate(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
        shutil.rmtree(kafka_pid_file.parent, ignore_errors=True)
