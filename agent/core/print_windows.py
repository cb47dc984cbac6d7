"""Print windows: the hours in which the station may start a card (office hours, a night run).

Outside every window the station holds its jobs: no printer claims one. A window may cross
midnight (22:00-06:00); it belongs to the day it starts on. Times are the station's local
time, the clock on the office wall.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class WindowError(ValueError):
    """One field of a [[windows]] table is wrong; names the field and a fix."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class PrintWindow:
    """Cards may start on `days` from `start` until `end` (end before start: until the next morning)."""

    days: tuple[str, ...]
    start: time
    end: time

    def contains(self, at: datetime) -> bool:
        """True when a card may start at local time `at`."""
        clock = at.time()
        today = DAYS[at.weekday()]
        yesterday = DAYS[(at.weekday() - 1) % 7]
        if self.start < self.end:
            return today in self.days and self.start <= clock < self.end
        # Crosses midnight: the evening part today, or the morning part of a window begun yesterday.
        return (today in self.days and clock >= self.start) or (yesterday in self.days and clock < self.end)

    def next_start(self, at: datetime) -> datetime:
        """The first moment at or after `at` when this window opens."""
        for offset in range(8):
            day = at.date() + timedelta(days=offset)
            opens = datetime.combine(day, self.start, tzinfo=at.tzinfo)
            if DAYS[day.weekday()] in self.days and opens >= at:
                return opens
        raise AssertionError("a window with at least one day opens within a week")

    def describe(self) -> str:
        return f"{','.join(self.days)} {self.start:%H:%M}-{self.end:%H:%M}"


def parse_window(entry: object) -> PrintWindow:
    """One [[windows]] table: days = ["mon", ...], start = "07:30", end = "20:00".

    Raises WindowError naming the field, what is wrong and a fix.
    """
    if not isinstance(entry, dict):
        raise WindowError("days", "is not in a table", 'write [[windows]] with days, start and end')
    days = entry.get("days", list(DAYS))
    if not isinstance(days, list) or not days or not all(isinstance(d, str) and d.lower() in DAYS for d in days):
        raise WindowError("days", f"is {days!r}", f"list days by their first three letters: {', '.join(DAYS)}")
    start, end = (_clock(entry, name) for name in ("start", "end"))
    if start == end:
        raise WindowError("end", "equals start", "a window needs a length; for all day leave [[windows]] out")
    return PrintWindow(tuple(d.lower() for d in days), start, end)


def _clock(entry: dict, name: str) -> time:
    value = entry.get(name)
    m = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise WindowError(name, f"is {value!r}" if value is not None else "is missing",
                          f'write it as 24-hour local time, e.g. {name} = "07:30"')
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class WindowVerdict:
    open: bool
    opens_at: datetime | None  # when closed: the next opening


def check_windows(windows: tuple[PrintWindow, ...], at: datetime) -> WindowVerdict:
    """May a card start at `at`? No windows configured means always."""
    if not windows or any(w.contains(at) for w in windows):
        return WindowVerdict(True, None)
    return WindowVerdict(False, min(w.next_start(at) for w in windows))


@dataclass(frozen=True)
class BusyPeriod:
    """Days ([[calendar.busy]]) when the office expects `factor` times its usual demand, e.g. the
    week after a school graduation: the stock forecast spends blanks faster on them."""

    first: date
    last: date
    factor: float
