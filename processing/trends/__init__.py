"""trends (``framewatch aggregate``): framed items in, share of voice and alerts out.

In: ``framed-items``. Out: ``aggregates`` (partial counts per partition), ``aggregate-state``
(compacted contributions), ``alerts``, Parquet files. ``counts`` holds the watch x frame x
bucket counts, ``codec`` their fast JSON, ``stage`` the pure stage, ``spikes`` the detector,
``recovery`` the restore-on-rebalance protocol, ``collector`` share of voice at scrape time,
``parquet`` the file sink; ``cli`` runs it as a component.
"""
