"""Server-rendered web UI. (Placeholder root until the agent workspace lands.)"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse


def mount(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse("<!doctype html><meta charset=utf-8><title>SCRM</title><h1>SCRM</h1>")
