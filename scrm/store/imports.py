"""Import of stores from CSV or JSONL: every row validated on its own, a rejected row reported
with its line number and reason, idempotent on the store code (a second import updates).

Columns / keys: code, name, latitude, longitude (required), city, address, hours, phone,
active (true/false, default true). The file reading is the contacts import's
(`scrm.contact.imports.iter_rows`: streamed, UTF-8 with or without BOM)."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from pydantic import ValidationError

from scrm.contact.imports import MAX_REPORTED_ERRORS, Format, detect_format, iter_rows
from scrm.contact.schemas import ImportReport
from scrm.db import Database
from scrm.store import service
from scrm.store.schemas import StoreRow

BATCH = 500


def _reason(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "row"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def run_import(db: Database, workspace_id: int, stream: IO[bytes], fmt: Format) -> ImportReport:
    report = ImportReport(kind="stores")

    def reject(line: int, reason: str) -> None:
        report.rejected += 1
        if len(report.errors) < MAX_REPORTED_ERRORS:
            report.errors.append({"line": line, "reason": reason})

    def flush(batch: list[tuple[int, StoreRow]]) -> None:
        if not batch:
            return
        with db.transaction() as session:
            for _line, row in batch:
                if service.upsert(session, workspace_id, row):
                    report.inserted += 1
                else:
                    report.updated += 1

    batch: list[tuple[int, StoreRow]] = []
    seen: dict[str, int] = {}
    for line, item in iter_rows(stream, fmt):
        report.rows += 1
        if isinstance(item, str):
            reject(line, item)
            continue
        try:
            row = StoreRow.model_validate(item)
        except ValidationError as exc:
            reject(line, _reason(exc))
            continue
        if row.code in seen:
            reject(line, f"code {row.code!r} is already on line {seen[row.code]}")
            continue
        seen[row.code] = line
        batch.append((line, row))
        if len(batch) >= BATCH:
            flush(batch)
            batch = []
    flush(batch)
    return report


def import_path(db: Database, workspace_id: int, path: Path) -> ImportReport:
    fmt = detect_format(path.name)
    with path.open("rb") as fh:
        return run_import(db, workspace_id, fh, fmt)
