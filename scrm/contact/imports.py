"""Import of contacts, orders and memberships from CSV or JSONL, streamed in batches.

Every row is validated on its own; a rejected row writes nothing and is reported with its
line number and reason. Orders are idempotent on (source, order id): importing a file twice
updates, never duplicates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session

from scrm.contact import repository
from scrm.contact.schemas import ContactRow, ImportReport, OrderRow
from scrm.db import Database
from scrm.errors import Invalid
from scrm.models import Contact, Membership, Order

BATCH = 1000
MAX_REPORTED_ERRORS = 1000
Format = Literal["csv", "jsonl"]
Kind = Literal["contacts", "orders"]

ORDER_BASE_FIELDS = set(OrderRow.model_fields)


def detect_format(name: str) -> Format:
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise Invalid("file must end in .csv or .jsonl", field="file")


def iter_rows(stream: IO[bytes], fmt: Format) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (line number, row dict) or (line number, error text) without loading the file."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    try:
        yield from _rows(text, fmt)
    finally:
        text.detach()  # the caller owns the stream: do not close it with the wrapper


def _rows(text: io.TextIOWrapper, fmt: Format) -> Iterator[tuple[int, dict[str, Any] | str]]:
    if fmt == "csv":
        try:
            reader = csv.DictReader(text)
            if not reader.fieldnames:
                return
            for row in reader:
                line = reader.line_num
                if None in row:
                    yield line, "row has more fields than the header"
                    continue
                yield line, {k.strip(): v for k, v in row.items() if k is not None}
        except UnicodeDecodeError:
            raise Invalid("file is not UTF-8 text", field="file") from None
        except csv.Error as exc:
            raise Invalid(f"CSV cannot be read: {exc}", field="file") from None
        return
    line = 0
    try:
        for line, raw in enumerate(text, start=1):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                yield line, "not valid JSON"
                continue
            if not isinstance(value, dict):
                yield line, "a line must be a JSON object"
                continue
            yield line, value
    except UnicodeDecodeError:
        raise Invalid(f"line {line + 1} is not UTF-8 text", field="file") from None


def validation_reason(exc: ValidationError) -> str:
    """A rejected row's reason: its first three field errors, "field: message"."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


Row = TypeVar("Row")


