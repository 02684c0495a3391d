"""Queries for triage corrections (the NLP models themselves live on disk, see service.py)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrm.models import TriageCorrection


def add(session: Session, row: TriageCorrection) -> None:
    session.add(row)


def corrections(session: Session, workspace_id: int, limit: int = 100_000) -> Sequence[TriageCorrection]:
    return (
        session.execute(
            select(TriageCorrection)
            .where(TriageCorrection.workspace_id == workspace_id)
            .order_by(TriageCorrection.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
