"""framewatch core: what every program shares, and the ``framewatch`` command.

``contracts`` (one frozen record per topic, and the shared vocabulary) with ``codec`` (their
JSON encoding), ``settings`` (every setting), ``kafka_io`` (the one consumer loop and every Kafka
client) with ``kafka_connect`` (connection and security options), ``service`` (a component's life
cycle, ``/metrics``, ``/healthz``, ``/readyz``), ``metrics``, ``errors``, ``dead_letters``,
``timeutil``; ``cli`` and ``stack`` (``framewatch up``). The programs are ``ingest/``,
``processing/`` (framing, trends, alerts, analyst) and ``dashboards/``.
"""
