"""An unattended batch (the overnight run) and the morning report it leaves.

`printstation batch` asks the daemon to print now, print windows or not (a person started
it on purpose), until a number of cards is printed, the queue runs dry, or a deadline. While
it runs, the daemon notes every printer fault and upstream outage with how long it lasted;
at the end it writes the morning report as JSON and text next to the journal, and queues it
for upstream through the outbox.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from agent.core.printer_snapshot import PrinterSnapshot
from agent.core.catalog import translate
from agent.ops.reason_words import reason_words
from agent.core.local_time import local_time
from agent.journal import IN_PRINTER, Journal, stamp
from agent.core.messages import fault_message, word
from agent.journal.reasons import INTERRUPTED

log = structlog.get_logger("batch")

# The queue must stay empty this many observations (one a second) before a batch calls it a night:
# intake may be between two leases.
EMPTY_OBSERVATIONS = 5
IN_PRINTER_STATES = frozenset(s.value for s in IN_PRINTER)


class BatchError(Exception):
    """A batch cannot start (one is running already, or the request is wrong)."""


@dataclass
class FaultSpan:
    printer: str
    fault: str
    started_at: str
    ended_at: str | None = None
    seconds: float | None = None


@dataclass
class MorningReport:
    station: str
    started_at: str
    ended_at: str
    ended_because: str                       # target-reached | queue-empty | deadline | station-stopped
    target: int | None
    printed: int
    spoiled: int
    spoiled_reasons: dict[str, int]
    faults: list[FaultSpan]
    printers: dict[str, dict[str, Any]]      # blanks_left, ribbon_left, printed, spoiled, blanks_forecast
    outbox_backlog: int
    kind: str = "morning-report"
    stock: dict | None = None                # storeroom, hoppers, the office's run-out (StockPicture.as_json())
    interrupted: int = 0                     # of `spoiled`: cards lost to the station's own interruptions
    cards_per_hour: dict[str, int] = field(default_factory=dict)  # "HH:00" local -> cards printed

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Batch:
    """One batch as it runs in the daemon."""

    station: str
    started: datetime
    target: int | None                        # cards to print; None: until the queue runs dry
    deadline: datetime | None
    faults: list[FaultSpan] = field(default_factory=list)
    done: int = 0
    spoiled: int = 0
    empty_seen: int = 0
    finished: MorningReport | None = None

    def progress(self, now: datetime) -> dict:
        """done, target, rate and ETA, for the CLI's progress line."""
        elapsed = max((now - self.started).total_seconds(), 1e-3)
        rate_h = self.done / elapsed * 3600
        left = (self.target - self.done) if self.target else None
        eta = None
        if left is not None and self.done:
            eta = stamp(now + (now - self.started) * (left / self.done))
        return {"started_at": stamp(self.started), "done": self.done, "spoiled": self.spoiled,
                "target": self.target, "cards_per_hour": round(rate_h, 1), "eta": eta,
                "finished": self.finished is not None}


