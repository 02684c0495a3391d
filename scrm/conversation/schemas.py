from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

Status = Literal["open", "pending", "resolved"]
Priority = Literal["low", "normal", "high", "urgent"]


class ContactBrief(BaseModel):
    id: str
    name: str
    followers: int | None = None


class ConversationOut(BaseModel):
    id: str
    status: str
    priority: str
    channel_id: str
    visibility: str
    thread_key: str
    labels: list[str]
    team_id: str | None
    assignee_id: str | None
    required_skills: list[str] = Field(default_factory=list, description="skills its agent must have")
    intent: str | None
    sentiment: str | None
    subject: str
    contact: ContactBrief
    message_count: int
    last_message_at: dt.datetime
    first_response_at: dt.datetime | None
    created_at: dt.datetime


class ConversationPage(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    direction: str
    sender_type: str
    author_id: str | None
    kind: str
    text: str
    media: list[dict[str, Any]]
    visibility: str
    status: str
    error: str | None
    triage: dict[str, Any]
    created_at: dt.datetime
    sent_at: dt.datetime | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class ReplyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)
    visibility: Literal["public", "private"] | None = None
    internal: bool = Field(default=False, description="an internal note, never sent to the fan")


class ConversationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Status | None = None
    priority: Priority | None = None
    assignee_id: str | None = Field(default=None, description="member id, or '' to unassign")
    team_id: str | None = Field(default=None, description="team id, or '' to clear")
    labels: list[str] | None = Field(default=None, max_length=50)


class ActivityOut(BaseModel):
    id: str
    kind: str
    actor_id: str | None
    data: dict[str, Any]
    created_at: dt.datetime


class RequiredSkillsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    skills: list[StrictStr] = Field(
        max_length=20, description="replaces the requirement; [] clears it (e.g. lang:en, channel:weibo)"
    )


class AssignmentOut(BaseModel):
    conversation_id: str
    assignee_id: str | None
    required_skills: list[str]
    queued_reason: str | None = Field(
        default=None, description="why it waits unassigned (see GET /automation/queue), else null"
    )
