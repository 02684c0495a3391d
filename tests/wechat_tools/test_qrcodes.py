"""QR codes with a scene: REST and CLI against the fake WeChat API, hostile input included."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.wechat_tools.conftest import Tools, assert_cli_error, json_of


def test_temporary_code_with_a_scene_id(tools: Tools) -> None:
    r = tools.http.post(
        tools.url("/qrcodes"), json={"scene": 42, "expire_seconds": 3600}, headers=tools.admin
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert tools.fake.qrcodes == [
        {"action_name": "QR_SCENE", "action_info": {"scene": {"scene_id": 42}}, "expire_seconds": 3600}
    ]
    assert body["ticket"] and body["url"].startswith("http://weixin.qq.com/q/")
    assert body["image_url"].startswith("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=")
    assert body["temporary"] is True and body["expire_seconds"] == 3600 and body["scene"] == 42
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert abs((expires - dt.datetime.now(dt.UTC)).total_seconds() - 3600) < 30
    assert tools.audit_actions() == ["wechat.qrcode_created"]


def test_permanent_code_with_a_scene_string(tools: Tools) -> None:
    r = tools.http.post(
        tools.url("/qrcodes"), json={"scene": "store_bj_01", "temporary": False}, headers=tools.admin
    )
    assert r.status_code == 201, r.text
    assert tools.fake.qrcodes[0] == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "store_bj_01"}},
    }
    assert r.json()["expires_at"] is None and r.json()["expire_seconds"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"scene": 0},
        {"scene": -1},
        {"scene": 2**32},
        {"scene": 100_001, "temporary": False},
        {"scene": ""},
        {"scene": "x" * 65},
        {"scene": "line\nbreak"},
        {"scene": True},
        {"scene": 1.5},
        {"scene": None},
        {"scene": ["a"]},
        {},
        {"scene": 1, "expire_seconds": 30},
        {"scene": 1, "expire_seconds": 2_592_001},
        {"scene": 1, "expire_seconds": "3600"},
        {"scene": 1, "temporary": "yes"},
        {"scene": 1, "colour": "red"},
        '{"scene": "\\ud800"}',  # a lone surrogate, escaped in the JSON text
        '{"scene": "ab\\u0000"}',
    ],
)
def test_bad_scenes_are_422_and_never_reach_wechat(tools: Tools, body: dict[str, Any] | str) -> None:
    if isinstance(body, str):
        headers = {**tools.admin, "content-type": "application/json"}
        r = tools.http.post(tools.url("/qrcodes"), content=body.encode(), headers=headers)
    else:
        r = tools.http.post(tools.url("/qrcodes"), json=body, headers=tools.admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]
    assert tools.fake.requests == [] and tools.audit_actions() == []


def test_not_json_is_422(tools: Tools) -> None:
    r = tools.http.post(
        tools.url("/qrcodes"),
        content=b"{scene: 1",
        headers={**tools.admin, "content-type": "application/json"},
    )
    assert r.status_code == 422


def test_wechat_refusal_is_a_clear_error_with_the_errcode(tools: Tools) -> None:
    tools.fake.errcode_next(40053, path="/qrcode/create")
    r = tools.http.post(tools.url("/qrcodes"), json={"scene": 7}, headers=tools.admin)
    assert r.status_code == 422 and r.json()["errcode"] == 40053
    assert "40053" in r.json()["detail"]
    tools.fake.errcode_next(45009, path="/qrcode/create")  # daily quota
    r = tools.http.post(tools.url("/qrcodes"), json={"scene": 7}, headers=tools.admin)
    assert r.status_code == 429 and r.json()["errcode"] == 45009 and r.json()["retry_after"] > 0
    tools.fake.fail_next(status=503, path="/qrcode/create")
    r = tools.http.post(tools.url("/qrcodes"), json={"scene": 7}, headers=tools.admin)
    assert r.status_code == 502 and r.json()["error"] == "wechat_unavailable"
    tools.fake.reset_next(path="/qrcode/create")
    assert tools.http.post(tools.url("/qrcodes"), json={"scene": 7}, headers=tools.admin).status_code == 502
    assert tools.audit_actions() == []  # nothing was created


def test_wrong_app_secret_is_502_with_a_hint_and_no_secret(tools: Tools) -> None:
    tools.fake.apps[next(iter(tools.fake.apps))] = "rotated-elsewhere"
    r = tools.http.post(tools.url("/qrcodes"), json={"scene": 7}, headers=tools.admin)
    assert r.status_code == 502 and r.json()["errcode"] == 40125
    assert "AppSecret" in r.json()["detail"] and "tools-app-secret" not in r.text


def test_admins_only_and_scoped_to_the_workspace(tools: Tools) -> None:
    body = {"scene": 1}
    assert tools.http.post(tools.url("/qrcodes"), json=body, headers=tools.agent).status_code == 403
    assert tools.http.post(tools.url("/qrcodes"), json=body).status_code == 401
    other = tools.http.post(tools.url("/qrcodes", tools.other_account_id), json=body, headers=tools.admin)
    assert other.status_code == 404
    weibo = tools.http.post(tools.url("/qrcodes", tools.weibo_account_id), json=body, headers=tools.admin)
    assert weibo.status_code == 404 and "not a WeChat" in weibo.json()["detail"]
    assert (
        tools.http.post("/api/v1/channels/abc/wechat/qrcodes", json=body, headers=tools.admin).status_code
        == 422
    )
    assert tools.fake.requests == []


def test_cli_creates_codes_and_refuses_bad_scenes(tools: Tools) -> None:
    out = json_of(tools.cli("channels", "qrcode", "create", "--scene", "123", "--expire-seconds", "600"))
    assert out["scene"] == 123 and out["expire_seconds"] == 600
    assert tools.fake.qrcodes[-1]["action_info"] == {"scene": {"scene_id": 123}}
    out = json_of(tools.cli("channels", "qrcode", "create", "--scene", "123", "--string", "--permanent"))
    assert tools.fake.qrcodes[-1] == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "123"}},
    }
    assert out["expires_at"] is None
    assert_cli_error(tools.cli("channels", "qrcode", "create", "--scene", "x" * 65), "scene_str", "64")
    assert_cli_error(tools.cli("channels", "qrcode", "create", "--scene", "0"), "scene_id")
    assert_cli_error(
        tools.cli("channels", "qrcode", "create", "--scene", "1", "--expire-seconds", "5"), "expire"
    )
    assert_cli_error(
        tools.cli("channels", "qrcode", "create", "--scene", "1", account_id=tools.other_account_id),
        "no such channel",
    )
    assert_cli_error(tools.cli("channels", "qrcode", "create", "--scene", "1", workspace="nope"))
    tools.fake.errcode_next(40053, path="/qrcode/create")
    assert_cli_error(tools.cli("channels", "qrcode", "create", "--scene", "9"), "40053")
    assert len(tools.fake.qrcodes) == 2
