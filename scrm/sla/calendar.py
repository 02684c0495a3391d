"""Business hours: weekly hours in a time zone, Chinese public holidays and swapped working
days (调休) from `chinese_calendar`, and a calendar's own special days. Pure functions; due
times are computed here.

Hours are `{"mon": [["09:00", "18:00"]], ..., "sun": [], "holiday": [], "workday": [...]}`:
a public holiday uses "holiday" (default: closed), a weekend day that is an official working
day uses "workday" (default: Monday's hours).

`chinese_calendar` knows the years the State Council has published (`OFFICIAL_YEARS`); for a
later year it has no data and those days follow the weekly hours. A calendar's own special
days (`[{"date": "2027-02-08", "kind": "holiday", "name": "春节"}]`) fill that gap, or
override the official list: a listed day is a holiday or a working day whatever the package says.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar

UTC = dt.UTC
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
KEYS = (*DAYS, "holiday", "workday")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_DAYS = 366
MAX_SPECIAL_DAYS = 400
SPECIAL_KINDS = ("holiday", "workday")
# The years chinese_calendar has official holiday data for (first, last).
OFFICIAL_YEARS: tuple[int, int] = (
    min(chinese_calendar.constants.holidays).year,
    max(chinese_calendar.constants.holidays).year,
)
PACKAGE = f"chinese-calendar {getattr(chinese_calendar, '__version__', '')}".strip()

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


def has_official_data(year: int) -> bool:
    return OFFICIAL_YEARS[0] <= year <= OFFICIAL_YEARS[1]


def coverage_note(year: int | None = None) -> str:
    """Which years have official holiday data, in one sentence (logs, API, admin page)."""
    first, last = OFFICIAL_YEARS
    text = f"official Chinese holiday data ({PACKAGE}) covers {first}-{last}"
    if year is not None and not has_official_data(year):
        text = (
            f"no official holiday data for {year}: {text}; days of {year} follow the weekly hours"
            " unless the calendar lists them as special days"
        )
    return text


def parse_special_days(items: Any) -> tuple[tuple[dt.date, str, str], ...]:
    """Validate a calendar's own days: a list of {"date": "YYYY-MM-DD", "kind": "holiday" |
    "workday", "name"?}; raises CalendarError naming the entry."""
    if not isinstance(items, list):
        raise CalendarError('special days must be a list of {"date", "kind", "name"}')
    if len(items) > MAX_SPECIAL_DAYS:
        raise CalendarError(f"at most {MAX_SPECIAL_DAYS} special days")
    out: dict[dt.date, tuple[dt.date, str, str]] = {}
    for i, item in enumerate(items):
        where = f"special_days[{i}]"
        if not isinstance(item, dict):
            raise CalendarError(f'{where}: an object {{"date", "kind", "name"}}')
        extra = set(item) - {"date", "kind", "name"}
        if extra:
            raise CalendarError(f"{where}: unknown key {sorted(extra)[0]!r}")
        raw = item.get("date")
        try:
            if not isinstance(raw, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                raise ValueError
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise CalendarError(f"{where}: {raw!r} is not a date YYYY-MM-DD") from None
        if not 2000 <= day.year <= 2100:
            raise CalendarError(f"{where}: {raw} is outside 2000-2100")
        kind = item.get("kind")
        if kind not in SPECIAL_KINDS:
            raise CalendarError(f"{where}: kind must be holiday or workday")
        name = item.get("name", "")
        if not isinstance(name, str) or len(name) > 40:
            raise CalendarError(f"{where}: name must be text of at most 40 characters")
        if day in out:
            raise CalendarError(f"{where}: {raw} is listed twice")
        out[day] = (day, kind, name.strip())
    return tuple(sorted(out.values()))


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
class DayInfo:
    """What a calendar makes of one date, and where that comes from."""

    day: dt.date
    kind: str  # holiday, workday (a working day by exception), ordinary
    source: str  # custom (the calendar's own list), official (chinese_calendar), weekly
    name: str
    official_data: bool  # chinese_calendar knows this year
    note: str


@dataclass(frozen=True)
class BusinessCalendar:
    tz: ZoneInfo
    hours: dict[str, tuple[Interval, ...]]
    cn_holidays: bool = True
    special: dict[dt.date, tuple[str, str]] = field(default_factory=dict)  # day → (kind, name)

    @classmethod
    def from_config(
        cls, timezone: str, hours: dict[str, Any], cn_holidays: bool, special_days: Any = ()
    ) -> BusinessCalendar:
        special = {d: (kind, name) for d, kind, name in parse_special_days(list(special_days or []))}
        return cls(check_timezone(timezone), parse_hours(hours), cn_holidays, special)

    def _kind(self, day: dt.date) -> str | None:
        own = self.special.get(day)
        if own is not None:
            return own[0]
        return _cn_day(day) if self.cn_holidays else None

    def intervals(self, day: dt.date) -> tuple[Interval, ...]:
        special = self._kind(day)
        if special == "holiday":
            return self.hours.get("holiday", ())
        if special == "workday":
            return self.hours.get("workday", self.hours.get("mon", ()))
        return self.hours.get(DAYS[day.weekday()], ())

    def day_info(self, day: dt.date) -> DayInfo:
        official = has_official_data(day.year)
        own = self.special.get(day)
        if own is not None:
            return DayInfo(day, own[0], "custom", own[1], official, "listed in this calendar's special days")
        if not self.cn_holidays:
            return DayInfo(day, "ordinary", "weekly", "", official, "Chinese public holidays are off")
        if not official:
            return DayInfo(day, "ordinary", "weekly", "", False, coverage_note(day.year))
        kind = _cn_day(day)
        name = chinese_calendar.get_holiday_detail(day)[1] or "" if kind else ""
        if kind is None:
            return DayInfo(day, "ordinary", "weekly", "", True, "an ordinary day")
        return DayInfo(day, kind, "official", str(name), True, f"from {PACKAGE}")

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
