"""The image definition: hadolint passes (when installed), and the Dockerfile keeps its promises:
multi-stage, non-root, offline model, CPU torch pinned to the lock's version, the runtime lock
installed with hashes, no pip in the venv, `framewatch` entrypoint. No engine builds it here."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

DOCKERFILE = ROOT / "Dockerfile"
CACHED = Path(os.environ.get("FRAMEWATCH_CACHE", Path.home() / ".cache" / "framewatch")) / "tools-hadolint" / "bin" / "hadolint"
HADOLINT = shutil.which("hadolint") or (str(CACHED) if CACHED.is_file() else None)


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (scripts/install-tools.sh)")
def test_hadolint() -> None:
    result = subprocess.run([HADOLINT, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)  # type: ignore[list-item]
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    text = DOCKERFILE.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER 10001:10001$", text, re.M), "non-root user"
    assert "HF_HUB_OFFLINE=1" in text
    assert 'ENTRYPOINT ["framewatch"]' in text
    assert "download.pytorch.org/whl/cpu" in text
    assert not re.search(r"^COPY .*requirements\.lock", text, re.M), "the image gets the runtime lock only"
    for copied in re.findall(r"^COPY (?!--from)(.+) \./?\S*$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def _run_instructions(text: str) -> list[str]:
    """Each RUN instruction as one line (continuations joined, comments dropped)."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    return [line for line in joined.splitlines() if line.startswith("RUN ")]


def test_runtime_lock_is_installed_with_hashes_required() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^COPY requirements\.runtime\.lock ", text, re.M)
    (install,) = [run for run in _run_instructions(text) if "requirements.runtime.lock" in run]
    lock_installs = [cmd for cmd in install.split(";") if re.search(r"pip .*install .*-r ", cmd)]
    assert lock_installs, install
    assert all("--require-hashes" in cmd and "--no-deps" in cmd for cmd in lock_installs), lock_installs
    # Only torch comes without hashes, from the CPU index, at an exact version.
    unhashed = [cmd for cmd in install.split(";") if "pip " in cmd and "--require-hashes" not in cmd]
    assert all('"torch==${TORCH_VERSION}"' in cmd and "--index-url" in cmd for cmd in unhashed), unhashed


@pytest.mark.skipif(shutil.which("awk") is None, reason="no awk")
def test_cpu_filter_drops_whole_cuda_entries_and_keeps_the_rest_hashed() -> None:
    (install,) = [run for run in _run_instructions(DOCKERFILE.read_text()) if "requirements.runtime.lock" in run]
    program = re.search(r"awk '([^']+)'", install)
    assert program, install
    lock = (ROOT / "requirements.runtime.lock").read_text()
    kept = subprocess.run(["awk", program.group(1)], input=lock, capture_output=True, text=True, check=True).stdout
    names = re.findall(r"^([a-z0-9][a-z0-9._-]*)==", kept, re.M)
    cuda = re.compile(r"torch|triton|nvidia-.*|cuda-.*")
    assert names and not [n for n in names if cuda.fullmatch(n)]
    assert sorted(names) == sorted(n for n in re.findall(r"^([a-z0-9][a-z0-9._-]*)==", lock, re.M) if not cuda.fullmatch(n))
    # Every kept entry still carries its hashes, and no orphan hash line of a dropped entry remains.
    assert len(re.findall(r"^[a-z0-9].* \\\n\s+--hash=sha256:", kept, re.M)) == len(names)
    assert kept.count("--hash=") == sum(lock.count("--hash=", m.start(), m.end()) for m in _entries(lock) if not cuda.fullmatch(m.group(1)))


def _entries(lock: str) -> list[re.Match[str]]:
    return list(re.finditer(r"^([a-z0-9][a-z0-9._-]*)==.*(?:\n[ #].*)*", lock, re.M))


def test_cpu_torch_is_pinned_to_the_lock_version() -> None:
    pinned = re.search(r"^ARG TORCH_VERSION=(\S+)$", DOCKERFILE.read_text(), re.M)
    locked = re.search(r"^torch==([^\s;\\]+)", (ROOT / "requirements.runtime.lock").read_text(), re.M)
    assert pinned and locked
    assert pinned.group(1) == locked.group(1)


def test_runtime_venv_is_built_without_pip() -> None:
    text = DOCKERFILE.read_text()
    assert "venv --without-pip /opt/venv" in text
    for run in _run_instructions(text):
        for cmd in re.split(r";|&&", run):
            if re.search(r"\bpip .*install", cmd):
                assert "--python /opt/venv/bin/python" in cmd, f"pip outside --python puts itself in the venv: {cmd}"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "**"
    kept = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    copied = {path.rstrip("/") for paths in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.M)
              for path in paths.split()}
    assert copied >= {"requirements.runtime.lock", "pyproject.toml", "framewatch"}
    assert copied <= kept, f"the build context leaves out {sorted(copied - kept)}"
