"""The chaos soak: the whole stack under kill -9s, broker restarts, a full disk and poison records, judged against a planted truth (run ``python -m bench.chaos``)."""
