from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    event: str = Field(default="message.received", max_length=40)
    position: int = Field(default=100, ge=0, le=1_000_000)
    enabled: bool = True
    stop: bool = Field(default=False, description="stop evaluating later rules when this one fires")
    conditions: dict[str, Any] = Field(default_factory=dict)
    actions: list[dict[str, Any]] = Field(min_length=1, max_length=20)


class RuleOut(BaseModel):
    id: str
    name: str
    description: str
    event: str
    position: int
    enabled: bool
    stop: bool
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    failure_count: int
    last_error: str | None
    last_error_at: dt.datetime | None
    updated_at: dt.datetime


class DryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(default="", max_length=20000)
    event: str = "message.received"
    channel: str | None = None
    visibility: Literal["public", "private"] | None = None
    scene: str | None = None
    menu_key: str | None = None
    business_hours: bool | None = None
    triage: dict[str, Any] | None = None
    contact: dict[str, Any] | None = Field(
        default=None, description="tier, vip, followers, tags, attributes.*"
    )


class DryRunHit(BaseModel):
    rule_id: str
    name: str
    position: int
    stop: bool
    actions: list[dict[str, Any]]


class FiringOut(BaseModel):
    id: str
    rule_id: str
    event: str
    trigger_key: str
    conversation_id: str | None
    status: str
    actions: list[dict[str, Any]]
    error: str | None
    created_at: dt.datetime


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    availability: Literal["online", "away", "offline"]


class DeskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["round_robin", "least_load"] | None = None
    auto_assign: bool | None = None
    sticky: bool | None = None
    vip_to_senior: bool | None = None
    notify_url: str | None = Field(default=None, max_length=2000)


class QueueItem(BaseModel):
    id: str
    team_id: str | None
    priority: str
    subject: str
    waiting_since: dt.datetime | None
    required_skills: list[str] = Field(default_factory=list)
    reason: str = Field(default="", description="why it waits (docs/routing.md, Assignment)")
