"""Codebook: the watches (issues followed) and the frames each one is coded with, from YAML.

Every error names the file, the line and the field (``codebook.yaml:12: watches[0].frames[2].id:
...``), so a person editing the file finds the mistake at once. The YAML is read with a loader
that keeps each node's line mark for that purpose.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from framewatch.errors import ConfigError

_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
# A watch's calibrated decision thresholds, per assignment method (see assign.calibrate).
DECISION_METHODS = ("zero-shot", "few-shot", "trained")
DECISION_FIELDS = ("min_score", "min_margin", "min_relevance")
SHARE_LEVELS = ("document", "segment")


@dataclass(frozen=True, slots=True)
class Match:
    """Which items belong to a watch: keyword lists and/or a semantic description."""

    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    description: str | None = None
    threshold: float = 0.35


@dataclass(frozen=True, slots=True)
class Frame:
    """One way of framing the issue: an id, a human label, a description and example passages."""

    id: str
    label: str
    description: str
    examples: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Watch:
    """One issue followed; ``match`` None means every item belongs to it."""

    id: str
    title: str
    match: Match | None
    frames: tuple[Frame, ...]
    # (method, ((field, value), ...)) from the watch's ``decision:`` block
    thresholds: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    # which level's frames count for share of voice: "document", "segment", or None (default:
    # document for articles when a trained document head exists, else segment)
    share_of_voice: str | None = None

    @property
    def frame_ids(self) -> tuple[str, ...]:
        """Frame ids in codebook order."""
        return tuple(f.id for f in self.frames)

    def thresholds_for(self, method: str) -> dict[str, float]:
        """Calibrated thresholds for one assignment method ({} when the codebook sets none)."""
        return dict(next((values for m, values in self.thresholds if m == method), ()))


@dataclass(frozen=True, slots=True)
class Codebook:
    """All watches of one codebook file; ``version`` is a short hash of the file's content."""

    watches: tuple[Watch, ...]
    version: str
    path: str

    def watch(self, watch_id: str) -> Watch:
        """Return the watch with this id or raise ConfigError."""
        for w in self.watches:
            if w.id == watch_id:
                return w
        raise ConfigError(f"{self.path}: no watch {watch_id!r} (have {[w.id for w in self.watches]})")


# --- loading --------------------------------------------------------------------------------


class _Node:
    """A YAML value with the line it came from (1-based)."""

    __slots__ = ("line", "value")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


class _MarkedLoader(yaml.SafeLoader):
    """SafeLoader that wraps every mapping and sequence value in a _Node with its line."""


def _construct_mapping(loader: _MarkedLoader, node: yaml.MappingNode) -> dict[str, _Node]:
    out: dict[str, _Node] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        # the key's line: where a reader looks for "field: value" (block values start below it)
        out[str(key)] = _Node(value, key_node.start_mark.line + 1)
    return out


def _construct_sequence(loader: _MarkedLoader, node: yaml.SequenceNode) -> list[_Node]:
    return [_Node(loader.construct_object(n, deep=True), n.start_mark.line + 1) for n in node.value]


_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_MarkedLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


