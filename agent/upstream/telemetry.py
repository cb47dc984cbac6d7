"""Stock and telemetry for the centre: blanks per printer and lot, ribbon, printer states, counters, forecasts, alerts.

A report is built from the journal (the blank ledger and the card attempts) and from what
each printer worker last saw, and goes upstream through the outbox like every other
message (docs/upstream.openapi.yaml, schema `Telemetry`): every `report_every_s`, and at
once when a printer's state or an alert changes. Thresholds raise `low` alerts early
enough for central stock to arrive (days, not minutes) and `empty` alerts when printing stops.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

import structlog

from agent.core.printer_snapshot import PrinterSnapshot
from agent.core.config import StockConfig
from agent.upstream.forecast import DEFAULT_SCHEDULE, PrintSchedule, RunOut, Use, forecast
from agent.journal import Journal, JournalError, stamp, utcnow
from agent.upstream.stock_forecast import PrintCalendar, StockPicture, stock_picture

log = structlog.get_logger("telemetry")

IPP_STATES = ("idle", "processing", "stopped")
# How often the loop looks for a change worth reporting at once.
CHECK_S = 5.0


class Severity(StrEnum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class Alert:
    """A condition the centre or the operator must act on."""

    kind: str  # blanks-low | blanks-empty | office-stock-low | ledger-discrepancy | ribbon-low | ribbon-empty | printer-stopped
    severity: Severity
    message: str
    printer: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "severity": self.severity.value, "message": self.message}
        if self.printer:
            body["printer"] = self.printer
        return body


def _local(at_text: str, zone: tzinfo | None) -> datetime:
    """A journal timestamp (UTC, RFC 3339) as naive local wall-clock time, the schedule's clock."""
    return datetime.fromisoformat(at_text.replace("Z", "+00:00")).astimezone(zone).replace(tzinfo=None)


def _ribbon_alerts(printer: str, ribbon: RunOut | None, ribbon_left: int | None,
                   stock: StockConfig) -> tuple[list[Alert], list[str]]:
    alerts, reasons = [], []
    if ribbon_left is not None and ribbon is not None:
        if ribbon_left <= 0:
            alerts.append(Alert("ribbon-empty", Severity.ERROR, "the ribbon is used up: fit a new one", printer))
            reasons.append("marker-supply-empty-error")
        elif ribbon_left <= stock.ribbon_low:
            when = f", runs out {ribbon.date.isoformat()}" if ribbon.date else ""
            alerts.append(Alert("ribbon-low", Severity.WARNING, f"the ribbon prints {ribbon_left} more cards{when}", printer))
            reasons.append("marker-supply-low-warning")
    return alerts, reasons


def blanks_alerts(picture: StockPicture, zone: tzinfo | None = None) -> tuple[list[Alert], dict[str, list[str]]]:
    """The stock alerts of the station's one forecast, and the IPP reasons they add per printer:
    a hopper empty or to be empty within its next print window (or few left), the office's
    storeroom and hoppers within their warning print days, every open ledger discrepancy."""
    alerts: list[Alert] = []
    reasons: dict[str, list[str]] = {}
    for name, hopper in picture.hoppers.items():
        if hopper.why == "empty":
            alerts.append(Alert("blanks-empty", Severity.ERROR, "no blanks left: printing has stopped", name))
            reasons.setdefault(name, []).append("media-empty-error")
        elif hopper.low:
            at = hopper.run_out.at
            when = f", empty by {at.astimezone(zone).strftime('%Y-%m-%d %H:%M')}" if at else ""
            alerts.append(Alert("blanks-low", Severity.WARNING, f"{hopper.remaining} blanks left{when}: refill the hopper", name))
            reasons.setdefault(name, []).append("media-low-warning")
    office = picture.office
    if picture.office_low:
        when = (f", run out {office.date.isoformat()} ({office.print_days:.1f} print days)"
                if office.date and office.print_days is not None else "")
        alerts.append(Alert("office-stock-low", Severity.WARNING if office.remaining else Severity.ERROR,
                            f"storeroom {picture.storeroom} + hoppers {picture.hoppers_total} blanks{when}: "
                            "order blanks from the centre now"))
    for d in picture.discrepancies:
        alerts.append(Alert("ledger-discrepancy", Severity.WARNING,
                            f"the ledger counts {d['ledger_count']} blanks but the printer says {d['printer_said']}: "
                            "count the blanks in the hopper, then printstation hopper adjust", d["printer"]))
    return alerts, reasons


