

"""The local stack: deploy/kafka/kafka.sh from an empty cache, and `framewatch up` + Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framewatch.stack import Child, prometheus_config
from tests.helpers.paths import ROOT

KAFKA = ROOT / "deploy" / "kafka" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    port = free_port()
    env = {**os.environ, "FRAMEWATCH_CACHE": str(tmp_path / "cache"), "FRAMEWATCH_KAFKA_PORT": str(port)}
    run = lambda action: subprocess.run([str(KAFKA), action], env=env, capture_output=True, text=True, timeout=600)  # noqa: E731
    assert run("status").returncode == 3  # stopped
    first = run("start")
    assert first.returncode == 0, first.stderr
    assert "fetching Apache Kafka" in first.stderr and "started Kafka" in first.stderr
    assert "server.log" in first.stderr  # says where its log is
    second = run("start")
    assert second.returncode == 0 and "already running" in second.stderr
    status = run("status")
    assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
    stopped = run("stop")
    assert stopped.returncode == 0
    assert run("status").returncode == 3


@pytest.mark.integration
def test_up_then_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    kafka_port = free_port()
    env = {
        **os.environ,
        "FRAMEWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka_port}",
        "FRAMEWATCH_STATE_DIR": str(tmp_path / "state"),
        "HF_HUB_OFFLINE": "1",
    }
    base = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "framewatch", "up", "--base-port", str(base), "--prometheus-port", str(free_port())],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert any("framewatch is up" in line for line in lines), "".join(lines)
    time.sleep(5)
    family = descendants(proc.pid)
    assert family, "up started no child process"
    cache = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch"))
    kafka_pid_file = cache / f"kafka-run-{kafka_port}" / "kafka.pid"
    kafka_pid = int(kafka_pid_file.read_text()) if kafka_pid_file.exists() else None
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped" in out
    alive = [pid for pid in family if Path(f"/proc/{pid}").exists()]
    assert alive == [], f"left behind: {alive}"
    if kafka_pid is not None:
        assert not Path(f"/proc/{kafka_pid}").exists(), "the broker up started is still running"
    shutil.rmtree(kafka_pid_file.parent, ignore_errors=True)
