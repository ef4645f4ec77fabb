"""Access: roles viewer < analyst < admin, no token reads nothing, tokens hashed and never logged."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from framewatch.processing.serve.auth import TokenStore, token_hash
from framewatch.settings import Settings
from tests.serve.conftest import ADMIN, Running

SUB = {"subscriber": "desk", "watch": "china-scs", "channel": {"type": "slack", "url": "https://hooks.example.org/x"}}


def _token(api: Running, role: str) -> str:
    with api.client() as c:
        response = c.post("/tokens", json={"name": f"{role}-1", "role": role})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_no_token_reads_nothing(api: Running) -> None:
    paths = [p for p, ops in _schema(api)["paths"].items() if "get" in ops]
    assert len(paths) >= 10
    with api.client(None) as anonymous, api.client("fw_not-a-token") as stranger:
        for path in paths:
            concrete = path.removeprefix("/api/v1").replace("{watch}", "china-scs").replace("{key}", "china-scs:item001")
            concrete = concrete.replace("{sub_id}", "x").replace("{token_id}", "x")
            for client in (anonymous, stranger):
                response = client.get(concrete)
                assert response.status_code == 401, (path, response.status_code)
                assert response.headers["www-authenticate"] == "Bearer"
                assert "china-scs" not in response.text


def _schema(api: Running) -> dict[str, dict[str, dict[str, object]]]:
    with api.client() as c:
        return dict(c.get("/openapi.json").json())


def test_viewer_reads_but_cannot_label_promote_or_change_subscriptions(api: Running) -> None:
    viewer = _token(api, "viewer")
    with api.client(viewer) as c:
        assert c.get("/items").status_code == 200
        assert c.get("/watches/china-scs/series").status_code == 200
        denied = [
            c.put("/items/china-scs:item001/segments/0/label", json={"frame": "trade"}),
            c.delete("/items/china-scs:item001/segments/0/label"),
            c.post("/clusters/emergent:1/promote", json={"watch": "china-scs", "frame_id": "new", "label": "New"}),
            c.get("/subscriptions"),
            c.post("/subscriptions", json=SUB),
            c.put("/subscriptions/abc", json=SUB),
            c.delete("/subscriptions/abc"),
            c.post("/subscriptions/abc/test"),
            c.post("/tokens", json={"name": "me-too", "role": "admin"}),
            c.get("/tokens"),
        ]
    assert [r.status_code for r in denied] == [403] * len(denied)
    assert "analyst" in denied[0].json()["detail"]


def test_analyst_labels_and_promotes_but_cannot_manage_subscriptions_or_tokens(api: Running) -> None:
    analyst = _token(api, "analyst")
    with api.client(analyst) as c:
        # past the role check: the item does not exist (404), the cluster does not exist (404)
        assert c.put("/items/china-scs:none/segments/0/label", json={"frame": "trade"}).status_code == 404
        assert c.post("/clusters/emergent:99/promote", json={"watch": "china-scs", "frame_id": "n", "label": "N"}).status_code == 404
        assert c.post("/subscriptions", json=SUB).status_code == 403
        assert c.get("/tokens").status_code == 403


def test_tokens_are_stored_hashed_shown_once_and_revocable(api: Running) -> None:
    token = _token(api, "viewer")
    stored = api.ctx.tokens.path.read_text(encoding="utf-8")  # type: ignore[union-attr]
    assert token not in stored and token_hash(token) in stored
    with api.client() as c:
        listed = c.get("/tokens").json()["tokens"]
        assert all("token" not in t for t in listed)
        token_id = next(t["id"] for t in listed if t["name"] == "viewer-1")
        assert c.get("/items", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert c.delete(f"/tokens/{token_id}").status_code == 200
        assert c.get("/items", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        assert c.delete("/tokens/bootstrap").status_code == 400
    # a restart reads the file: the revoked token stays revoked, new ones are known
    again = TokenStore(api.ctx.tokens.path)
    assert token_id not in {t.id for t in again.list()}
    assert json.loads(stored)["tokens"][-1]["sha256"] == token_hash(token)


def test_a_token_never_appears_in_a_log(api: Running, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = _token(api, "analyst")
    with api.client(token) as c:
        c.get("/items", params={"q": "zanzibar"})
        c.get("/items/china-scs:none")
        c.put("/items/china-scs:none/segments/0/label", json={"frame": "trade"})
    with api.client("fw_wrong-token-abc") as c:
        c.get("/items")
    text = caplog.text
    assert "/api/v1/items" in text  # the access log was captured
    for secret in (token, ADMIN, "fw_wrong-token-abc", token_hash(token)):
        assert secret not in text


def test_binds_to_loopback_by_default(tmp_path: object) -> None:
    assert Settings().serve_host == "127.0.0.1"


def test_no_token_configured_refuses_to_start(serve_factory: Callable[..., Running]) -> None:
    from framewatch.errors import ConfigError

    with pytest.raises(ConfigError, match="no API token"):
        serve_factory(serve_admin_token=None)
