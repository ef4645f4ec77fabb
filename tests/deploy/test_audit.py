"""scripts/audit.py: the allowlist, the coverage policy and the reading of pip-audit's and PyPI's
JSON, on fixtures (no network; the real audit runs in scripts/test.sh)."""

from __future__ import annotations

import importlib.util
import sys
import urllib.error
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import ROOT

_spec = importlib.util.spec_from_file_location("framewatch_audit", ROOT / "scripts" / "audit.py")
assert _spec is not None and _spec.loader is not None
audit: Any = importlib.util.module_from_spec(_spec)  # loaded by path: scripts/ is no package
sys.modules[_spec.name] = audit  # dataclasses look their module up by name
_spec.loader.exec_module(audit)

TODAY = date(2026, 12, 1)
LOCK = "jinja2==3.1.4 \\\n    --hash=sha256:aa\n    # via torch\nnumpy==2.4.6 \\\n    --hash=sha256:bb\n"
PIP_AUDIT_JSON = {
    "dependencies": [
        {"name": "jinja2", "version": "3.1.4", "vulns": [
            {"id": "GHSA-q2x7-8rv6-6q7h", "fix_versions": ["3.1.5"], "aliases": ["CVE-2024-56201"],
             "description": "sandbox breakout"},
        ]},
        {"name": "requests", "version": "2.34.2", "vulns": []},
        {"name": "numpy", "skip_reason": "Dependency not found on PyPI and could not be audited: numpy (2.4.6)"},
    ],
    "fixes": [],
}


def entry(id_: str = "CVE-2024-56201", expires: date = date(2027, 1, 31), package: str | None = None):
    return audit.AllowEntry(id_, "templates are ours, never user input", expires, package)


def report() -> Any:
    return audit.parse_pip_audit(PIP_AUDIT_JSON, audit.lock_pins(LOCK))


def test_pip_audit_json_becomes_findings_and_unaudited_pins() -> None:
    parsed = report()
    assert parsed.audited == 2
    assert parsed.findings == [audit.Finding("jinja2", "3.1.4", "GHSA-q2x7-8rv6-6q7h", ("CVE-2024-56201",), ("3.1.5",))]
    assert [(name, version) for name, version, _ in parsed.unaudited] == [("numpy", "2.4.6")]


def test_unlisted_finding_fails() -> None:
    verdict = audit.judge(report(), [], TODAY, ci=False)
    assert not verdict.ok
    assert verdict.errors == ("jinja2==3.1.4: GHSA-q2x7-8rv6-6q7h (CVE-2024-56201); fixed in 3.1.5",)


@pytest.mark.parametrize("allowed", [entry(), entry("GHSA-q2x7-8rv6-6q7h", package="jinja2")])
def test_listed_finding_passes_by_id_or_alias(allowed: Any) -> None:
    verdict = audit.judge(report(), [allowed], TODAY, ci=True)
    assert verdict.ok, verdict.errors
    assert any("allowed until 2027-01-31: jinja2" in note for note in verdict.notes)


def test_entry_for_another_package_does_not_allow() -> None:
    assert not audit.judge(report(), [entry(package="flask")], TODAY, ci=False).ok


def test_expired_entry_fails_even_when_it_matches() -> None:
    verdict = audit.judge(report(), [entry(expires=date(2026, 11, 30))], TODAY, ci=False)
    assert not verdict.ok
    assert any("expired on 2026-11-30" in error for error in verdict.errors)
    assert any(error.startswith("jinja2==3.1.4") for error in verdict.errors)


def test_entry_expiring_today_still_holds() -> None:
    assert audit.judge(report(), [entry(expires=TODAY)], TODAY, ci=False).ok


def test_unused_entry_and_unaudited_pins_warn_without_failing() -> None:
    clean = audit.Report(audited=3, unaudited=[("numpy", "2.4.6", "not found")])
    verdict = audit.judge(clean, [entry()], TODAY, ci=True)
    assert verdict.ok
    assert "allowlist entry CVE-2024-56201 matches no finding: remove it" in verdict.warnings
    assert "1 not audited (not found): numpy==2.4.6" in verdict.warnings


def test_unreachable_service_fails_in_ci_and_warns_locally() -> None:
    nothing = audit.Report()
    in_ci = audit.judge(nothing, [], TODAY, ci=True)
    assert not in_ci.ok and "unreachable" in in_ci.errors[0]
    local = audit.judge(nothing, [], TODAY, ci=False)
    assert local.ok and "unreachable" in local.warnings[0]


