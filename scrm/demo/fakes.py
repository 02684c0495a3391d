"""The fake WeChat and Weibo APIs that the demo talks to instead of the real platforms.

`make run` (``scrm serve --demo-fakes``) starts both on 127.0.0.1 before the server and points
``SCRM_WECHAT_API_BASE`` / ``SCRM_WEIBO_API_BASE`` at them, so an agent's reply to a demo fan is
really sent (to the fake, in the platform's wire format) and recorded as delivered, and the Weibo
poller reads the fake's @mentions. ``scrm channels fake wechat|weibo`` runs one of them alone.

The fakes learn the accounts that exist when they start (WeChat: appid → AppSecret for the
token endpoint; Weibo: the access tokens); an account connected later needs a restart.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass, field
from typing import Any

from scrm.db import Database
from scrm.workspace import service

WECHAT_PORT = 9101
WEIBO_PORT = 9102
ENV = {"wechat": "SCRM_WECHAT_API_BASE", "weibo": "SCRM_WEIBO_API_BASE"}


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def start_fake(db: Database, kind: str, port: int = 0) -> Any:
    """Start the fake API for `kind` ("wechat" or "weibo") serving every account of that kind in
    the database; `port` 0 takes the usual demo port, or any free one if that is taken."""
    if kind not in ENV:
        raise ValueError(f"no fake for {kind!r}: wechat or weibo")
    accounts = []
    with db.transaction(readonly=True) as session:
        for ws in service.list_workspaces(session):
            accounts += [service.account_view(a) for a in service.list_channel_accounts(session, ws.id, kind)]
    if not port:
        usual = WECHAT_PORT if kind == "wechat" else WEIBO_PORT
        port = usual if _port_free(usual) else 0
    if kind == "wechat":
        from scrm.channels.wechat.fake import FakeWechatServer
        from scrm.channels.wechat.spec import appid_of

        apps = {appid_of(a): a.secrets.get("secret", "") for a in accounts}
        return FakeWechatServer(port=port, apps=apps).start()
    from scrm.channels.weibo.fake import FakeWeiboServer

    tokens = {a.secrets.get("access_token", "") for a in accounts} - {""}
    return FakeWeiboServer(port=port, access_tokens=tokens, strict=False).start()


@dataclass
class DemoFakes:
    servers: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """The settings that send the product's API calls to these fakes."""
        return {ENV[kind]: server.base_url for kind, server in self.servers.items()}

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_demo_fakes(db: Database) -> DemoFakes:
    fakes = DemoFakes()
    try:
        for kind in ENV:
            fakes.servers[kind] = start_fake(db, kind)
    except Exception:
        fakes.stop()
        raise
    return fakes
