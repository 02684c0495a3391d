"""The `scrm` command line (Typer). Bad input prints a clear message and exits non-zero."""

from __future__ import annotations

import functools
import json
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from scrm.automation.cli import app as routing_app
from scrm.config import get_settings
from scrm.contact import imports
from scrm.db import Database
from scrm.errors import AppError
from scrm.workspace.wechat_tools_cli import app as wechat_tools_app

app = typer.Typer(help="SCRM: social customer service and CRM for Weibo and WeChat.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
demo_app = typer.Typer(help="The demo workspaces.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens.", no_args_is_help=True)
channels_app = typer.Typer(help="Channel accounts.", no_args_is_help=True)
import_app = typer.Typer(help="Import contacts, orders and stores from CSV or JSONL.", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs and dead letters.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(demo_app, name="demo")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
app.add_typer(channels_app, name="channels")
app.add_typer(import_app, name="import")
app.add_typer(jobs_app, name="jobs")
app.add_typer(routing_app, name="routing")
channels_app.add_typer(wechat_tools_app)  # scrm channels qrcode|menu|tags


def _nlp_with_database() -> None:
    """Chinese message understanding: predict, evaluate, train."""
    from scrm.nlp.triage import install_examples_provider

    install_examples_provider(_db())


def _mount_nlp() -> None:
    from scrm.nlp.cli import app as nlp

    # The callback is given here, not set on the NLP app, so that app stays database-free.
    app.add_typer(nlp, name="nlp", callback=_nlp_with_database)


_mount_nlp()

console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn expected errors into a one-line message and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AppError as exc:
            raise fail(exc.message) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise fail(f"{exc.strerror}: {exc.filename}") from None
        except ValueError as exc:
            raise fail(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _db() -> Database:
    settings = get_settings()
    if settings.is_sqlite:
        path = settings.database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    return Database(settings.database_url)


def _setup_logging() -> None:
    from scrm.logs import configure

    configure(get_settings())


# -- serve / worker ----------------------------------------------------------------------------
@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes (each stateless).")] = 1,
    demo_fakes: Annotated[
        bool,
        typer.Option(
            "--demo-fakes",
            help="Send WeChat/Weibo API calls to fake platforms on 127.0.0.1 (the demo; `make run`).",
        ),
    ] = False,
) -> None:
    """Serve the web UI, the REST API and the inbound webhooks."""
    import os

    import uvicorn

    _setup_logging()
    db = _db()
    from scrm import migrate

    if not migrate.is_current(db):
        raise fail("the database schema is not current: run `scrm db upgrade` first")
    fakes = None
    if demo_fakes:
        from scrm.demo.fakes import start_demo_fakes

        fakes = start_demo_fakes(db)
        os.environ.update(fakes.env)  # read by the app (and any --workers children) at start
        get_settings.cache_clear()
    _print_banner(db, host, port)
    if fakes is not None:
        for name, value in fakes.env.items():
            out.print(f"fake platform API: {name}={value} (replies to demo fans are delivered there)")
    db.dispose()
    try:
        uvicorn.run(
            "scrm.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
            access_log=False,
        )
    finally:
        if fakes is not None:
            fakes.stop()


def _print_banner(db: Database, host: str, port: int) -> None:
    from scrm.demo import loader

    with db.transaction(readonly=True) as session:
        logins = loader.demo_logins(session)
    out.print(f"\n[bold]SCRM[/bold] is running at [link]http://{host}:{port}/[/link]")
    out.print(f"API docs: http://{host}:{port}/api/v1/docs")
    if logins:
        out.print("Demo logins (password [bold]demo1234[/bold]):")
        for line in logins:
            out.print(f"  {line}")
    out.print("")


@app.command()
@friendly
def worker(
    concurrency: Annotated[int, typer.Option(help="Worker threads in this process.")] = 1,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics on this port (0: off).", min=0, max=65535)
    ] = 0,
    metrics_host: Annotated[str, typer.Option(help="Interface for --metrics-port.")] = "127.0.0.1",
) -> None:
    """Run a job worker process (PostgreSQL deployments run several)."""
    from scrm import jobs
    from scrm.worker.runner import Worker

    _setup_logging()
    jobs.load()
    settings = get_settings()
    w = Worker(_db(), settings, concurrency=max(1, concurrency))
    if metrics_port:
        from prometheus_client import start_http_server

        from scrm import metrics

        metrics.install_queue_collector(w.db)
        start_http_server(metrics_port, addr=metrics_host)

    def _graceful(_signum: int, _frame: Any) -> None:
        console.print("stopping: finishing running jobs, releasing claimed ones")
        w.stop()

    signal.signal(signal.SIGTERM, _graceful)
    signal.signal(signal.SIGINT, _graceful)
    w.warm_up()
    console.print(f"worker {w.worker_id} running with {w.concurrency} thread(s)")
    w.run_forever()


# -- db ----------------------------------------------------------------------------------------
@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    from scrm import migrate

    db = _db()
    migrate.upgrade(db, revision)
    out.print(f"database at {revision}: {_redact(db.url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- demo --------------------------------------------------------------------------------------
@demo_app.command("load")
@friendly
def demo_load() -> None:
    """Load the demo workspaces (idempotent: a second run changes nothing)."""
    from scrm.demo import loader

    summary = loader.load(_db())
    for line in summary:
        out.print(line)


@demo_app.command("replay")
@friendly
def demo_replay(
    speed: Annotated[
        float, typer.Option(help="Time compression: 60 replays an hour per minute; 0 = no waiting.")
    ] = 0,
    url: Annotated[str, typer.Option(help="Base URL of the running server.")] = "http://127.0.0.1:8000",
    limit: Annotated[int, typer.Option(help="Replay only the first N events (0 = all).")] = 0,
    workspace: Annotated[str | None, typer.Option(help="Only this workspace.")] = None,
) -> None:
    """Replay a recorded day of Chinese fan traffic through the real inbound endpoints."""
    from scrm.demo import replay

    db = _db()
    events = replay.plan(db, workspace=workspace, limit=limit)
    with Progress(
        TextColumn("replaying"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("replay", total=len(events))
        stats = replay.run(events, url, speed=speed, on_sent=lambda: progress.advance(task))
    out.print(json.dumps(stats, ensure_ascii=False))
    if stats.get("failed"):
        raise typer.Exit(1)


# -- users / tokens ----------------------------------------------------------------------------
@users_app.command("create")
@friendly
def users_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    workspace: Annotated[str | None, typer.Option(help="Add to this workspace (slug).")] = None,
    role: Annotated[str, typer.Option(help="admin, supervisor, agent or department.")] = "agent",
) -> None:
    """Create a user, optionally as a member of a workspace."""
    from scrm.workspace import service

    db = _db()
    with db.transaction() as session:
        user = service.create_user(session, email, password, name)
        if workspace:
            ws = service.get_workspace(session, workspace)
            service.add_member(session, ws.id, user, role)
    out.print(f"created user {user.email}" + (f" ({role} in {workspace})" if workspace else ""))


@tokens_app.command("create")
@friendly
def tokens_create(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    user: Annotated[str, typer.Option(help="Email of a member of that workspace.")],
    name: Annotated[str, typer.Option(help="What the token is for.")] = "",
) -> None:
    """Create an API token and print it once (only its hash is stored)."""
    from scrm.errors import NotFound
    from scrm.workspace import repository, service

    db = _db()
    with db.transaction() as session:
        ws = service.get_workspace(session, workspace)
        u = service.get_user_by_email(session, user)
        member = repository.member_by_user(session, ws.id, u.id)
        if member is None:
            raise NotFound(f"{user} is not a member of {workspace}")
        token, _row = service.create_api_token(session, ws.id, member.id, name)
    print(token)


# -- channels ----------------------------------------------------------------------------------
@channels_app.command("create")
@friendly
def channels_create(
    kind: Annotated[str, typer.Argument(help="webhook, wechat, weibo or wecom.")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    name: Annotated[str, typer.Option(help="A name for the account.")],
    callback_url: Annotated[str, typer.Option(help="webhook: where replies are POSTed.")] = "",
    config: Annotated[str, typer.Option(help="JSON object of channel settings.")] = "{}",
    secrets: Annotated[str, typer.Option(help="JSON object of channel secrets.")] = "{}",
    external_id: Annotated[str, typer.Option(help="wechat AppID / weibo uid / wecom CorpID.")] = "",
) -> None:
    """Register a channel account; prints JSON with its id, inbound URL and (webhook) secret.

    Secrets (--secrets JSON), required ones first:

    webhook: secret (generated when omitted); config callback_url.

    wechat: token, secret (AppSecret); optional encoding_aes_key, previous_encoding_aes_key.
    --external-id AppID. Config: original_id, require_encryption, fallback_template_id,
    fallback_template_data, fallback_template_url.

    weibo: app_secret, access_token. --external-id the brand uid. Config: app_key, poll,
    poll_max_pages.

    wecom (receive only): token, encoding_aes_key. --external-id CorpID. Config: agent_id,
    receive_id.
    """
    import secrets as pysecrets

    from scrm.workspace import service

    try:
        cfg = json.loads(config)
        sec = json.loads(secrets)
    except json.JSONDecodeError as exc:
        raise fail(f"--config/--secrets must be JSON objects: {exc}") from None
    if not isinstance(cfg, dict) or not isinstance(sec, dict):
        raise fail("--config/--secrets must be JSON objects")
    id_field = {"wechat": "appid", "weibo": "uid", "wecom": "corpid"}.get(kind)
    if id_field and not (external_id or cfg.get(id_field)):
        raise fail(f"{kind} needs --external-id (the {id_field})")
    if kind == "webhook":
        sec.setdefault("secret", pysecrets.token_urlsafe(32))
        if callback_url:
            cfg["callback_url"] = callback_url
    db = _db()
    with db.transaction() as session:
        ws = service.get_workspace(session, workspace)
        account = service.create_channel_account(
            session,
            ws.id,
            kind,
            name,
            config=cfg,
            secrets={k: str(v) for k, v in sec.items()},
            external_id=external_id,
        )
        result: dict[str, Any] = {"id": str(account.id), "inbound_url": service.inbound_url(account)}
        if kind != "webhook":  # what was stored, secrets masked
            result.update(
                external_id=account.external_id,
                config=dict(account.config),
                secrets=service.masked_secrets(account),
            )
    if kind == "webhook":
        result["secret"] = sec["secret"]  # generated here, so shown once in full
    print(json.dumps(result, ensure_ascii=False))


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"{option} must be a JSON object: {exc}") from None
    if not isinstance(value, dict):
        raise fail(f"{option} must be a JSON object")
    return value


@channels_app.command("update")
@friendly
def channels_update(
    account: Annotated[int, typer.Argument(help="Channel account id (from `scrm channels create`).")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    name: Annotated[str, typer.Option(help="A new name.")] = "",
    config: Annotated[str, typer.Option(help="JSON object merged into the config; null removes a key.")] = "",
    secrets: Annotated[
        str, typer.Option(help='JSON object merged into the secrets; null or "" removes one.')
    ] = "",
    encoding_aes_key: Annotated[
        str,
        typer.Option(help="Rotate to this EncodingAESKey; the current one stays valid as the previous key."),
    ] = "",
    generate_aes_key: Annotated[
        bool,
        typer.Option(help="Rotate to a new random EncodingAESKey, printed once to paste into the platform."),
    ] = False,
    drop_previous_aes_key: Annotated[
        bool, typer.Option(help="Forget the previous EncodingAESKey (once the platform uses the new one).")
    ] = False,
) -> None:
    """Change a channel account's name, config or secrets; prints it with secrets masked.

    Key rotation (WeChat safe mode, WeCom): set the new key here first, then in the platform's
    console; pushes encrypted with either key verify meanwhile. Finish with
    --drop-previous-aes-key. Running servers use the change within 10 seconds.
    """
    import secrets as pysecrets
    import string

    from scrm.workspace import service

    cfg = _json_object(config, "--config") if config else None
    sec: dict[str, str | None] | None = None
    if secrets:
        sec = {k: (None if v is None else str(v)) for k, v in _json_object(secrets, "--secrets").items()}
    if encoding_aes_key and generate_aes_key:
        raise fail("give --encoding-aes-key or --generate-aes-key, not both")
    new_key = encoding_aes_key.strip()
    if generate_aes_key:
        alphabet = string.ascii_letters + string.digits
        new_key = "".join(pysecrets.choice(alphabet) for _ in range(43))
    if new_key or drop_previous_aes_key:
        sec = dict(sec or {})
        if new_key:
            sec["encoding_aes_key"] = new_key
        if drop_previous_aes_key:
            if new_key:
                raise fail("--drop-previous-aes-key finishes a rotation: run it after the new key is in use")
            sec["previous_encoding_aes_key"] = None
    if name == "" and cfg is None and sec is None:
        raise fail("nothing to change: give --name, --config, --secrets or an AES key option")
    db = _db()
    with db.transaction() as session:
        ws = service.get_workspace(session, workspace)
        row = service.update_channel_account(
            session, ws.id, account, name=name or None, config=cfg, secrets=sec
        )
        result: dict[str, Any] = {
            "id": str(row.id),
            "name": row.name,
            "inbound_url": service.inbound_url(row),
            "external_id": row.external_id,
            "config": dict(row.config),
            "secrets": service.masked_secrets(row),
        }
    if generate_aes_key:
        result["encoding_aes_key"] = new_key  # generated here, so shown once in full
    if new_key:
        console.print(
            "EncodingAESKey rotated: the previous key still decrypts pushes. Enter the new key in the "
            "platform's console, then run `scrm channels update "
            f"{account} --workspace {workspace} --drop-previous-aes-key`."
        )
    print(json.dumps(result, ensure_ascii=False))


@channels_app.command("simulate")
@friendly
def channels_simulate(
    kind: Annotated[str, typer.Argument(help="wechat or weibo.")],
    account: Annotated[int, typer.Option(help="Channel account id (from `scrm channels create`).")],
    text: Annotated[str, typer.Option(help="Text of the fan's message.")] = "",
    event: Annotated[
        str, typer.Option(help="wechat: subscribe, unsubscribe, SCAN, CLICK; weibo: follow, unfollow…")
    ] = "",
    scene: Annotated[str, typer.Option(help="QR scene (subscribe/SCAN) or menu key (CLICK).")] = "",
    fan: Annotated[str, typer.Option(help="The fan's openid / uid.")] = "",
    url: Annotated[str, typer.Option(help="Base URL of the running server.")] = "http://127.0.0.1:8000",
    location: Annotated[
        str,
        typer.Option(help='wechat: a location message "LAT,LNG[,LABEL]", e.g. "31.2323,121.4752,人民广场".'),
    ] = "",
) -> None:
    """POST one correctly signed (and for WeChat safe mode, encrypted) push to a running server."""
    from scrm.channels import registry
    from scrm.kit.geo import valid_point
    from scrm.workspace import service

    if kind not in ("wechat", "weibo"):
        raise fail("simulate supports wechat and weibo")
    if not text and not event and not location:
        raise fail("give --text, --event or --location")
    where: tuple[float, float, str] | None = None
    if location:
        if kind != "wechat":
            raise fail("--location is for wechat")
        parts = [p.strip() for p in location.split(",", 2)]
        try:
            point = valid_point(float(parts[0]), float(parts[1])) if len(parts) >= 2 else None
        except ValueError:
            point = None
        if point is None:
            raise fail('--location must be "LAT,LNG[,LABEL]" with -90..90 and -180..180')
        where = (point[0], point[1], parts[2] if len(parts) > 2 else "")
    db = _db()
    with db.transaction(readonly=True) as session:
        row = service.find_channel_account_for_inbound(session, account, kind)
        view = service.account_view(row)
    registry.get(kind)
    hook = f"{url.rstrip('/')}/hooks/{kind}/{account}"
    if kind == "wechat":
        from scrm.channels.wechat import simulate as wechat_sim
        from scrm.channels.wechat.spec import account_config as wechat_config

        key = None
        if scene:
            key = f"qrscene_{scene}" if event.lower() == "subscribe" else scene
        response = wechat_sim.simulate(
            hook,
            wechat_config(view),
            text=text or None,
            event=event or None,
            event_key=key,
            openid=fan or "oSimulatedFan000000000000000",
            location=where,
        )
    else:
        from scrm.channels.weibo import simulate as weibo_sim
        from scrm.channels.weibo.spec import account_config as weibo_config

        response = weibo_sim.simulate(
            hook,
            weibo_config(view),
            text=text or None,
            event=event or None,
            key=scene or None,
            sender_id=fan or "2489518277",
        )
    out.print(f"HTTP {response.status_code}")
    out.print(response.text or "(empty body)")
    if response.status_code >= 400:
        raise typer.Exit(1)


@channels_app.command("fake")
@friendly
def channels_fake(
    kind: Annotated[str, typer.Argument(help="wechat or weibo.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 0,
) -> None:
    """Run a fake WeChat / Weibo API on 127.0.0.1 for the demo (accepts every account in the DB).

    Then start the server with SCRM_WECHAT_API_BASE=http://127.0.0.1:PORT (or
    SCRM_WEIBO_API_BASE) so replies go to the fake instead of the real platform.
    """
    import time

    from scrm.demo.fakes import ENV, start_fake

    if kind not in ENV:
        raise fail("fake supports wechat and weibo")
    server = start_fake(_db(), kind, port)
    out.print(f"fake {kind} API on {server.base_url}")
    out.print(f"start the server with {ENV[kind]}={server.base_url}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


# -- imports -----------------------------------------------------------------------------------
def _do_import(kind: Literal["contacts", "orders", "stores"], workspace: str, file: Path) -> None:
    from scrm.store import imports as store_imports
    from scrm.workspace import service

    if not file.is_file():
        raise fail(f"no such file: {file}")
    fmt = imports.detect_format(file.name)
    db = _db()
    with db.transaction(readonly=True) as session:
        ws = service.get_workspace(session, workspace)
        wechat = service.list_channel_accounts(session, ws.id, "wechat")
        default_appid = wechat[0].external_id if len(wechat) == 1 else None
    total = file.stat().st_size
    with Progress(
        TextColumn(f"importing {kind}"),
        BarColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("import", total=total, rows=0)
        with file.open("rb") as fh:

            def advance(n: int) -> None:
                progress.update(task, completed=fh.tell(), rows=progress.tasks[0].fields["rows"] + n)

            if kind == "stores":
                report = store_imports.run_import(db, ws.id, fh, fmt, progress=advance)
            else:
                report = imports.run_import(
                    db,
                    ws.id,
                    kind,
                    fh,
                    fmt,
                    default_wechat_appid=default_appid,
                    progress=advance,
                )
    out.print(
        f"{report.rows} rows: {report.inserted} inserted, {report.updated} updated, "
        f"{report.rejected} rejected" + (f", {report.linked} linked to contacts" if kind == "orders" else "")
    )
    for err in report.errors[:50]:
        out.print(f"  line {err['line']}: {err['reason']}")
    if report.rejected > 50:
        out.print(f"  … and {report.rejected - 50} more")
    if report.rejected and report.rejected == report.rows:
        raise typer.Exit(1)


@import_app.command("contacts")
@friendly
def import_contacts(
    file: Annotated[Path, typer.Argument(help="FILE.csv or FILE.jsonl")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
) -> None:
    """Import contacts (name, phone, member_id, weibo_uid, wechat_openid, gender, city, tier, points)."""
    _do_import("contacts", workspace, file)


@import_app.command("orders")
@friendly
def import_orders(
    file: Annotated[Path, typer.Argument(help="FILE.csv or FILE.jsonl")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
) -> None:
    """Import orders and bookings; idempotent on (source, order_id)."""
    _do_import("orders", workspace, file)


@import_app.command("stores")
@friendly
def import_stores(
    file: Annotated[Path, typer.Argument(help="FILE.csv or FILE.jsonl")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
) -> None:
    """Import stores (code, name, latitude, longitude; city, address, hours, phone, active) for
    the nearest-store reply; idempotent on code."""
    _do_import("stores", workspace, file)


# -- jobs --------------------------------------------------------------------------------------
@jobs_app.command("list")
@friendly
def jobs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, done or dead.")] = None,
    kind: Annotated[str | None, typer.Option(help="Job kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """List recent jobs."""
    from scrm.worker import repository

    with _db().transaction(readonly=True) as session:
        for j in repository.list_jobs(session, status=status, kind=kind, limit=limit):
            err = (j.last_error or "").splitlines()[0][:80] if j.last_error else ""
            out.print(f"{j.id}  {j.kind:<20} {j.status:<8} attempts={j.attempts}/{j.max_attempts}  {err}")


def _job_or_fail(session: Any, job_id: int) -> Any:
    from scrm.worker import repository

    job = repository.get(session, job_id)
    if job is None:
        raise fail(f"no job {job_id}")
    return job


@jobs_app.command("show")
@friendly
def jobs_show(job_id: int) -> None:
    """Show one job with its payload and last error."""
    with _db().transaction(readonly=True) as session:
        j = _job_or_fail(session, job_id)
        out.print_json(
            data={
                "id": str(j.id),
                "workspace_id": str(j.workspace_id),
                "kind": j.kind,
                "status": j.status,
                "attempts": j.attempts,
                "max_attempts": j.max_attempts,
                "run_at": j.run_at.isoformat(),
                "payload": j.payload,
                "last_error": j.last_error,
            }
        )


@jobs_app.command("retry")
@friendly
def jobs_retry(job_id: int) -> None:
    """Queue a dead (or any finished) job again."""
    from scrm.worker import repository

    with _db().transaction() as session:
        j = _job_or_fail(session, job_id)
        if j.status in ("queued", "running"):
            raise fail(f"job {job_id} is {j.status}; nothing to retry")
        repository.requeue(session, j)
    out.print(f"job {job_id} queued")


@jobs_app.command("discard")
@friendly
def jobs_discard(job_id: int) -> None:
    """Give up on a queued or dead job (it will not run)."""
    with _db().transaction() as session:
        j = _job_or_fail(session, job_id)
        if j.status == "running":
            raise fail(f"job {job_id} is running; try again when it has finished")
        j.status = "discarded"
    out.print(f"job {job_id} discarded")


def main() -> None:  # pragma: no cover
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
