"""processing: everything after ingest, as four programs that never import each other's internals.

The import path ``framewatch.processing`` is this folder (``processing/``, mapped in
pyproject.toml so the top level keeps the card's layout); ``framewatch.processing.framing`` is
``processing/framing/``, and so on.

* ``framing/`` (``framewatch process``): raw items -> framed items. Segment, de-duplicate, embed,
  assign the codebook's frames, cluster what no frame claims into emergent framings.
* ``trends/`` (``framewatch aggregate``): framed items -> share-of-voice aggregates, the
  Prometheus collector over them, and spike alerts.
* ``alerts/`` (``framewatch notify``): alerts -> subscribers (webhook, Slack, e-mail), once each.
* ``analyst/`` (``framewatch eval``, ``analyze``, ``codebook``): offline tools over files. It may
  use ``framing`` (and ingest's parsing); nothing uses it.

Programs talk only through Kafka topics and the records of ``framewatch.contracts``.
"""
