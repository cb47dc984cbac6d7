"""When blanks and ribbon run out: the recent rate of use, projected over the office's print hours.

Offices print in windows (the config's [[windows]], agent/core/print_windows.py; weekdays
07:30-20:00 when none are set), with overtime when demand spikes:
a rate per print hour, measured over the last days, and spent only inside future windows,
gives a run-out date that idle nights and weekends neither hasten nor dilute. All times
are the station's local wall-clock time (naive datetimes), as the schedule is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from agent.core.print_windows import DAYS, PrintWindow

DEFAULT_LOOKBACK_DAYS = 7
# A forecast further out than this says "not in sight" rather than a date nobody can plan on.
HORIZON_DAYS = 3650
# Without [[windows]] in the config the station may print at any hour, but an office still
# works office hours: the forecast assumes weekdays 07:30-20:00 (overtime included).
DEFAULT_WINDOWS = (PrintWindow(("mon", "tue", "wed", "thu", "fri"), time(7, 30), time(20, 0)),)


@dataclass(frozen=True)
class _Span:
    """Printing on `weekday` (0 = Monday) from `start` until `end` (None: until midnight)."""

    weekday: int
    start: time
    end: time | None


@dataclass(frozen=True)
class PrintSchedule:
    """A weekly schedule of printing hours, local time."""

    spans: tuple[_Span, ...]

    @classmethod
    def from_windows(cls, windows: Iterable[PrintWindow]) -> "PrintSchedule":
        """The schedule of the station's [[windows]]; a window past midnight goes on into the next day."""
        spans = []
        for window in windows:
            for day in window.days:
                weekday = DAYS.index(day)
                if window.start < window.end:
                    spans.append(_Span(weekday, window.start, window.end))
                else:
                    spans.append(_Span(weekday, window.start, None))
                    spans.append(_Span((weekday + 1) % 7, time(0, 0), window.end))
        return cls(tuple(spans))

    def _spans(self, day: date) -> list[tuple[datetime, datetime]]:
        midnight = datetime.combine(day + timedelta(days=1), time(0, 0))
        return sorted((datetime.combine(day, s.start), datetime.combine(day, s.end) if s.end else midnight)
                      for s in self.spans if s.weekday == day.weekday())

    def hours_between(self, start: datetime, end: datetime) -> float:
        """Print hours from `start` to `end`."""
        total = 0.0
        day = start.date()
        while day <= end.date():
            for opens, closes in self._spans(day):
                total += max((min(closes, end) - max(opens, start)).total_seconds(), 0.0)
            day += timedelta(days=1)
        return total / 3600

    def after_print_hours(self, start: datetime, hours: float) -> datetime | None:
        """The moment `hours` print hours after `start`; None beyond HORIZON_DAYS or with no windows."""
        left = hours * 3600
        day = start.date()
        for _ in range(HORIZON_DAYS):
            for opens, closes in self._spans(day):
                opens = max(opens, start)
                available = (closes - opens).total_seconds()
                if available <= 0:
                    continue
                if left <= available:
                    return opens + timedelta(seconds=left)
                left -= available
            day += timedelta(days=1)
        return None


DEFAULT_SCHEDULE = PrintSchedule.from_windows(DEFAULT_WINDOWS)


def schedule_for(windows: tuple[PrintWindow, ...]) -> PrintSchedule:
    """The schedule every forecast of the station uses: its configured [[windows]], else office hours."""
    return PrintSchedule.from_windows(windows) if windows else DEFAULT_SCHEDULE


@dataclass(frozen=True)
class Use:
    """`quantity` blanks (or ribbon prints) used at `at`, local time."""

    at: datetime
    quantity: int = 1


@dataclass(frozen=True)
class RunOut:
    """When a supply runs out at the recent rate: `days` from now and the local `date`; None if not in sight."""

    remaining: int
    per_print_hour: float
    days: float | None
    date: date | None

    def as_json(self) -> dict:
        return {
            "remaining": self.remaining,
            "per_print_hour": round(self.per_print_hour, 3),
            "days": None if self.days is None else round(self.days, 2),
            "date": self.date.isoformat() if self.date else None,
        }


def recent_rate(uses: Iterable[Use], now: datetime, schedule: PrintSchedule,
                lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> float:
    """Units used per print hour over the last `lookback_days` (0 when nothing was used or no hours passed).

    Use outside the windows (overtime) counts; it is spread over the window hours, so a
    schedule that is too short shows up as a faster rate, never as a lost card.
    """
    since = now - timedelta(days=lookback_days)
    used = sum(u.quantity for u in uses if since <= u.at < now)
    hours = schedule.hours_between(since, now)
    return used / hours if used and hours else 0.0


def forecast(remaining: int, uses: Iterable[Use], now: datetime, schedule: PrintSchedule = DEFAULT_SCHEDULE,
             lookback_days: int = DEFAULT_LOOKBACK_DAYS) -> RunOut:
    """When `remaining` runs out if use goes on at the recent rate, inside the print windows."""
    rate = recent_rate(uses, now, schedule, lookback_days)
    if remaining <= 0:
        return RunOut(max(remaining, 0), rate, 0.0, now.date())
    if rate <= 0:
        return RunOut(remaining, rate, None, None)
    runs_out_at = schedule.after_print_hours(now, remaining / rate)
    if runs_out_at is None:
        return RunOut(remaining, rate, None, None)
    return RunOut(remaining, rate, (runs_out_at - now).total_seconds() / 86400, runs_out_at.date())
