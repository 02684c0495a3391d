"""`make run`'s server (`scrm serve --demo-fakes`): the demo's WeChat and Weibo accounts talk to
fake platforms on 127.0.0.1, so a reply to a demo fan is really delivered, in the platform's
wire format, instead of failing against the real API. Everything runs as separate processes,
through the commands a person would type."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrm.channels.registry import AccountView
from scrm.channels.wechat.spec import appid_of
from scrm.db import Database
from scrm.demo import loader
from scrm.workspace import repository, service

SCRM = str(Path(sys.executable).with_name("scrm"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([SCRM, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _wait(predicate: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


SQLITE_ONLY = pytest.mark.skipif(
    os.environ.get("SCRM_TEST_DB", "sqlite") != "sqlite", reason="the demo runs on SQLite"
)


def _demo_wechat_account(env: dict[str, str], url: str) -> AccountView:
    """`scrm db upgrade` and `scrm demo load` in their own processes; the airline's demo WeChat account."""
    _run(env, "db", "upgrade")
    _run(env, "demo", "load")
    db = Database(url)
    try:
        with db.transaction(readonly=True) as s:
            ws = service.get_workspace(s, "yuncheng")
            account = repository.channel_account_by_name(s, ws.id, loader.DEMO_WECHAT_NAME)
            assert account is not None
            return service.account_view(account)
    finally:
        db.dispose()


@SQLITE_ONLY
def test_a_reply_to_a_demo_wechat_fan_is_delivered_to_the_fake_platform(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    env = {**os.environ, "SCRM_DATABASE_URL": url, "SCRM_INPROCESS_WORKER": "true"}
    for name in ("SCRM_WECHAT_API_BASE", "SCRM_WEIBO_API_BASE"):
        env.pop(name, None)  # the real platforms unless --demo-fakes says otherwise
    account_id = _demo_wechat_account(env, url).id
    token = _run(
        env, "tokens", "create", "--workspace", "yuncheng", "--user", "admin@yuncheng.example"
    ).strip()

    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [SCRM, "serve", "--port", str(port), "--demo-fakes"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _healthy(base) or server.poll() is not None)
        banner = (tmp_path / "serve.log").read_text()
        assert server.poll() is None, banner[-3000:]
        assert "SCRM_WECHAT_API_BASE=http://127.0.0.1:" in banner, banner

        fan = "oDEMOfakesTEST0000000000001"
        _run(env, "channels", "simulate", "wechat", "--account", str(account_id), "--fan", fan,
             "--text", "请问明天的航班可以改签吗？", "--url", base)  # fmt: skip
        api = httpx.Client(base_url=f"{base}/api/v1", headers={"authorization": f"Bearer {token}"})
        conversation = _wait(lambda: _conversation_of(api, account_id))
        sent = api.post(f"/conversations/{conversation}/messages", json={"text": "可以的，请提供订单号。"})
        assert sent.status_code in (200, 201), sent.text

        def delivered() -> dict[str, Any] | None:
            for m in api.get(f"/conversations/{conversation}/messages").json()["items"]:
                if m["direction"] == "out" and m["text"] == "可以的，请提供订单号。":
                    return m if m["status"] in ("sent", "delivered", "failed") else None
            return None

        reply = _wait(delivered)
        # Sent through the customer-service API of the fake (it issued the token and took the
        # message), not failed against api.weixin.qq.com, which this machine cannot reach.
        assert reply["status"] in ("sent", "delivered"), reply
    finally:
        server.terminate()
        server.wait(15)
        log.close()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _conversation_of(api: httpx.Client, account_id: int) -> str | None:
    items = api.get("/conversations", params={"channel_id": str(account_id)}).json()["items"]
    return str(items[0]["id"]) if items else None


@SQLITE_ONLY
def test_scrm_channels_fake_serves_the_demo_accounts_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scrm.db'}"
    env = {**os.environ, "SCRM_DATABASE_URL": url}
    view = _demo_wechat_account(env, url)

    port = _free_port()
    fake = subprocess.Popen(
        [SCRM, "channels", "fake", "wechat", "--port", str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert fake.stdout is not None
        assert (
            f"SCRM_WECHAT_API_BASE=http://127.0.0.1:{port}" in fake.stdout.readline() + fake.stdout.readline()
        )
        token_url = f"http://127.0.0.1:{port}/cgi-bin/stable_token"
        good = {"grant_type": "client_credential", "appid": appid_of(view), "secret": view.secrets["secret"]}
        issued = httpx.post(token_url, json=good).json()
        assert issued.get("access_token") and issued.get("expires_in"), issued
        refused = httpx.post(token_url, json={**good, "secret": "not-the-secret"}).json()
        assert refused.get("errcode") not in (None, 0), refused  # the fake checks the demo's AppSecret
    finally:
        fake.terminate()
        fake.wait(15)
