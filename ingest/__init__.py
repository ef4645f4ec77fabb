"""ingest (``framewatch ingest``): feeds in, raw items out.

The import path ``framewatch.ingest`` is this folder (mapped in pyproject.toml). The worker's
runtime lives here: ``sources`` (the sources file), ``schedule`` (when to poll), ``fetcher``
(polite, capped HTTP), ``state`` (SQLite cursors), ``threads`` (following forum threads),
``worker`` (the poll-parse-produce cycle), ``outcomes`` (reason names), ``cli``. Turning bytes
into ``RawItem`` records is ``parse/``: pure functions, one module per format or platform.
Out: ``raw-items`` (``RawItem``, keyed by item id).
"""