class BatchRunner:
    """Keeps the current batch; the station's main loop calls `observe` once a tick."""

    def __init__(self, journal: Journal, station: str, reports_dir: Path, language: str) -> None:
        self.journal = journal
        self.station = station
        self.reports_dir = reports_dir
        self.language = language
        self.current: Batch | None = None
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return self.current is not None and self.current.finished is None

    def wants_more(self) -> bool:
        """True while the batch needs another card started: its target counts the cards already in a printer."""
        batch = self.current
        if batch is None or batch.finished is not None:
            return False
        if batch.target is None:
            return True
        printed = sum(a["result"] == "printed" for a in self.journal.attempts_since(stamp(batch.started)))
        in_printer = sum(n for state, n in self.journal.count_by_state().items() if state in IN_PRINTER_STATES)
        return printed + in_printer < batch.target

    def start(self, target: int | None, deadline: datetime | None, now: datetime | None = None) -> Batch:
        """Begin a batch. Raises BatchError when one runs already or the target is not positive."""
        if target is not None and target < 1:
            raise BatchError("the number of cards must be at least 1")
        with self._lock:
            if self.active:
                raise BatchError("a batch is running already; follow it with `printstation batch --follow`")
            self.current = Batch(self.station, now or datetime.now(timezone.utc), target, deadline)
        log.info("batch-started", target=target, deadline=stamp(deadline) if deadline else None)
        return self.current

    def observe(self, printers: Sequence[PrinterSnapshot], upstream_online: bool, blanks: dict[str, int], now: datetime | None = None,
                forecasts: dict[str, dict | None] | None = None, stock: dict | None = None) -> None:
        """Note faults starting and ending, count cards, and finish the batch when it is done."""
        batch = self.current
        if batch is None or batch.finished is not None:
            return
        now = now or datetime.now(timezone.utc)
        seen = {(p.name, f) for p in printers for f in (*p.faults, *_station_reasons(p.reasons))}
        if not upstream_online:
            seen.add(("upstream", "upstream-offline"))
        open_spans = {(s.printer, s.fault): s for s in batch.faults if s.ended_at is None}
        for key in seen - open_spans.keys():
            batch.faults.append(FaultSpan(key[0], key[1], stamp(now)))
        for key, span in open_spans.items():
            if key not in seen:
                self._close(span, now)
        attempts = self.journal.attempts_since(stamp(batch.started))
        batch.done = sum(a["result"] == "printed" for a in attempts)
        batch.spoiled = sum(a["result"] == "spoiled" for a in attempts)
        queue = self.journal.count_by_state()
        busy = queue.get("leased", 0) + sum(n for state, n in queue.items() if state in IN_PRINTER_STATES)
        batch.empty_seen = 0 if busy else batch.empty_seen + 1
        reason = None
        if batch.target is not None and batch.done >= batch.target:
            reason = "target-reached"
        elif batch.target is None and batch.empty_seen >= EMPTY_OBSERVATIONS:
            reason = "queue-empty"
        elif batch.deadline is not None and now >= batch.deadline:
            reason = "deadline"
        if reason:
            self.finish(reason, printers, blanks, now, forecasts or {}, stock)

    def finish(self, reason: str, printers: Sequence[PrinterSnapshot], blanks: dict[str, int], now: datetime | None = None,
               forecasts: dict[str, dict | None] | None = None, stock: dict | None = None) -> MorningReport | None:
        """End the batch: write the morning report (JSON and text) and queue it upstream."""
        batch = self.current
        if batch is None or batch.finished is not None:
            return None
        now = now or datetime.now(timezone.utc)
        for span in batch.faults:
            if span.ended_at is None:
                self._close(span, now)
        attempts = self.journal.attempts_since(stamp(batch.started))
        spoiled = [a for a in attempts if a["result"] == "spoiled"]
        per_printer = {}
        for p in printers:
            mine = [a for a in attempts if a["printer"] == p.name]
            per_printer[p.name] = {"printed": sum(a["result"] == "printed" for a in mine),
                                   "spoiled": sum(a["result"] == "spoiled" for a in mine),
                                   "blanks_left": blanks.get(p.name), "ribbon_left": p.ribbon_left,
                                   "blanks_forecast": (forecasts or {}).get(p.name)}
        report = MorningReport(
            station=self.station, started_at=stamp(batch.started), ended_at=stamp(now), ended_because=reason,
            target=batch.target, printed=sum(a["result"] == "printed" for a in attempts), spoiled=len(spoiled),
            spoiled_reasons=dict(Counter(a["reason"] or "unknown" for a in spoiled)), faults=batch.faults,
            printers=per_printer, outbox_backlog=self.journal.outbox_backlog(), stock=stock,
            interrupted=sum(a["reason"] == INTERRUPTED for a in spoiled),
            cards_per_hour=dict(Counter(_local_hour(a["ended_at"]) for a in attempts if a["result"] == "printed")),
        )
        batch.finished = report
        self._write(report)
        # Upstream's telemetry keeps `printers` for the live printer list: the report travels beside it.
        self.journal.queue_report("morning-report", {"at": report.ended_at, "kind": "morning-report", "report": report.to_json()},
                                  key=f"morning-report:{report.started_at}")
        log.info("batch-finished", ended_because=reason, printed=report.printed, spoiled=report.spoiled)
        return report

    def _close(self, span: FaultSpan, now: datetime) -> None:
        span.ended_at = stamp(now)
        started = datetime.fromisoformat(span.started_at.replace("Z", "+00:00"))
        span.seconds = round((now - started).total_seconds(), 1)

    def _write(self, report: MorningReport) -> None:
        """JSON, text and a printable HTML page, readable by the service's group (the operators)."""
        from agent.ops.report_html import render_html

        self.reports_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.reports_dir, 0o750)
        name = "morning-report-" + report.started_at.replace(":", "").replace(".", "")
        for suffix, text in ((".json", json.dumps(report.to_json(), indent=2)),
                             (".txt", render_text(report.to_json(), self.language) + "\n"),
                             (".html", render_html(report.to_json(), self.language))):
            path = self.reports_dir / f"{name}{suffix}"
            path.write_text(text)
            os.chmod(path, 0o640)


