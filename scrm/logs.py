"""Logging: plain or structured JSON lines; secrets are never passed to a logger."""

from __future__ import annotations

import json
import logging
import random
import sys
from contextvars import ContextVar
from typing import Any

from scrm.config import Settings

# Set by the request-id middleware (scrm/app.py) and by the worker around each job, so every
# log line written while handling one carries its id.
request_id_var: ContextVar[str | None] = ContextVar("scrm_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("scrm_job_id", default=None)


class ContextFilter(logging.Filter):
    """Copies the current request id and job id onto each record (when set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if getattr(record, "job_id", None) is None:
            record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("request_id", "job_id"):
            value = getattr(record, key, None)
            if value is not None:
                data[key] = value
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter() if settings.log_json else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    for noisy in ("alembic", "jieba"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class RequestIdMiddleware:
    """Pure ASGI (does not buffer SSE): takes `X-Request-ID` from the proxy or makes one, puts it
    on every log line of the request, echoes it in the response and counts answers by status."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:64]
                break
        # 128 random bits as 32 hex digits, like uuid4().hex, from the process's PRNG: an id to
        # correlate log lines needs no OS entropy (os.urandom is a syscall that also releases
        # the GIL, costing the event loop a thread switch on every request).
        rid = rid if rid and rid.isprintable() else f"{random.getrandbits(128):032x}"
        token = request_id_var.set(rid)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
                _count_answer(message.get("status", 0))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


_answers: dict[int, Any] = {}


def _count_answer(status: int) -> None:
    """``scrm_http_requests_total{status}`` += 1, with the labelled child looked up once."""
    child = _answers.get(status)
    if child is None:
        from scrm import metrics

        child = _answers[status] = metrics.HTTP_REQUESTS.labels(str(status))
    child.inc()
