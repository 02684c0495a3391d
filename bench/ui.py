"""Server-side latency of the agent workspace pages over a large workspace.

    .venv/bin/python bench/gen_ui_data.py --conversations 20000 --db /tmp/scrm-ui-bench.db
    .venv/bin/python bench/ui.py --db /tmp/scrm-ui-bench.db
    .venv/bin/python bench/ui.py --database-url postgresql+psycopg://USER@HOST:PORT/DB

Each page is requested N times in process (FastAPI TestClient: routing, auth, queries and
Jinja rendering; no network). Targets: inbox and conversation pane p95 < 150 ms; search over
all messages p95 < 500 ms on SQLite without a text index.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("SCRM_SECRET_KEY", "bench-secret")
os.environ["SCRM_INPROCESS_WORKER"] = "false"

from fastapi.testclient import TestClient

from scrm.app import create_app
from scrm.config import get_settings
from scrm.db import Database


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="/tmp/scrm-ui-bench.db")
    ap.add_argument("--database-url", default="", help="PostgreSQL filled by gen_ui_data.py")
    ap.add_argument("-n", type=int, default=30)
    args = ap.parse_args()
    os.environ["SCRM_DATABASE_URL"] = args.database_url or f"sqlite:///{args.db}"
    get_settings.cache_clear()
    db = Database(os.environ["SCRM_DATABASE_URL"])
    client = TestClient(create_app(get_settings(), db))
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert token
    r = client.post(
        "/login",
        data={"email": "admin@uibench.test", "password": "password123", "csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    inbox = client.get("/inbox?view=all").text
    cid = re.search(r'id="row-(\d+)"', inbox)
    assert cid
    with db.transaction(readonly=True) as s:
        from sqlalchemy import func, select

        from scrm.models import Conversation, Message

        n_conv = s.execute(select(func.count()).select_from(Conversation)).scalar_one()
        n_msg = s.execute(select(func.count()).select_from(Message)).scalar_one()
    pages = {
        "inbox page, All view (full HTML)": "/inbox?view=all",
        "list fragment, Mine view": "/ui/inbox/list?view=mine",
        "list fragment, filter intent+priority": "/ui/inbox/list?view=all&intent=complaint&priority=urgent",
        "search: Chinese substring 双肩包 (LIKE)": "/ui/inbox/list?view=all&status=all&q=双肩包",
        "search: no match (scans everything)": "/ui/inbox/list?view=all&status=all&q=没有这个词",
        "conversation pane + fan panel": f"/ui/c/{cid.group(1)}",
        "supervisor dashboard (7 days)": "/dashboard",
    }
    kind = "SQLite file, WAL" if db.is_sqlite else "PostgreSQL 15"
    print(f"- Data: {n_conv:,} conversations, {n_msg:,} messages ({kind})")
    print(
        f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
        f"Python {platform.python_version()}"
    )
    where = f"--database-url {args.database_url.split('@')[-1]}" if args.database_url else f"--db {args.db}"
    print(f"- Command: `.venv/bin/python bench/ui.py {where} -n {args.n}`\n")
    print("| page | p50 ms | p95 ms | bytes |")
    print("|---|---:|---:|---:|")
    for name, url in pages.items():
        client.get(url)  # warm
        times: list[float] = []
        size = 0
        for _ in range(args.n):
            t0 = time.perf_counter()
            resp = client.get(url)
            times.append((time.perf_counter() - t0) * 1000)
            assert resp.status_code == 200, (url, resp.status_code)
            size = len(resp.content)
        print(f"| {name} | {statistics.median(times):.1f} | {pct(times, 95):.1f} | {size:,} |")


if __name__ == "__main__":
    main()
