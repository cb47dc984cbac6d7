"""One run-out date everyone can trust: `status --json`, the telemetry sent upstream and the
metric give the same date for the same moment, from the whole ledger (no row limit), counted
over print days (windows, weekends, holidays), and that date is the one worked out by hand."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, time, timedelta, timezone

import pytest

from agent.core.config import StockConfig
from agent.upstream.forecast import PrintSchedule
from agent.journal import Journal, stamp
from agent.ops.metrics import Snapshot, families
from agent.core.print_windows import PrintWindow
from agent.ops.status import from_journal
from agent.upstream.stock_forecast import PrintCalendar, stock_picture
from agent.core.printer_snapshot import PrinterSnapshot
from agent.upstream.telemetry import TelemetryReporter

ZONE = datetime.now().astimezone().tzinfo  # the station's clock is the system's
WINDOWS = (PrintWindow(("mon", "tue", "wed", "thu", "fri"), time(8, 0), time(16, 0)),)
NOW_LOCAL = datetime(2026, 12, 2, 12, 0)  # a Wednesday, half of the day's window gone
NOW = NOW_LOCAL.replace(tzinfo=ZONE).astimezone(timezone.utc)
HOLIDAY = date(2026, 11, 30)  # the Monday inside the look-back
STOCK = StockConfig(lookback_days=7, blanks_low=100)
CALENDAR = PrintCalendar(PrintSchedule.from_windows(WINDOWS), frozenset({HOLIDAY}))
# Blanks fed per printer inside the look-back (4 print days: Wed 1/2, Thu, Fri, Tue, Wed 1/2; Monday is a holiday).
RECENT = {"p1": 600, "p2": 400, "p3": 200, "p4": 800}
REMAINING = {"p1": 500, "p2": 1000, "p3": 20, "p4": 1200}
STOREROOM = 2000


def local_at(day: date, hour: float) -> str:
    moment = datetime.combine(day, time(0)) + timedelta(hours=hour)
    return stamp(moment.replace(tzinfo=ZONE))


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    path = tmp_path_factory.mktemp("stock") / "journal.db"
    Journal(path, "st-1").close()  # the schema, as the station makes it
    rows = []
    older_days = [NOW_LOCAL.date() - timedelta(days=n) for n in range(8, 80)]
    for name in RECENT:
        fed = 0
        for day in older_days:  # the long history before the look-back: it must not count
            for k in range(200):
                rows.append((local_at(day, 8 + 7.9 * k / 200), name, "LOT-OLD", "feed", -1))
                fed += 1
        recent_days = [NOW_LOCAL.date() - timedelta(days=n) for n in (7, 6, 5, 1, 0)]
        per = RECENT[name] // 4
        for day in recent_days:
            hours = [12.5 + 3 * k / per for k in range(per // 2)] if day == recent_days[0] else (
                [8 + 3.9 * k / (per // 2) for k in range(per // 2)] if day == NOW_LOCAL.date() else
                [8 + 7.9 * k / per for k in range(per)])
            for hour in hours:
                rows.append((local_at(day, hour), name, "LOT-1", "feed", -1))
                fed += 1
        rows.append((local_at(NOW_LOCAL.date() - timedelta(days=90), 9), name, "LOT-1", "load", fed + REMAINING[name]))
    db = sqlite3.connect(path)
    db.executemany("INSERT INTO ledger(at, printer, lot, movement, quantity) VALUES (?, ?, ?, ?, ?)", rows)
    db.execute("INSERT INTO storeroom(at, lot, movement, quantity) VALUES (?, 'LOT-2', 'receive', ?)",
               (local_at(NOW_LOCAL.date() - timedelta(days=3), 9), STOREROOM))
    db.commit()
    db.close()
    journal = Journal(path, "st-1")
    yield journal
    journal.close()


def by_hand(remaining: int, per_print_day: float) -> datetime:
    """The guide to the date, worked out dot by dot: spend print days forward from Wednesday noon."""
    left = remaining / per_print_day
    day, start = NOW_LOCAL.date(), NOW_LOCAL
    while True:
        if day.weekday() < 5 and day != HOLIDAY:
            opens, closes = datetime.combine(day, time(8)), datetime.combine(day, time(16))
            share = (closes - max(opens, start)).total_seconds() / (8 * 3600)
            if left <= share:
                return (max(opens, start) + timedelta(hours=8 * left)).replace(tzinfo=ZONE)
            left -= share
        day += timedelta(days=1)


def test_the_ledger_has_the_volume_of_a_busy_office(journal):
    assert journal._db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] >= 50_000


def test_status_telemetry_and_the_metric_give_the_same_date_and_it_is_right_by_hand(journal):
    status = from_journal(journal, "st-1", list(RECENT), now=NOW, windows=WINDOWS, holidays=frozenset({HOLIDAY}),
                          stock=STOCK).to_json()
    reporter = TelemetryReporter(journal, lambda: [PrinterSnapshot(n, "idle") for n in RECENT], STOCK, CALENDAR)
    telemetry = reporter.report(NOW)
    picture = stock_picture(journal, list(RECENT), CALENDAR, STOCK, NOW)
    metric = {dict(labels)["scope"]: value for family in families(Snapshot("st-1", (), [], [], {}, 0, True,
                                                                            picture.as_json()))
              if family.name == "printstation_blanks_runout_timestamp_seconds" for labels, value in
              ((tuple(s[0].items()), s[1]) for s in family.samples)}
    for name in RECENT:
        per_day = RECENT[name] / 4
        expected = by_hand(REMAINING[name], per_day)
        in_status = next(p["blanks_forecast"] for p in status["printers"] if p["name"] == name)
        in_telemetry = next(p["forecast"]["blanks"] for p in telemetry["printers"] if p["name"] == name)
        assert in_status == in_telemetry, name
        assert in_status["per_print_day"] == pytest.approx(per_day, rel=1e-3)
        assert datetime.fromisoformat(in_status["at"].replace("Z", "+00:00")) == pytest.approx(expected, abs=timedelta(seconds=1))
        assert in_status["date"] == expected.date().isoformat()
        assert metric[name] == pytest.approx(expected.timestamp(), abs=1.0)
    office_total = sum(RECENT.values()) / 4
    expected_office = by_hand(STOREROOM + sum(REMAINING.values()), office_total)
    assert status["stock"]["office"]["run_out"] == telemetry["forecast"]["blanks"]
    assert status["stock"]["storeroom"] == telemetry["stock"]["storeroom"] == STOREROOM
    assert telemetry["forecast"]["blanks"]["date"] == expected_office.date().isoformat()
    assert metric["office"] == pytest.approx(expected_office.timestamp(), abs=1.0)


def test_the_p1_example_runs_out_on_the_holiday_free_monday_afternoon(journal):
    # 500 blanks at 150 a print day from Wednesday noon: 0.5 + 1 + 1 print days to Friday night,
    # then 0.83 of Monday's eight hours: 14:40.
    picture = stock_picture(journal, list(RECENT), CALENDAR, STOCK, NOW)
    at = picture.hoppers["p1"].run_out.at.astimezone(ZONE)
    assert (at.strftime("%a %H:%M"), round(picture.hoppers["p1"].run_out.print_days, 2)) == ("Mon 14:40", 3.33)


def test_thresholds_are_in_print_days(journal):
    picture = stock_picture(journal, list(RECENT), CALENDAR, STOCK, NOW)
    # p3: 20 blanks at 50 a print day, half of today's window left: empty before it closes -> low;
    # p2 lasts 10 print days -> not.
    assert picture.hoppers["p3"].low and picture.hoppers["p3"].why == "within-next-window"
    assert not picture.hoppers["p2"].low
    # The office: 4,720 blanks at 500 a print day = 9.44 print days < 14 -> low, though 13 calendar days away.
    assert picture.office.print_days == pytest.approx(9.44, rel=1e-3) and picture.office_low
    assert picture.office.days > 13
