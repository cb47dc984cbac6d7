"""`printstation run`: the daemon. Wires the journal, upstream, printers and readers, and runs until told to stop."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from datetime import timedelta

import structlog

from agent.chip.registry import load_profile
from agent.core.config import ConfigError, StationConfig
from agent.ops.control_socket import ControlPanel
from agent.upstream.forecast import schedule_for
from agent.upstream.intake import Intake, prefetch_for
from agent.upstream.signature import AuthorityKeys
from agent.journal import Journal, JournalError, stamp, utcnow
from agent.ops.metrics import MetricsEndpoint, read_station
from agent.ops.notify import Notifiers
from agent.upstream.sender import OutboxSender
from agent.station.crashpoints import CrashPoint, reached
from agent.station.worker import PrinterWorker
from agent.station.render_ahead import RenderAhead
from agent.core.sd_notify import Notifier
from agent.upstream.stock_forecast import StockPicture, calendar_for, stock_picture
from agent.station.supervisor import EXIT_THREAD_FAILED, Supervised
from agent.upstream.telemetry import TelemetryReporter
from agent.core.printer_snapshot import PrinterSnapshot
from agent.upstream.client import UpstreamClient

if TYPE_CHECKING:
    from agent.ops.web import WebServer

log = structlog.get_logger("station")

PURGE_EVERY_S = 24 * 3600.0


class Station:
    def __init__(self, config: StationConfig) -> None:
        self.config = config
        try:
            self.keys = AuthorityKeys.load(config.upstream.authority_keys)
            self.profile = load_profile(config.chip.profile, list(config.chip.trust_anchors))
        except ValueError as exc:
            raise ConfigError(f"{config.source}: {exc}") from None
        self.journal = Journal(config.journal, config.station_id, config.max_attempts)
        try:
            self.client = UpstreamClient(config.upstream, config.station_id)
        except OSError as exc:  # ssl.SSLError included: a CA or client certificate file that cannot be used
            raise ConfigError(f"{config.source}: upstream TLS files: {exc}. Fix: check upstream.ca_file, "
                              "client_cert and client_key (PEM)") from None
        self.stop = threading.Event()
        self.work = threading.Condition()
        self.intake = Intake(self.journal, self.client, self.keys,
                             prefetch=prefetch_for(config.upstream, len(config.printers)),
                             lease_max=config.upstream.lease_max, wait_s=config.upstream.wait_s, work=self.work,
                             renew_margin_s=config.upstream.renew_margin_s, limits=config.limits,
                             retry_max_s=config.upstream.retry_max_s, profile=self.profile)
        self.outbox = OutboxSender(self.journal, self.client, max_backoff_s=config.upstream.retry_max_s,
                                   batch_max=config.upstream.outbox_batch,
                                   answered=lambda: reached(CrashPoint.AFTER_BATCH_BEFORE_JOURNAL))
        self.render_ahead = RenderAhead(self.journal, depth=config.panel_depth, lookahead=len(config.printers),
                                        limits=config.limits)
        self.workers = [
            PrinterWorker(p, self.journal, self.profile, depth=config.panel_depth, card_wait_s=config.chip.card_wait_s,
                          work=self.work, language=config.language, card_budget_s=config.chip.card_budget_s,
                          render_ahead=self.render_ahead, limits=config.limits)
            for p in config.printers
        ]
        # One notion of print hours: the windows that hold jobs are the hours every forecast spends stock in.
        self.schedule = schedule_for(config.windows)
        self.calendar = calendar_for(config)  # the same windows, less the holidays: every stock forecast's
        self.control = ControlPanel(self)
        self.notifiers = Notifiers.from_config(config.notify, config.language, config.station_id, self.journal)
        self.control.alerts.listeners.append(self.notifiers)
        self.telemetry = TelemetryReporter(self.journal, self.printer_snapshots, config.stock, self.calendar)
        self.metrics = MetricsEndpoint(config.metrics, lambda: read_station(self)) if config.metrics else None
        self.web: WebServer | None = None

    def stock(self) -> StockPicture:
        """The station's one stock forecast, now. Raises JournalError."""
        return stock_picture(self.journal, [w.name for w in self.workers], self.calendar, self.config.stock)

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        threads = [self._thread("intake", self.intake.run), self._thread("outbox", self.outbox.run),
                   self._thread("telemetry", self.telemetry.run)]
        threads += [self._thread(f"printer-{w.name}", w.run) for w in self.workers]
        threads += [self._thread(name, loop) for name, loop in self.notifiers.loops()]  # stop with the others
        log.info("station-ready", station=self.config.station_id, printers=[w.name for w in self.workers],
                 journal=str(self.config.journal))
        for warning in self.config.warnings:
            log.warning("config-warning", warning=warning)
        self.control.start()
        if self.metrics is not None:
            self.metrics.start()
        if self.config.web.listen is not None:
            # Imported here: the page's framework is not needed by a station that serves no page.
            from agent.ops.web import WebServer, create_app

            self.web = WebServer(create_app(self.control, self.config.web, self.config.language), self.config.web.listen)
            self.web.start()
        notifier = Notifier()
        notifier.ready(self.summary())
        tick = min(1.0, notifier.watchdog_interval_s or 1.0)
        next_purge = time.monotonic() + PURGE_EVERY_S  # the first purge a day after start
        while not self.stop.wait(tick):
            failed = [t.name for t in threads if t.gave_up]
            if failed:
                log.error("station-thread-died", threads=failed)
                notifier.status(f"stopped: the {', '.join(failed)} loop kept failing; see the log, call the technician")
                self.stop.set()
                self._shut_down(threads, notifier)
                return EXIT_THREAD_FAILED
            if time.monotonic() >= next_purge:
                self._purge_history()
                next_purge = time.monotonic() + PURGE_EVERY_S
            # The watchdog is fed only while every loop is alive: a wedged station gets restarted.
            notifier.watchdog()
            notifier.status(self.summary())
        self._shut_down(threads, notifier)
        return 0

    def _shut_down(self, threads: list[Supervised], notifier: Notifier) -> None:
        notifier.stopping()
        with self.work:
            self.work.notify_all()
        self.journal.outbox_ready.set()
        for thread in threads:
            thread.join(timeout=30)
        if self.web is not None:
            self.web.close()
        self.control.close()
        if self.metrics is not None:
            self.metrics.close()
        self.render_ahead.close()
        self.client.close()
        self.journal.close()
        log.info("station-stopped")

    def printer_snapshots(self) -> list[PrinterSnapshot]:
        """Each printer as its worker last saw it, for telemetry."""
        return [w.snapshot() for w in self.workers]

    def _purge_history(self) -> None:
        """Keep the journal bounded: forget finished jobs older than the retention (once a day)."""
        try:
            gone = self.journal.purge_history(utcnow() - timedelta(days=self.config.retention_days))
        except JournalError as exc:
            log.warning("history-purge-failed", error=str(exc))
            return
        if gone:
            log.info("history-purged", jobs=gone, retention_days=self.config.retention_days)

    def summary(self) -> str:
        """One line for `systemctl status`: what each printer does, and what waits."""
        printers = ", ".join(f"{s.name} {s.state}" + (f" ({' '.join(s.reasons)})" if s.reasons else "")
                             for s in self.printer_snapshots())
        return (f"{printers}; {self.journal.printable_count()} jobs waiting; "
                f"{self.journal.outbox_backlog()} reports to send; upstream {'online' if self.intake.online else 'offline'}"
                f"{self.control.summary()}")

    def _thread(self, name: str, target: Callable[[threading.Event], None]) -> Supervised:
        loop = Supervised(name, target, self.stop, on_crash=self._thread_crashed)
        loop.start()
        return loop

    def _thread_crashed(self, name: str, exc: BaseException, crashes: int) -> None:
        """A loop died: the operator and the centre hear of it (the supervisor restarts it)."""
        try:
            self.journal.queue_report("alert", {"at": stamp(utcnow()), "alerts": [{
                "kind": "station-thread-crashed", "severity": "error", "message":
                    f"the station's {name} loop failed ({type(exc).__name__}) and was restarted ({crashes} time(s))"}]},
                key=f"thread-crashed:{name}:{stamp(utcnow())}")
        except JournalError:
            pass  # the crash is in the log; the journal may be what failed
