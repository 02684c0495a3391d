"""`scrm routing ...`: rules (list, import, dry run), the unassigned queue, the SLA report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(help="Routing rules, assignment queue and SLA.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _db() -> Any:
    from scrm.cli import _db as cli_db

    return cli_db()


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _guard(fn: Any) -> Any:
    from scrm.cli import friendly

    return friendly(fn)


@app.command("list")
def list_rules(workspace: Annotated[str, typer.Option(help="Workspace slug.")]) -> None:
    """List rules in evaluation order, with run-time failures."""
    from scrm.automation import service
    from scrm.workspace import service as ws_service

    @_guard
    def run() -> None:
        with _db().transaction(readonly=True) as session:
            ws = ws_service.get_workspace(session, workspace)
            for r in service.list_rules(session, ws.id):
                flags = ("" if r.enabled else " [disabled]") + (" [stop]" if r.stop else "")
                fails = (
                    f"  failures={r.failure_count}: {r.last_error[:60]}"
                    if r.failure_count and r.last_error
                    else ""
                )
                acts = ", ".join(a["type"] for a in r.actions)
                out.print(f"{r.position:>5}  {r.event:<22} {r.name}{flags}  → {acts}{fails}", markup=False)

    run()


@app.command("import")
def import_rules(
    file: Annotated[Path, typer.Argument(help="JSON file: a list of rules (upserted by name).")],
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
) -> None:
    """Create or update rules from a JSON file; the whole file is refused if one rule is invalid."""
    from scrm.automation import service
    from scrm.workspace import service as ws_service

    @_guard
    def run() -> None:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise _fail(f"{file}: not JSON ({exc})") from None
        if not isinstance(data, list):
            raise _fail(f"{file}: expected a JSON list of rules")
        with _db().transaction() as session:
            ws = ws_service.get_workspace(session, workspace)
            existing = {r.name: r.id for r in service.list_rules(session, ws.id)}
            for i, rule in enumerate(data):
                if not isinstance(rule, dict):
                    raise _fail(f"rule #{i + 1}: expected an object")
                try:
                    service.save_rule(session, ws.id, rule, rule_id=existing.get(str(rule.get("name"))))
                except Exception as exc:
                    message = getattr(exc, "message", str(exc))
                    raise _fail(f"rule #{i + 1} ({rule.get('name')}): {message}") from None
        out.print(f"{len(data)} rules saved")

    run()


@app.command("dry-run")
def dry_run(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    text: Annotated[str, typer.Option(help="Sample message text.")] = "",
    event: Annotated[str, typer.Option(help="Rule event.")] = "message.received",
    channel: Annotated[str | None, typer.Option(help="wechat, weibo, webhook.")] = None,
    triage: Annotated[str | None, typer.Option(help='Triage JSON, e.g. \'{"intent": "complaint"}\'.')] = None,
    menu_key: Annotated[str | None, typer.Option(help="Menu key for contact.menu_clicked.")] = None,
) -> None:
    """Show which rules would fire for a sample message (changes nothing)."""
    from scrm.automation import service
    from scrm.workspace import service as ws_service

    @_guard
    def run() -> None:
        sample: dict[str, Any] = {"text": text, "event": event, "channel": channel, "menu_key": menu_key}
        if triage:
            try:
                sample["triage"] = json.loads(triage)
            except json.JSONDecodeError as exc:
                raise _fail(f"--triage is not JSON: {exc}") from None
        with _db().transaction(readonly=True) as session:
            ws = ws_service.get_workspace(session, workspace)
            hits = service.dry_run(session, ws.id, sample)
        if not hits:
            out.print("no rule fires")
        for h in hits:
            out.print(f"{h['position']:>5}  {h['name']}{' [stop]' if h['stop'] else ''}", markup=False)
            for a in h["actions"]:
                out.print(f"         {json.dumps(a, ensure_ascii=False)}", markup=False)

    run()


@app.command("queue")
def queue(workspace: Annotated[str, typer.Option(help="Workspace slug.")]) -> None:
    """Unassigned open conversations, oldest first."""
    from scrm.conversation import assignment
    from scrm.workspace import service as ws_service

    @_guard
    def run() -> None:
        with _db().transaction(readonly=True) as session:
            ws = ws_service.get_workspace(session, workspace)
            rows = assignment.unassigned_queue(session, ws.id)
            reasons = assignment.queue_reasons(session, ws.id, rows)
            for c in rows:
                skills = f" [{', '.join(c.required_skills)}]" if c.required_skills else ""
                out.print(
                    f"{c.id}  {c.priority:<7} {c.last_inbound_at:%Y-%m-%d %H:%M}  {c.subject[:50]}"
                    f"  ({reasons[c.id]}{skills})",
                    markup=False,
                )
            out.print(f"{len(rows)} waiting")

    run()


@app.command("sla-report")
def sla_report(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    hours: Annotated[int, typer.Option(min=1, max=24 * 90, help="Look back this many hours.")] = 24,
) -> None:
    """Share of SLA targets met in the last HOURS."""
    from scrm.kit.time import utcnow
    from scrm.sla import service
    from scrm.workspace import service as ws_service

    @_guard
    def run() -> None:
        until = utcnow()
        with _db().transaction(readonly=True) as session:
            ws = ws_service.get_workspace(session, workspace)
            report = service.report(session, ws.id, until - dt.timedelta(hours=hours), until)
        out.print_json(data=report)

    run()