class _Reader:
    """Reads typed fields from marked nodes, raising ConfigError with file:line:field."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, line: int, field: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}:{line}: {field}: {message}")

    def mapping(self, node: _Node, field: str) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise self.fail(node.line, field, "expected a mapping")
        return node.value

    def sequence(self, node: _Node, field: str) -> list[_Node]:
        if not isinstance(node.value, list):
            raise self.fail(node.line, field, "expected a list")
        return node.value

    def text(self, parent: dict[str, _Node], key: str, field: str, line: int, *, required: bool = True) -> str | None:
        node = parent.get(key)
        if node is None or node.value is None:
            if required:
                raise self.fail(line, f"{field}.{key}", "is required")
            return None
        if not isinstance(node.value, str) or not node.value.strip():
            raise self.fail(node.line, f"{field}.{key}", "expected a non-empty string")
        return node.value.strip()

    def words(self, parent: dict[str, _Node], key: str, field: str) -> tuple[str, ...]:
        node = parent.get(key)
        if node is None or node.value is None:
            return ()
        items = self.sequence(node, f"{field}.{key}")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item.value, str) or not item.value.strip():
                raise self.fail(item.line, f"{field}.{key}[{i}]", "expected a non-empty string")
            out.append(item.value.strip())
        return tuple(out)

    def unknown(self, parent: dict[str, _Node], allowed: set[str], field: str) -> None:
        for key, node in parent.items():
            if key not in allowed:
                raise self.fail(node.line, f"{field}.{key}", f"unknown field (allowed: {sorted(allowed)})")


def load_codebook(path: str | Path) -> Codebook:
    """Read and validate a codebook YAML file; raise ConfigError naming file, line and field."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read codebook: {exc}") from exc
    return parse_codebook(raw.decode("utf-8", errors="replace"), str(p))


