"""One exception root for framewatch; every error the project raises derives from it."""

from __future__ import annotations


class FramewatchError(Exception):
    """Root of every framewatch error."""


class ConfigError(FramewatchError):
    """A settings, sources, codebook or subscriptions file is invalid; the message names the field."""


class DecodeError(FramewatchError):
    """Bytes from a topic are not a valid record; keeps the reason and the original bytes."""

    def __init__(self, reason: str, detail: str, raw: bytes) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.raw = raw
