from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

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
    teams: list[str]
