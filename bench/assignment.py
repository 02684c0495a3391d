"""Assignment decision speed and SQL round trips, on SQLite and PostgreSQL.

    .venv/bin/python bench/assignment.py                       # SQLite file database
    .venv/bin/python bench/assignment.py --postgres            # a throwaway PostgreSQL cluster
    .venv/bin/python bench/assignment.py --database-url postgresql+psycopg://...   # an empty database

One team of 100 agents (every 7th away, every 10th senior), 2,000 fans of whom 5% VIP, a few
thousand conversations already open and spread over the agents (so the load count has real
rows to count), then `--decisions` new unassigned conversations, each assigned in its own
transaction through the real code (`scrm.conversation.assignment.assign`). The conversation
and its contact are loaded in the same transaction before the clock starts and the contact is
passed in, as the pipeline's assignment step does; `--without-contact` leaves it to
`assign` (the rebalance and reassignment paths).

Reported: wall time of the decision (assign + flush, before commit) and including the
commit; CPU time; SQL statements per decision (everything the decision sends: reads, lock,
update, timeline row, event jobs). Target: p99 <= 5 ms with 100 agents.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def setup(db: Any, *, agents: int, open_convs: int, decisions: int, fans: int) -> tuple[int, list[int]]:
    """The workspace, team and agents through the services; bulk rows through Core inserts."""
    from sqlalchemy import insert

    from scrm.kit.ids import new_id
    from scrm.kit.time import utcnow
    from scrm.models import Contact, Conversation
    from scrm.workspace import service as ws

    rnd = random.Random(3)
    with db.transaction() as s:
        w = ws.create_workspace(s, "bench", "bench")
        team = ws.create_team(s, w.id, "service", "客服")
        account = ws.create_channel_account(s, w.id, "webhook", "App", secrets={"secret": "x" * 20})
        members = []
        for i in range(agents):
            u = ws.create_user(s, f"a{i}@bench.test", "password123", f"a{i}")
            # room for the existing load plus every decision, so no decision runs out of agents
            m = ws.add_member(s, w.id, u, "agent", capacity=10_000, is_senior=i % 10 == 0)
            m.availability = "online" if i % 7 else "away"
            ws.add_to_team(s, w.id, team.id, m.id)
            members.append(m.id)
        now = utcnow()
        contacts = [
            {
                "workspace_id": w.id,
                "id": new_id(),
                "name": f"fan{i}",
                "attributes": {"tier": "gold"} if i % 20 == 0 else {},
                "tags": [],
                "created_at": now,
                "updated_at": now,
            }
            for i in range(fans)
        ]
        s.execute(insert(Contact), contacts)

        def conv(i: int, assignee: int | None, status: str) -> dict[str, Any]:
            t = now - dt.timedelta(seconds=open_convs + decisions - i)
            return {
                "workspace_id": w.id,
                "id": new_id(),
                "contact_id": rnd.choice(contacts)["id"],
                "channel_account_id": account.id,
                "thread_key": f"t{i}",
                "fan_external_id": "x",
                "status": status,
                "labels": [],
                "team_id": team.id,
                "assignee_id": assignee,
                "last_message_at": t,
                "last_inbound_at": t,
                "created_at": t,
                "updated_at": t,
            }

        # existing work: open, and as many again resolved (history the sticky look-up reads)
        existing = [conv(i, rnd.choice(members), "open") for i in range(open_convs)]
        existing += [conv(i, rnd.choice(members), "resolved") for i in range(open_convs)]
        s.execute(insert(Conversation), existing)
        new = [conv(open_convs + i, None, "open") for i in range(decisions)]
        s.execute(insert(Conversation), new)
        return w.id, [int(c["id"]) for c in new]


def run(
    url: str, *, agents: int, open_convs: int, decisions: int, fans: int, with_contact: bool = True
) -> dict[str, Any]:
    from sqlalchemy import event, func, select

    from scrm import jobs, migrate
    from scrm.conversation import assignment
    from scrm.db import Database
    from scrm.models import Contact, Conversation, Member

    jobs.load()
    db = Database(url)
    migrate.upgrade(db)
    ws_id, conv_ids = setup(db, agents=agents, open_convs=open_convs, decisions=decisions, fans=fans)
    with db.engine.connect() as conn:  # planner statistics, as a live database has them
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    statements = [0]

    @event.listens_for(db.engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        statements[0] += 1

    wall, decide, cpu, decide_cpu, per_decision = [], [], [], [], []
    outcomes = {"assigned": 0, "queued": 0}
    for cid in conv_ids:
        with db.transaction() as s:
            conv = s.get(Conversation, (ws_id, cid))
            assert conv is not None
            contact = s.get(Contact, (ws_id, conv.contact_id)) if with_contact else None
            before = statements[0]
            t0, c0 = time.perf_counter(), time.process_time()
            got = assignment.assign(s, conv, contact=contact)
            s.flush()
            decide.append((time.perf_counter() - t0) * 1000)
            decide_cpu.append((time.process_time() - c0) * 1000)
            per_decision.append(statements[0] - before)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        outcomes["assigned" if got is not None else "queued"] += 1
    event.remove(db.engine, "before_cursor_execute", _count)
    with db.transaction(readonly=True) as s:
        online = s.execute(
            select(func.count()).select_from(Member).where(Member.availability == "online")
        ).scalar_one()
        open_now = s.execute(
            select(func.count()).select_from(Conversation).where(Conversation.status == "open")
        ).scalar_one()
    db.dispose()
    return {
        "dialect": "postgresql" if url.startswith("postgresql") else "sqlite",
        "contact": "given" if with_contact else "loaded by assign",
        "agents": agents,
        "online": online,
        "open_before": open_convs,
        "open_after": open_now,
        "decisions": decisions,
        **outcomes,
        "decide_p50": statistics.median(decide),
        "decide_p99": pct(decide, 99),
        "wall_p50": statistics.median(wall),
        "wall_p99": pct(wall, 99),
        "wall_max": max(wall),
        "cpu_p50": statistics.median(cpu),
        "cpu_p99": pct(cpu, 99),
        "decide_cpu_p50": statistics.median(decide_cpu),
        "statements_mean": statistics.mean(per_decision),
        "statements_max": max(per_decision),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--open", type=int, default=3000, help="conversations already open and assigned")
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--fans", type=int, default=2000)
    ap.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL cluster")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--without-contact", action="store_true", help="let assign load the contact")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="scrm-assign-"))
    ctl: list[str] = []
    url = args.database_url
    if args.postgres and not url:
        from bench.scale import start_postgres

        url, ctl = start_postgres(tmp)
    elif not url:
        url = f"sqlite:///{tmp}/bench.db"
    try:
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        r = run(
            url,
            agents=args.agents,
            open_convs=args.open,
            decisions=args.decisions,
            fans=args.fans,
            with_contact=not args.without_contact,
        )
        print(
            f"{r['dialect']}: {r['agents']} agents ({r['online']} online), {r['open_before']} open "
            f"conversations before, {r['decisions']} decisions ({r['assigned']} assigned, "
            f"{r['queued']} queued), contact {r['contact']}\n"
            f"  decision (assign + flush, before commit): p50 {r['decide_p50']:.2f} ms, "
            f"p99 {r['decide_p99']:.2f} ms\n"
            f"  including commit: p50 {r['wall_p50']:.2f} ms, p99 {r['wall_p99']:.2f} ms, "
            f"max {r['wall_max']:.2f} ms\n"
            f"  CPU per decision: p50 {r['decide_cpu_p50']:.2f} ms before the commit; "
            f"with it p50 {r['cpu_p50']:.2f} ms, p99 {r['cpu_p99']:.2f} ms\n"
            f"  SQL statements per decision: mean {r['statements_mean']:.1f}, max {r['statements_max']}\n"
            f"  load average after: {os.getloadavg()[0]:.1f} (target p99 <= 5 ms)"
        )
    finally:
        if ctl:
            subprocess.run([*ctl, "-m", "immediate", "stop"], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
