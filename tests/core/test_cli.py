"""The `scrm` CLI: happy paths and clear errors (never a traceback)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from scrm.app import create_app
from scrm.cli import app
from tests.helpers import signed_headers, webhook_event

runner = CliRunner()


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def assert_clean_error(result, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert text in result.output, result.output


def test_users_tokens_and_webhook_channel(db, settings, workspace) -> None:  # type: ignore[no-untyped-def]
    r = invoke(
        "users",
        "create",
        "--email",
        "new@yuncheng.test",
        "--password",
        "longenough1",
        "--name",
        "新人",
        "--workspace",
        "yuncheng",
        "--role",
        "agent",
    )
    assert r.exit_code == 0, r.output
    r = invoke("tokens", "create", "--workspace", "yuncheng", "--user", "new@yuncheng.test")
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[-1]
    client = TestClient(create_app(settings, db))
    me = client.get("/api/v1/me", headers={"authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["name"] == "新人"

    r = invoke("channels", "create", "webhook", "--workspace", "yuncheng", "--name", "CRM 系统")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(created) == {"id", "inbound_url", "secret"}
    assert created["inbound_url"].endswith(f"/hooks/webhook/{created['id']}")
    body = webhook_event("cli-1", "你好")
    resp = client.post(
        f"/hooks/webhook/{created['id']}", content=body, headers=signed_headers(created["secret"], body)
    )
    assert resp.status_code == 202


def test_bad_input_gives_clear_messages(db, settings, workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert_clean_error(invoke("tokens", "create", "--workspace", "nope", "--user", "x@y.z"), "no workspace")
    assert_clean_error(
        invoke("tokens", "create", "--workspace", "yuncheng", "--user", "ghost@x.y"), "no user"
    )
    assert_clean_error(
        invoke("users", "create", "--email", "not-an-email", "--password", "longenough1"), "not an email"
    )
    assert_clean_error(invoke("users", "create", "--email", "a@b.cd", "--password", "short"), "at least 8")
    assert_clean_error(
        invoke("users", "create", "--email", "admin@yuncheng.test", "--password", "longenough1"), "exists"
    )
    assert_clean_error(
        invoke("channels", "create", "fax", "--workspace", "yuncheng", "--name", "x"), "unknown channel"
    )
    assert_clean_error(
        invoke("channels", "create", "webhook", "--workspace", "yuncheng", "--name", "x", "--config", "{bad"),
        "JSON",
    )
    assert_clean_error(
        invoke("import", "orders", str(tmp_path / "missing.csv"), "--workspace", "yuncheng"), "no such file"
    )
    xlsx = tmp_path / "orders.xlsx"
    xlsx.write_bytes(b"PK\x03\x04")
    assert_clean_error(invoke("import", "orders", str(xlsx), "--workspace", "yuncheng"), ".csv or .jsonl")
    gbk = tmp_path / "orders.csv"
    gbk.write_bytes("source,order_id\n测试,1\n".encode("gbk"))
    assert_clean_error(invoke("import", "orders", str(gbk), "--workspace", "yuncheng"), "UTF-8")
    assert_clean_error(invoke("jobs", "show", "42"), "no job 42")
    assert_clean_error(invoke("jobs", "show", "abc"), "valid integer")


def test_import_orders_reports_rejected_lines(db, settings, workspace, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "orders.csv"
    f.write_text(
        "source,order_id,phone,amount_fen,placed_at\n"
        "shop,A1,13800138000,100,2026-11-20T10:00:00+08:00\n"
        "shop,,13800138000,100,2026-11-20T10:00:00+08:00\n",
        encoding="utf-8",
    )
    r = invoke("import", "orders", str(f), "--workspace", "yuncheng")
    assert r.exit_code == 0, r.output
    assert "1 inserted" in r.stdout and "1 rejected" in r.stdout and "line 3" in r.stdout


def test_bad_worker_settings_give_a_clear_message(settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from scrm.config import get_settings

    for name in ("SCRM_WORKER_TX_JOBS", "SCRM_WORKER_TX_SECONDS"):
        monkeypatch.setenv(name, "-1")
        get_settings.cache_clear()
        assert_clean_error(invoke("worker", "--concurrency", "1"), "greater than or equal to 0")
        monkeypatch.delenv(name)
    get_settings.cache_clear()
