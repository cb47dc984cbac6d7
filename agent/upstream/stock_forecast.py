"""One run-out forecast for the whole station: what `status`, telemetry, metrics and the morning
report all show, so the operator and the centre never see two dates for the same moment.

Use is counted over print days: a print day is a day with print windows (the config's
[[windows]], weekdays 07:30-20:00 when none) that is not a holiday ([calendar] holidays); a
day's share of a print day is the share of its window hours. The rate is the blanks fed over
the configured look-back (the whole ledger, by indexed queries, no row limit) divided by the
print days in it; the run-out moment is that rate spent forward over future print days.

Thresholds are in print days too: the office (storeroom + hoppers) warns when it will run out
within `stock.office_low_print_days` print days (14: a delivery takes that long to arrange);
a hopper warns when it will be empty within its next print window (someone must refill it
before then), or holds `stock.blanks_low` blanks or fewer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

from agent.core.config import StockConfig
from agent.upstream.forecast import HORIZON_DAYS, PrintSchedule, schedule_for
from agent.journal import Journal, stamp
from agent.core.print_windows import BusyPeriod


@dataclass(frozen=True)
class PrintCalendar:
    """The print windows, less the holidays, in the station's local time (naive datetimes), and
    the busy periods the office expects ([[calendar.busy]])."""

    schedule: PrintSchedule
    holidays: frozenset[date] = frozenset()
    busy: tuple[BusyPeriod, ...] = ()

    def windows(self, day: date) -> list[tuple[datetime, datetime]]:
        """The print windows of `day` (none on a holiday)."""
        return [] if day in self.holidays else self.schedule._spans(day)  # noqa: SLF001 - its own schedule

    def demand(self, day: date) -> float:
        """How many usual days of demand `day` brings (1 but in a busy period)."""
        for period in self.busy:
            if period.first <= day <= period.last:
                return period.factor
        return 1.0

    def _day_seconds(self, day: date) -> float:
        return sum((closes - opens).total_seconds() for opens, closes in self.windows(day))

    def print_days_between(self, start: datetime, end: datetime, *, weighted: bool = False) -> float:
        """Print days from `start` to `end`: each print day counts 1, spread over its window hours
        (with `weighted`, each counts its demand factor: usual days of demand)."""
        total, day = 0.0, start.date()
        while day <= end.date():
            whole = self._day_seconds(day)
            if whole:
                inside = sum(max((min(closes, end) - max(opens, start)).total_seconds(), 0.0)
                             for opens, closes in self.windows(day))
                total += inside / whole * (self.demand(day) if weighted else 1.0)
            day += timedelta(days=1)
        return total

    def after_demand_days(self, start: datetime, days: float) -> datetime | None:
        """The moment `days` usual days of demand after `start` are used up (a busy day uses its
        factor); None beyond HORIZON_DAYS or with no print days."""
        left, day = days, start.date()
        for _ in range(HORIZON_DAYS):
            whole = self._day_seconds(day)
            factor = self.demand(day)
            if whole and factor > 0:
                for opens, closes in self.windows(day):
                    opens = max(opens, start)
                    span = (closes - opens).total_seconds()
                    if span <= 0:
                        continue
                    share = span / whole * factor
                    if left <= share:
                        return opens + timedelta(seconds=left / factor * whole)
                    left -= share
            day += timedelta(days=1)
        return None

    def after_print_days(self, start: datetime, days: float) -> datetime | None:
        """The moment `days` print days after `start`; None beyond HORIZON_DAYS or with no print days."""
        return PrintCalendar(self.schedule, self.holidays).after_demand_days(start, days)

    def next_window_end(self, now: datetime) -> datetime | None:
        """When the window printing is in now closes, or else the next one to open; None if none ahead."""
        day = now.date()
        for _ in range(HORIZON_DAYS):
            for opens, closes in sorted(self.windows(day)):
                if closes > now:
                    return closes
            day += timedelta(days=1)
        return None


# Beside the look-back, the rate of these last calendar days: the faster of the two is used.
RECENT_DAYS = 3


def calendar_for(config: Any) -> PrintCalendar:
    """The station's calendar: its [[windows]] (office hours when none) less its [calendar]
    holidays, with its [[calendar.busy]] periods."""
    return PrintCalendar(schedule_for(config.windows), frozenset(config.holidays), tuple(config.busy))


@dataclass(frozen=True)
class RunOut:
    """When a supply runs out at the recent rate. `at` is the moment (aware, UTC), `date` its local
    day; both None when it is not in sight (no recent use)."""

    remaining: int
    per_print_day: float
    per_print_hour: float
    print_days: float | None
    days: float | None
    at: datetime | None
    date: date | None

    def as_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "per_print_hour": round(self.per_print_hour, 3),
            "per_print_day": round(self.per_print_day, 2),
            "print_days": None if self.print_days is None else round(self.print_days, 2),
            "days": None if self.days is None else round(self.days, 2),
            "date": self.date.isoformat() if self.date else None,
            "at": stamp(self.at) if self.at else None,
        }


@dataclass(frozen=True)
class HopperForecast:
    printer: str
    remaining: int
    run_out: RunOut
    low: bool
    why: str | None  # "empty" | "within-next-window" | "few-left" | None

    def as_json(self) -> dict[str, Any]:
        return {"printer": self.printer, "remaining": self.remaining, "run_out": self.run_out.as_json(),
                "low": self.low, "why": self.why}


@dataclass(frozen=True)
class StockPicture:
    """Storeroom and hoppers apart, each hopper's forecast, the office's, and open discrepancies."""

    at: datetime
    storeroom: int
    storeroom_lots: list[dict]
    hoppers: dict[str, HopperForecast]
    office: RunOut
    office_low: bool
    office_low_print_days: float
    discrepancies: list[dict] = field(default_factory=list)

    @property
    def hoppers_total(self) -> int:
        return sum(h.remaining for h in self.hoppers.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "at": stamp(self.at),
            "storeroom": self.storeroom,
            "storeroom_lots": self.storeroom_lots,
            "hoppers": self.hoppers_total,
            "office": {"remaining": self.storeroom + self.hoppers_total, "run_out": self.office.as_json(),
                       "low": self.office_low, "low_print_days": self.office_low_print_days},
            "printers": {name: h.as_json() for name, h in self.hoppers.items()},
            "discrepancies": self.discrepancies,
        }


def usual_rate(used: int, since: datetime, now: datetime, calendar: PrintCalendar, zone: tzinfo | None = None) -> float:
    """Blanks a usual print day uses, from `used` over [since, now) (busy days counted by their factor)."""
    days = calendar.print_days_between(_local(since, zone), _local(now, zone), weighted=True)
    return used / days if used and days else 0.0


def run_out(remaining: int, used: int, since: datetime, now: datetime, calendar: PrintCalendar,
            zone: tzinfo | None = None, per_day: float | None = None) -> RunOut:
    """`remaining` spent at the usual rate of `used` blanks over [since, now) (aware times), or at
    `per_day` when given, over future print days (a busy day taking its factor)."""
    local_since, local_now = _local(since, zone), _local(now, zone)
    if per_day is None:
        per_day = usual_rate(used, since, now, calendar, zone)
    print_hours = calendar.schedule.hours_between(local_since, local_now)
    per_hour = used / print_hours if used and print_hours else 0.0
    if remaining <= 0:
        return RunOut(max(remaining, 0), per_day, per_hour, 0.0, 0.0, now.astimezone(timezone.utc), local_now.date())
    if per_day <= 0:
        return RunOut(remaining, per_day, per_hour, None, None, None, None)
    local_at = calendar.after_demand_days(local_now, remaining / per_day)
    if local_at is None:
        return RunOut(remaining, per_day, per_hour, None, None, None, None)
    at = _aware(local_at, zone)
    return RunOut(remaining, per_day, per_hour, calendar.print_days_between(local_now, local_at),
                  (at - now).total_seconds() / 86400, at.astimezone(timezone.utc), local_at.date())


def stock_picture(journal: Journal, printers: Iterable[str], calendar: PrintCalendar, stock: StockConfig,
                  now: datetime | None = None, zone: tzinfo | None = None) -> StockPicture:
    """The station's blanks now and when they run out: the one forecast everybody shows.

    Raises JournalError when the journal cannot be read.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    since = now - timedelta(days=stock.lookback_days)
    recent = now - timedelta(days=RECENT_DAYS)
    since_text, recent_text, now_text = stamp(since), stamp(recent), stamp(now)
    names = list(dict.fromkeys([*printers, *journal.ledger_printers()]))
    window_end = calendar.next_window_end(_local(now, zone))

    def rate(printer: str | None) -> tuple[int, float]:
        # The look-back's rate, or the last days' when they ran faster: demand that is rising
        # shows at once, so the warning comes early rather than late.
        used = journal.feeds_between(since_text, now_text, printer)
        lately = journal.feeds_between(recent_text, now_text, printer)
        return used, max(usual_rate(used, since, now, calendar, zone), usual_rate(lately, recent, now, calendar, zone))

    hoppers = {}
    for name in names:
        remaining = journal.blanks_remaining(name)
        used, per_day = rate(name)
        forecast = run_out(remaining, used, since, now, calendar, zone, per_day)
        why = None
        if remaining <= 0:
            why = "empty"
        elif forecast.at is not None and window_end is not None and _local(forecast.at, zone) <= window_end:
            why = "within-next-window"
        elif remaining <= stock.blanks_low:
            why = "few-left"
        hoppers[name] = HopperForecast(name, remaining, forecast, why is not None, why)
    storeroom = journal.storeroom_remaining()
    office_remaining = storeroom + sum(h.remaining for h in hoppers.values())
    used, per_day = rate(None)
    office = run_out(office_remaining, used, since, now, calendar, zone, per_day)
    office_low = office.remaining <= 0 or (office.print_days is not None
                                           and office.print_days <= stock.office_low_print_days)
    return StockPicture(at=now, storeroom=storeroom, storeroom_lots=journal.storeroom_lots(), hoppers=hoppers,
                        office=office, office_low=office_low, office_low_print_days=stock.office_low_print_days,
                        discrepancies=journal.open_discrepancies())


def _local(at: datetime, zone: tzinfo | None) -> datetime:
    return at.astimezone(zone).replace(tzinfo=None)


def _aware(local: datetime, zone: tzinfo | None) -> datetime:
    if zone is not None:
        return local.replace(tzinfo=zone)
    return local.astimezone()  # the system's zone, as the schedule's clock is
