"""Admin → Channels: connect a WeChat Official Account and a Weibo account from the UI (secrets
stored encrypted, shown masked), and test the connection against the platform's API (the fake
servers speak the real wire format)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from scrm.app import create_app
from scrm.channels.wechat.crypto import sha1_signature
from scrm.channels.wechat.fake import FakeWechatServer
from scrm.channels.weibo.fake import FakeWeiboServer
from scrm.config import Settings
from scrm.db import Database
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.web.conftest import Browser

AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
WECHAT = {
    "name": "云程航空服务号",
    "appid": "wx5137a1b2c3d4e5f6",
    "secret": "app-secret-0123456789abcdef",
    "token": "tok5137yuncheng",
    "encoding_aes_key": AES,
    "original_id": "gh_0123456789ab",
    "require_encryption": "1",
}
WEIBO = {
    "name": "云程航空微博",
    "uid": "1902538057",
    "app_key": "3344556677",
    "app_secret": "weibo-app-secret-998877",
    "access_token": "2.00weibo_access_token_abcdef",
    "poll": "1",
}


def accounts(db: Database, ws: Workspace, kind: str) -> list:  # type: ignore[type-arg]
    with db.transaction(readonly=True) as s:
        return workspace_service.list_channel_accounts(s, ws.id, kind)


def test_connect_wechat_stores_secrets_encrypted_and_shows_them_masked(
    admin: Browser, client: TestClient, db: Database, workspace: Workspace
) -> None:
    r = admin.post("/admin/channels/wechat", WECHAT, htmx=False)
    assert r.status_code == 200, r.text
    [acc] = accounts(db, workspace, "wechat")
    assert 'id="connected"' in r.text and f"/hooks/wechat/{acc.id}" in r.text
    view = workspace_service.account_view(acc)
    assert view.external_id == "wx5137a1b2c3d4e5f6" and view.name == "云程航空服务号"
    assert view.secrets == {"token": WECHAT["token"], "secret": WECHAT["secret"], "encoding_aes_key": AES}
    assert view.config == {
        "appid": "wx5137a1b2c3d4e5f6",
        "require_encryption": True,
        "original_id": "gh_0123456789ab",
    }
    for page in (r.text, admin.get("/admin/channels").text):
        for secret in (WECHAT["secret"], WECHAT["token"], AES):
            assert secret not in page
    row = re.search(rf'<tr id="channel-{acc.id}">(.*?)</tr>', admin.get("/admin/channels").text, re.S)
    assert row and "secret=app••••••ef" in row.group(1) and f'id="test-btn-{acc.id}"' in row.group(1)

    # The account works: WeChat's URL verification with the Token entered in the form.
    ts, nonce = str(int(time.time())), "n0nce"
    query = {
        "signature": sha1_signature(WECHAT["token"], ts, nonce),
        "timestamp": ts,
        "nonce": nonce,
        "echostr": "e-1",
    }
    verify = client.get(f"/hooks/wechat/{acc.id}", params=query)
    assert verify.status_code == 200 and verify.text == "e-1"


def test_connect_weibo(admin: Browser, db: Database, workspace: Workspace) -> None:
    r = admin.post("/admin/channels/weibo", WEIBO, htmx=False)
    assert r.status_code == 200 and 'id="connected"' in r.text
    [acc] = accounts(db, workspace, "weibo")
    view = workspace_service.account_view(acc)
    assert view.external_id == "1902538057"
    assert view.secrets == {"app_secret": WEIBO["app_secret"], "access_token": WEIBO["access_token"]}
    assert view.config == {"uid": "1902538057", "poll": True, "app_key": "3344556677"}
    page = admin.get("/admin/channels").text
    assert WEIBO["access_token"] not in page and WEIBO["app_secret"] not in page
    # Weibo accounts add the Mentions view to the inbox.
    assert 'id="view-mentions"' in admin.get("/inbox").text


def test_bad_channel_forms_are_refused_with_the_reason_and_secrets_are_not_echoed(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    wechat_cases = [
        ({"encoding_aes_key": "short"}, "EncodingAESKey must be 43 letters or digits"),
        ({"token": "a b"}, "Token must be 3-32 letters or digits"),
        ({"appid": "wx<script>"}, "AppID must be"),
        ({"secret": ""}, "AppSecret is required"),
        ({"encoding_aes_key": "", "require_encryption": "1"}, "safe mode needs the EncodingAESKey"),
        ({"name": " "}, "the account needs a name"),
    ]
    for change, reason in wechat_cases:
        r = admin.post("/admin/channels/wechat", {**WECHAT, **change}, htmx=False)
        assert r.status_code == 422, change
        assert 'id="wechat-error"' in r.text and reason in r.text, change
        assert WECHAT["secret"] not in r.text and WECHAT["token"] not in r.text
    assert 'value="wx5137a1b2c3d4e5f6"' in r.text  # non-secret input is kept
    assert accounts(db, workspace, "wechat") == []
    for change, reason in [
        ({"uid": "abc"}, "uid is a number"),
        ({"access_token": ""}, "access token is required"),
    ]:
        r = admin.post("/admin/channels/weibo", {**WEIBO, **change}, htmx=False)
        assert r.status_code == 422 and 'id="weibo-error"' in r.text and reason in r.text
        assert WEIBO["app_secret"] not in r.text
    assert accounts(db, workspace, "weibo") == []

    # The same AppID twice, and a name already taken.
    assert admin.post("/admin/channels/wechat", WECHAT, htmx=False).status_code == 200
    r = admin.post("/admin/channels/wechat", {**WECHAT, "name": "另一个"}, htmx=False)
    assert r.status_code == 409 and "already connected" in r.text
    r = admin.post("/admin/channels/wechat", {**WECHAT, "appid": "wx0000000000000000"}, htmx=False)
    assert r.status_code == 409 and "exists" in r.text
    assert len(accounts(db, workspace, "wechat")) == 1


@pytest.fixture
def fakes() -> Iterator[tuple[FakeWechatServer, FakeWeiboServer]]:
    wechat = FakeWechatServer(appid=WECHAT["appid"], secret=WECHAT["secret"]).start()
    weibo = FakeWeiboServer(access_token=WEIBO["access_token"]).start()
    yield wechat, weibo
    wechat.stop()
    weibo.stop()


@pytest.fixture
def admin_on_fakes(
    db: Database, settings: Settings, workspace: Workspace, fakes: tuple[FakeWechatServer, FakeWeiboServer]
) -> Browser:
    wechat, weibo = fakes
    app = create_app(
        settings.model_copy(update={"wechat_api_base": wechat.base_url, "weibo_api_base": weibo.base_url}), db
    )
    b = Browser(TestClient(app))
    b.login(f"admin@{workspace.slug}.test")
    return b


def test_connection_test_asks_the_platform(
    admin_on_fakes: Browser,
    db: Database,
    workspace: Workspace,
    fakes: tuple[FakeWechatServer, FakeWeiboServer],
) -> None:
    b = admin_on_fakes
    wechat, weibo = fakes
    b.post("/admin/channels/wechat", WECHAT, htmx=False)
    b.post(
        "/admin/channels/wechat",
        {**WECHAT, "name": "错密钥", "appid": "wx_wrong", "secret": "nope"},
        htmx=False,
    )
    b.post("/admin/channels/weibo", WEIBO, htmx=False)
    b.post(
        "/admin/channels/weibo", {**WEIBO, "name": "过期", "uid": "42", "access_token": "expired"}, htmx=False
    )
    ids = {a.name: a.id for kind in ("wechat", "weibo") for a in accounts(db, workspace, kind)}

    ok = b.post(f"/admin/channels/{ids['云程航空服务号']}/test")
    assert ok.status_code == 200 and 'class="test-result ok"' in ok.text and "access_token" in ok.text
    assert [r.path for r in wechat.requests] == ["/cgi-bin/stable_token"]
    assert wechat.requests[0].json()["appid"] == WECHAT["appid"]
    bad = b.post(f"/admin/channels/{ids['错密钥']}/test")
    assert bad.status_code == 200 and 'class="test-result fail"' in bad.text and "连接失败" in bad.text
    assert "nope" not in bad.text

    ok = b.post(f"/admin/channels/{ids['云程航空微博']}/test")
    assert 'class="test-result ok"' in ok.text
    assert weibo.requests[-1].path == "/2/statuses/mentions.json"
    bad = b.post(f"/admin/channels/{ids['过期']}/test")
    assert 'class="test-result fail"' in bad.text and "expired" not in bad.text

    # Without HTMX the channels page comes back with the result.
    page = b.post(f"/admin/channels/{ids['云程航空服务号']}/test", htmx=False)
    assert (
        page.status_code == 200
        and 'id="test-result-page"' in page.text
        and 'id="channels-table"' in page.text
    )
    # The webhook channel has no connection test.
    assert b.post(f"/admin/channels/{workspace.channel_id}/test").status_code == 422


def test_unreachable_platform_is_a_failed_test_not_an_error(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    # The default settings point at the real platforms; a closed local port stands in for an outage.
    app = admin.client.app
    app.state.settings = app.state.settings.model_copy(update={"wechat_api_base": "http://127.0.0.1:9"})
    admin.post("/admin/channels/wechat", WECHAT, htmx=False)
    [acc] = accounts(db, workspace, "wechat")
    r = admin.post(f"/admin/channels/{acc.id}/test")
    assert r.status_code == 200 and 'class="test-result fail"' in r.text and "network error" in r.text


def test_channel_admin_is_for_admins_with_csrf_and_scoped_to_the_workspace(
    admin: Browser, agent: Browser, db: Database, workspace: Workspace, other_workspace: Workspace
) -> None:
    assert agent.post("/admin/channels/wechat", WECHAT, htmx=False).status_code == 403
    assert agent.post("/admin/channels/weibo", WEIBO, htmx=False).status_code == 403
    assert agent.post(f"/admin/channels/{workspace.channel_id}/test").status_code == 403
    assert admin.client.post("/admin/channels/wechat", data=WECHAT).status_code == 403  # no CSRF token
    assert (
        admin.client.post("/admin/channels/weibo", data={**WEIBO, "csrf_token": "forged"}).status_code == 403
    )
    assert accounts(db, workspace, "wechat") == [] and accounts(db, workspace, "weibo") == []
    assert admin.post(f"/admin/channels/{other_workspace.channel_id}/test").status_code == 404
    assert admin.post("/admin/channels/not-a-number/test").status_code == 422
