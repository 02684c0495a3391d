"""Rule evaluation and assignment decision speed.

    .venv/bin/python bench/rules.py

Targets: >= 20,000 messages/s with 200 rules on one core; assignment decision p99 <= 5 ms
with 100 agents (SQLite file database, real assignment code, one transaction per decision).
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")

from scrm.automation.engine import RuleSet, RuleSpec, Subject

WORDS = [
    "延误",
    "取消",
    "退票",
    "改签",
    "行李",
    "丢了",
    "落在",
    "投诉",
    "积分",
    "会员",
    "值机",
    "座位",
    "餐食",
    "发票",
    "退款",
    "贵宾厅",
    "升舱",
    "儿童",
    "宠物",
    "托运",
    "超重",
    "安检",
    "登机口",
    "航班",
    "机票",
    "优惠券",
]
SAMPLES = [
    "@云程航空 昨天 MU5137 上海飞成都，黑色双肩包落在 32C 座位上了，急！",
    "航班延误三个小时了也没人管，我要投诉",
    "请问儿童票怎么买？",
    "/::< 今天心情不好",
    "会员积分什么时候到账",
    "谢谢机组，服务很好",
    "托运行李超重怎么收费",
    "我要开发票",
]


def make_rules(n: int, rnd: random.Random) -> list[RuleSpec]:
    rules = []
    for i in range(n):
        # a realistic set: most rules have their own phrases, a few share the common words
        kws = [f"{WORDS[i % 26]}{WORDS[(i * 7 + 3) % 26]}", f"{WORDS[(i * 5) % 26]}了{i}", f"词{i}"]
        if i < len(WORDS):
            kws.append(WORDS[i])
        conds: dict = {"all": [{"field": "text", "op": "contains_any", "value": kws}]}
        if i % 3 == 0:
            conds["all"].append({"field": "channel", "op": "in", "value": ["weibo", "wechat"]})
        if i % 5 == 0:
            conds["none"] = [{"field": "contact.vip", "op": "is", "value": True}]
        if i % 7 == 0:
            conds["all"].append({"field": "text_length", "op": "lt", "value": 200})
        if i % 20 == 0:  # a few rules with no keyword at all
            conds = {
                "all": [
                    {"field": "sentiment", "op": "eq", "value": "neg"},
                    {"field": "contact.followers", "op": "gte", "value": 10000},
                ]
            }
        rules.append(
            RuleSpec(
                i + 1,
                f"r{i}",
                "message.received",
                i,
                i % 50 == 49,
                conds,
                [{"type": "label", "labels": [f"l{i}"]}],
            )
        )
    return rules


def bench_rules(n_rules: int = 200, n_messages: int = 200_000) -> dict[str, float]:
    rnd = random.Random(7)
    rs = RuleSet(make_rules(n_rules, rnd))
    subjects = [
        Subject(
            "message.received",
            rnd.choice(SAMPLES),
            {
                "channel": rnd.choice(["weibo", "wechat", "webhook"]),
                "sentiment": rnd.choice(["neg", "pos", None]),
                "contact.vip": rnd.random() < 0.1,
                "contact.followers": rnd.randint(0, 50000),
            },
        )
        for _ in range(1000)
    ]
    fired = 0
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n_messages):
        fired += len(rs.evaluate(subjects[i % 1000]))
    elapsed, cpu_used = time.perf_counter() - start, time.process_time() - cpu
    return {
        "rules": n_rules,
        "keywords": rs.keyword_count,
        "messages": n_messages,
        "per_second": n_messages / elapsed,
        "per_cpu_second": n_messages / cpu_used,
        "avg_fired": fired / n_messages,
    }


def bench_assignment(n_agents: int = 100, decisions: int = 2000) -> dict[str, float]:
    from sqlalchemy import select

    from scrm import jobs, migrate
    from scrm.conversation import assignment
    from scrm.db import Database
    from scrm.models import Contact, Conversation, Member
    from scrm.workspace import service as ws

    jobs.load()
    tmp = tempfile.mkdtemp()
    db = Database(f"sqlite:///{tmp}/bench.db")
    migrate.upgrade(db)
    rnd = random.Random(3)
    with db.transaction() as s:
        w = ws.create_workspace(s, "bench", "bench")
        team = ws.create_team(s, w.id, "service", "客服")
        account = ws.create_channel_account(s, w.id, "webhook", "App", secrets={"secret": "x" * 20})
        for i in range(n_agents):
            u = ws.create_user(s, f"a{i}@bench.test", "password123", f"a{i}")
            m = ws.add_member(s, w.id, u, "agent", capacity=decisions, is_senior=i % 10 == 0)
            m.availability = "online" if i % 7 else "away"
            ws.add_to_team(s, w.id, team.id, m.id)
        contacts = []
        for i in range(500):
            c = Contact(
                workspace_id=w.id, name=f"fan{i}", attributes={"tier": "gold"} if i % 20 == 0 else {}, tags=[]
            )
            s.add(c)
            contacts.append(c)
        s.flush()
        conv_ids = []
        for i in range(decisions):
            conv = Conversation(
                workspace_id=w.id,
                contact_id=rnd.choice(contacts).id,
                channel_account_id=account.id,
                thread_key=f"t{i}",
                fan_external_id="x",
                status="open",
                labels=[],
                team_id=team.id,
            )
            s.add(conv)
            s.flush()
            conv_ids.append(conv.id)
        ws_id = w.id
    times, decide, cpu = [], [], []
    for cid in conv_ids:
        t0, c0 = time.perf_counter(), time.process_time()
        with db.transaction() as s:
            conv = s.get(Conversation, (ws_id, cid))
            assert conv is not None
            assignment.assign(s, conv)
            s.flush()
            decide.append((time.perf_counter() - t0) * 1000)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    with db.transaction(readonly=True) as s:
        online = len(s.execute(select(Member).where(Member.availability == "online")).scalars().all())

    def p99(xs: list[float]) -> float:
        return sorted(xs)[int(len(xs) * 0.99) - 1]

    return {
        "agents": n_agents,
        "online": online,
        "decisions": decisions,
        "p50_ms": statistics.median(times),
        "p99_ms": p99(times),
        "max_ms": max(times),
        "decide_p50_ms": statistics.median(decide),
        "decide_p99_ms": p99(decide),
        "cpu_p50_ms": statistics.median(cpu),
        "cpu_p99_ms": p99(cpu),
    }


if __name__ == "__main__":
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}"
    )
    r = bench_rules()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(
        f"rules: {r['rules']} rules, {r['keywords']} keywords: {r['per_second']:,.0f} messages/s wall, "
        f"{r['per_cpu_second']:,.0f} per CPU-second "
        f"(avg {r['avg_fired']:.2f} rules fired) target >= 20,000"
    )
    a = bench_assignment()
    print(
        f"assignment: {a['agents']} agents ({a['online']} online), {a['decisions']} decisions: "
        f"with commit p50 {a['p50_ms']:.2f} ms p99 {a['p99_ms']:.2f} ms; decision before commit "
        f"p50 {a['decide_p50_ms']:.2f} ms p99 {a['decide_p99_ms']:.2f} ms; CPU per decision "
        f"p50 {a['cpu_p50_ms']:.2f} ms p99 {a['cpu_p99_ms']:.2f} ms (target p99 <= 5 ms)"
    )
