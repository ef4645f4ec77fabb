"""The tree shows the plan: programs import only what they may, folders and modules stay small,
and every module says its job on its first line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

# import path prefix -> program; the longest matching prefix wins
PROGRAMS = {
    "framewatch.ingest": "ingest",
    "framewatch.processing.framing": "framing",
    "framewatch.processing.trends": "trends",
    "framewatch.processing.alerts": "alerts",
    "framewatch.processing.analyst": "analyst",
    "framewatch.processing.sink": "sink",
    "framewatch.processing.serve": "serve",
    "framewatch.processing.changes": "changes",
    "framewatch.processing.embedding": "embedding",
    "framewatch.processing.workbench": "workbench",
    "framewatch.dashboards": "dashboards",
}
# what each program may import besides the core (framewatch.contracts, settings, kafka_io, ...)
ALLOWED = {
    "analyst": {"framing", "ingest", "embedding"},
    "framing": {"embedding"},
    # the aggregator runs the detectors; `framewatch shifts` replays them over the sink's lake
    "trends": {"changes"},
    "changes": {"sink"},
    # the API edits what the others read: codebooks (promote), subscriptions and their test alert
    "serve": {"alerts", "analyst", "framing", "workbench"},
    # the pages are a client of the API's reads, in the same process
    "workbench": {"serve", "alerts", "analyst", "framing", "changes"},
}
# source folder -> import path
FOLDERS = {
    "framewatch": "framewatch", "ingest": "framewatch.ingest", "processing": "framewatch.processing",
    "dashboards": "framewatch.dashboards",
}


def modules() -> list[tuple[Path, str]]:
    out = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            out.append((path, name))
    return out


def program_of(module: str) -> str | None:
    best = max((p for p in PROGRAMS if module == p or module.startswith(p + ".")), key=len, default=None)
    return PROGRAMS[best] if best else None


def imported(path: Path, module: str) -> set[str]:
    """Every module *path* imports, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.startswith("framewatch")}


def cross_program_imports() -> list[str]:
    bad = []
    for path, module in modules():
        mine = program_of(module)
        for target in sorted(imported(path, module)):
            theirs = program_of(target)
            if theirs is None or theirs == mine:
                continue
            if mine is None:
                bad.append(f"{module} (core) imports {target} ({theirs})")
            elif theirs not in ALLOWED.get(mine, set()):
                bad.append(f"{module} ({mine}) imports {target} ({theirs})")
    return bad


def test_no_program_imports_another_programs_internals() -> None:
    assert cross_program_imports() == []


def test_the_import_walk_sees_a_cross_program_import(tmp_path: Path) -> None:
    """The walker itself works: lazy, relative and aliased imports are all seen."""
    src = tmp_path / "mod.py"
    src.write_text('"""x."""\n\ndef f():\n    from framewatch.processing.trends import counts as c\n    from . import stage\n    import framewatch.processing.alerts.delivery\n')
    found = imported(src, "framewatch.processing.framing.mod")
    assert {"framewatch.processing.trends.counts", "framewatch.processing.framing.stage",
            "framewatch.processing.alerts.delivery"} <= found
    assert program_of("framewatch.processing.trends.counts") == "trends"
    assert program_of("framewatch.contracts") is None


@pytest.mark.parametrize("folder", ["framewatch", "ingest", "ingest/parse", "processing/framing",
                                    "processing/trends", "processing/alerts", "processing/analyst",
                                    "processing/sink", "processing/serve", "processing/changes",
                                    "processing/embedding", "processing/workbench", "dashboards"])
def test_no_source_folder_holds_more_than_12_modules(folder: str) -> None:
    count = len(list((ROOT / folder).glob("*.py")))
    assert 0 < count <= 12, f"{folder} holds {count} modules"


def test_processing_shows_its_programs() -> None:
    subfolders = sorted(p.name for p in (ROOT / "processing").iterdir() if p.is_dir() and p.name != "__pycache__")
    assert subfolders == ["alerts", "analyst", "changes", "embedding", "framing", "serve", "sink", "trends", "workbench"]
    assert [p.name for p in (ROOT / "processing").glob("*.py")] == ["__init__.py"]


def test_every_module_is_small_and_says_its_job_first() -> None:
    long, silent = [], []
    for path, module in modules():
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 500:
            long.append(module)
        first = text.splitlines()[0] if text else ""
        if not first.startswith('"""') or len(first.strip('" ')) < 10:
            silent.append(module)
    assert long == [] and silent == []
