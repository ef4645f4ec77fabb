"""The workbench's pages against the real app under uvicorn: login and roles, what each page shows,
forms that change state (CSRF, roles, relayed to the API), the export through the login cookie."""

from __future__ import annotations

import re
from html import unescape

import pytest

from framewatch.processing.serve import items as item_queries
from framewatch.processing.serve.auth import COOKIE
from framewatch.settings import CODEBOOK_CHANGES, LABELS
from tests.serve.conftest import kafka_or_skip
from tests.serve.lake import WATCHES
from tests.workbench import lake as workbench_lake
from tests.workbench.conftest import Workbench, csrf_of

PAGES = ["/ui/", "/ui/watches/china-scs", "/ui/items", "/ui/items/china-scs:item201", "/ui/items?watch=odd%3Awatch",
         "/ui/models"]


def listed_titles(html: str) -> list[str]:
    return [unescape(re.sub("<[^>]+>", "", t)) for t in re.findall(r'class="item-link"[^>]*>(.*?)</a>', html)]


def test_pages_need_a_login_and_the_cookie_is_httponly_and_strict(workbench: Workbench) -> None:
    with workbench.client(None) as anon:
        assert anon.get("/").headers["location"] == "/ui/"
        resp = anon.get("/ui/items?watch=climate")
        assert resp.status_code == 303 and resp.headers["location"] == "/ui/login?next=%2Fui%2Fitems%3Fwatch%3Dclimate"
        bad = anon.post("/ui/login", data={"token": "fw_nope", "next": "/ui/"})
        assert bad.status_code == 401 and "not known" in bad.text and COOKIE not in bad.headers.get("set-cookie", "")
        good = anon.post("/ui/login", data={"token": workbench.tokens["viewer"], "next": "https://evil.example/"})
        assert good.status_code == 303 and good.headers["location"] == "/ui/"  # never off-site
        cookie = good.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_every_page_names_the_role_and_shows_only_the_buttons_it_may_use(workbench: Workbench, role: str) -> None:
    with workbench.client(role) as c:
        for path in PAGES:
            resp = c.get(path)
            assert resp.status_code == 200, (path, resp.text[:300])
            assert f'data-role="{role}">{role}<' in resp.text, path
            csp = resp.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "script-src 'self'" in csp
            # everything the page loads comes from the app: no CDN, no inline script
            assert not re.search(r'<(script|link)[^>]+(src|href)="(https?:)?//', resp.text), path
            assert "<script>" not in resp.text
        item = c.get("/ui/items/china-scs:item201").text
        watch = c.get("/ui/watches/china-scs").text
    writes = role != "viewer"
    assert ("Save label" in item) is writes
    assert ("Promote</button>" in watch) is writes


def test_the_static_files_are_served_by_the_app(workbench: Workbench) -> None:
    with workbench.client(None) as c:
        css, js = c.get("/ui/static/workbench.css"), c.get("/ui/static/workbench.js")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and ":focus-visible" in css.text
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert c.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
        assert c.get("/ui/static/../auth.py").status_code == 404
        assert c.get("/ui/static/nothing.css").status_code == 404


def test_overview_has_a_chart_per_watch_and_the_counts_toggle(workbench: Workbench) -> None:
    with workbench.client("viewer") as c:
        share = c.get("/ui/").text
        counts = c.get("/ui/?measure=count&bucket=1h&range=7d").text
        bogus = c.get("/ui/?measure=nope&bucket=9y&range=forever")
    assert share.count('<figure class="chart"') == len(WATCHES)
    assert "share of items" in share and re.search(r">\d+%<", share)
    assert ">items<" in counts and 'value="count" class="autosubmit" checked' in counts
    assert bogus.status_code == 200 and 'value="share" class="autosubmit" checked' in bogus.text
    assert workbench_lake.alert_key(workbench.lake).replace(":", "%3A") in share  # the alert links to its page


