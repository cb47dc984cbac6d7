"""One printer and its encoder reader: takes jobs from the journal and turns each into one card.

The journal is written before the printer is told anything, so that after a crash the
station knows what it was doing and can resolve it from the printer's own evidence
(agent/recovery.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from agent.card_render import CardImageError, CardPanels, render_card
from agent.chip.profile import ChipError, ChipExpectation, ChipFailure, ChipProfile
from agent.config import PrinterConfig
from agent.job import parse_job
from agent.journal import ClaimedJob, Journal, JobState, utcnow
from agent.recovery import recover
from drivers.evolis import EvolisPrinter
from drivers.faults import Fault
from drivers.link import open_link
from drivers.printer_errors import CommandRejected, PrinterError
from drivers.pcsc import PcscError, PcscReader, PcscServiceUnavailable, ReaderUnavailable

log = structlog.get_logger("printer")

# A printer fault seen while a card is inside: the card goes to the reject box with this reason.
PRINTER_FAULT_REASON = "printer-fault"


@dataclass
class WorkerState:
    """What the station shows about one printer (status, diagnose)."""

    name: str
    state: str = "starting"        # idle | processing | stopped (IPP words)
    reasons: tuple[str, ...] = ()
    job_id: str | None = None
    printed: int = 0
    spoiled: int = 0


class PrinterPaused(Exception):
    """The printer cannot take the next card until a condition clears."""

    def __init__(self, faults: frozenset[Fault], detail: str = "") -> None:
        super().__init__(", ".join(f.name for f in faults) or detail)
        self.faults = faults
        self.detail = detail


class ReaderLost(Exception):
    """The encoder reader (or pcscd) is gone: not the card's fault; the printer waits for it."""


READER_UNAVAILABLE = "reader-unavailable"


