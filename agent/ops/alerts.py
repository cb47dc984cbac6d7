"""The alerts a person must see: what is wrong at the station now, since when, and what to do.

One board, fed once a second from the station's state (printer snapshots, the stock picture,
upstream, held jobs, ledger discrepancies): the page shows it, the notifiers are told of each
alert as it is raised. A condition becomes an alert when it is first seen (upstream offline only
after `[notify] upstream_offline_after_s`); it is raised to the notifiers once, and again only if
it went away and came back after `[notify] repeat_after_s` (repeated alerts collapsed). An
operator may acknowledge an alert: it stays on the board, marked, until its condition clears.

Texts come from the printer's faults (drivers/faults.py) and the station's alerts
(agent/core/messages.py), in the station's language; no alert carries personal data (printer
names, counts and reason codes only).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import structlog

from agent.core.messages import Alert, fault_message
from agent.core.printer_snapshot import PrinterSnapshot
from agent.upstream.stock_forecast import StockPicture

log = structlog.get_logger("alerts")

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Condition:
    """Something wrong now: `code` is a Fault value or an Alert value (agent/core/messages.py)."""

    code: str
    severity: str = WARNING
    printer: str | None = None
    count: int | None = None  # e.g. blanks left, jobs held
    min_age_s: float = 0.0     # seen this long before it is an alert

    @property
    def key(self) -> str:
        return f"{self.code}:{self.printer}" if self.printer else self.code


@dataclass
class ActiveAlert:
    """An alert on the board."""

    key: str
    code: str
    severity: str
    printer: str | None
    since: datetime
    count: int | None = None
    acknowledged: bool = False

    def text(self, lang: str) -> tuple[str, str]:
        """(what is wrong, what to do) in `lang`."""
        return fault_message(self.code, lang)

    def as_json(self, lang: str) -> dict[str, object]:
        message, remedy = self.text(lang)
        return {"key": self.key, "code": self.code, "severity": self.severity, "printer": self.printer,
                "since": self.since.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
                "count": self.count, "acknowledged": self.acknowledged, "message": message, "remedy": remedy}


@dataclass
class _Seen:
    first: datetime
    condition: Condition


@dataclass
class AlertBoard:
    repeat_after_s: float = 3600.0
    listeners: list[Callable[[ActiveAlert], None]] = field(default_factory=list)
    _active: dict[str, ActiveAlert] = field(default_factory=dict)
    _pending: dict[str, _Seen] = field(default_factory=dict)
    _last_raised: dict[str, datetime] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    version: int = 0  # bumped on every change: the page's live view follows it

    def update(self, conditions: Sequence[Condition], now: datetime | None = None) -> list[ActiveAlert]:
        """Make the board show `conditions`; returns the alerts raised to the listeners now."""
        now = now or datetime.now(timezone.utc)
        raised: list[ActiveAlert] = []
        with self._lock:
            keys = {c.key for c in conditions}
            changed = False
            for key in list(self._active):
                if key not in keys:
                    del self._active[key]
                    changed = True
            for key in list(self._pending):
                if key not in keys:
                    del self._pending[key]
            for condition in conditions:
                key = condition.key
                alert = self._active.get(key)
                if alert is not None:
                    if alert.count != condition.count:
                        alert.count, changed = condition.count, True
                    continue
                seen = self._pending.setdefault(key, _Seen(now, condition))
                if (now - seen.first).total_seconds() < condition.min_age_s:
                    continue
                del self._pending[key]
                alert = ActiveAlert(key, condition.code, condition.severity, condition.printer, seen.first,
                                    condition.count)
                self._active[key] = alert
                changed = True
                last = self._last_raised.get(key)
                if last is None or (now - last).total_seconds() >= self.repeat_after_s:
                    self._last_raised[key] = now
                    raised.append(alert)
            if changed:
                self.version += 1
        for alert in raised:
            log.warning("alert-raised", code=alert.code, printer=alert.printer, severity=alert.severity,
                        count=alert.count)
            for listener in self.listeners:
                try:
                    listener(alert)
                except Exception:  # noqa: BLE001 - a broken channel never stops the board
                    log.exception("alert-listener-failed", code=alert.code)
        return raised

    def current(self) -> list[ActiveAlert]:
        """The alerts on the board, errors first, then the oldest."""
        with self._lock:
            alerts = list(self._active.values())
        return sorted(alerts, key=lambda a: (a.severity != ERROR, a.since))

    def acknowledge(self, key: str) -> bool:
        """Mark an alert as seen by an operator. False when there is no such alert (it cleared)."""
        with self._lock:
            alert = self._active.get(key)
            if alert is None:
                return False
            alert.acknowledged = True
            self.version += 1
        log.info("alert-acknowledged", code=alert.code, printer=alert.printer)
        return True


# Printer reasons that are the station's own doing, not a stop a person must fix.
_NOT_ALARMING = {"paused", "draining", "outside-print-window", "batch-complete"}


def conditions_of(printers: Sequence[PrinterSnapshot], picture: StockPicture | None, *, upstream_online: bool,
                  held_jobs: int, upstream_offline_after_s: float) -> list[Condition]:
    """What is wrong now, from the station's state."""
    found: list[Condition] = []
    for p in printers:
        if p.state == "stopped":
            for fault in p.faults:
                found.append(Condition(fault, ERROR, p.name))
            for reason in p.reasons:
                if reason == Alert.READER_UNAVAILABLE.value:
                    found.append(Condition(reason, ERROR, p.name))
    if picture is not None:
        for name, hopper in picture.hoppers.items():
            if hopper.remaining == 0:
                found.append(Condition(Alert.BLANKS_EMPTY.value, ERROR, name, 0))
            elif hopper.low:
                found.append(Condition(Alert.BLANKS_LOW.value, WARNING, name, hopper.remaining))
        if picture.office_low:
            found.append(Condition(Alert.OFFICE_STOCK_LOW.value, WARNING, None,
                                   picture.storeroom + picture.hoppers_total))
        for printer in sorted({d["printer"] for d in picture.discrepancies}):
            found.append(Condition(Alert.LEDGER_DISCREPANCY.value, WARNING, printer))
    if not upstream_online:
        found.append(Condition(Alert.UPSTREAM_OFFLINE.value, WARNING, min_age_s=upstream_offline_after_s))
    if held_jobs:
        found.append(Condition(Alert.JOB_HELD.value, WARNING, count=held_jobs))
    return found