def _local_hour(stamp: str) -> str:
    """A journal stamp's hour in the station's local time, "HH:00"."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone().strftime("%H:00")


def latest_report(reports_dir: Path, suffix: str = ".html") -> Path | None:
    """The newest morning report of this kind, if any."""
    found = sorted(reports_dir.glob(f"morning-report-*{suffix}")) if reports_dir.is_dir() else []
    return found[-1] if found else None


def _station_reasons(reasons: tuple[str, ...]) -> list[str]:
    # Conditions of the station around a printer that stop it, beside printer faults.
    return [r for r in reasons if r in ("reader-unavailable", "journal-unwritable")]


_REPORT_WORDS = {
    "title": {"id": "Laporan pagi", "en": "Morning report"},
    "of-target": {"id": "dari target", "en": "of a target of"},
    "ended": {"id": "selesai karena", "en": "ended because"},
    "faults": {"id": "Gangguan", "en": "Faults"},
    "none": {"id": "tidak ada", "en": "none"},
    "seconds": {"id": "detik", "en": "s"},
    "reasons": {"id": "alasan kartu rusak", "en": "spoiled, by reason"},
    "interrupted": {"id": "terputus oleh stasiun (crash, listrik, disk penuh; tidak dihitung ke batas percobaan warga)",
                    "en": "interrupted by the station (crash, power, full disk; not counted toward a citizen's attempts)"},
}


def render_text(report: dict, lang: str) -> str:
    """The morning report for people, in `lang`."""
    t = lambda key: translate(f"report.{key}", lang, _REPORT_WORDS[key]["en" if lang == "en" else "id"])  # noqa: E731
    w = lambda key: word(key, lang)  # noqa: E731
    lines = [f"{t('title')} {report['station']}: {local_time(report['started_at'], lang)} - {local_time(report['ended_at'], lang)} "
             f"({t('ended')} {reason_words(report['ended_because'], lang)})",
             f"{w('printed')} {report['printed']}"
             + (f" {t('of-target')} {report['target']}" if report.get("target") else "")
             + f", {w('spoiled')} {report['spoiled']}"]
    if report["spoiled_reasons"]:
        lines.append(f"{t('reasons')}: " + ", ".join(f"{reason_words(r, lang)} {n}"
                                                      for r, n in sorted(report["spoiled_reasons"].items())))
    if report.get("interrupted"):
        lines.append(f"  {t('interrupted')}: {report['interrupted']}")
    lines.append(f"{t('faults')}:" + ("" if report["faults"] else f" {t('none')}"))
    for span in report["faults"]:
        message, _ = fault_message(span["fault"], lang)
        lines.append(f"  {span['printer']}: {message} {local_time(span['started_at'], lang)} +{span['seconds']} {t('seconds')}")
    for name, p in report["printers"].items():
        fc = p.get("blanks_forecast") or {}
        lines.append(f"{w('printer')} {name}: {w('printed')} {p['printed']}, {w('spoiled')} {p['spoiled']}, "
                     f"{w('blanks')} {p['blanks_left']}, {w('ribbon')} {p['ribbon_left'] if p['ribbon_left'] is not None else '?'}"
                     + (f", {w('forecast')} {fc['date']}" if fc.get("date") else ""))
    stock = report.get("stock")
    if stock:
        office = stock["office"]["run_out"]
        lines.append(f"{w('storeroom')} {stock['storeroom']}, {w('hoppers')} {stock['hoppers']}"
                     + (f", {w('office-runs-out')} {office['date']}" if office.get("date") else ""))
    lines.append(f"{w('outbox')}: {report['outbox_backlog']}")
    return "\n".join(lines)