def build_report(readings: list[PrinterSnapshot], picture: StockPicture, balance: list[dict], attempts: list[dict],
                 now: datetime, stock: StockConfig, schedule: PrintSchedule = DEFAULT_SCHEDULE,
                 zone: tzinfo | None = None) -> dict:
    """The telemetry body: printers, storeroom, per-day counts, forecasts and alerts.

    `picture` is the station's one stock forecast (agent.upstream.stock_forecast.stock_picture), `balance`
    is Journal.ledger_balance() (per printer and lot), `attempts` the card attempts ended within
    the last `stock.lookback_days` (Journal.attempts_since), `now` an aware time; `zone` is the
    office's time zone (None: the system's).
    """
    local_now = now.astimezone(zone).replace(tzinfo=None)
    today = local_now.date()
    ribbon_used: dict[str, list[Use]] = {}
    per_day: dict[str, Counter] = {}
    per_printer_today: dict[str, Counter] = {}
    for attempt in attempts:
        if attempt.get("result") not in ("printed", "spoiled") or not attempt.get("ended_at"):
            continue
        at = _local(attempt["ended_at"], zone)
        printer = attempt["printer"]
        if attempt["result"] == "printed":
            ribbon_used.setdefault(printer, []).append(Use(at))
        per_day.setdefault(at.date().isoformat(), Counter())[attempt["result"]] += 1
        if at.date() == today:
            per_printer_today.setdefault(printer, Counter())[attempt["result"]] += 1

    lots: dict[str, list[dict]] = {}
    for row in balance:
        lots.setdefault(row["printer"], []).append(
            {"lot": row["lot"], "loaded": row["loaded"], "remaining": row["remaining"]})

    alerts, stock_reasons = blanks_alerts(picture, zone)
    by_name = {r.name: r for r in readings}
    printers = []
    for name in sorted(set(by_name) | set(lots) | set(picture.hoppers)):
        reading = by_name.get(name, PrinterSnapshot(name, "stopped", ("offline-report",)))
        hopper = picture.hoppers.get(name)
        remaining = hopper.remaining if hopper else sum(lot["remaining"] for lot in lots.get(name, []))
        ribbon = (forecast(reading.ribbon_left, ribbon_used.get(name, []), local_now, schedule, stock.lookback_days)
                  if reading.ribbon_left is not None else None)
        printer_alerts, ribbon_reasons = _ribbon_alerts(name, ribbon, reading.ribbon_left, stock)
        state = reading.state if reading.state in IPP_STATES else "stopped"
        reasons = list(dict.fromkeys([*reading.reasons, *stock_reasons.get(name, []), *ribbon_reasons]))
        if state == "stopped" and any(r.endswith("-error") for r in reading.reasons):
            printer_alerts.append(Alert("printer-stopped", Severity.ERROR, " ".join(reading.reasons), name))
        alerts.extend(printer_alerts)
        today_counts = per_printer_today.get(name, Counter())
        printers.append({
            "name": name,
            "state": state,
            "reasons": reasons,
            "blanks": {"remaining": remaining, "lots": lots.get(name, [])},
            "ribbon": {"cards_left": reading.ribbon_left},
            "counters": {"cards": reading.card_counter, "printed_today": today_counts["printed"],
                         "spoiled_today": today_counts["spoiled"]},
            "forecast": {"blanks": hopper.run_out.as_json() if hopper else None,
                         "ribbon": ribbon.as_json() if ribbon else None},
        })
    days = [{"date": (today - timedelta(days=n)).isoformat(),
             "printed": per_day.get((today - timedelta(days=n)).isoformat(), Counter())["printed"],
             "spoiled": per_day.get((today - timedelta(days=n)).isoformat(), Counter())["spoiled"]}
            for n in range(stock.lookback_days - 1, -1, -1)]
    return {
        "at": stamp(now),
        "printers": printers,
        "stock": {"storeroom": picture.storeroom, "hoppers": picture.hoppers_total,
                  "storeroom_lots": picture.storeroom_lots},
        "days": days,
        "forecast": {"blanks": picture.office.as_json()},
        "discrepancies": picture.discrepancies,
        "alerts": [a.as_json() for a in alerts],
    }


class TelemetryReporter:
    """Queues a telemetry report in the outbox every `report_every_s`, and at once on a change."""

    def __init__(self, journal: Journal, readings: Callable[[], list[PrinterSnapshot]], stock: StockConfig,
                 calendar: PrintCalendar | None = None, zone: tzinfo | None = None) -> None:
        self.journal = journal
        self.readings = readings
        self.stock = stock
        self.calendar = calendar or PrintCalendar(DEFAULT_SCHEDULE)
        self.zone = zone

    def report(self, now: datetime | None = None) -> dict:
        """Build a report from the journal and the printers as they are now. Raises JournalError."""
        now = now or utcnow()
        since = stamp(now - timedelta(days=self.stock.lookback_days))
        readings = self.readings()
        picture = stock_picture(self.journal, [r.name for r in readings], self.calendar, self.stock, now, self.zone)
        return build_report(readings, picture, self.journal.ledger_balance(), self.journal.attempts_since(since),
                            now, self.stock, self.calendar.schedule, self.zone)

    def queue(self, body: dict) -> None:
        """Put one report in the outbox; its idempotency key makes a resend harmless. Raises JournalError."""
        self.journal.queue_report("telemetry", body, f"telemetry:{body['at']}")

    def run(self, stop: threading.Event) -> None:
        last_sent = float("-inf")
        last_shape: object = None
        while not stop.is_set():
            try:
                body = self.report()
                # States, reasons and alert kinds: a change there is news; a card more or less is not.
                shape = ([(p["name"], p["state"], tuple(p["reasons"])) for p in body["printers"]],
                         [(a["kind"], a.get("printer")) for a in body["alerts"]])
                if shape != last_shape or time.monotonic() - last_sent >= self.stock.report_every_s:
                    self.queue(body)
                    if shape != last_shape and body["alerts"]:
                        for alert in body["alerts"]:
                            log.warning("stock-alert", **alert)
                    last_sent, last_shape = time.monotonic(), shape
            except JournalError as exc:
                log.error("telemetry-not-queued", error=str(exc))
            stop.wait(CHECK_S)
