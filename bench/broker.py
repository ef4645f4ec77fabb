"""What every benchmark needs: the CPU it reports its figures on (:func:`cpu_name`; :func:`hide_bf16`
to measure a CPU without bfloat16 on one that has it), and a Kafka broker (:func:`running_broker`):
reuse a reachable one, else start one with deploy/kafka/kafka.sh.

    with running_broker() as bootstrap:   # "127.0.0.1:PORT"
        ...

Order: ``FRAMEWATCH_TEST_KAFKA`` (or the legacy ``FRAMEWATCH_KAFKA_BOOTSTRAP``) when set and
reachable is used and left alone; else the project's script starts a broker on
``FRAMEWATCH_KAFKA_PORT`` (or the given port, or a free one); the broker this block started,
and only that one, is stopped on the way out. A broker the script already runs on that port is
reused and left running, as tests/conftest.py does.
"""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_SCRIPT = ROOT / "deploy" / "kafka" / "kafka.sh"
REUSE_VARS = ("FRAMEWATCH_TEST_KAFKA", "FRAMEWATCH_KAFKA_BOOTSTRAP")
NO_BF16_ISA = "AVX512_CORE_VNNI"  # oneDNN's cap for a Cascade Lake-class CPU: AVX-512 and VNNI, no bfloat16


class BrokerError(RuntimeError):
    """The broker could not be reached or started."""


def reachable(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when the first host:port of *bootstrap* accepts a TCP connection."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A port whose successor is free too (the script's controller listens on port + 1)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 65535 and not reachable(f"127.0.0.1:{port}", 0.2) and not reachable(f"127.0.0.1:{port + 1}", 0.2):
            return port
    raise BrokerError("no free pair of ports for a broker")


def _script(action: str, port: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAMEWATCH_KAFKA_PORT": str(port)}
    return subprocess.run([str(KAFKA_SCRIPT), action], env=env, capture_output=True, text=True, check=False)


@contextlib.contextmanager
def running_broker(port: int | None = None, *, log: bool = True) -> Iterator[str]:
    """Yield the bootstrap address of a reachable broker; stop it afterwards if this started it."""
    for var in REUSE_VARS:
        address = os.environ.get(var, "").strip()
        if address and reachable(address):
            _say(log, f"using the broker at {address} ({var})")
            yield address
            return
        if address:
            _say(log, f"{var}={address} is not reachable; starting a broker with {KAFKA_SCRIPT.name}")
    given = port or int(os.environ.get("FRAMEWATCH_KAFKA_PORT", "0") or 0)
    port = given or free_port()
    was_running = _script("status", port).returncode == 0
    started = _script("start", port)
    if started.returncode != 0:
        raise BrokerError(f"{KAFKA_SCRIPT} start on port {port} failed: {started.stderr.strip()[-2000:]}")
    address = f"127.0.0.1:{port}"
    _say(log, f"{'reusing the' if was_running else 'started a'} broker at {address}")
    try:
        yield address
    finally:
        if not was_running:
            stopped = _script("stop", port)
            _say(log, f"stopped the broker at {address}" if stopped.returncode == 0 else
                 f"could not stop the broker at {address}: {stopped.stderr.strip()[-500:]}")


def listener_pids(bootstrap: str) -> list[int]:
    """Processes listening on the first host:port of *bootstrap* (the broker's JVM), from /proc;
    a benchmark charges their CPU time to the broker."""
    port = bootstrap.split(",")[0].strip().rpartition(":")[2]
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                if port.isdigit() and cols[3] == "0A" and int(cols[1].rpartition(":")[2], 16) == int(port):  # 0A: LISTEN
                    inodes.add(f"socket:[{cols[9]}]")
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):  # processes come and go; others' fds may be unreadable
            if proc.name.isdigit() and any(os.readlink(fd) in inodes for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
    return pids


def _say(enabled: bool, message: str) -> None:
    # stderr: a benchmark's stdout ends in its JSON line, which callers parse
    if enabled:
        print(f"broker: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":  # smoke check: python bench/broker.py
    with running_broker() as bootstrap:
        print(bootstrap)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (the figures depend on it; platform's name elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hide_bf16() -> None:
    """Restart this process with oneDNN capped below bfloat16, unless it already is: the cap is
    read once, when torch first runs a kernel, so it must be in the environment from the start."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA") != NO_BF16_ISA:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "ONEDNN_MAX_CPU_ISA": NO_BF16_ISA})


def onednn_isa() -> str:
    """The ISA oneDNN dispatches to in this process, and the kernel a bfloat16 matmul gets
    (``brg_matmul:avx512_core_bf16`` native, ``gemm:jit:bf16`` emulated), from its verbose
    lines, which C prints to fd 1. Call it first: the ISA banner comes once per process."""
    import torch

    with tempfile.TemporaryFile() as verbose:
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(verbose.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON), torch.autocast("cpu", dtype=torch.bfloat16):
                torch.nn.Linear(256, 256)(torch.ones(64, 256))  # smaller ones skip oneDNN
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        verbose.seek(0)
        lines = verbose.read().decode(errors="replace").splitlines()
    isa = next((line.split("isa:", 1)[1] for line in lines if ",isa:" in line), "unknown")
    kernel = next((line.split(",")[6] for line in lines if ",exec,cpu,matmul," in line), "unknown")
    return f"{isa}; bf16 matmul kernel {kernel}"
