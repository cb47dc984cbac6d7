"""Telemetry reports: blanks per printer and lot, ribbon, IPP states and reasons, and the alerts thresholds raise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.core.config import StockConfig
from agent.journal import Journal, stamp, utcnow
from agent.core.printer_snapshot import PrinterSnapshot
from agent.upstream.telemetry import TelemetryReporter

UTC = timezone.utc
NOW = datetime(2026, 6, 3, 5, 0, tzinfo=UTC)  # Wednesday 12:00 in Jakarta
JAKARTA = timezone(timedelta(hours=7))
STOCK = StockConfig(blanks_low=100, blanks_low_days=5, ribbon_low=50)


def station(folder, printer: str, remaining: int, per_day: int, days: int = 7, spoiled_today: int = 0) -> Journal:
    """A journal where `printer` printed `per_day` cards at 10:00 local on each weekday of the last
    `days` days (today at 09:00) and has `remaining` blanks left in its hopper, lot LOT-1."""
    journal = Journal(folder / "journal.db", "st-1")
    rows, jobs, attempts = [], [], []
    n = 0
    for back in range(days):
        day = (NOW - timedelta(days=back)).astimezone(JAKARTA)
        if day.weekday() >= 5:
            continue
        ended = (day.replace(hour=10, minute=0) if back else day.replace(hour=9)).astimezone(UTC)
        # Today: as many as the part of the window gone by (07:30 to 12:00 of 07:30-20:00) holds.
        for _ in range(per_day if back else round(per_day * 4.5 / 12.5)):
            n += 1
            at = stamp(ended)
            jobs.append((f"J-{n}", "printed", at, at, at, at))
            attempts.append((f"J-{n}", printer, at, at, "printed"))
            rows.append((at, printer, "LOT-1", "feed", -1, f"J-{n}", 1))
    for k in range(spoiled_today):
        n += 1
        at = "2026-06-03T01:00:00.000Z"
        jobs.append((f"J-{n}", "printed", at, at, at, at))
        attempts.append((f"J-{n}", printer, at, at, "spoiled"))
        rows.append((at, printer, "LOT-1", "feed", -1, f"J-{n}", 1))
    db = journal._db
    db.executemany("INSERT INTO jobs(job_id, state, not_after, lease_expires_at, received_at, updated_at)"
                   " VALUES (?, ?, ?, ?, ?, ?)", jobs)
    db.executemany("INSERT INTO attempts(job_id, n, printer, fed, started_at, ended_at, result) VALUES (?, 1, ?, 1, ?, ?, ?)",
                   attempts)
    db.executemany("INSERT INTO ledger(at, printer, lot, movement, quantity, job_id, attempt) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   rows)
    db.execute("INSERT INTO ledger(at, printer, lot, movement, quantity) VALUES ('2026-05-01T00:00:00.000Z', ?, 'LOT-1',"
               " 'load', ?)", (printer, len(rows) + remaining))
    return journal


def report(folder, readings, remaining: int, per_day: int, printer: str = "p1", stock=STOCK, **extra) -> dict:
    journal = station(folder, printer, remaining, per_day, **extra)
    try:
        return TelemetryReporter(journal, lambda: readings, stock, zone=JAKARTA).report(NOW)
    finally:
        journal.close()


def kinds(body: dict) -> set[tuple[str, str]]:
    return {(a["kind"], a["severity"]) for a in body["alerts"]}


def test_plenty_of_stock_raises_no_alert(tmp_path):
    body = report(tmp_path, [PrinterSnapshot("p1", "idle", (), ribbon_left=900, card_counter=10)], 800, 20)
    assert [a for a in body["alerts"] if a["kind"] != "office-stock-low"] == [] and body["printers"][0]["reasons"] == []
    assert body["printers"][0]["blanks"]["remaining"] == 800
    assert body["printers"][0]["blanks"]["lots"][0]["lot"] == "LOT-1"


def test_few_blanks_raise_a_low_alert_in_ipp_words(tmp_path):
    body = report(tmp_path, [PrinterSnapshot("p1", "idle", (), ribbon_left=900)], 40, 5)
    assert ("blanks-low", "warning") in kinds(body)
    assert "media-low-warning" in body["printers"][0]["reasons"]


def test_a_hopper_that_empties_within_its_next_print_window_raises_a_low_alert(tmp_path):
    # 90 blanks is above the count threshold of 10, but at 150 a print day they are gone before
    # today's window (12:00-20:00 of 07:30-20:00 left) closes.
    body = report(tmp_path, [PrinterSnapshot("p1", "processing", (), ribbon_left=900)], 90, 150,
                  stock=StockConfig(blanks_low=10, ribbon_low=50))
    assert ("blanks-low", "warning") in kinds(body)
    assert body["printers"][0]["forecast"]["blanks"]["print_days"] < 1


def test_the_office_stock_warns_within_its_print_days_though_the_calendar_says_more(tmp_path):
    # 500 blanks at 150 a print day on a Wednesday: out on Monday, 3.3 print days but 5.2 calendar days.
    body = report(tmp_path, [PrinterSnapshot("p1", "processing", (), ribbon_left=900)], 500, 150)
    office = body["forecast"]["blanks"]
    assert 3 < office["print_days"] < 3.5 and office["days"] > 5
    assert ("office-stock-low", "warning") in kinds(body)


def test_an_empty_hopper_and_a_spent_ribbon_raise_empty_alerts(tmp_path):
    body = report(tmp_path, [PrinterSnapshot("p1", "stopped", ("media-empty-error",), ribbon_left=0)], 0, 5)
    assert {("blanks-empty", "error"), ("ribbon-empty", "error"), ("printer-stopped", "error")} <= kinds(body)
    assert {"media-empty-error", "marker-supply-empty-error"} <= set(body["printers"][0]["reasons"])


def test_a_low_ribbon_raises_a_low_alert_with_its_run_out_date(tmp_path):
    body = report(tmp_path, [PrinterSnapshot("p1", "idle", (), ribbon_left=30)], 800, 20)
    ribbon = [a for a in body["alerts"] if a["kind"] == "ribbon-low"]
    assert ribbon and "30 more cards" in ribbon[0]["message"]
    assert body["printers"][0]["forecast"]["ribbon"]["date"] is not None


def test_printed_and_spoiled_are_counted_per_local_day(tmp_path):
    body = report(tmp_path, [PrinterSnapshot("p1", "idle")], 800, 9, days=1, spoiled_today=1)
    assert body["days"][-1] == {"date": "2026-06-03", "printed": 3, "spoiled": 1}
    assert len(body["days"]) == STOCK.lookback_days
    assert body["printers"][0]["counters"]["printed_today"] == 3


def test_a_printer_known_only_to_the_ledger_is_reported_as_not_reporting(tmp_path):
    body = report(tmp_path, [], 800, 0, printer="p2")
    assert body["printers"][0]["name"] == "p2" and body["printers"][0]["state"] == "stopped"


def test_a_report_goes_through_the_outbox_with_its_own_idempotency_key(tmp_path):
    journal = Journal(tmp_path / "journal.db", "st-1")
    try:
        journal.receive_blanks("LOT-7", 30)
        journal.load_blanks("p1", 30, lot="LOT-7")
        reporter = TelemetryReporter(journal, lambda: [PrinterSnapshot("p1", "idle", (), ribbon_left=200)], STOCK)
        first = reporter.report(utcnow())
        reporter.queue(first)
        reporter.queue(reporter.report(utcnow() + timedelta(seconds=1)))
        message = journal.outbox_next()
        assert message.kind == "telemetry" and message.idempotency_key.startswith("st-1:telemetry:")
        assert message.body["printers"][0]["blanks"]["lots"][0]["lot"] == "LOT-7"
        assert journal.outbox_backlog() == 2, "each report has its own key"
    finally:
        journal.close()
