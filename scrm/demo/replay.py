"""Replays the recorded demo day (`data/day.jsonl`) through the real inbound endpoints of a
running server, each event signed as its channel signs it."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from scrm.channels.webhook.handler import sign
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
    secret: str
    workspace: str
    channel: str


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


def plan(
    db: Database, *, workspace: str | None = None, limit: int = 0, run_id: str | None = None
) -> list[PlannedRequest]:
    """Build the signed requests. Event ids carry a run id, so a second replay is new traffic."""
    run = run_id or str(int(time.time()))
    today = dt.datetime.now(SHANGHAI).date()
    channels: dict[str, tuple[int, str]] = {}
    with db.transaction(readonly=True) as session:
        for slug in {e["workspace"] for e in _load_day(workspace, limit)}:
            ws = repository.workspace_by_slug(session, slug)
            if ws is None:
                raise NotFound(f"workspace {slug!r} is not loaded: run `scrm demo load` first")
            accounts = service.list_channel_accounts(session, ws.id, "webhook")
            if not accounts:
                raise NotFound(f"workspace {slug!r} has no webhook channel")
            channels[slug] = (accounts[0].id, service.account_secrets(accounts[0])["secret"])
    out: list[PlannedRequest] = []
    for n, item in enumerate(_load_day(workspace, limit)):
        secs = _seconds(item["at"])
        sent_at = dt.datetime.combine(today, dt.time(), SHANGHAI) + dt.timedelta(seconds=secs)
        channel_id, secret = channels[item["workspace"]]
        sender = dict(item["sender"])
        body = {
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
                path=f"/hooks/webhook/{channel_id}",
                body=json.dumps(body, ensure_ascii=False).encode(),
                secret=secret,
                workspace=item["workspace"],
                channel=item["channel"],
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
            ts = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "x-scrm-timestamp": ts,
                "x-scrm-signature": sign(req.secret, ts, req.body),
            }
            try:
                response = client.post(req.path, content=req.body, headers=headers)
                code = response.status_code
            except httpx.HTTPError:
                code = 0
            stats["sent"] += 1
            if code == 202:
                stats["accepted"] += 1
            elif code == 200:
                stats["duplicate"] += 1
            else:
                stats["failed"] += 1
            if on_sent:
                on_sent()
    return stats
