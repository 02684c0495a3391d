"""Web UI fixtures: a TestClient on the real app and database, logged-in agents and admins,
and a live uvicorn server (for SSE and the browser tests)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import uvicorn
from fastapi.testclient import TestClient

from scrm.app import create_app
from scrm.config import Settings
from scrm.db import Database
from tests.conftest import Workspace

CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf_of(html: str) -> str:
    m = CSRF_META.search(html) or CSRF_FIELD.search(html)
    assert m, "no CSRF token on the page"
    return m.group(1)


class Browser:
    """A TestClient that logs in through the login form and remembers the page's CSRF token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, email: str, password: str = "password123") -> None:
        page = self.client.get("/login")
        r = self.client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert r.status_code == 303, r.text
        self.csrf = csrf_of(self.client.get("/inbox").text)

    def get(self, url: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(url, **kw)

    def post(self, url: str, data: dict[str, str] | None = None, *, htmx: bool = True, **kw):  # type: ignore[no-untyped-def]
        headers = {"X-CSRF-Token": self.csrf, "HX-Request": "true"} if htmx else {}
        body = dict(data or {})
        if not htmx:
            body.setdefault("csrf_token", self.csrf)
        return self.client.post(url, data=body, headers=headers, follow_redirects=False, **kw)


@pytest.fixture
def app(db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    return create_app(settings, db)


@pytest.fixture
def client(app) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(app)


@pytest.fixture
def agent(app, workspace: Workspace) -> Browser:  # type: ignore[no-untyped-def]
    b = Browser(TestClient(app))
    b.login(f"agent@{workspace.slug}.test")
    return b


@pytest.fixture
def admin(app, workspace: Workspace) -> Browser:  # type: ignore[no-untyped-def]
    b = Browser(TestClient(app))
    b.login(f"admin@{workspace.slug}.test")
    return b


@dataclass
class LiveServer:
    url: str
    db: Database
    settings: Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live_server(db: Database, settings: Settings) -> Iterator[LiveServer]:
    """uvicorn on 127.0.0.1:<random> against the test database, with the in-process worker."""
    live_settings = settings.model_copy(update={"inprocess_worker": True, "worker_poll_interval": 0.05})
    app = create_app(live_settings, db)
    port = _free_port()
    # An open SSE stream (a browser page still on it) would hold a graceful shutdown forever:
    # give open connections one second, then close them.
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", db, live_settings)
    server.should_exit = True
    thread.join(timeout=15)
