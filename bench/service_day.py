"""A simulated service day for the demo airline through the real pipeline.

    .venv/bin/python bench/service_day.py [--messages 8000] [--seed 1]

Fan messages (realistic daily curve, one crisis hour at 5x volume) go through the real
inbound path (store → job → contact → conversation → triage → rules → assignment → SLA),
9 agents answer through the conversation service taking 60-180 s per reply, departments
record outcomes within hours, outcomes go back through the outbox to a local callback server.
The clock is simulated: `scrm.kit.time.utcnow` follows the simulation, so due-time jobs (SLA
checks) fire when simulated time passes them.

Reports first responses within 10 minutes (business time; hours 08:00-24:00), outside and in
the crisis hour; unanswered at end of day; routed to the right team; outcomes delivered.
Writes docs/service_day_queue.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")
os.environ["SCRM_INPROCESS_WORKER"] = "false"

import scrm.kit.time as kit_time  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
DAY = dt.datetime(2026, 11, 24, tzinfo=SH)  # a Tuesday, no holiday
CRISIS_HOUR = 20
# share of the day's traffic per hour (Weibo/WeChat service traffic: low at night, peaks 10-12, 20-22)
CURVE = [
    0.8,
    0.5,
    0.3,
    0.2,
    0.2,
    0.3,
    0.8,
    2.0,
    4.5,
    6.0,
    6.8,
    6.5,
    5.5,
    5.5,
    6.0,
    6.0,
    5.5,
    5.0,
    5.0,
    5.5,
    6.5,
    6.5,
    5.0,
    2.6,
]
HOURS = {
    d: [["08:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "holiday", "workday")
}

CATEGORIES = [  # (name, share of new conversations, ground-truth team, texts)
    (
        "lost",
        0.10,
        "lost_found",
        [
            "昨天 {f} 上海飞成都，黑色双肩包落在 {s} 座位上了，急！",
            "我的手机忘在 {f} 航班上了",
            "行李箱丢了，{f} 到达后一直没找到",
            "钱包遗失在飞机上，{f}，座位 {s}",
        ],
    ),
    (
        "after_sales",
        0.14,
        "after_sales",
        [
            "我要退款，订单 DD2026112{n}",
            "发票什么时候开？订单 DD2026112{n}",
            "退票手续费太高了，订单 DD2026112{n}",
            "改签后差价怎么退款",
        ],
    ),
    (
        "general",
        0.64,
        "service",
        [
            "请问 {f} 几点登机？",
            "托运行李额度是多少",
            "儿童票怎么买",
            "会员积分什么时候到账",
            "航班延误了怎么办",
            "可以带宠物吗",
            "值机柜台几点关闭",
            "{f} 有餐食吗",
        ],
    ),
    ("spam", 0.05, None, ["加微信领红包 v信 888 代开发票", "兼职刷单日赚五百 加v信"]),
    ("emoji", 0.07, "service", ["/::<", "/::(", "/:,@("]),
]
RULES = [
    {
        "name": "spam",
        "position": 1,
        "stop": True,
        "conditions": {
            "any": [
                {"field": "text", "op": "contains_any", "value": ["刷单", "加微信领", "代开发票", "加v信"]},
                {"field": "is_spam", "op": "is", "value": True},
            ]
        },
        "actions": [{"type": "close_spam"}],
    },
    {
        "name": "emoji → song",
        "position": 2,
        "stop": True,
        "conditions": {"all": [{"field": "text", "op": "contains_any", "value": ["/::<", "/::(", "/:,@("]}]},
        "actions": [
            {
                "type": "reply",
                "text": "送你一首歌：《晴天》",
                "msg_type": "music",
                "payload": {"title": "晴天"},
            },
            {"type": "route", "team": "service"},
            {"type": "label", "labels": ["心情"]},
        ],
    },
    {
        "name": "lost → 失物招领",
        "position": 10,
        "stop": True,
        "conditions": {
            "any": [
                {"field": "text", "op": "contains_any", "value": ["落在", "丢了", "遗失", "忘在", "没找到"]}
            ]
        },
        "actions": [{"type": "route", "team": "lost_found"}, {"type": "label", "labels": ["失物"]}],
    },
    {
        "name": "after-sales",
        "position": 20,
        "stop": True,
        "conditions": {
            "any": [{"field": "text", "op": "contains_any", "value": ["退款", "发票", "退票", "差价"]}]
        },
        "actions": [{"type": "route", "team": "after_sales"}],
    },
    {
        "name": "front desk",
        "position": 100,
        "conditions": {"none": [{"field": "team", "op": "present"}]},
        "actions": [{"type": "route", "team": "service"}],
    },
]


class Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        return self.t


def install_clock(clock: Clock) -> None:
    """Every `utcnow` reference (module imports, column defaults) now reads the simulated clock."""
    kit_time._SIM_CLOCK = clock  # type: ignore[attr-defined]

    def simulated() -> dt.datetime:
        return _SIM_CLOCK.now()  # type: ignore[name-defined]  # noqa: F821

    kit_time.utcnow.__code__ = simulated.__code__


@dataclass
class Fan:
    uid: str
    category: str
    truth: str | None
    first_at: dt.datetime
    texts: list[tuple[dt.datetime, str]] = field(default_factory=list)


def plan(n_messages: int, rnd: random.Random) -> list[Fan]:
    """Fans with 1-4 messages each (follow-ups minutes apart); hour weights from CURVE."""
    weights = [w * (5 if h == CRISIS_HOUR else 1) for h, w in enumerate(CURVE)]
    total_w = sum(weights)
    fans: list[Fan] = []
    count = 0
    i = 0
    while count < n_messages:
        hour = rnd.choices(range(24), weights)[0]
        start = DAY + dt.timedelta(hours=hour, seconds=rnd.uniform(0, 3600))
        cat = rnd.choices(CATEGORIES, [c[1] for c in CATEGORIES])[0]
        if hour == CRISIS_HOUR and rnd.random() < 0.8:
            cat = CATEGORIES[2]  # the crisis: a wave of delay questions
        f = f"MU{5100 + rnd.randint(0, 80)}"
        fan = Fan(f"fan{i}", cat[0], cat[2], start)
        n = 1 if cat[0] in ("spam", "emoji") else rnd.choice([1, 1, 2, 2, 3, 4])
        at = start
        for _ in range(n):
            text = rnd.choice(cat[3]).format(
                f=f, s=f"{rnd.randint(1, 40)}{rnd.choice('ABCDEF')}", n=rnd.randint(100, 999)
            )
            fan.texts.append((at, text))
            at += dt.timedelta(seconds=rnd.uniform(20, 240))
        fans.append(fan)
        count += n
        i += 1
    del total_w
    return fans


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tick", type=float, default=30.0, help="simulated seconds per step")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    clock = Clock(DAY)
    install_clock(clock)

    from sqlalchemy import func, select

    from scrm import jobs, migrate
    from scrm.automation import service as rules
    from scrm.casework import service as casework
    from scrm.channels.base import InboundEvent, Sender
    from scrm.config import get_settings
    from scrm.conversation import service as conv_service
    from scrm.db import Database
    from scrm.inbound import service as inbound
    from scrm.models import CaseTask, Conversation, Member, OutboxMessage, SlaTimer, Team
    from scrm.sla import service as sla
    from scrm.worker.runner import Worker
    from scrm.worker.service import enqueue
    from scrm.workspace import service as ws_service
    from scrm.workspace.schemas import Principal
    from tests.helpers import Recorder

    tmp = tempfile.mkdtemp()
    os.environ["SCRM_DATABASE_URL"] = f"sqlite:///{tmp}/day.db"
    get_settings.cache_clear()
    settings = get_settings()
    db = Database(settings.database_url)
    migrate.upgrade(db)
    jobs.load()
    recorder = Recorder()
    wall = time.perf_counter()
    with recorder.running():
        with db.transaction() as s:
            w = ws_service.create_workspace(s, "yuncheng-day", "云程航空")
            teams = {
                k: ws_service.create_team(s, w.id, k, n, kind)
                for k, n, kind in [
                    ("service", "客服", "service"),
                    ("lost_found", "失物招领", "department"),
                    ("after_sales", "售后", "department"),
                ]
            }
            account = ws_service.create_channel_account(
                s, w.id, "webhook", "App", secrets={"secret": "x" * 24}, config={"callback_url": recorder.url}
            )
            agents: list[Principal] = []
            for i in range(9):
                u = ws_service.create_user(s, f"agent{i}@day.test", "password123", f"客服{i}")
                m = ws_service.add_member(s, w.id, u, "agent", capacity=6)
                m.availability = "offline"
                ws_service.add_to_team(s, w.id, teams["service"].id, m.id)
                agents.append(Principal(w.id, m.id, u.id, "agent", f"客服{i}"))
            sla.set_calendar(s, w.id, None, timezone="Asia/Shanghai", hours=HOURS, cn_holidays=True)
            for r in RULES:
                rules.save_rule(s, w.id, {"event": "message.received", **r})
            ws_id, account_id = w.id, account.id
            team_keys = {t.id: k for k, t in teams.items()}
        fans = plan(args.messages, rnd)
        inbound_events = sorted(
            ((at, fan, j, text) for fan in fans for j, (at, text) in enumerate(fan.texts)), key=lambda e: e[0]
        )
        # agents: on duty 08:00-24:00 each with a 30-minute break at a random time
        breaks = {a.member_id: DAY + dt.timedelta(hours=rnd.uniform(10, 21)) for a in agents}
        busy: dict[int, tuple[dt.datetime, int] | None] = {a.member_id: None for a in agents}
        replied_at: dict[int, dt.datetime] = {}
        outcome_due: dict[int, dt.datetime] = {}
        worker = Worker(db, settings, batch_size=200)
        end = DAY + dt.timedelta(hours=24)
        idx = 0
        series: list[tuple[float, int, int]] = []  # hour, waiting conversations, unassigned
        step = dt.timedelta(seconds=args.tick)
        while clock.t < end.astimezone(dt.UTC):
            now = clock.t
            local = now.astimezone(SH)
            # fans write
            batch = []
            while idx < len(inbound_events) and inbound_events[idx][0] <= now:
                at, fan, j, text = inbound_events[idx]
                batch.append(
                    InboundEvent(
                        f"{fan.uid}-{j}",
                        "message",
                        Sender(fan.uid, name=fan.uid, namespace=f"webhook:{account_id}"),
                        at.astimezone(dt.UTC),
                        text=text,
                    )
                )
                idx += 1
            if batch:
                with db.transaction() as s:
                    inbound.accept(
                        s,
                        workspace_id=ws_id,
                        channel_account_id=account_id,
                        channel_kind="webhook",
                        events=batch,
                        raw="{}",
                    )
            # agents come, go on break, come back
            with db.transaction() as s:
                from scrm.conversation import assignment

                for a in agents:
                    on_duty = 8 <= local.hour < 24
                    on_break = breaks[a.member_id] <= local < breaks[a.member_id] + dt.timedelta(minutes=30)
                    want = "online" if on_duty and not on_break else "away"
                    member = s.get(Member, (ws_id, a.member_id))
                    if member is not None and member.availability != want:
                        assignment.set_availability(s, ws_id, a.member_id, want)
                if int(now.timestamp()) % 60 < args.tick:
                    enqueue(
                        s,
                        ws_id,
                        "assignment.rebalance",
                        {},
                        idempotency_key=f"rebalance:{int(now.timestamp()) // 60}",
                    )
            worker.run_until_idle(600)
            # agents finish replies and pick the next conversation
            with db.transaction() as s:
                for a in agents:
                    job = busy[a.member_id]
                    if job is not None and job[0] <= now:
                        conv = s.get(Conversation, (ws_id, job[1]))
                        if conv is not None and conv.status != "resolved":
                            conv_service.reply(s, a, conv.id, "您好，已为您处理，请放心。")
                            replied_at[conv.id] = now
                            dept = conv.team_id is not None and team_keys.get(conv.team_id) != "service"
                            conv_service.update(s, a, conv.id, status="pending" if dept else "resolved")
                        busy[a.member_id] = None
                    if busy[a.member_id] is None:
                        member = s.get(Member, (ws_id, a.member_id))
                        if member is None or member.availability != "online":
                            continue
                        mine = (
                            s.execute(
                                select(Conversation)
                                .where(
                                    Conversation.workspace_id == ws_id,
                                    Conversation.assignee_id == a.member_id,
                                    Conversation.status == "open",
                                )
                                .order_by(Conversation.last_inbound_at)
                            )
                            .scalars()
                            .all()
                        )
                        for conv in mine:
                            if conv.id not in replied_at or (
                                conv.last_inbound_at and conv.last_inbound_at > replied_at[conv.id]
                            ):
                                busy[a.member_id] = (
                                    now + dt.timedelta(seconds=rnd.uniform(60, 180)),
                                    conv.id,
                                )
                                break
                # departments answer within hours
                for task in s.execute(
                    select(CaseTask).where(
                        CaseTask.workspace_id == ws_id,
                        CaseTask.status == "open",
                        CaseTask.kind == "department",
                    )
                ).scalars():
                    due = outcome_due.setdefault(
                        task.id, task.created_at + dt.timedelta(hours=rnd.uniform(0.5, 4))
                    )
                    if due <= now:
                        casework.record_outcome(
                            s,
                            ws_id,
                            task.id,
                            "已处理：物品已找到/款项已退回，请留意通知。",
                            source="webhook",
                            actor_label=team_keys.get(task.team_id or 0, ""),
                        )
            worker.run_until_idle(600)
            if int(now.timestamp()) % 600 < args.tick:
                with db.transaction(readonly=True) as s:
                    waiting = s.execute(
                        select(func.count()).where(
                            Conversation.workspace_id == ws_id,
                            Conversation.status == "open",
                            Conversation.first_response_at.is_(None),
                        )
                    ).scalar_one()
                    unassigned = s.execute(
                        select(func.count()).where(
                            Conversation.workspace_id == ws_id,
                            Conversation.status == "open",
                            Conversation.assignee_id.is_(None),
                        )
                    ).scalar_one()
                series.append(
                    ((now - DAY.astimezone(dt.UTC)).total_seconds() / 3600, int(waiting), int(unassigned))
                )
                print(
                    f"{local:%H:%M} sent {idx}/{len(inbound_events)} "
                    f"waiting {waiting} unassigned {unassigned}",
                    flush=True,
                )
            clock.t = now + step
        # departments finish their last tasks overnight; the outbox delivers
        clock.t = end.astimezone(dt.UTC) + dt.timedelta(hours=8)
        with db.transaction() as s:
            for task in s.execute(
                select(CaseTask).where(
                    CaseTask.workspace_id == ws_id, CaseTask.status == "open", CaseTask.kind == "department"
                )
            ).scalars():
                casework.record_outcome(
                    s, ws_id, task.id, "已处理：物品已找到/款项已退回，请留意通知。", source="webhook"
                )
        worker.run_until_idle(600)
        with db.transaction(readonly=True) as s:
            convs = s.execute(select(Conversation).where(Conversation.workspace_id == ws_id)).scalars().all()
            timers = {
                t.conversation_id: t
                for t in s.execute(
                    select(SlaTimer).where(
                        SlaTimer.workspace_id == ws_id,
                        SlaTimer.metric == "first_response",
                        SlaTimer.cycle == 0,
                    )
                ).scalars()
            }
            tasks = (
                s.execute(
                    select(CaseTask).where(CaseTask.workspace_id == ws_id, CaseTask.kind == "department")
                )
                .scalars()
                .all()
            )
            sent_outcomes = s.execute(
                select(func.count()).where(
                    OutboxMessage.workspace_id == ws_id,
                    OutboxMessage.idempotency_key.like("outcome:%"),
                    OutboxMessage.status == "sent",
                )
            ).scalar_one()
            team_by_id = {
                t.id: t.key for t in s.execute(select(Team).where(Team.workspace_id == ws_id)).scalars()
            }
            cal = sla.calendar_for(s, ws_id, None)
    fan_by_uid = {f.uid: f for f in fans}
    human = [c for c in convs if "spam" not in (c.labels or [])]
    normal, crisis = [], []
    routed_ok = 0
    unanswered = 0
    for c in human:
        fan = fan_by_uid[c.fan_external_id]
        started = timers[c.id].started_at if c.id in timers else c.created_at
        if c.first_response_at is None:
            unanswered += 1
            ok = False
        else:
            ok = cal.between(started, c.first_response_at) <= 600
        (crisis if started.astimezone(SH).hour == CRISIS_HOUR else normal).append(ok)
        routed_ok += team_by_id.get(c.team_id or 0) == fan.truth
    n_msgs = len(inbound_events)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}; wall {time.perf_counter() - wall:.0f} s"
    )
    print(f"messages {n_msgs}, conversations {len(convs)} ({len(human)} needing a human)")
    print(
        "first response within 10 min outside the crisis hour: "
        f"{sum(normal) / max(1, len(normal)):.1%} (target >= 95%)"
    )
    print(f"first response within 10 min in the crisis hour: {sum(crisis) / max(1, len(crisis)):.1%}")
    print(f"unanswered at end of day: {unanswered / max(1, len(human)):.1%} (target 0%)")
    print(f"routed to the right team: {routed_ok / max(1, len(human)):.1%} (target >= 95%)")
    print(f"outcomes delivered: {sent_outcomes}/{len(tasks)} (target 100%)")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot([p[0] for p in series], [p[1] for p in series], label="waiting for a first response")
        ax.plot([p[0] for p in series], [p[2] for p in series], label="unassigned")
        ax.axvspan(CRISIS_HOUR, CRISIS_HOUR + 1, color="red", alpha=0.1, label="crisis hour (5x)")
        ax.set_xlabel("hour of the simulated day (Asia/Shanghai)")
        ax.set_ylabel("conversations")
        ax.set_title(f"Service day: {n_msgs} messages, 9 agents")
        ax.legend()
        fig.tight_layout()
        out = ROOT / "docs" / "service_day_queue.png"
        fig.savefig(out, dpi=110)
        print(f"figure: {out.relative_to(ROOT)}")
    except ImportError:
        print("matplotlib not installed: no figure")


if __name__ == "__main__":
    main()