def test_pip_audit_network_error_reads_as_unreachable() -> None:
    stderr = ("Traceback (most recent call last):\n  ...\nrequests.exceptions.ProxyError: HTTPSConnectionPool("
              "host='pypi.org', port=443): Max retries exceeded with url: /pypi/annotated-doc/0.0.7/json\n")
    assert type(audit.failure(1, stderr, "pypi")) is audit.ServiceUnreachable
    other = audit.failure(2, "pip-audit: error: argument -f: invalid choice\n", "pypi")
    assert type(other) is audit.AuditError
    assert "invalid choice" in str(other)


def test_project_json_answers_for_the_latest_release_only() -> None:
    doc = {"info": {"version": "2.4.6"}, "vulnerabilities": [
        {"id": "PYSEC-2026-1", "aliases": ["CVE-2026-1"], "fixed_in": ["2.4.7"], "withdrawn": None},
        {"id": "PYSEC-2026-2", "aliases": [], "fixed_in": [], "withdrawn": "2026-10-01T00:00:00"},
    ]}
    assert audit.project_json_findings(doc, "numpy", "2.4.6") == [
        audit.Finding("numpy", "2.4.6", "PYSEC-2026-1", ("CVE-2026-1",), ("2.4.7",))]
    assert audit.project_json_findings(doc, "numpy", "2.4.5") is None


def test_fill_from_project_json_audits_latest_pins_and_keeps_the_rest_listed() -> None:
    docs: dict[str, dict[str, object]] = {"numpy": {"info": {"version": "2.4.6"}, "vulnerabilities": []},
            "scipy": {"info": {"version": "1.18.1"}, "vulnerabilities": []}}

    def fetch(name: str) -> dict[str, object]:
        if name not in docs:
            raise urllib.error.URLError("unreachable")
        return docs[name]

    skipped = audit.Report(audited=1, unaudited=[(n, v, f"not found: {n} ({v})") for n, v in
                                                 [("numpy", "2.4.6"), ("scipy", "1.17.1"), ("lxml", "6.1.3")]])
    filled = audit.fill_from_project_json(skipped, fetch)
    assert filled.audited == 2
    assert sorted((name, why) for name, _, why in filled.unaudited) == [
        ("lxml", "not found; its project JSON is unavailable (URLError)"),
        ("scipy", "not found; not its latest release, which is all the project JSON covers"),
    ]


@pytest.mark.parametrize(("text", "problem"), [
    ('[[allow]]\nid = "CVE-1"\nexpires = 2027-01-01\n', "reason"),
    ('[[allow]]\nid = "CVE-1"\nreason = "x"\nexpires = "2027-01-01"\n', "expires"),
    ('[[allow]]\nreason = "x"\nexpires = 2027-01-01\n', "id"),
    ('[[allow]]\nid = "CVE-1"\nreason = "x"\nexpires = 2027-01-01\nuntil = 1\n', "unknown keys"),
    ("[[allow]\n", "not valid TOML"),
])
def test_malformed_allowlist_is_refused(text: str, problem: str) -> None:
    with pytest.raises(audit.AuditError, match=problem):
        audit.load_allowlist(text)


def test_repository_allowlist_loads() -> None:
    entries = audit.load_allowlist((ROOT / ".ci" / "audit-allowlist.toml").read_text())
    assert all(e.expires >= TODAY for e in entries) or entries == []


@pytest.mark.parametrize(("ci", "status"), [("true", 1), ("", 0)])
def test_main_unreachable_exit_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, status: int) -> None:
    def unreachable(lock: Path, service: str) -> dict[str, object]:
        raise audit.ServiceUnreachable("pip-audit could not reach the pypi service: ConnectionError")

    monkeypatch.setattr(audit, "run_pip_audit", unreachable)
    monkeypatch.setenv("CI", ci)
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    assert audit.main(["--lock", str(lock), "--allowlist", str(tmp_path / "none.toml")]) == status


def test_main_fails_on_an_expired_allowlist_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(audit, "run_pip_audit", lambda lock, service: {"dependencies": [
        {"name": "requests", "version": "2.34.2", "vulns": []}]})
    allowlist = tmp_path / "allow.toml"
    allowlist.write_text('[[allow]]\nid = "CVE-1"\nreason = "accepted"\nexpires = 2020-01-01\n')
    lock = tmp_path / "requirements.lock"
    lock.write_text(LOCK)
    assert audit.main(["--lock", str(lock), "--allowlist", str(allowlist), "--no-ci"]) == 1
