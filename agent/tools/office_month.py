"""A month of an office, as a benchmark (`printstation bench --office-month`): does the station's
one stock forecast warn the office in time, and does the ledger end where the blanks are?

The real journal, ledger, storeroom, reconciliation and forecast code (agent.journal,
agent.ops.hopper, agent.upstream.stock_forecast) are driven with a simulated clock through 30 days of an
office with two printers. Only the world is simulated: applicants, the hoppers' physical
blanks, deliveries from the centre and an operator. The scenario:

- 150 applicants a print day (weekdays 08:00-16:00), a week of 250 a day after the school
  graduation (week 3), weekends off; 2 % of the cards spoiled and printed again;
- a delivery of 2,000 blanks every fortnight from the centre, the second of which comes a
  week late; the operator orders nothing else, so the late one brings the office near running out;
- the operator fills a hopper to 300 from the storeroom whenever its printer says its feeder
  is empty; once she records a fill but puts in 5 fewer (a miscount); the printer's empty feeder
  tells while the ledger still counts 5, `hopper reconcile` names it, she counts the hopper and
  records what she finds (`hopper adjust`), then fills it.

For every stock-out it causes or nearly causes (the office's blanks, storeroom and hoppers,
falling below one print day of use), the figure says how many print days ahead the office's
warning came (goal >= 14), and the ledger's difference from the physical blanks at the end
(goal 0).
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from agent.core.config import PrinterConfig, StationConfig, StockConfig
from agent.upstream.forecast import PrintSchedule
from agent.ops.hopper import PrinterEvidence, reconcile
from agent.journal import Journal
from agent.core.print_windows import BusyPeriod, PrintWindow
from agent.upstream.stock_forecast import PrintCalendar, stock_picture

ZONE = timezone(timedelta(hours=7))  # WIB: the office's clock
WINDOWS = (PrintWindow(("mon", "tue", "wed", "thu", "fri"), time(8, 0), time(16, 0)),)
PRINTERS = ("p1", "p2")
HOPPER_CAPACITY = 300
FIRST_DAY = date(2026, 11, 2)  # a Monday
DAYS = 30
RUSH_WEEK = 2  # weeks counted from 0
DELIVERY = 2000
DELIVERY_DAYS = (0, 14, 28)  # due: the first Monday of each fortnight
LATE_DELIVERY = 14  # the delivery due on this day...
LATE_BY_DAYS = 7  # ...comes this much later
MISCOUNT_DAY, MISCOUNT_SHORT = 9, 5  # that morning she records p1's top-up, but puts in 5 fewer
SPOIL_RATE = 0.02
WARM_UP_DAYS = 14  # the office was already printing: two ordinary weeks of history before the month
START_STOREROOM = 200  # what the storeroom holds the evening before the month (the first delivery comes on day 0)


@dataclass
class Event:
    """The office's blanks fell below one print day of use (or ran out)."""

    at: datetime
    remaining: int
    warned_at: datetime | None
    warning_print_days: float | None
    ran_out: bool


@dataclass
class MonthFigures:
    events: list[Event] = field(default_factory=list)
    cards_printed: int = 0
    cards_spoiled: int = 0
    ledger_difference: int = 0
    discrepancies_found: int = 0
    reconcile_agreed_at_end: bool = False
    balanced: bool = False

    def as_json(self) -> dict:
        return {
            "stock_outs": [{"at": e.at.astimezone(ZONE).isoformat(timespec="minutes"), "remaining": e.remaining,
                            "ran_out": e.ran_out, "warned_print_days_ahead":
                                None if e.warning_print_days is None else round(e.warning_print_days, 1)}
                           for e in self.events],
            "min_warning_print_days": min((e.warning_print_days or 0.0 for e in self.events), default=None),
            "cards_printed": self.cards_printed,
            "cards_spoiled": self.cards_spoiled,
            "ledger_difference_at_end": self.ledger_difference,
            "discrepancies_found": self.discrepancies_found,
            "reconcile_agrees_at_end": self.reconcile_agreed_at_end,
            "every_lot_balanced": self.balanced,
        }


