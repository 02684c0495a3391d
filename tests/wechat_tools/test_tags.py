"""Fan tags: create / list / rename / delete, tagging and untagging fans, a fan's tags, a tag's
fans. REST and CLI against the fake WeChat API; hostile input and WeChat's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.wechat_tools.conftest import Tools, assert_cli_error, json_of

FANS = [f"oFAN{i:024d}" for i in range(120)]


def _create(tools: Tools, name: str) -> dict[str, Any]:
    r = tools.http.post(tools.url("/tags"), json={"name": name}, headers=tools.admin)
    assert r.status_code == 201, r.text
    return r.json()


def test_tag_lifecycle(tools: Tools) -> None:
    vip = _create(tools, "VIP会员")
    assert vip["name"] == "VIP会员" and vip["id"] >= 100
    r = tools.http.post(tools.url(f"/tags/{vip['id']}/fans"), json={"openids": FANS}, headers=tools.admin)
    assert r.status_code == 200 and r.json() == {"tag_id": vip["id"], "tagged": 120}
    assert len(tools.fake.requests_to("/tags/members/batchtagging")) == 3  # 50 + 50 + 20
    assert tools.http.get(tools.url("/tags"), headers=tools.admin).json() == [{**vip, "count": 120}]
    page = tools.http.get(tools.url(f"/tags/{vip['id']}/fans"), headers=tools.admin).json()
    assert sorted(page["openids"]) == sorted(FANS) and page["next_openid"] == ""
    fan = tools.http.get(tools.url(f"/fans/{FANS[0]}/tags"), headers=tools.admin).json()
    assert fan == {"openid": FANS[0], "tag_ids": [vip["id"]], "tags": [{"id": vip["id"], "name": "VIP会员"}]}
    r = tools.http.request(
        "DELETE", tools.url(f"/tags/{vip['id']}/fans"), json={"openids": FANS[:10]}, headers=tools.admin
    )
    assert r.status_code == 200 and r.json()["untagged"] == 10
    assert tools.http.get(tools.url(f"/fans/{FANS[0]}/tags"), headers=tools.admin).json()["tag_ids"] == []
    r = tools.http.patch(tools.url(f"/tags/{vip['id']}"), json={"name": "超级VIP"}, headers=tools.admin)
    assert r.status_code == 200 and r.json() == {"id": vip["id"], "name": "超级VIP"}
    assert tools.http.delete(tools.url(f"/tags/{vip['id']}"), headers=tools.admin).status_code == 204
    assert tools.http.get(tools.url("/tags"), headers=tools.admin).json() == []
    assert tools.audit_actions() == [
        "wechat.tag_created",
        "wechat.fans_tagged",
        "wechat.fans_untagged",
        "wechat.tag_renamed",
        "wechat.tag_deleted",
    ]


@pytest.mark.parametrize(
    "name",
    ["", "   ", "长" * 11, 123, None, "a\x00b", "tab\there"],  # 33 bytes; not a string; control chars
)
def test_bad_tag_names_are_422_and_never_reach_wechat(tools: Tools, name: Any) -> None:
    r = tools.http.post(tools.url("/tags"), json={"name": name}, headers=tools.admin)
    assert r.status_code == 422, r.text
    assert tools.fake.requests == []


def test_wechat_refusals_keep_their_errcode(tools: Tools) -> None:
    vip = _create(tools, "VIP")
    other = _create(tools, "新客")
    dup = tools.http.post(tools.url("/tags"), json={"name": "VIP"}, headers=tools.admin)
    assert dup.status_code == 409 and dup.json()["errcode"] == 45157
    rename = tools.http.patch(tools.url(f"/tags/{other['id']}"), json={"name": "VIP"}, headers=tools.admin)
    assert rename.status_code == 409 and rename.json()["errcode"] == 45157
    missing = tools.http.delete(tools.url("/tags/99999"), headers=tools.admin)
    assert missing.status_code == 404 and missing.json()["errcode"] == 45159
    missing = tools.http.post(tools.url("/tags/99999/fans"), json={"openids": FANS[:1]}, headers=tools.admin)
    assert missing.status_code == 404 and missing.json()["errcode"] == 45159
    tools.fake.errcode_next(45009, path="/tags/get")
    quota = tools.http.get(tools.url("/tags"), headers=tools.admin)
    assert quota.status_code == 429 and quota.json()["errcode"] == 45009
    tools.fake.fail_next(status=500, path="/tags/members/batchtagging")
    down = tools.http.post(
        tools.url(f"/tags/{vip['id']}/fans"), json={"openids": FANS[:2]}, headers=tools.admin
    )
    assert down.status_code == 502
    assert "wechat.fans_tagged" not in tools.audit_actions()


def test_too_many_tags_is_409(tools: Tools) -> None:
    for i in range(100):
        tools.fake.tags[1000 + i] = {"id": 1000 + i, "name": f"t{i}"}
    r = tools.http.post(tools.url("/tags"), json={"name": "one more"}, headers=tools.admin)
    assert r.status_code == 409 and r.json()["errcode"] == 45056


@pytest.mark.parametrize("tag_id", [0, 1, 2])
def test_reserved_tags_cannot_be_changed(tools: Tools, tag_id: int) -> None:
    r = tools.http.patch(tools.url(f"/tags/{tag_id}"), json={"name": "x"}, headers=tools.admin)
    assert r.status_code == 422 and "reserved" in r.json()["detail"]
    assert tools.http.delete(tools.url(f"/tags/{tag_id}"), headers=tools.admin).status_code == 422
    assert tools.fake.requests == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tags/-1/fans", {"openids": ["oA"]}),
        ("/tags/abc/fans", {"openids": ["oA"]}),
        ("/tags/2147483648/fans", {"openids": ["oA"]}),
        ("/tags/100/fans", {"openids": []}),
        ("/tags/100/fans", {"openids": "oA"}),
        ("/tags/100/fans", {"openids": [""]}),
        ("/tags/100/fans", {"openids": ["o" * 65]}),
        ("/tags/100/fans", {"openids": ["has space"]}),
        ("/tags/100/fans", {"openids": [1, 2]}),
        ("/tags/100/fans", {"openids": [f"o{i}" for i in range(1001)]}),
        ("/tags/100/fans", {"openid": ["oA"]}),
    ],
)
def test_bad_fan_lists_are_422_and_never_reach_wechat(tools: Tools, path: str, body: dict[str, Any]) -> None:
    r = tools.http.post(tools.url(path), json=body, headers=tools.admin)
    assert r.status_code == 422, r.text
    assert tools.fake.requests == []


def test_bad_openid_in_the_path_is_422(tools: Tools) -> None:
    assert tools.http.get(tools.url(f"/fans/{'o' * 65}/tags"), headers=tools.admin).status_code == 422
    assert tools.http.get(tools.url("/fans/o%20x/tags"), headers=tools.admin).status_code == 422
    assert (
        tools.http.get(tools.url("/tags/100/fans?next_openid=" + "o" * 65), headers=tools.admin).status_code
        == 422
    )
    assert tools.fake.requests == []


def test_tags_are_admin_only_and_scoped(tools: Tools) -> None:
    assert tools.http.get(tools.url("/tags"), headers=tools.agent).status_code == 403
    assert tools.http.post(tools.url("/tags"), json={"name": "x"}, headers=tools.agent).status_code == 403
    assert tools.http.get(tools.url("/tags", tools.other_account_id), headers=tools.admin).status_code == 404
    r = tools.http.post(tools.url("/tags", tools.other_account_id), json={"name": "x"}, headers=tools.admin)
    assert r.status_code == 404
    r = tools.http.get(tools.url("/tags", tools.weibo_account_id), headers=tools.admin)
    assert r.status_code == 404
    assert tools.fake.requests == []


def test_cli_tags(tools: Tools) -> None:
    tag = json_of(tools.cli("channels", "tags", "create", "常旅客"))
    assert tag["name"] == "常旅客"
    tid = str(tag["id"])
    assert json_of(tools.cli("channels", "tags", "add", tid, FANS[0], FANS[1])) == {
        "tag_id": tag["id"],
        "tagged": 2,
    }
    assert json_of(tools.cli("channels", "tags", "list")) == [{**tag, "count": 2}]
    assert json_of(tools.cli("channels", "tags", "fan", FANS[0]))["tag_ids"] == [tag["id"]]
    assert sorted(json_of(tools.cli("channels", "tags", "fans", tid))["openids"]) == FANS[:2]
    assert json_of(tools.cli("channels", "tags", "remove", tid, FANS[0]))["untagged"] == 1
    assert json_of(tools.cli("channels", "tags", "rename", tid, "金卡"))["name"] == "金卡"
    assert_cli_error(tools.cli("channels", "tags", "delete", tid), "--yes")
    assert json_of(tools.cli("channels", "tags", "delete", tid, "--yes")) == {"deleted": tag["id"]}
    assert tools.fake.tags == {}
    assert tools.audit_actions()[-1] == "wechat.tag_deleted"


def test_cli_tags_errors(tools: Tools) -> None:
    assert_cli_error(tools.cli("channels", "tags", "create", "长" * 11), "30 bytes")
    assert_cli_error(tools.cli("channels", "tags", "rename", "1", "x"), "reserved")
    assert_cli_error(tools.cli("channels", "tags", "delete", "99999", "--yes"), "45159")
    assert_cli_error(tools.cli("channels", "tags", "add", "100", "bad openid"), "openid")
    assert_cli_error(
        tools.cli("channels", "tags", "list", account_id=tools.other_account_id), "no such channel"
    )
    assert_cli_error(tools.cli("channels", "tags", "list", account_id=tools.weibo_account_id), "not a WeChat")
    result = tools.cli("channels", "tags", "add", "abc", "oA")
    assert result.exit_code == 2 and "Traceback" not in result.output
