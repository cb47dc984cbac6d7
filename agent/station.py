"""`printstation run`: the daemon. Wires the journal, upstream, printers and readers, and runs until told to stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import structlog

from agent.chip.profile import load_profile
from agent.config import ConfigError, StationConfig
from agent.intake import Intake
from agent.job_signature import AuthorityKeys
from agent.journal import Journal
from agent.outbox_sender import OutboxSender
from agent.printer_worker import PrinterWorker
from agent.sd_notify import Notifier
from agent.upstream_client import UpstreamClient

log = structlog.get_logger("station")


class Station:
    def __init__(self, config: StationConfig) -> None:
        self.config = config
        try:
            self.keys = AuthorityKeys.load(config.upstream.authority_keys)
            self.profile = load_profile(config.chip.profile, list(config.chip.trust_anchors))
        except ValueError as exc:
            raise ConfigError(f"{config.source}: {exc}") from None
        self.journal = Journal(config.journal, config.station_id, config.max_attempts)
        self.client = UpstreamClient(config.upstream, config.station_id)
        self.stop = threading.Event()
        self.work = threading.Condition()
        self.intake = Intake(self.journal, self.client, self.keys, prefetch=config.upstream.prefetch,
                             lease_max=config.upstream.lease_max, wait_s=config.upstream.wait_s, work=self.work)
        self.outbox = OutboxSender(self.journal, self.client)
        self.workers = [
            PrinterWorker(p, self.journal, self.profile, depth=config.panel_depth, card_wait_s=config.chip.card_wait_s,
                          work=self.work, language=config.language)
            for p in config.printers
        ]

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit code."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
        threads = [self._thread("intake", self.intake.run), self._thread("outbox", self.outbox.run)]
        threads += [self._thread(f"printer-{w.name}", w.run) for w in self.workers]
        log.info("station-ready", station=self.config.station_id, printers=[w.name for w in self.workers],
                 journal=str(self.config.journal))
        notifier = Notifier()
        notifier.ready(self.summary())
        tick = min(1.0, notifier.watchdog_interval_s or 1.0)
        while not self.stop.wait(tick):
            dead = [t.name for t in threads if not t.is_alive()]
            if dead:
                log.error("station-thread-died", threads=dead)
                self.stop.set()
                return 1
            # The watchdog is fed only while every loop is alive: a wedged station gets restarted.
            notifier.watchdog()
            notifier.status(self.summary())
        notifier.stopping()
        with self.work:
            self.work.notify_all()
        self.journal.outbox_ready.set()
        for thread in threads:
            thread.join(timeout=30)
        self.client.close()
        self.journal.close()
        log.info("station-stopped")
        return 0

    def summary(self) -> str:
        """One line for `systemctl status`: what each printer does, and what waits."""
        printers = ", ".join(f"{w.name} {w.view.state}" + (f" ({' '.join(w.view.reasons)})" if w.view.reasons else "")
                             for w in self.workers)
        return (f"{printers}; {self.journal.printable_count()} jobs waiting; "
                f"{self.journal.outbox_backlog()} reports to send; upstream {'online' if self.intake.online else 'offline'}")

    def _thread(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        def body() -> None:
            try:
                target(self.stop)
            except Exception:
                log.exception("thread-crashed", thread=name)
                raise

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread
