"""Live updates over SSE against a real uvicorn server: a webhook message reaches the stream."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.conftest import Workspace
from tests.web.conftest import LiveServer, csrf_of
from tests.web.helpers import deliver


def _login(http: httpx.Client, email: str) -> None:
    page = http.get("/login")
    r = http.post(
        "/login", data={"email": email, "password": "password123", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 303


def test_sse_streams_new_messages_of_my_workspace_only(live_server: LiveServer, workspace: Workspace) -> None:
    from tests.conftest import make_workspace

    other = make_workspace(live_server.db, "xiaomo")
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        assert http.get("/ui/events").status_code in (303, 307) or True
        unauth = http.get("/ui/events", follow_redirects=False)
        assert unauth.status_code == 303
        _login(http, "agent@yuncheng.test")
        received: list[tuple[str, dict[str, str]]] = []
        ready = threading.Event()

        def listen() -> None:
            with http.stream("GET", "/ui/events", timeout=15) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                event = ""
                for line in r.iter_lines():
                    if line.startswith("retry:"):
                        ready.set()
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        received.append((event, json.loads(line[6:])))
                        if event == "message.received":
                            return

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        assert ready.wait(10)
        time.sleep(0.2)
        deliver(http, other, "x1", "别家的消息")  # another workspace: never on my stream
        deliver(http, workspace, "e1", "我的包丢了")
        t.join(timeout=15)
    names = [n for n, _ in received]
    assert "message.received" in names
    assert names.count("message.received") == 1
    assert all("text" not in data for _, data in received)  # ids only; the page fetches what it may see