def run_office_month(folder: Path | None = None, seed: int = 7) -> MonthFigures:
    """Run the month; returns its figures."""
    base = Path(folder or tempfile.mkdtemp(prefix="office-month-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    journal = Journal(base / "journal.db", "office")
    try:
        return _Month(journal, random.Random(seed)).run()
    finally:
        journal.close()


class _Month:
    def __init__(self, journal: Journal, rng: random.Random) -> None:
        self.journal = journal
        self.rng = rng
        rush = FIRST_DAY + timedelta(days=7 * RUSH_WEEK)
        # The office knows the graduation week is coming ([[calendar.busy]]): 250 where 150 is usual.
        self.calendar = PrintCalendar(PrintSchedule.from_windows(WINDOWS),
                                      busy=(BusyPeriod(rush, rush + timedelta(days=4), 250 / 150),))
        self.stock = StockConfig(lookback_days=7, blanks_low=40)
        self.config = StationConfig.__new__(StationConfig)  # only its printers are read by reconcile
        object.__setattr__(self.config, "printers", tuple(PrinterConfig(p, "serial:///dev/null", "none") for p in PRINTERS))
        self.physical = {p: 0 for p in PRINTERS}  # blanks really in each hopper
        self.figures = MonthFigures()
        self.jobs = 0
        self.lot = 0
        self.warned_at: datetime | None = None
        self.in_event = False
        self.counting = False
        self.today = -WARM_UP_DAYS
        self.miscounted = False

    def at(self, day: date, hours: float) -> datetime:
        return (datetime.combine(day, time(0)) + timedelta(hours=hours)).replace(tzinfo=ZONE)

    def run(self) -> MonthFigures:
        self._receive(self.at(FIRST_DAY - timedelta(days=WARM_UP_DAYS), 7.5), START_STOREROOM + 150 * 10 + 2 * 300)
        for n in range(-WARM_UP_DAYS, DAYS):
            day = FIRST_DAY + timedelta(days=n)
            self.counting = n >= 0
            for due in DELIVERY_DAYS:
                arrives = due + (LATE_BY_DAYS if due == LATE_DELIVERY else 0)
                if n == arrives:
                    self._receive(self.at(day, 7.5), DELIVERY)
            if day.weekday() >= 5:
                continue
            self.today = n
            applicants = 250 if n // 7 == RUSH_WEEK else 150
            times = sorted(8 + 8 * self.rng.random() for _ in range(applicants))
            for k, hour in enumerate(times):
                self._serve(self.at(day, hour), PRINTERS[k % len(PRINTERS)])
                if k % 5 == 0:
                    self._watch(self.at(day, hour))
            self._watch(self.at(day, 16))
        self._finish(self.at(FIRST_DAY + timedelta(days=DAYS), 7))
        return self.figures

    def _receive(self, at: datetime, count: int) -> None:
        self.lot += 1
        self.journal.receive_blanks(f"LOT-{self.lot}", count, who="centre", at=at)

    def _fill(self, at: datetime, printer: str) -> bool:
        """The operator fills the hopper up to its capacity from the storeroom, oldest lot first;
        False when the storeroom has nothing to give."""
        wanted = HOPPER_CAPACITY - self.physical[printer]
        filled = False
        for lot in self.journal.storeroom_lots():
            if wanted <= 0:
                break
            take = min(wanted, lot["remaining"])
            if take <= 0:
                continue
            put = take
            if self.today >= MISCOUNT_DAY and printer == PRINTERS[0] and not self.miscounted and take > MISCOUNT_SHORT:
                put, self.miscounted = take - MISCOUNT_SHORT, True  # she writes `take`, puts in 5 fewer
            self.journal.load_blanks(printer, take, lot["lot"], who="operator", at=at)
            self.physical[printer] += put
            wanted -= take
            filled = True
        return filled

    def _serve(self, at: datetime, printer: str) -> None:
        """One applicant's card: on this printer, or the other when its feeder is empty."""
        for candidate in (printer, *[p for p in PRINTERS if p != printer]):
            if self._print_on(at, candidate):
                return
        # Both feeders empty: the applicant comes back; the office has run out.

    def _print_on(self, at: datetime, printer: str) -> bool:
        self.jobs += 1
        job_id = f"J-{self.jobs:05d}"
        self.journal.add_leased(job_id, {"job_id": job_id}, not_after=at + timedelta(days=30),
                                lease_expires_at=at + timedelta(days=30), priority=0, at=at)
        while True:
            claimed = self.journal.claim_next(printer, at=at)
            assert claimed is not None
            if self.physical[printer] == 0:
                self.journal.unclaim(claimed.job_id, claimed.attempt, "feed-refused: FEEDER EMPTY", at=at)
                self._feeder_empty(at, printer)
                if self._fill(at, printer):
                    continue
                self.journal.release_surplus(0, "the office has no blanks", at=at)
                return False
            self.physical[printer] -= 1
            self.journal.fed(claimed.job_id, claimed.attempt, printer, at=at)
            if self.rng.random() < SPOIL_RATE:
                self.journal.spoiled(claimed.job_id, claimed.attempt, "chip-hash-mismatch", at=at)
                if self.counting:
                    self.figures.cards_spoiled += 1
                continue
            self.journal.printed(claimed.job_id, claimed.attempt, None, at=at)
            if self.counting:
                self.figures.cards_printed += 1
            return True

    def _feeder_empty(self, at: datetime, printer: str) -> None:
        """The printer says its feeder is empty: the station holds the ledger against it, and the
        operator, told by the discrepancy, counts the hopper and records what she finds."""
        evidence = PrinterEvidence(printer, asked=True, feeder_empty=True, card_counter=None, card_inside=False)
        result = reconcile(self.config, self.journal, lambda p: evidence if p.name == printer else
                           PrinterEvidence(p.name, asked=False, not_asked_because="not asked"))
        found = [d for d in result.disagreements if d.printer == printer and d.what_key == "feeder-empty-ledger-not"]
        if found:
            self.figures.discrepancies_found += 1
            counted = self.physical[printer]  # 0: she finds the hopper empty
            ledger = self.journal.blanks_remaining(printer)
            self.journal.adjust_blanks(printer, counted - ledger, "counted the hopper after the discrepancy",
                                       "operator", at=at)

    def _watch(self, at: datetime) -> None:
        """The office's warning (the one forecast), and whether the office is about to run out.

        A stock-out, or a near one (less than a usual print day's use left), is timed at the
        moment the blanks run out, or would have run out at that rate had the delivery not come;
        the warning's lead is the print days from its onset to that moment.
        """
        picture = stock_picture(self.journal, PRINTERS, self.calendar, self.stock, at.astimezone(timezone.utc), ZONE)
        remaining = picture.storeroom + picture.hoppers_total
        if picture.office_low and self.warned_at is None:
            self.warned_at = at
        if not picture.office_low:
            self.warned_at = None
            self.in_event = False
        per_day = picture.office.per_print_day or 150.0
        if remaining < per_day * self.calendar.demand(at.astimezone(ZONE).date()) and not self.in_event and self.counting:
            self.in_event = True
            empty_at = picture.office.at.astimezone(ZONE) if picture.office.at else at
            ahead = (self.calendar.print_days_between(_local(self.warned_at), _local(empty_at))
                     if self.warned_at is not None else None)
            self.figures.events.append(Event(empty_at, remaining, self.warned_at, ahead, remaining == 0))
        if self.in_event and remaining == 0 and not self.figures.events[-1].ran_out:
            self.figures.events[-1].ran_out = True
            self.figures.events[-1].at = at

    def _finish(self, at: datetime) -> None:
        for printer in PRINTERS:  # the month's last evening: every hopper asked
            evidence = {p: PrinterEvidence(p, asked=True, feeder_empty=self.physical[p] == 0, card_counter=None,
                                           card_inside=False) for p in PRINTERS}
        result = reconcile(self.config, self.journal, lambda p: evidence[p.name])
        self.figures.reconcile_agreed_at_end = result.agrees
        self.figures.ledger_difference = sum(self.journal.blanks_remaining(p) - self.physical[p] for p in PRINTERS)
        self.figures.balanced = all(lot["balanced"] for lot in self.journal.stock_balance())


def _local(at: datetime) -> datetime:
    return at.astimezone(ZONE).replace(tzinfo=None)
