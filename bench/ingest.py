"""Durable webhook ingest: accepted events/s, latency at a steady rate, received-to-visible.

    .venv/bin/python bench/ingest.py                         # SQLite (a temp file)
    .venv/bin/python bench/ingest.py --database-url postgresql+psycopg://…   # PostgreSQL

Starts a real `scrm serve` process (one API process, in-process worker on SQLite; a separate
`scrm worker` process on PostgreSQL), creates a workspace with a webhook channel, and drives
the signed endpoint with a keep-alive load generator on the other core.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _load  # noqa: E402
from scrm.channels.webhook.handler import sign  # noqa: E402


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


def migrate_and_run(env: dict[str, str], body: str) -> str:
    """Migrate the benchmark's database, then run `body` (with `s` = workspace service, `t` =
    an open transaction) in a fresh process; returns the last line it printed."""
    scrm = str(ROOT / ".venv" / "bin" / "scrm")
    subprocess.run([scrm, "db", "upgrade"], env=env, check=True, capture_output=True)
    code = (
        "from scrm.db import Database\n"
        "from scrm.config import get_settings\n"
        "from scrm.workspace import service as s\n"
        "db=Database(get_settings().database_url)\n"
        "with db.transaction() as t:\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def setup(env: dict[str, str]) -> tuple[int, str]:
    body = """
