"""Scale-out on PostgreSQL: end-to-end throughput, latency at half load, 1/2/4 workers, a soak
with RSS over time, and queue age through a 5x burst.

    .venv/bin/python bench/scale.py                      # starts a throwaway PostgreSQL 15
    .venv/bin/python bench/scale.py --database-url postgresql+psycopg://…   # an existing one

End-to-end means webhook POST → stored + job → worker: contact, conversation, message, triage
(NLP), rules, SLA → committed. The load generator (bench/_load.py, keep-alive, pre-signed
bodies) runs on the same machine as the API processes, the workers and PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _load  # noqa: E402
from bench.ingest import free_port, make_requests, pct, setup, wait_ready  # noqa: E402

SCRM = str(ROOT / ".venv" / "bin" / "scrm")


# -- PostgreSQL ---------------------------------------------------------------------------------
def start_postgres(tmp: Path, *, stat_statements: bool = False) -> tuple[str, list[str]]:
    """A throwaway cluster (as in scripts/test, but durable: fsync and synchronous_commit on)."""
    pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    data = tmp / "pg"
    data.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    if os.getuid() == 0:
        shutil.chown(tmp, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        [*as_pg, str(pgbin / "initdb"), "-D", str(data / "data"), "-U", "scrm", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    opts = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c max_connections=300 "
        "-c shared_buffers=512MB -c synchronous_commit=on -c wal_compression=on "
        "-c checkpoint_timeout=15min -c max_wal_size=4GB"
    )
    if stat_statements:
        opts += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on"
    ctl = [*as_pg, str(pgbin / "pg_ctl"), "-D", str(data / "data"), "-l", str(data / "log")]
    subprocess.run([*ctl, "-w", "-o", opts, "start"], check=True, capture_output=True)
    return f"postgresql+psycopg://scrm@127.0.0.1:{port}/postgres", ctl


def print_pg_statements(probe: Probe, top: int, events: int) -> None:
    """The server's time per statement (planning + execution) since the warm-up, per event."""
    from sqlalchemy import text

    with probe.db.transaction(readonly=True) as s:
        rows = s.execute(
            text(
                "SELECT calls, total_plan_time + total_exec_time AS ms, rows, query FROM pg_stat_statements "
                "ORDER BY total_plan_time + total_exec_time DESC LIMIT :top"
            ),
            {"top": top},
        ).all()
    print(f"PostgreSQL statements by server time (ms per event, calls per event), {events} events:")
    for calls, ms, nrows, query in rows:
        q = " ".join(query.split())
        print(f"  {ms / events:7.3f} ms {calls / events:6.2f}x {nrows / max(1, calls):7.1f} rows  {q[:160]}")


