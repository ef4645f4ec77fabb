"""parse: fetched bytes -> ``RawItem`` records, pure (no network, no Kafka).

``detect`` is the entry point (``parse_feed``, ``parse_thread_page``) and the one place that
decides a body's format and forum platform. One module per format or platform: ``rss``
(RSS 2.0/1.0 and Atom through feedparser), ``jsonfeed``, ``discourse``, ``xenforo`` (thread
pages). Shared steps: ``posts`` (posts -> records), ``html_text`` (HTML -> text), ``quotes``
(quoted passages apart), ``thread_memory`` (copied quotes without markup), ``platform`` (stable
ids from each platform's ids), ``results`` (what parsing returns, and its error).
"""
