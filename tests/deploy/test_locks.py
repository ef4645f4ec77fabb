"""The two locks agree with pyproject.toml and with each other (no network; scripts/lock.sh writes
them): every entry hashed, the runtime lock free of dev tools and at requirements.lock's versions."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
DEV = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]]
ENTRY = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(.*(?:\n[ \t]+.*)*)", re.M)


def entries(lock: str) -> dict[str, tuple[str, str]]:
    """Canonical name -> (version, the rest of its entry: markers, hash lines, `# via` lines)."""
    text = (ROOT / lock).read_text()
    return {canonicalize_name(m.group(1)): (m.group(2), m.group(3)) for m in ENTRY.finditer(text)}


FULL = entries("requirements.lock")
RUNTIME_LOCK = entries("requirements.runtime.lock")


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements.runtime.lock"])
def test_every_entry_is_hashed(lock: str) -> None:
    pins = entries(lock)
    assert len(pins) > 50
    assert not [name for name, (_, rest) in pins.items() if "--hash=sha256:" not in rest]
    assert "scripts/lock.sh" in (ROOT / lock).read_text().split("\n", 2)[1], "written by scripts/lock.sh"


@pytest.mark.parametrize(("lock", "wanted"), [("requirements.lock", RUNTIME + DEV), ("requirements.runtime.lock", RUNTIME)])
def test_lock_satisfies_pyproject(lock: str, wanted: list[Requirement]) -> None:
    pins = entries(lock)
    missing = [str(r) for r in wanted if canonicalize_name(r.name) not in pins]
    assert not missing, f"{lock} is older than pyproject.toml; run scripts/lock.sh ({missing})"
    outside = [f"{r} (locked {pins[canonicalize_name(r.name)][0]})" for r in wanted
               if not r.specifier.contains(pins[canonicalize_name(r.name)][0], prereleases=True)]
    assert not outside, f"{lock} pins outside pyproject.toml's ranges; run scripts/lock.sh ({outside})"


def test_runtime_lock_names_no_dev_tool() -> None:
    dev_only = {canonicalize_name(r.name) for r in DEV} - {canonicalize_name(r.name) for r in RUNTIME}
    assert {"pytest", "mypy", "ruff", "pip-audit"} <= dev_only
    assert not dev_only & RUNTIME_LOCK.keys()


def test_runtime_lock_is_a_subset_at_the_same_versions() -> None:
    assert RUNTIME_LOCK.keys() <= FULL.keys()
    differ = {name: (v, FULL[name][0]) for name, (v, _) in RUNTIME_LOCK.items() if FULL[name][0] != v}
    assert not differ, f"runtime lock versions differ from requirements.lock: {differ}"