# -- processes ----------------------------------------------------------------------------------
class Procs:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.apis: list[tuple[int, subprocess.Popen[bytes]]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_apis(self, n: int) -> list[int]:
        for _ in range(n):
            port = free_port()
            p = subprocess.Popen(
                [SCRM, "serve", "--port", str(port)],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.apis.append((port, p))
        for port, _ in self.apis:
            wait_ready(port, timeout=120)
        return [port for port, _ in self.apis]

    def start_workers(self, n: int, threads: int) -> None:
        for _ in range(n):
            self.workers.append(
                subprocess.Popen(
                    [SCRM, "worker", "--concurrency", str(threads)],
                    env=self.env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )

    def stop_workers(self) -> None:
        for p in self.workers:
            p.terminate()
        for p in self.workers:
            p.wait(30)
        self.workers = []

    def stop(self) -> None:
        self.stop_workers()
        for _, p in self.apis:
            p.terminate()
            p.wait(30)
        self.apis = []

    def pids(self) -> dict[str, int]:
        out = {f"api{i}": p.pid for i, (_, p) in enumerate(self.apis)}
        out.update({f"worker{i}": p.pid for i, p in enumerate(self.workers)})
        return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_pids(pgdata: Path | None) -> list[int]:
    """The postmaster and its children (backends, WAL writer, checkpointer…)."""
    if pgdata is None:
        return []
    try:
        master = int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    pids = [master]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return pids


def cpu_split(procs: Procs, pgdata: Path | None) -> dict[str, float]:
    """CPU seconds used so far by the API processes, the workers and PostgreSQL."""
    return {
        "api": sum(cpu_seconds(p.pid) for _, p in procs.apis),
        "workers": sum(cpu_seconds(p.pid) for p in procs.workers),
        "postgres": sum(cpu_seconds(pid) for pid in postgres_pids(pgdata)),
    }


# -- database probes (one persistent connection) -------------------------------------------------
class Probe:
    def __init__(self, url: str) -> None:
        from scrm.db import Database

        self.db = Database(url, pool_size=2)

    def pending(self) -> int:
        from sqlalchemy import func, select

        from scrm.kit.time import utcnow
        from scrm.models import Job

        with self.db.transaction(readonly=True) as s:
            q = select(func.count()).where(Job.status.in_(("queued", "running")), Job.run_at <= utcnow())
            return int(s.execute(q).scalar_one())

    def messages(self, prefix: str) -> int:
        from sqlalchemy import func, select

        from scrm.models import InboundEvent

        with self.db.transaction(readonly=True) as s:
            q = select(func.count()).where(
                InboundEvent.external_id.like(f"{prefix}-%"), InboundEvent.status == "processed"
            )
            return int(s.execute(q).scalar_one())

    def processed_total(self) -> int:
        from sqlalchemy import func, select

        from scrm.models import InboundEvent

        with self.db.transaction(readonly=True) as s:
            return int(s.execute(select(func.count()).where(InboundEvent.status == "processed")).scalar_one())

    def oldest_age(self) -> float:
        from scrm.worker import repository

        with self.db.transaction(readonly=True) as s:
            stats = repository.queue_stats(s)
        return max((st.oldest_queued_age for st in stats.values()), default=0.0)

    def visible(self, prefix: str) -> list[float]:
        from sqlalchemy import select

        from scrm.models import InboundEvent, Message

        with self.db.transaction(readonly=True) as s:
            rows = s.execute(
                select(InboundEvent.received_at, Message.created_at)
                .join(
                    Message,
                    (Message.workspace_id == InboundEvent.workspace_id)
                    & (Message.inbound_event_id == InboundEvent.id),
                )
                .where(InboundEvent.external_id.like(f"{prefix}-%"))
            ).all()
        return [(m - r).total_seconds() for r, m in rows]

    def wait_idle(self, timeout: float = 900) -> None:
        """Until no job is due (every follow-up job of earlier phases done)."""
        t0 = time.monotonic()
        while self.pending() and time.monotonic() - t0 < timeout:
            time.sleep(0.5)

    def wait_drained(self, prefix: str, n: int, timeout: float) -> float:
        """Seconds until all `n` events of `prefix` are processed (or the timeout)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.messages(prefix) >= n:
                return time.monotonic() - t0
            time.sleep(0.25)
        return float("nan")


# -- load ---------------------------------------------------------------------------------------
def send(
    ports: list[int], reqs_by_port: list[list[bytes]], rate: float | None, connections: int
) -> _load.Result:
    """Spread requests over the API processes (as a reverse proxy would)."""

    async def go() -> list[_load.Result]:
        per = max(1, connections // len(ports))
        r = [None if rate is None else rate / len(ports)] * len(ports)
        return list(
            await asyncio.gather(
                *(
                    _load.run("127.0.0.1", port, reqs, connections=per, rate=r[i])
                    for i, (port, reqs) in enumerate(zip(ports, reqs_by_port, strict=True))
                )
            )
        )

    results = asyncio.run(go())
    total = _load.Result()
    total.started = min(r.started for r in results)
    total.finished = max(r.finished for r in results)
    for r in results:
        total.latencies += r.latencies
        for k, v in r.statuses.items():
            total.statuses[k] = total.statuses.get(k, 0) + v
    return total


def build(
    n: int, channel_id: int, secret: str, prefix: str, ports: list[int], senders: int = 5000
) -> list[list[bytes]]:
    """Requests for `n` events, split over the ports; signed now (valid for 300 s)."""
    by_port: list[list[bytes]] = [[] for _ in ports]
    chunk = make_requests(n, channel_id, secret, prefix, ports[0], senders=senders)
    for i, req in enumerate(chunk):
        by_port[i % len(ports)].append(req)
    return by_port


# -- the runs -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="")
    ap.add_argument("--apis", type=int, default=2)
    # As many worker processes as cores: more contend for the cores with the API processes,
    # the load generator and PostgreSQL (2 x 2 threads: 170 events/s, 4 x 2: 95 on 2 cores).
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--threads", type=int, default=2, help="threads per worker process")
    ap.add_argument("--events", type=int, default=20000, help="events for the throughput run")
    ap.add_argument("--scaling-events", type=int, default=6000)
    ap.add_argument("--latency-seconds", type=int, default=30)
    ap.add_argument("--soak-seconds", type=int, default=600)
    ap.add_argument("--soak-rate", type=float, default=0, help="events/s in the soak (0: half of max)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--chart", default=str(ROOT / "docs" / "scale_soak_rss.png"))
    ap.add_argument("--only", default="", help="comma list: throughput,latency,scaling,soak,burst")
    ap.add_argument("--rate", type=float, default=0, help="end-to-end capacity, if throughput is skipped")
    ap.add_argument(
        "--pg-statements",
        type=int,
        default=0,
        help="after the throughput run, print PostgreSQL's N costliest statements (pg_stat_statements)",
    )
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops everything
    tmp = Path(tempfile.mkdtemp(prefix="scrm-scale-"))
    ctl: list[str] = []
    url = args.database_url
    pgdata: Path | None = None
    if not url:
        url, ctl = start_postgres(tmp, stat_statements=args.pg_statements > 0)
        pgdata = tmp / "pg" / "data"
    env = dict(
        os.environ,
        SCRM_DATABASE_URL=url,
        SCRM_SECRET_KEY="bench",
        SCRM_LOG_LEVEL="WARNING",
        SCRM_INPROCESS_WORKER="false",
    )
    channel_id, secret = setup(env)
    probe = Probe(url)
    procs = Procs(env)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "database": "PostgreSQL 15 (fsync on, synchronous_commit on)" if ctl else "given",
        "date": dt.date.today().isoformat(),
        "load_average_at_start": os.getloadavg(),
        "apis": args.apis,
        "workers": f"{args.workers} × {args.threads} threads",
    }

    def log(key: str, value: Any) -> None:
        results[key] = value
        print(json.dumps({key: value}, ensure_ascii=False), flush=True)

    try:
        ports = procs.start_apis(args.apis)
        # Warm up the APIs and the workers (NLP models load before the first claim).
        procs.start_workers(args.workers, args.threads)
        send(ports, build(400, channel_id, secret, "warm", ports), None, args.connections)
        probe.wait_drained("warm", 400, 300)
        if args.pg_statements and ctl:
            from sqlalchemy import text

            with probe.db.transaction() as s:
                s.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
                s.execute(text("SELECT pg_stat_statements_reset()"))
        max_rate = args.rate

        if not only or "throughput" in only:
            # 1. End-to-end: all events in as fast as the API takes them, until the last is processed.
            n = args.events
            reqs = build(n, channel_id, secret, "tput", ports)
            cpu0 = cpu_split(procs, pgdata) | {"client": cpu_seconds(os.getpid())}
            t0 = time.monotonic()
            r = send(ports, reqs, None, args.connections)
            ingest_s = r.duration
            drained = probe.wait_drained("tput", n, 900)
            total = time.monotonic() - t0
            cpu1 = cpu_split(procs, pgdata) | {"client": cpu_seconds(os.getpid())}
            busy = sum(cpu1[k] - cpu0[k] for k in cpu1) / total / (os.cpu_count() or 1)
            max_rate = n / total
            log(
                "throughput",
                {
                    "events": n,
                    "ingest_seconds": round(ingest_s, 1),
                    "ingest_per_s": round(r.statuses.get(202, 0) / ingest_s),
                    "end_to_end_seconds": round(total, 1),
                    "end_to_end_per_s": round(max_rate),
                    "drain_after_ingest_s": round(drained - 0, 1),
                    "statuses": r.statuses,
                    "http_p99_ms": round(r.pct(99) * 1000, 1),
                    # Where the cores went: the load generator (this process) shares the machine.
                    "cpu_ms_per_event": {k: round((cpu1[k] - cpu0[k]) * 1000 / n, 2) for k in cpu1},
                    "cpu_busy_share": round(busy, 2),
                },
            )
            if args.pg_statements and ctl:
                print_pg_statements(probe, args.pg_statements, n)

        if not only or "latency" in only:
            probe.wait_idle()
            # 2. Received-to-visible at half the end-to-end rate.
            rate = max(5.0, round((max_rate or 600) / 2))
            n = int(rate * args.latency_seconds)
            reqs = build(n, channel_id, secret, "half", ports)
            r = send(ports, reqs, rate, args.connections)
            probe.wait_drained("half", n, 300)
            vis = probe.visible("half")
            log(
                "latency_at_half_load",
                {
                    "rate": rate,
                    "events": n,
                    "achieved_per_s": round(n / r.duration),
                    "http_p50_ms": round(r.pct(50) * 1000, 1),
                    "http_p99_ms": round(r.pct(99) * 1000, 1),
                    "visible_p50_ms": round(pct(vis, 50) * 1000),
                    "visible_p99_ms": round(pct(vis, 99) * 1000),
                    "visible_max_ms": round(max(vis) * 1000) if vis else None,
                },
            )

        if not only or "scaling" in only:
            # 3. Worker scaling: a backlog of N events (workers stopped), then k workers drain it.
            scaling: dict[str, Any] = {}
            for k in (1, 2, 4):
                probe.wait_idle()
                procs.stop_workers()
                n = args.scaling_events
                prefix = f"scale{k}"
                send(ports, build(n, channel_id, secret, prefix, ports), None, args.connections)
                t0 = time.monotonic()
                procs.start_workers(k, args.threads)
                # Start-up (imports, models) is timed separately: first processed event.
                while probe.messages(prefix) == 0:
                    time.sleep(0.1)
                t1 = time.monotonic()
                probe.wait_drained(prefix, n, 900)
                t2 = time.monotonic()
                scaling[f"{k}_workers"] = {
                    "startup_s": round(t1 - t0, 1),
                    "drain_per_s": round(n / (t2 - t1)),
                }
                log("scaling", scaling)
            procs.stop_workers()
            procs.start_workers(args.workers, args.threads)
            time.sleep(5)

        if not only or "burst" in only:
            probe.wait_idle()
            # 4. Queue age through a 5x burst: base rate B for 20 s, 5B for 10 s, B for 40 s.
            base = max(2.0, round((max_rate or 600) / 5))
            phases = [(base, 20), (base * 5, 10), (base, 40)]
            ages: list[tuple[float, float]] = []
            stop_at = [0.0]

            async def sample() -> None:
                t0 = time.monotonic()
                while stop_at[0] == 0 or time.monotonic() < stop_at[0]:
                    ages.append((time.monotonic() - t0, await asyncio.to_thread(probe.oldest_age)))
                    await asyncio.sleep(1.0)

            async def drive() -> None:
                task = asyncio.create_task(sample())
                for i, (rate, secs) in enumerate(phases):
                    n = int(rate * secs)
                    reqs = build(n, channel_id, secret, f"burst{i}", ports)
                    per = max(1, args.connections // len(ports))
                    await asyncio.gather(
                        *(
                            _load.run("127.0.0.1", p, rq, connections=per, rate=rate / len(ports))
                            for p, rq in zip(ports, reqs, strict=True)
                        )
                    )
                stop_at[0] = time.monotonic() + 60
                while time.monotonic() < stop_at[0]:
                    if await asyncio.to_thread(probe.pending) == 0:
                        break
                    await asyncio.sleep(1)
                stop_at[0] = time.monotonic()
                await task

            asyncio.run(drive())
            peak_t, peak = max(ages, key=lambda a: a[1]) if ages else (0.0, 0.0)
            recovered = next((t for t, a in ages if t > peak_t and a < 1.0), None)
            log(
                "burst",
                {
                    "base_rate": base,
                    "burst_rate": base * 5,
                    "peak_oldest_queued_age_s": round(peak, 1),
                    "peak_at_s": round(peak_t),
                    "back_under_1s_at_s": round(recovered) if recovered is not None else None,
                    "burst_ends_at_s": 30,
                    "samples": [(round(t), round(a, 2)) for t, a in ages],
                },
            )

        if not only or "soak" in only:
            probe.wait_idle()
            # 5. Soak: steady load; RSS of every process and queue age every 10 s.
            rate = args.soak_rate or max(5.0, round((max_rate or 600) / 2))
            samples: list[dict[str, float]] = []
            t0 = time.monotonic()
            sent = 0
            chunk_s = 30
            i = 0
            cpu0 = cpu_split(procs, pgdata)
            processed0 = probe.processed_total()
            while time.monotonic() - t0 < args.soak_seconds:
                n = int(rate * chunk_s)
                reqs = build(n, channel_id, secret, f"soak{i}", ports, senders=20000)
                r = send(ports, reqs, rate, args.connections)
                sent += r.statuses.get(202, 0)
                i += 1
                row = {"t": round(time.monotonic() - t0), "age": round(probe.oldest_age(), 2)}
                row.update({k: round(rss_mb(pid), 1) for k, pid in procs.pids().items()})
                samples.append(row)
                print(json.dumps(row), flush=True)
            total = time.monotonic() - t0
            cpu1 = cpu_split(procs, pgdata)
            processed = probe.processed_total() - processed0
            log(
                "cpu_ms_per_processed_event",
                {k: round((cpu1[k] - cpu0[k]) * 1000 / max(1, processed), 2) for k in cpu1}
                | {"events": processed},
            )
            log(
                "soak",
                {
                    "seconds": round(total),
                    "rate": rate,
                    "events": sent,
                    "rss_first_mb": {k: v for k, v in samples[0].items() if k not in ("t", "age")},
                    "rss_last_mb": {k: v for k, v in samples[-1].items() if k not in ("t", "age")},
                    "max_oldest_queued_age_s": max(s["age"] for s in samples),
                },
            )
            chart(samples, args.chart, rate)
    finally:
        procs.stop()
        results["load_average_at_end"] = os.getloadavg()
        if ctl:
            subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(results, indent=2, ensure_ascii=False))


def chart(samples: list[dict[str, float]], path: str, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    keys = [k for k in samples[0] if k not in ("t", "age")]
    xs = [s["t"] / 60 for s in samples]
    for k in keys:
        ax.plot(xs, [s.get(k, 0) for s in samples], label=k)
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Soak at {rate:g} events/s: resident memory per process")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"chart written to {path}")


if __name__ == "__main__":
    main()
