"""framewatch core: what every program shares, and the ``framewatch`` command.

``contracts`` (one frozen record per topic, and the shared vocabulary), ``settings`` (every
setting), ``kafka_io`` (the one consumer loop and every Kafka client), ``service`` (a component's
life cycle), ``health`` (``/metrics``, ``/healthz``, ``/readyz``), ``metrics``, ``errors``,
``timeutil``; ``cli`` and ``stack`` (``framewatch up``). The programs are ``ingest/``,
``processing/`` (framing, trends, alerts, analyst) and ``dashboards/``.
"""
