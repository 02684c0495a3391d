"""A department records a case's outcome from the UI (S7, closing the loop).

The outcome is recorded on the department's open task for the conversation (created now if
the case reached the department by a manual transfer rather than a routing rule); the
casework service tells the fan on the channel and thread they used.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from scrm.casework import service as casework
from scrm.errors import Forbidden, Invalid
from scrm.models import Conversation
from scrm.workspace import service as workspace_service
from scrm.workspace.schemas import Principal


def record(
    session: Session, principal: Principal, conv: Conversation, text: str, team_ids: list[int]
) -> None:
    if conv.team_id is None or conv.team_id not in team_ids:
        raise Forbidden("only the department the case is routed to records its outcome")
    if not text.strip():
        raise Invalid("the outcome is empty", field="text")
    open_tasks = casework.list_tasks(
        session,
        principal.workspace_id,
        team_id=conv.team_id,
        status="open",
        kind="department",
        conversation_id=conv.id,
    )
    if open_tasks:
        task = open_tasks[0]
    else:
        team = workspace_service.get_team(session, principal.workspace_id, conv.team_id)
        task = casework.create_task(session, conv, kind="department", team=team, created_by=principal.name)
    casework.record_outcome(
        session,
        principal.workspace_id,
        task.id,
        text.strip(),
        source="ui",
        actor_id=principal.member_id,
        actor_label=principal.name,
    )
