"""Business hours: weekly hours in a time zone, Chinese public holidays and swapped working
days (调休) from `chinese_calendar`. Pure functions; due times are computed here.

Hours are `{"mon": [["09:00", "18:00"]], ..., "sun": [], "holiday": [], "workday": [...]}`:
a public holiday uses "holiday" (default: closed), a weekend day that is an official working
day uses "workday" (default: Monday's hours).
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

UTC = dt.UTC
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = (*DAYS, "holiday", "workday")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_DAYS = 366

Interval = tuple[int, int]  # seconds since local midnight, end exclusive (<= 86400)


class CalendarError(ValueError):
    pass


def _seconds(text: str) -> int:
    if not isinstance(text, str) or not _HHMM.match(text):
        raise CalendarError(f"{text!r} is not a time HH:MM")
    h, m = text.split(":")
    return int(h) * 3600 + int(m) * 60


def parse_hours(hours: dict[str, Any]) -> dict[str, tuple[Interval, ...]]:
    """Validate and normalise; raises CalendarError naming the problem."""
    if not isinstance(hours, dict):
        raise CalendarError("hours must be an object keyed by mon..sun, holiday, workday")
    unknown = set(hours) - set(KEYS)
    if unknown:
        raise CalendarError(f"unknown day {sorted(unknown)[0]!r} (use {', '.join(KEYS)})")
    out: dict[str, tuple[Interval, ...]] = {}
    for key, spans in hours.items():
        if not isinstance(spans, list):
            raise CalendarError(f"{key}: a list of [start, end] pairs")
        parsed: list[Interval] = []
        for span in spans:
            if not isinstance(span, list | tuple) or len(span) != 2:
                raise CalendarError(f'{key}: each span is ["HH:MM", "HH:MM"]')
            start, end = _seconds(span[0]), _seconds(span[1])
            if end <= start:
                raise CalendarError(f"{key}: {span[0]}-{span[1]} ends before it starts")
            parsed.append((start, end))
        parsed.sort()
        for a, b in itertools.pairwise(parsed):
            if b[0] < a[1]:
                raise CalendarError(f"{key}: spans overlap")
        out[key] = tuple(parsed)
    return out


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError(f"unknown time zone {name!r}") from None


@lru_cache(maxsize=4096)
def _cn_day(day: dt.date) -> str | None:
    """'holiday', 'workday' (a swapped working weekend day) or None (an ordinary day)."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        workday = chinese_calendar.is_workday(day)
    except NotImplementedError:  # outside the years the package knows: weekly hours only
        return None
    if on_holiday and name:
        return "holiday"
    if workday and day.weekday() >= 5:
        return "workday"
    return None


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo
    hours: dict[str, tuple[Interval, ...]]
    cn_holidays: bool = True

    @classmethod
    def from_config(cls, timezone: str, hours: dict[str, Any], cn_holidays: bool) -> BusinessCalendar:
        return cls(check_timezone(timezone), parse_hours(hours), cn_holidays)

    def intervals(self, day: dt.date) -> tuple[Interval, ...]:
        weekday = DAYS[day.weekday()]
        if self.cn_holidays:
            special = _cn_day(day)
            if special == "holiday":
                return self.hours.get("holiday", ())
            if special == "workday":
                return self.hours.get("workday", self.hours.get("mon", ()))
        return self.hours.get(weekday, ())

    def _spans(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        midnight = dt.datetime.combine(day, dt.time(0), tzinfo=self.tz)
        return [
            (
                (midnight + dt.timedelta(seconds=a)).astimezone(UTC),
                (midnight + dt.timedelta(seconds=b)).astimezone(UTC),
            )
            for a, b in self.intervals(day)
        ]

    def is_open(self, at: dt.datetime) -> bool:
        local = at.astimezone(self.tz)
        return any(a <= at < b for a, b in self._spans(local.date()))

    def add(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """The moment `seconds` of business time after `start` (the next opening if 0)."""
        remaining = max(0.0, seconds)
        day = start.astimezone(self.tz).date() - dt.timedelta(days=1)
        for _ in range(MAX_DAYS + 2):
            for a, b in self._spans(day):
                if b <= start:
                    continue
                s = max(a, start)
                avail = (b - s).total_seconds()
                if remaining <= avail:
                    return s + dt.timedelta(seconds=remaining)
                remaining -= avail
            day += dt.timedelta(days=1)
        # Never open in a year: treat the target as wall-clock time rather than never.
        return start + dt.timedelta(seconds=seconds)

    def between(self, a: dt.datetime, b: dt.datetime) -> float:
        """Business seconds from a to b (0 if b <= a)."""
        if b <= a:
            return 0.0
        total = 0.0
        day = a.astimezone(self.tz).date() - dt.timedelta(days=1)
        end_day = b.astimezone(self.tz).date() + dt.timedelta(days=1)
        while day <= end_day:
            for s, e in self._spans(day):
                lo, hi = max(s, a), min(e, b)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += dt.timedelta(days=1)
        return total


ALWAYS = BusinessCalendar(ZoneInfo("Asia/Shanghai"), {d: ((0, 86400),) for d in KEYS}, cn_holidays=False)