def import_rows(
    db: Database,
    stream: IO[bytes],
    fmt: Format,
    report: ImportReport,
    *,
    parse: Callable[[dict[str, Any]], Row],
    apply: Callable[[Session, Row], None],
    check: Callable[[int, Row], str | None] | None = None,
    batch_size: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """The import loop every kind shares: stream the rows, validate each (`parse`, a pydantic
    model; `check`, a reason to refuse a valid row, e.g. a duplicate in the file), write them in
    batches of `batch_size` per transaction, each row in its own savepoint (`apply` raising
    ValueError rejects that row only), and report rejected rows with their line numbers."""

    def reject(line: int, reason: str) -> None:
        report.rejected += 1
        if len(report.errors) < MAX_REPORTED_ERRORS:
            report.errors.append({"line": line, "reason": reason})

    def flush(batch: list[tuple[int, Row]]) -> None:
        if not batch:
            return
        with db.transaction() as session:
            for line, row in batch:
                try:
                    with session.begin_nested():
                        apply(session, row)
                except ValueError as exc:
                    reject(line, str(exc))
        if progress:
            progress(len(batch))

    batch: list[tuple[int, Row]] = []
    for line, item in iter_rows(stream, fmt):
        report.rows += 1
        if isinstance(item, str):
            reject(line, item)
            continue
        try:
            row = parse(item)
        except ValidationError as exc:
            reject(line, validation_reason(exc))
            continue
        refused = check(line, row) if check else None
        if refused:
            reject(line, refused)
            continue
        batch.append((line, row))
        if len(batch) >= batch_size:
            flush(batch)
            batch = []
    flush(batch)
    return report


def _find_contact(
    session: Session,
    workspace_id: int,
    *,
    member_id: str | None,
    phone: str | None,
    weibo_uid: str | None,
    wechat_openid: str | None,
) -> Contact | None:
    ident = None
    if member_id:
        found = repository.by_member_no(session, workspace_id, member_id)
        if found:
            return found
        ident = repository.identity(session, workspace_id, "member", member_id)
    if ident is None and weibo_uid:
        ident = repository.identity(session, workspace_id, "weibo", weibo_uid)
    if ident is None and wechat_openid:
        ident = repository.identity_by_external_prefix(session, workspace_id, "wechat:", wechat_openid)
    if ident is None and phone:
        found = repository.by_phone(session, workspace_id, phone)
        if found:
            return found
        ident = repository.identity(session, workspace_id, "phone", phone)
    if ident is not None:
        return repository.get(session, workspace_id, ident.contact_id)
    return None


def _link_all(
    session: Session,
    workspace_id: int,
    contact: Contact,
    *,
    member_id: str | None,
    phone: str | None,
    weibo_uid: str | None,
    wechat: tuple[str, str] | None,
) -> None:
    pairs = [("member", member_id), ("phone", phone), ("weibo", weibo_uid)]
    if wechat:
        pairs.append(wechat)
    for ns, ext in pairs:
        if ext:
            repository.insert_identity_if_absent(
                session,
                workspace_id=workspace_id,
                contact_id=contact.id,
                namespace=ns,
                external_id=ext,
                display_name=contact.name or None,
            )


def apply_contact_row(
    session: Session, workspace_id: int, row: ContactRow, default_wechat_appid: str | None
) -> bool:
    """Upsert one contact; returns True when a new contact was created."""
    wechat: tuple[str, str] | None = None
    if row.wechat_openid:
        appid = row.wechat_appid or default_wechat_appid
        if not appid:
            raise ValueError("wechat_openid needs wechat_appid (the workspace has no single WeChat account)")
        wechat = (f"wechat:{appid}", row.wechat_openid)
    contact = _find_contact(
        session,
        workspace_id,
        member_id=row.member_id,
        phone=row.phone,
        weibo_uid=row.weibo_uid,
        wechat_openid=row.wechat_openid,
    )
    created = contact is None
    if contact is None:
        contact = Contact(workspace_id=workspace_id, name=row.name, attributes={}, tags=[])
        session.add(contact)
    for attr in ("name", "phone", "gender", "city"):
        value = getattr(row, attr)
        if value:
            setattr(contact, attr, value)
    if row.member_id:
        contact.member_no = row.member_id
    session.flush()
    _link_all(
        session,
        workspace_id,
        contact,
        member_id=row.member_id,
        phone=row.phone,
        weibo_uid=row.weibo_uid,
        wechat=wechat,
    )
    if row.member_id and (row.tier is not None or row.points is not None):
        ms = repository.membership(session, workspace_id, "default", row.member_id)
        if ms is None:
            ms = Membership(
                workspace_id=workspace_id, contact_id=contact.id, program="default", member_no=row.member_id
            )
            session.add(ms)
        ms.contact_id = contact.id
        if row.tier is not None:
            ms.tier = row.tier
        if row.points is not None:
            ms.points_balance = row.points
    return created


def apply_order_row(session: Session, workspace_id: int, row: OrderRow) -> tuple[bool, bool]:
    """Upsert one order; returns (inserted, linked to a contact)."""
    contact = _find_contact(
        session,
        workspace_id,
        member_id=row.member_id,
        phone=row.phone,
        weibo_uid=row.weibo_uid,
        wechat_openid=row.wechat_openid,
    )
    if contact is None and (row.member_id or row.phone or row.weibo_uid):
        contact = Contact(
            workspace_id=workspace_id,
            name="",
            phone=row.phone,
            member_no=row.member_id,
            attributes={},
            tags=[],
        )
        session.add(contact)
        session.flush()
        _link_all(
            session,
            workspace_id,
            contact,
            member_id=row.member_id,
            phone=row.phone,
            weibo_uid=row.weibo_uid,
            wechat=None,
        )
    details = {k: v for k, v in (row.model_extra or {}).items() if v not in (None, "")}
    existing = repository.order(session, workspace_id, row.source, row.order_id)
    if existing is None:
        existing = Order(workspace_id=workspace_id, source=row.source, external_id=row.order_id)
        session.add(existing)
        inserted = True
    else:
        inserted = False
    existing.kind = row.kind
    existing.status = row.status or ""
    existing.amount_fen = row.amount_fen
    existing.currency = row.currency.upper()
    existing.placed_at = row.placed_at
    existing.details = details
    if contact is not None:
        existing.contact_id = contact.id
    return inserted, contact is not None


def run_import(
    db: Database,
    workspace_id: int,
    kind: Kind,
    stream: IO[bytes],
    fmt: Format,
    *,
    default_wechat_appid: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Stream the file, validating each row, writing in batches of 1,000 rows per transaction."""
    report = ImportReport(kind=kind)

    def apply(session: Session, model: Any) -> None:
        if kind == "contacts":
            if apply_contact_row(session, workspace_id, model, default_wechat_appid):
                report.inserted += 1
            else:
                report.updated += 1
        else:
            inserted, linked = apply_order_row(session, workspace_id, model)
            report.inserted += int(inserted)
            report.updated += int(not inserted)
            report.linked += int(linked)

    parse = ContactRow.model_validate if kind == "contacts" else OrderRow.model_validate
    return import_rows(db, stream, fmt, report, parse=parse, apply=apply, progress=progress)


def import_path(db: Database, workspace_id: int, kind: Kind, path: Path, **kwargs: Any) -> ImportReport:
    fmt = detect_format(path.name)
    with path.open("rb") as fh:
        return run_import(db, workspace_id, kind, fh, fmt, **kwargs)
