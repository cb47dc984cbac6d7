"""Telemetry reports: blanks per printer and lot, ribbon, IPP states and reasons, and the alerts thresholds raise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent.config import StockConfig
from agent.journal import Journal, utcnow
from agent.telemetry import PrinterReading, TelemetryReporter, build_report

UTC = timezone.utc
NOW = datetime(2026, 6, 3, 5, 0, tzinfo=UTC)  # Wednesday 12:00 in Jakarta
JAKARTA = timezone(timedelta(hours=7))
STOCK = StockConfig(blanks_low=100, blanks_low_days=5, ribbon_low=50)


def balance(printer: str, remaining: int, lot: str = "LOT-1", loaded: int = 1000) -> list[dict]:
    return [{"printer": printer, "lot": lot, "loaded": loaded, "remaining": remaining}]


def attempts(printer: str, per_day: int, days: int = 7) -> list[dict]:
    """`per_day` printed cards at 10:00 local on each weekday of the last `days` days."""
    rows = []
    for back in range(days):
        day = (NOW - timedelta(days=back)).astimezone(JAKARTA)
        if day.weekday() < 5:
            ended = day.replace(hour=10, minute=0) if back else day.replace(hour=9)
            rows += [{"printer": printer, "result": "printed", "ended_at": ended.astimezone(UTC).isoformat()}] * per_day
    return rows


def report(readings, rows_balance, rows_attempts, stock=STOCK) -> dict:
    return build_report(readings, rows_balance, rows_attempts, NOW, stock, zone=JAKARTA)


def kinds(body: dict) -> set[tuple[str, str]]:
    return {(a["kind"], a["severity"]) for a in body["alerts"]}


def test_plenty_of_stock_raises_no_alert():
    body = report([PrinterReading("p1", "idle", (), 900, 10)], balance("p1", 800), attempts("p1", 20))
    assert body["alerts"] == [] and body["printers"][0]["reasons"] == []
    assert body["printers"][0]["blanks"] == {"remaining": 800, "lots": [{"lot": "LOT-1", "loaded": 1000, "remaining": 800}]}


def test_few_blanks_raise_a_low_alert_in_ipp_words():
    body = report([PrinterReading("p1", "idle", (), 900)], balance("p1", 40), attempts("p1", 5))
    assert ("blanks-low", "warning") in kinds(body)
    assert "media-low-warning" in body["printers"][0]["reasons"]


def test_blanks_that_last_fewer_days_than_a_delivery_takes_raise_a_low_alert():
    # 300 blanks is above the count threshold, but at 150 a day they are gone by Friday.
    body = report([PrinterReading("p1", "processing", (), 900)], balance("p1", 300), attempts("p1", 150))
    assert ("blanks-low", "warning") in kinds(body)
    assert body["printers"][0]["forecast"]["blanks"]["days"] < 5


def test_an_empty_hopper_and_a_spent_ribbon_raise_empty_alerts():
    body = report([PrinterReading("p1", "stopped", ("media-empty-error",), 0)], balance("p1", 0), attempts("p1", 5))
    assert {("blanks-empty", "error"), ("ribbon-empty", "error"), ("printer-stopped", "error")} <= kinds(body)
    assert {"media-empty-error", "marker-supply-empty-error"} <= set(body["printers"][0]["reasons"])


def test_a_low_ribbon_raises_a_low_alert_with_its_run_out_date():
    body = report([PrinterReading("p1", "idle", (), 30)], balance("p1", 800), attempts("p1", 20))
    ribbon = [a for a in body["alerts"] if a["kind"] == "ribbon-low"]
    assert ribbon and "30 more cards" in ribbon[0]["message"]
    assert body["printers"][0]["forecast"]["ribbon"]["date"] is not None


def test_printed_and_spoiled_are_counted_per_local_day():
    rows = attempts("p1", 3, days=1) + [{"printer": "p1", "result": "spoiled", "ended_at": "2026-06-03T01:00:00+00:00"}]
    body = report([PrinterReading("p1", "idle")], balance("p1", 800), rows)
    assert body["days"][-1] == {"date": "2026-06-03", "printed": 3, "spoiled": 1}
    assert len(body["days"]) == STOCK.lookback_days
    assert body["printers"][0]["counters"]["printed_today"] == 3


def test_a_printer_known_only_to_the_ledger_is_reported_as_not_reporting():
    body = report([], balance("p2", 800), [])
    assert body["printers"][0]["name"] == "p2" and body["printers"][0]["state"] == "stopped"


def test_a_report_goes_through_the_outbox_with_its_own_idempotency_key(tmp_path):
    journal = Journal(tmp_path / "journal.db", "st-1")
    try:
        journal.load_blanks("p1", 30, lot="LOT-7")
        reporter = TelemetryReporter(journal, lambda: [PrinterReading("p1", "idle", (), 200)], STOCK)
        first = reporter.report(utcnow())
        reporter.queue(first)
        reporter.queue(reporter.report(utcnow() + timedelta(seconds=1)))
        message = journal.outbox_next()
        assert message.path == "/v1/stations/st-1/telemetry" and message.idempotency_key.startswith("st-1:telemetry:")
        assert message.body["printers"][0]["blanks"]["lots"][0]["lot"] == "LOT-7"
        assert journal.outbox_backlog() == 2, "each report has its own key"
    finally:
        journal.close()
