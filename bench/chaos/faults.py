"""The chaos soak's faults and the supervisor that rides them out.

* :class:`Supervisor`: runs the five components as ``framewatch up`` does (``framewatch.stack.
  Child``), restarts a child that dies, as Kubernetes would: at once when the soak killed it,
  with a short doubling backoff (capped at 10 s, reset after a minute up) when it exited by itself;
  those exits are counted per component as crashes.
* :class:`Broker`: the soak's own Kafka (deploy/kafka/kafka.sh with its own port and home),
  stopped with SIGKILL or ``kafka.sh stop`` and started again.
* :class:`DiskFiller`: the sink's lake (Parquet) on a small tmpfs, filled by one file and freed.
* :func:`inject_poison`: a record no decoder accepts, produced straight onto a topic, with the
  coordinates it got (so the verdict can find its dead letter).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer

from framewatch.contracts import MAX_DEPTH, MAX_RECORD_BYTES
from framewatch.stack import KAFKA_SCRIPT, Child

COMPONENTS = ("ingest", "process", "aggregate", "notify", "sink")
KILLED_RESTART_S = 1.0
CRASH_BACKOFF_MAX_S = 10.0
STOP_GRACE_S = 20.0


@dataclass
class Supervised:
    """A child and what happened to it."""

    child: Child
    kills: int = 0
    crashes: list[int] = field(default_factory=list)  # exit codes of exits the soak did not cause
    killed_by_us: bool = False
    started_at: float = 0.0
    next_start: float = 0.0
    backoff_s: float = 1.0


class Supervisor:
    """Keeps every child running (call :meth:`tick` about once a second)."""

    def __init__(self, children: list[Child]) -> None:
        self.children = {c.name: Supervised(c) for c in children}

    def start_all(self) -> None:
        for s in self.children.values():
            self._start(s)

    def _start(self, s: Supervised) -> None:
        s.child.start()
        s.started_at = time.monotonic()
        s.next_start = 0.0

    def kill(self, name: str) -> bool:
        """kill -9 one child; False when it was not running."""
        s = self.children[name]
        if not s.child.running():
            return False
        assert s.child.proc is not None
        s.killed_by_us = True
        with contextlib.suppress(ProcessLookupError):
            s.child.proc.send_signal(signal.SIGKILL)
        s.child.proc.wait()
        s.kills += 1
        s.next_start = time.monotonic() + KILLED_RESTART_S
        return True

    def running(self) -> list[str]:
        return [n for n, s in self.children.items() if s.child.running()]

    def tick(self, log: list[str]) -> None:
        """Restart children that died (killed: after a second; crashed: with backoff)."""
        now = time.monotonic()
        for name, s in self.children.items():
            if s.child.running():
                if now - s.started_at > 60:
                    s.backoff_s = 1.0
                continue
            if s.next_start == 0.0:  # it exited by itself since the last tick
                assert s.child.proc is not None
                code = s.child.proc.returncode
                s.crashes.append(code)
                s.next_start = now + s.backoff_s
                log.append(f"{name} exited by itself with code {code}; restart in {s.backoff_s:.0f} s")
                s.backoff_s = min(CRASH_BACKOFF_MAX_S, s.backoff_s * 2)
            elif now >= s.next_start:
                s.killed_by_us = False
                s.child.restarts += 1
                self._start(s)

    def stop_all(self) -> None:
        """SIGTERM every child, SIGKILL what is left after a grace period."""
        for s in self.children.values():
            if s.child.running():
                assert s.child.proc is not None
                with contextlib.suppress(ProcessLookupError):
                    s.child.proc.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for s in self.children.values():
            proc = s.child.proc
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def component_children(env: dict[str, str], args: dict[str, list[str]], ports: dict[str, int],
                       state: Path, logs: Path) -> list[Child]:
    """The components as ``framewatch up`` runs them: one process each, own port and state."""
    children = []
    for name in COMPONENTS:
        child_env = {**env, "FRAMEWATCH_METRICS_PORT": str(ports[name]),
                     "FRAMEWATCH_STATE_DIR": str(state / name), "HF_HUB_OFFLINE": "1"}
        argv = [sys.executable, "-m", "framewatch", name, *args[name]]
        children.append(Child(name, argv, child_env, ports[name], log_path=logs / f"{name}.log"))
    return children


class Broker:
    """The soak's own single-node Kafka (never the shared development or CI broker)."""

    def __init__(self, port: int, home: Path, log_path: Path) -> None:
        self.port = port
        self.home = home
        self.log_path = log_path
        self.env = {**os.environ, "FRAMEWATCH_KAFKA_PORT": str(port), "FRAMEWATCH_KAFKA_HOME": str(home)}
        self.restarts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _script(self, action: str) -> int:
        with self.log_path.open("ab") as out:
            return subprocess.call([str(KAFKA_SCRIPT), action], env=self.env, stdout=out, stderr=out)

    def start(self) -> None:
        if self._script("start") != 0:
            raise RuntimeError(f"the soak's Kafka broker did not start (see {self.log_path})")

    def pid(self) -> int | None:
        try:
            pid = int((self.home / "kafka.pid").read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def stop(self, hard: bool) -> None:
        """SIGKILL (*hard*) or a clean ``kafka.sh stop``."""
        pid = self.pid()
        if hard and pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self._script("stop")

    def restart(self, hard: bool, down_s: float) -> float:
        """Stop, stay down *down_s*, start; returns the seconds it was unavailable."""
        began = time.monotonic()
        self.stop(hard)
        time.sleep(down_s)
        self.start()
        self.restarts += 1
        return time.monotonic() - began


class DiskFiller:
    """A small tmpfs for the Parquet sink, filled once by a filler file (root only)."""

    def __init__(self, mount_point: Path, size_mb: int) -> None:
        self.mount_point = mount_point
        self.size_mb = size_mb
        self.mounted = False
        self.filler = mount_point / "filler.bin"
        self.events = 0

    def mount(self) -> str | None:
        """Mount the tmpfs; returns why not when it cannot (then the fault is skipped)."""
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return "not root: cannot mount a tmpfs, so the disk-full fault is skipped"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m", "chaos-parquet",
                               str(self.mount_point)], capture_output=True, text=True)
        if done.returncode != 0:
            return f"mount -t tmpfs failed ({done.stderr.strip()}): the disk-full fault is skipped"
        self.mounted = True
        return None

    def fill(self) -> int:
        """Write the filler until the filesystem refuses (ENOSPC); returns the bytes written."""
        written = 0
        chunk = b"\0" * (1 << 20)
        with self.filler.open("wb") as out:
            try:
                while True:
                    out.write(chunk)
                    out.flush()
                    written += len(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
        self.events += 1
        return written

    def free(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.filler.unlink()

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mount_point)], check=False)
            self.mounted = False