def parse_codebook(text: str, path: str = "<codebook>") -> Codebook:
    """Validate codebook YAML *text*; *path* is only used in error messages."""
    try:
        root = yaml.load(text, Loader=_MarkedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        raise ConfigError(f"{path}:{line}: <yaml>: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}:0: <yaml>: {exc}") from exc
    r = _Reader(path)
    top = r.mapping(_Node(root, 1), "<root>") if root is not None else {}
    if "watches" not in top:
        raise r.fail(1, "watches", "is required")
    r.unknown(top, {"watches", "version"}, "<root>")
    watches: list[Watch] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(r.sequence(top["watches"], "watches")):
        watch = _read_watch(r, node, f"watches[{i}]")
        if watch.id in seen:
            raise r.fail(node.line, f"watches[{i}].id", f"duplicate watch id {watch.id!r} (first on line {seen[watch.id]})")
        seen[watch.id] = node.line
        watches.append(watch)
    if not watches:
        raise r.fail(top["watches"].line, "watches", "needs at least one watch")
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return Codebook(watches=tuple(watches), version=version, path=path)


def _read_id(r: _Reader, parent: dict[str, _Node], field: str, line: int) -> str:
    value = r.text(parent, "id", field, line)
    assert value is not None
    if not _ID.match(value):
        raise r.fail(parent["id"].line, f"{field}.id", f"{value!r} must be lowercase letters, digits, '_' or '-'")
    return value


def _read_watch(r: _Reader, node: _Node, field: str) -> Watch:
    m = r.mapping(node, field)
    r.unknown(m, {"id", "title", "match", "frames", "decision", "share_of_voice"}, field)
    wid = _read_id(r, m, field, node.line)
    title = r.text(m, "title", field, node.line)
    match = _read_match(r, m["match"], f"{field}.match") if m.get("match") is not None else None
    # No frames at all is a watch that only discovers emergent framings; one frame is a watch
    # that tracks one framing against "everything else" (emergent or unframed).
    frames: list[Frame] = []
    seen: set[str] = set()
    frame_nodes = r.sequence(m["frames"], f"{field}.frames") if m.get("frames") is not None else []
    for j, fnode in enumerate(frame_nodes):
        frame = _read_frame(r, fnode, f"{field}.frames[{j}]")
        if frame.id in seen:
            raise r.fail(fnode.line, f"{field}.frames[{j}].id", f"duplicate frame id {frame.id!r}")
        seen.add(frame.id)
        frames.append(frame)
    assert title is not None
    thresholds = _read_decision(r, m["decision"], f"{field}.decision") if m.get("decision") is not None else ()
    level = r.text(m, "share_of_voice", field, node.line, required=False)
    if level is not None and level not in SHARE_LEVELS:
        raise r.fail(m["share_of_voice"].line, f"{field}.share_of_voice", f"expected one of {', '.join(SHARE_LEVELS)}")
    return Watch(id=wid, title=title, match=match, frames=tuple(frames), thresholds=thresholds, share_of_voice=level)


def share_level(watch: Watch, kind: str, has_document_head: bool) -> str:
    """The level whose frames count for *watch*'s share of voice on an item of *kind*: the
    codebook's choice, else ``document`` for articles when a document head exists."""
    if not has_document_head:
        return "segment"
    if watch.share_of_voice is not None:
        return watch.share_of_voice
    return "document" if kind == "article" else "segment"


def _read_decision(r: _Reader, node: _Node, field: str) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """``decision: {few-shot: {min_score: 0.3, min_relevance: 0.26}, ...}``: numbers in [-1, 1]."""
    methods = r.mapping(node, field)
    r.unknown(methods, set(DECISION_METHODS), field)
    out = []
    for method, mnode in methods.items():
        values = r.mapping(mnode, f"{field}.{method}")
        r.unknown(values, set(DECISION_FIELDS), f"{field}.{method}")
        pairs = []
        for key, v in values.items():
            if isinstance(v.value, bool) or not isinstance(v.value, int | float) or not -1.0 <= v.value <= 1.0:
                raise r.fail(v.line, f"{field}.{method}.{key}", "expected a number between -1 and 1")
            pairs.append((key, float(v.value)))
        out.append((method, tuple(pairs)))
    return tuple(out)


def _read_match(r: _Reader, node: _Node, field: str) -> Match:
    m = r.mapping(node, field)
    r.unknown(m, {"any", "all", "exclude", "description", "threshold"}, field)
    description = r.text(m, "description", field, node.line, required=False)
    threshold = 0.35
    if "threshold" in m:
        t = m["threshold"]
        if isinstance(t.value, bool) or not isinstance(t.value, int | float) or not -1.0 <= t.value <= 1.0:
            raise r.fail(t.line, f"{field}.threshold", "expected a number between -1 and 1")
        if description is None:
            raise r.fail(t.line, f"{field}.threshold", "needs a match description")
        threshold = float(t.value)
    match = Match(
        any=r.words(m, "any", field),
        all=r.words(m, "all", field),
        exclude=r.words(m, "exclude", field),
        description=description,
        threshold=threshold,
    )
    if not (match.any or match.all or match.description):
        raise r.fail(node.line, field, "needs 'any', 'all' or 'description' (omit 'match' to take every item)")
    return match


def _read_frame(r: _Reader, node: _Node, field: str) -> Frame:
    m = r.mapping(node, field)
    r.unknown(m, {"id", "label", "description", "examples"}, field)
    fid = _read_id(r, m, field, node.line)
    label = r.text(m, "label", field, node.line)
    description = r.text(m, "description", field, node.line)
    assert label is not None and description is not None
    return Frame(id=fid, label=label, description=description, examples=r.words(m, "examples", field))


# --- keyword matching -----------------------------------------------------------------------


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " " + re.sub(r"[^\w]+", " ", folded).strip() + " "


def _contains(haystack: str, keyword: str) -> bool:
    """Whole-word (or whole-phrase) match; a trailing '*' matches any word ending."""
    kw = _normalise(keyword.rstrip("*")).strip()
    if not kw:
        return False
    if keyword.endswith("*"):
        return f" {kw}" in haystack
    return f" {kw} " in haystack


def watch_matches(watch: Watch, text: str) -> bool:
    """Whether *text* belongs to *watch* by keywords (a description-only match says True here;
    the semantic check happens in assignment, with embeddings)."""
    match = watch.match
    if match is None:
        return True
    hay = _normalise(text)
    if any(_contains(hay, kw) for kw in match.exclude):
        return False
    if match.all and not all(_contains(hay, kw) for kw in match.all):
        return False
    if match.any:
        return any(_contains(hay, kw) for kw in match.any)
    return True
