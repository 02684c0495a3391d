"""Stores in and out: one import row, one store as the API shows it."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _finite(value: Any, low: float, high: float, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return number


class StoreRow(BaseModel):
    """One row of a stores import (CSV columns or JSONL keys). `code` is the brand's own store
    id: importing a file again updates the stores it names."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    city: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=500)
    hours: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=32)
    latitude: float
    longitude: float
    active: bool = True

    @field_validator("code")
    @classmethod
    def _code(cls, v: str) -> str:
        if not _CODE.match(v):
            raise ValueError("code is 1-64 letters, digits, '_', '-' or '.'")
        return v

    @field_validator("name", "city", "address", "hours", "phone")
    @classmethod
    def _text(cls, v: str) -> str:
        if _CONTROL.search(v):
            raise ValueError("must not contain control characters")
        return v

    @field_validator("latitude", mode="before")
    @classmethod
    def _lat(cls, v: Any) -> float:
        return _finite(v, -90, 90, "latitude")

    @field_validator("longitude", mode="before")
    @classmethod
    def _lng(cls, v: Any) -> float:
        return _finite(v, -180, 180, "longitude")

    @field_validator("active", mode="before")
    @classmethod
    def _active(cls, v: Any) -> Any:
        if isinstance(v, str):
            low = v.strip().lower()
            if low in ("", "1", "true", "yes", "y", "是"):
                return True
            if low in ("0", "false", "no", "n", "否"):
                return False
            raise ValueError("active must be true or false")
        return v


class StoreOut(BaseModel):
    id: str
    code: str
    name: str
    city: str
    address: str
    hours: str
    phone: str
    latitude: float
    longitude: float
    active: bool


class NearestOut(StoreOut):
    distance_km: float