class PrinterWorker:
    def __init__(self, config: PrinterConfig, journal: Journal, profile: ChipProfile, *, depth: int,
                 card_wait_s: float, work: threading.Condition, language: str = "id") -> None:
        self.config = config
        self.name = config.name
        self.journal = journal
        self.profile = profile
        self.depth = depth
        self.card_wait_s = card_wait_s
        self.work = work
        self.language = language
        self.reader = PcscReader(config.reader)
        self.printer: EvolisPrinter | None = None
        self.reader_lost = False
        self.view = WorkerState(config.name)

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        delay = 1.0
        while not stop.is_set():
            try:
                if self.printer is None:
                    self._connect()
                    delay = 1.0
                self._wait_until_ready(stop)
                if self.reader_lost:
                    self._wait_for_reader(stop)
                if self.journal.active_jobs(self.name):
                    self._recover()  # a card was interrupted (fault, link): resolve it from evidence
                claimed = self.journal.claim_next(self.name)
                if claimed is None:
                    self._set_view("idle")
                    with self.work:
                        self.work.wait(timeout=5.0)  # woken when intake adds jobs
                    continue
                with self.work:
                    self.work.notify_all()  # intake tops up the prefetch
                self._print(claimed)
            except CommandRejected as exc:
                # Refused outside a card (status, recovery): wait for the condition to clear.
                log.warning("printer-refused", printer=self.name, command=exc.command, reply=exc.reply)
                stop.wait(1.0)
            except PrinterError as exc:
                # Link lost, no answer, or garbage: reconnect; recovery then settles any card from evidence.
                self._drop_link(exc)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            except (PrinterPaused, ReaderLost):
                stop.wait(1.0)
        if self.printer is not None:
            self.printer.close()

    def _connect(self) -> None:
        link = open_link(self.config.link)
        printer = EvolisPrinter(link)
        identity = printer.identity()
        log.info("printer-connected", printer=self.name, model=identity.model, serial=identity.serial,
                 firmware=identity.firmware)
        self.printer = printer
        self._recover()

    def _recover(self) -> None:
        assert self.printer is not None
        for outcome in recover(self.journal, self.printer, self.name):
            log.warning("recovered", printer=self.name, **outcome)

    def _drop_link(self, exc: Exception) -> None:
        if self.printer is not None:
            self.printer.close()
            self.printer = None
        self._set_view("stopped", (Fault.LINK_LOST.ipp_reason,))
        log.error("printer-link-lost", printer=self.name, error=str(exc),
                  message=Fault.LINK_LOST.message(self.language), remedy=Fault.LINK_LOST.remedy(self.language))

    def _wait_until_ready(self, stop: threading.Event) -> None:
        """Pause while the printer reports a blocking fault; resume by itself when it clears."""
        assert self.printer is not None
        status = self.printer.status()
        if not status.blocking:
            return
        self._alert(status.faults)
        while not stop.is_set():
            stop.wait(1.0)
            status = self.printer.status()
            if not status.blocking:
                log.info("printer-resumed", printer=self.name)
                return
        raise PrinterPaused(status.faults)

    def _wait_for_reader(self, stop: threading.Event) -> None:
        """Pause this printer until pcscd lists its encoder reader again."""
        while not stop.is_set():
            try:
                self.reader.check()
            except PcscError as exc:
                self._set_view("stopped", (READER_UNAVAILABLE,))
                log.warning("printer-paused", printer=self.name, fault=READER_UNAVAILABLE, error=str(exc))
                stop.wait(2.0)
                continue
            log.info("reader-back", printer=self.name, reader=self.config.reader)
            self.reader_lost = False
            return
        raise ReaderLost(self.config.reader)

    def _alert(self, faults: frozenset[Fault]) -> None:
        self._set_view("stopped", tuple(sorted(f.ipp_reason for f in faults)))
        for fault in sorted(faults, key=lambda f: f.name):
            log.warning("printer-paused", printer=self.name, fault=fault.name.lower(),
                        message=fault.message(self.language), remedy=fault.remedy(self.language))

    def _set_view(self, state: str, reasons: tuple[str, ...] = (), job_id: str | None = None) -> None:
        self.view.state, self.view.reasons, self.view.job_id = state, reasons, job_id

    # -- one card -----------------------------------------------------------------------------

    def _print(self, claimed: ClaimedJob) -> None:
        assert self.printer is not None
        printer = self.printer
        job = parse_job(claimed.payload)
        self._set_view("processing", job_id=job.job_id)
        started = time.monotonic()
        try:
            panels = render_card(job.front_png, job.back_png, depth=self.depth)
        except CardImageError as exc:
            log.error("card-image-unusable", job_id=job.job_id, reason=str(exc))
            self.journal.give_up(job.job_id, claimed.attempt, f"bad-card-image: {exc}")
            return
        self.journal.note_counter(job.job_id, claimed.attempt, printer.counters().cards)
        try:
            printer.start_sequence()
            printer.feed_to_contactless()
        except CommandRejected as exc:
            # Nothing left the hopper: the job waits for the printer, no blank is counted.
            self.journal.unclaim(job.job_id, claimed.attempt, reason=f"feed-refused: {exc.reply}")
            faults = frozenset({exc.fault}) if exc.fault else frozenset()
            self._alert(faults)
            raise PrinterPaused(faults, exc.reply) from None
        self.journal.fed(job.job_id, claimed.attempt, self.name)
        try:
            try:
                failure = self._encode_and_verify(job, claimed)
            except ReaderLost as exc:
                self.reader_lost = True
                log.error("reader-lost", printer=self.name, reader=self.config.reader, error=str(exc))
                failure = (READER_UNAVAILABLE, [])
                self._reject(job.job_id, claimed.attempt, *failure)
                raise
            if failure is not None:
                self._reject(job.job_id, claimed.attempt, failure[0], failure[1])
                return
            self.journal.advance(job.job_id, JobState.PRINTING)
            self._send_panels(panels)
            self.journal.advance(job.job_id, JobState.EJECTING)
            printer.eject()
        except CommandRejected as exc:
            faults = frozenset({exc.fault}) if exc.fault else frozenset()
            self._alert(faults)
            reason = f"{PRINTER_FAULT_REASON}:{exc.fault.name.lower() if exc.fault else exc.reply}"
            try:
                self._reject(job.job_id, claimed.attempt, reason)
            except CommandRejected:
                pass  # the card is stuck: once the fault clears, recovery resolves it from evidence
            raise PrinterPaused(faults, exc.reply) from None
        self.journal.printed(job.job_id, claimed.attempt, printer.counters().cards)
        self.view.printed += 1
        log.info("card-printed", printer=self.name, job_id=job.job_id, attempt=claimed.attempt,
                 seconds=round(time.monotonic() - started, 2))

    def _encode_and_verify(self, job, claimed: ClaimedJob) -> tuple[str, list[dict]] | None:
        """Write the chip and prove it holds exactly this job's data. None when good, else (reason, checks)."""
        expected = ChipExpectation(document_number=job.subject.document_number, nik=job.subject.nik, name=job.subject.name)
        try:
            self.reader.wait_for_card(self.card_wait_s)
            with self.reader.connect(exclusive=True) as session:
                self.profile.encode(session, job.chip_files)
                verdict = self.profile.verify(session, expected, utcnow())
        except ChipError as exc:
            return exc.failure.value, []
        except (ReaderUnavailable, PcscServiceUnavailable) as exc:
            raise ReaderLost(str(exc)) from exc
        except PcscError:
            # No card seen, card gone, or no answer: the chip (or its placement) failed.
            return ChipFailure.CHIP_MUTE.value, []
        if verdict.ok:
            return None
        checks = [{"name": c.name, "verdict": c.verdict.value, "reason": c.reason} for c in verdict.checks]
        return (verdict.failure or ChipFailure.UNREADABLE_FILE).value, checks

    def _send_panels(self, panels: CardPanels) -> None:
        assert self.printer is not None
        self.printer.front()
        for panel in panels.front:
            self.printer.download(panel)
        if panels.back:
            self.printer.back()
            for panel in panels.back:
                self.printer.download(panel)

    def _reject(self, job_id: str, attempt: int, reason: str, checks: list[dict] | None = None) -> None:
        """Send the card to the reject box, then record it spoiled; the job retries on a fresh blank."""
        assert self.printer is not None
        self.journal.advance(job_id, JobState.REJECTING, reason=reason)
        self.printer.reject()
        new_state = self.journal.spoiled(job_id, attempt, reason, checks)
        self.view.spoiled += 1
        log.warning("card-spoiled", printer=self.name, job_id=job_id, attempt=attempt, reason=reason,
                    next=new_state.value)