ws=s.create_workspace(t,'bench','Bench')
a=s.create_channel_account(t,ws.id,'webhook','bench',secrets={'secret':'bench-secret-0123456789'})
print(a.id)
"""
    return int(migrate_and_run(env, body)), "bench-secret-0123456789"


# What benchmark events say (bench/scale.py, bench/pipeline.py --bare): fans' messages of a few
# kinds with a varying flight, seat and order number, so that no two events say the same (a
# batch of identical texts would flatter triage).
_TEXTS = (
    "@云程航空 昨天 MU{flight} 上海飞成都，黑色双肩包落在 {seat} 座位上了，急！",
    "@云程航空 MU{flight} 又延误了，到底几点起飞？[怒]",
    "订单 {order} 的退款怎么还没到账，都一周了",
    "请问 MU{flight} 明天北京飞深圳还有经济舱吗？想改签",
    "谢谢 MU{flight} 的乘务员，{seat} 座的小朋友被照顾得很好[心]",
)


def text(i: int) -> str:
    """The text of benchmark event number `i`."""
    return _TEXTS[i % len(_TEXTS)].format(
        flight=5000 + i % 997, seat=f"{1 + i % 45}{'ABCDEFGHJK'[i % 10]}", order=f"YC{20260000 + i}"
    )


def make_requests(
    n: int, channel_id: int, secret: str, run: str, port: int, senders: int = 5000
) -> list[bytes]:
    ts = str(int(time.time()))
    out = []
    sent_at = dt.datetime.now(dt.UTC).isoformat()
    for i in range(n):
        body = json.dumps(
            {
                "id": f"{run}-{i}",
                "type": "message",
                "sender": {"id": f"fan-{i % senders}", "name": "粉丝"},
                "text": text(i),
                "sent_at": sent_at,
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Scrm-Timestamp": ts,
            "X-Scrm-Signature": sign(secret, ts, body),
        }
        out.append(_load.build_request(f"127.0.0.1:{port}", f"/hooks/webhook/{channel_id}", body, headers))
    return out


def wait_ready(port: int, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


def visible_latencies(env: dict[str, str], run: str) -> list[float]:
    code = (
        "import json\n"
        "from sqlalchemy import select\n"
        "from scrm.db import Database\n"
        "from scrm.config import get_settings\n"
        "from scrm.models import InboundEvent, Message\n"
        "db=Database(get_settings().database_url)\n"
        "with db.transaction(readonly=True) as s:\n"
        "    rows=s.execute(select(InboundEvent.received_at, Message.created_at).join(Message,"
        " (Message.workspace_id==InboundEvent.workspace_id)&(Message.inbound_event_id==InboundEvent.id))"
        f".where(InboundEvent.external_id.like('{run}-%'))).all()\n"
        "print(json.dumps([(m-r).total_seconds() for r,m in rows]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def count_pending(env: dict[str, str]) -> int:
    code = (
        "from sqlalchemy import select, func\n"
        "from scrm.db import Database\nfrom scrm.config import get_settings\nfrom scrm.models import Job\n"
        "db=Database(get_settings().database_url)\n"
        "with db.transaction(readonly=True) as s:\n"
        "    q=select(func.count()).select_from(Job)"
        ".where(Job.kind=='inbound.process',Job.status.in_(('queued','running')))\n"
        "    print(s.execute(q).scalar_one())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--burst", type=int, default=10000, help="events for the max-throughput run")
    ap.add_argument("--drain-timeout", type=float, default=900, help="seconds to wait for the worker")
    ap.add_argument("--seconds", type=int, default=10, help="length of each steady-rate run")
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="scrm-bench-")
    url = args.database_url or f"sqlite:///{tmp}/bench.db"
    is_pg = url.startswith("postgresql")
    port = free_port()
    env = dict(
        os.environ,
        SCRM_DATABASE_URL=url,
        SCRM_SECRET_KEY="bench",
        SCRM_LOG_LEVEL="WARNING",
        SCRM_INPROCESS_WORKER="false" if is_pg else "true",
    )
    channel_id, secret = setup(env)
    scrm = str(ROOT / ".venv" / "bin" / "scrm")
    server_log = open(f"{tmp}/server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(
        [scrm, "serve", "--port", str(port)], env=env, stdout=server_log, stderr=server_log
    )
    print(f"server log: {tmp}/server.log", file=sys.stderr)
    worker = None
    if is_pg:
        worker = subprocess.Popen(
            [scrm, "worker", "--concurrency", "4"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    results: dict[str, object] = {}

    def drain(deadline_s: float) -> float:
        """Wait until no inbound job is left; returns the seconds it took (inf on timeout)."""
        t0 = time.monotonic()
        while count_pending(env):
            if time.monotonic() - t0 > deadline_s:
                return float("inf")
            time.sleep(0.5)
        return time.monotonic() - t0

    def steady(rate: float, label: str) -> dict[str, object]:
        n = int(rate * args.seconds)
        reqs = make_requests(n, channel_id, secret, label, port)
        r = asyncio.run(_load.run("127.0.0.1", port, reqs, connections=args.connections, rate=rate))
        entry: dict[str, object] = {
            "rate": round(rate),
            "events": n,
            "achieved_per_s": round(n / r.duration),
            "statuses": r.statuses,
            "p50_ms": round(r.pct(50) * 1000, 2),
            "p99_ms": round(r.pct(99) * 1000, 2),
        }
        entry["drained_s"] = round(drain(args.drain_timeout), 1)
        vis = visible_latencies(env, label)
        entry["visible"] = len(vis)
        entry["visible_p50_ms"] = round(pct(vis, 50) * 1000, 1)
        entry["visible_p99_ms"] = round(pct(vis, 99) * 1000, 1)
        return entry

    try:
        wait_ready(port)
        # Warm-up.
        asyncio.run(_load.run("127.0.0.1", port, make_requests(500, channel_id, secret, "warm", port)))
        drain(args.drain_timeout)
        # 1. Max accepted events/s (durable: each committed before its 202).
        reqs = make_requests(args.burst, channel_id, secret, "burst", port)
        r = asyncio.run(_load.run("127.0.0.1", port, reqs, connections=args.connections))
        results["burst"] = {
            "events": args.burst,
            "seconds": round(r.duration, 2),
            "accepted_per_s": round(r.statuses.get(202, 0) / r.duration),
            "statuses": r.statuses,
            "p50_ms": round(r.pct(50) * 1000, 2),
            "p99_ms": round(r.pct(99) * 1000, 2),
        }
        # 2. Pipeline capacity: how fast the worker turns the burst into conversations.
        t_drain = drain(args.drain_timeout)
        results["pipeline"] = {
            "drained_s": round(t_drain, 1),
            "processed_per_s": round(args.burst / t_drain, 1) if t_drain != float("inf") else None,
        }
        # 3. Acknowledgement latency at a steady 1,000/s and visible latency at 500/s.
        for rate, label in ((1000.0, "steady_1000"), (500.0, "steady_500")):
            results[label] = steady(rate, label)
        # 4. Visible latency at half of the measured pipeline capacity.
        capacity = results["pipeline"]["processed_per_s"]  # type: ignore[index]
        if capacity:
            results["steady_half_capacity"] = steady(max(1.0, capacity / 2), "steady_half")
    finally:
        server.terminate()
        if worker:
            worker.terminate()
        server.wait(10)
    results["database"] = "PostgreSQL" if is_pg else "SQLite (WAL)"
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    results["date"] = dt.date.today().isoformat()
    print(json.dumps(results, indent=2, ensure_ascii=False))
    _ = statistics  # keep import for ad-hoc analysis


if __name__ == "__main__":
    main()
