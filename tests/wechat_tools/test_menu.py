"""The custom menu: REST and CLI against the fake WeChat API, hostile menus included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.wechat_tools.conftest import Tools, assert_cli_error, json_of

MENU: dict[str, Any] = {
    "button": [
        {"type": "click", "name": "今日航班", "key": "FLIGHT_TODAY"},
        {
            "name": "服务",
            "sub_button": [
                {"type": "view", "name": "行李查询", "url": "https://brand.example/baggage"},
                {"type": "scancode_push", "name": "扫码登机", "key": "SCAN_BOARD"},
            ],
        },
    ]
}


def test_get_without_a_menu_then_put_get_delete(tools: Tools) -> None:
    r = tools.http.get(tools.url("/menu"), headers=tools.admin)
    assert r.status_code == 200 and r.json() == {"menu": None, "conditionalmenu": []}
    r = tools.http.put(tools.url("/menu"), json=MENU, headers=tools.admin)
    assert r.status_code == 200, r.text
    assert r.json() == MENU and tools.fake.menu == MENU
    assert tools.http.get(tools.url("/menu"), headers=tools.admin).json()["menu"] == MENU
    assert tools.http.delete(tools.url("/menu"), headers=tools.admin).status_code == 204
    assert tools.fake.menu is None
    assert tools.audit_actions() == ["wechat.menu_set", "wechat.menu_deleted"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"button": []}, "button"),
        ({"button": [{"type": "click", "name": f"b{i}", "key": "k"} for i in range(4)]}, "button"),
        ({"button": [{"name": "很长很长的名字", "type": "click", "key": "k"}]}, "button[0].name"),
        ({"button": [{"type": "click", "name": "a"}]}, "button[0].key"),
        ({"button": [{"type": "view", "name": "a", "url": "ftp://x"}]}, "button[0].url"),
        ({"button": [{"type": "evil", "name": "a"}]}, "button[0].type"),
        (
            {"button": [{"name": "p", "sub_button": [{"type": "click", "name": "s", "key": "k"}] * 6}]},
            "button[0].sub_button",
        ),
        ({"button": "not a list"}, "button"),
        ({"buttons": []}, None),
        ({"button": [{"type": "click", "name": "a", "key": "k" * 200}]}, "button[0].key"),
        ({"button": [["nested list"]]}, "button[0]"),
    ],
)
def test_bad_menus_are_422_naming_the_field_and_never_reach_wechat(
    tools: Tools, body: dict[str, Any], field: str | None
) -> None:
    r = tools.http.put(tools.url("/menu"), json=body, headers=tools.admin)
    assert r.status_code == 422, r.text
    if field is not None:
        assert r.json()["field"] == field
    assert tools.fake.requests == [] and tools.audit_actions() == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2", b"\xff\xfe", b"null", b"[]"])
def test_unparsable_or_wrong_type_bodies_are_422(tools: Tools, raw: bytes) -> None:
    r = tools.http.put(
        tools.url("/menu"), content=raw, headers={**tools.admin, "content-type": "application/json"}
    )
    assert r.status_code == 422
    assert tools.fake.requests == []


def test_wechat_errors_on_the_menu(tools: Tools) -> None:
    tools.fake.errcode_next(40018, path="/menu/create")
    r = tools.http.put(tools.url("/menu"), json=MENU, headers=tools.admin)
    assert r.status_code == 422 and r.json()["errcode"] == 40018 and "name too long" in r.json()["detail"]
    tools.fake.errcode_next(-1, path="/menu/get")  # system busy
    r = tools.http.get(tools.url("/menu"), headers=tools.admin)
    assert r.status_code == 502 and r.json()["errcode"] == -1
    tools.fake.respond_next({"unexpected": "shape"}, path="/menu/get")
    r = tools.http.get(tools.url("/menu"), headers=tools.admin)
    assert r.status_code == 200 and r.json() == {"menu": None, "conditionalmenu": []}
    tools.fake.respond_next([1, 2], path="/menu/get")  # not even an object
    assert tools.http.get(tools.url("/menu"), headers=tools.admin).status_code == 502


def test_menu_endpoints_are_admin_only_and_scoped(tools: Tools) -> None:
    assert tools.http.get(tools.url("/menu"), headers=tools.agent).status_code == 403
    assert tools.http.put(tools.url("/menu"), json=MENU, headers=tools.agent).status_code == 403
    assert tools.http.delete(tools.url("/menu"), headers=tools.agent).status_code == 403
    assert tools.http.get(tools.url("/menu", tools.other_account_id), headers=tools.admin).status_code == 404
    assert (
        tools.http.put(tools.url("/menu", tools.other_account_id), json=MENU, headers=tools.admin).status_code
        == 404
    )
    assert tools.fake.requests == []


def test_cli_menu_set_get_delete(tools: Tools, tmp_path: Path) -> None:
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(MENU, ensure_ascii=False), encoding="utf-8")
    assert json_of(tools.cli("channels", "menu", "set", str(path))) == MENU
    assert json_of(tools.cli("channels", "menu", "get"))["menu"] == MENU
    assert_cli_error(tools.cli("channels", "menu", "delete"), "--yes")
    assert tools.fake.menu == MENU
    assert json_of(tools.cli("channels", "menu", "delete", "--yes")) == {"deleted": True}
    assert tools.fake.menu is None
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(MENU["button"]), encoding="utf-8")  # the bare list works too
    assert json_of(tools.cli("channels", "menu", "set", str(bare))) == MENU


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{oops", "not JSON"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (json.dumps({"button": [{"type": "click", "name": "a"}]}).encode(), "button[0].key"),
        (b" " * (1024 * 1024 + 10), "larger than"),
    ],
)
def test_cli_menu_set_refuses_bad_files(tools: Tools, tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "menu.json"
    path.write_bytes(content)
    assert_cli_error(tools.cli("channels", "menu", "set", str(path)), words)
    assert tools.fake.requests == []


def test_cli_menu_missing_file(tools: Tools, tmp_path: Path) -> None:
    assert_cli_error(tools.cli("channels", "menu", "set", str(tmp_path / "nope.json")), "nope.json")
