"""Import of stores from CSV or JSONL: every row validated on its own, a rejected row reported
with its line number and reason, idempotent on the store code (a second import updates).

Columns / keys: code, name, latitude, longitude (required), city, address, hours, phone,
active (true/false, default true). The loop (streamed reading, per-row
validation, batches, the report) is the contacts import's (`scrm.contact.imports.import_rows`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from scrm.contact.imports import Format, detect_format, import_rows
from scrm.contact.schemas import ImportReport
from scrm.db import Database
from scrm.store import service
from scrm.store.schemas import StoreRow

BATCH = 500


def run_import(
    db: Database,
    workspace_id: int,
    stream: IO[bytes],
    fmt: Format,
    *,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    report = ImportReport(kind="stores")
    seen: dict[str, int] = {}

    def check(line: int, row: StoreRow) -> str | None:
        if row.code in seen:
            return f"code {row.code!r} is already on line {seen[row.code]}"
        seen[row.code] = line
        return None

    def apply(session: Session, row: StoreRow) -> None:
        if service.upsert(session, workspace_id, row):
            report.inserted += 1
        else:
            report.updated += 1

    return import_rows(
        db,
        stream,
        fmt,
        report,
        parse=StoreRow.model_validate,
        apply=apply,
        check=check,
        batch_size=BATCH,
        progress=progress,
    )


def import_path(db: Database, workspace_id: int, path: Path) -> ImportReport:
    fmt = detect_format(path.name)
    with path.open("rb") as fh:
        return run_import(db, workspace_id, fh, fmt)
