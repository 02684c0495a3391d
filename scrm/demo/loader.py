"""Loads the demo workspaces (an airline, a phone brand and a coffee chain). Idempotent: every
step is get-or-create, imports are keyed on (source, order id) and stores on their code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session

from scrm.config import get_settings
from scrm.contact import imports
from scrm.db import Database
from scrm.workspace import repository, service

DATA = Path(__file__).parent / "data"
DEMO_PASSWORD = "demo1234"  # noqa: S105  (the published demo password)
DEMO_SLUGS = ("yuncheng", "xiaomo", "xingka")


def spec() -> list[dict[str, Any]]:
    """The demo workspaces: those of the recorded day (`workspaces.json`, written by
    `generate_day.py` with their contacts, orders and traffic), then the hand-written ones
    (`workspace_<slug>.json`, e.g. the coffee brand of story 4, whose fans come in live)."""
    data: list[dict[str, Any]] = json.loads((DATA / "workspaces.json").read_text("utf-8"))
    for path in sorted(DATA.glob("workspace_*.json")):
        data.append(json.loads(path.read_text("utf-8")))
    return data


def demo_wechat_appid(slug: str) -> str:
    """The AppID of the demo workspace's (simulated) WeChat Official Account."""
    return f"wxdemo{hashlib.sha256(slug.encode()).hexdigest()[:12]}"


def demo_secret(slug: str, name: str) -> str:
    """Demo channel secrets derive from SCRM_SECRET_KEY, so a reload finds the same ones."""
    key = get_settings().secret_key.get_secret_value()
    return hashlib.sha256(f"demo:{key}:{slug}:{name}".encode()).hexdigest()[:40]


def _workspace(session: Session, ws_spec: dict[str, Any]) -> tuple[int, bool]:
    existing = repository.workspace_by_slug(session, ws_spec["slug"])
    if existing:
        return existing.id, False
    ws = service.create_workspace(
        session, ws_spec["slug"], ws_spec["name"], ws_spec.get("timezone", "Asia/Shanghai")
    )
    return ws.id, True


def _load_one(session: Session, ws_spec: dict[str, Any]) -> tuple[int, bool]:
    ws_id, created = _workspace(session, ws_spec)
    ws = service.get_workspace_by_id(session, ws_id)
    settings = dict(ws.settings)
    settings["forbidden_words"] = list(ws_spec.get("forbidden_words", []))
    settings["catalogue"] = list(ws_spec.get("catalogue", []))
    ws.settings = settings
    brand_ids = [service.create_brand(session, ws_id, b["name"]).id for b in ws_spec.get("brands", [])]
    teams = {
        t["key"]: service.create_team(session, ws_id, t["key"], t["name"], t.get("kind", "service"))
        for t in ws_spec.get("teams", [])
    }
    for m in ws_spec.get("members", []):
        user = repository.user_by_email(session, m["email"])
        if user is None:
            user = service.create_user(
                session, m["email"], m.get("password", DEMO_PASSWORD), m.get("name", "")
            )
        member = service.add_member(
            session,
            ws_id,
            user,
            m.get("role", "agent"),
            display_name=m.get("name", ""),
            capacity=int(m.get("capacity", 20)),
            skills=list(m.get("skills", [])),
            is_senior=bool(m.get("senior", False)),
        )
        for key in m.get("teams", []):
            if key in teams:
                service.add_to_team(session, ws_id, teams[key].id, member.id)
    for c in ws_spec.get("canned_replies", []):
        team = teams.get(c.get("team") or "")
        service.upsert_canned_reply(
            session, ws_id, c["key"], c["title"], c["body"], team.id if team else None
        )
    name = "演示 Webhook"
    if repository.channel_account_by_name(session, ws_id, name) is None:
        service.create_channel_account(
            session,
            ws_id,
            "webhook",
            name,
            secrets={"secret": demo_secret(ws_spec["slug"], name)},
            brand_id=brand_ids[0] if brand_ids else None,
        )
    _social_accounts(session, ws_id, ws_spec, brand_ids[0] if brand_ids else None)
    _load_rules(session, ws_id, ws_spec["slug"])
    return ws_id, created


def _load_rules(session: Session, ws_id: int, slug: str) -> None:
    """The demo's routing rules (lost items to lost-and-found, ...), upserted by name."""
    from scrm.automation import service as automation

    path = DATA / f"rules_{slug}.json"
    if not path.exists():
        return
    existing = {r.name: r.id for r in automation.list_rules(session, ws_id)}
    for rule in json.loads(path.read_text("utf-8")):
        automation.save_rule(session, ws_id, rule, rule_id=existing.get(rule["name"]))


