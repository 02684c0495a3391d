from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from scrm.conversation.endpoints import message_out
from scrm.conversation.schemas import MessageOut
from scrm.nlp import triage
from scrm.workspace.auth import CurrentPrincipal, get_db

router = APIRouter(tags=["triage"])


class CorrectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: Literal["intent", "sentiment", "emotion"]
    label: str = Field(min_length=1, max_length=40)


@router.patch(
    "/messages/{message_id}/triage",
    response_model=MessageOut,
    summary="Correct a triage label (stored as training data for the workspace's model)",
)
def correct_triage(
    request: Request, principal: CurrentPrincipal, message_id: int, body: CorrectionIn
) -> MessageOut:
    with get_db(request).transaction() as session:
        return message_out(triage.correct(session, principal, message_id, body.task, body.label))
