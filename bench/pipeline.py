"""The worker pipeline's cost per inbound event, in one process (no HTTP): CPU, statements, jobs.

    .venv/bin/python bench/pipeline.py                          # SQLite file database
    .venv/bin/python bench/pipeline.py --database-url postgresql+psycopg://...   # an empty database
    .venv/bin/python bench/pipeline.py --profile 40             # + the 40 costliest functions
    .venv/bin/python bench/pipeline.py --bare --fans 3000       # bench/scale.py's workspace instead

The demo airline of bench/service_day.py (its rules: spam, emoji song, FAQ self-service, flight
status from bookings, lost-and-found and after-sales routing, front desk; 9 agents online with
room for everything), `--events` webhook messages from `--fans` fans (so some fans write
again), accepted through `scrm.inbound.service.accept` in batches, then every job they cause is
run by the real worker (`Worker.run_until_idle`, one thread): `inbound.process` (contact,
conversation, message, triage, rules, assignment, SLA timers) and what follows from it
(outbox sends to a local recorder, SLA checks, rule listeners). Reported: events/s, CPU per
event (this process; on PostgreSQL the server's CPU is not included), SQL statements and jobs
per event. This is the figure bench/scale.py's end-to-end throughput is made of.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import platform
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")
os.environ["SCRM_INPROCESS_WORKER"] = "false"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=3000)
    ap.add_argument("--fans", type=int, default=0, help="distinct fans (default: 2/3 of the events)")
    ap.add_argument("--database-url", default="")
    ap.add_argument("--batch", type=int, default=200, help="events per accept transaction")
    ap.add_argument("--profile", type=int, default=0, help="print the N costliest functions (cumulative)")
    ap.add_argument("--statements", type=int, default=0, help="print the N most frequent SQL statements")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--bare",
        action="store_true",
        help="bench/scale.py's workspace instead: one webhook account, no rules, teams or agents",
    )
    args = ap.parse_args()
    if args.events < 1 or args.batch < 1:
        ap.error("--events and --batch must be positive")
    rnd = random.Random(args.seed)

    from sqlalchemy import event, func, select

    from bench import ingest
    from bench.service_day import CATEGORIES, accept, create_airline
    from scrm import jobs, metrics, migrate
    from scrm.channels.base import InboundEvent, Sender
    from scrm.config import get_settings
    from scrm.db import Database
    from scrm.kit.time import utcnow
    from scrm.models import Job, Message
    from scrm.worker.runner import Worker
    from scrm.workspace import service as ws_service
    from tests.helpers import Recorder

    tmp = tempfile.mkdtemp(prefix="scrm-pipeline-")
    os.environ["SCRM_DATABASE_URL"] = args.database_url or f"sqlite:///{tmp}/pipeline.db"
    get_settings.cache_clear()
    settings = get_settings()
    db = Database(settings.database_url)
    migrate.upgrade(db)
    jobs.load()
    recorder = Recorder()
    n_fans = args.fans or max(1, args.events * 2 // 3)
    with recorder.running():
        with db.transaction() as s:
            # the fake endpoint has no API quota: the account's send rate limit is off, so every
            # send runs once instead of being postponed (RetryLater) by the token bucket
            config = {"callback_url": recorder.url, "rate_limit_per_second": 0}
            slug = f"pipeline-{rnd.randrange(10**9)}"
            if args.bare:
                w = ws_service.create_workspace(s, slug, "Bench")
                account = ws_service.create_channel_account(
                    s, w.id, "webhook", "bench", config=config, secrets={"secret": "bench-secret-0123456789"}
                )
                teams = {}
            else:
                w, teams, account = create_airline(s, slug, config)
            for i in range(0 if args.bare else 9):
                u = ws_service.create_user(s, f"agent{i}@{w.slug}.test", "password123", f"客服{i}")
                m = ws_service.add_member(s, w.id, u, "agent", capacity=100_000)
                m.availability = "online"
                ws_service.add_to_team(s, w.id, teams["service"].id, m.id)
            ws_id, account_id = w.id, account.id

        texts = []
        for _name, share, _team, samples in CATEGORIES:
            texts += [t for t in samples for _ in range(max(1, round(share * 20)))]
        batch: list[Any] = []
        for i in range(args.events):
            text = (
                ingest.text(i)
                if args.bare
                else rnd.choice(texts).format(f="MU5137", s="32C", n=rnd.randrange(1000, 9999))
            )
            fan = f"fan{rnd.randrange(n_fans)}"
            batch.append(
                InboundEvent(
                    f"e{i}",
                    "message",
                    Sender(fan, name=fan, namespace=f"webhook:{account_id}"),
                    utcnow(),
                    text=text,
                )
            )
            if len(batch) == args.batch or i == args.events - 1:
                accept(db, ws_id, account_id, batch)
                batch = []

        worker = Worker(db, settings, batch_size=200)
        worker.warm_up()  # models load before the clock starts
        statements = [0]
        by_text: collections.Counter[str] = collections.Counter()

        @event.listens_for(db.engine, "before_cursor_execute")
        def _count(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
            statements[0] += 1
            if args.statements:
                by_text[" ".join(statement.split())[:150]] += 1

        def job_seconds() -> dict[str, float]:
            out: dict[str, float] = {}
            for fam in metrics.JOB_SECONDS.collect():
                for sample in fam.samples:
                    if sample.name.endswith("_sum"):
                        out[sample.labels["kind"]] = sample.value
            return out

        before = job_seconds()
        profiler = cProfile.Profile() if args.profile else None
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        ran = worker.run_until_idle(3600)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        event.remove(db.engine, "before_cursor_execute", _count)
        spent = {k: v - before.get(k, 0.0) for k, v in job_seconds().items()}

    with db.transaction(readonly=True) as s:
        kinds = collections.Counter(
            dict(
                s.execute(
                    select(Job.kind, func.count()).where(Job.workspace_id == ws_id).group_by(Job.kind)
                ).all()
            )
        )
        stuck = s.execute(
            select(func.count()).where(Job.workspace_id == ws_id, Job.status != "done")
        ).scalar_one()
        inbound_messages = s.execute(
            select(func.count()).where(Message.workspace_id == ws_id, Message.direction == "in")
        ).scalar_one()
    db.dispose()
    n = args.events
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"{'postgresql' if settings.database_url.startswith('postgresql') else 'sqlite'}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{n} events from {n_fans} fans -> {inbound_messages} inbound messages; {ran} jobs run "
        f"({stuck} not done), {len(recorder.requests)} outbound sends\n"
        f"  pipeline: {n / wall:,.0f} events/s, {cpu / n * 1000:.2f} ms CPU per event "
        f"({wall:.1f} s wall, {cpu:.1f} s CPU)\n"
        f"  per event: {statements[0] / n:.1f} SQL statements, {sum(kinds.values()) / n:.2f} jobs "
        f"({', '.join(f'{k} {v / n:.2f}' for k, v in kinds.most_common())})\n"
        f"  time per event by job kind: "
        + ", ".join(
            f"{k} {v / n * 1000:.2f} ms" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v > 0
        )
        + f"; claiming and bookkeeping {(wall - sum(spent.values())) / n * 1000:.2f} ms"
    )
    for text, count in by_text.most_common(args.statements):
        print(f"  {count / n:5.2f}/event  {text}")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative").print_stats(args.profile)
        stats.sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
