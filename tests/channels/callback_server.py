"""A minimal callback endpoint wired the way the HTTP layer should wire the handlers.

Only for tests: shows the contract (verify → parse → dedup → ack/passive reply) end to end.
"""

from __future__ import annotations

from collections.abc import Callable

from scrm.channels.base import InboundEvent, InboundRejected
from scrm.channels.wechat.fake import FakeHttpServer, RecordedRequest, Response

GetHandler = Callable[[dict[str, str]], str]
PostHandler = Callable[[dict[str, str], bytes], tuple[list[InboundEvent], bytes]]


class CallbackServer(FakeHttpServer):
    def __init__(self, on_get: GetHandler, on_post: PostHandler) -> None:
        super().__init__()
        self.on_get = on_get
        self.on_post = on_post
        self.stored: dict[str, InboundEvent] = {}
        self.duplicates = 0

    def route(self, request: RecordedRequest) -> Response:
        try:
            if request.method == "GET":
                return 200, {"Content-Type": "text/plain"}, self.on_get(request.query).encode()
            events, body = self.on_post(request.query, request.body)
        except InboundRejected as exc:
            return exc.status_code, {"Content-Type": "text/plain"}, exc.detail.encode()
        with self._lock:
            for event in events:  # UNIQUE(source, external_id) ... ON CONFLICT DO NOTHING
                if event.external_id in self.stored:
                    self.duplicates += 1
                self.stored.setdefault(event.external_id, event)
        return 200, {"Content-Type": "text/xml"}, body
