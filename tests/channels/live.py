"""A real uvicorn server on 127.0.0.1 (random port) serving the real app on the test database,
for tests that need pushes in flight at the same time or a client in another process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from scrm.app import create_app
from scrm.config import Settings
from scrm.db import Database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(db: Database, settings: Settings, **overrides: Any) -> Iterator[str]:
    """The product app (fast path, group committer, no in-process worker) at the yielded URL."""
    app = create_app(settings.model_copy(update={"inprocess_worker": False, **overrides}), db)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