def test_watch_page_shows_shares_against_baseline_alerts_and_clusters(workbench: Workbench) -> None:
    with workbench.client("viewer") as c:
        html = c.get("/ui/watches/china-scs").text
        assert c.get("/ui/watches/nowhere").status_code == 404
    assert "Share now against the baseline" in html and html.count("pts</td>") == 3
    assert "emergent:9" in html and "harbour" in html.lower()  # the cluster of the items behind the alert
    assert "Keywords:" in html and "Growth:" in html and "in the last day" in html


def test_alert_page_lists_the_items_behind_it_with_copies_folded(workbench: Workbench) -> None:
    key = workbench_lake.alert_key(workbench.lake)
    with workbench.client("viewer") as c:
        html = c.get(f"/ui/alerts/{key}").text
        assert c.get("/ui/alerts/china-scs:surveillance:1999-01-01T00:00:00Z").status_code == 404
    titles = listed_titles(html)
    assert sorted(titles) == sorted(f"Harbour surveillance {n}" for n in workbench_lake.BEHIND)
    assert "+1 copy" in html and "40% against a baseline of 10%" in html and "<svg" in html
    quoted = re.findall(r'<blockquote class="quote">(.*?)<footer>', html)
    assert sorted(quoted) == sorted(f"They said the cameras were for safety (item{n:03d})" for n in workbench_lake.BEHIND)


def test_item_list_filters_searches_sorts_pages_and_escapes(workbench: Workbench) -> None:
    with workbench.client("viewer") as c:
        first = c.get("/ui/items?watch=china-scs&sort=title").text
        nxt = c.get("/ui/items?watch=china-scs&sort=title&offset=25").text
        found = c.get("/ui/items?q=ZANZIBAR").text
        nasty = c.get("/ui/items", params={"q": "<script>alert(1)</script>"}).text
        bad_date = c.get("/ui/items?start=yesterday").text
    titles = listed_titles(first) + listed_titles(nxt)
    assert titles == sorted(titles) and len(listed_titles(first)) == 25
    total = int(re.search(r'<h1>Items <span class="muted">\((\d+)\)', first).group(1))  # type: ignore[union-attr]
    assert len(titles) == total and 'rel="next"' in first and 'rel="prev"' in nxt
    assert "<mark>Zanzibar</mark>" in found and listed_titles(found) == ["Title 12"]
    assert "<script>alert(1)" not in nasty and "&lt;script&gt;" in nasty
    assert "not a date" in bad_date
    assert "/api/v1/items/export?watch=china-scs&amp;sort=title&amp;format=csv" in first


def test_item_page_explains_each_segment_and_keeps_quotes_apart(workbench: Workbench) -> None:
    with workbench.client("viewer") as c:
        html = c.get("/ui/items/china-scs:item201").text
        missing = c.get("/ui/items/china-scs:nothing")
    assert html.count('class="segment"') == 2
    assert "Framed as surveillance with a score of 0.70" in html and "example of surveillance" in html
    assert "codebook <code>cb0123456789</code>, model <code>fake-model</code>" in html
    quote = html.index("They said the cameras were for safety (item201)")
    assert quote > html.index("Quoted passages") > html.index('id="segment-1"')
    assert missing.status_code == 404 and "no such item" in missing.text and missing.headers["content-type"].startswith("text/html")


def test_export_accepts_the_login_cookie_but_a_cookie_never_writes(workbench: Workbench) -> None:
    with workbench.client("viewer") as c:
        csv = c.get("/api/v1/items/export?watch=china-scs&frame=surveillance&format=csv")
        write = c.put("/api/v1/items/china-scs:item201/segments/0/label", json={"frame": "trade"})
    assert csv.status_code == 200 and csv.text.splitlines()[0].startswith("key,item_id")
    shown = item_queries.listing(workbench.ctx.lake, item_queries.ItemQuery(watch="china-scs", frame="surveillance"))
    assert len(csv.text.splitlines()) - 1 == shown.height
    assert write.status_code == 401


