"""Which forum post an entry is, and the stable item ids derived from each platform's ids.

Item ids (all via ``stable_id``):

* a post whose guid or link names it (``forum_post_ref``) is keyed by the *site* (host of the
  feed URL, lower case, without ``www.``), not by the source, so the same post read through two
  feeds or pages of one site gets one id: ``stable_id(host, "discourse-post", topic, number)``,
  ``stable_id(host, "phpbb-post", post_id)``, ``stable_id(host, "smf-post", msg_id)``,
  ``stable_id(host, "xenforo-post", post_id)``;
* a XenForo thread-level entry (the forum RSS item, link ``/threads/<slug>.<id>/``) and the
  first post of page 1 of the thread are ``stable_id(host, "xenforo-thread-first", thread_id)``,
  so the truncated RSS copy is superseded by the full one from the thread page (a feed that
  lists the first post by its post URL cannot tell it is the first: there it gets its post id).
  A Discourse topic-level entry (``latest.rss``) is the topic's post 1;
* anything else: ``stable_id(source_id, guid)``, else ``stable_id(source_id, "url",
  canonical_url)``, else ``stable_id(source_id, "title", title, published ISO)``.

``parent_id`` of a forum post: the post it replies to when the platform says so (Discourse
``reply_to_post_number``), else the thread's opening post (XenForo, Discourse), else, where the
feed cannot tell which post opened the topic (phpBB and SMF post feeds), the topic's key
``stable_id(host, "<platform>-topic", topic)``. A post known to open its thread has a
``thread_id`` and no ``parent_id``; segmentation gives the thread's title to that post only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from framewatch.contracts import stable_id

FORUM_PLATFORMS = ("discourse", "phpbb", "smf", "xenforo")
DISCOURSE_GUID = re.compile(r"-post-(\d+)-(\d+)$")
_DISCOURSE_TOPIC_GUID = re.compile(r"-topic-(\d+)$")
_PHPBB_POST = re.compile(r"[?&;](?:amp;)?p=(\d+)|#p(\d+)$|/post(\d+)\.html")
_PHPBB_TOPIC = re.compile(r"[?&;](?:amp;)?t=(\d+)|/topic(\d+)\.html|-t(\d+)\.html")
_PHPBB_TOPIC_FEED = re.compile(r"/feed/topic/(\d+)|feed\.php\?(?:[^#]*[&;])?t=(\d+)")
# phpBB feeds of one entry per topic, each its first post ("topics_active" carries the last one)
_PHPBB_OPENER_PATH = re.compile(r"/feed/(?:news|topics)/?$")
_PHPBB_OPENER_MODE = re.compile(r"(?:^|[&;])mode=(?:news|topics)(?:[&;]|$)")
_SMF_MSG = re.compile(r"topic[=,]\d+\.msg(\d+)|[?&;]msg=(\d+)|#msg(\d+)$")
_SMF_TOPIC = re.compile(r"topic[=,](\d+)(\.\d+)?")
XENFORO_THREAD = re.compile(r"/threads/(?:[^/?#]*\.)?(\d+)(?:/|$)")
_XENFORO_POST = re.compile(r"(?:[/#](?:js-)?post-(\d+)|[/?]posts/(\d+)|goto/post[?&]id=(\d+))(?=[/?#&;]|$)")
_XENFORO_THREAD_URL = re.compile(r"([/?]threads/(?:[^/?#]*\.)?\d+)(?:[/?#&].*)?$")
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid)$", re.I)
# A fragment that names a post or comment: kept in canonical URLs, or a thread's posts collapse.
_POST_ANCHOR = re.compile(r"^(?:js-)?(?:post|p|msg|comment|reply)-?\d+$", re.I)


@dataclass(frozen=True, slots=True)
class PostRef:
    """What an entry's guid and link say about the forum post it is."""

    item_id: str | None  # None: the entry names its thread but no post; it keeps a generic id
    thread_id: str | None
    parent_id: str | None  # None: the post opens its thread (when thread_id is set)
    number: int | None  # the platform's post number or id: orders posts of equal time