DEMO_WECHAT_NAME = "演示 微信公众号"
DEMO_WEIBO_NAME = "演示 官方微博"


def demo_aes_key(slug: str) -> str:
    """A valid EncodingAESKey (43 characters of [A-Za-z0-9]) derived like the other secrets."""
    return hashlib.sha256(f"aes:{demo_secret(slug, DEMO_WECHAT_NAME)}".encode()).hexdigest()[:43]


def demo_weibo_uid(ws_spec: dict[str, Any]) -> str:
    """The brand uid from workspaces.json (`weibo_uid`), else a fixed fake one per workspace."""
    if ws_spec.get("weibo_uid"):
        return str(ws_spec["weibo_uid"])
    return str(1_900_000_000 + int(hashlib.sha256(ws_spec["slug"].encode()).hexdigest()[:8], 16) % 90_000_000)


def _social_accounts(session: Session, ws_id: int, ws_spec: dict[str, Any], brand_id: int | None) -> None:
    """A simulated WeChat Official Account (safe mode) and Weibo account per demo workspace."""
    slug = ws_spec["slug"]
    if repository.channel_account_by_name(session, ws_id, DEMO_WECHAT_NAME) is None:
        appid = demo_wechat_appid(slug)
        service.create_channel_account(
            session,
            ws_id,
            "wechat",
            DEMO_WECHAT_NAME,
            external_id=appid,
            config={"appid": appid, "original_id": f"gh_{appid[-12:]}"},
            secrets={
                "token": demo_secret(slug, f"{DEMO_WECHAT_NAME}:token")[:32],  # WeChat: 3-32 chars
                "secret": demo_secret(slug, f"{DEMO_WECHAT_NAME}:secret"),
                "encoding_aes_key": demo_aes_key(slug),
            },
            brand_id=brand_id,
        )
    if repository.channel_account_by_name(session, ws_id, DEMO_WEIBO_NAME) is None:
        uid = demo_weibo_uid(ws_spec)
        service.create_channel_account(
            session,
            ws_id,
            "weibo",
            DEMO_WEIBO_NAME,
            external_id=uid,
            config={"uid": uid, "app_key": f"demo{slug}"},
            secrets={
                "app_secret": demo_secret(slug, f"{DEMO_WEIBO_NAME}:app_secret"),
                "access_token": demo_secret(slug, f"{DEMO_WEIBO_NAME}:access_token"),
            },
            brand_id=brand_id,
        )


def load(db: Database, only: tuple[str, ...] = ()) -> list[str]:
    """Load every demo workspace (or the slugs in `only`); the lines say what happened."""
    from scrm.store import imports as store_imports

    lines: list[str] = []
    for ws_spec in spec():
        if only and ws_spec["slug"] not in only:
            continue
        with db.transaction() as session:
            ws_id, created = _load_one(session, ws_spec)
        slug = ws_spec["slug"]
        lines.append(f"{slug}: {'created' if created else 'already loaded, refreshed'} ({ws_spec['name']})")
        with db.transaction(readonly=True) as session:
            wechat = repository.channel_account_by_name(session, ws_id, DEMO_WECHAT_NAME)
            if wechat is not None:
                lines.append(
                    f"{slug}: WeChat account {wechat.id}"
                    f" (scrm channels simulate wechat --account {wechat.id})"
                )
        kinds: tuple[Literal["contacts", "orders", "stores"], ...] = ("contacts", "orders", "stores")
        for kind in kinds:
            path = DATA / f"{kind}_{slug}.csv"
            if not path.exists():
                continue
            if kind != "stores":
                report = imports.import_path(
                    db, ws_id, kind, path, default_wechat_appid=demo_wechat_appid(slug)
                )
            else:
                report = store_imports.import_path(db, ws_id, path)
            lines.append(
                f"{slug}: {kind} {report.rows} rows, {report.inserted} new, {report.updated} updated,"
                f" {report.rejected} rejected"
            )
            lines += [f"  line {e['line']}: {e['reason']}" for e in report.errors[:5]]
    return lines


def demo_logins(session: Session) -> list[str]:
    out: list[str] = []
    for slug in DEMO_SLUGS:
        ws = repository.workspace_by_slug(session, slug)
        if ws is None:
            continue
        for m in repository.members(session, ws.id):
            if m.role in ("admin", "supervisor") or m.display_name.endswith("1"):
                user = repository.user_by_id(session, m.user_id)
                if user:
                    out.append(f"{ws.name}: {user.email} ({m.role})")
    return out[:12]
