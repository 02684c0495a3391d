"""The ASGI application: REST API, inbound webhooks, web UI, health and metrics."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from scrm import api, jobs, live, metrics, migrate
from scrm.automation import passive as rule_replies
from scrm.config import Settings, get_settings
from scrm.db import Database
from scrm.errors import AppError
from scrm.inbound import passive
from scrm.inbound.endpoints import router as inbound_router
from scrm.inbound.social import InboundFastPath
from scrm.logs import RequestIdMiddleware
from scrm.worker.runner import Worker

log = logging.getLogger(__name__)
_heap_frozen = False


def freeze_startup_heap() -> None:
    """Move everything alive after start-up (modules, the app, caches: about 170,000 objects)
    out of the garbage collector's sight, once per process.

    Otherwise each full collection walks all of them again, pausing the event loop for about
    100-300 ms under load: the p99 of every answer, pushes included. Objects made later are
    collected as usual.
    """
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


def create_app(settings: Settings | None = None, db: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    jobs.load()
    database = db or Database(settings.database_url)
    run_worker = settings.inprocess_worker if settings.inprocess_worker is not None else database.is_sqlite
    # Rules that the push alone decides answer in the platform's response (scrm.automation.passive).
    passive.register("rules", rule_replies.replier(database))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker: Worker | None = None
        thread: threading.Thread | None = None
        listener = None if database.is_sqlite else live.Listener(database.url)
        if listener is not None:
            listener.start()
        if run_worker:
            worker = Worker(database, settings)
            thread = threading.Thread(target=worker.run_forever, name="scrm-inprocess-worker", daemon=True)
            thread.start()
        app.state.worker = worker
        freeze_startup_heap()
        try:
            yield
        finally:
            if worker and thread:
                worker.stop()
                thread.join(timeout=10)
            if listener is not None:
                listener.stop()

    app = FastAPI(
        title="SCRM",
        version="0.1.0",
        description="Social CRM for Weibo and WeChat",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.db = database
    app.state.settings = settings

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        return JSONResponse(
            {
                "error": "invalid",
                "detail": first.get("msg", "invalid request"),
                "field": ".".join(loc) or None,
                "errors": [
                    {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg")} for e in errors[:20]
                ],
            },
            status_code=422,
        )

    @app.exception_handler(InterfaceError)  # a pooled connection the database closed under us
    @app.exception_handler(OperationalError)
    async def _db_unavailable(_request: Request, exc: OperationalError | InterfaceError) -> JSONResponse:
        # Lock timeouts and lost connections are the server's condition, not the caller's
        # fault: ask them to retry (WeChat and our webhook senders do).
        log.warning("database unavailable: %s", str(exc.orig)[:200])
        return JSONResponse(
            {"error": "unavailable", "detail": "database busy, retry shortly"},
            status_code=503,
            headers={"retry-after": "1"},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": "http", "detail": exc.detail}, status_code=exc.status_code)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> Response:
        try:
            with database.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            if not migrate.is_current(database):
                return JSONResponse({"ready": False, "reason": "migrations pending"}, status_code=503)
        except Exception as exc:
            return JSONResponse({"ready": False, "reason": exc.__class__.__name__}, status_code=503)
        return JSONResponse({"ready": True})

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api.router)
    app.include_router(inbound_router)
    from scrm.web.routes import mount as mount_web

    mount_web(app)
    metrics.install_queue_collector(database)
    # Platform pushes (POST /hooks/<kind>/<id>) skip FastAPI's routing: same answers, less CPU.
    app.add_middleware(InboundFastPath)
    app.add_middleware(RequestIdMiddleware)  # outermost: every line of a request carries its id
    return app
