"""The image definition: hadolint passes (when installed), and the Dockerfile keeps its promises:
multi-stage, non-root, offline model, CPU torch, `framewatch` entrypoint. No engine builds it here."""

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
    assert "requirements.lock" in text
    assert "download.pytorch.org/whl/cpu" in text
    for copied in re.findall(r"^COPY (?!--from)(.+) \./?\S*$", text, re.M):
        for path in copied.split():
            assert (ROOT / path).exists(), f"Dockerfile copies missing {path}"


def test_dockerignore_keeps_what_the_build_copies() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "**"
    kept = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert {"requirements.lock", "pyproject.toml", "README.md", "framewatch", "ingest", "processing", "dashboards"} <= kept
