"""Rules for the tests themselves: no test waits a fixed time and then asserts what should have
happened meanwhile: it polls for the condition under a deadline instead."""

from __future__ import annotations

import ast

from tests.helpers.paths import ROOT


def _is_sleep(node: ast.stmt) -> bool:
    if not isinstance(node, ast.Expr):
        return False
    call = node.value.value if isinstance(node.value, ast.Await) else node.value
    if not isinstance(call, ast.Call):
        return False
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name == "sleep"


def _asserts(nodes: list[ast.stmt]) -> bool:
    return any(isinstance(n, ast.Assert) for stmt in nodes for n in ast.walk(stmt))


def sleeps_followed_by_asserts(source: str) -> list[int]:
    """Line numbers of sleep calls after which the same block asserts something."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if not isinstance(block, list):
                continue
            for i, stmt in enumerate(block):
                if isinstance(stmt, ast.stmt) and _is_sleep(stmt) and _asserts(block[i + 1:]):
                    found.append(stmt.lineno)
    return sorted(found)


def test_no_sleep_is_followed_by_an_assertion() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line in sleeps_followed_by_asserts(path.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "poll for the condition (tests/helpers/waiting.py) instead of sleeping"


def test_the_rule_sees_a_sleep_then_assert_and_allows_polling() -> None:
    bad = "import time\ndef t():\n    go()\n    time.sleep(5)\n    assert done()\n"
    nested = "def t():\n    sleep(1)\n    with x:\n        assert y\n"
    polling = "import time\ndef t():\n    while not done():\n        time.sleep(0.1)\n    assert done()\n"
    assert sleeps_followed_by_asserts(bad) == [4]
    assert sleeps_followed_by_asserts(nested) == [2]
    assert sleeps_followed_by_asserts(polling) == []

