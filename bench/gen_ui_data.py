"""Generate a workspace with many conversations for the UI benchmark (bench/ui.py).

    .venv/bin/python bench/gen_ui_data.py --conversations 20000 --db /tmp/scrm-ui-bench.db
    .venv/bin/python bench/gen_ui_data.py --conversations 100000 --messages-per 10 \
        --database-url postgresql+psycopg://USER@HOST:PORT/DB      # an empty PostgreSQL database

Deterministic (random.Random(7)). Rows are inserted with the ORM in bulk: pushing 20,000
conversations through the pipeline would benchmark the pipeline, not the pages.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")

from scrm import migrate
from scrm.db import Database
from scrm.kit.ids import new_id
from scrm.models import Contact, Conversation, Message
from scrm.workspace import service as ws_service

TEXTS = [
    "@云程航空 昨天 {flight} 上海飞成都，黑色双肩包落在 {seat} 座位上了，急！",
    "{flight} 延误三个小时了也没人管，我要投诉",
    "请问儿童票怎么买？",
    "积分什么时候到账？会员号 YCM{n}",
    "订单 YC{n} 申请退款一周了还没到",
    "空姐服务很好，点赞！",
    "想改签 {flight} 到明天，怎么操作",
    "托运行李超重怎么收费",
]
INTENTS = ["lost_item", "complaint", "inquiry", "inquiry", "after_sales", "praise", "inquiry", "inquiry"]
SENTIMENTS = ["neg", "neg", "neutral", "neutral", "neg", "pos", "neutral", "neutral"]
NAMES = [
    "林晓雯",
    "高振宇",
    "宋嘉豪",
    "郑泽宇",
    "曾欣怡",
    "张泽宇",
    "黄可馨",
    "闫婉清",
    "苏凤",
    "黄晓雯",
    "龙斌",
    "熊婷",
]


def generate(db: Database, conversations: int, messages_per: int = 3) -> dict[str, int]:
    rnd = random.Random(7)
    with db.transaction() as s:
        ws = ws_service.create_workspace(s, "uibench", "UI 基准")
        admin = ws_service.add_member(
            s, ws.id, ws_service.create_user(s, "admin@uibench.test", "password123", "管理员"), "admin"
        )
        agents = [
            ws_service.add_member(
                s,
                ws.id,
                ws_service.create_user(s, f"agent{i}@uibench.test", "password123", f"客服{i}"),
                "agent",
            )
            for i in range(9)
        ]
        teams = [
            ws_service.create_team(s, ws.id, k, n, kind)
            for k, n, kind in [
                ("service", "客服", "service"),
                ("lost", "失物招领", "department"),
                ("after", "售后", "department"),
            ]
        ]
        for a in agents:
            ws_service.add_to_team(s, ws.id, teams[0].id, a.id)
        ws_service.add_to_team(s, ws.id, teams[1].id, admin.id)
        channel = ws_service.create_channel_account(s, ws.id, "webhook", "App", secrets={"secret": "x" * 20})
        ws_id, channel_id = ws.id, channel.id
        agent_ids, team_ids = [a.id for a in agents], [t.id for t in teams]
    now = dt.datetime.now(dt.UTC)
    batch = 2000
    for start in range(0, conversations, batch):
        with db.transaction() as s:
            rows: list[object] = []
            for i in range(start, min(conversations, start + batch)):
                k = rnd.randrange(len(TEXTS))
                contact = Contact(
                    id=new_id(),
                    workspace_id=ws_id,
                    name=rnd.choice(NAMES) + str(i),
                    phone=f"139{rnd.randrange(10**8):08d}",
                    attributes={},
                    tags=[],
                )
                at = now - dt.timedelta(minutes=i)
                status = rnd.choices(["open", "pending", "resolved"], [3, 1, 6])[0]
                conv = Conversation(
                    id=new_id(),
                    workspace_id=ws_id,
                    contact_id=contact.id,
                    channel_account_id=channel_id,
                    thread_key=str(i),
                    fan_external_id=f"fan-{i}",
                    visibility="private",
                    status=status,
                    priority=rnd.choice(["normal", "normal", "high", "urgent"]),
                    labels=[],
                    assignee_id=rnd.choice([None, *agent_ids]),
                    team_id=rnd.choice([None, *team_ids]),
                    subject="",
                    intent=INTENTS[k],
                    sentiment=SENTIMENTS[k],
                    message_count=messages_per,
                    last_message_at=at,
                    last_inbound_at=at,
                    created_at=at - dt.timedelta(minutes=30),
                    first_response_at=None
                    if status == "open"
                    else at - dt.timedelta(minutes=rnd.randrange(1, 60)),
                )
                rows += [contact, conv]
                for j in range(messages_per):
                    text = TEXTS[(k + j) % len(TEXTS)].format(
                        flight=f"MU{rnd.randrange(1000, 9999)}",
                        seat=f"{rnd.randrange(1, 40)}C",
                        n=rnd.randrange(10**8),
                    )
                    if j == 0:
                        conv.subject = text[:80]
                    rows.append(
                        Message(
                            id=new_id(),
                            workspace_id=ws_id,
                            conversation_id=conv.id,
                            direction="in" if j % 2 == 0 else "out",
                            sender_type="contact" if j % 2 == 0 else "agent",
                            kind="text",
                            text=text,
                            media=[],
                            visibility="private",
                            status="received",
                            triage={},
                            extra={},
                        )
                    )
            s.add_all(rows)
    return {"conversations": conversations, "messages": conversations * messages_per}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=20_000)
    ap.add_argument("--messages-per", type=int, default=3, help="messages per conversation")
    ap.add_argument("--db", default="/tmp/scrm-ui-bench.db", help="SQLite file (recreated)")
    ap.add_argument("--database-url", default="", help="an empty PostgreSQL database instead")
    args = ap.parse_args()
    if args.database_url:
        url = args.database_url
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
        url = f"sqlite:///{args.db}"
    db = Database(url)
    migrate.upgrade(db)
    print(generate(db, args.conversations, args.messages_per))
    if not db.is_sqlite:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


if __name__ == "__main__":
    main()
