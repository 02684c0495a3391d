"""Fixtures for the WeChat tools (QR codes, menu, tags): the real app and database, two
workspaces, a WeChat account in each, and the fake WeChat API on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner, Result

from scrm.app import create_app
from scrm.channels.wechat.fake import FakeWechatServer
from scrm.cli import app as cli_app
from scrm.config import Settings
from scrm.db import Database
from scrm.models import AuditLog
from scrm.workspace import service
from tests.conftest import Workspace

APPID = "wx_tools_app_0001"
SECRET = "tools-app-secret-0001"
OTHER_APPID = "wx_tools_other_002"


@dataclass
class Tools:
    fake: FakeWechatServer
    http: TestClient
    workspace: Workspace
    account_id: int
    other_account_id: int  # a WeChat account of another workspace
    weibo_account_id: int  # same workspace, not WeChat
    db: Database

    @property
    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.workspace.admin_token}"}

    @property
    def agent(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.workspace.agent_token}"}

    def url(self, path: str, account_id: int | None = None) -> str:
        return f"/api/v1/channels/{account_id or self.account_id}/wechat{path}"

    def cli(self, *args: str, account_id: int | None = None, workspace: str | None = None) -> Result:
        return CliRunner().invoke(
            cli_app,
            [
                *args,
                "--workspace",
                workspace or self.workspace.slug,
                "--account",
                str(account_id or self.account_id),
            ],
        )

    def audit_actions(self) -> list[str]:
        with self.db.transaction(readonly=True) as s:
            rows = s.execute(select(AuditLog).where(AuditLog.action.like("wechat.%")).order_by(AuditLog.id))
            return [r.action for r in rows.scalars()]


def _wechat(db: Database, ws_id: int, appid: str, secret: str) -> int:
    with db.transaction() as s:
        return service.create_channel_account(
            s,
            ws_id,
            "wechat",
            f"公众号 {appid}",
            external_id=appid,
            secrets={"token": "tok123", "secret": secret},
        ).id


@pytest.fixture
def tools(
    db: Database, settings: Settings, workspace: Workspace, other_workspace: Workspace
) -> Iterator[Tools]:
    with FakeWechatServer(appid=APPID, secret=SECRET, apps={OTHER_APPID: SECRET}) as fake:
        settings.wechat_api_base = fake.base_url
        account_id = _wechat(db, workspace.id, APPID, SECRET)
        other = _wechat(db, other_workspace.id, OTHER_APPID, SECRET)
        with db.transaction() as s:
            weibo = service.create_channel_account(
                s,
                workspace.id,
                "weibo",
                "微博",
                external_id="1902538057",
                secrets={"app_secret": "x" * 16, "access_token": "t" * 16},
            ).id
        yield Tools(fake, TestClient(create_app(settings, db)), workspace, account_id, other, weibo, db)


def json_of(result: Result) -> Any:
    import json

    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_cli_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, result.output
