"""Which forum software wrote a feed, and the stable item ids derived from each platform's ids.

Item ids (all via ``stable_id``):

* a post whose platform gives a post id is keyed by the *site* (host of the feed URL, lower
  case, without ``www.``), not by the source, so the same post read through two feeds of one
  site (Discourse topic RSS and ``/posts.json``, phpBB topic and overall feeds) gets one id:
  ``stable_id(host, "discourse-post", topic_id, post_number)``,
  ``stable_id(host, "phpbb-post", post_id)``, ``stable_id(host, "smf-post", msg_id)``,
  ``stable_id(host, "xenforo-post", post_id)``;
* a XenForo thread's first post (the forum RSS item, and the first post of page 1 of the
  thread) is ``stable_id(host, "xenforo-thread-first", thread_id)``, so the truncated RSS copy
  is superseded by the full one from the thread page;
* anything else: ``stable_id(source_id, guid)``, else ``stable_id(source_id, "url",
  canonical_url)``, else ``stable_id(source_id, "title", title, published ISO)``.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from framewatch.contracts import stable_id

DISCOURSE_GUID = re.compile(r"-post-(\d+)-(\d+)$")
_DISCOURSE_LINK = re.compile(r"/t/(?:[^/?#]+/)?(\d+)(?:/(\d+))?/?(?:[?#].*)?$")
_PHPBB_POST = re.compile(r"[?&;](?:amp;)?p=(\d+)|#p(\d+)$")
_PHPBB_TOPIC = re.compile(r"[?&;](?:amp;)?t=(\d+)")
_SMF_MSG = re.compile(r"topic=(\d+)\.msg(\d+)|[?&;]msg=(\d+)|#msg(\d+)$")
_SMF_TOPIC = re.compile(r"topic=(\d+)")
XENFORO_THREAD = re.compile(r"/threads/(?:[^/?#]*\.)?(\d+)(?:/|$)")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid)$", re.I)


def host_of(url: str) -> str:
    """The site of a URL: host lower-cased, without ``www.`` and port."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, fragment and tracking parameters (utm_*) dropped."""
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)]
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), ""))


def generic_item_id(
    source_id: str, guid: str | None, url: str | None, title: str | None, published: datetime | None
) -> str:
    """Id of an entry without a platform post id: guid, else canonical URL, else title+time."""
    if guid and guid.strip():
        return stable_id(source_id, guid.strip())
    if url:
        return stable_id(source_id, "url", canonical_url(url))
    return stable_id(source_id, "title", title or "", published.isoformat() if published else "")


def discourse_post_id(host: str, topic_id: str, post_number: str) -> str:
    """Item id of a Discourse post, the same whichever feed it came from."""
    return stable_id(host, "discourse-post", str(topic_id), str(post_number))


def post_id(host: str, platform: str, platform_post_id: str) -> str:
    """Item id of a phpBB/SMF/XenForo post from the platform's own post id."""
    return stable_id(host, f"{platform}-post", str(platform_post_id))


def xenforo_first_post_id(host: str, thread_id: str) -> str:
    """Item id of a XenForo thread's first post (RSS copy and thread page alike)."""
    return stable_id(host, "xenforo-thread-first", str(thread_id))


def discourse_ids(guid: str | None, link: str | None) -> tuple[str | None, str | None]:
    """(topic id, post number) from a Discourse guid ``host-post-T-N`` or a ``/t/slug/T/N`` link."""
    match = DISCOURSE_GUID.search(guid or "")
    if match:
        return match.group(1), match.group(2)
    match = _DISCOURSE_LINK.search(urlsplit(link or "").path)
    if match:
        return match.group(1), match.group(2)
    return None, None


def phpbb_ids(*links: str | None) -> tuple[str | None, str | None]:
    """(topic id, post id) from phpBB ``viewtopic.php?t=…&p=…#p…`` links."""
    topic = post = None
    for link in links:
        if not link:
            continue
        if topic is None and (m := _PHPBB_TOPIC.search(link)):
            topic = m.group(1)
        if post is None and (m := _PHPBB_POST.search(link)):
            post = m.group(1) or m.group(2)
    return topic, post


def smf_ids(*links: str | None) -> tuple[str | None, str | None]:
    """(topic id, msg id) from SMF ``index.php?topic=T.msgM#msgM`` links."""
    topic = msg = None
    for link in links:
        if not link:
            continue
        if topic is None and (m := _SMF_TOPIC.search(link)):
            topic = m.group(1)
        if msg is None and (m := _SMF_MSG.search(link)):
            msg = next(g for g in m.groups()[1:] if g)
    return topic, msg


def xenforo_thread_id(guid: str | None, link: str | None) -> str | None:
    """A XenForo thread id: the RSS guid when numeric, else from ``/threads/slug.123/``."""
    if guid and guid.strip().isdigit():
        return guid.strip()
    match = XENFORO_THREAD.search(urlsplit(link or "").path)
    return match.group(1) if match else None


def resolve_quote_ref(ref: str | None, host: str, thread_id: str | None) -> str | None:
    """Turn a quote's platform reference (see ``quotes``) into the quoted post's item id."""
    if not ref:
        return None
    platform, _, rest = ref.partition(":")
    if platform == "discourse":
        topic, _, number = rest.partition(":")
        topic = topic or thread_id or ""
        return discourse_post_id(host, topic, number) if topic and number else None
    if platform in ("xenforo", "phpbb", "smf") and rest.isdigit():
        return post_id(host, platform, rest)
    return ref  # a link preview's URL, or an item id already (copied quotes)


__all__ = [
    "DISCOURSE_GUID",
    "XENFORO_THREAD",
    "canonical_url",
    "discourse_ids",
    "discourse_post_id",
    "generic_item_id",
    "host_of",
    "phpbb_ids",
    "post_id",
    "resolve_quote_ref",
    "smf_ids",
    "xenforo_first_post_id",
    "xenforo_thread_id",
]
