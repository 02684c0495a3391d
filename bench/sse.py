"""Live updates: server CPU with 10 agents on SSE, idle and under a steady stream of messages.

    .venv/bin/python bench/sse.py [--database-url postgresql+psycopg://…] [--seconds 30]

Starts a real `scrm serve` (SQLite with its in-process worker by default; on PostgreSQL also a
`scrm worker` process, so events cross processes through LISTEN/NOTIFY), logs in 10 agents,
and measures the server process's CPU (user+system from /proc) over four equal phases: idle
and messages at a steady rate with no SSE client, the same with 10 agents streaming, and 10 agents
streaming with no traffic. Each agent must receive every `message.received` of the phase.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import free_port, migrate_and_run, wait_ready  # noqa: E402
from scrm.channels.webhook.handler import sign  # noqa: E402

AGENTS = 10
SECRET = "sse-bench-secret-0123456789"


def setup(env: dict[str, str]) -> int:
    body = f"""
ws=s.create_workspace(t,'ssebench','SSE')
team=s.create_team(t,ws.id,'service','客服','service')
for i in range({AGENTS}):
    m=s.add_member(t,ws.id,s.create_user(t,f'agent{{i}}@sse.test','password123',f'客服{{i}}'),'agent')
    s.add_to_team(t,ws.id,team.id,m.id)
a=s.create_channel_account(t,ws.id,'webhook','bench',secrets={{'secret':'{SECRET}'}})
print(a.id)
"""
    return int(migrate_and_run(env, body))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login(base: str, email: str) -> httpx.Client:
    http = httpx.Client(base_url=base, timeout=30)
    page = http.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert token, "no CSRF token on /login"
    r = http.post("/login", data={"email": email, "password": "password123", "csrf_token": token.group(1)})
    assert r.status_code in (200, 303), r.status_code
    return http


class Agent(threading.Thread):
    def __init__(self, http: httpx.Client) -> None:
        super().__init__(daemon=True)
        self.http = http
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.received: list[str] = []

    def run(self) -> None:
        with self.http.stream("GET", "/ui/events", timeout=None) as r:
            event = ""
            for line in r.iter_lines():
                if line.startswith("retry:"):
                    self.ready.set()
                elif line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "message.received":
                    self.received.append(json.loads(line[6:]).get("message_id", ""))
                if self.stop.is_set():
                    return


def send(base: str, channel_id: int, rate: float, seconds: float, tag: str) -> int:
    sent = 0
    with httpx.Client(base_url=base, timeout=30) as http:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            body = json.dumps(
                {
                    "id": f"{tag}-{sent}",
                    "type": "message",
                    "sender": {"id": f"fan-{sent % 50}", "name": "粉丝"},
                    "text": "@云程航空 航班 MU5137 延误了，行李也没到，请尽快处理",
                    "sent_at": dt.datetime.now(dt.UTC).isoformat(),
                },
                ensure_ascii=False,
            ).encode()
            ts = str(int(time.time()))
            headers = {"X-Scrm-Timestamp": ts, "X-Scrm-Signature": sign(SECRET, ts, body)}
            r = http.post(f"/hooks/webhook/{channel_id}", content=body, headers=headers)
            assert r.status_code == 202, r.text
            sent += 1
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
    return sent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=5, help="messages per second while loaded")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="scrm-sse-")
    url = args.database_url or f"sqlite:///{tmp}/sse.db"
    is_pg = url.startswith("postgresql")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        SCRM_DATABASE_URL=url,
        SCRM_SECRET_KEY="bench",
        SCRM_LOG_LEVEL="WARNING",
        SCRM_INPROCESS_WORKER="false" if is_pg else "true",
    )
    channel_id = setup(env)
    scrm = str(ROOT / ".venv" / "bin" / "scrm")
    server = subprocess.Popen([scrm, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    worker = subprocess.Popen([scrm, "worker"], env=env, stdout=subprocess.DEVNULL) if is_pg else None
    rows: list[tuple[str, float, str]] = []
    agents: list[Agent] = []
    try:
        wait_ready(port)
        send(base, channel_id, args.rate, 3, "warm")
        time.sleep(3)

        def phase(name: str, traffic: bool) -> tuple[float, int]:
            before = cpu_seconds(server.pid)
            t0 = time.monotonic()
            sent = send(base, channel_id, args.rate, args.seconds, name) if traffic else 0
            time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)) + 3)  # let the last ones land
            used = cpu_seconds(server.pid) - before
            return 100 * used / (time.monotonic() - t0), sent

        pct, _ = phase("idle_no_sse", False)
        rows.append(("idle, no SSE client", pct, "worker polling, periodic jobs"))
        pct, sent = phase("no_sse", True)
        rows.append((f"{args.rate:g} msg/s, no SSE client", pct, f"{sent} sent"))
        for i in range(AGENTS):
            agents.append(Agent(login(base, f"agent{i}@sse.test")))
            agents[-1].start()
        assert all(a.ready.wait(15) for a in agents), "an SSE stream did not open"
        for a in agents:
            a.received.clear()
        pct, sent = phase("sse", True)
        got = sorted(len(a.received) for a in agents)
        rows.append(
            (
                f"{args.rate:g} msg/s, {AGENTS} agents on SSE",
                pct,
                f"{sent} sent; each agent got {got[0]}–{got[-1]}",
            )
        )
        pct, _ = phase("idle", False)
        rows.append((f"idle, {AGENTS} agents on SSE", pct, "keep-alives only"))
    finally:
        for a in agents:
            a.stop.set()
        server.terminate()
        if worker:
            worker.terminate()
        server.wait(15)
    print(f"- Date: {time.strftime('%Y-%m-%d')}; machine: {platform.machine()}, {os.cpu_count()} cores")
    print(f"- Database: {'PostgreSQL (separate worker process)' if is_pg else 'SQLite (in-process worker)'}")
    print(f"- Command: `.venv/bin/python bench/sse.py --seconds {args.seconds:g} --rate {args.rate:g}`\n")
    print("| phase | server CPU % | notes |\n|---|---:|---|")
    for name, pct, note in rows:
        print(f"| {name} | {pct:.1f} | {note} |")


if __name__ == "__main__":
    main()
