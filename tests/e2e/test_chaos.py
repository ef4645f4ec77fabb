"""The chaos soak, short (issue 11 acceptance in CI): ``python -m bench.chaos --minutes 2`` must meet
every target. The soak runs its own broker on a free port (never the shared test broker), so
this test asks for no Kafka fixture; whatever happens, its broker, children and tmpfs are
cleaned up (the soak does it on SIGTERM; this test makes sure)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

pytestmark = pytest.mark.integration

SOAK_TIMEOUT_S = 900


def _cleanup(workdir: Path) -> None:
    """What a soak killed mid-run may leave: its broker (own session) and its tmpfs."""
    pidfile = workdir / "kafka" / "kafka.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if "kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, signal.SIGKILL)
    parquet = workdir / "parquet"
    if subprocess.run(["mountpoint", "-q", str(parquet)], check=False).returncode == 0:
        subprocess.run(["umount", "-l", str(parquet)], check=False)


@pytest.mark.timeout(SOAK_TIMEOUT_S + 120)
def test_two_minutes_of_chaos_lose_and_double_nothing(tmp_path: Path) -> None:
    workdir = tmp_path / "chaos"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWATCH_")}
    argv = [sys.executable, "-m", "bench.chaos", "--minutes", "2", "--seed", "11",
            "--kill-every", "30-45", "--broker-restarts", "1", "--model", "fake", "--workdir", str(workdir)]
    proc = subprocess.Popen(argv, env={**env, "HF_HUB_OFFLINE": "1"}, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=SOAK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the soak stops its children and broker on SIGTERM
        try:
            out, _ = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"the soak did not finish in {SOAK_TIMEOUT_S} s:\n{out[-6000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _cleanup(workdir)
    lines = out.strip().splitlines()
    assert lines, "the soak printed nothing"
    try:
        figures = json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"the soak's last line is not JSON:\n{out[-6000:]}")
    report = f"{json.dumps(figures)}\n{out[-6000:]}"
    assert figures["items_published"] >= 2 * 60 * 20 * 0.9, report
    assert figures["kills"] >= 2 and figures["broker_restarts"] == 1, report
    assert figures["lost"] == 0, report
    assert figures["doubled"] == 0, report
    assert figures["aggregates_exact"] is True, report
    assert figures["dead_letters_expected"] >= 2, report
    assert figures["dead_letters_found"] == figures["dead_letters_expected"], report
    assert figures["webhooks_expected"] == 4, report
    assert figures["webhooks_received"] == figures["webhooks_expected"], report
    assert proc.returncode == 0, report
