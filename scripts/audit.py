"""Audit requirements.lock for known vulnerabilities; findings pass only when allowlisted.

pip-audit reads the hashed lock (no resolution, no pip) and asks its vulnerability service. Any
package it could not audit is looked up once more in PyPI's project JSON, whose `vulnerabilities`
are those of the project's latest release: exact for a pin at the latest release, so a pin behind
it stays "not audited" and is listed. (Where only the package registries are reachable, PyPI's
per-release JSON that pip-audit uses answers 404 for every package, and pip-audit would report
"No known vulnerabilities found" having audited nothing.)

Exit status 1 on: a finding not in the allowlist, an expired allowlist entry, a malformed
allowlist, pip-audit failing for another reason, or, in CI (CI=true), no package audited at all
because the vulnerability service cannot be reached. Outside CI that last case only warns, so an
offline laptop can still run the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
# How pip-audit dies when the network is not there (it raises from requests, uncaught).
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|ProxyError|NameResolutionError|"
    r"Max retries exceeded|Temporary failure in name resolution|Network is unreachable"
)


class AuditError(Exception):
    """The audit could not run: a bad allowlist, or pip-audit failing for a reason of its own."""


class ServiceUnreachable(AuditError):
    """The vulnerability service could not be reached."""


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...] = ()
    fix_versions: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllowEntry:
    id: str
    reason: str
    expires: date
    package: str | None = None

    def matches(self, finding: Finding) -> bool:
        ids = {finding.id, *finding.aliases}
        return self.id in ids and self.package in (None, finding.package)


@dataclass
class Report:
    """What the service said: findings, and the (package, version, why) it could not audit."""

    audited: int = 0
    findings: list[Finding] = field(default_factory=list)
    unaudited: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    errors: tuple[str, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]


def lock_pins(text: str) -> dict[str, str]:
    """`name==version` of every entry of a uv/pip-compile lock."""
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.M))


def parse_pip_audit(doc: dict[str, object], pins: dict[str, str]) -> Report:
    """pip-audit's JSON (`-f json`) as a Report; skipped entries carry no version, the lock has it."""
    report = Report()
    for dep in doc.get("dependencies", []):  # type: ignore[attr-defined]
        name = dep["name"]
        if "skip_reason" in dep:
            report.unaudited.append((name, dep.get("version") or pins.get(name, "?"), dep["skip_reason"]))
            continue
        report.audited += 1
        for vuln in dep.get("vulns", []):
            report.findings.append(Finding(name, dep["version"], vuln["id"], tuple(vuln.get("aliases", ())),
                                           tuple(vuln.get("fix_versions", ()))))
    return report


def project_json_findings(doc: dict[str, object], name: str, version: str) -> list[Finding] | None:
    """Findings for `name==version` from PyPI's project JSON; None unless `version` is its latest."""
    info = doc.get("info")
    if not isinstance(info, dict) or info.get("version") != version:
        return None
    return [
        Finding(name, version, vuln["id"], tuple(vuln.get("aliases") or ()), tuple(vuln.get("fixed_in") or ()))
        for vuln in doc.get("vulnerabilities") or []  # type: ignore[attr-defined]
        if not vuln.get("withdrawn")
    ]


def fill_from_project_json(report: Report, fetch: Callable[[str], dict[str, object]]) -> Report:
    """Audit what the service skipped from the project JSON; what that cannot answer stays unaudited."""
    filled = Report(report.audited, list(report.findings))

    def one(entry: tuple[str, str, str]) -> tuple[tuple[str, str, str], list[Finding] | None, str]:
        name, version, skipped = entry
        skipped = skipped.split(": ")[0]  # pip-audit appends "name (version)"; grouped without it
        try:
            found = project_json_findings(fetch(name), name, version)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors; bad JSON ValueError
            return entry, None, f"{skipped}; its project JSON is unavailable ({type(exc).__name__})"
        return entry, found, f"{skipped}; not its latest release, which is all the project JSON covers"

    with ThreadPoolExecutor(8) as pool:
        for entry, found, why in pool.map(one, report.unaudited):
            if found is None:
                filled.unaudited.append((entry[0], entry[1], why))
            else:
                filled.audited += 1
                filled.findings.extend(found)
    return filled