def host_of(url: str) -> str:
    """The site of a URL: host lower-cased, without ``www.`` and port."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def canonical_url(url: str) -> str:
    """Scheme and host lower-cased, tracking parameters (utm_*) and fragment dropped.

    A fragment naming a post (``#post-5``, ``#p5``, ``#msg5``) is kept: it is the only part that
    tells the posts of one thread page apart.
    """
    parts = urlsplit(url.strip())
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING_PARAMS.match(k)]
    fragment = parts.fragment if _POST_ANCHOR.match(parts.fragment) else ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", urlencode(query), fragment))


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


def topic_key(host: str, platform: str, topic_id: str) -> str:
    """A phpBB/SMF topic's key: the parent of its posts when the feed does not name the opener."""
    return stable_id(host, f"{platform}-topic", str(topic_id))


def xenforo_first_post_id(host: str, thread_id: str) -> str:
    """Item id of a XenForo thread's first post (RSS copy and thread page alike)."""
    return stable_id(host, "xenforo-thread-first", str(thread_id))


def forum_post_ref(platform: str, host: str, guid: str | None, link: str | None, feed_url: str = "") -> PostRef | None:
    """The forum post an entry's guid or link names, or None when it names neither post nor thread.

    *link* is absolute or relative; trailing slashes, queries and fragments are tolerated.
    """
    if platform == "discourse":
        return _discourse_ref(host, guid, link)
    if platform == "phpbb":
        topic, pid = phpbb_ids(link, guid)
        topic = topic or _first_group(_PHPBB_TOPIC_FEED.search(feed_url))
        if not pid and not topic:
            return None
        parent = None if _phpbb_opener_feed(feed_url) or not topic else topic_key(host, "phpbb", topic)
        return PostRef(post_id(host, "phpbb", pid) if pid else None, topic, parent, int(pid) if pid else None)
    if platform == "smf":
        return _smf_ref(host, guid, link)
    if platform == "xenforo":
        return _xenforo_ref(host, guid, link)
    return None


def discourse_ids(guid: str | None, link: str | None) -> tuple[str | None, str | None]:
    """(topic id, post number) from a guid ``host-post-T-N`` or a ``/t/slug/T/N`` link.

    A topic-level entry (guid ``host-topic-T``, link ``/t/slug/T``) gives post number None.
    """
    if match := DISCOURSE_GUID.search((guid or "").strip()):
        return match.group(1), match.group(2)
    for value in (link, guid):
        parts = [p for p in urlsplit((value or "").strip()).path.split("/") if p]
        if "t" not in parts:
            continue
        rest = parts[len(parts) - parts[::-1].index("t") :][:3]
        if len(rest) == 3 and rest[1].isdigit() and rest[2].isdigit():
            return rest[1], rest[2]  # /t/slug/T/N
        if len(rest) == 2 and rest[0].isdigit() and rest[1].isdigit():
            return rest[0], rest[1]  # /t/T/N (Discourse never makes an all-digit slug)
        if len(rest) in (1, 2) and rest[-1].isdigit():
            return rest[-1], None  # /t/slug/T or /t/T: the topic
    if match := _DISCOURSE_TOPIC_GUID.search((guid or "").strip()):
        return match.group(1), None
    return None, None


def phpbb_ids(*links: str | None) -> tuple[str | None, str | None]:
    """(topic id, post id) from phpBB ``viewtopic.php?t=…&p=…#p…`` links."""
    topic = post = None
    for link in links:
        if not link:
            continue
        if topic is None:
            topic = _first_group(_PHPBB_TOPIC.search(link))
        if post is None:
            post = _first_group(_PHPBB_POST.search(link.strip()))
    return topic, post


def smf_ids(*links: str | None) -> tuple[str | None, str | None]:
    """(topic id, msg id) from SMF ``index.php?topic=T.msgM#msgM`` (or ``topic,T.msgM.html``) links."""
    topic = msg = None
    for link in links:
        if not link:
            continue
        if topic is None:
            topic = _first_group(_SMF_TOPIC.search(link))
        if msg is None:
            msg = _first_group(_SMF_MSG.search(link.strip()))
    return topic, msg


def xenforo_thread_id(guid: str | None, link: str | None) -> str | None:
    """A XenForo thread id from ``/threads/slug.123/`` in the link or guid, else a numeric guid.

    A numeric guid is the thread id of a forum RSS item; it is not trusted when the entry names
    a post (a feed of one thread's posts may use post ids as guids).
    """
    for value in (link, guid):
        if value and (match := _xenforo_thread_match(value)):
            return match.group(1)
    if guid and guid.strip().isdigit() and xenforo_post_number(guid, link) is None:
        return guid.strip()
    return None


def xenforo_post_number(*values: str | None) -> str | None:
    """The XenForo post id a URL names: ``/post-N``, ``#post-N``, ``/posts/N/``, ``goto/post?id=N``."""
    for value in values:
        if value and (match := _XENFORO_POST.search(value.strip())):
            return _first_group(match)
    return None


def xenforo_thread_url(link: str) -> str:
    """The URL of page 1 of the thread a XenForo post or page URL is in (unchanged if none)."""
    return _XENFORO_THREAD_URL.sub(r"\1/", link.strip(), count=1)


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


def _discourse_ref(host: str, guid: str | None, link: str | None) -> PostRef | None:
    topic, number = discourse_ids(guid, link)
    if not topic:
        return None
    number = number or "1"  # a topic-level entry carries the topic's first post
    parent = None if number == "1" else discourse_post_id(host, topic, "1")
    return PostRef(discourse_post_id(host, topic, number), topic, parent, int(number))


def _smf_ref(host: str, guid: str | None, link: str | None) -> PostRef | None:
    topic, msg = smf_ids(link, guid)
    if msg:
        parent = topic_key(host, "smf", topic) if topic else None
        return PostRef(post_id(host, "smf", msg), topic, parent, int(msg))
    if not topic:
        return None
    # ``topic=T`` or ``topic=T.0`` (news feed) is the topic's opener; ``topic=T.15`` a later page
    opener = any(_smf_topic_level(v) for v in (link, guid))
    return PostRef(None, topic, None if opener else topic_key(host, "smf", topic), None)


def _smf_topic_level(value: str | None) -> bool:
    match = _SMF_TOPIC.search(value or "")
    return match is not None and match.group(2) in (None, ".0") and not _SMF_MSG.search(value or "")


def _xenforo_ref(host: str, guid: str | None, link: str | None) -> PostRef | None:
    thread = xenforo_thread_id(guid, link)
    number = xenforo_post_number(link, guid)
    if number:
        parent = xenforo_first_post_id(host, thread) if thread else None
        return PostRef(post_id(host, "xenforo", number), thread, parent, int(number))
    if thread:
        return PostRef(xenforo_first_post_id(host, thread), thread, None, None)
    return None


def _phpbb_opener_feed(feed_url: str) -> bool:
    parts = urlsplit(feed_url)
    if parts.path.endswith("feed.php"):
        return bool(_PHPBB_OPENER_MODE.search(parts.query))
    return bool(_PHPBB_OPENER_PATH.search(parts.path))


def _xenforo_thread_match(value: str) -> re.Match[str] | None:
    parts = urlsplit(value.strip())
    # friendly URLs put the route in the path, others in the query (index.php?threads/…)
    return XENFORO_THREAD.search(parts.path) or XENFORO_THREAD.search("/" + parts.query.split("&")[0])


def _first_group(match: re.Match[str] | None) -> str | None:
    return next((g for g in match.groups() if g), None) if match else None


__all__ = [
    "DISCOURSE_GUID",
    "FORUM_PLATFORMS",
    "XENFORO_THREAD",
    "PostRef",
    "canonical_url",
    "discourse_ids",
    "discourse_post_id",
    "forum_post_ref",
    "generic_item_id",
    "host_of",
    "phpbb_ids",
    "post_id",
    "resolve_quote_ref",
    "smf_ids",
    "topic_key",
    "xenforo_first_post_id",
    "xenforo_post_number",
    "xenforo_thread_id",
    "xenforo_thread_url",
]
