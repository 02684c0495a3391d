"""Replays the recorded demo day (`data/day.jsonl`) through the real inbound endpoints of a
running server, each event through its own channel and signed as that channel signs it:
WeChat events as encrypted safe-mode pushes to the demo Official Account, Weibo mentions and
comments as fan-service `mention` pushes to the demo Weibo account, webhook events as signed
JSON. Fans resolve to the imported contacts (openid / Weibo uid identities)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from scrm.channels.registry import AccountView
from scrm.channels.webhook.handler import sign
from scrm.channels.wechat import simulate as wechat_sim
from scrm.channels.wechat.config import WechatAccountConfig
from scrm.channels.wechat.spec import account_config as wechat_config
from scrm.channels.weibo import simulate as weibo_sim
from scrm.channels.weibo.config import WeiboAccountConfig
from scrm.channels.weibo.spec import account_config as weibo_config
from scrm.db import Database
from scrm.demo.loader import DATA
from scrm.errors import NotFound
from scrm.kit.time import SHANGHAI
from scrm.workspace import repository, service


@dataclass(frozen=True)
class PlannedRequest:
    offset_seconds: float  # seconds after midnight of the recorded day
    path: str
    body: bytes
    secret: str  # webhook only: signs at send time
    workspace: str
    channel: str
    params: dict[str, str] = field(default_factory=dict)  # WeChat / Weibo signed query
    content_type: str = "application/json"


def _load_day(workspace: str | None, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    with (DATA / "day.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            item = json.loads(line)
            if workspace and item["workspace"] != workspace:
                continue
            events.append(item)
            if limit and len(events) >= limit:
                break
    return events


def _seconds(at: str) -> int:
    h, m, s = (int(x) for x in at.split(":"))
    return h * 3600 + m * 60 + s


def _remap(original: str, run: str) -> str:
    """Weibo ids (status, comment) made unique per replay run, the same within one run."""
    digits = int(hashlib.sha256(f"{run}:{original}".encode()).hexdigest()[:12], 16)
    return str(4_000_000_000_000_000 + digits % 10**15)


def _wechat_request(
    item: dict[str, Any], n: int, run: str, sent_at: dt.datetime, account: WechatAccountConfig
) -> tuple[dict[str, str], bytes]:
    """A signed, encrypted safe-mode push, as WeChat sends it."""
    kind = item.get("kind")
    openid = str(item["sender"]["id"])
    create_time = int(sent_at.timestamp())
    to_user = account.original_id or "gh_demo"
    if kind == "subscribe":
        scene = item.get("scene")
        xml = wechat_sim.build_message_xml(
            to_user=to_user,
            from_user=openid,
            event="subscribe",
            event_key=f"qrscene_{scene}" if scene else None,
            create_time=create_time,
        )
    elif kind == "click":
        xml = wechat_sim.build_message_xml(
            to_user=to_user,
            from_user=openid,
            event="CLICK",
            event_key=str(item.get("menu_key") or ""),
            create_time=create_time,
        )
    else:
        msg_id = int(hashlib.sha256(f"{run}:{n}".encode()).hexdigest()[:15], 16)
        xml = wechat_sim.build_message_xml(
            to_user=to_user,
            from_user=openid,
            text=item.get("text", ""),
            msg_id=msg_id,
            create_time=create_time,
        )
    return wechat_sim.build_push(account, xml, encrypt=True, openid=openid)


def _weibo_request(
    item: dict[str, Any], run: str, sent_at: dt.datetime, account: WeiboAccountConfig
) -> tuple[dict[str, str], bytes]:
    """A signed fan-service push. Public mentions and comments go as `mention` events that
    name their status (and comment), so they thread, dedup and get comment replies exactly
    like items the poller imports from the Open API (docs/channels/weibo.md, "Demo")."""
    sender = str(item["sender"]["id"])
    payload = weibo_sim.build_payload(
        account, sender_id=sender, text=item.get("text", ""), created_at=sent_at
    )
    if item.get("visibility") == "public" or item.get("kind") in ("mention", "comment"):
        data: dict[str, Any] = {
            "subtype": "mention",
            "status_id": _remap(str(item.get("thread") or item["id"]), run),
        }
        if item.get("kind") == "comment":
            data["comment_id"] = _remap(str(item["id"]), run)
        payload["type"] = "event"
        payload["data"] = data
    return weibo_sim.signed_query(account), json.dumps(payload, ensure_ascii=False).encode()


def plan(
    db: Database, *, workspace: str | None = None, limit: int = 0, run_id: str | None = None
) -> list[PlannedRequest]:
    """Build the signed requests, each through its own channel: webhook events as signed JSON,
    WeChat as encrypted safe-mode pushes, Weibo as fan-service pushes. Event ids carry a run
    id, so a second replay is new traffic (WeChat follow/menu events dedup on fan + time)."""
    run = run_id or str(int(time.time()))
    today = dt.datetime.now(SHANGHAI).date()
    accounts: dict[tuple[str, str], AccountView] = {}
    with db.transaction(readonly=True) as session:
        for slug in {e["workspace"] for e in _load_day(workspace, limit)}:
            ws = repository.workspace_by_slug(session, slug)
            if ws is None:
                raise NotFound(f"workspace {slug!r} is not loaded: run `scrm demo load` first")
            for kind in ("webhook", "wechat", "weibo"):
                found = service.list_channel_accounts(session, ws.id, kind)
                if found:
                    accounts[(slug, kind)] = service.account_view(found[0])
            if (slug, "webhook") not in accounts:
                raise NotFound(f"workspace {slug!r} has no webhook channel")
    out: list[PlannedRequest] = []
    for n, item in enumerate(_load_day(workspace, limit)):
        secs = _seconds(item["at"])
        sent_at = dt.datetime.combine(today, dt.time(), SHANGHAI) + dt.timedelta(seconds=secs)
        slug, channel = item["workspace"], item["channel"]
        account = accounts.get((slug, channel))
        if channel == "wechat" and account is not None:
            params, body = _wechat_request(item, n, run, sent_at, wechat_config(account))
            out.append(
                PlannedRequest(
                    secs, f"/hooks/wechat/{account.id}", body, "", slug, channel, params, "text/xml"
                )
            )
            continue
        if channel == "weibo" and account is not None:
            params, body = _weibo_request(item, run, sent_at, weibo_config(account))
            out.append(PlannedRequest(secs, f"/hooks/weibo/{account.id}", body, "", slug, channel, params))
            continue
        hook = accounts[(slug, "webhook")]
        sender = dict(item["sender"])
        webhook_body = {
            "id": f"replay-{run}-{n}",
            "type": "message",
            "sender": {"id": f"{item['channel']}:{sender['id']}", "name": sender.get("name")},
            "text": item.get("text", ""),
            "sent_at": sent_at.isoformat(),
            "conversation_key": item.get("thread") or None,
            "metadata": {
                "channel": item["channel"],
                "kind": item.get("kind"),
                "visibility": item.get("visibility"),
            },
        }
        out.append(
            PlannedRequest(
                offset_seconds=secs,
                path=f"/hooks/webhook/{hook.id}",
                body=json.dumps(webhook_body, ensure_ascii=False).encode(),
                secret=hook.secrets["secret"],
                workspace=slug,
                channel=channel,
            )
        )
    return out


def run(
    requests: list[PlannedRequest],
    base_url: str,
    *,
    speed: float = 0,
    on_sent: Callable[[], None] | None = None,
) -> dict[str, int]:
    """POST each request; with speed > 0, keep the recorded spacing divided by `speed`."""
    stats = {"sent": 0, "accepted": 0, "duplicate": 0, "failed": 0}
    start = time.monotonic()
    first = requests[0].offset_seconds if requests else 0
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for req in requests:
            if speed > 0:
                due = start + (req.offset_seconds - first) / speed
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            headers = {"content-type": req.content_type}
            if req.secret:  # webhook: signed at send time (the timestamp must be fresh)
                ts = str(int(time.time()))
                headers.update({"x-scrm-timestamp": ts, "x-scrm-signature": sign(req.secret, ts, req.body)})
            try:
                response = client.post(req.path, params=req.params, content=req.body, headers=headers)
                code = response.status_code
            except httpx.HTTPError:
                code = 0
            stats["sent"] += 1
            if code == 202 or (code == 200 and req.params):  # WeChat/Weibo: acknowledged
                stats["accepted"] += 1
            elif code == 200:
                stats["duplicate"] += 1
            else:
                stats["failed"] += 1
            if on_sent:
                on_sent()
    return stats