def test_correcting_a_frame_needs_the_analyst_role_and_the_forms_csrf(workbench: Workbench) -> None:
    kafka_or_skip()
    path = "/ui/items/china-scs:item204/segments/1/label"
    with workbench.client("viewer") as v:
        assert v.post(path, data={"csrf": csrf_of(v.get("/ui/").text), "frame": "trade"}).status_code == 403
    with workbench.client("analyst") as c:
        token = csrf_of(c.get("/ui/items/china-scs:item204").text)
        assert c.post(path, data={"frame": "trade"}).status_code == 403
        assert c.post(path, data={"csrf": "0" * 64, "frame": "trade"}).status_code == 403
        done = c.post(path, data={"csrf": token, "frame": "military"})
        assert done.status_code == 303 and done.headers["location"].startswith("/ui/items/china-scs:item204?saved=1")
        assert "Your label: military" in c.get(done.headers["location"]).text
        gone = c.post("/ui/items/china-scs:item204/segments/9/label", data={"csrf": token, "frame": "trade"})
        assert "error=" in gone.headers["location"] and "no+such+item+or+segment" in gone.headers["location"]
        labels = c.get("/ui/labels").text
    stored = workbench.ctx.writer.read(LABELS)  # type: ignore[union-attr]
    assert stored["china-scs:item204#1"]["frame"] == "military" and stored["china-scs:item204#1"]["by"] == "ana"  # type: ignore[index]
    assert "china-scs:item204" in labels and ">military<" in labels
    assert "china-scs:item204#9" not in stored


def test_promote_from_the_watch_page_is_relayed_to_the_api(workbench: Workbench) -> None:
    kafka_or_skip()
    with workbench.client("analyst") as c:
        token = csrf_of(c.get("/ui/watches/china-scs").text)
        done = c.post("/ui/clusters/emergent:9/promote",
                      data={"csrf": token, "watch": "china-scs", "frame_id": "harbour", "label": "Harbour cameras"})
        assert done.status_code == 303 and "promoted=" in done.headers["location"]
        assert "recorded on" in c.get(done.headers["location"]).text
        bad = c.post("/ui/clusters/emergent:404/promote",
                     data={"csrf": token, "watch": "china-scs", "frame_id": "x", "label": "x"})
        assert "error=" in bad.headers["location"]
    change = workbench.ctx.writer.read(CODEBOOK_CHANGES)["china-scs:emergent:9"]  # type: ignore[union-attr]
    assert change is not None and change["frame_id"] == "harbour" and change["by"] == "ana"


def test_the_queue_page_answers_with_a_frame_none_or_skip_and_the_passage_leaves(workbench: Workbench) -> None:
    kafka_or_skip()
    with workbench.client("viewer") as v:
        seen = v.get("/ui/queue?watch=china-scs").text
        assert "Labelling queue" in seen and 'action="/ui/queue/answer"' not in seen  # a viewer cannot answer
    with workbench.client("analyst") as c:
        html = c.get("/ui/queue?watch=china-scs").text
        token = csrf_of(html)
        waiting = int(re.search(r"\((\d+) waiting", html).group(1))  # type: ignore[union-attr]
        first = re.findall(r'name="item_key" value="([^"]+)">\s*<input type="hidden" name="segment_index" value="(\d+)"', html)
        assert waiting > 3 and len(first) >= 3
        answers = [("trade", first[0]), ("none", first[1]), ("skip", first[2])]
        for choice, (key, index) in answers:
            done = c.post("/ui/queue/answer", data={"csrf": token, "item_key": unescape(key), "segment_index": index,
                                                    "answer": choice, "watch": "china-scs"})
            assert done.status_code == 303 and "done=" in done.headers["location"], done.headers["location"]
        after = c.get("/ui/queue?watch=china-scs").text
        assert f"({waiting - 3} waiting" in after
        assert c.post("/ui/queue/answer", data={"item_key": "x", "segment_index": "0", "answer": "trade"}).status_code == 403
    stored = workbench.ctx.writer.read(LABELS)  # type: ignore[union-attr]
    (k0, i0), (k1, i1), (k2, i2) = (a[1] for a in answers)
    assert stored[f"{unescape(k0)}#{i0}"]["frame"] == "trade"  # type: ignore[index]
    assert stored[f"{unescape(k1)}#{i1}"]["frame"] == "none"  # type: ignore[index]
    assert stored[f"{unescape(k2)}#{i2}"]["skipped"] is True  # type: ignore[index]
