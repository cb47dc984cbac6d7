"""The daemon's control socket: a local Unix socket the CLI talks to (status, events, pause, diagnose, batch).

One JSON request line per connection, one JSON answer line back:
    {"cmd": "status"}  ->  {"ok": true, "result": {...}}
    anything wrong     ->  {"ok": false, "error": "<plain words>"}
The socket is mode 0660 in a folder of the service's group: only the service's group may use it.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from agent.ops.batch import BatchError, BatchRunner
from agent.ops.diagnose import PrinterReport, TraceRecorder, probe, unreachable
from agent.ops.hopper import PrinterEvidence, read_evidence
from agent.core.os_thread import daemon_thread
from agent.core.printer_snapshot import PrinterSnapshot
from agent.ops.alerts import AlertBoard, conditions_of
from agent.upstream.stock_forecast import StockPicture
from agent.ops.station_handle import PrinterHandle, RunningStation
from agent.journal import JournalError, stamp
from agent.core.print_windows import check_windows
from agent.ops.status import PrinterStatus, StationStatus, local_midnight_utc, queue_counts, with_stock
from agent.ops.support_bundle import journal_extract
from drivers.printer_errors import PrinterError

log = structlog.get_logger("control")

MAX_REQUEST = 64 * 1024
# A probe waits for the card in progress to leave the printer; a card takes well under this.
PROBE_WAIT_S = 120.0
DRAIN_WAIT_S = 300.0


class ControlSocketError(Exception):
    """The control socket cannot be served (folder missing, in use by a running daemon)."""


class ControlServer:
    """Serves `path` in a thread of its own until `close`."""

    def __init__(self, path: Path, station: ControlPanel) -> None:
        self.path = Path(path)
        self.station = station
        _take_over(self.path)
        handler = _handler(self)
        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), handler)
        self._server.daemon_threads = True
        os.chmod(self.path, 0o660)
        self._thread = daemon_thread("control-socket", self._server.serve_forever, poll_interval=0.5)

    def start(self) -> None:
        self._thread.start()
        log.info("control-socket-ready", path=str(self.path))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def handle(self, request: dict) -> Any:
        """Answer one request (ControlPanel.handle: the operations the page's API uses too)."""
        return self.station.handle(request)


def _handler(server: ControlServer) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        timeout = 10

        def handle(self) -> None:
            try:
                line = self.rfile.readline(MAX_REQUEST)
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
                answer = {"ok": True, "result": server.handle(request)}
            except (ValueError, LookupError, BatchError) as exc:
                answer = {"ok": False, "error": str(exc)}
            except Exception as exc:  # the daemon goes on; the caller learns what broke
                log.exception("control-request-failed")
                answer = {"ok": False, "error": f"the service could not answer: {exc}"}
            try:
                self.wfile.write(json.dumps(answer, default=str).encode() + b"\n")
            except OSError:
                pass  # the CLI went away (Ctrl-C): nothing to tell

    return Handler


def _take_over(path: Path) -> None:
    """Remove a socket left by a daemon that died; refuse when a live daemon still answers on it."""
    if not path.parent.is_dir():
        raise ControlSocketError(f"the folder for the control socket {path.parent} does not exist; "
                                 "under systemd RuntimeDirectory=printstation creates it, else set [station] control_socket")
    if not path.exists():
        return
    probe_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe_sock.settimeout(1)
        probe_sock.connect(str(path))
    except OSError:
        path.unlink()  # nobody listens: a leftover
        return
    finally:
        probe_sock.close()
    raise ControlSocketError(f"another printstation daemon is serving {path}; stop it first")


class ControlPanel:
    """The operators' handle on a running station: status, pause, batches, print windows.

    Owns the control socket and a one-second tick that follows the batch in progress.
    """

    TICK_S = 1.0
    STOCK_EVERY_S = 10.0

    def __init__(self, station: RunningStation) -> None:
        self.station = station
        self.config = station.config
        self.journal = station.journal
        self.workers = station.workers
        self.batch = BatchRunner(self.journal, self.config.station_id, self.config.journal.parent / "reports",
                                 self.config.language)
        for worker in self.workers:
            worker.hold_reason = self.hold_reason
        self._server: ControlServer | None = None
        self.alerts = AlertBoard(repeat_after_s=self.config.notify.repeat_after_s)
        self._picture: StockPicture | None = None
        self._picture_at = 0.0
        self.upstream_offline_since: datetime | None = None  # first seen offline by the tick
        self._ticker = daemon_thread("control-tick", self._tick)

    def start(self) -> None:
        """Serve the control socket (a failure is logged: printing matters more than the CLI) and start the tick."""
        try:
            self._server = ControlServer(self.config.control_socket, self)
            self._server.start()
        except (ControlSocketError, OSError) as exc:
            log.error("control-socket-unavailable", path=str(self.config.control_socket), error=str(exc),
                      remedy="the CLI reads the journal instead; fix [station] control_socket or its folder")
        self._ticker.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        try:
            picture = self.station.stock()
            forecasts: dict[str, dict | None] = {name: h.run_out.as_json() for name, h in picture.hoppers.items()}
            stock: dict | None = picture.as_json()
        except JournalError:
            forecasts, stock = {}, None
        self.batch.finish("station-stopped", self.snapshots(), self._blanks(), forecasts=forecasts, stock=stock)
        self._ticker.join(timeout=5)

    def hold_reason(self) -> str | None:
        """Why printers must not start a card now (None: they may). A batch overrides the windows."""
        if self.batch.active:
            return None if self.batch.wants_more() else "batch-complete"
        verdict = check_windows(self.config.windows, datetime.now().astimezone())
        return None if verdict.open else "outside-print-window"

    def snapshots(self) -> list[PrinterSnapshot]:
        return [w.snapshot() for w in self.workers]

    def wake(self) -> None:
        with self.station.work:
            self.station.work.notify_all()

    def summary(self) -> str:
        """A few words for systemd's STATUS line: the batch's progress, or a closed window."""
        if self.batch.active and self.batch.current is not None:
            p = self.batch.current.progress(datetime.now(timezone.utc))
            return f"; batch {p['done']}/{p['target'] or 'all'}"
        return "; outside print hours" if self.hold_reason() else ""

    def status(self) -> dict:
        now = datetime.now(timezone.utc)
        picture = self.station.stock()
        today = self.journal.attempts_since(local_midnight_utc(now))
        printers = []
        for snap in self.snapshots():
            mine = [a for a in today if a["printer"] == snap.name]
            reasons = [*snap.reasons, *(["draining"] if snap.draining else [])]
            printers.append(with_stock(PrinterStatus(
                name=snap.name, state=snap.state, reasons=reasons, faults=list(snap.faults), job_id=snap.job_id,
                paused=snap.paused, blanks=self.journal.blanks_remaining(snap.name), ribbon_left=snap.ribbon_left,
                printed_today=sum(a["result"] == "printed" for a in mine),
                spoiled_today=sum(a["result"] == "spoiled" for a in mine), model=snap.model, serial=snap.serial),
                picture))
        verdict = check_windows(self.config.windows, datetime.now().astimezone())
        return StationStatus(
            station=self.config.station_id, source="daemon", at=stamp(now), printers=printers,
            queue=queue_counts(self.journal), outbox_backlog=self.journal.outbox_backlog(),
            upstream="online" if self.station.intake.online else "offline",
            window={"open": verdict.open, "opens_at": stamp(verdict.opens_at) if verdict.opens_at else None},
            batch=self.batch_progress(), stock=picture.as_json(),
            alerts=[a.as_json(self.config.language) for a in self.alerts.current()],
        ).to_json()

    def start_batch(self, cards: int | None, until: str | None) -> dict | None:
        deadline = None
        if until:
            deadline = datetime.fromisoformat(until)
            if deadline.tzinfo is None:
                raise ValueError("--until needs a time with its zone")
        self.batch.start(cards, deadline)
        self.wake()
        return self.batch_progress()

    def batch_progress(self) -> dict | None:
        batch = self.batch.current
        if batch is None:
            return None
        progress = batch.progress(datetime.now(timezone.utc))
        if batch.finished is not None:
            progress["report"] = batch.finished.to_json()
        return progress

    def extract(self) -> dict:
        return journal_extract(self.journal)

    def _follow_alerts(self) -> None:
        """Bring the alert board in step with the station (the stock picture at most every STOCK_EVERY_S)."""
        try:
            now = time.monotonic()
            if self._picture is None or now - self._picture_at >= self.STOCK_EVERY_S:
                self._picture, self._picture_at = self.station.stock(), now
            online = bool(self.station.intake.online)
            if online:
                self.upstream_offline_since = None
            elif self.upstream_offline_since is None:
                self.upstream_offline_since = datetime.now(timezone.utc)
            held = self.journal.count_by_state().get("held", 0)
            self.alerts.update(conditions_of(self.snapshots(), self._picture, upstream_online=self.station.intake.online,
                                             held_jobs=held,
                                             upstream_offline_after_s=self.config.notify.upstream_offline_after_s))
        except Exception:  # the board's bookkeeping must never stop the station
            log.exception("alerts-update-failed")

    def _blanks(self) -> dict[str, int]:
        return {w.name: self.journal.blanks_remaining(w.name) for w in self.workers}

    def _tick(self) -> None:
        while not self.station.stop.wait(self.TICK_S):
            self._follow_alerts()
            if not self.batch.active:
                continue
            try:
                now = datetime.now(timezone.utc)
                blanks = self._blanks()
                picture = self.station.stock()
                forecasts = {w.name: picture.hoppers[w.name].run_out.as_json() if w.name in picture.hoppers else None
                             for w in self.workers}
                self.batch.observe(self.snapshots(), self.station.intake.online, blanks, now, forecasts, picture.as_json())
            except Exception:  # the batch's bookkeeping must never stop the station
                log.exception("batch-observe-failed")

    # -- commands ---------------------------------------------------------------------------

    def handle(self, request: dict) -> Any:
        """Answer one request; raises ValueError (a wrong request) or LookupError (no such printer)."""
        cmd = request.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "events":
            since, limit = int(request.get("since", 0)), min(int(request.get("limit", 1000)), 5000)
            return self.journal.events(since, limit)
        if cmd in ("pause", "resume", "drain"):
            return self._pause(cmd, self._worker(request.get("printer")))
        if cmd == "diagnose":
            printer = request.get("printer")
            workers = [self._worker(printer)] if printer else self.workers
            return [self._probe(w, bool(request.get("trace"))).to_json() for w in workers]
        if cmd == "batch-start":
            cards = request.get("cards")
            return self.start_batch(int(cards) if cards is not None else None, request.get("until"))
        if cmd == "batch":
            return self.batch_progress()
        if cmd == "extract":
            return self.extract()
        if cmd == "held":
            return self.journal.held_jobs()
        if cmd == "held-decide":
            job_id, decision = str(request.get("job_id", "")), str(request.get("decision", ""))
            state = self.journal.decide_held(job_id, decision, who=str(request.get("who", "operator")))
            log.info("held-job-decided", job_id=job_id, decision=decision, state=state.value)
            self.wake()
            return {"job_id": job_id, "state": state.value}
        if cmd == "alert-ack":
            return {"acknowledged": self.alerts.acknowledge(str(request.get("key", "")))}
        if cmd == "reconcile":
            return [asdict(self._evidence(w)) for w in self.workers]
        raise ValueError(f"unknown command {cmd!r}")

    def _worker(self, name: object) -> PrinterHandle:
        for worker in self.workers:
            if worker.name == name:
                return worker
        raise LookupError(f"no printer named {name!r}; the station has {', '.join(w.name for w in self.workers)}")

    def _pause(self, cmd: str, worker: PrinterHandle) -> dict:
        if cmd == "resume":
            worker.paused.clear()
        else:
            worker.paused.set()
        self.wake()
        log.info(f"printer-{cmd}", printer=worker.name)
        if cmd == "drain":
            # Drained: the card in progress has left the printer; it is safe to open it.
            deadline = time.monotonic() + DRAIN_WAIT_S
            while worker.snapshot().state == "processing" and time.monotonic() < deadline:
                time.sleep(0.2)
        snap = worker.snapshot()
        return {"printer": worker.name, "paused": snap.paused, "state": snap.state, "job_id": snap.job_id}

    def _evidence(self, worker: PrinterHandle) -> PrinterEvidence:
        """What one printer says of its feeder and counter, asked on the worker's own link between cards."""
        if not worker.link_lock.acquire(timeout=PROBE_WAIT_S):
            return PrinterEvidence(worker.name, asked=False, not_asked_because="the printer stayed busy with a card")
        try:
            if worker.printer is None:
                return PrinterEvidence(worker.name, asked=False,
                                       not_asked_because="the service has no link to this printer now")
            return read_evidence(worker.printer, worker.name)
        except PrinterError as exc:
            return PrinterEvidence(worker.name, asked=False, not_asked_because=f"the printer did not answer: {exc}")
        finally:
            worker.link_lock.release()

    def _probe(self, worker: PrinterHandle, trace: bool) -> PrinterReport:
        report = PrinterReport(name=worker.name, link=worker.config.link, via="daemon")
        lang = worker.language
        if not worker.link_lock.acquire(timeout=PROBE_WAIT_S):
            report.error = "the printer is busy with a card; try again in a minute"
            return report
        recorder = TraceRecorder() if trace else None
        try:
            if worker.printer is None:
                return unreachable(report, "the service has no link to this printer now", lang)
            worker.trace_sink = recorder
            probe(worker.printer, report, lang)
        except PrinterError as exc:
            report.error = str(exc)
        finally:
            worker.trace_sink = None
            worker.link_lock.release()
            if recorder is not None:
                report.trace = recorder.lines
        return report
