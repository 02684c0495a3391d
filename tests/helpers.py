"""Small helpers shared by tests: signed webhook requests, running the worker, a fake
callback server that records what it receives."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from scrm.channels.base import InboundEvent
from scrm.channels.webhook.handler import sign
from scrm.config import Settings
from scrm.db import Database
from scrm.inbound import service as inbound
from scrm.worker.runner import Worker

T = TypeVar("T")


def webhook_event(
    event_id: str, text: str = "你好", sender: str = "u1", name: str = "小李", **extra: Any
) -> bytes:
    body = {
        "id": event_id,
        "type": "message",
        "sender": {"id": sender, "name": name},
        "text": text,
        "sent_at": dt.datetime.now(dt.UTC).isoformat(),
        **extra,
    }
    return json.dumps(body, ensure_ascii=False).encode()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "x-scrm-timestamp": ts,
        "x-scrm-signature": sign(secret, ts, body),
        "content-type": "application/json",
    }


def accept_events(db: Database, workspace_id: int, account_id: int, events: list[InboundEvent]) -> None:
    """Accept parsed events on a webhook account as the webhook endpoint does (one transaction)."""
    with db.transaction() as s:
        inbound.accept(
            s,
            workspace_id=workspace_id,
            channel_account_id=account_id,
            channel_kind="webhook",
            events=events,
            raw="{}",
        )


def run_jobs(db: Database, settings: Settings, max_seconds: float = 30) -> int:
    return Worker(db, settings).run_until_idle(max_seconds)


class Recorder:
    """A fake HTTP endpoint on 127.0.0.1: fails the first `fail_first` requests with 503."""

    def __init__(self, fail_first: int = 0, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.status = status
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with recorder._lock:
                    n = len(recorder.requests)
                    recorder.requests.append({"headers": dict(self.headers), "body": body})
                code = 503 if n < recorder.fail_first else recorder.status
                payload = json.dumps({"id": f"ext-{n}"}).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"

    @contextmanager
    def running(self) -> Iterator[Recorder]:
        t = threading.Thread(target=self.server.serve_forever, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def run_concurrently(work: Callable[[int], T], workers: int) -> list[T]:
    """Run `work(i)` for i in range(workers) in threads released together at a barrier;
    returns their results in order and re-raises the first error any of them hit."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results
