"""`scrm channels simulate wechat|weibo` run as a real command against a real running server
(uvicorn on a loopback port), which verifies, stores and acknowledges the push; and WeChat's
unknown message types are stored, acknowledged and logged."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from scrm.app import create_app
from scrm.channels.wechat import simulate as wechat_sim
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.config import Settings
from scrm.db import Database
from scrm.models import InboundEvent
from scrm.workspace import service
from tests.channels.helpers import AES_KEY, APPID, ORIGINAL_ID, TOKEN, fixture_text
from tests.channels.live import serve
from tests.conftest import Workspace
from tests.helpers import run_jobs

SCRM = Path(sys.executable).parent / "scrm"


def scrm(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCRM_DATABASE_URL": settings.database_url}
    return subprocess.run([str(SCRM), *args], env=env, capture_output=True, text=True, timeout=60)


def events(db: Database) -> list[InboundEvent]:
    with db.transaction(readonly=True) as s:
        return list(s.execute(select(InboundEvent).order_by(InboundEvent.received_at)).scalars())


@pytest.fixture
def accounts(db: Database, settings: Settings, workspace: Workspace) -> dict[str, int]:
    with db.transaction() as s:
        wechat = service.create_channel_account(
            s, workspace.id, "wechat", "公众号", external_id=APPID,
            config={"original_id": ORIGINAL_ID, "require_encryption": True},
            secrets={"token": TOKEN, "secret": "wechat-app-secret-0001", "encoding_aes_key": AES_KEY},
        )  # fmt: skip
        weibo = service.create_channel_account(
            s, workspace.id, "weibo", "官方微博", external_id="1902538057",
            secrets={"app_secret": "xyz123xyz", "access_token": "weibo-access-token-0001"},
        )  # fmt: skip
        return {"wechat": wechat.id, "weibo": weibo.id}


def test_simulate_posts_signed_pushes_that_a_running_server_stores(
    db: Database, settings: Settings, accounts: dict[str, int]
) -> None:
    with serve(db, settings) as url:
        wechat = scrm(settings, "channels", "simulate", "wechat", "--account", str(accounts["wechat"]),
                      "--text", "我的行李丢了", "--fan", "oSimFan0000000000000000000001", "--url", url)  # fmt: skip
        assert wechat.returncode == 0, wechat.stderr
        assert "HTTP 200" in wechat.stdout and "success" in wechat.stdout
        weibo = scrm(settings, "channels", "simulate", "weibo", "--account", str(accounts["weibo"]),
                     "--text", "航班延误了", "--url", url)  # fmt: skip
        assert weibo.returncode == 0, weibo.stderr
        assert "HTTP 200" in weibo.stdout
        follow = scrm(settings, "channels", "simulate", "weibo", "--account", str(accounts["weibo"]),
                      "--event", "follow", "--fan", "2489518278", "--url", url)  # fmt: skip
        assert follow.returncode == 0, follow.stderr
        # A wrong account id is a clear message, not a traceback.
        missing = scrm(
            settings, "channels", "simulate", "wechat", "--account", "42", "--text", "x", "--url", url
        )
        assert missing.returncode != 0 and "Traceback" not in missing.stderr + missing.stdout
        assert "unknown channel" in missing.stderr + missing.stdout
    stored = events(db)
    assert [(e.channel_account_id, e.kind, e.event["text"]) for e in stored] == [
        (accounts["wechat"], "message", "我的行李丢了"),
        (accounts["weibo"], "message", "航班延误了"),
        (accounts["weibo"], "subscribe", ""),
    ]
    assert stored[0].event["sender"]["external_id"] == "oSimFan0000000000000000000001"
    assert "<Encrypt>" not in stored[0].raw and "我的行李丢了" in stored[0].raw  # the decrypted plaintext


def test_unknown_wechat_type_is_stored_acknowledged_and_logged(
    db: Database, settings: Settings, accounts: dict[str, int], caplog: pytest.LogCaptureFixture
) -> None:
    config = WechatAccountConfig(appid=APPID, token=TOKEN, encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID)
    xml = fixture_text("wechat", "msg__unknown_type.xml").decode()  # addressed to ORIGINAL_ID
    query, body = wechat_sim.build_push(config, xml, encrypt=True)
    client = TestClient(create_app(settings, db))
    response = client.post(f"/hooks/wechat/{accounts['wechat']}", params=query, content=body)
    assert response.status_code == 200 and response.text == "success"
    [event] = events(db)
    assert event.kind == "unknown" and event.event["msg_type"] == "miniprogrampage"
    with caplog.at_level(logging.INFO, logger="scrm.pipeline"):
        run_jobs(db, settings)
    logged = [r.getMessage() for r in caplog.records if r.name == "scrm.pipeline"]
    assert f"unknown wechat event {event.external_id} stored and acknowledged" in logged
    assert events(db)[0].status == "processed"
