"""Rule evaluation and assignment decision speed.

    .venv/bin/python bench/rules.py

Targets: >= 20,000 messages/s with 200 rules on one core; assignment decision p99 <= 5 ms
with 100 agents (SQLite file database, real assignment code, one transaction per decision;
see bench/assignment.py, which also runs it on PostgreSQL).
"""

from __future__ import annotations

import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

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


def bench_assignment(n_agents: int = 100, decisions: int = 2000) -> dict[str, Any]:
    """The assignment micro-benchmark of bench/assignment.py on a SQLite file database (run that
    script for PostgreSQL and the options)."""
    from bench.assignment import run

    tmp = tempfile.mkdtemp()
    return run(f"sqlite:///{tmp}/bench.db", agents=n_agents, open_convs=3000, decisions=decisions, fans=2000)


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
        f"assignment: {a['agents']} agents ({a['online']} online), {a['open_before']} open conversations, "
        f"{a['decisions']} decisions: decision before commit p50 {a['decide_p50']:.2f} ms "
        f"p99 {a['decide_p99']:.2f} ms; with commit p50 {a['wall_p50']:.2f} ms p99 {a['wall_p99']:.2f} ms; "
        f"CPU per decision p50 {a['cpu_p50']:.2f} ms p99 {a['cpu_p99']:.2f} ms; "
        f"{a['statements_mean']:.1f} SQL statements per decision (target p99 <= 5 ms)"
    )