def load_allowlist(text: str) -> list[AllowEntry]:
    """Entries of the allowlist TOML (`[[allow]]` tables: id, reason, expires, optional package)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AuditError(f"allowlist is not valid TOML: {exc}") from exc
    entries = []
    for i, raw in enumerate(doc.get("allow", []), start=1):
        where = f"allowlist entry {i} ({raw.get('id', 'no id')})"
        if not isinstance(raw.get("id"), str) or not raw["id"]:
            raise AuditError(f"{where}: `id` must be a vulnerability id string")
        if not isinstance(raw.get("reason"), str) or not raw["reason"].strip():
            raise AuditError(f"{where}: `reason` must say why the finding is accepted")
        if type(raw.get("expires")) is not date:
            raise AuditError(f"{where}: `expires` must be a TOML date such as 2027-01-31")
        if unknown := set(raw) - {"id", "reason", "expires", "package"}:
            raise AuditError(f"{where}: unknown keys {sorted(unknown)}")
        entries.append(AllowEntry(raw["id"], raw["reason"].strip(), raw["expires"], raw.get("package")))
    return entries


def judge(report: Report, allowlist: Iterable[AllowEntry], today: date, ci: bool) -> Verdict:
    """Apply the allowlist and the coverage policy to a report."""
    errors: list[str] = []
    warnings: list[str] = []
    notes: list[str] = []
    live = []
    for entry in allowlist:
        if entry.expires < today:
            errors.append(f"allowlist entry {entry.id} expired on {entry.expires}: upgrade the package, "
                          f"or renew the entry with a new date and reason")
        else:
            live.append(entry)
    used = set()
    for finding in report.findings:
        allowed = next((e for e in live if e.matches(finding)), None)
        fix = f"; fixed in {', '.join(finding.fix_versions)}" if finding.fix_versions else "; no fix released"
        if allowed is None:
            errors.append(f"{finding.package}=={finding.version}: {finding.id}"
                          f"{' (' + ', '.join(finding.aliases) + ')' if finding.aliases else ''}{fix}")
        else:
            used.add(allowed)
            notes.append(f"allowed until {allowed.expires}: {finding.package} {finding.id}: {allowed.reason}")
    if report.audited == 0:
        message = "vulnerability service unreachable: no package could be audited"
        (errors if ci else warnings).append(message + ("" if ci else " (outside CI this only warns)"))
    else:
        for entry in live:
            if entry not in used:
                warnings.append(f"allowlist entry {entry.id} matches no finding: remove it")
        by_reason: dict[str, list[str]] = {}
        for name, version, why in report.unaudited:
            by_reason.setdefault(why, []).append(f"{name}=={version}")
        for why, pins in by_reason.items():
            warnings.append(f"{len(pins)} not audited ({why}): {' '.join(pins)}")
    notes.append(f"{report.audited} packages audited, {len(report.unaudited)} not, "
                 f"{len(report.findings)} findings")
    return Verdict(not errors, tuple(errors), tuple(warnings), tuple(notes))


def run_pip_audit(lock: Path, service: str) -> dict[str, object]:
    """pip-audit's JSON report for a hashed lock; ServiceUnreachable when it cannot reach `service`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        result = subprocess.run(
            [sys.executable, "-m", "pip_audit", "-r", str(lock), "--require-hashes", "--disable-pip",
             "-s", service, "-f", "json", "-o", str(out), "--progress-spinner", "off", "--timeout", "20"],
            capture_output=True, text=True, check=False,
        )
        # Exit 1 with a report means findings; without one pip-audit failed.
        if result.returncode in (0, 1) and out.is_file():
            return json.loads(out.read_text())  # type: ignore[no-any-return]
    raise failure(result.returncode, result.stderr, service)


def failure(returncode: int, stderr: str, service: str) -> AuditError:
    """The error for a pip-audit run that wrote no report: unreachable service, or anything else."""
    tail = stderr.strip().splitlines()[-1:] or ["no output"]
    if UNREACHABLE.search(stderr):
        return ServiceUnreachable(f"pip-audit could not reach the {service} service: {tail[0]}")
    return AuditError(f"pip-audit failed (exit {returncode}): {tail[0]}")


def fetch_project_json(name: str) -> dict[str, object]:
    url = PROJECT_JSON.format(name=name)
    with urllib.request.urlopen(url, timeout=20) as response:  # noqa: S310 (fixed https URL)
        return json.loads(response.read())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--allowlist", type=Path, default=ROOT / ".ci" / "audit-allowlist.toml")
    parser.add_argument("--service", default="pypi", choices=["pypi", "osv"], help="pip-audit's service")
    parser.add_argument("--ci", action=argparse.BooleanOptionalAction,
                        default=os.environ.get("CI", "").lower() in {"1", "true", "yes"},
                        help="fail when the service is unreachable (default: env CI=true)")
    args = parser.parse_args(argv)
    try:
        allowlist = load_allowlist(args.allowlist.read_text() if args.allowlist.is_file() else "")
        try:
            report = parse_pip_audit(run_pip_audit(args.lock, args.service), lock_pins(args.lock.read_text()))
            if report.unaudited:
                report = fill_from_project_json(report, fetch_project_json)
        except ServiceUnreachable as exc:
            print(f"audit: {exc}", file=sys.stderr)
            report = Report()
    except AuditError as exc:
        print(f"audit: error: {exc}", file=sys.stderr)
        return 1
    verdict = judge(report, allowlist, datetime.now(UTC).date(), args.ci)
    for line in verdict.notes:
        print(f"audit: {line}", file=sys.stderr)
    for line in verdict.warnings:
        print(f"audit: warning: {line}", file=sys.stderr)
    for line in verdict.errors:
        print(f"audit: FAIL: {line}", file=sys.stderr)
    if report.findings and not verdict.ok:
        print(f"audit: failed; to accept a finding for a while, add it to {args.allowlist} "
              "(id, reason, expires)", file=sys.stderr)
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
