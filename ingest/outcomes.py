"""The fixed set of poll outcomes; each name doubles as the ``outcome`` / ``reason`` metric label.

A poll of one feed ends in exactly one of these. ``ok`` and ``not_modified`` are successes; every
other name is a failure reason that counts towards the feed's consecutive failures. The parse
reasons are the parser's ``FeedParseError.reason`` values (``ingest.parser.PARSE_REASONS``).
"""

from __future__ import annotations

OK = "ok"
NOT_MODIFIED = "not_modified"
HTTP_ERROR = "http_error"
RATE_LIMITED = "rate_limited"
TIMEOUT = "timeout"
TOO_LARGE = "too_large"
REDIRECT_LOOP = "redirect_loop"
CONNECTION_ERROR = "connection_error"
# the fetch policy (README, "Fetch policy"): refused before any byte is sent to the address
REFUSED_ADDRESS = "refused_address"  # loopback, private, link-local, metadata... after DNS, on any hop
REFUSED_URL = "refused_url"  # not http(s), a followed link off the feed's host, an https->http redirect
BAD_CONTENT_ENCODING = "bad_content_encoding"  # stacked or unknown Content-Encoding
PARSE_ERROR = "parse_error"  # the parser failed in a way it does not name itself

PARSE_REASONS: tuple[str, ...] = ("empty", "not_a_feed", "malformed", "bad_encoding")

FETCH_OUTCOMES: tuple[str, ...] = (
    OK, NOT_MODIFIED, HTTP_ERROR, RATE_LIMITED, TIMEOUT, TOO_LARGE, REDIRECT_LOOP, CONNECTION_ERROR,
    REFUSED_ADDRESS, REFUSED_URL, BAD_CONTENT_ENCODING,
)
OUTCOMES: tuple[str, ...] = (*FETCH_OUTCOMES, PARSE_ERROR, *PARSE_REASONS)

# Why an entry of a feed that parsed was not produced (``items_skipped_total{reason}``); the
# parser adds its own bounded reasons (e.g. ``no_content``) from ``ParsedFeed.skipped``.
SKIP_ALREADY_PRODUCED = "already_produced"
SKIP_DUPLICATE_IN_FEED = "duplicate_in_feed"
SKIP_PRODUCE_FAILED = "produce_failed"
SKIP_UNENCODABLE = "unencodable"  # no encoding of the item fits the limit, even cut
SKIP_REJECTED = "rejected"  # the producer refused the record itself (the rest of the feed goes on)
SKIP_REASONS: tuple[str, ...] = (
    SKIP_ALREADY_PRODUCED, SKIP_DUPLICATE_IN_FEED, SKIP_PRODUCE_FAILED, SKIP_UNENCODABLE, SKIP_REJECTED,
)

# Items produced, but changed on the way (``items_flagged_total{reason}``, and the item's flags)
FLAG_TRUNCATED = "truncated"  # over the per-entry cap, or over the broker's message limit
FLAG_REPAIRED_TEXT = "repaired_text"  # text that could not be encoded (lone surrogates...) repaired
FLAG_REASONS: tuple[str, ...] = (FLAG_TRUNCATED, FLAG_REPAIRED_TEXT)


def is_success(outcome: str) -> bool:
    """True when the poll reached the feed and got a usable answer (new content or 304)."""
    return outcome in (OK, NOT_MODIFIED)


def parse_outcome(reason: str) -> str:
    """Map a parser's reason to an outcome name, keeping the label set fixed."""
    return reason if reason in PARSE_REASONS else PARSE_ERROR
