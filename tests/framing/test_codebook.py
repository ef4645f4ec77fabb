"""Codebook loading, validation errors (file:line: field) and keyword matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from framewatch.errors import ConfigError
from framewatch.processing.framing.codebook import load_codebook, parse_codebook, watch_matches

GOOD = """\
watches:
  - id: social-credit
    title: China's social credit system
    match:
      any: [social credit, "credit score*"]
      exclude: [credit card]
    frames:
      - id: dystopia
        label: Black Mirror dystopia
        description: Surveillance and control of citizens by the state.
        examples:
          - "Like an episode of Black Mirror, citizens are ranked."
      - id: trust
        label: Consumer protection and trust
        description: Scores protect consumers and build trust in markets.
  - id: everything
    title: All items
    frames:
      - {id: a, label: A, description: first}
      - {id: b, label: B, description: second}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "codebook.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_good_codebook(tmp_path: Path) -> None:
    cb = load_codebook(write(tmp_path, GOOD))
    assert [w.id for w in cb.watches] == ["social-credit", "everything"]
    sc = cb.watch("social-credit")
    assert sc.frame_ids == ("dystopia", "trust")
    assert sc.frames[0].examples == ("Like an episode of Black Mirror, citizens are ranked.",)
    assert sc.match is not None and sc.match.exclude == ("credit card",)
    assert cb.watches[1].match is None
    assert len(cb.version) == 12
    assert cb.version == load_codebook(write(tmp_path, GOOD)).version
    assert cb.version != parse_codebook(GOOD.replace("first", "premier")).version


@pytest.mark.parametrize(
    ("edit", "line", "field"),
    [
        (("      - id: trust\n", "      - id: Trust!\n"), 13, "watches[0].frames[1].id"),
        (("        label: Black Mirror dystopia\n", ""), 8, "watches[0].frames[0].label"),
        (("        description: Scores protect consumers and build trust in markets.\n", "        description: 42\n"), 15, "watches[0].frames[1].description"),
        (("      - {id: b, label: B, description: second}\n", "      - {id: a, label: B, description: second}\n"), 20, "watches[1].frames[1].id"),
        (("      exclude: [credit card]\n", "      exclude: credit card\n"), 6, "watches[0].match.exclude"),
        (("    title: All items\n", "    title: All items\n    colour: blue\n"), 18, "watches[1].colour"),
        (("          - \"Like an episode of Black Mirror, citizens are ranked.\"\n", "          - {a: 1}\n"), 12, "watches[0].frames[0].examples[0]"),
        (("  - id: everything\n", "  - id: social-credit\n"), 16, "watches[1].id"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, edit: tuple[str, str], line: int, field: str) -> None:
    assert GOOD.count(edit[0]) == 1
    path = write(tmp_path, GOOD.replace(*edit))
    with pytest.raises(ConfigError) as info:
        load_codebook(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: {field}"), message


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, "watches:\n  - id: x\n    title: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"^{path}:\d+: <yaml>"):
        load_codebook(path)


def test_missing_file_and_missing_watches(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_codebook(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=":1: watches: is required"):
        load_codebook(write(tmp_path, "version: 1\n"))


def test_watches_with_one_frame_or_none_are_real_uses() -> None:
    """One frame: track one framing against everything else. No frames: only discover."""
    one = parse_codebook("watches:\n  - id: w\n    title: W\n    frames:\n      - {id: a, label: A, description: d}\n")
    assert one.watch("w").frame_ids == ("a",)
    discover = parse_codebook("watches:\n  - id: d\n    title: Discover\n    match: {any: [credit]}\n")
    assert discover.watch("d").frame_ids == () and discover.watch("d").match is not None
    assert parse_codebook("watches:\n  - id: e\n    title: E\n    frames: []\n").watch("e").frame_ids == ()


def test_threshold_without_description_rejected() -> None:
    bad = GOOD.replace("      exclude: [credit card]\n", "      threshold: 0.4\n")
    with pytest.raises(ConfigError, match=r":6: watches\[0\]\.match\.threshold: needs a match description"):
        parse_codebook(bad)


def test_watch_matches_keywords() -> None:
    sc = parse_codebook(GOOD).watch("social-credit")
    assert watch_matches(sc, "China's Social-Credit plan expands")
    assert watch_matches(sc, "Credit scores for citizens")  # prefix wildcard
    assert not watch_matches(sc, "Social credit and your credit card")  # excluded
    assert not watch_matches(sc, "Antisocial creditors")  # whole words only
    assert watch_matches(parse_codebook(GOOD).watch("everything"), "anything at all")


def test_all_keywords_and_description_only() -> None:
    text = GOOD.replace("      any: [social credit, \"credit score*\"]\n", "      all: [china, score]\n      description: state scoring of citizens\n")
    sc = parse_codebook(text).watch("social-credit")
    assert sc.match is not None and sc.match.description == "state scoring of citizens"
    assert watch_matches(sc, "China tests a score")
    assert not watch_matches(sc, "China tests a plan")


def test_gvfc_codebook_loads(shared_dir: Path) -> None:
    cb = load_codebook(shared_dir / "data" / "gvfc" / "codebook.yaml")
    assert len(cb.watches[0].frames) == 9
