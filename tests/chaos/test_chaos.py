"""Chaos on PostgreSQL: 4 API processes, 4 worker processes, SIGKILLs and a database restart.

A client sends 3,000 signed webhook events from 300 fans (each fan's events one after another,
as a real fan types them), plus 10% duplicate deliveries — half of them concurrent with the
original. The test then posts one agent reply per conversation through the REST API; replies
go out through the outbox to a fake recorder on 127.0.0.1. Meanwhile it SIGKILLs random
workers and API processes (a supervisor restarts them) and restarts PostgreSQL once
(`pg_ctl restart -m fast`, from SCRM_TEST_PG_CTL; skipped with a message if unset).

At the end:
- every accepted event id is exactly one stored event and exactly one message;
- every job is done (none queued/running/dead; only future timers may wait);
- each reply was delivered; deduplicated by Idempotency-Key each is delivered once, and a
  raw repeat is allowed only as the documented at-least-once window: a worker SIGKILLed
  after the callback answered but before its transaction committed (at most one per
  killed worker thread);
- each fan's messages have increasing ids in the order the fan sent them;
- the API never answered 500; while PostgreSQL restarted it answered 503 and clients retried.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from scrm.db import Database
from scrm.kit.time import utcnow
from scrm.models import ChannelAccount, Conversation, InboundEvent, Job, Message, OutboxMessage
from tests.conftest import Workspace, make_workspace
from tests.helpers import signed_headers, webhook_event

# About 2 minutes on an idle 2-core machine; the bound is generous for a busy CI runner.
pytestmark = [pytest.mark.postgres_only, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
FANS = int(os.environ.get("SCRM_CHAOS_FANS", "300"))  # 10 events each
EVENTS_PER_FAN = 10
API_PROCS = 4
WORKER_PROCS = 4
WORKER_THREADS = 2
DUPLICATE_RATE = 0.10
IN_FLIGHT = 48
DEADLINE = 540.0  # hard stop for the whole test (its pytest timeout is 600 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the fake outbound endpoint ------------------------------------------------------------------
class Callback:
    """Records every reply POSTed by the webhook channel, keyed by Idempotency-Key."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()
        self.lock = threading.Lock()
        cb = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                key = self.headers.get("idempotency-key", "")
                with cb.lock:
                    cb.keys[key] += 1
                payload = json.dumps({"id": f"ext-{key}", "len": len(body)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/reply"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- processes --------------------------------------------------------------------------------
@dataclass
class Slot:
    name: str
    argv: list[str]
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    since: float = 0.0


@dataclass
class Cluster:
    """Keeps 4 API and 4 worker processes alive: a process that dies (killed, or failed to
    start while the database was down) is started again."""

    env: dict[str, str]
    logdir: Path
    apis: list[Slot] = field(default_factory=list)
    workers: list[Slot] = field(default_factory=list)
    kills: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        scrm = str(ROOT / ".venv" / "bin" / "scrm")
        for i in range(API_PROCS):
            port = free_port()
            self.apis.append(Slot(f"api{i}", [scrm, "serve", "--port", str(port)], port=port))
        for i in range(WORKER_PROCS):
            self.workers.append(Slot(f"worker{i}", [scrm, "worker", "--concurrency", str(WORKER_THREADS)]))
        for slot in self.slots:
            self._spawn(slot)
        threading.Thread(target=self._supervise, daemon=True).start()

    @property
    def slots(self) -> list[Slot]:
        return self.apis + self.workers

    def _spawn(self, slot: Slot) -> None:
        slot.starts += 1
        slot.since = time.monotonic()
        log = open(self.logdir / f"{slot.name}.log", "ab")  # noqa: SIM115
        slot.proc = subprocess.Popen(slot.argv, env=self.env, stdout=log, stderr=log)
        log.close()

    def _supervise(self) -> None:
        while not self._stop.wait(0.3):
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._spawn(slot)

    def kill_random(self, rng: random.Random, kind: str) -> str:
        slot = rng.choice(self.apis if kind == "api" else self.workers)
        assert slot.proc is not None
        slot.proc.send_signal(signal.SIGKILL)
        slot.proc.wait()
        self.kills[kind] += 1
        return slot.name

    def all_up(self) -> bool:
        """Every API answers /healthz and every worker has been running for 3 s."""
        for slot in self.workers:
            if slot.proc is None or slot.proc.poll() is not None or time.monotonic() - slot.since < 3:
                return False
        for slot in self.apis:
            try:
                if httpx.get(f"http://127.0.0.1:{slot.port}/healthz", timeout=2).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    def alive_ports(self) -> list[int]:
        return [s.port for s in self.apis if s.port and s.proc is not None and s.proc.poll() is None]

    def stop(self) -> None:
        self._stop.set()
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.proc is not None:
                try:
                    slot.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    slot.proc.kill()


def wait_ready(ports: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ports)
    while pending and time.monotonic() < deadline:
        for port in list(pending):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    pending.discard(port)
            except httpx.HTTPError:
                pass
        time.sleep(0.25)
    assert not pending, f"API processes on {pending} did not start"


def pg_restart_command() -> list[str] | None:
    ctl = os.environ.get("SCRM_TEST_PG_CTL", "")
    return [*shlex.split(ctl), "restart", "-m", "fast", "-w", "-t", "30"] if ctl else None


# -- the client -------------------------------------------------------------------------------
@dataclass
class Stats:
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    retries: int = 0
    accepted: set[str] = field(default_factory=set)  # event ids answered 202 or 200
    duplicates_sent: int = 0
    concurrent_duplicates: int = 0
    replies: dict[int, bool] = field(default_factory=dict)
    during_restart: Counter[int] = field(default_factory=Counter)
    restarting: bool = False


async def deliver(
    http: httpx.AsyncClient, cluster: Cluster, ws: Workspace, event_id: str, body: bytes, stats: Stats
) -> int:
    """POST one event until the API answers 202 or 200 (like WeChat, which retries)."""
    delay = 0.05
    while True:
        ports = cluster.alive_ports() or [s.port for s in cluster.apis if s.port]
        port = random.choice(ports)
        try:
            r = await http.post(
                f"http://127.0.0.1:{port}/hooks/webhook/{ws.channel_id}",
                content=body,
                headers=signed_headers(ws.channel_secret, body),
            )
        except httpx.HTTPError:
            stats.connection_errors += 1
            stats.retries += 1
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 2)
            continue
        stats.statuses[r.status_code] += 1
        if stats.restarting:
            stats.during_restart[r.status_code] += 1
        if r.status_code in (200, 202):
            stats.accepted.add(event_id)
            return r.status_code
        assert r.status_code == 503, f"{r.status_code}: {r.text[:300]}"
        stats.retries += 1
        await asyncio.sleep(delay)
        delay = min(1.0, delay * 2)


async def fan(
    http: httpx.AsyncClient,
    cluster: Cluster,
    ws: Workspace,
    n: int,
    stats: Stats,
    sem: asyncio.Semaphore,
    rng: random.Random,
) -> None:
    bodies: list[tuple[str, bytes]] = []
    for i in range(EVENTS_PER_FAN):
        event_id = f"chaos-{n}-{i}"
        body = webhook_event(event_id, f"第{i}条 航班延误了怎么办", sender=f"fan-{n}", name=f"粉丝{n}")
        bodies.append((event_id, body))
        async with sem:
            if rng.random() < DUPLICATE_RATE / 2:
                # The same delivery twice at once (a sender's retry racing the original).
                stats.duplicates_sent += 1
                stats.concurrent_duplicates += 1
                await asyncio.gather(
                    deliver(http, cluster, ws, event_id, body, stats),
                    deliver(http, cluster, ws, event_id, body, stats),
                )
            else:
                await deliver(http, cluster, ws, event_id, body, stats)
            if rng.random() < DUPLICATE_RATE / 2:
                # A late repeat of one of this fan's earlier events.
                stats.duplicates_sent += 1
                dup_id, dup_body = rng.choice(bodies)
                assert await deliver(http, cluster, ws, dup_id, dup_body, stats) == 200


async def reply(
    http: httpx.AsyncClient, cluster: Cluster, ws: Workspace, conv_id: int, stats: Stats, db: Database
) -> None:
    """One agent reply per conversation. POST /messages is not idempotent, so after a lost
    answer (API killed) the client looks the reply up before trying again."""
    text = f"chaos-reply-{conv_id}"
    while True:
        ports = cluster.alive_ports() or [s.port for s in cluster.apis if s.port]
        port = random.choice(ports)
        try:
            r = await http.post(
                f"http://127.0.0.1:{port}/api/v1/conversations/{conv_id}/messages",
                json={"text": text},
                headers={"authorization": f"Bearer {ws.admin_token}"},
            )
        except httpx.HTTPError:
            stats.connection_errors += 1
            await asyncio.sleep(0.5)  # let PostgreSQL finish with the dead connection
            if await asyncio.to_thread(_reply_exists, db, ws.id, conv_id, text):
                stats.replies[conv_id] = True
                return
            continue
        stats.statuses[r.status_code] += 1
        if r.status_code == 201:
            stats.replies[conv_id] = True
            return
        assert r.status_code == 503, f"{r.status_code}: {r.text[:300]}"
        await asyncio.sleep(0.2)


def _reply_exists(db: Database, ws_id: int, conv_id: int, text: str) -> bool:
    for _ in range(20):
        try:
            with db.transaction(readonly=True) as s:
                return (
                    s.execute(
                        select(func.count()).where(
                            Message.workspace_id == ws_id,
                            Message.conversation_id == conv_id,
                            Message.text == text,
                        )
                    ).scalar_one()
                    > 0
                )
        except Exception:
            time.sleep(0.5)
    raise AssertionError("database unreachable")


# What the chaos does, in order, one step at a time: a step waits until every process is up
# again (so the cluster is never entirely down), then a 1.5-3 s pause. "pg" waits until 40% of
# the events are in, so the restart lands mid-ingest.
PLAN = [
    "worker",
    "api",
    "pg",
    "worker",
    "worker",
    "api",
    "worker",
    "worker",
    "api",
    "worker",
    "worker",
    "api",
]


async def chaos(cluster: Cluster, stats: Stats, stop: asyncio.Event, restart_at: asyncio.Event) -> list[str]:
    rng = random.Random(7)
    log: list[str] = []
    pg = pg_restart_command()
    for step in PLAN:
        while not stop.is_set() and not await asyncio.to_thread(cluster.all_up):  # noqa: ASYNC110 (polls processes)
            await asyncio.sleep(0.3)
        try:
            await asyncio.wait_for(stop.wait(), timeout=rng.uniform(1.5, 3.0))
            break
        except TimeoutError:
            pass
        if step == "pg":
            if pg is None:
                log.append("postgres restart skipped: SCRM_TEST_PG_CTL is not set")
                continue
            while not stop.is_set() and not restart_at.is_set():  # noqa: ASYNC110 (either event)
                await asyncio.sleep(0.2)
            stats.restarting = True
            t0 = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *pg, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            code = await proc.wait()
            await asyncio.sleep(1.0)  # answers still on their way back count as "during"
            stats.restarting = False
            log.append(f"postgres restart rc={code} in {time.monotonic() - t0:.1f}s")
        else:
            log.append(f"SIGKILL {cluster.kill_random(rng, step)}")
        _progress(log[-1])
    return log


# -- the test ---------------------------------------------------------------------------------
def test_chaos_nothing_lost_nothing_doubled(db: Database, db_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    callback = Callback()
    ws = make_workspace(db, "chaos", callback_url=callback.url)
    with db.transaction() as s:
        account = s.execute(select(ChannelAccount).where(ChannelAccount.id == ws.channel_id)).scalar_one()
        # A tight shared send quota, so replies also queue behind the per-account rate limit.
        account.config = {**account.config, "rate_limit_per_second": 40, "rate_limit_burst": 20}
    env = dict(
        os.environ,
        SCRM_DATABASE_URL=db_url,
        SCRM_INPROCESS_WORKER="false",
        SCRM_WORKER_LEASE_SECONDS="3",
        SCRM_WORKER_POLL_INTERVAL="0.1",
        SCRM_LOG_LEVEL="WARNING",
        SCRM_LOG_JSON="true",
    )
    cluster = Cluster(env, tmp_path)
    cluster.start()
    try:
        wait_ready([s.port for s in cluster.apis if s.port], timeout=90)
        _progress(f"cluster up after {time.monotonic() - started:.0f}s")
        stats = Stats()
        chaos_log = asyncio.run(_drive(cluster, ws, stats, db))
        ingest_done = time.monotonic()
        # Drain: stop the chaos (already stopped), let the supervisor bring everything back.
        wait_ready([s.port for s in cluster.apis if s.port], timeout=60)
        _drain(db, deadline=started + DEADLINE)
        drained = time.monotonic()
        _check(db, ws, stats, callback, cluster, chaos_log)
    finally:
        cluster.stop()
        callback.close()
    print(
        f"\nchaos: {len(stats.accepted)} events, {stats.duplicates_sent} duplicates "
        f"({stats.concurrent_duplicates} concurrent), {len(stats.replies)} replies, "
        f"kills={dict(cluster.kills)}, statuses={dict(stats.statuses)}, "
        f"during restart={dict(stats.during_restart)}, connection errors={stats.connection_errors}, "
        f"ingest+replies {ingest_done - started:.0f}s, drained at {drained - started:.0f}s\n  "
        + "\n  ".join(chaos_log)
    )
    assert time.monotonic() - started < DEADLINE


async def _drive(cluster: Cluster, ws: Workspace, stats: Stats, db: Database) -> list[str]:
    stop, restart_at = asyncio.Event(), asyncio.Event()
    chaos_task = asyncio.create_task(chaos(cluster, stats, stop, restart_at))
    rng = random.Random(11)
    sem = asyncio.Semaphore(IN_FLIGHT)
    limits = httpx.Limits(max_connections=IN_FLIGHT * 2, max_keepalive_connections=IN_FLIGHT)
    async with httpx.AsyncClient(timeout=httpx.Timeout(20.0), limits=limits) as http:
        fans = [asyncio.create_task(fan(http, cluster, ws, n, stats, sem, rng)) for n in range(FANS)]
        last = time.monotonic()
        while not all(f.done() for f in fans):
            await asyncio.sleep(0.5)
            if time.monotonic() - last > 5:
                last = time.monotonic()
                _progress(
                    f"accepted {len(stats.accepted)} statuses {dict(stats.statuses)} kills {dict(cluster.kills)}"
                )
            if len(stats.accepted) >= FANS * EVENTS_PER_FAN * 0.4:
                restart_at.set()
        await asyncio.gather(*fans)
        restart_at.set()
        if pg_restart_command() is None:
            print("\nSCRM_TEST_PG_CTL is not set: the PostgreSQL restart step is skipped")
        # Replies, once each conversation exists (the workers are still being killed).
        _progress("events sent; waiting for conversations")
        conv_ids = await asyncio.to_thread(_wait_conversations, db, ws.id)
        _progress(f"{len(conv_ids)} conversations; replying")
        await asyncio.gather(*(_limited(sem, reply(http, cluster, ws, c, stats, db)) for c in conv_ids))
    _progress("replies posted; stopping the chaos")
    stop.set()
    log = await chaos_task
    if pg_restart_command() is not None:
        assert any(line.startswith("postgres restart rc=0") for line in log), log
    return log


def _progress(line: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


async def _limited(sem: asyncio.Semaphore, coro: Any) -> None:
    async with sem:
        await coro


def _wait_conversations(db: Database, ws_id: int) -> list[int]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with db.transaction(readonly=True) as s:
                ids = list(
                    s.execute(select(Conversation.id).where(Conversation.workspace_id == ws_id)).scalars()
                )
        except Exception:
            time.sleep(0.5)
            continue
        if len(ids) >= FANS:
            return ids
        time.sleep(0.5)
    raise AssertionError(f"only {len(ids)} conversations after 90 s")


def _drain(db: Database, deadline: float) -> None:
    _progress("draining")
    while time.monotonic() < deadline:
        with db.transaction(readonly=True) as s:
            waiting = s.execute(
                select(func.count()).where(Job.status.in_(("queued", "running")), Job.run_at <= utcnow())
            ).scalar_one()
            # A send held back by the account's quota is queued a moment ahead: not due yet,
            # but not done either.
            unsent = s.execute(select(func.count()).where(OutboxMessage.status == "pending")).scalar_one()
        if waiting == 0 and unsent == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{waiting} jobs due and {unsent} replies unsent at the deadline")


def _check(
    db: Database, ws: Workspace, stats: Stats, callback: Callback, cluster: Cluster, chaos_log: list[str]
) -> None:
    expected = {f"chaos-{n}-{i}" for n in range(FANS) for i in range(EVENTS_PER_FAN)}
    assert stats.accepted == expected
    assert stats.statuses[500] == 0, stats.statuses
    if pg_restart_command() is not None:
        assert stats.during_restart[503] > 0 or stats.connection_errors > 0, stats.during_restart
    with db.transaction(readonly=True) as s:
        # Every accepted event: stored once, one message.
        stored = Counter(
            s.execute(select(InboundEvent.external_id).where(InboundEvent.workspace_id == ws.id)).scalars()
        )
        assert set(stored) == expected and max(stored.values()) == 1
        per_event = s.execute(
            select(InboundEvent.external_id, func.count(Message.id))
            .join(
                Message,
                (Message.workspace_id == InboundEvent.workspace_id)
                & (Message.inbound_event_id == InboundEvent.id),
            )
            .group_by(InboundEvent.external_id)
        ).all()
        assert len(per_event) == len(expected) and all(c == 1 for _, c in per_event)
        # Per fan: message ids increase in the order the fan sent them.
        rows = s.execute(
            select(Conversation.fan_external_id, Message.id, Message.text)
            .join(
                Conversation,
                (Conversation.workspace_id == Message.workspace_id)
                & (Conversation.id == Message.conversation_id),
            )
            .where(Message.workspace_id == ws.id, Message.direction == "in")
            .order_by(Message.id)
        ).all()
        seqs: dict[str, list[int]] = {}
        for fan_id, _mid, text in rows:
            seqs.setdefault(fan_id, []).append(int(text[1 : text.index("条")]))
        assert len(seqs) == FANS
        out_of_order = {f: q for f, q in seqs.items() if q != list(range(EVENTS_PER_FAN))}
        assert not out_of_order, list(out_of_order.items())[:5]
        # Every job done; nothing dead, running or overdue.
        by_status = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())  # type: ignore[arg-type]
        future = s.execute(
            select(func.count()).where(Job.status == "queued", Job.run_at > utcnow())
        ).scalar_one()
        assert set(by_status) <= {"done", "queued"}, by_status
        assert by_status.get("queued", 0) == future, by_status
        # Each reply: one outbox row, sent; delivered once per Idempotency-Key.
        outbox = dict(s.execute(select(OutboxMessage.idempotency_key, OutboxMessage.status)).all())  # type: ignore[arg-type]
    assert len(stats.replies) == FANS and len(outbox) == FANS
    assert set(outbox.values()) == {"sent"}, Counter(outbox.values())
    assert set(callback.keys) == set(outbox)
    repeats = {k: n for k, n in callback.keys.items() if n > 1}
    # At-least-once window: a worker SIGKILLed between the callback's answer and the commit
    # sends again once its lease expires. The Idempotency-Key lets the receiver drop it.
    assert sum(n - 1 for n in repeats.values()) <= cluster.kills["worker"] * WORKER_THREADS, repeats
    if repeats:
        print(f"\nrepeated deliveries (deduplicated by Idempotency-Key at the receiver): {repeats}")
