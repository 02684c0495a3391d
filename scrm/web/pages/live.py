"""Live updates: a Server-Sent Events stream of the workspace's committed domain events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from scrm import live
from scrm.web.deps import Ctx

router = APIRouter()
KEEPALIVE_SECONDS = 15.0


@router.get("/ui/events")
async def events(ctx: Ctx) -> StreamingResponse:
    workspace_id = ctx.principal.workspace_id
    request = ctx.request

    async def stream() -> AsyncIterator[str]:
        sub = live.subscribe(workspace_id)
        try:
            yield "retry: 3000\n\n"
            while True:
                if await request.is_disconnected():
                    break
                try:
                    name, data = await asyncio.wait_for(sub.queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                # Never message text: the browser fetches the fragment it may see.
                yield f"event: {name}\ndata: {json.dumps(live.slim(data))}\n\n"
        finally:
            live.unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
