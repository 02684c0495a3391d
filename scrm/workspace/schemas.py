from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

ROLES = ("admin", "supervisor", "agent", "department")


@dataclass(frozen=True)
class Principal:
    """Who is acting, in which workspace. Every query is scoped by `workspace_id`."""

    workspace_id: int
    member_id: int
    user_id: int
    role: str
    name: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("admin", "supervisor")


class ChannelAccountOut(BaseModel):
    id: str
    kind: str
    name: str
    external_id: str
    status: str
    inbound_url: str
    config: dict[str, Any]
    secrets: dict[str, str] = Field(description="masked; never returned in full")


class ChannelAccountIn(BaseModel):
    kind: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    external_id: str = Field(default="", max_length=128)
    config: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)


class ChannelAccountPatch(BaseModel):
    """What PATCH /channels/{id} changes; only the fields sent. The platform id cannot change."""

    model_config = ConfigDict(extra="forbid")
    name: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    config: dict[str, Any] | None = Field(default=None, description="merged; a null value removes the key")
    secrets: dict[str, StrictStr | None] | None = Field(
        default=None,
        description=(
            "merged; null or an empty string removes one. A new encoding_aes_key keeps the current "
            "one as previous_encoding_aes_key (key rotation) unless that is given too."
        ),
    )


class TeamOut(BaseModel):
    id: str
    key: str
    name: str
    kind: str


class MemberOut(BaseModel):
    id: str
    name: str
    email: str
    role: str
    availability: str
    capacity: int
    skills: list[str]
    is_senior: bool
    teams: list[str]


class MemberPatch(BaseModel):
    """How a member takes work. Only the fields sent change; skills replace the whole list."""

    model_config = ConfigDict(extra="forbid")
    capacity: StrictInt | None = Field(default=None, ge=0, le=200, description="max open conversations")
    skills: list[StrictStr] | None = Field(
        default=None, max_length=20, description="e.g. lang:en, channel:weibo, product:baggage"
    )
    is_senior: StrictBool | None = None
    role: Literal["admin", "supervisor", "agent", "department"] | None = Field(
        default=None, description="admins only"
    )
    name: StrictStr | None = Field(default=None, max_length=200)


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    availability: Literal["online", "away", "offline"]