# kinds of poison, each on the topic whose consumer must dead-letter it
POISON_KINDS = ("deep_json_raw", "int_frame_framed", "invalid_utf8_raw", "too_large_raw", "invalid_utf8_alerts")


def poison_value(kind: str, n: int) -> tuple[str, bytes]:
    """(logical topic, bytes) of the *n*-th poison of *kind*."""
    if kind == "deep_json_raw":
        depth = MAX_DEPTH * 4
        return "raw-items", (f'{{"item_id":"poison-{n}","x":' + "[" * depth + "1" + "]" * depth + "}").encode()
    if kind == "int_frame_framed":
        record = {"key": f"social-credit:poison-{n}", "item_id": f"poison-{n}", "watch_id": "social-credit",
                  "source_id": "poison", "kind": "article", "published_at": "2026-01-01T00:00:00Z",
                  "processed_at": "2026-01-01T00:00:00Z", "frame": 7, "frame_shares": {}, "segments": [],
                  "codebook_version": "v", "model_id": "m", "method": "x"}
        return "framed-items", json.dumps(record).encode()
    if kind in ("invalid_utf8_raw", "invalid_utf8_alerts"):
        topic = "raw-items" if kind == "invalid_utf8_raw" else "alerts"
        return topic, b'{"item_id":"poison-%d","text":"\xff\xfe\xc3\x28"}' % n
    if kind == "too_large_raw":
        return "raw-items", b'{"item_id":"poison-%d","text":"' % n + b"a" * (MAX_RECORD_BYTES + 1024) + b'"}'
    raise ValueError(f"unknown poison kind {kind!r}")


@dataclass(frozen=True, slots=True)
class Poison:
    """A poison record as injected: where it landed and what it was."""

    kind: str
    topic: str
    partition: int
    offset: int
    size: int


def inject_poison(producer: KafkaProducer, prefix: str, kind: str, n: int) -> Poison:
    """Produce one poison record; returns its coordinates (raises when the broker refuses it)."""
    logical, value = poison_value(kind, n)
    topic = prefix + logical
    meta = producer.send(topic, key=f"poison-{n}".encode(), value=value).get(timeout=60)
    return Poison(kind, topic, meta.partition, meta.offset, len(value))
