"""Admin → Channels: edit an account from its row (name, settings, secrets) with the channel's
own checks, EncodingAESKey rotation and dropping the previous key; secrets never echoed."""

from __future__ import annotations

import re

from scrm.db import Database
from scrm.workspace import service as workspace_service
from tests.conftest import Workspace
from tests.web.conftest import Browser
from tests.web.test_admin_channels import AES, WECHAT, WEIBO, accounts

NEW_AES = "NewKey0123456789abcdefghijklmnopqrstuvwxyz0"


def secrets_of(db: Database, ws: Workspace, kind: str) -> dict[str, str]:
    [acc] = accounts(db, ws, kind)
    return workspace_service.account_view(acc).secrets


def test_edit_wechat_rotates_the_key_then_drops_the_previous_one(
    admin: Browser, db: Database, workspace: Workspace
) -> None:
    assert admin.post("/admin/channels/wechat", WECHAT, htmx=False).status_code == 200
    [acc] = accounts(db, workspace, "wechat")
    page = admin.get("/admin/channels").text
    assert f'id="edit-form-{acc.id}"' in page and 'name="drop_previous_aes_key"' not in page

    form = {
        "name": "新服务号",
        "original_id": "gh_0123456789ab",
        "require_encryption": "1",
        "encoding_aes_key": NEW_AES,
    }
    r = admin.post(f"/admin/channels/{acc.id}/edit", form, htmx=False)
    assert r.status_code == 200 and 'id="channel-saved"' in r.text, r.text
    assert "EncodingAESKey" in r.text and NEW_AES not in r.text and AES not in r.text
    assert secrets_of(db, workspace, "wechat") == {
        "token": WECHAT["token"],  # blank fields keep the stored secret
        "secret": WECHAT["secret"],
        "encoding_aes_key": NEW_AES,
        "previous_encoding_aes_key": AES,
    }
    [acc] = accounts(db, workspace, "wechat")
    assert acc.name == "新服务号" and acc.config["require_encryption"] is True
    row = re.search(rf'<tr id="channel-{acc.id}">(.*?)</tr>', admin.get("/admin/channels").text, re.S)
    assert row and 'name="drop_previous_aes_key"' in row.group(1)

    r = admin.post(
        f"/admin/channels/{acc.id}/edit",
        {"name": "新服务号", "original_id": "gh_0123456789ab", "drop_previous_aes_key": "1"},
        htmx=False,
    )
    assert r.status_code == 200, r.text
    assert "previous_encoding_aes_key" not in secrets_of(db, workspace, "wechat")
    [acc] = accounts(db, workspace, "wechat")
    assert acc.config["require_encryption"] is False  # an unticked box is "off"


def test_edit_refuses_bad_values_with_the_reason_and_changes_nothing(
    admin: Browser, agent: Browser, db: Database, workspace: Workspace, other_workspace: Workspace
) -> None:
    admin.post("/admin/channels/wechat", WECHAT, htmx=False)
    admin.post("/admin/channels/weibo", WEIBO, htmx=False)
    [wechat] = accounts(db, workspace, "wechat")
    [weibo] = accounts(db, workspace, "weibo")
    before = secrets_of(db, workspace, "wechat")
    for form, reason in [
        ({"name": "x", "encoding_aes_key": "too-short"}, "EncodingAESKey must be 43 letters or digits"),
        ({"name": "x", "token": "a b"}, "Token must be 3-32"),
        ({"name": "x", "original_id": "gh <b>"}, "the original id looks like"),
        ({"name": "App"}, "exists"),  # the webhook's name
    ]:
        r = admin.post(f"/admin/channels/{wechat.id}/edit", form, htmx=False)
        assert r.status_code in (409, 422) and 'id="edit-error"' in r.text and reason in r.text, form
        assert f'id="edit-{wechat.id}" open' in r.text
        assert WECHAT["secret"] not in r.text and WECHAT["token"] not in r.text and AES not in r.text
    assert secrets_of(db, workspace, "wechat") == before
    assert accounts(db, workspace, "wechat")[0].name == WECHAT["name"]

    r = admin.post(
        f"/admin/channels/{weibo.id}/edit", {"name": "微博", "access_token": "new-token-1"}, htmx=False
    )
    assert r.status_code == 200
    assert secrets_of(db, workspace, "weibo") == {
        "app_secret": WEIBO["app_secret"],
        "access_token": "new-token-1",
    }
    assert accounts(db, workspace, "weibo")[0].config["poll"] is False

    assert agent.post(f"/admin/channels/{wechat.id}/edit", {"name": "x"}, htmx=False).status_code == 403
    assert (
        admin.client.post(f"/admin/channels/{wechat.id}/edit", data={"name": "x"}).status_code == 403
    )  # CSRF
    r = admin.post(f"/admin/channels/{other_workspace.channel_id}/edit", {"name": "x"}, htmx=False)
    assert r.status_code == 404
