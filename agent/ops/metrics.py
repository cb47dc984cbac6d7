"""Fleet monitoring: an optional Prometheus endpoint for offices that already run a monitoring stack.

Off unless the configuration has `[metrics] listen = "127.0.0.1:9464"`; a bare port listens on
loopback only, since the figures are for the office's own monitoring host, not the world.
`GET /metrics` answers in the Prometheus text exposition format (version 0.0.4), written here by
hand: stock (blanks per printer and lot, ribbon left), printer states and reasons, outcomes
(printed, spoiled by reason, failed), the outbox backlog and whether upstream answers.

Every figure is read from the journal and the printer workers when scraped, so the endpoint
holds no state of its own. Labels carry printer names, lots, states and reason codes only:
personal data never reaches a metric.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import structlog

from agent.core.listen import ListenAddress
from agent.core.os_thread import daemon_thread
from agent.core.printer_snapshot import PrinterSnapshot
from agent.ops.station_handle import RunningStation
from agent.journal.reasons import reason_code

log = structlog.get_logger("metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Every attempt ever ended counts towards the outcome counters: they start with the journal's history.
SINCE_EVER = "0000-01-01T00:00:00Z"
PRINTER_STATES = ("starting", "idle", "processing", "stopped")


@dataclass(frozen=True)
class Snapshot:
    """Everything the endpoint shows, read at one scrape."""

    station: str
    printers: tuple[PrinterSnapshot, ...]
    balance: list[dict]                     # Journal.ledger_balance(): per printer and lot
    attempts: list[dict]                    # Journal.attempts_since(SINCE_EVER)
    jobs_by_state: dict[str, int]
    outbox_backlog: int
    upstream_online: bool
    stock: dict | None = None               # agent.upstream.stock_forecast.StockPicture.as_json()


def read_station(station: RunningStation) -> Snapshot:
    """A snapshot of a running station. Raises JournalError when the journal cannot be read."""
    journal = station.journal
    printers = tuple(w.snapshot() for w in station.workers)
    return Snapshot(station.config.station_id, printers, journal.ledger_balance(), journal.attempts_since(SINCE_EVER),
                    journal.count_by_state(), journal.outbox_backlog(), bool(station.intake.online),
                    station.stock().as_json())


@dataclass
class _Family:
    name: str
    kind: str  # gauge | counter
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def families(snap: Snapshot) -> list[_Family]:
    """The metric families of one snapshot, in the order they are written."""
    info = _Family("printstation_info", "gauge", "The station this agent runs; always 1.")
    info.add(1, station=snap.station)

    state = _Family("printstation_printer_state", "gauge", "1 for the printer's current state (IPP words), 0 for the others.")
    reason = _Family("printstation_printer_reason", "gauge",
                     "1 for each reason the printer gives for its state (IPP printer-state-reasons, paused, ...).")
    paused = _Family("printstation_printer_paused", "gauge", "1 while staff have paused (or are draining) the printer.")
    ribbon = _Family("printstation_ribbon_cards_left", "gauge", "Cards the fitted ribbon can still print, as the printer says.")
    for p in snap.printers:
        for name in dict.fromkeys((*PRINTER_STATES, p.state)):
            state.add(1 if name == p.state else 0, printer=p.name, state=name)
        for code in p.reasons:
            reason.add(1, printer=p.name, reason=code)
        paused.add(1 if p.paused else 0, printer=p.name)
        if p.ribbon_left is not None:
            ribbon.add(p.ribbon_left, printer=p.name)

    blanks = _Family("printstation_blanks_remaining", "gauge", "Blanks left in the hopper by the ledger, per printer and lot.")
    for row in snap.balance:
        blanks.add(row["remaining"], printer=row["printer"], lot=row["lot"] or "")

    storeroom = _Family("printstation_blanks_storeroom", "gauge", "Blanks in the storeroom (received, not yet in a hopper), per lot.")
    runout = _Family("printstation_blanks_runout_timestamp_seconds", "gauge",
                     "When blanks run out at the recent rate over print days (Unix time), for the office "
                     "(storeroom + hoppers) and per printer's hopper; absent when not in sight.")
    if snap.stock is not None:
        for lot in snap.stock["storeroom_lots"]:
            storeroom.add(lot["remaining"], lot=lot["lot"])
        office_at = snap.stock["office"]["run_out"]["at"]
        if office_at:
            runout.add(_unix(office_at), scope="office")
        for name, hopper in sorted(snap.stock["printers"].items()):
            if hopper["run_out"]["at"]:
                runout.add(_unix(hopper["run_out"]["at"]), scope=name)

    printed = _Family("printstation_cards_printed_total", "counter", "Cards printed and ejected to the output tray.")
    spoiled = _Family("printstation_cards_spoiled_total", "counter", "Cards sent to the reject box, by reason.")
    done = Counter(a["printer"] for a in snap.attempts if a["result"] == "printed")
    rejects = Counter((a["printer"], reason_code(a["reason"])) for a in snap.attempts if a["result"] == "spoiled")
    for name in sorted({p.name for p in snap.printers} | set(done)):
        printed.add(done[name], printer=name)
    for (name, code), n in sorted(rejects.items()):
        spoiled.add(n, printer=name, reason=code)
    failed = _Family("printstation_jobs_failed_total", "counter", "Jobs given up after every attempt, reported failed upstream.")
    failed.add(snap.jobs_by_state.get("failed", 0))

    jobs = _Family("printstation_jobs", "gauge", "Jobs in the journal by state (leased = waiting to print, held = needs a person).")
    for name, n in sorted(snap.jobs_by_state.items()):
        jobs.add(n, state=name)
    backlog = _Family("printstation_outbox_backlog", "gauge", "Reports (outcomes, telemetry) not yet delivered upstream.")
    backlog.add(snap.outbox_backlog)
    online = _Family("printstation_upstream_online", "gauge", "1 while the upstream issuance server answers, else 0.")
    online.add(1 if snap.upstream_online else 0)
    return [info, state, reason, paused, blanks, storeroom, runout, ribbon, printed, spoiled, failed, jobs, backlog, online]


def _unix(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(snap: Snapshot) -> str:
    """The exposition text of one snapshot."""
    lines = []
    for family in families(snap):
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {family.kind}"]
        for labels, value in family.samples:
            text = ",".join(f'{k}="{_label_value(str(v))}"' for k, v in labels.items())
            lines.append(f"{family.name}{{{text}}} {_number(value)}" if text else f"{family.name} {_number(value)}")
    return "\n".join(lines) + "\n"


class MetricsEndpoint:
    """Serves `GET /metrics` on `listen` in threads of its own until `close`."""

    def __init__(self, listen: ListenAddress, snapshot: Callable[[], Snapshot]) -> None:
        self.listen = listen
        self.snapshot = snapshot
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen and serve. A port that cannot be had is logged, not fatal: printing matters more than monitoring."""
        try:
            server = ThreadingHTTPServer((self.listen.host, self.listen.port), _handler(self.snapshot))
        except OSError as exc:
            log.error("metrics-unavailable", listen=self.listen.describe(), error=exc.strerror or str(exc),
                      remedy="free the port or change [metrics] listen; printing goes on without metrics")
            return
        server.daemon_threads = True
        self._server = server
        self._thread = daemon_thread("metrics", server.serve_forever, poll_interval=0.5)
        self._thread.start()
        log.info("metrics-ready", listen=self.listen.describe())

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def _handler(snapshot: Callable[[], Snapshot]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            if self.path.split("?", 1)[0] != "/metrics":
                self._answer(HTTPStatus.NOT_FOUND, "printstation: the metrics are at /metrics\n")
                return
            try:
                body = render(snapshot())
            except Exception as exc:  # the journal is unreadable: say so, and let Prometheus mark the scrape failed
                log.error("metrics-not-read", error=str(exc))
                self._answer(HTTPStatus.SERVICE_UNAVAILABLE, f"printstation: cannot read the station's figures: {exc}\n")
                return
            self._answer(HTTPStatus.OK, body, CONTENT_TYPE)

        def _answer(self, status: HTTPStatus, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            pass  # a scrape every few seconds is not news for the service log

    return Handler
