from __future__ import annotations

import datetime as dt
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

PHONE_RE = re.compile(r"^\+?[0-9][0-9\- ]{5,20}$")


def normalise_phone(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().replace(" ", "").replace("-", "")
    if not value:
        return None
    if value.startswith("+86"):
        value = value[3:]
    if not PHONE_RE.match(value):
        raise ValueError("not a phone number")
    return value


class IdentityOut(BaseModel):
    namespace: str
    external_id: str
    display_name: str | None
    subscribed: bool


class OrderOut(BaseModel):
    id: str
    source: str
    order_id: str
    kind: str
    status: str
    amount_fen: int
    currency: str
    placed_at: dt.datetime | None
    details: dict[str, Any]


class MembershipOut(BaseModel):
    program: str
    member_no: str
    tier: str
    points_balance: int


class ContactOut(BaseModel):
    id: str
    name: str
    phone_masked: str | None
    member_no: str | None
    city: str | None
    gender: str | None
    followers: int | None
    tags: list[str]
    opted_out: bool
    created_at: dt.datetime


class ContactDetail(ContactOut):
    identities: list[IdentityOut]
    orders: list[OrderOut]
    memberships: list[MembershipOut]
    attributes: dict[str, Any]


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=320)
    member_no: str | None = Field(default=None, max_length=64)
    city: str | None = Field(default=None, max_length=64)
    gender: str | None = Field(default=None, max_length=10)
    tags: list[str] = Field(default_factory=list, max_length=50)
    attributes: dict[str, Any] = Field(default_factory=dict)
    identities: list[dict[str, str]] = Field(default_factory=list, max_length=20)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v)


class ContactRow(BaseModel):
    """One row of a contacts import (CSV columns or JSONL keys)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    name: str = Field(default="", max_length=200)
    phone: str | None = None
    member_id: str | None = Field(default=None, max_length=64)
    weibo_uid: str | None = Field(default=None, max_length=64)
    wechat_openid: str | None = Field(default=None, max_length=128)
    wechat_appid: str | None = Field(default=None, max_length=64)
    gender: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=64)
    tier: str | None = Field(default=None, max_length=32)
    points: int | None = Field(default=None, ge=0)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v


ORDER_KINDS = ("order", "booking", "refund")


class OrderRow(BaseModel):
    """One row of an orders import."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)
    source: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=128)
    kind: str = "order"
    status: str = Field(default="", max_length=32)
    amount_fen: int = Field(default=0, ge=0)
    currency: str = Field(default="CNY", min_length=3, max_length=3)
    placed_at: dt.datetime | None = None
    member_id: str | None = Field(default=None, max_length=64)
    phone: str | None = None
    weibo_uid: str | None = Field(default=None, max_length=64)
    wechat_openid: str | None = Field(default=None, max_length=128)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v)

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str | None) -> str:
        v = v or "order"
        if v not in ORDER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ORDER_KINDS)}")
        return v

    @field_validator("placed_at")
    @classmethod
    def _aware(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("placed_at needs a time zone offset, e.g. +08:00")
        return v


class ImportReport(BaseModel):
    kind: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    linked: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list, description="first 1000 rejected rows")
